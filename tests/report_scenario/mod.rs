//! The scripted scenario `sovra report` is tested on (tests/report.rs, tests/report_render.rs):
//! twelve decisions over four days, written with the real trail writer, and the shipped
//! example clusters as `--clusters`.
#![allow(dead_code)]

use sovra::audit::{AuditAction, AuditEntry, AuditTrail, ObjectRef};
use std::path::{Path, PathBuf};
use std::process::Output;

pub const PARTNER_REASONS: [&str; 2] = [
    "hyperscaler-frankfurt: provider Example Hyperscaler EU (US parent) is subject to extraterritorial non-EU law",
    "secnum-paris: no node pool dedicated to confidential",
];

fn object(kind: &str, ns: &str, name: &str) -> ObjectRef {
    ObjectRef {
        kind: kind.into(),
        namespace: (!ns.is_empty()).then(|| ns.to_owned()),
        name: name.into(),
        uid: Some(format!("uid-{name}")),
    }
}

fn workload(action: AuditAction, ns: &str, name: &str, class: &str) -> AuditEntry {
    let mut entry = AuditEntry::new(action, object("SovereignWorkload", ns, name));
    entry.class = Some(class.into());
    entry
}

/// A Placed or Moved record as the controller writes it: clusters comma-joined, pools as
/// `cluster/pool`.
fn placed(
    action: AuditAction,
    ns: &str,
    name: &str,
    class: &str,
    targets: &[(&str, &str)],
) -> AuditEntry {
    let mut entry = workload(action, ns, name, class);
    let clusters: Vec<&str> = targets.iter().map(|(c, _)| *c).collect();
    entry.cluster = Some(clusters.join(","));
    entry.pools = targets.iter().map(|(c, p)| format!("{c}/{p}")).collect();
    entry
}

fn refused(ns: &str, name: &str, class: &str) -> AuditEntry {
    let mut entry = workload(AuditAction::Refused, ns, name, class);
    entry.reasons = PARTNER_REASONS.map(str::to_owned).to_vec();
    entry
}

fn violation(ns: &str, pod: &str, class: &str, pool: &str, reason: &str) -> AuditEntry {
    let mut entry = AuditEntry::new(AuditAction::Violation, object("Pod", ns, pod));
    entry.class = Some(class.into());
    entry.cluster = Some("rijkscloud-nl".into());
    entry.pools = vec![pool.into()];
    entry.reasons = vec![reason.into()];
    entry
}

/// `2026-03-0{day}T{hh:mm}:00Z`.
fn at(day: u8, time: &str) -> jiff::Timestamp {
    format!("2026-03-0{day}T{time}:00Z").parse().unwrap()
}

/// Writes the scenario's trail into `dir` and returns its path.
pub async fn write_trail(dir: &Path) -> PathBuf {
    use AuditAction::{Moved, Placed};
    let path = dir.join("audit.jsonl");
    let trail = AuditTrail::open(Some(path.clone()), "sovra/sovra-0".into(), false)
        .await
        .unwrap();
    let mut lost = AuditEntry::new(
        AuditAction::SovereigntyLost,
        object("SovereignCluster", "", "secnum-paris"),
    );
    lost.cluster = Some("secnum-paris".into());
    lost.reasons = vec!["pool fr-general: no node carries the sovereign label".into()];
    let mut released = workload(AuditAction::Released, "ministry-ezk", "open-data", "public");
    released.reasons = vec!["SovereignWorkload deleted".into()];
    let script = [
        (
            at(2, "09:00"),
            placed(
                Placed,
                "ministry-fin",
                "tax-assessment",
                "confidential",
                &[("rijkscloud-nl", "gov-confidential")],
            ),
        ),
        (
            at(2, "09:05"),
            placed(
                Placed,
                "ministry-bzk",
                "case-management",
                "internal",
                &[
                    ("rijkscloud-nl", "gov-general"),
                    ("secnum-paris", "fr-general"),
                ],
            ),
        ),
        (
            at(2, "09:10"),
            refused("ministry-fin", "partner-data-exchange", "confidential"),
        ),
        (
            at(2, "10:00"),
            placed(
                Placed,
                "ministry-ezk",
                "open-data",
                "public",
                &[("hyperscaler-frankfurt", "general")],
            ),
        ),
        (
            at(3, "08:00"),
            violation(
                "ministry-fin",
                "tax-assessment-7f9c",
                "confidential",
                "build-agents",
                "pod runs on node build-agents-0 in pool build-agents, which is not sovereign",
            ),
        ),
        (at(3, "11:00"), lost),
        (
            at(3, "11:01"),
            placed(
                Moved,
                "ministry-bzk",
                "case-management",
                "internal",
                &[
                    ("rijkscloud-nl", "gov-general"),
                    ("stackit-de", "sovereign"),
                ],
            ),
        ),
        (
            at(4, "09:00"),
            placed(
                Placed,
                "ministry-def",
                "intelligence-analysis",
                "secret",
                &[("rijkscloud-nl", "gov-secret")],
            ),
        ),
        (
            at(4, "09:30"),
            refused("ministry-fin", "partner-data-exchange", "confidential"),
        ),
        (
            at(4, "10:00"),
            placed(
                Placed,
                "ministry-ezk",
                "open-data-portal",
                "public",
                &[("hyperscaler-frankfurt", "general")],
            ),
        ),
        (
            at(5, "08:00"),
            violation(
                "ministry-def",
                "intelligence-analysis-5d2a",
                "secret",
                "gov-general",
                "pool gov-general is not dedicated to class secret",
            ),
        ),
        (at(5, "12:00"), released),
    ];
    for (time, entry) in script {
        trail.record_at(entry, time).await.unwrap();
    }
    path
}

/// The shipped example clusters: rijkscloud-nl, secnum-paris, hyperscaler-frankfurt and
/// us-east (not stackit-de, which the scenario also places onto).
pub fn example_clusters() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/clusters.yaml")
}

/// Runs `sovra report` with `args`.
pub fn sovra_report(args: &[&str]) -> Output {
    sovra_report_in(Path::new("."), args)
}

/// Runs `sovra report` with `args` in the directory `dir` (relative paths are in it).
pub fn sovra_report_in(dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sovra"))
        .arg("report")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}
