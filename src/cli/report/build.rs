//! From the trail and the facts to the report's figures (pure: no clock, no IO).

use super::checkpoint::CheckpointStatus;
use super::facts::{ClusterFacts, FactsSource, LiveState};
use super::model::{
    Breakdown, Bucket, Chain, Count, Decision, Decisions, ExitLine, LineCounts, Live, Period,
    Placements, REPORT_VERSION, Refusals, Report, TimeBucket, Violations, WorkloadHistory,
};
use super::trail::{Entry, TrailRead, format_time};
use crate::audit::{AuditAction, VerifyReport};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use std::collections::{BTreeMap, BTreeSet};

/// Day buckets up to this many days from the first decision to the last; months beyond.
const MAX_DAY_BUCKETS: i32 = 92;

/// What a report is made from.
#[derive(Clone, Debug)]
pub struct Inputs<'a> {
    pub audit_log: String,
    pub trail: &'a TrailRead,
    pub chain: &'a VerifyReport,
    pub checkpoint: CheckpointStatus,
    /// Inclusive bounds of the period; `None`: the whole trail.
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub facts: &'a ClusterFacts,
    pub facts_source: FactsSource,
    pub live: Option<&'a LiveState>,
}

pub fn build(inputs: &Inputs<'_>) -> Report {
    let broken_at = inputs.chain.first_break.as_ref().map(|b| b.line);
    let untrusted = |e: &Entry| broken_at.is_some_and(|line| e.line >= line);
    let decision = |e: &Entry| Decision {
        seq: e.seq,
        time: format_time(&e.time),
        action: e.action,
        object: e.object_name(),
        class: e.class.clone(),
        clusters: e.clusters(),
        pools: e.pools.clone(),
        reasons: e.reasons.clone(),
        untrusted: untrusted(e),
    };
    let up_to_until: Vec<&Entry> = inputs
        .trail
        .entries
        .iter()
        .filter(|e| inputs.until.is_none_or(|until| e.time <= until))
        .collect();
    let in_period: Vec<&Entry> = up_to_until
        .iter()
        .copied()
        .filter(|e| inputs.since.is_none_or(|since| e.time >= since))
        .collect();

    let mut decisions = Decisions::default();
    for entry in &in_period {
        decisions.add(entry.action);
    }
    let running = replay(&up_to_until);

    Report {
        report_version: REPORT_VERSION,
        audit_log: inputs.audit_log.clone(),
        period: Period {
            since: inputs.since.as_ref().map(format_time),
            until: inputs.until.as_ref().map(format_time),
            first: in_period.first().map(|e| format_time(&e.time)),
            last: in_period.last().map(|e| format_time(&e.time)),
        },
        chain: Chain {
            intact: inputs.chain.is_intact(),
            verified_records: inputs.chain.records,
            head: inputs.chain.head.clone(),
            broken_at_line: broken_at,
            problem: inputs.chain.first_break.as_ref().map(|b| b.problem.clone()),
            untrusted_decisions: in_period.iter().filter(|e| untrusted(e)).count(),
        },
        checkpoint: inputs.checkpoint.clone(),
        lines: LineCounts {
            total: inputs.trail.lines,
            decisions: inputs.trail.entries.len(),
            in_period: in_period.len(),
            checkpoints: inputs.trail.checkpoints.len(),
            unknown_actions: inputs
                .trail
                .unknown_actions
                .iter()
                .map(|(name, count)| Count {
                    name: name.clone(),
                    count: *count,
                })
                .collect(),
            unreadable: inputs.trail.unreadable,
        },
        decisions,
        placements: placements(&running, inputs.facts, inputs.facts_source),
        refusals: refusals(&in_period, &decision),
        violations: violations(&in_period, &decision),
        live: inputs.live.map(|live| live_figures(live, inputs.facts)),
        workloads: histories(&in_period, &running, &decision),
    }
}

/// Where a workload runs, as the trail says.
#[derive(Clone, Debug, Default)]
struct Running {
    namespace: String,
    class: Option<String>,
    clusters: Vec<String>,
}

