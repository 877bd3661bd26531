//! Reordered rows and columns: llama.cpp's `convert_hf_to_gguf.py` permutes the rows of every
//! attention Q and K matrix (`permute(w, n_head)`: the two rotary halves of each head
//! interleaved), so a GGUF export of a Hugging Face model never lines up with it row for row;
//! and a hidden-unit permutation, the cheap disguise for a stolen copy, reorders a layer's
//! rows, its bias and the next layer's columns. Either way, cast, quantized or fine-tuned on
//! top, the diff must still see the parent.

use std::io::Write;
use std::path::Path;

use pedigree_formats::tensors::f32_to_f16;
use pedigree_provenance::diff::{Direction, Relation};
use pedigree_provenance::fingerprint::mix64;
use pedigree_provenance::{Model, diff, lineage};

const HID: usize = 64;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = HID / HEADS;
const FFN: usize = 128;

/// Weights with trained-like structure: rows and columns of uneven scale, heavy tails.
fn weights(seed: u64, r: usize, c: usize) -> Vec<f32> {
    let rs: Vec<f32> = (0..r)
        .map(|i| 0.3 + unit(seed ^ 0xa5a5, i as u64) * 1.5)
        .collect();
    let cs: Vec<f32> = (0..c)
        .map(|j| 0.3 + unit(seed ^ 0x5a5a, j as u64) * 1.5)
        .collect();
    (0..r * c)
        .map(|k| {
            let x = unit(seed, k as u64) - 0.5;
            0.05 * rs[k / c] * cs[k % c] * (x + 4.0 * x * x * x)
        })
        .collect()
}

fn unit(seed: u64, i: u64) -> f32 {
    (mix64(seed.wrapping_mul(0x9e37_79b9) ^ i) >> 40) as f32 / (1u64 << 24) as f32
}

/// (HF name, GGUF name, shape, values): one llama block with grouped-query attention.
fn llama(seed: u64) -> Vec<(&'static str, &'static str, Vec<usize>, Vec<f32>)> {
    let kv = KV_HEADS * HEAD_DIM;
    let m = |s: u64, r: usize, c: usize| weights(seed * 100 + s, r, c);
    vec![
        (
            "model.embed_tokens.weight",
            "token_embd.weight",
            vec![96, HID],
            m(1, 96, HID),
        ),
        (
            "model.layers.0.self_attn.q_proj.weight",
            "blk.0.attn_q.weight",
            vec![HID, HID],
            m(2, HID, HID),
        ),
        (
            "model.layers.0.self_attn.k_proj.weight",
            "blk.0.attn_k.weight",
            vec![kv, HID],
            m(3, kv, HID),
        ),
        (
            "model.layers.0.self_attn.v_proj.weight",
            "blk.0.attn_v.weight",
            vec![kv, HID],
            m(4, kv, HID),
        ),
        (
            "model.layers.0.self_attn.o_proj.weight",
            "blk.0.attn_output.weight",
            vec![HID, HID],
            m(5, HID, HID),
        ),
        (
            "model.layers.0.mlp.gate_proj.weight",
            "blk.0.ffn_gate.weight",
            vec![FFN, HID],
            m(6, FFN, HID),
        ),
        (
            "model.layers.0.mlp.up_proj.weight",
            "blk.0.ffn_up.weight",
            vec![FFN, HID],
            m(7, FFN, HID),
        ),
        (
            "model.layers.0.mlp.down_proj.weight",
            "blk.0.ffn_down.weight",
            vec![HID, FFN],
            m(8, HID, FFN),
        ),
        (
            "model.norm.weight",
            "output_norm.weight",
            vec![HID],
            (0..HID).map(|i| 1.0 + 0.1 * unit(seed, i as u64)).collect(),
        ),
        (
            "lm_head.weight",
            "output.weight",
            vec![96, HID],
            m(9, 96, HID),
        ),
    ]
}

