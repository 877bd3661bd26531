//! `pedigree lab …` and `pedigree probe …`: CLI glue over `pedigree-probe`.
//!
//! `lab cascade` trains a poisoned family and a clean control family and reports clean accuracy
//! and attack success per generation, plus the mitigations table; `lab population` scores the
//! detectors TrojAI-style. `probe …` runs one detector and prints JSON (`score`, `verdict`,
//! `evidence`) or a table. Probe exit codes: 0 = nothing flagged, 1 = a model flagged as
//! backdoored.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use pedigree_probe::data::{DEBIAN_DIR, Dataset, FashionMnist};
use pedigree_probe::detect::Report;
use pedigree_probe::detect::clustering::{AcConfig, activation_clustering};
use pedigree_probe::detect::neural_cleanse::{NcConfig, calibrate, neural_cleanse};
use pedigree_probe::detect::replay::{ReplayConfig, replay};
use pedigree_probe::detect::spectral::{SpectralConfig, spectral_signatures};
use pedigree_probe::detect::strip::{StripConfig, strip};
use pedigree_probe::lab::{GroundTruth, LabConfig, cascade, mitigate, population};
use pedigree_probe::model::Model;
use pedigree_probe::trigger::Trigger;
use pedigree_probe::{npy, store};

#[derive(Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(clap::Args)]
pub struct DataArg {
    /// Fashion-MNIST IDX directory (Debian's `dataset-fashion-mnist`).
    #[arg(long, default_value = DEBIAN_DIR)]
    pub data: PathBuf,
}

#[derive(clap::Subcommand)]
pub enum LabCommand {
    /// Train an infected family (base, carriers, applications) and a clean control family.
    Cascade(CascadeArgs),
    /// Train a population of clean and infected models and score every detector on it.
    Population(PopulationArgs),
    /// Push a lab's families to a running registry, optionally deploy the applications and
    /// flag the infected base, and compare the registry's cascade with the ground truth.
    Push(crate::cmd_lab_push::LabPushArgs),
}

#[derive(clap::Args)]
pub struct CascadeArgs {
    /// Output directory: one sub-directory per model, ground-truth.json, report.{json,md}.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub data: DataArg,
    /// The small configuration the tests use (2,000 training images).
    #[arg(long)]
    pub reduced: bool,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Skip the mitigations table.
    #[arg(long)]
    pub no_mitigations: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(clap::Args)]
pub struct PopulationArgs {
    /// Number of models (half infected).
    #[arg(long, default_value_t = 20)]
    pub n: usize,
    /// Where to write the models and population.{json,md} (optional).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArg,
    /// Training images per model.
    #[arg(long, default_value_t = 10000)]
    pub train_size: usize,
    /// Neural Cleanse restarts and optimisation steps per model.
    #[arg(long, default_value_t = 3)]
    pub restarts: usize,
    #[arg(long, default_value_t = 240)]
    pub steps: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(clap::Subcommand)]
pub enum ProbeCommand {
    /// Replay a trigger on every model of a family, against a random-patch control.
    Replay(ReplayArgs),
    /// Reverse-engineer a trigger per label and flag the anomalous label.
    NeuralCleanse(NcArgs),
    /// STRIP: entropy of superimposed inputs, clean vs triggered.
    Strip(StripArgs),
    /// Activation Clustering on the lab base's (poisoned) training set.
    ActivationClustering(TrainSetArgs),
    /// Spectral Signatures on the lab base's (poisoned) training set.
    Spectral(TrainSetArgs),
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Model directories, or directories searched recursively for them (a lab output).
    #[arg(required = true)]
    pub models: Vec<PathBuf>,
    /// Trigger JSON (`trigger.json` of a lab, or `--save-trigger` of neural-cleanse).
    #[arg(long)]
    pub trigger: PathBuf,
    #[command(flatten)]
    pub data: DataArg,
    #[arg(long, default_value_t = 1000)]
    pub inputs: usize,
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f64,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(clap::Args)]
pub struct NcArgs {
    /// Model directories (or directories searched recursively).
    #[arg(required = true)]
    pub models: Vec<PathBuf>,
    #[command(flatten)]
    pub data: DataArg,
    #[arg(long, default_value_t = 3)]
    pub restarts: usize,
    #[arg(long, default_value_t = 240)]
    pub steps: usize,
    #[arg(long, default_value_t = 11)]
    pub seed: u64,
    /// Write the recovered trigger of the (single) model here, for `probe replay`.
    #[arg(long)]
    pub save_trigger: Option<PathBuf>,
    /// Clean models of the same task (at least 3; directories searched recursively), e.g. a
    /// lab's control family: each label's mask is judged against its median over them, so a
    /// label that is easy in every model is not mistaken for a trigger. A probed model that is
    /// also a reference is left out of its own reference.
    #[arg(long, num_args = 1..)]
    pub reference: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(clap::Args)]
