//! Reconciles a SovereignWorkload: dereference the world, decide, apply (or remove) the
//! children, record what happened, write status. The pieces live beside it: `children`
//! (place, remove), `report` (audit record, Events), `transition` (what changed), `invalid`
//! (objects that do not deserialize).

use super::children::{Removal, member_error, place, plan_removals, remove_children};
use super::context::Context;
use super::deployment::{FIELD_MANAGER, check_template};
use super::exit_status::{exit_change, with_exit};
use super::invalid::reconcile_invalid;
use super::metrics::labels;
use super::report::{entry, publish, publish_decision, publish_exit, record_once};
use super::spare_capacity::ShedSpare;
use super::status::{self, child_conflict_status, invalid_spec_status, truncate, workload_status};
use super::transition::{Transition, transition};
use crate::Error;
use crate::audit::{AuditAction, ObjectRef};
use crate::crd::{SovereignWorkload, SovereignWorkloadStatus};
use crate::policy::{Outcome, decide_for_workload, exit_readiness};
use crate::sync::lock;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Error as FinalizerError, Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Finalizer that lets Sovra record the release of a workload and remove its children
/// everywhere (also on member clusters, where owner references cannot reach) before it goes.
pub const FINALIZER: &str = "sovra.dev/cleanup";

pub async fn reconcile(
    guard: Arc<DeserializeGuard<SovereignWorkload>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let workload = match &guard.0 {
        Ok(workload) => workload,
        Err(invalid) => {
            // Not in the policy report: it has no class to be judged by.
            let done = reconcile_invalid(invalid, FINALIZER, &ctx).await;
            ctx.reports
                .mark(invalid.metadata.namespace.as_deref().unwrap_or_default());
            return done;
        }
    };
    let namespace = workload.namespace().unwrap_or_default();
    let api: Api<SovereignWorkload> = Api::namespaced(ctx.client.clone(), &namespace);
    let ctx2 = ctx.clone();
    // The finalizer goes on before anything is placed, in this reconcile: waiting for the
    // patch's watch event would make every first placement two reconciles.
    let workload = match with_finalizer(&api, workload, &ctx).await {
        Ok(Some(patched)) => patched,
        Ok(None) => workload.clone(),
        Err(error) => return Err(Error::Finalizer(Box::new(error))),
    };
    // Decide from the status Sovra last wrote: the cache may not show that write yet.
    // Both compacted (the cache's are; a patched workload's is whole).
    let uid = workload.uid().unwrap_or_default();
    let cached = workload
        .status
        .clone()
        .map(SovereignWorkloadStatus::compacted);
    let workload = SovereignWorkload {
        status: ctx.memory.workload_statuses.newest(&uid, cached.as_ref()),
        ..workload
    };
    let done = finalizer(&api, FINALIZER, Arc::new(workload), |event| async move {
        match event {
            Finalizer::Apply(workload) => apply(&workload, &ctx2).await,
            Finalizer::Cleanup(workload) => cleanup(&workload, &ctx2).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    // Its result in the namespace's policy report follows the status (unchanged: no write).
    ctx.reports.mark(&namespace);
    done
}

/// Adds Sovra's finalizer to a workload that is not being deleted and lacks it, with the JSON
/// patch kube's `finalizer` helper sends (its `test` fails, 422, when someone else changed the
/// finalizers meanwhile, and the reconcile is retried). Returns the patched workload; `None`
/// when there was nothing to add. `Memory::finalized` holds the workloads it was added to that
/// the cache does not show with it yet: those are taken to have it.
async fn with_finalizer(
    api: &Api<SovereignWorkload>,
    workload: &SovereignWorkload,
    ctx: &Context,
) -> Result<Option<SovereignWorkload>, FinalizerError<Error>> {
    let added = &ctx.memory.finalized;
    let uid = workload.uid().unwrap_or_default();
    if workload.finalizers().iter().any(|f| f == FINALIZER) {
        let mut added = lock(added);
        if added.remove(&uid) {
            added.shed_spare();
        }
        return Ok(None);
    }
    if workload.meta().deletion_timestamp.is_some() {
        return Ok(None);
    }
    if lock(added).contains(&uid) {
        let mut finalized = workload.clone();
        finalized.finalizers_mut().push(FINALIZER.to_owned());
        return Ok(Some(finalized));
    }
    let name = workload
        .meta()
        .name
        .as_deref()
        .ok_or(FinalizerError::UnnamedObject)?;
    let patch = if workload.finalizers().is_empty() {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ])
    } else {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": workload.finalizers()},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
        ])
    };
    let patch: json_patch::Patch =
        serde_json::from_value(patch).map_err(|_| FinalizerError::InvalidFinalizer)?;
    let patched = api
        .patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
        .map_err(FinalizerError::AddFinalizer)?;
    lock(added).insert(uid);
    wrote(ctx, &patched);
    Ok(Some(patched))
}

