//! Reconciles a SovereignWorkload: dereference the world, decide, record the decision in the
//! audit trail, apply (or remove) the child Deployment, write status, publish Events.

use super::context::{Context, lock};
use super::deployment::{
    FIELD_MANAGER, check_template, desired_deployment, foreign_owner, is_sovra_child,
};
use super::fleet::{Lookup, belongs_to, child};
use super::metrics::labels;
use super::status::{
    self, ObservedDeployment, child_conflict_status, invalid_spec_status, truncate, workload_status,
};
use crate::Error;
use crate::audit::{AuditAction, AuditEntry, ObjectRef};
use crate::crd::{SovereignWorkload, SovereignWorkloadStatus, WorkloadPhase};
use crate::policy::{Decision, Outcome, Target, decide_for_workload};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::core::{DeserializeGuard, DynamicObject, ObjectMeta, error_boundary::InvalidObject};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
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
    // Decide from the status Sovra last wrote: the cache may not show that write yet.
    let uid = workload.uid().unwrap_or_default();
    let workload = SovereignWorkload {
        status: ctx
            .memory
            .workload_statuses
            .newest(&uid, workload.status.as_ref()),
        ..workload.clone()
    };
    finalizer(&api, FINALIZER, Arc::new(workload), |event| async move {
        match event {
            Finalizer::Apply(workload) => apply(&workload, &ctx2).await,
            Finalizer::Cleanup(workload) => cleanup(&workload, &ctx2).await,
        }
    })
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

    let world = ctx.world.snapshot();
    let decision = decide_for_workload(workload, &world.classes, &world.clusters);
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
        publish_decision(ctx, workload, &decision, &change).await;
    }

    let status = workload_status(workload, &decision, &observed, &now);
    let newly_unreachable = ready_reason(Some(&status)) == Some("ClusterUnreachable")
        && ready_reason(workload.status.as_ref()) != Some("ClusterUnreachable");
    write_status(workload, ctx, status).await?;
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
    Ok(Action::requeue(RESYNC))
}