pub struct StripArgs {
    pub model: PathBuf,
    /// The trigger used to make the suspect inputs.
    #[arg(long)]
    pub trigger: PathBuf,
    /// Label the trigger targets in this model (its inputs are left out of the test).
    #[arg(long)]
    pub target: Option<u8>,
    #[command(flatten)]
    pub data: DataArg,
    #[arg(long, default_value_t = 500)]
    pub inputs: usize,
    #[arg(long, default_value_t = 20)]
    pub overlays: usize,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(clap::Args)]
pub struct TrainSetArgs {
    /// A `lab cascade` output directory (its ground truth rebuilds the poisoned training set).
    #[arg(long)]
    pub lab: PathBuf,
    /// Model to inspect (default: the lab's infected base).
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArg,
    /// Also write activations.npy, labels.npy and is_poison.npy here (for ART).
    #[arg(long)]
    pub export_npy: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

fn load_data(a: &DataArg) -> anyhow::Result<FashionMnist> {
    FashionMnist::load(&a.data).with_context(|| {
        format!(
            "reading Fashion-MNIST from {} (run scripts/setup-lab-data.sh, or pass --data)",
            a.data.display()
        )
    })
}

/// Model directories under `paths` (a directory with config.json and model.safetensors).
fn model_dirs(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>, depth: usize) -> anyhow::Result<()> {
        if p.join(store::CONFIG_FILE).is_file() && p.join(store::WEIGHTS_FILE).is_file() {
            out.push(p.to_path_buf());
            return Ok(());
        }
        if depth == 0 || !p.is_dir() {
            return Ok(());
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            walk(&e, out, depth - 1)?;
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out, 4)?;
    }
    anyhow::ensure!(
        !out.is_empty(),
        "no model directories (config.json + model.safetensors) found"
    );
    Ok(out)
}

/// A directory's identity for comparing a probed model with the references.
fn canonical(dir: &Path) -> PathBuf {
    dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf())
}

fn emit(reports: &[Report], format: Format) -> anyhow::Result<u8> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(reports)?)?,
        Format::Text => {
            writeln!(
                out,
                "{:<24} {:<44} {:>8}  verdict",
                "detector", "model", "score"
            )?;
            for r in reports {
                writeln!(
                    out,
                    "{:<24} {:<44} {:>8.3}  {:?}",
                    r.detector, r.model, r.score, r.verdict
                )?;
            }
        }
    }
    Ok(
        if reports
            .iter()
            .any(|r| r.verdict == pedigree_probe::detect::Verdict::Backdoored)
        {
            1
        } else {
            0
        },
    )
}