/// llama.cpp's `LlamaModel.permute`: reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2).
fn permute_qk(w: &[f32], rows: usize, cols: usize, n_head: usize) -> Vec<f32> {
    let half = rows / n_head / 2;
    let mut o = vec![0f32; w.len()];
    for h in 0..n_head {
        for k in 0..2 {
            for j in 0..half {
                let src = h * 2 * half + k * half + j;
                let dst = h * 2 * half + j * 2 + k;
                o[dst * cols..(dst + 1) * cols].copy_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    o
}

fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let mut header = serde_json::Map::new();
    let mut off = 0usize;
    for (n, s, v) in tensors {
        header.insert(
            n.clone(),
            serde_json::json!({"dtype": "F32", "shape": s, "data_offsets": [off, off + v.len() * 4]}),
        );
        off += v.len() * 4;
    }
    let h = serde_json::to_vec(&header).unwrap();
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(&(h.len() as u64).to_le_bytes()).unwrap();
    f.write_all(&h).unwrap();
    for (_, _, v) in tensors {
        for x in v {
            f.write_all(&x.to_le_bytes()).unwrap();
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum GgmlType {
    F32 = 0,
    F16 = 1,
    Q8_0 = 8,
}

/// A GGUF v3 file as llama.cpp writes it: 2-D weights in `ty`, vectors in F32.
fn write_gguf(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)], ty: GgmlType) {
    let s = |o: &mut Vec<u8>, x: &str| {
        o.extend((x.len() as u64).to_le_bytes());
        o.extend(x.as_bytes());
    };
    let mut head = b"GGUF".to_vec();
    head.extend(3u32.to_le_bytes());
    head.extend((tensors.len() as u64).to_le_bytes());
    head.extend(1u64.to_le_bytes());
    s(&mut head, "general.architecture");
    head.extend(8u32.to_le_bytes());
    s(&mut head, "llama");
    let mut data: Vec<u8> = Vec::new();
    for (name, shape, v) in tensors {
        let t = if shape.len() == 2 { ty } else { GgmlType::F32 };
        s(&mut head, name);
        head.extend((shape.len() as u32).to_le_bytes());
        for d in shape.iter().rev() {
            head.extend((*d as u64).to_le_bytes());
        }
        head.extend((t as u32).to_le_bytes());
        while data.len() % 32 != 0 {
            data.push(0);
        }
        head.extend((data.len() as u64).to_le_bytes());
        match t {
            GgmlType::F32 => data.extend(v.iter().flat_map(|x| x.to_le_bytes())),
            GgmlType::F16 => data.extend(v.iter().flat_map(|x| f32_to_f16(*x).to_le_bytes())),
            GgmlType::Q8_0 => {
                for blk in v.chunks(32) {
                    let amax = blk.iter().fold(0f32, |m, x| m.max(x.abs()));
                    let d = amax / 127.0;
                    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
                    data.extend(f32_to_f16(d).to_le_bytes());
                    data.extend(
                        blk.iter()
                            .map(|x| (x * id).round().clamp(-127.0, 127.0) as i8 as u8),
                    );
                }
            }
        }
    }
    while head.len() % 32 != 0 {
        head.push(0);
    }
    head.extend(data);
    std::fs::write(path, head).unwrap();
}

/// The HF model and its GGUF exports (Q and K rows permuted as llama.cpp does).
fn hf_and_ggufs(dir: &Path) -> Vec<std::path::PathBuf> {
    let m = llama(1);
    let hf: Vec<(String, Vec<usize>, Vec<f32>)> = m
        .iter()
        .map(|(n, _, s, v)| (n.to_string(), s.clone(), v.clone()))
        .collect();
    let gg: Vec<(String, Vec<usize>, Vec<f32>)> = m
        .iter()
        .map(|(_, g, s, v)| {
            let v = match *g {
                "blk.0.attn_q.weight" => permute_qk(v, s[0], s[1], HEADS),
                "blk.0.attn_k.weight" => permute_qk(v, s[0], s[1], KV_HEADS),
                _ => v.clone(),
            };
            (g.to_string(), s.clone(), v)
        })
        .collect();
    let mut out = Vec::new();
    for (name, ty) in [
        ("llama-hf", None),
        ("llama-f32-gguf", Some(GgmlType::F32)),
        ("llama-f16-gguf", Some(GgmlType::F16)),
        ("llama-q8-gguf", Some(GgmlType::Q8_0)),
    ] {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        match ty {
            None => write_safetensors(&d.join("model.safetensors"), &hf),
            Some(t) => write_gguf(&d.join("model.gguf"), &gg, t),
        }
        out.push(d);
    }
    out
}

#[test]
fn gguf_exports_with_permuted_qk_rows_keep_their_parent() {
    let dir = tempfile::tempdir().unwrap();
    let p = hf_and_ggufs(dir.path());
    let open = |i: usize| Model::open(&p[i]).unwrap();
    for (i, want) in [
        (1, Relation::Copy),
        (2, Relation::Cast),
        (3, Relation::Quantized),
    ] {
        let d = diff(&open(0), &open(i)).unwrap();
        assert_eq!(d.relation, want, "{}: {:#?}", p[i].display(), d.evidence);
        if want != Relation::Copy {
            assert_eq!(d.direction, Direction::AToB, "{:?}", d.evidence);
        }
        let mut reordered: Vec<String> = d
            .tensors
            .iter()
            .filter(|t| t.align == Some(pedigree_provenance::diff::Align::Permuted))
            .filter_map(|t| t.b.clone())
            .collect();
        reordered.sort();
        assert_eq!(
            reordered,
            ["blk.0.attn_k.weight", "blk.0.attn_q.weight"],
            "Q and K matched after reordering their rows: {:#?}",
            d.tensors
        );
        // the other way round too (the quantized side's steps follow its rows)
        let back = diff(&open(i), &open(0)).unwrap();
        assert_eq!(back.relation, want, "{:?}", back.evidence);
    }
    let r = lineage(&p).unwrap();
    let parent_of = |c: &str| {
        r.edges
            .iter()
            .find(|e| e.child == c)
            .map(|e| (e.parent.as_str(), e.relation))
    };
    assert_eq!(
        parent_of("llama-f16-gguf").map(|x| x.1),
        Some(Relation::Cast),
        "{}",
        r.to_text()
    );
    assert_eq!(
        parent_of("llama-q8-gguf").map(|x| x.1),
        Some(Relation::Quantized),
        "{}",
        r.to_text()
    );
    assert!(
        parent_of("llama-hf").is_none_or(|(p, rel)| p == "llama-f32-gguf" && rel == Relation::Copy),
        "{}",
        r.to_text()
    );
}

#[test]
fn permuted_and_modified_copy_is_matched() {
    // A 3-layer MLP; the "copy" permutes both hidden layers' units consistently (rows of one
    // layer, its bias, columns of the next), then is fine-tuned a little (or cast to f16).
    let dir = tempfile::tempdir().unwrap();
    let (i_n, h1, h2, o_n) = (48, 96, 80, 10);
    let base: Vec<(String, Vec<usize>, Vec<f32>)> = vec![
        ("fc1.weight".into(), vec![h1, i_n], weights(11, h1, i_n)),
        ("fc1.bias".into(), vec![h1], weights(12, 1, h1)),
        ("fc2.weight".into(), vec![h2, h1], weights(13, h2, h1)),
        ("fc2.bias".into(), vec![h2], weights(14, 1, h2)),
        ("out.weight".into(), vec![o_n, h2], weights(15, o_n, h2)),
        ("out.bias".into(), vec![o_n], weights(16, 1, o_n)),
    ];
    let perm = |n: usize, seed: u64| {
        let mut p: Vec<usize> = (0..n).collect();
        p.sort_by_key(|&i| mix64(seed ^ i as u64));
        p
    };
    let (p1, p2) = (perm(h1, 1), perm(h2, 2));
    let rows = |v: &[f32], c: usize, p: &[usize]| -> Vec<f32> {
        p.iter()
            .flat_map(|&i| v[i * c..(i + 1) * c].to_vec())
            .collect()
    };
    let cols = |v: &[f32], r: usize, c: usize, p: &[usize]| -> Vec<f32> {
        (0..r)
            .flat_map(|i| p.iter().map(move |&j| v[i * c + j]))
            .collect::<Vec<_>>()
    };
    let mut q = base.clone();
    q[0].2 = rows(&base[0].2, i_n, &p1);
    q[1].2 = rows(&base[1].2, 1, &p1);
    q[2].2 = cols(&rows(&base[2].2, h1, &p2), h2, h1, &p1);
    q[3].2 = rows(&base[3].2, 1, &p2);
    q[4].2 = cols(&base[4].2, o_n, h2, &p2);
    // fine-tuned on top: every tensor moved a little
    let mut ft = q.clone();
    for (k, t) in ft.iter_mut().enumerate() {
        let n = t.2.len();
        let d = weights(900 + k as u64, 1, n);
        t.2.iter_mut().zip(&d).for_each(|(x, y)| *x += 0.1 * y);
    }
    let mut names = Vec::new();
    for (name, t) in [("base", &base), ("disguised-finetune", &ft)] {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        write_safetensors(&d.join("model.safetensors"), t);
        names.push(d);
    }
    let d = diff(
        &Model::open(&names[0]).unwrap(),
        &Model::open(&names[1]).unwrap(),
    )
    .unwrap();
    assert_eq!(d.relation, Relation::Finetune, "{:#?}", d.evidence);
    assert!(d.evidence.closeness > 0.8, "{:#?}", d.evidence);
    assert_eq!(d.evidence.permuted, 5, "{:#?}", d.tensors);
    // while an independently initialised model of the same shape stays unrelated
    let other: Vec<(String, Vec<usize>, Vec<f32>)> = base
        .iter()
        .enumerate()
        .map(|(k, (n, s, v))| {
            let c = *s.last().unwrap();
            (
                n.clone(),
                s.clone(),
                weights(500 + k as u64, v.len() / c, c),
            )
        })
        .collect();
    let od = dir.path().join("independent");
    std::fs::create_dir_all(&od).unwrap();
    write_safetensors(&od.join("model.safetensors"), &other);
    let u = diff(&Model::open(&names[1]).unwrap(), &Model::open(&od).unwrap()).unwrap();
    assert_eq!(u.relation, Relation::Unrelated, "{:#?}", u.evidence);
}
