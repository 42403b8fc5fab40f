//! The report's figures: what `-o json` prints and the HTML page shows. Built by `build.rs`
//! from the trail and the facts; plain data, serialized as camelCase JSON.

use super::checkpoint::CheckpointStatus;
use super::facts::FactsSource;
use crate::audit::AuditAction;
use serde::Serialize;

/// Bumped when a field's meaning changes; new fields may appear without a bump.
pub const REPORT_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub report_version: u32,
    /// The trail file, as named on the command line.
    pub audit_log: String,
    pub period: Period,
    pub chain: Chain,
    pub checkpoint: CheckpointStatus,
    pub lines: LineCounts,
    /// Decisions recorded in the period, per action.
    pub decisions: Decisions,
    pub placements: Placements,
    pub refusals: Refusals,
    pub violations: Violations,
    /// Stranded and exit-ready workloads, and current placements as the hub shows them:
    /// only with `--live` (the trail does not hold exit readiness).
    pub live: Option<Live>,
    /// Each workload with a decision in the period, by `namespace/name`.
    pub workloads: Vec<WorkloadHistory>,
}

/// The period the decisions are counted over. `since`/`until` as given (inclusive); `first`
/// and `last` are the times of the first and last decision in it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Period {
    pub since: Option<String>,
    pub until: Option<String>,
    pub first: Option<String>,
    pub last: Option<String>,
}

/// `audit::verify_file`'s verdict on the hash chain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Chain {
    pub intact: bool,
    /// Records that verified (all of them when intact).
    pub verified_records: usize,
    /// SHA-256 of the last line that verified: the head auditors anchor outside the cluster.
    pub head: Option<String>,
    pub broken_at_line: Option<usize>,
    pub problem: Option<String>,
    /// Decisions counted in this report that are at or after the broken line: shown, but they
    /// cannot be trusted.
    pub untrusted_decisions: usize,
}

/// What the trail's lines were.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LineCounts {
    pub total: usize,
    /// Decisions read (any time).
    pub decisions: usize,
    /// Decisions in the period.
    pub in_period: usize,
    pub checkpoints: usize,
    /// Lines with an action this build does not know (a newer Sovra's): skipped.
    pub unknown_actions: Vec<Count>,
    /// Lines that are not records: skipped.
    pub unreadable: usize,
}

/// A name and how often it occurs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Count {
    pub name: String,
    pub count: usize,
}

/// Counts by name, most first, plus how many had no name to count under (`unknown`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Breakdown {
    pub counts: Vec<Count>,
    pub unknown: usize,
}

impl Breakdown {
    pub fn get(&self, name: &str) -> usize {
        self.counts
            .iter()
            .find(|c| c.name == name)
            .map_or(0, |c| c.count)
    }

    pub fn total(&self) -> usize {
        self.counts.iter().map(|c| c.count).sum::<usize>() + self.unknown
    }
}

/// Decisions per action.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decisions {
    pub total: usize,
    pub placed: usize,
    pub moved: usize,
    pub refused: usize,
    pub violation: usize,
    pub sovereignty_lost: usize,
    pub released: usize,
}

impl Decisions {
    /// Counts a decision; a checkpoint is not one (the trail reader keeps them apart).
    pub fn add(&mut self, action: AuditAction) {
        if let Some(slot) = self.slot(action) {
            *slot += 1;
            self.total += 1;
        }
    }

    pub fn get(&self, action: AuditAction) -> usize {
        match action {
            AuditAction::Placed => self.placed,
            AuditAction::Moved => self.moved,
            AuditAction::Refused => self.refused,
            AuditAction::Violation => self.violation,
            AuditAction::SovereigntyLost => self.sovereignty_lost,
            AuditAction::Released => self.released,
            AuditAction::Checkpoint => 0,
        }
    }

    fn slot(&mut self, action: AuditAction) -> Option<&mut usize> {
        Some(match action {
            AuditAction::Placed => &mut self.placed,
            AuditAction::Moved => &mut self.moved,
            AuditAction::Refused => &mut self.refused,
            AuditAction::Violation => &mut self.violation,
            AuditAction::SovereigntyLost => &mut self.sovereignty_lost,
            AuditAction::Released => &mut self.released,
            AuditAction::Checkpoint => return None,
        })
    }
}

/// Where workloads run at the end of the period, replayed from the whole trail up to
/// `until`: a workload's last Placed or Moved says where it runs, a Refused or Released that
/// it runs nowhere. One placement is one workload on one cluster, so every breakdown adds up
/// to `total`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Placements {
    /// Workloads placed.
    pub workloads: usize,
    /// Placements (workload on a cluster).
    pub total: usize,
    pub by_class: Breakdown,
    pub by_namespace: Breakdown,
    pub by_cluster: Breakdown,
    /// Need the clusters' facts (`facts`); without them every placement is `unknown`.
    pub by_country: Breakdown,
    pub by_provider: Breakdown,
    pub facts: FactsSource,
    /// Clusters placed onto whose country and provider are not known.
    pub clusters_without_facts: Vec<String>,
}

/// Refusals in the period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Refusals {
    pub total: usize,
    /// Distinct workloads refused.
    pub workloads: usize,
    pub by_class: Breakdown,
    /// Each reason line, counted once per refusal that gave it.
    pub by_reason: Vec<Count>,
    pub list: Vec<Decision>,
}

/// Violations and losses of sovereignty in the period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Violations {
    pub total: usize,
    pub sovereignty_lost: usize,
    pub by_class: Breakdown,
    pub bucket: Bucket,
    /// Every bucket from the period's first decision to its last, empty ones included.
    pub over_time: Vec<TimeBucket>,
    /// Violations and sovereignty losses, oldest first.
    pub list: Vec<Decision>,
}

/// The width of a bar in the time chart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Bucket {
    /// `2026-03-02`: periods of up to 92 days.
    #[default]
    Day,
    /// `2026-03`: longer periods.
    Month,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeBucket {
    pub label: String,
    pub violations: usize,
    pub sovereignty_lost: usize,
}

/// One audit record as the report lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub seq: u64,
    pub time: String,
    pub action: AuditAction,
    /// `namespace/name` for a workload, `Kind/namespace/name` otherwise.
    pub object: String,
    pub class: Option<String>,
    pub clusters: Vec<String>,
    pub pools: Vec<String>,
    pub reasons: Vec<String>,
    /// At or after the line where the chain broke.
    pub untrusted: bool,
}

/// One workload's decisions in the period, and where it runs at its end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadHistory {
    pub workload: String,
    pub class: Option<String>,
    /// Clusters it runs on at the end of the period; empty when refused or released.
    pub current: Vec<String>,
    pub decisions: Vec<Decision>,
}

/// What the hub shows now (`--live`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Live {
    pub workloads: usize,
    /// Objects that do not match their CRD's schema: skipped.
    pub invalid_objects: usize,
    /// Placements (workload on a cluster) from `status.placements`.
    pub placements: usize,
    pub by_provider: Breakdown,
    pub by_country: Breakdown,
    /// Placed workloads with no compliant cluster of another provider (`status.exit.stranded`).
    pub stranded: Vec<ExitLine>,
    /// Placed workloads with `ExitReady=True`.
    pub exit_ready: Vec<ExitLine>,
    /// Placed workloads whose status has no exit readiness yet.
    pub exit_unknown: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitLine {
    pub workload: String,
    pub class: String,
    pub clusters: Vec<String>,
    pub alternatives: i32,
}