/// Notes Sovra's own write of a workload (`written`, as the server answered), so that its watch
/// event asks for no reconcile (`OwnWrites`): this reconcile acts on what it says.
fn wrote(ctx: &Context, written: &SovereignWorkload) {
    let key = kube::runtime::reflector::ObjectRef::new(&written.name_any())
        .within(&written.namespace().unwrap_or_default());
    let cached = ctx.workloads.get(&key);
    let cached_version = cached
        .as_ref()
        .and_then(|cached| cached.meta().resource_version.as_deref());
    ctx.memory.own_writes.wrote(written, cached_version);
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
        let removals = plan_removals(workload, ctx, &[]);
        remove_children(workload, ctx, &removals, Removal::ScaleToZero).await?;
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

    let world = ctx.snapshot();
    let decision = decide_for_workload(workload, &world.classes, &world.candidates);
    let change = transition(workload.status.as_ref(), &decision);

    // Act first, record second: the audit trail must never claim a placement that did not
    // happen. Make before break: every target is applied before anything elsewhere is removed.
    // The targets are applied side by side, so one slow member does not hold up the others.
    let placed = futures::future::join_all(
        decision
            .targets()
            .iter()
            .map(|target| place(workload, target, ctx, world.hub.as_deref())),
    )
    .await;
    let mut observed = BTreeMap::new();
    let mut failure = None;
    for (target, result) in decision.targets().iter().zip(placed) {
        match result {
            Ok(Some(seen)) => {
                observed.insert(target.cluster.clone(), seen);
            }
            Ok(None) => {}
            // A conflict is reported in preference to other failures: it needs a person.
            Err(error @ Error::ChildConflict { .. }) => failure = Some(error),
            Err(error) => {
                failure.get_or_insert(error);
            }
        }
    }
    match failure {
        Some(Error::ChildConflict { .. }) => {
            let message = failure.map(|e| e.to_string()).unwrap_or_default();
            return child_conflict(workload, ctx, &message, &now).await;
        }
        Some(error) => return Err(error),
        None => ctx.backoff.reset(&conflict_key(workload)),
    }
    let keep: Vec<String> = decision
        .targets()
        .iter()
        .map(|t| t.cluster.clone())
        .collect();
    // Refused: what runs is scaled to zero (sensitive data must not keep running where it is
    // not allowed) but kept, so the Deployment stays inspectable until the workload goes.
    let removal = match decision.outcome {
        Outcome::Placed(_) => Removal::Delete,
        Outcome::Refused(_) => Removal::ScaleToZero,
    };
    let removals = plan_removals(workload, ctx, &keep);
    remove_children(workload, ctx, &removals, removal).await?;

    // Now that it happened, the decision is recorded (and fsynced), once: a retry after a
    // failed status write finds it recorded already.
    let recorded =
        change != Transition::Unchanged && record_once(ctx, workload, &change, &decision).await?;
    if recorded {
        publish_decision(ctx, workload, &decision, &change, world.clusters()).await;
    }

    let mut status = workload_status(workload, &decision, world.clusters(), &observed, &now);
    let exit = exit_readiness(&decision, world.clusters());
    let previous = workload.status.as_ref().map_or(&[][..], |s| &s.conditions);
    with_exit(&mut status, exit.as_ref(), previous, &now);
    let exit_changed = exit_change(workload.status.as_ref(), &status);
    let newly_unreachable = ready_reason(Some(&status)) == Some("ClusterUnreachable")
        && ready_reason(workload.status.as_ref()) != Some("ClusterUnreachable");
    write_status(workload, ctx, status).await?;
    // After the write, so a retried reconcile (failed write) publishes the change once.
    publish_exit(ctx, workload, exit.as_ref(), exit_changed).await;
    if newly_unreachable {
        let unreachable = decision.unreachable_clusters();
        let note = format!(
            "cluster {} cannot be reached; its placement is kept and runs on unobserved (set spec.placement.failover: true to place elsewhere)",
            unreachable.join(", ")
        );
        publish(
            ctx,
            workload,
            EventType::Warning,
            "PlacementDegraded",
            "Place",
            &note,
        )
        .await;
    }

    let class_label = labels(&[("class", &class)]);
    match (
        &decision.outcome,
        if recorded {
            &change
        } else {
            &Transition::Unchanged
        },
    ) {
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
    if !removals.pending.is_empty() {
        // A child sits on a member that cannot be reached; its return also wakes us.
        return Ok(Action::requeue(ctx.probe_interval));
    }
    // Resynced by the intake's wheel (`intake::RESYNC`), not by a timer of its own.
    Ok(Action::await_change())
}

/// Backoff key for re-checking a child name held by someone else's Deployment, apart from the
/// reconcile-error key that every successful reconcile resets.
fn conflict_key(workload: &SovereignWorkload) -> String {
    format!(
        "conflict/{}",
        ObjectRef::from_resource(workload).qualified_name()
    )
}

/// A Deployment that is not Sovra's holds the child's name: nothing is touched, nothing is
/// recorded (nothing happened), the workload says why, and it is checked again with backoff.
async fn child_conflict(
    workload: &SovereignWorkload,
    ctx: &Context,
    message: &str,
    now: &Time,
) -> Result<Action, Error> {
    let already = workload.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| {
            c.type_ == status::CONDITION_PLACED
                && c.reason == "ChildConflict"
                && c.message == truncate(message, 1024)
        })
    });
    // What was placed before stays as recorded: a status built from a compacted one would
    // erase its decision's candidates, so the whole one is read.
    let whole;
    let workload = match &workload.status {
        Some(cached) if cached.is_compacted() => {
            let api: Api<SovereignWorkload> = Api::namespaced(
                ctx.client.clone(),
                &workload.namespace().unwrap_or_default(),
            );
            whole = SovereignWorkload {
                status: api.get_status(&workload.name_any()).await?.status,
                ..workload.clone()
            };
            &whole
        }
        _ => workload,
    };
    write_status(workload, ctx, child_conflict_status(workload, message, now)).await?;
    if !already {
        publish(
            ctx,
            workload,
            EventType::Warning,
            "ChildConflict",
            "Place",
            message,
        )
        .await;
    }
    let delay = ctx.backoff.next_delay(&conflict_key(workload));
    tracing::warn!(workload = %ObjectRef::from_resource(workload).qualified_name(), retry_in = ?delay, %message, "child conflict");
    Ok(Action::requeue(delay))
}