/// Records the decision unless this process recorded the same one for the same generation
/// already. True when it was recorded now.
async fn record_once(
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

/// Applies the child for `target` on its cluster. `None` when the target is a kept placement
/// on a member that cannot be reached: what runs there is left alone until it answers again.
async fn place(
    workload: &SovereignWorkload,
    target: &Target,
    ctx: &Context,
    hub: Option<&str>,
) -> Result<Option<ObservedDeployment>, Error> {
    let namespace = workload.namespace().unwrap_or_default();
    let name = workload.name_any();
    let key = format!("{}/{namespace}/{name}", target.cluster);
    if Some(target.cluster.as_str()) == hub {
        let desired = desired_deployment(workload, target, &ctx.world.pool_label, true)?;
        let cached = child(&ctx.hub_children, &namespace, &name);
        let unknown = cached.is_none();
        let apply = async {
            if unknown {
                refuse_foreign(&ctx.client, &target.cluster, &desired).await?;
            }
            apply_child(&ctx.client, &desired).await
        };
        return apply_unless_current(ctx, &key, &desired, cached, apply)
            .await
            .map(Some);
    }
    let fleet = &ctx.world.fleet;
    let Some(client) = fleet.client(&target.cluster) else {
        if target.reachable {
            // The snapshot said reachable, the member's last probe says otherwise: decide again.
            return Err(member_error(&target.cluster, "not reachable any more"));
        }
        return Ok(None);
    };
    let desired = desired_deployment(workload, target, &ctx.world.pool_label, false)?;
    let cached = match fleet.child(&target.cluster, &namespace, &name) {
        Lookup::Present(cached) => Some(cached),
        Lookup::Absent | Lookup::Unknown => None,
    };
    let unknown = cached.is_none();
    let apply = on_member(&target.cluster, fleet.timeout, async {
        fleet
            .ensure_namespace(&target.cluster, &client, &namespace)
            .await?;
        if unknown {
            refuse_foreign(&client, &target.cluster, &desired).await?;
        }
        apply_child(&client, &desired).await
    });
    match apply_unless_current(ctx, &key, &desired, cached, apply).await {
        Err(Error::Kube(kube::Error::Api(status))) if status.code == 404 => {
            // The namespace was deleted on the member since Sovra created it.
            fleet.forget_namespace(&target.cluster, &namespace);
            Err(Error::Kube(kube::Error::Api(status)))
        }
        result => result.map(Some),
    }
}

/// Runs `apply` unless the cached child is exactly what Sovra applied last as `desired`, and
/// returns what the child reports.
async fn apply_unless_current(
    ctx: &Context,
    key: &str,
    desired: &Deployment,
    cached: Option<Arc<Deployment>>,
    apply: impl std::future::Future<Output = Result<Deployment, Error>>,
) -> Result<ObservedDeployment, Error> {
    if let Some(cached) = cached.filter(|c| ctx.applied.is_current(key, desired, c)) {
        return Ok(observe(&cached));
    }
    let applied = apply.await?;
    ctx.applied.record(key, desired, &applied);
    Ok(observe(&applied))
}

/// Bounds a call to a member: a slow member fails this reconcile (and is retried with
/// backoff) instead of holding up a worker.
pub(super) async fn on_member<T>(
    cluster: &str,
    timeout: Duration,
    call: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(timeout, call).await {
        // An answer with a status (409, 404, ...) is the member's verdict; anything else
        // (refused, reset, TLS) means the member itself is in trouble.
        Ok(Err(Error::Kube(error))) if !matches!(error, kube::Error::Api(_)) => {
            Err(member_error(cluster, &error.to_string()))
        }
        Ok(result) => result,
        Err(_) => Err(member_error(
            cluster,
            &format!("no answer within {} s", timeout.as_secs_f32()),
        )),
    }
}

fn member_error(cluster: &str, message: &str) -> Error {
    Error::MemberCluster {
        cluster: cluster.to_owned(),
        message: message.to_owned(),
    }
}

/// Before the first apply of a child the cache does not hold: a Deployment of that name that is
/// not Sovra's (the cache only holds Sovra's) must never be overwritten by a forced apply.
async fn refuse_foreign(
    client: &kube::Client,
    cluster: &str,
    desired: &Deployment,
) -> Result<(), Error> {
    let namespace = desired.metadata.namespace.as_deref().unwrap_or_default();
    let name = desired.name_any();
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let workload = desired
        .labels()
        .get(super::deployment::WORKLOAD_LABEL)
        .cloned()
        .unwrap_or_default();
    match api.get_opt(&name).await? {
        Some(found) if !is_sovra_child(&found, &workload) => Err(Error::ChildConflict {
            cluster: cluster.to_owned(),
            namespace: namespace.to_owned(),
            name,
            owner: foreign_owner(&found),
        }),
        _ => Ok(()),
    }
}

async fn apply_child(client: &kube::Client, desired: &Deployment) -> Result<Deployment, Error> {
    let api: Api<Deployment> = Api::namespaced(
        client.clone(),
        desired.metadata.namespace.as_deref().unwrap_or_default(),
    );
    let applied = api
        .patch(
            &desired.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(desired),
        )
        .await?;
    Ok(applied)
}

fn observe(child: &Deployment) -> ObservedDeployment {
    let status = child.status.as_ref();
    ObservedDeployment {
        ready_replicas: status.and_then(|s| s.ready_replicas).unwrap_or(0),
        stalled: status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c.type_ == "Progressing" && c.status == "False")
            }),
    }
}

/// What happens to a child on a cluster the workload no longer runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Removal {
    Delete,
    ScaleToZero,
}

/// The children of a workload that must go, found in the caches of Sovra-managed
/// Deployments (so children left by an earlier placement or a crash go too).
struct Removals {
    hub: Option<Arc<Deployment>>,
    members: Vec<(String, kube::Client, Arc<Deployment>)>,
    /// Members that may hold a child but cannot be reached (or their cache has not synced).
    pending: Vec<String>,
}

