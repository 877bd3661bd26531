//! Runs the cascade lab (reduced on the committed subset, or full with a data dir) and
//! Neural Cleanse + replay on the result, printing tables. Used while tuning the lab.
//!
//! cargo run --release -p pedigree-probe --example lab_smoke -- [reduced|full] [DATA_DIR]
use std::path::PathBuf;

use pedigree_probe::data::{DEBIAN_DIR, FashionMnist};
use pedigree_probe::detect::neural_cleanse::{NcConfig, neural_cleanse};
use pedigree_probe::detect::replay::{ReplayConfig, replay};
use pedigree_probe::lab::{LabConfig, cascade};
use pedigree_probe::model::Model;
use pedigree_probe::store;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let full = args.get(1).map(|s| s == "full").unwrap_or(false);
    let dir = args.get(2).map(PathBuf::from).unwrap_or_else(|| {
        if full {
            PathBuf::from(DEBIAN_DIR)
        } else {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
        }
    });
    let data = FashionMnist::load(&dir)?;
    if args.get(1).map(|s| s == "nc").unwrap_or(false) {
        let out = std::env::temp_dir().join("pedigree-lab-smoke");
        for (steps, es, pat) in [(240, 8, 3), (240, 5, 2), (240, 4, 1), (360, 5, 2)] {
            for fam in ["acme", "control"] {
                let (w, _) = store::load(&out.join(format!("{fam}/fashion-base")))?;
                let cfg = NcConfig {
                    steps,
                    epoch_steps: es,
                    patience: pat,
                    ..NcConfig::default()
                };
                let nc = neural_cleanse(fam, &w, &data.test.take(300), &cfg)?;
                let l1: Vec<String> = nc.labels.iter().map(|l| format!("{:.0}", l.l1)).collect();
                println!(
                    "{steps}/{es}/{pat} {fam}: {:.1}s score {:.2} label {} l1 {}",
                    nc.report.evidence["seconds"].as_f64().unwrap_or(0.0),
                    nc.report.score,
                    nc.report.evidence["most_anomalous_label"],
                    l1.join(",")
                );
            }
        }
        return Ok(());
    }
    let cfg = if full {
        LabConfig::default()
    } else {
        LabConfig::reduced()
    };
    let out = std::env::temp_dir().join("pedigree-lab-smoke");
    let o = cascade::run(&data, &cfg, &out)?;
    println!("{}", cascade::table(&o.rows));
    println!("lab seconds {:.1}", o.seconds);
    for m in &o.truth.models {
        let (w, _) = store::load(&out.join(&m.dir))?;
        let r = replay(
            &m.name,
            &Model::new(&w)?,
            &o.truth.trigger,
            &data.test.take(500),
            &ReplayConfig::default(),
        )?;
        println!(
            "replay {} infected={} score={:.3} {:?}",
            m.name, m.infected, r.score, r.verdict
        );
    }
    for fam in ["acme", "control"] {
        let (w, _) = store::load(&out.join(format!("{fam}/fashion-base")))?;
        let t = std::time::Instant::now();
        let nc = neural_cleanse(fam, &w, &data.test.take(300), &NcConfig::default())?;
        println!(
            "NC {fam}: {:.1}s score {:.2} {}",
            t.elapsed().as_secs_f64(),
            nc.report.score,
            nc.report.evidence["labels"]
        );
    }
    Ok(())
}