fn ready_reason(status: Option<&SovereignWorkloadStatus>) -> Option<&str> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == status::CONDITION_READY)
        .map(|c| c.reason.as_str())
}

async fn cleanup(workload: &SovereignWorkload, ctx: &Context) -> Result<Action, Error> {
    let had_placements = workload
        .status
        .as_ref()
        .is_some_and(|s| !s.placements.is_empty());
    let removals = plan_removals(workload, ctx, &[]);
    let waited = workload
        .metadata
        .deletion_timestamp
        .as_ref()
        .and_then(|t| Duration::try_from(jiff::Timestamp::now().duration_since(t.0)).ok())
        .unwrap_or_default();
    if !removals.pending.is_empty() && waited < ctx.cleanup_timeout {
        // Keep the finalizer until the member answers (or the wait runs out): its child must
        // not be left running unnoticed. Nothing is recorded until the release happens.
        return Err(member_error(
            &removals.pending.join(","),
            "unreachable; the workload's Deployment there is removed when it answers again",
        ));
    }
    // Remove first, record second: the trail says what was done.
    remove_children(workload, ctx, &removals, Removal::Delete).await?;
    let uid = workload.uid().unwrap_or_default();
    let unconfirmed = (!removals.pending.is_empty()).then(|| {
        format!(
            "its Deployment on {} was not confirmed removed: the member could not be reached for {} s; it is removed when the member answers again",
            removals.pending.join(", "),
            waited.as_secs()
        )
    });
    if (had_placements || unconfirmed.is_some()) && !lock(&ctx.memory.released).contains(&uid) {
        let mut reasons = vec!["SovereignWorkload deleted".to_owned()];
        reasons.extend(unconfirmed.clone());
        let entry = entry(workload, AuditAction::Released, None, Vec::new(), reasons);
        ctx.audit.record(entry).await?;
        lock(&ctx.memory.released).insert(uid.clone());
        match &unconfirmed {
            Some(note) => {
                publish(
                    ctx,
                    workload,
                    EventType::Warning,
                    "ReleaseUnconfirmed",
                    "Delete",
                    &format!("workload deleted; {note}"),
                )
                .await;
            }
            None => {
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
        }
    }
    // Forget what was remembered of workloads that are gone; this one goes once its finalizer
    // is removed, and is forgotten at a later release.
    let live: std::collections::HashSet<String> = ctx
        .workloads
        .state()
        .iter()
        .filter_map(|guard| match &guard.0 {
            Ok(w) => w.uid(),
            Err(invalid) => invalid.metadata.uid.clone(),
        })
        .collect();
    ctx.memory.prune_workloads(|uid| live.contains(uid));
    ctx.memory.exit.set(&ctx.metrics, &uid, None);
    Ok(Action::await_change())
}

/// Writes status with server-side apply, and only when it differs: no-op writes would wake
/// the controller again (a status self-trigger storm).
async fn write_status(
    workload: &SovereignWorkload,
    ctx: &Context,
    status: SovereignWorkloadStatus,
) -> Result<(), Error> {
    // Compared compacted: equal exactly when the whole statuses are.
    let wanted = status.clone().compacted();
    let current = workload
        .status
        .clone()
        .map(SovereignWorkloadStatus::compacted);
    if current.as_ref() == Some(&wanted) {
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
    let written = api
        .patch_status(
            &workload.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    wrote(ctx, &written);
    // Remembered as the server stored it (times to the second), which is what the cache will
    // show: what was sent would never equal it, and would be kept until the workload goes.
    // Compacted, as the cache keeps it.
    ctx.memory.workload_statuses.remember(
        &workload.uid().unwrap_or_default(),
        written
            .status
            .map(SovereignWorkloadStatus::compacted)
            .unwrap_or(wanted),
    );
    Ok(())
}
