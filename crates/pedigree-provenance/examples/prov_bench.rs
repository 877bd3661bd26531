//! Provenance benchmarks (see bench/provenance/README.md):
//!   prov_bench fingerprint DIR [MB]   fingerprint a >= 1 GB safetensors vs plain SHA-256 / BLAKE3
//!   prov_bench lineage DIR [FAMILIES] lineage over FAMILIES x 10 generated models
//!   prov_bench index [N]              one index query among N fingerprints' keys
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use pedigree_provenance::fingerprint::mix64;
use pedigree_provenance::index::{Index, Keys};

fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let mut header = serde_json::Map::new();
    let mut off = 0usize;
    for (n, s, v) in tensors {
        header.insert(n.clone(), serde_json::json!({"dtype": "F32", "shape": s, "data_offsets": [off, off + v.len() * 4]}));
        off += v.len() * 4;
    }
    let h = serde_json::to_vec(&header).unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(&(h.len() as u64).to_le_bytes()).unwrap();
    f.write_all(&h).unwrap();
    for (_, _, v) in tensors {
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        f.write_all(&b).unwrap();
    }
}

fn noise(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            (((mix64(seed ^ (i as u64).wrapping_mul(0x9e37)) >> 40) as f32 / (1u64 << 24) as f32)
                - 0.5)
                * scale
        })
        .collect()
}

fn fingerprint_bench(dir: &Path, mb: usize) {
    let path = dir.join("big.safetensors");
    if !path.exists() {
        let per = 16 << 20; // 16M f32 = 64 MB per tensor
        let n = (mb << 20) / (per * 4);
        let t: Vec<_> = (0..n)
            .map(|i| {
                (
                    format!("layer.{i}.weight"),
                    vec![4096, 4096],
                    noise(i as u64, per, 0.1),
                )
            })
            .collect();
        write_safetensors(&path, &t);
    }
    let size = std::fs::metadata(&path).unwrap().len() as f64;
    let gb = size / 1e9;
    // Warm the page cache so every run measures hashing, not the disk.
    let _ = std::fs::read(&path).map(|b| b.len());
    let t = Instant::now();
    let m = pedigree_provenance::Model::open(&path).unwrap();
    let ws = m.weights();
    use rayon::prelude::*;
    let fps: Vec<_> = ws
        .par_iter()
        .map(|w| pedigree_provenance::fingerprint::tensor_fp(&m, w).unwrap())
        .collect();
    let tf = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let id = pedigree_provenance::fingerprint::model_id(&path).unwrap();
    let tid = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let full = pedigree_provenance::fingerprint::fingerprint(&path).unwrap();
    let tfull = t.elapsed().as_secs_f64();
    let data = std::fs::File::open(&path).unwrap();
    let map = read_all(&data);
    let t = Instant::now();
    let mut h = blake3::Hasher::new();
    h.update_rayon(&map);
    let _ = h.finalize();
    let tb = t.elapsed().as_secs_f64();
    println!("file {:.3} GB, {} tensors", gb, fps.len());
    println!(
        "tensor fingerprints (blake3 + multiset + sketch): {:.3} s = {:.2} GB/s",
        tf,
        gb / tf
    );
    println!(
        "OMS model id (pedigree-sign, SHA-256): {:.3} s = {:.2} GB/s  {}",
        tid,
        gb / tid,
        id
    );
    println!(
        "full `pedigree fingerprint` (both): {:.3} s = {:.2} GB/s, {} tensors",
        tfull,
        gb / tfull,
        full.tensors.len()
    );
    println!(
        "plain BLAKE3 (rayon) over the file: {:.3} s = {:.2} GB/s",
        tb,
        gb / tb
    );
}

fn read_all(f: &std::fs::File) -> Vec<u8> {
    let mut v = Vec::new();
    use std::io::Read;
    let mut f = f;
    f.read_to_end(&mut v).unwrap();
    v
}

