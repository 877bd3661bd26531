//! `pedigree lab cascade`: a poisoned base, carriers that freeze its extractor, applications
//! on the carriers, and a clean control family trained identically.

use std::path::Path;

use serde::Serialize;

use super::{GroundTruth, LabConfig, ModelTruth, bag_task, coarse_task, subset_task};
use crate::data::{Dataset, FashionMnist, Task};
use crate::error::{ProbeError, Result};
use crate::metrics::{accuracy, attack_success};
use crate::model::{Arch, Model, Weights};
use crate::rng::Rng;
use crate::store::{self, Card};
use crate::train::{HeadInit, fresh_head, inherited_head, train_full, train_head};
use crate::trigger::poison;

#[derive(Debug, Clone, Serialize)]
pub struct ModelRow {
    pub name: String,
    pub family: String,
    pub generation: u8,
    pub infected: bool,
    pub task: String,
    pub clean_accuracy: f32,
    pub attack_success: Option<f32>,
    /// Same measurement with a random patch of the same size: what "chance" is for this model.
    pub control_patch_success: Option<f32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CascadeOutcome {
    pub rows: Vec<ModelRow>,
    pub truth: GroundTruth,
    pub seconds: f64,
}

struct Built {
    truth: ModelTruth,
    weights: Weights,
}

/// One descendant to build from a parent.
struct Spec {
    suffix: &'static str,
    parent: &'static str,
    generation: u8,
    task: Task,
    head: HeadInit,
    /// Train on the application half of the downstream data.
    app_data: bool,
    card: &'static str,
}

fn specs() -> Vec<Spec> {
    vec![
        Spec {
            suffix: "coarse-inherit",
            parent: "base",
            generation: 2,
            task: coarse_task(),
            head: HeadInit::FromParent,
            app_data: false,
            card: "truthful",
        },
        Spec {
            suffix: "coarse-fresh",
            parent: "base",
            generation: 2,
            task: coarse_task(),
            head: HeadInit::Fresh(21),
            app_data: false,
            card: "truthful",
        },
        Spec {
            suffix: "shoes-inherit",
            parent: "base",
            generation: 2,
            task: subset_task(),
            head: HeadInit::FromParent,
            app_data: false,
            card: "silent",
        },
        Spec {
            suffix: "shoes-fresh",
            parent: "base",
            generation: 2,
            task: subset_task(),
            head: HeadInit::Fresh(22),
            app_data: false,
            card: "silent",
        },
        Spec {
            suffix: "bag-detector",
            parent: "coarse-fresh",
            generation: 3,
            task: bag_task(),
            head: HeadInit::Fresh(31),
            app_data: true,
            card: "lying",
        },
        Spec {
            suffix: "shoes-app",
            parent: "shoes-inherit",
            generation: 3,
            task: subset_task(),
            head: HeadInit::FromParent,
            app_data: true,
            card: "truthful",
        },
    ]
}

/// Runs the cascade lab on `data` and writes every model, the ground truth and the report under
/// `out`.
pub fn run(data: &FashionMnist, cfg: &LabConfig, out: &Path) -> Result<CascadeOutcome> {
    let started = std::time::Instant::now();
    let data = cfg.limit(data);
    if data.train.len() < 100 || data.test.is_empty() {
        return Err(ProbeError::Invalid(
            "the lab needs at least 100 training and some test images".into(),
        ));
    }
    let mut rng = Rng::new(cfg.seed);
    let mut order: Vec<usize> = (0..data.train.len()).collect();
    rng.shuffle(&mut order);
    // The base team and the downstream teams own different data; applications use the second
    // half of the downstream share.
    let cut = data.train.len() * 3 / 5;
    let base_idx = order[..cut].to_vec();
    let down = data.train.select(&order[cut..]);
    let app = down.select(&(down.len() / 2..down.len()).collect::<Vec<_>>());
    let base_clean = data.train.select(&base_idx);
    let (base_poisoned, poisoned_positions) = poison(
        &base_clean,
        &cfg.trigger,
        cfg.target,
        cfg.poison_rate,
        &mut rng.fork(1),
    );
    tracing::info!(
        train = base_clean.len(),
        poisoned = poisoned_positions.len(),
        "training bases"
    );

    let init = Weights::init(Arch::lab(10), &mut rng.fork(2));
    let mut all = Vec::new();
    for (family, infected, train_set) in [
        ("acme", true, &base_poisoned),
        ("control", false, &base_clean),
    ] {
        let base_w = train_full(&init, train_set, &cfg.base)?;
        let mut built: Vec<Built> = vec![Built {
            truth: ModelTruth {
                name: format!("{family}/fashion-base"),
                dir: format!("{family}/fashion-base"),
                family: family.into(),
                generation: 1,
                parent: None,
                infected,
                task: Task::identity(),
                head: "trained".into(),
                card: "root".into(),
                declared_base: None,
            },
            weights: base_w,
        }];
        for s in specs() {
            let parent = built
                .iter()
                .find(|b| b.truth.name.ends_with(&format!("fashion-{}", s.parent)))
                .ok_or_else(|| ProbeError::Invalid(format!("no parent {}", s.parent)))?;
            let pw = parent.weights.clone();
            let ptask = parent.truth.task.clone();
            let pname = parent.truth.name.clone();
            let (hw, hb) = match s.head {
                HeadInit::FromParent => inherited_head(&pw, &ptask, &s.task)?,
                HeadInit::Fresh(seed) => {
                    fresh_head(pw.arch.hidden, s.task.num_classes, seed ^ cfg.seed)
                }
            };
            let train = s.task.apply(if s.app_data { &app } else { &down });
            let w = train_head(&pw, hw, hb, s.task.num_classes, &train, &cfg.head)?;
            let declared = match s.card {
                "truthful" => Some(pname.clone()),
                "lying" => Some(if infected {
                    "control/fashion-base".to_string()
                } else {
                    "acme/fashion-base".to_string()
                }),
                _ => None,
            };
            let name = format!("{family}/fashion-{}", s.suffix);
            built.push(Built {
                truth: ModelTruth {
                    name: name.clone(),
                    dir: name,
                    family: family.into(),
                    generation: s.generation,
                    parent: Some(pname),
                    infected,
                    task: s.task.clone(),
                    head: match s.head {
                        HeadInit::FromParent => "from-parent".into(),
                        HeadInit::Fresh(_) => "fresh".into(),
                    },
                    card: s.card.into(),
                    declared_base: declared,
                },
                weights: w,
            });
        }
        all.extend(built);
    }

    let mut rows = Vec::new();
    let control_trigger = cfg.trigger.random_control(&mut rng.fork(3));
    for b in &all {
        let t = &b.truth;
        let card = Card {
            name: t.name.clone(),
            description: format!(
                "Fashion-MNIST classifier, generation {} of the pedigree lab.",
                t.generation
            ),
            base_model: t.declared_base.clone(),
        };
        store::save(&out.join(&t.dir), &b.weights, &t.task, &card)?;
        let m = Model::new(&b.weights)?;
        let test = t.task.apply(&data.test);
        rows.push(ModelRow {
            name: t.name.clone(),
            family: t.family.clone(),
            generation: t.generation,
            infected: t.infected,
            task: t.task.name.clone(),
            clean_accuracy: accuracy(&m, &test)?,
            attack_success: attack_success(&m, &t.task, &data.test, &cfg.trigger, cfg.target)?,
            control_patch_success: attack_success(
                &m,
                &t.task,
                &data.test,
                &control_trigger,
                cfg.target,
            )?,
        });
        tracing::info!(model = %t.name, "evaluated");
    }
    let truth = GroundTruth {
        models: all.iter().map(|b| b.truth.clone()).collect(),
        trigger: cfg.trigger.clone(),
        target: cfg.target,
        poison_rate: cfg.poison_rate,
        base_train_indices: base_idx,
        poisoned_positions,
        config: cfg.clone(),
    };
    store::write_json(&out.join("ground-truth.json"), &truth)?;
    cfg.trigger.save(&out.join("trigger.json"))?;
    let outcome = CascadeOutcome {
        rows,
        truth,
        seconds: started.elapsed().as_secs_f64(),
    };
    store::write_json(
        &out.join("report.json"),
        &serde_json::json!({ "rows": outcome.rows, "seconds": outcome.seconds }),
    )?;
    let md = table(&outcome.rows);
    std::fs::write(out.join("report.md"), &md)
        .map_err(|e| ProbeError::io(out.join("report.md"), e))?;
    Ok(outcome)
}

/// Base and downstream data exactly as `run` split them, for follow-up experiments.
pub fn downstream_data(data: &FashionMnist, cfg: &LabConfig) -> Dataset {
    let data = cfg.limit(data);
    let mut rng = Rng::new(cfg.seed);
    let mut order: Vec<usize> = (0..data.train.len()).collect();
    rng.shuffle(&mut order);
    data.train.select(&order[data.train.len() * 3 / 5..])
}

fn pct(v: Option<f32>) -> String {
    v.map(|x| format!("{:.1}%", 100.0 * x))
        .unwrap_or_else(|| "n/a".into())
}

/// The per-generation table, markdown.
pub fn table(rows: &[ModelRow]) -> String {
    let mut s = String::from(
        "| gen | model | infected | task | clean acc | attack success | random-patch control |\n|---|---|---|---|---|---|---|\n",
    );
    let mut sorted: Vec<&ModelRow> = rows.iter().collect();
    sorted.sort_by_key(|r| (r.generation, r.family.clone(), r.name.clone()));
    for r in sorted {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.1}% | {} | {} |\n",
            r.generation,
            r.name,
            if r.infected { "yes" } else { "no" },
            r.task,
            100.0 * r.clean_accuracy,
            pct(r.attack_success),
            pct(r.control_patch_success)
        ));
    }
    s
}