/// Each workload's state after `entries`, by `namespace/name`. Released workloads are gone.
fn replay(entries: &[&Entry]) -> BTreeMap<String, Running> {
    let mut state: BTreeMap<String, Running> = BTreeMap::new();
    for entry in entries.iter().filter(|e| e.is_workload()) {
        let key = entry.object.qualified_name();
        let clusters = match entry.action {
            AuditAction::Placed | AuditAction::Moved => entry.clusters(),
            AuditAction::Refused => Vec::new(),
            AuditAction::Released => {
                state.remove(&key);
                continue;
            }
            // Checkpoints are read apart (`trail::read`) and never reach the replay.
            AuditAction::Violation | AuditAction::SovereigntyLost | AuditAction::Checkpoint => {
                continue;
            }
        };
        state.insert(
            key,
            Running {
                namespace: entry.object.namespace.clone().unwrap_or_default(),
                class: entry.class.clone(),
                clusters,
            },
        );
    }
    state
}

/// Counts names, most first then by name; `None` counts as unknown.
fn breakdown<I: IntoIterator<Item = Option<String>>>(names: I) -> Breakdown {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut unknown = 0;
    for name in names {
        match name.filter(|n| !n.is_empty()) {
            Some(name) => *counts.entry(name).or_default() += 1,
            None => unknown += 1,
        }
    }
    Breakdown {
        counts: sorted(counts),
        unknown,
    }
}

fn sorted(counts: BTreeMap<String, usize>) -> Vec<Count> {
    let mut counts: Vec<Count> = counts
        .into_iter()
        .map(|(name, count)| Count { name, count })
        .collect();
    counts.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    counts
}

fn placements(
    running: &BTreeMap<String, Running>,
    facts: &ClusterFacts,
    source: FactsSource,
) -> Placements {
    // One row per placement: (class, namespace, cluster).
    let rows: Vec<(&Running, &String)> = running
        .values()
        .flat_map(|r| r.clusters.iter().map(move |c| (r, c)))
        .collect();
    let without: BTreeSet<String> = rows
        .iter()
        .filter(|(_, c)| !facts.contains_key(*c))
        .map(|(_, c)| (*c).clone())
        .collect();
    Placements {
        workloads: running.values().filter(|r| !r.clusters.is_empty()).count(),
        total: rows.len(),
        by_class: breakdown(rows.iter().map(|(r, _)| r.class.clone())),
        by_namespace: breakdown(rows.iter().map(|(r, _)| Some(r.namespace.clone()))),
        by_cluster: breakdown(rows.iter().map(|(_, c)| Some((*c).clone()))),
        by_country: breakdown(
            rows.iter()
                .map(|(_, c)| facts.get(*c).map(|f| f.country.clone())),
        ),
        by_provider: breakdown(
            rows.iter()
                .map(|(_, c)| facts.get(*c).map(|f| f.provider.clone())),
        ),
        facts: source,
        clusters_without_facts: without.into_iter().collect(),
    }
}

fn refusals(in_period: &[&Entry], decision: &dyn Fn(&Entry) -> Decision) -> Refusals {
    let refused: Vec<&Entry> = in_period
        .iter()
        .copied()
        .filter(|e| e.action == AuditAction::Refused)
        .collect();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for entry in &refused {
        let distinct: BTreeSet<&String> = entry.reasons.iter().collect();
        for reason in distinct {
            *reasons.entry(reason.clone()).or_default() += 1;
        }
    }
    let workloads: BTreeSet<String> = refused.iter().map(|e| e.object_name()).collect();
    Refusals {
        total: refused.len(),
        workloads: workloads.len(),
        by_class: breakdown(refused.iter().map(|e| e.class.clone())),
        by_reason: sorted(reasons),
        list: refused.iter().map(|e| decision(e)).collect(),
    }
}

fn violations(in_period: &[&Entry], decision: &dyn Fn(&Entry) -> Decision) -> Violations {
    let events: Vec<&Entry> = in_period
        .iter()
        .copied()
        .filter(|e| {
            matches!(
                e.action,
                AuditAction::Violation | AuditAction::SovereigntyLost
            )
        })
        .collect();
    let violation = |e: &&&Entry| e.action == AuditAction::Violation;
    let (bucket, over_time) = match (in_period.first(), in_period.last()) {
        (Some(first), Some(last)) => over_time(&events, date(&first.time), date(&last.time)),
        _ => (Bucket::Day, Vec::new()),
    };
    Violations {
        total: events.iter().filter(violation).count(),
        sovereignty_lost: events.iter().filter(|e| !violation(e)).count(),
        by_class: breakdown(events.iter().filter(violation).map(|e| e.class.clone())),
        bucket,
        over_time,
        list: events.iter().map(|e| decision(e)).collect(),
    }
}

