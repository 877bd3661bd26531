//! Rules over the format views: an [`Artifact`] tree in, [`Finding`]s out.

use std::collections::BTreeSet;

use pedigree_formats::container::{Artifact, NoteKind};
use pedigree_formats::pickle::{AnomalyKind, CallKind, GlobalRef, PickleReport, ReadMode};

use crate::finding::{Finding, Location};
use crate::policy::{Policy, Verdict};
use crate::rules::{self};

/// Collects findings, applying the policy's overrides and removing duplicates (the same fact
/// seen in several read modes or reached twice is reported once).
struct Sink<'p> {
    policy: &'p Policy,
    findings: Vec<Finding>,
    seen: BTreeSet<(String, &'static str, Option<u64>, Option<String>, String)>,
}

impl<'p> Sink<'p> {
    fn push(
        &mut self,
        rule_id: &'static str,
        location: Location,
        global: Option<String>,
        message: String,
    ) {
        if self.policy.disabled.iter().any(|d| d == rule_id) {
            return;
        }
        let key = (
            location.display(),
            rule_id,
            location.offset,
            global.clone(),
            if global.is_some() {
                String::new()
            } else {
                message.clone()
            },
        );
        if !self.seen.insert(key) {
            return;
        }
        let rule = rules::get(rule_id);
        self.findings.push(Finding {
            rule: rule.id,
            name: rule.name,
            severity: self.policy.severity_of(rule.id),
            message,
            location,
            global,
        });
    }
}

/// All findings for an artifact tree, most severe first, then by location.
pub fn findings_for(artifact: &Artifact, policy: &Policy) -> Vec<Finding> {
    let mut sink = Sink {
        policy,
        findings: Vec::new(),
        seen: BTreeSet::new(),
    };
    visit(artifact, &mut sink);
    sink.findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.location.cmp(&b.location))
            .then_with(|| a.rule.cmp(b.rule))
    });
    sink.findings
}

fn location(artifact: &Artifact, offset: Option<u64>) -> Location {
    let mut it = artifact.location.iter();
    Location {
        path: it.next().cloned().unwrap_or_default(),
        members: it.cloned().collect(),
        offset,
        ..Default::default()
    }
}

fn visit(artifact: &Artifact, sink: &mut Sink) {
    for note in &artifact.notes {
        note_finding(artifact, &note.kind, &note.message, sink);
    }
    let multi_mode = {
        let modes: BTreeSet<_> = artifact.pickles.iter().map(|p| mode_name(p.mode)).collect();
        modes.len() > 1
    };
    // The first report's mode is how this container's loader reads it; the other modes are
    // there because FRAMEs make readers disagree (PDG104 says so).
    let primary = artifact.pickles.first().map(|p| p.mode);
    for report in &artifact.pickles {
        let alternative = multi_mode && Some(report.mode) != primary;
        pickle_findings(artifact, report, multi_mode, alternative, sink);
    }
    crate::analyze_formats::visit(artifact, &mut |rule, location, message| {
        sink.push(rule, location, None, message)
    });
    for child in &artifact.children {
        visit(child, sink);
    }
}

fn mode_name(mode: ReadMode) -> &'static str {
    match mode {
        ReadMode::InMemory => "pickle.loads",
        ReadMode::FileNoPeek => "Unpickler(BytesIO) as torch.load reads",
        ReadMode::PurePython => "the pure-Python unpickler (joblib)",
    }
}

fn global_text(g: &GlobalRef) -> String {
    format!("{}.{}", g.module, g.name)
}