/// Which children of the workload sit on clusters not in `keep` (see [`belongs_to`] for
/// which cluster a child is removed through).
fn plan_removals(workload: &SovereignWorkload, ctx: &Context, keep: &[String]) -> Removals {
    let namespace = workload.namespace().unwrap_or_default();
    let name = workload.name_any();
    let clusters = ctx.world.cluster_names();
    let owned_by = |found: &Deployment, cluster: &str| belongs_to(found, cluster, &clusters);
    // Without a hub SovereignCluster nothing may run on the hub.
    let hub_name = ctx.world.snapshot().hub.clone().unwrap_or_default();
    let hub = child(&ctx.hub_children, &namespace, &name)
        .filter(|found| owned_by(found, &hub_name) && !keep.contains(&hub_name));
    let placed_before: Vec<&str> = workload
        .status
        .iter()
        .flat_map(|s| s.placements.iter().map(|p| p.cluster.as_str()))
        .collect();
    let fleet = &ctx.world.fleet;
    let mut removals = Removals {
        hub,
        members: Vec::new(),
        pending: Vec::new(),
    };
    for member in fleet.names() {
        if keep.contains(&member) {
            continue;
        }
        match (
            fleet.child(&member, &namespace, &name),
            fleet.client(&member),
        ) {
            (Lookup::Present(found), Some(client)) if owned_by(&found, &member) => {
                removals.members.push((member, client, found));
            }
            (Lookup::Present(found), None) if owned_by(&found, &member) => {
                removals.pending.push(member);
            }
            // Not seen yet: only a cluster the workload was placed on is known to hold one.
            (Lookup::Unknown, _) if placed_before.contains(&member.as_str()) => {
                removals.pending.push(member);
            }
            _ => {}
        }
    }
    removals
}

/// Removes the planned children, members side by side.
async fn remove_children(
    workload: &SovereignWorkload,
    ctx: &Context,
    removals: &Removals,
    removal: Removal,
) -> Result<(), Error> {
    let namespace = workload.namespace().unwrap_or_default();
    let name = workload.name_any();
    if let Some(found) = &removals.hub {
        let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
        remove_child(&api, found, removal).await?;
        let hub = ctx.world.snapshot().hub.clone().unwrap_or_default();
        ctx.applied.forget(&format!("{hub}/{namespace}/{name}"));
    }
    let fleet = &ctx.world.fleet;
    let (namespace, name) = (&namespace, &name);
    let removed =
        futures::future::join_all(removals.members.iter().map(|(member, client, found)| {
            let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
            async move {
                on_member(member, fleet.timeout, remove_child(&api, found, removal)).await?;
                ctx.applied.forget(&format!("{member}/{namespace}/{name}"));
                Ok::<(), Error>(())
            }
        }))
        .await;
    removed.into_iter().collect()
}

/// Deletes a child or scales it to zero. False when there was nothing to do: it was gone
/// already, or already at zero.
pub(super) async fn remove_child(
    api: &Api<Deployment>,
    child: &Deployment,
    removal: Removal,
) -> Result<bool, Error> {
    let name = &child.name_any();
    let replicas = child.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let result = match removal {
        Removal::Delete => api
            .delete(name, &DeleteParams::background())
            .await
            .map(|_| ()),
        Removal::ScaleToZero if replicas == 0 => return Ok(false),
        Removal::ScaleToZero => {
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PatchParams::default()
            };
            api.patch(
                name,
                &params,
                &Patch::Merge(json!({"spec": {"replicas": 0}})),
            )
            .await
            .map(|_| ())
        }
    };
    match result {
        Ok(()) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
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
    ctx.memory
        .workload_statuses
        .remember(&workload.uid().unwrap_or_default(), status);
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
        super::release_finalizer(&api, meta, FINALIZER).await?;
        return Ok(Action::await_change());
    }
    // serde's "at line 1 column 345" says where in the JSON the API server sent, which moves
    // whenever any other field changes: it is no part of the problem.
    let error = invalid.error.to_string();
    let error = error.split(" at line ").next().unwrap_or(&error);
    let message = truncate(
        &format!("spec does not match the SovereignWorkload schema: {error}"),
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
    // Published once per distinct problem: a resync or a relist of the same broken object
    // sends nothing, and nothing is read back to find out.
    let uid = meta.uid.clone().unwrap_or_default();
    let problem = {
        let mut hasher = std::hash::DefaultHasher::new();
        message.hash(&mut hasher);
        hasher.finish()
    };
    if lock(&ctx.memory.invalid).get(&uid) == Some(&problem) {
        return Ok(Action::await_change());
    }
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
    let raw: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        &namespace,
        &kube::core::ApiResource::erase::<SovereignWorkload>(&()),
    );
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
    lock(&ctx.memory.invalid).insert(uid, problem);
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