fn date(time: &Timestamp) -> Date {
    time.to_zoned(TimeZone::UTC).date()
}

/// Buckets from `first` to `last` (UTC dates), by day or, for long periods, by month.
fn over_time(events: &[&Entry], first: Date, last: Date) -> (Bucket, Vec<TimeBucket>) {
    let days = first.until(last).map_or(0, |span| span.get_days());
    let bucket = if days < MAX_DAY_BUCKETS {
        Bucket::Day
    } else {
        Bucket::Month
    };
    let label = |d: Date| match bucket {
        Bucket::Day => d.to_string(),
        Bucket::Month => format!("{:04}-{:02}", d.year(), d.month()),
    };
    let mut buckets: Vec<TimeBucket> = Vec::new();
    let mut day = first;
    while day <= last {
        let name = label(day);
        if buckets.last().is_none_or(|b| b.label != name) {
            buckets.push(TimeBucket {
                label: name,
                violations: 0,
                sovereignty_lost: 0,
            });
        }
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    for event in events {
        let name = label(date(&event.time));
        if let Some(b) = buckets.iter_mut().find(|b| b.label == name) {
            match event.action {
                AuditAction::Violation => b.violations += 1,
                _ => b.sovereignty_lost += 1,
            }
        }
    }
    (bucket, buckets)
}

fn histories(
    in_period: &[&Entry],
    running: &BTreeMap<String, Running>,
    decision: &dyn Fn(&Entry) -> Decision,
) -> Vec<WorkloadHistory> {
    let mut by_workload: BTreeMap<String, WorkloadHistory> = BTreeMap::new();
    for entry in in_period.iter().filter(|e| e.is_workload()) {
        let key = entry.object.qualified_name();
        let history = by_workload
            .entry(key.clone())
            .or_insert_with(|| WorkloadHistory {
                workload: key.clone(),
                class: None,
                current: running
                    .get(&key)
                    .map(|r| r.clusters.clone())
                    .unwrap_or_default(),
                decisions: Vec::new(),
            });
        if entry.class.is_some() {
            history.class.clone_from(&entry.class);
        }
        history.decisions.push(decision(entry));
    }
    by_workload.into_values().collect()
}

fn live_figures(live: &LiveState, facts: &ClusterFacts) -> Live {
    let placed: Vec<_> = live
        .workloads
        .iter()
        .filter(|w| !w.placements.is_empty())
        .collect();
    let rows: Vec<_> = placed.iter().flat_map(|w| w.placements.iter()).collect();
    let line = |w: &super::facts::LiveWorkload| ExitLine {
        workload: w.qualified_name(),
        class: w.class.clone(),
        clusters: w.placements.iter().map(|p| p.cluster.clone()).collect(),
        alternatives: w.alternatives.unwrap_or(0),
    };
    let names = |keep: &dyn Fn(&super::facts::LiveWorkload) -> bool| {
        let mut lines: Vec<ExitLine> = placed.iter().filter(|w| keep(w)).map(|w| line(w)).collect();
        lines.sort_by(|a, b| a.workload.cmp(&b.workload));
        lines
    };
    let stranded = names(&|w| w.stranded == Some(true));
    let exit_ready = names(&|w| w.stranded != Some(true) && w.exit_ready == Some(true));
    let mut exit_unknown: Vec<String> = placed
        .iter()
        .filter(|w| w.stranded.is_none() && w.exit_ready.is_none())
        .map(|w| w.qualified_name())
        .collect();
    exit_unknown.sort();
    Live {
        workloads: live.workloads.len(),
        invalid_objects: live.invalid_objects,
        placements: rows.len(),
        by_provider: breakdown(
            rows.iter()
                .map(|p| facts.get(&p.cluster).map(|f| f.provider.clone())),
        ),
        by_country: breakdown(rows.iter().map(|p| Some(p.country.clone()))),
        stranded,
        exit_ready,
        exit_unknown,
    }
}
