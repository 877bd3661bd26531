//! The fast paths give the answers of the plain ones: the identity hashed from the bytes the
//! readers hold equals pedigree-sign's (directories with cards, small and memory-mapped
//! files), the lineage diff that defers delta spectra reaches the same relations, and the
//! tensor digests do not depend on the path taken.

use std::io::Write;
use std::path::{Path, PathBuf};

use pedigree_provenance::diff::{Loaded, PairCache, Spectra, diff_loaded, diff_loaded_cached};
use pedigree_provenance::fingerprint::{self, mix64, model_id, model_id_of};
use pedigree_provenance::{Model, lineage};

fn families() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/lineage/families")
}

fn all_models() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(families())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn write_safetensors(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
    let mut header = serde_json::Map::new();
    let mut off = 0usize;
    for (n, s, v) in tensors {
        header.insert(
            n.to_string(),
            serde_json::json!({"dtype": "F32", "shape": s, "data_offsets": [off, off + v.len() * 4]}),
        );
        off += v.len() * 4;
    }
    let h = serde_json::to_vec(&header).unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(&(h.len() as u64).to_le_bytes()).unwrap();
    f.write_all(&h).unwrap();
    for (_, _, v) in tensors {
        for x in v {
            f.write_all(&x.to_le_bytes()).unwrap();
        }
    }
}

fn noise(seed: u64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((mix64(seed ^ (i as u64) << 20) >> 40) as f32 / (1u64 << 24) as f32) - 0.5)
        .collect()
}

#[test]
fn identity_from_held_bytes_equals_pedigree_sign() {
    // every test family: directories with a card next to safetensors / gguf / onnx / torch
    for m in all_models() {
        let model = Model::open(&m).unwrap();
        assert_eq!(
            model_id_of(&model).unwrap(),
            model_id(&m).unwrap(),
            "{}",
            m.display()
        );
    }
    // a memory-mapped file (over the 16 MB read-in limit) with a card and a nested file
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("big-model");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    write_safetensors(
        &d.join("model.safetensors"),
        &[("w", vec![2048, 2100], noise(7, 2048 * 2100))],
    );
    std::fs::write(d.join("README.md"), "---\nbase_model: someone/base\n---\n").unwrap();
    std::fs::write(d.join("sub/tokenizer.json"), "{}").unwrap();
    let model = Model::open(&d).unwrap();
    assert!(model.files[0].is_mapped());
    assert_eq!(model_id_of(&model).unwrap(), model_id(&d).unwrap());
    // a single file, and the full fingerprint of it
    let f = d.join("model.safetensors");
    let fp = fingerprint::fingerprint(&f).unwrap();
    assert_eq!(fp.model_id, model_id(&f).unwrap());
    assert_eq!(fp.tensors.len(), 1);
    // the zero-copy digest equals the digest of the decoded values
    let m = Model::open(&f).unwrap();
    let w = &m.weights()[0];
    let vals = m.values(w).unwrap();
    let bytes: Vec<u8> = vals.iter().flat_map(|x| x.to_le_bytes()).collect();
    assert_eq!(
        fp.tensors[0].digest,
        blake3::hash(&bytes).to_hex().to_string()
    );
    let ms = fingerprint::multiset_hash(vals.iter().map(|x| x.to_bits()));
    assert_eq!(fp.tensors[0].multiset, format!("{ms:016x}"));
    // and the simhash the index uses equals the sketch's
    let sample: Vec<f32> = fingerprint::sample_positions(vals.len())
        .map(|i| vals[i])
        .collect();
    assert_eq!(
        format!("{:016x}", fingerprint::simhash_of(&vals, &sample)),
        fingerprint::sketch(&vals).simhash
    );
}

#[test]
fn deferred_spectra_and_cache_keep_every_relation() {
    let models: Vec<Model> = all_models()
        .iter()
        .map(|p| Model::open(p).unwrap())
        .collect();
    let loaded: Vec<Loaded> = models.iter().map(|m| Loaded::load(m).unwrap()).collect();
    let cache = PairCache::default();
    for a in &loaded {
        for b in &loaded {
            let full = diff_loaded(a, b);
            let lazy = diff_loaded_cached(a, b, Spectra::AsNeeded, &cache);
            assert_eq!(full.relation, lazy.relation, "{} vs {}", a.name, b.name);
            assert_eq!(full.direction, lazy.direction, "{} vs {}", a.name, b.name);
            assert_eq!(
                serde_json::to_value(&full.evidence).unwrap(),
                serde_json::to_value(&lazy.evidence).unwrap(),
                "{} vs {}",
                a.name,
                b.name
            );
            // cached results are the computed ones
            let again = diff_loaded_cached(a, b, Spectra::All, &cache);
            assert_eq!(
                serde_json::to_value(&full).unwrap(),
                serde_json::to_value(&again).unwrap()
            );
        }
    }
}

#[test]
fn lineage_of_copies_edits_and_finetunes_at_scale() {
    // A reduced version of the bench families (bench/provenance): per family a base, three
    // exact copies, two fine-tunes of the top layers, a rank-one edit and a new head. Every
    // edge stays inside its family, has the expected relation and points from the base (or
    // one of its copies) to the derived model.
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for f in 0..6u64 {
        let base: Vec<(&str, Vec<usize>, Vec<f32>)> = ["l0", "l1", "l2", "l3"]
            .iter()
            .enumerate()
            .map(|(l, n)| {
                // trained weights have heavier tails than a fresh head's uniform init
                let w = noise(f * 10 + l as u64 + 1, 48 * 48);
                (
                    *n,
                    vec![48, 48],
                    w.iter().map(|x| 8.0 * x * x * x).collect(),
                )
            })
            .collect();
        for v in 0..8u64 {
            let mut t = base.clone();
            match v {
                1 | 2 => {
                    let d = noise(f * 1000 + v, 48 * 48);
                    t[3].2.iter_mut().zip(&d).for_each(|(a, b)| *a += 0.1 * b);
                    t[2].2.iter_mut().zip(&d).for_each(|(a, b)| *a -= 0.1 * b);
                }
                3 => {
                    let (u, w) = (noise(f * 3 + 100, 48), noise(f * 5 + 200, 48));
                    for i in 0..48 {
                        for j in 0..48 {
                            t[1].2[i * 48 + j] += 2.0 * u[i] * w[j];
                        }
                    }
                }
                4 => t[3] = ("head", vec![10, 48], noise(f * 77 + 300, 480)),
                _ => {}
            }
            let d = dir.path().join(format!("fam{f}-m{v}"));
            std::fs::create_dir_all(&d).unwrap();
            write_safetensors(&d.join("model.safetensors"), &t);
            paths.push(d);
        }
    }
    let r = lineage(&paths).unwrap();
    assert_eq!(r.edges.len(), 6 * 7, "{}", r.to_text());
    for e in &r.edges {
        let fam = |s: &str| s.split('-').next().unwrap().to_string();
        assert_eq!(fam(&e.parent), fam(&e.child), "{}", r.to_text());
        let var = |s: &str| s.rsplit("-m").next().unwrap().parse::<u32>().unwrap();
        let want = match var(&e.child) {
            1 | 2 => "finetune",
            3 => "edit",
            4 => "head-only",
            _ => "identical", // byte-identical files: one identity
        };
        if var(&e.child) != 0 {
            assert_eq!(e.relation.label(), want, "{}", r.to_text());
        }
        assert!([0, 5, 6, 7].contains(&var(&e.parent)), "{}", r.to_text());
    }
}