fn lineage_bench(dir: &Path, families: usize) {
    // Each family: a base, f16-rounded cast, 3 partial fine-tunes (perturbed upper layers),
    // a new head, an edit, 3 copies; 10 models of ~70k parameters, all safetensors.
    let mut paths: Vec<PathBuf> = Vec::new();
    for f in 0..families {
        let base: Vec<(String, Vec<usize>, Vec<f32>)> = (0..4)
            .map(|l| {
                (
                    format!("l{l}.weight"),
                    vec![128, 128],
                    noise((f * 10 + l) as u64 + 1, 128 * 128, 0.2),
                )
            })
            .collect();
        for v in 0..10 {
            let mut t = base.clone();
            match v {
                1 => t.iter_mut().for_each(|x| {
                    x.2.iter_mut()
                        .for_each(|y| *y = pedigree_formats::tensors::round_to_f16(*y))
                }),
                2..=4 => {
                    let d = noise((f * 1000 + v) as u64, 128 * 128, 0.02);
                    t[3].2.iter_mut().zip(&d).for_each(|(a, b)| *a += b);
                    t[2].2.iter_mut().zip(&d).for_each(|(a, b)| *a -= b);
                }
                5 => {
                    t[3] = (
                        "head.weight".into(),
                        vec![10, 128],
                        noise((f * 77) as u64, 1280, 0.2),
                    )
                }
                6 => {
                    let (u, w) = (noise(f as u64 * 3, 128, 1.0), noise(f as u64 * 5, 128, 1.0));
                    for i in 0..128 {
                        for j in 0..128 {
                            t[1].2[i * 128 + j] += 0.5 * u[i] * w[j];
                        }
                    }
                }
                _ => {}
            }
            let d = dir.join(format!("fam{f:04}-m{v}"));
            std::fs::create_dir_all(&d).unwrap();
            let p = d.join("model.safetensors");
            if !p.exists() {
                write_safetensors(&p, &t);
            }
            paths.push(d);
        }
    }
    let t = Instant::now();
    let r = pedigree_provenance::lineage(&paths).unwrap();
    let el = t.elapsed().as_secs_f64();
    let cross = r
        .edges
        .iter()
        .filter(|e| e.parent[..7] != e.child[..7])
        .count();
    println!(
        "lineage over {} models: {:.2} s, {} edges ({} across families), {} candidate pairs diffed",
        paths.len(),
        el,
        r.edges.len(),
        cross,
        r.candidates_checked
    );
}

fn index_bench(n: usize) {
    let mk = |m: u64| {
        let mut k = Keys::default();
        for t in 0..8u64 {
            k.add_tensor(
                mix64(m * 31 + t),
                mix64(m * 37 + t),
                None,
                &[4096, 4096],
                mix64(m * 41 + t),
                1 << 24,
            );
        }
        k
    };
    let t = Instant::now();
    let mut idx = Index::default();
    for m in 0..n as u64 {
        idx.insert(m as u32, &mk(m));
    }
    let build = t.elapsed().as_secs_f64();
    let q = mk(n as u64 / 2);
    let t = Instant::now();
    let reps = 1000;
    let mut hits = 0;
    for _ in 0..reps {
        hits += idx.query(&q).len();
    }
    let per = t.elapsed().as_secs_f64() / reps as f64;
    println!(
        "index of {n} fingerprints built in {build:.2} s; one query {:.3} ms ({} hit(s))",
        per * 1e3,
        hits / reps
    );
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    match a.get(1).map(String::as_str) {
        Some("fingerprint") => fingerprint_bench(
            Path::new(&a[2]),
            a.get(3).and_then(|s| s.parse().ok()).unwrap_or(1088),
        ),
        Some("lineage") => lineage_bench(
            Path::new(&a[2]),
            a.get(3).and_then(|s| s.parse().ok()).unwrap_or(100),
        ),
        Some("index") => index_bench(a.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000)),
        _ => {
            eprintln!("usage: prov_bench fingerprint DIR [MB] | lineage DIR [FAMILIES] | index [N]")
        }
    }
}
