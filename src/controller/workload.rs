//! Reconciles a SovereignWorkload: dereference the world, decide, record the decision in the
//! audit trail, apply (or remove) the child Deployment, write status, publish Events.

use super::context::Context;
use super::deployment::{self, FIELD_MANAGER, WORKLOAD_LABEL, check_template, desired_deployment};
use super::metrics::labels;
use super::status::{self, ObservedDeployment, invalid_spec_status, truncate, workload_status};
use crate::Error;
use crate::audit::{AuditAction, AuditEntry, ObjectRef};
use crate::crd::{SovereignWorkload, SovereignWorkloadStatus, WorkloadPhase};
use crate::policy::{Decision, Outcome, Target, decide_for_workload};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::core::{DeserializeGuard, DynamicObject, ObjectMeta, error_boundary::InvalidObject};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Finalizer that lets Sovra record the release of a workload and remove its children
/// everywhere (also on member clusters, where owner references cannot reach) before it goes.
pub const FINALIZER: &str = "sovra.dev/cleanup";

/// Safety net: even without any watch event, every workload is re-decided this often.
const RESYNC: Duration = Duration::from_secs(300);

pub async fn reconcile(
    guard: Arc<DeserializeGuard<SovereignWorkload>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let workload = match &guard.0 {
        Ok(workload) => workload,
        Err(invalid) => return reconcile_invalid(invalid, &ctx).await,
    };
    let namespace = workload.namespace().unwrap_or_default();
    let api: Api<SovereignWorkload> = Api::namespaced(ctx.client.clone(), &namespace);
    let ctx2 = ctx.clone();
    finalizer(
        &api,
        FINALIZER,
        Arc::new(workload.clone()),
        |event| async move {
            match event {
                Finalizer::Apply(workload) => apply(&workload, &ctx2).await,
                Finalizer::Cleanup(workload) => cleanup(&workload, &ctx2).await,
            }
        },
    )
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// What changed between the recorded status and the new decision, for Events and the audit
/// trail. Nothing is published when nothing changed, so a resync is silent.
#[derive(Debug, PartialEq, Eq)]
enum Transition {
    Placed,
    Moved,
    Refused,
    Unchanged,
}

fn transition(previous: Option<&SovereignWorkloadStatus>, decision: &Decision) -> Transition {
    let before: Vec<(&str, &[String])> = previous
        .map(|s| {
            s.placements
                .iter()
                .map(|p| (p.cluster.as_str(), p.node_pools.as_slice()))
                .collect()
        })
        .unwrap_or_default();
    let after: Vec<(&str, &[String])> = decision
        .targets()
        .iter()
        .map(|t| (t.cluster.as_str(), t.pools.as_slice()))
        .collect();
    let was_refused = previous.and_then(|s| s.phase) == Some(WorkloadPhase::Refused);
    match &decision.outcome {
        Outcome::Refused(reasons) if was_refused && before.is_empty() => {
            let same = previous.and_then(|s| s.decision.as_ref()).is_some_and(|d| {
                d.reasons
                    .iter()
                    .cloned()
                    .eq(reasons.iter().map(ToString::to_string))
            });
            if same {
                Transition::Unchanged
            } else {
                Transition::Refused
            }
        }
        Outcome::Refused(_) => Transition::Refused,
        Outcome::Placed(_) if before.is_empty() => Transition::Placed,
        Outcome::Placed(_) if before != after => Transition::Moved,
        Outcome::Placed(_) => Transition::Unchanged,
    }
}

async fn apply(workload: &SovereignWorkload, ctx: &Context) -> Result<Action, Error> {
    let now = Time(jiff::Timestamp::now());
    let class = workload.spec.sensitivity.clone();
    if let Err(invalid) = check_template(workload) {
        let message = invalid.to_string();
        let already = workload.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.reason == "InvalidSpec" && c.message == truncate(&message, 1024))
        });
        remove_children(workload, ctx, &[]).await?;
        if !already {
            publish(
                ctx,
                workload,
                EventType::Warning,
                "InvalidSpec",
                "Validate",
                &message,
            )
            .await;
        }
        write_status(workload, ctx, invalid_spec_status(workload, &message, &now)).await?;
        return Ok(Action::await_change());
    }

    let world = ctx.world.snapshot();
    let decision = decide_for_workload(workload, &world.classes, &world.clusters);
    let change = transition(workload.status.as_ref(), &decision);

    // The audit record is written (and fsynced) before acting, so nothing Sovra does is
    // missing from the trail even if it crashes half-way.
    if change != Transition::Unchanged {
        let action = match change {
            Transition::Placed => AuditAction::Placed,
            Transition::Moved => AuditAction::Moved,
            _ => AuditAction::Refused,
        };
        audit(ctx, workload, action, &decision).await?;
    }

    let hub = world.hub.clone();
    let mut observed = BTreeMap::new();
    let mut kept = Vec::new();
    for target in decision.targets() {
        if Some(target.cluster.as_str()) == hub.as_deref() {
            observed.insert(
                target.cluster.clone(),
                apply_child(workload, target, ctx).await?,
            );
            kept.push(target.cluster.clone());
        }
    }
    remove_children(workload, ctx, &kept).await?;

    let status = workload_status(workload, &decision, &observed, &now);
    write_status(workload, ctx, status).await?;
    publish_decision(ctx, workload, &decision, &change).await;

    let class_label = labels(&[("class", &class)]);
    match (&decision.outcome, &change) {
        (Outcome::Placed(_), Transition::Placed | Transition::Moved) => {
            ctx.metrics.placements.get_or_create(&class_label).inc();
        }
        (Outcome::Refused(_), Transition::Refused) => {
            let code = decision.deciding_reason().map_or("Refused", |r| r.code());
            ctx.metrics
                .refusals
                .get_or_create(&labels(&[("class", &class), ("reason", code)]))
                .inc();
        }
        _ => {}
    }
    Ok(Action::requeue(RESYNC))
}

