//! What a workload decision leaves behind for people: the audit record (written once, after
//! the decision was carried out) and the Events on the workload.

use super::context::Context;
use super::exit_status::ExitChange;
use super::exit_tally::Standing;
use super::metrics::labels;
use super::status::truncate;
use super::transition::Transition;
use crate::Error;
use crate::audit::{AuditAction, AuditEntry, ObjectRef};
use crate::crd::SovereignWorkload;
use crate::policy::{ClusterFacts, Decision, ExitReadiness, Outcome, refusal_summary};
use crate::sync::lock;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use std::hash::{Hash, Hasher};

/// Records the decision unless this process recorded the same one for the same generation
/// already. True when it was recorded now.
pub(super) async fn record_once(
    ctx: &Context,
    workload: &SovereignWorkload,
    change: &Transition,
    decision: &Decision,
) -> Result<bool, Error> {
    let uid = workload.uid().unwrap_or_default();
    let key = (workload.metadata.generation, decision_digest(decision));
    if lock(&ctx.memory.recorded).get(&uid) == Some(&key) {
        return Ok(false);
    }
    let action = match change {
        Transition::Placed => AuditAction::Placed,
        Transition::Moved => AuditAction::Moved,
        _ => AuditAction::Refused,
    };
    audit(ctx, workload, action, decision).await?;
    lock(&ctx.memory.recorded).insert(uid, key);
    Ok(true)
}

/// What makes two decisions the same for the audit trail: where the workload runs (clusters,
/// pools, replicas), or why it was refused.
fn decision_digest(decision: &Decision) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    match &decision.outcome {
        Outcome::Placed(targets) => {
            for target in targets {
                (&target.cluster, &target.pools, target.replicas).hash(&mut hasher);
            }
        }
        Outcome::Refused(reasons) => reasons.hash(&mut hasher),
    }
    hasher.finish()
}

async fn audit(
    ctx: &Context,
    workload: &SovereignWorkload,
    action: AuditAction,
    decision: &Decision,
) -> Result<(), Error> {
    let (cluster, pools, reasons) = match &decision.outcome {
        Outcome::Placed(targets) => (
            Some(
                targets
                    .iter()
                    .map(|t| t.cluster.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            targets
                .iter()
                .flat_map(|t| t.pools.iter().map(|p| format!("{}/{}", t.cluster, p)))
                .collect(),
            decision.audit_violations(),
        ),
        Outcome::Refused(_) => (None, Vec::new(), decision.explanation()),
    };
    ctx.audit
        .record(entry(workload, action, cluster, pools, reasons))
        .await?;
    Ok(())
}

pub(super) fn entry(
    workload: &SovereignWorkload,
    action: AuditAction,
    cluster: Option<String>,
    pools: Vec<String>,
    reasons: Vec<String>,
) -> AuditEntry {
    AuditEntry {
        action,
        object: ObjectRef::from_resource(workload),
        class: Some(workload.spec.sensitivity.clone()),
        cluster,
        pools,
        reasons,
    }
}

pub(super) async fn publish_decision(
    ctx: &Context,
    workload: &SovereignWorkload,
    decision: &Decision,
    change: &Transition,
    clusters: &[ClusterFacts],
) {
    match (&decision.outcome, change) {
        (_, Transition::Unchanged) => {}
        (Outcome::Refused(_), _) => {
            // The summary first: Events are cut at 1024 characters.
            let summary = refusal_summary(decision, clusters, &workload.spec.placement)
                .map_or_else(String::new, |s| format!("{s}. "));
            let lines = decision.explanation();
            let note = format!(
                "{summary}No cluster and node pool satisfies class {}; nothing runs: {}",
                workload.spec.sensitivity,
                lines.join("; ")
            );
            publish(
                ctx,
                workload,
                EventType::Warning,
                "PlacementRefused",
                "Place",
                &note,
            )
            .await;
        }
        (Outcome::Placed(targets), _) => {
            let onto = targets
                .iter()
                .map(|t| format!("{} [{}] x{}", t.cluster, t.pools.join(","), t.replicas))
                .collect::<Vec<_>>()
                .join("; ");
            let (reason, verb) = if *change == Transition::Moved {
                ("Moved", "moved to")
            } else {
                ("Placed", "placed onto")
            };
            publish(
                ctx,
                workload,
                EventType::Normal,
                reason,
                "Place",
                &format!("{verb} {onto}"),
            )
            .await;
            let violations = decision.audit_violations();
            if !violations.is_empty() {
                let note = format!(
                    "enforcement audit: placed although enforce would refuse: {}",
                    violations.join("; ")
                );
                publish(
                    ctx,
                    workload,
                    EventType::Warning,
                    "PolicyViolation",
                    "Place",
                    &note,
                )
                .await;
                ctx.metrics
                    .violations
                    .get_or_create(&labels(&[("class", &workload.spec.sensitivity)]))
                    .inc();
            }
        }
    }
}

/// Exit readiness after a decision: the gauges follow the workload's standing, and a Warning
/// `NoExitAlternative` when it became stranded, a Normal `ExitAlternativeAvailable` when it
/// recovered; nothing while it stays as it was.
pub(super) async fn publish_exit(
    ctx: &Context,
    workload: &SovereignWorkload,
    exit: Option<&ExitReadiness>,
    change: Option<ExitChange>,
) {
    let uid = workload.uid().unwrap_or_default();
    let standing = exit.map(|exit| Standing {
        class: workload.spec.sensitivity.clone(),
        providers: exit.providers.clone(),
        stranded: exit.stranded(),
    });
    ctx.memory.exit.set(&ctx.metrics, &uid, standing);
    let Some(exit) = exit else {
        return;
    };
    let runs_on = exit.providers.join(", ");
    match change {
        Some(ExitChange::Stranded) => {
            let note = format!(
                "no compliant cluster of a provider other than {runs_on} could host this workload: if {runs_on} failed or stopped qualifying it could not move; it keeps running"
            );
            publish(
                ctx,
                workload,
                EventType::Warning,
                "NoExitAlternative",
                "Place",
                &note,
            )
            .await;
        }
        Some(ExitChange::Recovered) => {
            let names: Vec<&str> = exit
                .alternatives
                .iter()
                .map(|a| a.cluster.as_str())
                .collect();
            let note = format!(
                "compliant clusters of other providers could host this workload again: {}",
                names.join(", ")
            );
            publish(
                ctx,
                workload,
                EventType::Normal,
                "ExitAlternativeAvailable",
                "Place",
                &note,
            )
            .await;
        }
        None => {}
    }
}

/// Publishes an Event; failures are logged, never fatal: the decision is already recorded in
/// status and the audit trail.
pub async fn publish<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    object: &K,
    type_: EventType,
    reason: &str,
    action: &str,
    note: &str,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(truncate(note, 1024)),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &object.object_ref(&())).await {
        tracing::warn!(%error, reason, "could not publish event");
    }
}
