//! Unit tests of the report: figures from a trail built in memory (`build`), and the page
//! (`page`). The scripted end-to-end scenario is `tests/report.rs`.

mod figures;
mod page;

use super::build::{Inputs, build};
use super::checkpoint::CheckpointStatus;
use super::facts::{ClusterFacts, ClusterInfo, FactsSource, LiveState};
use super::model::Report;
use super::trail::{Entry, TrailRead};
use crate::audit::{AuditAction, ChainBreak, ObjectRef, VerifyReport};

/// A trail in memory, one decision per call; line `n` is the n-th decision, one hour apart
/// from 2026-03-02T00:00Z unless placed `at` a given hour.
#[derive(Default)]
struct Trail {
    read: TrailRead,
    hour: i64,
}

impl Trail {
    fn new() -> Self {
        Self::default()
    }

    fn at_hour(mut self, hour: i64) -> Self {
        self.hour = hour;
        self
    }

    fn push(
        mut self,
        action: AuditAction,
        kind: &str,
        object: &str,
        class: Option<&str>,
        cluster: Option<&str>,
        reasons: &[&str],
    ) -> Self {
        let (namespace, name) = match object.split_once('/') {
            Some((ns, name)) => (Some(ns.to_owned()), name.to_owned()),
            None => (None, object.to_owned()),
        };
        let line = self.read.entries.len() + 1;
        self.read.lines += 1;
        self.read.entries.push(Entry {
            line,
            seq: line as u64,
            time: jiff::Timestamp::from_second(1_772_409_600 + self.hour * 3600).unwrap(),
            action,
            object: ObjectRef {
                kind: kind.into(),
                namespace,
                name,
                uid: None,
            },
            class: class.map(str::to_owned),
            cluster: cluster.map(str::to_owned),
            pools: Vec::new(),
            reasons: reasons.iter().map(|r| (*r).to_owned()).collect(),
        });
        self.hour += 1;
        self
    }

    fn placed(self, workload: &str, class: &str, clusters: &str) -> Self {
        self.push(
            AuditAction::Placed,
            "SovereignWorkload",
            workload,
            Some(class),
            Some(clusters),
            &[],
        )
    }

    fn moved(self, workload: &str, class: &str, clusters: &str) -> Self {
        self.push(
            AuditAction::Moved,
            "SovereignWorkload",
            workload,
            Some(class),
            Some(clusters),
            &[],
        )
    }

    fn refused(self, workload: &str, class: &str, reasons: &[&str]) -> Self {
        self.push(
            AuditAction::Refused,
            "SovereignWorkload",
            workload,
            Some(class),
            None,
            reasons,
        )
    }

    fn released(self, workload: &str, class: &str) -> Self {
        self.push(
            AuditAction::Released,
            "SovereignWorkload",
            workload,
            Some(class),
            None,
            &["SovereignWorkload deleted"],
        )
    }

    fn violation(self, pod: &str, class: &str) -> Self {
        self.push(
            AuditAction::Violation,
            "Pod",
            pod,
            Some(class),
            Some("rijkscloud-nl"),
            &["node is not sovereign"],
        )
    }

    fn lost(self, cluster: &str) -> Self {
        self.push(
            AuditAction::SovereigntyLost,
            "SovereignCluster",
            cluster,
            None,
            Some(cluster),
            &["pool lost its sovereign nodes"],
        )
    }
}

fn intact(records: usize) -> VerifyReport {
    VerifyReport {
        records,
        first_break: None,
        head: Some("ab12".into()),
    }
}

fn broken_at(line: usize) -> VerifyReport {
    VerifyReport {
        records: line - 1,
        first_break: Some(ChainBreak {
            line,
            problem: "prev hash does not match line 2".into(),
        }),
        head: Some("ab12".into()),
    }
}

fn facts() -> ClusterFacts {
    [
        ("rijkscloud-nl", "NL", "Rijkscloud"),
        ("stackit-de", "DE", "Schwarz Digits"),
    ]
    .into_iter()
    .map(|(name, country, provider)| {
        (
            name.to_owned(),
            ClusterInfo {
                country: country.into(),
                provider: provider.into(),
            },
        )
    })
    .collect()
}

/// Options of one report over a test trail.
struct Options<'a> {
    chain: VerifyReport,
    since: Option<&'a str>,
    until: Option<&'a str>,
    facts: ClusterFacts,
    facts_source: FactsSource,
    live: Option<LiveState>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Self {
            chain: intact(0),
            since: None,
            until: None,
            facts: ClusterFacts::new(),
            facts_source: FactsSource::None,
            live: None,
        }
    }
}

fn report(trail: &Trail, options: Options<'_>) -> Report {
    build(&Inputs {
        audit_log: "audit.jsonl".into(),
        trail: &trail.read,
        chain: &options.chain,
        checkpoint: CheckpointStatus::None,
        since: options.since.map(|s| s.parse().unwrap()),
        until: options.until.map(|s| s.parse().unwrap()),
        facts: &options.facts,
        facts_source: options.facts_source,
        live: options.live.as_ref(),
    })
}
