//! Reader tests: real files from the lineage families (written by torch / safetensors / onnx /
//! gguf in `tests/lineage/make_families.py`) and fixed-seed mutation storms (never panic).

use std::path::PathBuf;

use super::*;

fn fam(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/lineage/families")
        .join(p)
}

fn by_name<'a>(f: &'a TensorFile, n: &str) -> (usize, &'a Tensor) {
    f.tensors
        .iter()
        .enumerate()
        .find(|(_, t)| t.name == n)
        .unwrap_or_else(|| panic!("no {n}"))
}

#[test]
fn every_format_reads_the_same_weights() {
    let st = TensorFile::open(&fam("base-a/model.safetensors")).unwrap();
    assert_eq!(st.format, TensorFormat::Safetensors);
    let (i, t) = by_name(&st, "fc2.weight");
    assert_eq!(t.shape, vec![64, 64]);
    let w = st.values(i).unwrap();

    // torch zip, bf16: equals the bf16 rounding of the f32 parent
    let pt = TensorFile::open(&fam("a-bf16/pytorch_model.pt")).unwrap();
    assert_eq!(pt.format, TensorFormat::TorchZip);
    let (j, t) = by_name(&pt, "fc2.weight");
    assert_eq!(t.dtype, DType::BF16);
    let b = pt.values(j).unwrap();
    assert!(w.iter().zip(&b).all(|(x, y)| round_to_bf16(*x) == *y));

    // fp16 safetensors
    let h = TensorFile::open(&fam("a-fp16/model.safetensors")).unwrap();
    let (j, _) = by_name(&h, "fc2.weight");
    assert!(
        w.iter()
            .zip(&h.values(j).unwrap())
            .all(|(x, y)| round_to_f16(*x) == *y)
    );

    // ONNX: transposed MatMul weight, renamed
    let ox = TensorFile::open(&fam("a-onnx/model.onnx")).unwrap();
    assert_eq!(ox.format, TensorFormat::Onnx);
    let (j, t) = by_name(&ox, "onnx::MatMul_21");
    assert_eq!(t.shape, vec![64, 64]);
    let o = ox.values(j).unwrap();
    for r in 0..64 {
        for c in 0..64 {
            assert_eq!(w[r * 64 + c], o[c * 64 + r]);
        }
    }
    // ONNX int8 QDQ folds into float tensors within half a step
    let q = TensorFile::open(&fam("a-int8/model.onnx")).unwrap();
    let (j, t) = by_name(&q, "onnx::MatMul_21");
    assert!(t.quantized);
    let v = q.values(j).unwrap();
    let st_ = q.quant_steps(j).unwrap().unwrap();
    for r in 0..64 {
        for c in 0..64 {
            assert!((w[r * 64 + c] - v[c * 64 + r]).abs() <= 0.51 * st_[c * 64 + r]);
        }
    }
    // GGUF Q8_0 and Q4_0
    for (f, tol) in [("a-q8/model.gguf", 0.6f32), ("a-q4/model.gguf", 1.01)] {
        let g = TensorFile::open(&fam(f)).unwrap();
        assert_eq!(g.format, TensorFormat::Gguf);
        let (j, t) = by_name(&g, "blk.0.ffn_down.weight");
        assert_eq!(t.shape, vec![64, 64]);
        let v = g.values(j).unwrap();
        let s = g.quant_steps(j).unwrap().unwrap();
        for k in 0..v.len() {
            assert!(
                (w[k] - v[k]).abs() <= tol * s[k] + 1e-6,
                "{f} {k}: {} {} {}",
                w[k],
                v[k],
                s[k]
            );
        }
    }
}

#[test]
fn npy_and_npz() {
    // A hand-written .npy (v1, '<f4', (2, 3)) and the same in Fortran order.
    fn npy(descr: &str, fortran: bool, vals: &[f32]) -> Vec<u8> {
        let mut h = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': (2, 3), }}",
            if fortran { "True" } else { "False" }
        );
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((h.len() as u16).to_le_bytes());
        out.extend(h.as_bytes());
        for v in vals {
            out.extend(v.to_le_bytes());
        }
        out
    }
    let c = npy("<f4", false, &[1., 2., 3., 4., 5., 6.]);
    let f = TensorFile::from_bytes("c.npy", c).unwrap();
    assert_eq!(f.values(0).unwrap(), vec![1., 2., 3., 4., 5., 6.]);
    let fo = npy("<f4", true, &[1., 4., 2., 5., 3., 6.]);
    let f = TensorFile::from_bytes("f.npy", fo).unwrap();
    assert_eq!(f.values(0).unwrap(), vec![1., 2., 3., 4., 5., 6.]);
}

/// xorshift: fixed seed, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn storm(base: &[u8], n: usize, seed: u64) {
    let mut rng = Rng(seed);
    for i in 0..n {
        let mut d = base.to_vec();
        match i % 5 {
            0 => {
                for _ in 0..1 + rng.below(8) {
                    let p = rng.below(d.len());
                    d[p] = rng.next() as u8;
                }
            }
            1 => d.truncate(rng.below(d.len())),
            2 => {
                // header region: most damage matters there
                let lim = d.len().min(4096);
                for _ in 0..1 + rng.below(4) {
                    let p = rng.below(lim);
                    d[p] = [0, 0xff, 0x7f, 0x80, b'9', b'{'][rng.below(6)];
                }
            }
            3 => {
                let p = rng.below(d.len());
                let l = rng.below(64).min(d.len() - p);
                let chunk = d[p..p + l].to_vec();
                let q = rng.below(d.len());
                d.splice(q..q, chunk);
            }
            _ => d = (0..rng.below(512)).map(|_| rng.next() as u8).collect(),
        }
        if let Ok(f) = TensorFile::from_bytes("fuzz", d) {
            for k in 0..f.tensors.len().min(32) {
                let _ = f.values(k);
                let _ = f.quant_steps(k);
            }
        }
    }
}

#[test]
fn readers_never_panic_on_mutations() {
    for (k, f) in [
        "base-a/model.safetensors",
        "a-bf16/pytorch_model.pt",
        "a-int8/model.onnx",
        "a-q4/model.gguf",
        "a-q8/model.gguf",
    ]
    .iter()
    .enumerate()
    {
        let base = std::fs::read(fam(f)).unwrap();
        storm(&base, 2000, 0x9e37_79b9 + k as u64);
    }
}
