//! Workload status from a decision and what was observed (pure). Deterministic: conditions keep
//! their `lastTransitionTime` unless their status flips, so a reconcile that changes nothing
//! produces an identical status and no write.

use crate::crd::{Placement, SovereignWorkload, SovereignWorkloadStatus, WorkloadPhase};
use crate::policy::{
    ClusterFacts, Decision, Outcome, decision_record, placement_record, refusal_summary,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use std::collections::BTreeMap;

pub const CONDITION_PLACED: &str = "Placed";
pub const CONDITION_COMPLIANT: &str = "Compliant";
pub const CONDITION_READY: &str = "Ready";

/// What Sovra saw of one placement's Deployment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedDeployment {
    pub ready_replicas: i32,
    /// The Deployment reports `Progressing=False` (e.g. ProgressDeadlineExceeded).
    pub stalled: bool,
}

/// The status for a workload whose spec cannot be acted on.
pub fn invalid_spec_status(
    workload: &SovereignWorkload,
    message: &str,
    now: &Time,
) -> SovereignWorkloadStatus {
    let previous = previous_conditions(workload);
    let generation = workload.metadata.generation;
    let mut conditions = Vec::new();
    let mut set = |type_: &str, status: bool, reason: &str, message: &str| {
        conditions.push(condition(
            &previous, type_, status, reason, message, generation, now,
        ));
    };
    set(CONDITION_PLACED, false, "InvalidSpec", message);
    set(CONDITION_COMPLIANT, true, "NothingPlaced", "nothing runs");
    set(CONDITION_READY, false, "InvalidSpec", message);
    SovereignWorkloadStatus {
        observed_generation: generation,
        phase: Some(WorkloadPhase::Refused),
        replicas: workload.spec.replicas,
        ready_replicas: 0,
        ready: Some(format!("0/{}", workload.spec.replicas)),
        selector: Some(selector(workload)),
        clusters: None,
        placements: Vec::new(),
        decision: None,
        exit: None,
        conditions,
        compacted_from: None,
        packed_conditions: None,
    }
}

/// The status while a child cannot be placed because a Deployment that is not Sovra's has its
/// name: what was placed before stays as recorded, and `Placed`/`Ready` say why nothing moves.
pub fn child_conflict_status(
    workload: &SovereignWorkload,
    message: &str,
    now: &Time,
) -> SovereignWorkloadStatus {
    let previous = previous_conditions(workload);
    let generation = workload.metadata.generation;
    let mut status = workload.status.clone().unwrap_or_default();
    let conflict = |type_: &str| {
        condition(
            &previous,
            type_,
            false,
            "ChildConflict",
            message,
            generation,
            now,
        )
    };
    let compliant = previous
        .iter()
        .find(|c| c.type_ == CONDITION_COMPLIANT)
        .cloned()
        .unwrap_or_else(|| {
            condition(
                &previous,
                CONDITION_COMPLIANT,
                true,
                "NothingPlaced",
                "nothing runs",
                generation,
                now,
            )
        });
    status.conditions = vec![
        conflict(CONDITION_PLACED),
        compliant,
        conflict(CONDITION_READY),
    ];
    status.observed_generation = generation;
    if status.placements.is_empty() {
        status.phase = Some(WorkloadPhase::Pending);
        status.replicas = workload.spec.replicas.max(0);
        status.ready = Some(format!("0/{}", status.replicas));
        status.selector = Some(selector(workload));
    }
    status
}

fn selector(workload: &SovereignWorkload) -> String {
    format!(
        "{}={}",
        super::deployment::WORKLOAD_LABEL,
        workload.metadata.name.as_deref().unwrap_or_default()
    )
}

fn previous_conditions(workload: &SovereignWorkload) -> Vec<Condition> {
    workload
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default()
}

