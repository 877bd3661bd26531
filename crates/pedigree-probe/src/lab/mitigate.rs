//! The mitigations table: what the usual "clean it up downstream" defences do to the infected
//! base. Head-only fine-tuning leaves the extractor (and the backdoor) untouched; full
//! fine-tuning and fine-pruning change the extractor itself.

use serde::Serialize;

use super::LabConfig;
use crate::data::{Dataset, Task};
use crate::error::Result;
use crate::metrics::{accuracy, attack_success};
use crate::model::{Model, Weights};
use crate::train::{fine_prune, inherited_head, train_full, train_head};

#[derive(Debug, Clone, Serialize)]
pub struct MitigationRow {
    pub mitigation: String,
    pub clean_accuracy: f32,
    pub attack_success: f32,
    pub detail: String,
}

/// `clean` is data the defender trusts (the downstream share of the lab), `test` the test split.
pub fn run(
    base: &Weights,
    clean: &Dataset,
    test: &Dataset,
    cfg: &LabConfig,
) -> Result<Vec<MitigationRow>> {
    let task = Task::identity();
    let eval = |w: &Weights, name: &str, detail: String| -> Result<MitigationRow> {
        let m = Model::new(w)?;
        Ok(MitigationRow {
            mitigation: name.into(),
            clean_accuracy: accuracy(&m, test)?,
            attack_success: attack_success(&m, &task, test, &cfg.trigger, cfg.target)?
                .unwrap_or(0.0),
            detail,
        })
    };
    let mut rows = vec![eval(base, "none (infected base)", String::new())?];

    let (hw, hb) = inherited_head(base, &task, &task)?;
    let head = train_head(base, hw, hb, 10, clean, &cfg.head)?;
    rows.push(eval(
        &head,
        "head-only fine-tuning",
        format!(
            "{} epochs on {} clean samples",
            cfg.head.epochs,
            clean.len()
        ),
    )?);

    let full = train_full(base, clean, &cfg.finetune)?;
    rows.push(eval(
        &full,
        "full fine-tuning",
        format!("{} epochs, lr {}", cfg.finetune.epochs, cfg.finetune.lr),
    )?);

    // Validation for the pruning stop rule: a slice of the trusted data, not the test set.
    let val = clean.take(clean.len().min(1000));
    let pruned = fine_prune(base, clean, &val, 0.04, &cfg.finetune)?;
    rows.push(eval(
        &pruned.weights,
        "fine-pruning",
        format!(
            "pruned {} of {} last-conv channels, then full fine-tuning",
            pruned.pruned_channels.len(),
            base.arch.conv2
        ),
    )?);
    Ok(rows)
}

pub fn table(rows: &[MitigationRow]) -> String {
    let mut s =
        String::from("| mitigation | clean acc | attack success | detail |\n|---|---|---|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {:.1}% | {:.1}% | {} |\n",
            r.mitigation,
            100.0 * r.clean_accuracy,
            100.0 * r.attack_success,
            r.detail
        ));
    }
    s
}
