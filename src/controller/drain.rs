//! Letting go of a member: drain (its workloads move elsewhere, then what is left is removed)
//! before the connection goes, and the orphan sweep, which removes children on a member whose
//! SovereignWorkload no longer exists.

use super::children::{Removal, belongs_to, on_member, remove_child};
use super::context::Context;
use super::deployment::WORKLOAD_LABEL;
use super::metrics::labels;
use super::report::publish;
use crate::Error;
use crate::crd::SovereignCluster;
use futures::FutureExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef as CacheKey;
use std::time::Duration;

/// Missed probes after which a member being deleted is let go without draining it.
const DRAIN_GRACE_PROBES: u32 = 4;

/// A member being deleted is out of every decision already, so its workloads move elsewhere
/// (make before break) and their reconciles remove the children there. Drain waits for that,
/// then removes what is left: children that run nothing (of refused workloads) and orphans.
/// A member that does not answer within a grace period (decommissioned, say) is let go with a
/// Warning, since waiting for it could block forever.
pub(super) async fn drain(cluster: &SovereignCluster, ctx: &Context) -> Result<Action, Error> {
    let name = cluster.name_any();
    let fleet = &ctx.fleet;
    let Some(secret) = cluster
        .spec
        .connection
        .kubeconfig_secret_ref
        .as_ref()
        .filter(|_| cluster.is_member())
    else {
        return Ok(Action::await_change());
    };
    // Only cleanup runs for a cluster being deleted: probe here, or its health stays frozen.
    fleet
        .probe(&name, secret, &ctx.client, &ctx.namespace)
        .await;
    let since = cluster
        .metadata
        .deletion_timestamp
        .as_ref()
        .and_then(|t| Duration::try_from(jiff::Timestamp::now().duration_since(t.0)).ok())
        .unwrap_or_default();
    let grace = ctx.probe_interval.saturating_mul(DRAIN_GRACE_PROBES);
    let waiting = |message: String| {
        Err(Error::MemberCluster {
            cluster: name.clone(),
            message,
        })
    };
    let (Some(client), Some(children)) = (fleet.client(&name), fleet.children_on(&name)) else {
        if since < grace {
            return waiting("being deleted but not reachable; waiting before letting go".into());
        }
        let seen = fleet.children_on(&name).map_or(0, |c| c.len());
        publish(
            ctx,
            cluster,
            EventType::Warning,
            "DrainSkipped",
            "Delete",
            &format!(
                "the cluster cannot be reached; {seen} Sovra Deployment(s) last seen there were not removed"
            ),
        )
        .await;
        forget_cluster(ctx, cluster);
        return Ok(Action::await_change());
    };
    let clusters = ctx.world.cluster_names();
    let children: Vec<_> = children
        .into_iter()
        .filter(|c| belongs_to(c, &name, &clusters))
        .collect();
    let running = children
        .iter()
        .filter(|c| c.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1) > 0)
        .count();
    if running > 0 && since < grace {
        // An error keeps the finalizer (and so the connection); retried with backoff.
        return waiting(format!(
            "draining: {running} Sovra Deployment(s) still run; their workloads are moving"
        ));
    }
    for child in &children {
        let api: Api<Deployment> =
            Api::namespaced(client.clone(), &child.namespace().unwrap_or_default());
        on_member(
            &name,
            fleet.timeout,
            remove_child(&api, child, Removal::Delete),
        )
        .await?;
    }
    let note = if running > 0 {
        format!(
            "{running} Sovra Deployment(s) whose workloads did not move within {} s were removed",
            grace.as_secs()
        )
    } else {
        "no Sovra Deployments remain on the cluster".to_owned()
    };
    publish(ctx, cluster, EventType::Normal, "Drained", "Delete", &note).await;
    forget_cluster(ctx, cluster);
    Ok(Action::await_change())
}

/// Removes children on a member whose SovereignWorkload no longer exists. On the hub owner
/// references do this; on a member nothing else would: a workload deleted while the member
/// could not be reached (or while Sovra was down) leaves its child running there.
pub(super) async fn remove_orphans(cluster: &SovereignCluster, ctx: &Context) -> Result<(), Error> {
    // An unsynced workload cache would make every child look orphaned.
    if ctx.workloads.wait_until_ready().now_or_never().is_none() {
        return Ok(());
    }
    let name = cluster.name_any();
    let fleet = &ctx.fleet;
    let (Some(client), Some(children)) = (fleet.client(&name), fleet.children_on(&name)) else {
        return Ok(());
    };
    let clusters = ctx.world.cluster_names();
    for child in children {
        let namespace = child.namespace().unwrap_or_default();
        let Some(workload) = child.labels().get(WORKLOAD_LABEL) else {
            continue;
        };
        let exists = ctx
            .workloads
            .get(&CacheKey::new(workload).within(&namespace))
            .is_some();
        if exists || !belongs_to(&child, &name, &clusters) {
            continue;
        }
        let api: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
        let removed = on_member(
            &name,
            fleet.timeout,
            remove_child(&api, &child, Removal::Delete),
        )
        .await?;
        if !removed {
            continue;
        }
        publish(
            ctx,
            cluster,
            EventType::Normal,
            "OrphanRemoved",
            "Cleanup",
            &format!(
                "removed Deployment {namespace}/{}: its SovereignWorkload no longer exists",
                child.name_any()
            ),
        )
        .await;
    }
    Ok(())
}

/// Drops what Sovra kept about a cluster that is gone.
fn forget_cluster(ctx: &Context, cluster: &SovereignCluster) {
    ctx.metrics
        .cluster_reachable
        .remove(&labels(&[("cluster", &cluster.name_any())]));
    ctx.memory
        .cluster_statuses
        .forget(&cluster.uid().unwrap_or_default());
    ctx.applied.forget_cluster(&cluster.name_any());
    crate::sync::lock(&ctx.memory.sovereignty_lost).remove(&cluster.uid().unwrap_or_default());
}
