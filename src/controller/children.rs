//! A workload's children: the Deployments Sovra applies for it on the hub and on members.
//! Placing (never onto a Deployment that is not Sovra's), finding the children that must go,
//! and removing them (delete, or scale to zero for a refusal). Member calls are bounded, so
//! one slow member holds up no one else. Cluster drain and the orphan sweep use the same
//! removal.

use super::applied_digest::{holds, same_digest};
use super::caches::child;
use super::child_view::stalled;
use super::context::Context;
use super::deployment::{
    CLUSTER_LABEL, FIELD_MANAGER, desired_deployment, foreign_owner, is_sovra_child,
};
use super::fleet::Lookup;
use super::status::ObservedDeployment;
use crate::Error;
use crate::crd::SovereignWorkload;
use crate::policy::Target;
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Applies the child for `target` on its cluster. `None` when the target is a kept placement
/// on a member that cannot be reached: what runs there is left alone until it answers again.
pub(super) async fn place(
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
        let client = &ctx.client;
        let apply = async {
            if unknown {
                refuse_foreign(client, &target.cluster, &desired).await?;
            }
            apply_child(client, &desired).await
        };
        let read = fetch_child(client, &desired);
        return apply_unless_current(ctx, &key, &desired, cached, read, apply)
            .await
            .map(Some);
    }
    let fleet = &ctx.fleet;
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
    let read = on_member(
        &target.cluster,
        fleet.timeout,
        fetch_child(&client, &desired),
    );
    match apply_unless_current(ctx, &key, &desired, cached, read, apply).await {
        Err(Error::Kube(kube::Error::Api(status))) if status.code == 404 => {
            // The namespace was deleted on the member since Sovra created it.
            fleet.forget_namespace(&target.cluster, &namespace);
            Err(Error::Kube(kube::Error::Api(status)))
        }
        result => result.map(Some),
    }
}

/// Runs `apply` unless the child is exactly what Sovra applied last as `desired`, and returns
/// what the child reports. Current is what Sovra remembers applying; after a restart, which
/// remembers nothing, a cached child that carries the digest of `desired` is `read` whole and
/// current when it [`holds`] every desired field: reading it is no write.
async fn apply_unless_current(
    ctx: &Context,
    key: &str,
    desired: &Deployment,
    cached: Option<Arc<Deployment>>,
    read: impl std::future::Future<Output = Result<Option<Deployment>, Error>>,
    apply: impl std::future::Future<Output = Result<Deployment, Error>>,
) -> Result<ObservedDeployment, Error> {
    if let Some(cached) = &cached {
        if ctx.applied.is_current(key, desired, cached) {
            return Ok(observe(cached));
        }
        if same_digest(cached, desired)
            && let Some(found) = read.await?.filter(|found| holds(found, desired))
        {
            ctx.applied.record(key, desired, &found);
            return Ok(observe(&found));
        }
    }
    let applied = apply.await?;
    ctx.applied.record(key, desired, &applied);
    Ok(observe(&applied))
}

/// The child `desired` names, read whole (the caches keep only part of it).
async fn fetch_child(
    client: &kube::Client,
    desired: &Deployment,
) -> Result<Option<Deployment>, Error> {
    let api: Api<Deployment> = Api::namespaced(
        client.clone(),
        desired.metadata.namespace.as_deref().unwrap_or_default(),
    );
    Ok(api.get_opt(&desired.name_any()).await?)
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

pub(super) fn member_error(cluster: &str, message: &str) -> Error {
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
        stalled: stalled(status),
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
pub(super) struct Removals {
    hub: Option<Arc<Deployment>>,
    members: Vec<(String, kube::Client, Arc<Deployment>)>,
    /// Members that may hold a child but cannot be reached (or their cache has not synced).
    pub pending: Vec<String>,
}

/// Which children of the workload sit on clusters not in `keep` (see [`belongs_to`] for
/// which cluster a child is removed through).
pub(super) fn plan_removals(
    workload: &SovereignWorkload,
    ctx: &Context,
    keep: &[String],
) -> Removals {
    let namespace = workload.namespace().unwrap_or_default();
    let name = workload.name_any();
    let clusters = ctx.world.cluster_names();
    let owned_by = |found: &Deployment, cluster: &str| belongs_to(found, cluster, &clusters);
    // Without a hub SovereignCluster nothing may run on the hub.
    let hub_name = ctx.snapshot().hub.clone().unwrap_or_default();
    let hub = child(&ctx.hub_children, &namespace, &name)
        .filter(|found| owned_by(found, &hub_name) && !keep.contains(&hub_name));
    let placed_before: Vec<&str> = workload
        .status
        .iter()
        .flat_map(|s| s.placements.iter().map(|p| p.cluster.as_str()))
        .collect();
    let fleet = &ctx.fleet;
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
pub(super) async fn remove_children(
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
        let hub = ctx.snapshot().hub.clone().unwrap_or_default();
        ctx.applied.forget(&format!("{hub}/{namespace}/{name}"));
    }
    let fleet = &ctx.fleet;
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

/// Whether `child`, found on the API server of `cluster`, is that SovereignCluster's to remove.
/// A child belongs to the cluster its `sovra.dev/cluster` label names, so two SovereignClusters
/// pointed at one API server never remove each other's children; one whose label is missing or
/// names no existing cluster belongs to whoever finds it, so it cannot be left behind.
pub fn belongs_to(child: &Deployment, cluster: &str, clusters: &BTreeSet<String>) -> bool {
    match child.labels().get(CLUSTER_LABEL) {
        Some(label) if clusters.contains(label) => label == cluster,
        _ => true,
    }
}
