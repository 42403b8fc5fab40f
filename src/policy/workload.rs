//! Bridges the resource types to the engine: the decision for one SovereignWorkload given the
//! classes and clusters that exist. Shared by the controller and `sovra plan`, so the offline
//! plan and the live operator can never decide differently.

use super::candidates::Candidates;
use super::decision::{
    ClusterFacts, CurrentPlacement, Decision, Outcome, Reachability, Target, Verdict,
    WorkloadRequest,
};
use super::node_pool::NodePool;
use super::reason::Reason;
use crate::crd::{
    CandidateCounts, CandidateVerdict, Placement, PlacementDecision, RejectionGroup,
    SensitivityClassSpec, SovereignCluster, SovereignWorkload, SovereignWorkloadStatus, bounds,
};
use std::collections::BTreeMap;

/// Decides for one workload. A missing class is a refusal: without the class nothing can be
/// proven about where the workload may run.
pub fn decide_for_workload(
    workload: &SovereignWorkload,
    classes: &BTreeMap<String, SensitivityClassSpec>,
    candidates: &Candidates,
) -> Decision {
    let class_name = workload.spec.sensitivity.as_str();
    let Some(class) = classes.get(class_name) else {
        return Decision::refused(Reason::ClassNotFound {
            class: class_name.to_owned(),
        });
    };
    let current = current_placements(workload.status.as_ref());
    let request = WorkloadRequest {
        class_name,
        class,
        preferences: &workload.spec.placement,
        replicas: workload.spec.replicas,
        current: &current,
    };
    candidates.decide(&request)
}

/// The placements recorded in status, which the engine keeps while they stay valid.
pub fn current_placements(status: Option<&SovereignWorkloadStatus>) -> Vec<CurrentPlacement> {
    status
        .map(|s| {
            s.placements
                .iter()
                .map(|p| CurrentPlacement {
                    cluster: p.cluster.clone(),
                    pools: p.node_pools.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// How a target is recorded in `status.placements`.
pub fn placement_record(target: &Target, ready_replicas: i32) -> Placement {
    Placement {
        cluster: target.cluster.clone(),
        country: target.country.clone(),
        node_pools: target.pools.clone(),
        replicas: target.replicas,
        ready_replicas,
    }
}

/// The decision as recorded in `status.decision`: sorted, deterministic, human-readable, and
/// bounded by [`bounds`] however many clusters and pools there are.
pub fn decision_record(decision: &Decision) -> PlacementDecision {
    let reasons = match &decision.outcome {
        Outcome::Refused(reasons) => reasons.iter().map(ToString::to_string).collect(),
        Outcome::Placed(_) => Vec::new(),
    };
    let verdicts = &decision.verdicts;
    let pools = verdicts.iter().filter(|v| v.pool.is_some());
    let counts = CandidateCounts {
        clusters: saturating(verdicts.iter().filter(|v| v.pool.is_none()).count()),
        node_pools: saturating(pools.clone().count()),
        accepted_node_pools: saturating(pools.filter(|v| v.compliant).count()),
    };
    // Accepted candidates first: they are the alternatives a reader looks for. Then rejected
    // ones with reasons of their own (a pool rejected only for its cluster says nothing new);
    // every rejection is accounted for in the groups below.
    let (accepted, rejected): (Vec<&Verdict>, Vec<&Verdict>) =
        verdicts.iter().partition(|v| v.compliant);
    let rejected = rejected.into_iter().filter(|v| !v.reasons.is_empty());
    let candidates = accepted
        .into_iter()
        .chain(rejected)
        .take(limit(bounds::LISTED_CANDIDATES))
        .map(|v| CandidateVerdict {
            cluster: v.cluster.clone(),
            node_pool: v.pool.clone(),
            accepted: v.compliant,
            reasons: capped(v.reasons.iter().map(ToString::to_string).collect()),
        })
        .collect();
    PlacementDecision {
        enforcement: decision.enforcement,
        reasons: capped(reasons),
        audit_violations: capped(decision.audit_violations()),
        counts,
        candidates,
        rejected: rejection_groups(verdicts),
    }
}

/// Rejected candidates grouped by reason code: how many each code rejected, the message of the
/// first, and the first few names. Most frequent first, then by code.
fn rejection_groups(verdicts: &[Verdict]) -> Vec<RejectionGroup> {
    let mut groups: BTreeMap<&'static str, RejectionGroup> = BTreeMap::new();
    for verdict in verdicts {
        let subject = match &verdict.pool {
            Some(pool) => format!("{}/{pool}", verdict.cluster),
            None => verdict.cluster.clone(),
        };
        for reason in &verdict.reasons {
            let group = groups
                .entry(reason.code())
                .or_insert_with(|| RejectionGroup {
                    reason: reason.code().to_owned(),
                    count: 0,
                    message: reason.to_string(),
                    examples: Vec::new(),
                });
            group.count = group.count.saturating_add(1);
            if group.examples.len() < limit(bounds::GROUP_EXAMPLES)
                && !group.examples.contains(&subject)
            {
                group.examples.push(subject.clone());
            }
        }
    }
    let mut groups: Vec<RejectionGroup> = groups.into_values().collect();
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
    groups.truncate(limit(bounds::REJECTION_GROUPS));
    groups
}

/// At most [`bounds::DECISION_REASONS`] lines; the last says how many were left out.
fn capped(mut lines: Vec<String>) -> Vec<String> {
    let max = limit(bounds::DECISION_REASONS);
    if lines.len() > max {
        let omitted = lines.len() - (max - 1);
        lines.truncate(max - 1);
        lines.push(format!(
            "... and {omitted} more (sovra plan --explain lists them all)"
        ));
    }
    lines
}

fn limit(bound: u32) -> usize {
    usize::try_from(bound).unwrap_or(usize::MAX)
}

fn saturating(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Placement facts of a SovereignCluster: its spec, whether it is reachable and its pools.
pub fn cluster_facts(
    cluster: &SovereignCluster,
    pools: Vec<NodePool>,
    reachability: Reachability,
) -> ClusterFacts {
    ClusterFacts {
        name: cluster.metadata.name.clone().unwrap_or_default(),
        spec: cluster.spec.clone(),
        reachability,
        pools,
    }
}