pub fn lab(cmd: &LabCommand) -> anyhow::Result<u8> {
    match cmd {
        LabCommand::Cascade(a) => {
            let data = load_data(&a.data)?;
            let cfg = LabConfig {
                seed: a.seed,
                ..if a.reduced {
                    LabConfig::reduced()
                } else {
                    LabConfig::default()
                }
            };
            let o = cascade::run(&data, &cfg, &a.out)?;
            let mut mitigations = None;
            if !a.no_mitigations {
                let (base, _) = store::load(&a.out.join("acme/fashion-base"))?;
                let clean = cascade::downstream_data(&data, &cfg);
                let limited = cfg.limit(&data);
                let rows = mitigate::run(&base, &clean, &limited.test, &cfg)?;
                store::write_json(&a.out.join("mitigations.json"), &rows)?;
                std::fs::write(a.out.join("mitigations.md"), mitigate::table(&rows))?;
                mitigations = Some(rows);
            }
            match a.format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "rows": o.rows, "mitigations": mitigations, "seconds": o.seconds, "out": a.out,
                    }))?
                ),
                Format::Text => {
                    println!("{}", cascade::table(&o.rows));
                    if let Some(m) = &mitigations {
                        println!("{}", mitigate::table(m));
                    }
                    println!(
                        "lab finished in {:.1}s; models, cards and ground truth in {}",
                        o.seconds,
                        a.out.display()
                    );
                }
            }
            Ok(0)
        }
        LabCommand::Push(a) => crate::cmd_lab_push::run(a),
        LabCommand::Population(a) => {
            let data = load_data(&a.data)?;
            let lab = LabConfig {
                seed: a.seed,
                ..LabConfig::default()
            };
            let mut cfg = population::PopulationConfig::new(a.n, &lab);
            cfg.train_size = a.train_size;
            cfg.nc.restarts = a.restarts;
            cfg.nc.steps = a.steps;
            if let Some(out) = &a.out {
                std::fs::create_dir_all(out)?;
            }
            let o = population::run(&data, &cfg, a.out.as_deref())?;
            match a.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&o)?),
                Format::Text => {
                    println!("{}", population::table(&o));
                    println!("{} models in {:.1}s", o.members.len(), o.seconds);
                }
            }
            Ok(0)
        }
    }
}

fn load_model(dir: &Path) -> anyhow::Result<(pedigree_probe::model::Weights, Model, String)> {
    let (w, _) = store::load(dir).with_context(|| format!("loading model {}", dir.display()))?;
    let m = Model::new(&w)?;
    Ok((w, m, dir.display().to_string()))
}

/// The inputs a detector may use as "clean": the test split, which no lab model trained on.
fn clean_inputs(data: &FashionMnist, n: usize) -> Dataset {
    data.test.take(n)
}

fn train_set_probe(a: &TrainSetArgs, spectral: bool) -> anyhow::Result<u8> {
    let data = load_data(&a.data)?;
    let truth: GroundTruth = store::read_json(&a.lab.join("ground-truth.json"))?;
    let model = a
        .model
        .clone()
        .unwrap_or_else(|| a.lab.join("acme/fashion-base"));
    let (w, m, name) = load_model(&model)?;
    let train = truth.poisoned_training_set(&truth.config.limit(&data))?;
    let feats = m.features(&train.images)?;
    if let Some(dir) = &a.export_npy {
        std::fs::create_dir_all(dir)?;
        let n = train.len();
        npy::write_f32(&dir.join("activations.npy"), &[n, w.arch.hidden], &feats)?;
        npy::write_i64(
            &dir.join("labels.npy"),
            &[n],
            &train.labels.iter().map(|&l| l as i64).collect::<Vec<_>>(),
        )?;
        let mut poison = vec![0i64; n];
        for &p in &truth.poisoned_positions {
            if p < n {
                poison[p] = 1;
            }
        }
        npy::write_i64(&dir.join("is_poison.npy"), &[n], &poison)?;
    }
    let truth_idx = Some(truth.poisoned_positions.as_slice());
    let report = if spectral {
        spectral_signatures(
            &name,
            &feats,
            w.arch.hidden,
            &train.labels,
            truth_idx,
            &SpectralConfig::default(),
        )?
        .0
    } else {
        activation_clustering(
            &name,
            &feats,
            w.arch.hidden,
            &train.labels,
            truth_idx,
            &AcConfig::default(),
        )?
        .0
    };
    if a.format == Format::Text {
        println!(
            "precision {:.3}  recall {:.3}  ({} flagged)",
            report.evidence["precision"].as_f64().unwrap_or(0.0),
            report.evidence["recall"].as_f64().unwrap_or(0.0),
            report.evidence["flagged_samples"]
        );
    }
    emit(&[report], a.format)
}