async fn apply_child(
    workload: &SovereignWorkload,
    target: &Target,
    ctx: &Context,
) -> Result<ObservedDeployment, Error> {
    let desired = desired_deployment(workload, target, &ctx.world.pool_label, true)?;
    let api: Api<Deployment> = Api::namespaced(
        ctx.client.clone(),
        &workload.namespace().unwrap_or_default(),
    );
    let applied = api
        .patch(
            &workload.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&desired),
        )
        .await?;
    let status = applied.status.unwrap_or_default();
    Ok(ObservedDeployment {
        ready_replicas: status.ready_replicas.unwrap_or(0),
        stalled: status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Progressing" && c.status == "False"),
    })
}

/// Deletes this workload's Deployments on the hub except those on `keep` clusters. Found by
/// label, so children left behind by an earlier placement (or a crash) are removed too.
async fn remove_children(
    workload: &SovereignWorkload,
    ctx: &Context,
    keep: &[String],
) -> Result<(), Error> {
    let api: Api<Deployment> = Api::namespaced(
        ctx.client.clone(),
        &workload.namespace().unwrap_or_default(),
    );
    let selector = format!(
        "{},{WORKLOAD_LABEL}={}",
        deployment::managed_selector(),
        workload.name_any()
    );
    let children = api.list(&ListParams::default().labels(&selector)).await?;
    for child in children {
        let cluster = child
            .labels()
            .get(deployment::CLUSTER_LABEL)
            .cloned()
            .unwrap_or_default();
        if keep.contains(&cluster) {
            continue;
        }
        match api
            .delete(&child.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn cleanup(workload: &SovereignWorkload, ctx: &Context) -> Result<Action, Error> {
    let had_placements = workload
        .status
        .as_ref()
        .is_some_and(|s| !s.placements.is_empty());
    if had_placements {
        let entry = entry(
            workload,
            AuditAction::Released,
            None,
            Vec::new(),
            vec!["SovereignWorkload deleted".to_owned()],
        );
        ctx.audit.record(entry).await?;
    }
    remove_children(workload, ctx, &[]).await?;
    if had_placements {
        publish(
            ctx,
            workload,
            EventType::Normal,
            "Released",
            "Delete",
            "workload deleted; its Deployments were removed",
        )
        .await;
    }
    Ok(Action::await_change())
}

/// Writes status with server-side apply, and only when it differs: no-op writes would wake
/// the controller again (a status self-trigger storm).
async fn write_status(
    workload: &SovereignWorkload,
    ctx: &Context,
    status: SovereignWorkloadStatus,
) -> Result<(), Error> {
    if workload.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<SovereignWorkload> = Api::namespaced(
        ctx.client.clone(),
        &workload.namespace().unwrap_or_default(),
    );
    let body = json!({
        "apiVersion": SovereignWorkload::api_version(&()),
        "kind": SovereignWorkload::kind(&()),
        "status": status,
    });
    api.patch_status(
        &workload.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
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

fn entry(
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

async fn publish_decision(
    ctx: &Context,
    workload: &SovereignWorkload,
    decision: &Decision,
    change: &Transition,
) {
    match (&decision.outcome, change) {
        (_, Transition::Unchanged) => {}
        (Outcome::Refused(_), _) => {
            let lines = decision.explanation();
            let note = format!(
                "no cluster and node pool satisfies class {}; nothing runs: {}",
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

/// A workload that does not deserialize: report it on the object (Event and status condition),
/// touch nothing else, and let it go if it is being deleted.
async fn reconcile_invalid(invalid: &InvalidObject, ctx: &Context) -> Result<Action, Error> {
    let meta: &ObjectMeta = &invalid.metadata;
    let name = meta.name.clone().unwrap_or_default();
    let namespace = meta.namespace.clone().unwrap_or_default();
    tracing::warn!(%namespace, %name, error = %invalid.error, "SovereignWorkload does not match the schema");
    let api: Api<SovereignWorkload> = Api::namespaced(ctx.client.clone(), &namespace);
    if meta.deletion_timestamp.is_some() {
        let finalizers: Vec<String> = meta
            .finalizers
            .iter()
            .flatten()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": meta.resource_version}});
        api.patch_metadata(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        return Ok(Action::await_change());
    }
    let message = truncate(
        &format!(
            "spec does not match the SovereignWorkload schema: {}",
            invalid.error
        ),
        1024,
    );
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(SovereignWorkload::api_version(&()).into_owned()),
        kind: Some(SovereignWorkload::kind(&()).into_owned()),
        name: Some(name.clone()),
        namespace: Some(namespace.clone()),
        uid: meta.uid.clone(),
        ..Default::default()
    };
    let event = Event {
        type_: EventType::Warning,
        reason: "InvalidSpec".to_owned(),
        note: Some(message.clone()),
        action: "Validate".to_owned(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &reference).await {
        tracing::warn!(%error, "could not publish event");
    }
    // Read the raw status to keep the write deterministic (no rewrite when already reported).
    let raw: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        &namespace,
        &kube::core::ApiResource::erase::<SovereignWorkload>(&()),
    );
    let current = raw.get(&name).await?;
    let reported = current
        .data
        .pointer("/status/conditions")
        .and_then(|c| c.as_array())
        .is_some_and(|conditions| {
            conditions.iter().any(|c| {
                c.get("reason").and_then(|r| r.as_str()) == Some("InvalidSpec")
                    && c.get("message").and_then(|m| m.as_str()) == Some(message.as_str())
            })
        });
    if !reported {
        let now = Time(jiff::Timestamp::now());
        let condition = |type_: &str| {
            json!({"type": type_, "status": "False", "reason": "InvalidSpec", "message": message,
                   "lastTransitionTime": now, "observedGeneration": meta.generation})
        };
        let body = json!({
            "apiVersion": SovereignWorkload::api_version(&()),
            "kind": SovereignWorkload::kind(&()),
            "status": {"phase": "Refused", "conditions": [condition(status::CONDITION_PLACED), condition(status::CONDITION_READY)]},
        });
        raw.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Placement;
    use crate::policy::Reason;

    fn placed(cluster: &str, pool: &str) -> Decision {
        Decision {
            enforcement: Default::default(),
            outcome: Outcome::Placed(vec![Target {
                cluster: cluster.into(),
                country: "NL".into(),
                pools: vec![pool.into()],
                replicas: 1,
                dedicated_to: None,
                violations: vec![],
                reachable: true,
            }]),
            verdicts: vec![],
        }
    }

    fn status_on(cluster: &str, pool: &str) -> SovereignWorkloadStatus {
        SovereignWorkloadStatus {
            phase: Some(WorkloadPhase::Placed),
            placements: vec![Placement {
                cluster: cluster.into(),
                node_pools: vec![pool.into()],
                ..Placement::default()
            }],
            ..SovereignWorkloadStatus::default()
        }
    }

    #[test]
    fn first_placement_is_placed_a_different_pool_is_a_move_and_the_same_is_unchanged() {
        assert_eq!(transition(None, &placed("a", "p")), Transition::Placed);
        assert_eq!(
            transition(Some(&status_on("a", "p")), &placed("a", "q")),
            Transition::Moved
        );
        assert_eq!(
            transition(Some(&status_on("a", "p")), &placed("a", "p")),
            Transition::Unchanged
        );
    }

    #[test]
    fn a_repeated_identical_refusal_is_not_reported_again() {
        let refused = Decision::refused(Reason::NoClusters);
        let mut status = SovereignWorkloadStatus {
            phase: Some(WorkloadPhase::Refused),
            decision: Some(crate::policy::decision_record(&refused)),
            ..SovereignWorkloadStatus::default()
        };
        assert_eq!(transition(Some(&status), &refused), Transition::Unchanged);
        status.decision = None;
        assert_eq!(transition(Some(&status), &refused), Transition::Refused);
        assert_eq!(
            transition(Some(&status_on("a", "p")), &refused),
            Transition::Refused
        );
    }
}