fn pickle_findings(
    artifact: &Artifact,
    report: &PickleReport,
    multi_mode: bool,
    alternative: bool,
    sink: &mut Sink,
) {
    let resynced = report
        .anomalies
        .iter()
        .any(|a| a.kind == AnomalyKind::Resynchronised);
    let context = {
        let mut c = String::new();
        if resynced {
            c.push_str(" (found by resynchronising after a break in the stream)");
        }
        if alternative {
            c.push_str(&format!(" (only when read by {})", mode_name(report.mode)));
        }
        c
    };

    // Which globals are called, and how: a call makes the message concrete.
    let called = |g: &GlobalRef| {
        report.calls.iter().find(|c| {
            c.callable
                .as_ref()
                .is_some_and(|cg| cg.module == g.module && cg.name == g.name)
        })
    };

    for g in &report.globals {
        // A computed import is reported as a laundered call (its anomaly), not as a name.
        if g.module == pedigree_formats::pickle::DYNAMIC_MODULE {
            continue;
        }
        let text = global_text(g);
        let renamed = if g.raw_module != g.module || g.raw_name != g.name {
            format!(
                " (written as {}.{}, which CPython maps to it)",
                g.raw_module, g.raw_name
            )
        } else {
            String::new()
        };
        match sink.policy.globals.judge(&g.module, &g.name) {
            Verdict::Dangerous { matched, reached } => {
                let reach = if reached != text {
                    format!(", which reaches {reached}")
                } else {
                    String::new()
                };
                let how = match called(g) {
                    Some(c) => format!("; called at offset {}: {}", c.offset, c.summary),
                    None => String::new(),
                };
                sink.push(
                    rules::PICKLE_DANGEROUS_GLOBAL,
                    location(artifact, Some(g.offset)),
                    Some(text.clone()),
                    format!(
                        "{} imports {text}{renamed}{reach} (deny-list entry '{matched}'){how}{context}",
                        g.opcode
                    ),
                );
            }
            Verdict::Unknown => {
                sink.push(
                    rules::PICKLE_UNKNOWN_GLOBAL,
                    location(artifact, Some(g.offset)),
                    Some(text.clone()),
                    format!(
                        "{} imports {text}{renamed}, which is neither on the allow list nor the deny list{context}",
                        g.opcode
                    ),
                );
            }
            Verdict::Safe => {}
        }
    }

    for call in &report.calls {
        let laundered = call.computed_callable
            && call.callable.is_none()
            && matches!(
                call.kind,
                CallKind::Reduce
                    | CallKind::NewObj
                    | CallKind::NewObjEx
                    | CallKind::Obj
                    | CallKind::Inst
            );
        if laundered {
            sink.push(
                rules::PICKLE_LAUNDERED_CALL,
                location(artifact, Some(call.offset)),
                None,
                format!(
                    "{:?} calls a value computed at load time rather than a named global: {}{context}",
                    call.kind, call.summary
                ),
            );
        }
    }

    for a in &report.anomalies {
        let rule = match &a.kind {
            AnomalyKind::Truncated
            | AnomalyKind::InvalidOpcode { .. }
            | AnomalyKind::BadArgument { .. }
            | AnomalyKind::LoaderError { .. }
            | AnomalyKind::UnsupportedProtocol { .. }
            | AnomalyKind::MemoMissing { .. }
            | AnomalyKind::NulInNumber
            | AnomalyKind::JoblibArray { .. } => rules::PICKLE_MALFORMED,
            AnomalyKind::FrameStraddle
            | AnomalyKind::FrameEarly
            | AnomalyKind::FrameOverrun
            | AnomalyKind::FrameRunsPastStop { .. } => rules::PICKLE_FRAME_DIVERGENCE,
            // An import whose module or name is computed at load time hides what it reaches.
            AnomalyKind::DynamicImport { .. } => rules::PICKLE_LAUNDERED_CALL,
            AnomalyKind::MemoHuge { .. }
            | AnomalyKind::HugeLength { .. }
            | AnomalyKind::LimitExceeded { .. } => rules::PICKLE_RESOURCE_EXHAUSTION,
            AnomalyKind::ExtCode { .. } => rules::PICKLE_EXT_CODE,
            AnomalyKind::TrailingData { .. } => rules::PICKLE_TRAILING_DATA,
            AnomalyKind::Resynchronised => continue,
        };
        // A resynchronised segment is our own guess at where a pickle starts: its breaks are
        // expected and would only repeat the break that made us resynchronise.
        if resynced && rule == rules::PICKLE_MALFORMED {
            continue;
        }
        // In another reader's view, a break is a consequence of the frame divergence already
        // reported, not a separate defect of the file.
        if alternative && rule == rules::PICKLE_MALFORMED {
            continue;
        }
        let message = if multi_mode && rule != rules::PICKLE_FRAME_DIVERGENCE {
            format!("{}{context}", a.message)
        } else {
            a.message.clone()
        };
        sink.push(rule, location(artifact, Some(a.offset)), None, message);
    }

    // Several pickles in one plain stream: the ones after the first run only under repeated
    // pickle.load calls, and scanners that stop at the first STOP never see them.
    if report.start > 0
        && !resynced
        && report.mode == ReadMode::InMemory
        && is_stream_container(artifact)
    {
        sink.push(
            rules::PICKLE_TRAILING_DATA,
            location(artifact, Some(report.start)),
            None,
            format!(
                "a further pickle starts at offset {} after an earlier STOP (stacked pickles)",
                report.start
            ),
        );
    }
}

/// Stacked pickles are expected in legacy torch files (five pickles in a row) but not in a plain
/// pickle stream.
fn is_stream_container(artifact: &Artifact) -> bool {
    use pedigree_formats::container::Format;
    matches!(artifact.format, Format::Pickle)
}

fn note_finding(artifact: &Artifact, kind: &NoteKind, message: &str, sink: &mut Sink) {
    let rule = match kind {
        NoteKind::ZipBadCrc { .. } => rules::ZIP_BAD_CRC,
        NoteKind::ZipEncryptionFlag { .. } => rules::ZIP_ENCRYPTION_FLAG,
        NoteKind::ZipNameMismatch { .. } => rules::ZIP_NAME_MISMATCH,
        NoteKind::ZipDuplicateName { .. } => rules::ZIP_DUPLICATE_NAME,
        NoteKind::ZipPrependedData { .. } => rules::ZIP_PREPENDED_DATA,
        NoteKind::DecompressionBomb { .. }
        | NoteKind::NestingTooDeep { .. }
        | NoteKind::TooManyMembers { .. } => rules::ARCHIVE_LIMITS,
        NoteKind::EncryptedMember { .. } => rules::ENCRYPTED_MEMBER,
        NoteKind::UnsafeMemberPath { .. } => rules::UNSAFE_MEMBER_PATH,
        NoteKind::ExtensionMismatch { .. } => rules::EXTENSION_MISMATCH,
        NoteKind::LegacyTorch => rules::LEGACY_TORCH,
        NoteKind::Malformed { .. } => rules::MALFORMED_CONTAINER,
    };
    sink.push(rule, location(artifact, None), None, message.to_string());
}