pub fn probe(cmd: &ProbeCommand) -> anyhow::Result<u8> {
    match cmd {
        ProbeCommand::Replay(a) => {
            let data = load_data(&a.data)?;
            let trigger = Trigger::load(&a.trigger)?;
            let inputs = clean_inputs(&data, a.inputs);
            let cfg = ReplayConfig {
                inputs: a.inputs,
                threshold: a.threshold,
                ..ReplayConfig::default()
            };
            let mut reports = Vec::new();
            for dir in model_dirs(&a.models)? {
                let (_, m, name) = load_model(&dir)?;
                reports.push(replay(&name, &m, &trigger, &inputs, &cfg)?);
            }
            emit(&reports, a.format)
        }
        ProbeCommand::NeuralCleanse(a) => {
            let data = load_data(&a.data)?;
            let clean = clean_inputs(&data, 300);
            let cfg = NcConfig {
                restarts: a.restarts,
                steps: a.steps,
                seed: a.seed,
                ..NcConfig::default()
            };
            let dirs = model_dirs(&a.models)?;
            anyhow::ensure!(
                a.save_trigger.is_none() || dirs.len() == 1,
                "--save-trigger needs exactly one model"
            );
            // Reference outcomes, keyed by canonical directory: a model that is both probed and
            // a reference is not run twice, and is left out of its own median.
            let mut reference = Vec::new();
            if !a.reference.is_empty() {
                for dir in model_dirs(&a.reference)? {
                    let (w, _, name) = load_model(&dir)?;
                    reference.push((canonical(&dir), neural_cleanse(&name, &w, &clean, &cfg)?));
                }
            }
            let mut reports = Vec::new();
            for dir in dirs {
                let own = canonical(&dir);
                let mut o = match reference.iter().find(|(d, _)| *d == own) {
                    Some((_, o)) => o.clone(),
                    None => {
                        let (w, _, name) = load_model(&dir)?;
                        neural_cleanse(&name, &w, &clean, &cfg)?
                    }
                };
                if !a.reference.is_empty() {
                    let others: Vec<Vec<f64>> = reference
                        .iter()
                        .filter(|(d, _)| *d != own)
                        .map(|(_, r)| r.norms())
                        .collect();
                    calibrate(&mut o, &others)
                        .with_context(|| format!("calibrating {}", dir.display()))?;
                }
                if let Some(p) = &a.save_trigger {
                    o.trigger.save(p)?;
                }
                reports.push(o.report);
            }
            emit(&reports, a.format)
        }
        ProbeCommand::Strip(a) => {
            let data = load_data(&a.data)?;
            let trigger = Trigger::load(&a.trigger)?;
            let (_, m, name) = load_model(&a.model)?;
            let pool = data.train.take(2000);
            let inputs = clean_inputs(&data, a.inputs * 2);
            // Without a declared target, leave out inputs the model already puts where the
            // trigger sends them: they cannot show a flip either way.
            let stamped_pred = m.predict(&trigger.stamp_all(&inputs).images)?;
            let target = a.target.unwrap_or_else(|| mode(&stamped_pred));
            let clean_pred = m.predict(&inputs.images)?;
            let keep: Vec<usize> = (0..inputs.len())
                .filter(|&i| clean_pred[i] != target)
                .collect();
            let half = keep.len() / 2;
            let clean = inputs.select(&keep[..half]);
            let trojan = trigger.stamp_all(&inputs.select(&keep[half..]));
            let cfg = StripConfig {
                overlays: a.overlays,
                ..StripConfig::default()
            };
            emit(&[strip(&name, &m, &pool, &clean, &trojan, &cfg)?], a.format)
        }
        ProbeCommand::ActivationClustering(a) => train_set_probe(a, false),
        ProbeCommand::Spectral(a) => train_set_probe(a, true),
    }
}

fn mode(v: &[u8]) -> u8 {
    let mut counts = [0usize; 256];
    for &x in v {
        counts[x as usize] += 1;
    }
    (0..256).max_by_key(|&i| counts[i]).unwrap_or(0) as u8
}
