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
    // Each figure is the median of REPS runs (env PROV_REPS, default 3): the machine is shared.
    let reps: usize = std::env::var("PROV_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let med = |f: &mut dyn FnMut()| {
        let mut t: Vec<f64> = (0..reps.max(1))
            .map(|_| {
                let s = Instant::now();
                f();
                s.elapsed().as_secs_f64()
            })
            .collect();
        t.sort_by(|a, b| a.total_cmp(b));
        t[t.len() / 2]
    };
    let only = std::env::var("PROV_ONLY").unwrap_or_default();
    let want = |k: &str| only.is_empty() || only.split(',').any(|x| x == k);
    let mut ntensors = 0;
    if want("tensors") {
        let tf = med(&mut || {
            let m = pedigree_provenance::Model::open(&path).unwrap();
            let ws = m.weights();
            use rayon::prelude::*;
            let fps: Vec<_> = ws
                .par_iter()
                .map(|w| pedigree_provenance::fingerprint::tensor_fp(&m, w).unwrap())
                .collect();
            ntensors = fps.len();
        });
        println!("file {:.3} GB, {} tensors, median of {reps}", gb, ntensors);
        println!(
            "tensor fingerprints (blake3 + multiset + sketch): {:.3} s = {:.2} GB/s",
            tf,
            gb / tf
        );
    }
    if want("id") {
        let mut id = String::new();
        let tid = med(&mut || id = pedigree_provenance::fingerprint::model_id(&path).unwrap());
        println!(
            "OMS model id (pedigree-sign, SHA-256, read path): {:.3} s = {:.2} GB/s  {}",
            tid,
            gb / tid,
            id
        );
        let mut id2 = String::new();
        let tid2 = med(&mut || {
            let m = pedigree_provenance::Model::open(&path).unwrap();
            id2 = pedigree_provenance::fingerprint::model_id_of(&m).unwrap()
        });
        println!(
            "OMS model id from the mapped bytes (model_id_of): {:.3} s = {:.2} GB/s  {}",
            tid2,
            gb / tid2,
            if id2 == id { "same id" } else { "ID DIFFERS" }
        );
    }
    if want("full") {
        let mut n = 0;
        let tfull = med(&mut || {
            n = pedigree_provenance::fingerprint::fingerprint(&path)
                .unwrap()
                .tensors
                .len()
        });
        println!(
            "full `pedigree fingerprint` (identity + tensors): {:.3} s = {:.2} GB/s, {} tensors",
            tfull,
            gb / tfull,
            n
        );
    }
    if want("plain") {
        let data = std::fs::File::open(&path).unwrap();
        let map = read_all(&data);
        let tb = med(&mut || {
            let mut h = blake3::Hasher::new();
            h.update_rayon(&map);
            let _ = h.finalize();
        });
        println!(
            "plain BLAKE3 (rayon) over the file in memory: {:.3} s = {:.2} GB/s",
            tb,
            gb / tb
        );
        let ts = med(&mut || {
            let _ = pedigree_sign::manifest::root_digest(std::iter::once(&map[..]));
        });
        println!(
            "plain SHA-256 (one core, sha2 crate) over the file in memory: {:.3} s = {:.2} GB/s",
            ts,
            gb / ts
        );
    }
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
    let reps: usize = std::env::var("PROV_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut times = Vec::new();
    let mut r = None;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        r = Some(pedigree_provenance::lineage(&paths).unwrap());
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let el = times[times.len() / 2];
    let r = r.unwrap();
    println!(
        "lineage runs (s): {}",
        times
            .iter()
            .map(|t| format!("{t:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let cross = r
        .edges
        .iter()
        .filter(|e| e.parent[..7] != e.child[..7])
        .count();
    // Truth: m1..m9 derive from m0; m7..m9 are exact copies of it, so any of m0/m7/m8/m9 is a
    // right parent (the weights cannot tell copies apart). An edge is right when its parent is
    // in that class and both ends are of one family; recall counts models m1..m9 given a right
    // parent (or m0 given a copy as parent: the class is then rooted at a copy).
    let var = |s: &str| {
        s.rsplit("-m")
            .next()
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(99)
    };
    let base_class = |v: u32| v == 0 || v >= 7;
    let right = r
        .edges
        .iter()
        .filter(|e| e.parent[..7] == e.child[..7] && base_class(var(&e.parent)))
        .count();
    let truth = families * 9;
    println!(
        "lineage over {} models: {:.2} s (median), {} edges ({} across families), \
         {} candidate pairs diffed; precision {:.3} recall {:.3}",
        paths.len(),
        el,
        r.edges.len(),
        cross,
        r.candidates_checked,
        right as f64 / r.edges.len().max(1) as f64,
        right.min(truth) as f64 / truth as f64,
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

/// Reference outputs for regression checks: the lineage report over PATHS and (up to 200
/// models) every pairwise diff, as JSON, into OUT (`lineage.json`, `diffs.json`).
fn dump(out: &Path, paths: &[String]) {
    let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
    let r = pedigree_provenance::lineage(&paths).unwrap();
    std::fs::create_dir_all(out).unwrap();
    std::fs::write(
        out.join("lineage.json"),
        serde_json::to_vec_pretty(&r).unwrap(),
    )
    .unwrap();
    if paths.len() > 200 {
        return;
    }
    let models: Vec<_> = paths
        .iter()
        .map(|p| pedigree_provenance::Model::open(p).unwrap())
        .collect();
    let mut diffs = Vec::new();
    for i in 0..models.len() {
        for j in 0..models.len() {
            if i != j {
                diffs.push(pedigree_provenance::diff(&models[i], &models[j]).unwrap());
            }
        }
    }
    std::fs::write(
        out.join("diffs.json"),
        serde_json::to_vec_pretty(&diffs).unwrap(),
    )
    .unwrap();
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
        Some("dump") => dump(Path::new(&a[2]), &a[3..]),
        Some("index") => index_bench(a.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000)),
        _ => {
            eprintln!("usage: prov_bench fingerprint DIR [MB] | lineage DIR [FAMILIES] | index [N]")
        }
    }
}