/// `clusters` are the facts the decision was made from (a refusal's summary names them).
pub fn workload_status(
    workload: &SovereignWorkload,
    decision: &Decision,
    clusters: &[ClusterFacts],
    observed: &BTreeMap<String, ObservedDeployment>,
    now: &Time,
) -> SovereignWorkloadStatus {
    let previous = previous_conditions(workload);
    let generation = workload.metadata.generation;
    let placements: Vec<Placement> = decision
        .targets()
        .iter()
        .map(|t| placement_record(t, observed.get(&t.cluster).map_or(0, |o| o.ready_replicas)))
        .collect();
    let desired = workload.spec.replicas.max(0);
    let ready: i32 = placements.iter().map(|p| p.ready_replicas).sum();
    let unreachable = decision.unreachable_clusters();
    let stalled = decision
        .targets()
        .iter()
        .any(|t| observed.get(&t.cluster).is_some_and(|o| o.stalled));

    let mut conditions = Vec::new();
    let mut set = |type_: &str, status: bool, reason: &str, message: String| {
        conditions.push(condition(
            &previous, type_, status, reason, &message, generation, now,
        ));
    };
    let phase = match &decision.outcome {
        Outcome::Refused(reasons) => {
            let reason = decision.deciding_reason().map_or("Refused", |r| r.code());
            let summary = refusal_summary(decision, clusters, &workload.spec.placement)
                .map_or_else(String::new, |s| format!("{s}. Reasons: "));
            let message = summary
                + &reasons
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
            set(CONDITION_PLACED, false, reason, message);
            set(
                CONDITION_COMPLIANT,
                true,
                "NothingPlaced",
                "nothing runs".to_owned(),
            );
            // The reasons are in the Placed condition already; a second copy would double
            // the size of every refused workload's status.
            set(
                CONDITION_READY,
                false,
                "Refused",
                "nothing runs: the placement was refused (see the Placed condition)".to_owned(),
            );
            WorkloadPhase::Refused
        }
        Outcome::Placed(targets) => {
            let onto = targets
                .iter()
                .map(|t| format!("{} [{}]", t.cluster, t.pools.join(", ")))
                .collect::<Vec<_>>()
                .join("; ");
            set(
                CONDITION_PLACED,
                true,
                "Placed",
                format!("placed onto {onto}"),
            );
            let violations = decision.audit_violations();
            if violations.is_empty() {
                set(
                    CONDITION_COMPLIANT,
                    true,
                    "Compliant",
                    "every requirement of the class is met".to_owned(),
                );
            } else {
                // The reason names the first requirement broken, like Placed's names the one
                // that refused: the policy report's rule.
                let first = targets.iter().flat_map(|t| t.violations.iter()).min();
                set(
                    CONDITION_COMPLIANT,
                    false,
                    first.map_or("AuditViolations", |r| r.code()),
                    format!(
                        "enforcement audit: enforce would refuse: {}",
                        violations.join("; ")
                    ),
                );
            }
            if !unreachable.is_empty() {
                set(
                    CONDITION_READY,
                    false,
                    "ClusterUnreachable",
                    format!("unreachable: {}", unreachable.join(", ")),
                );
            } else if ready >= desired {
                set(
                    CONDITION_READY,
                    true,
                    "ReplicasReady",
                    format!("{ready}/{desired} replicas ready"),
                );
            } else {
                set(
                    CONDITION_READY,
                    false,
                    "ReplicasNotReady",
                    format!("{ready}/{desired} replicas ready"),
                );
            }
            if unreachable.is_empty() && !stalled {
                WorkloadPhase::Placed
            } else {
                WorkloadPhase::Degraded
            }
        }
    };
    let clusters = (!placements.is_empty()).then(|| {
        placements
            .iter()
            .map(|p| p.cluster.as_str())
            .collect::<Vec<_>>()
            .join(",")
    });
    SovereignWorkloadStatus {
        observed_generation: generation,
        phase: Some(phase),
        replicas: desired,
        ready_replicas: ready,
        ready: Some(format!("{ready}/{desired}")),
        selector: Some(selector(workload)),
        clusters,
        placements,
        decision: Some(decision_record(decision)),
        // Set by `exit_status::with_exit`, from the world the decision was made in.
        exit: None,
        conditions,
        compacted_from: None,
        packed_conditions: None,
    }
}

/// A condition whose `lastTransitionTime` is kept from `previous` unless its status changed.
pub(crate) fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_owned();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message: truncate(message, 1024),
        observed_generation: generation,
        last_transition_time,
    }
}

/// Cuts at a character boundary; Events and conditions have size limits.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", text.get(..end).unwrap_or_default())
}
