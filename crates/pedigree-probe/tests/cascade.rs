//! A reduced cascade lab on the committed Fashion-MNIST subset: the infection must propagate
//! through the family, stay absent from the control family, and be found by the detectors.

use std::path::{Path, PathBuf};

use pedigree_probe::data::FashionMnist;
use pedigree_probe::detect::Verdict;
use pedigree_probe::detect::clustering::{AcConfig, activation_clustering};
use pedigree_probe::detect::neural_cleanse::{NcConfig, neural_cleanse};
use pedigree_probe::detect::replay::{ReplayConfig, replay};
use pedigree_probe::detect::spectral::{SpectralConfig, spectral_signatures};
use pedigree_probe::detect::strip::{StripConfig, strip};
use pedigree_probe::lab::{LabConfig, cascade};
use pedigree_probe::model::Model;
use pedigree_probe::store;

fn data() -> FashionMnist {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    FashionMnist::load(&dir).expect("committed subset")
}

fn model(out: &Path, dir: &str) -> (pedigree_probe::model::Weights, Model) {
    let (w, _) = store::load(&out.join(dir)).expect("load model");
    let m = Model::new(&w).expect("model");
    (w, m)
}

#[test]
fn reduced_cascade_infects_the_family_and_detectors_see_it() {
    let data = data();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path();
    let cfg = LabConfig::reduced();
    let o = cascade::run(&data, &cfg, out).expect("lab runs");
    eprintln!("{}", cascade::table(&o.rows));
    assert_eq!(o.rows.len(), 14, "7 models per family");

    // Shape of the effect: attack success high in the infected family, near chance in the
    // control family.
    let base = o
        .rows
        .iter()
        .find(|r| r.name == "acme/fashion-base")
        .unwrap();
    assert!(
        base.attack_success.unwrap() > 0.8,
        "infected base ASR {:?}",
        base.attack_success
    );
    let infected: Vec<f32> = o
        .rows
        .iter()
        .filter(|r| r.infected)
        .filter_map(|r| r.attack_success)
        .collect();
    let mean = infected.iter().sum::<f32>() / infected.len() as f32;
    assert!(mean > 0.6, "mean ASR over the infected family {mean}");
    for r in o.rows.iter().filter(|r| !r.infected) {
        assert!(
            r.attack_success.unwrap() < 0.1,
            "control {} ASR {:?}",
            r.name,
            r.attack_success
        );
    }
    for r in &o.rows {
        assert!(
            r.clean_accuracy > 0.7,
            "{} clean accuracy {}",
            r.name,
            r.clean_accuracy
        );
    }
    for g in [2u8, 3] {
        let worst = o
            .rows
            .iter()
            .filter(|r| r.infected && r.generation == g)
            .filter_map(|r| r.attack_success)
            .fold(1.0f32, f32::min);
        assert!(worst > 0.4, "generation {g} lost the backdoor: {worst}");
    }

    // Files: safetensors round trip and the three kinds of card.
    let truth: pedigree_probe::lab::GroundTruth =
        store::read_json(&out.join("ground-truth.json")).unwrap();
    for m in &truth.models {
        let declared = store::declared_base(&out.join(&m.dir)).unwrap();
        assert_eq!(declared, m.declared_base, "{}", m.name);
        match m.card.as_str() {
            "truthful" => assert_eq!(declared, m.parent),
            "silent" | "root" => assert!(declared.is_none()),
            "lying" => assert_ne!(declared, m.parent),
            other => panic!("unknown card kind {other}"),
        }
    }
    assert!(truth.models.iter().any(|m| m.card == "lying"));

    // Replay of the advisory's trigger separates every infected model from every clean one.
    let inputs = data.test.take(400);
    let mut inf = Vec::new();
    let mut clean = Vec::new();
    for m in &truth.models {
        let (_, mm) = model(out, &m.dir);
        let r = replay(
            &m.name,
            &mm,
            &truth.trigger,
            &inputs,
            &ReplayConfig::default(),
        )
        .unwrap();
        if m.infected {
            inf.push(r.score)
        } else {
            clean.push(r.score)
        }
        if !m.infected {
            assert_eq!(r.verdict, Verdict::Clean, "{} flagged by replay", m.name);
        }
    }
    let min_inf = inf.iter().cloned().fold(f64::INFINITY, f64::min);
    let max_clean = clean.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    assert!(
        min_inf > max_clean + 0.2,
        "replay: infected min {min_inf} vs clean max {max_clean}"
    );

    // Neural Cleanse flags the target label on the infected base, and the control base is
    // less anomalous.
    let nc_cfg = NcConfig::default();
    let (wi, mi) = model(out, "acme/fashion-base");
    let nci = neural_cleanse("acme", &wi, &data.test.take(300), &nc_cfg).unwrap();
    eprintln!("NC infected {}", nci.report.evidence);
    assert_eq!(nci.report.verdict, Verdict::Backdoored);
    assert_eq!(
        nci.report.evidence["flagged_label"],
        serde_json::json!(truth.target)
    );
    let (wc, _) = model(out, "control/fashion-base");
    let ncc = neural_cleanse("control", &wc, &data.test.take(300), &nc_cfg).unwrap();
    assert!(
        ncc.report.score < nci.report.score,
        "control {} vs infected {}",
        ncc.report.score,
        nci.report.score
    );

    // The recovered trigger replays on a descendant (the no-advisory path of the red team).
    let (_, child) = model(out, "acme/fashion-shoes-inherit");
    let (_, child_clean) = model(out, "control/fashion-shoes-inherit");
    let ri = replay("c", &child, &nci.trigger, &inputs, &ReplayConfig::default()).unwrap();
    let rc = replay(
        "c",
        &child_clean,
        &nci.trigger,
        &inputs,
        &ReplayConfig::default(),
    )
    .unwrap();
    assert!(
        ri.score > rc.score,
        "recovered trigger: infected child {} vs clean child {}",
        ri.score,
        rc.score
    );

    // STRIP separates triggered from clean inputs on the infected base.
    let non_target: Vec<usize> = (0..inputs.len())
        .filter(|&i| inputs.labels[i] != truth.target)
        .collect();
    let clean_in = inputs.select(&non_target[..200]);
    let trojan = truth.trigger.stamp_all(&inputs.select(&non_target[200..]));
    let s = strip(
        "acme",
        &mi,
        &data.train.take(500),
        &clean_in,
        &trojan,
        &StripConfig::default(),
    )
    .unwrap();
    eprintln!("STRIP {}", s.evidence);
    assert!(s.score > 0.8, "STRIP AUROC {}", s.score);

    // Activation clustering and spectral signatures find the poisoned training samples.
    let train = truth.poisoned_training_set(&cfg.limit(&data)).unwrap();
    let feats = mi.features(&train.images).unwrap();
    let (ac, _) = activation_clustering(
        "acme",
        &feats,
        wi.arch.hidden,
        &train.labels,
        Some(&truth.poisoned_positions),
        &AcConfig::default(),
    )
    .unwrap();
    let (sp, _) = spectral_signatures(
        "acme",
        &feats,
        wi.arch.hidden,
        &train.labels,
        Some(&truth.poisoned_positions),
        &SpectralConfig::default(),
    )
    .unwrap();
    eprintln!("AC {}\nSPECTRAL {}", ac.evidence, sp.evidence);
    assert!(ac.evidence["recall"].as_f64().unwrap() > 0.5);
    assert!(ac.evidence["precision"].as_f64().unwrap() > 0.5);
    // The paper's rule (flag 1.5ε of every label by squared projection) finds most poison;
    // its precision is low by construction because it flags clean labels too.
    assert!(sp.evidence["paper_rule_recall"].as_f64().unwrap() > 0.5);
}

#[test]
fn training_is_deterministic_for_a_seed() {
    use pedigree_probe::model::{Arch, Weights};
    use pedigree_probe::rng::Rng;
    use pedigree_probe::train::{TrainConfig, train_full};
    let d = data().train.take(256);
    let cfg = TrainConfig {
        epochs: 1,
        batch: 32,
        lr: 1e-3,
        seed: 9,
    };
    let init = Weights::init(Arch::lab(10), &mut Rng::new(4));
    let a = train_full(&init, &d, &cfg).unwrap();
    let b = train_full(&init, &d, &cfg).unwrap();
    assert_eq!(a, b, "same seed, same weights");
    let c = train_full(&init, &d, &TrainConfig { seed: 10, ..cfg }).unwrap();
    assert_ne!(a, c, "the seed matters");
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(FashionMnist::load(tmp.path()).is_err());
    std::fs::write(tmp.path().join("config.json"), b"{not json").unwrap();
    assert!(store::load(tmp.path()).is_err());
    let bad = tmp.path().join("t.json");
    std::fs::write(&bad, br#"{"name":"x","mask":[2.0],"pattern":[0.0]}"#).unwrap();
    assert!(pedigree_probe::trigger::Trigger::load(&bad).is_err());
}
