//! Reconciles a SovereignCluster's status: jurisdiction, node pools and their sovereignty,
//! reachability. Reports `SovereigntyLost` when a pool or the cluster stops being sovereign;
//! the workload controller then moves or refuses the affected workloads.

use super::context::Context;
use super::deployment::FIELD_MANAGER;
use super::deployment::WORKLOAD_LABEL;
use super::fleet::{Health, belongs_to, pools_from_status};
use super::metrics::labels;
use super::workload::{Removal, on_member, publish, remove_child};
use crate::Error;
use crate::audit::{AuditAction, AuditEntry, ObjectRef};
use crate::crd::{Jurisdiction, NodePoolStatus, SovereignCluster, SovereignClusterStatus};
use crate::policy::{NodePool, jurisdiction_of};
use futures::FutureExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef as CacheKey;
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Condition on member SovereignClusters: whether the kubeconfig in the Secret is the one in use.
pub const CONDITION_KUBECONFIG: &str = "KubeconfigAccepted";

/// Finalizer on member SovereignClusters: Sovra's Deployments on a member are removed (its
/// workloads moved elsewhere) before Sovra lets go of the connection to it.
pub const DRAIN_FINALIZER: &str = "sovra.dev/drain";

pub async fn reconcile(
    guard: Arc<DeserializeGuard<SovereignCluster>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let cluster = match &guard.0 {
        Ok(cluster) => cluster,
        Err(invalid) => {
            tracing::warn!(name = ?invalid.metadata.name, error = %invalid.error, "SovereignCluster does not match the schema");
            if invalid.metadata.deletion_timestamp.is_some() {
                let api: Api<SovereignCluster> = Api::all(ctx.client.clone());
                super::release_finalizer(&api, &invalid.metadata, DRAIN_FINALIZER).await?;
            }
            return Ok(Action::await_change());
        }
    };
    let is_member = is_member(cluster);
    let has_finalizer = cluster.finalizers().iter().any(|f| f == DRAIN_FINALIZER);
    if !is_member && !has_finalizer {
        return observe(cluster, &ctx).await;
    }
    let api: Api<SovereignCluster> = Api::all(ctx.client.clone());
    let ctx2 = ctx.clone();
    finalizer(
        &api,
        DRAIN_FINALIZER,
        Arc::new(cluster.clone()),
        |event| async move {
            match event {
                Finalizer::Apply(cluster) => observe(&cluster, &ctx2).await,
                Finalizer::Cleanup(cluster) => drain(&cluster, &ctx2).await,
            }
        },
    )
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

fn is_member(cluster: &SovereignCluster) -> bool {
    !cluster.spec.connection.local && cluster.spec.connection.kubeconfig_secret_ref.is_some()
}

/// Missed probes after which a member being deleted is let go without draining it.
const DRAIN_GRACE_PROBES: u32 = 4;

/// A member being deleted is out of every decision already, so its workloads move elsewhere
/// (make before break) and their reconciles remove the children there. Drain waits for that,
/// then removes what is left: children that run nothing (of refused workloads) and orphans.
/// A member that does not answer within a grace period (decommissioned, say) is let go with a
/// Warning, since waiting for it could block forever.
async fn drain(cluster: &SovereignCluster, ctx: &Context) -> Result<Action, Error> {
    let name = cluster.name_any();
    let fleet = &ctx.world.fleet;
    let Some(secret) = cluster
        .spec
        .connection
        .kubeconfig_secret_ref
        .as_ref()
        .filter(|_| is_member(cluster))
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
async fn remove_orphans(cluster: &SovereignCluster, ctx: &Context) -> Result<(), Error> {
    // An unsynced workload cache would make every child look orphaned.
    if ctx.workloads.wait_until_ready().now_or_never().is_none() {
        return Ok(());
    }
    let name = cluster.name_any();
    let fleet = &ctx.world.fleet;
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
}

/// Probes the cluster (members), writes its status and reports lost sovereignty.
async fn observe(cluster: &SovereignCluster, ctx: &Context) -> Result<Action, Error> {
    // Compare with the status Sovra last wrote: the cache may not show that write yet, and
    // comparing with an older status would report the same loss or outage twice.
    let uid = cluster.uid().unwrap_or_default();
    let cluster = &SovereignCluster {
        status: ctx
            .memory
            .cluster_statuses
            .newest(&uid, cluster.status.as_ref()),
        ..cluster.clone()
    };
    let now = Time(jiff::Timestamp::now());
    let name = cluster.name_any();
    let (pools, link, requeue) = match &cluster.spec.connection.kubeconfig_secret_ref {
        Some(secret) if !cluster.spec.connection.local => {
            let fleet = &ctx.world.fleet;
            // Probed once per interval (or sooner while failing); a reconcile woken by a
            // world change reports the last probe's result.
            let health = if fleet.probe_due(&name, ctx.probe_interval) {
                fleet
                    .probe(&name, secret, &ctx.client, &ctx.namespace)
                    .await
            } else {
                fleet.health(&name).unwrap_or(Health::Connecting)
            };
            // Until the member's Node cache has synced, and while it cannot be reached, its
            // pools are the last ones reported: an outage is not a loss of sovereignty.
            let pools = fleet
                .pools(&name, &ctx.world.pool_label)
                .unwrap_or_else(|| pools_from_status(cluster));
            // A member that just failed a probe is probed again soon, to confirm or clear it.
            let next = if fleet.is_suspect(&name) {
                ctx.probe_interval.min(Duration::from_secs(1))
            } else {
                ctx.probe_interval
            };
            let mut link = Link::member(&health);
            link.rotation_refused = Some(fleet.rotation_refused(&name));
            (pools, link, next)
        }
        _ => (
            ctx.world.snapshot().hub_pools.clone(),
            Link::hub(ctx.hub_version.clone()),
            Duration::from_secs(300),
        ),
    };
    ctx.metrics
        .cluster_reachable
        .get_or_create(&labels(&[("cluster", &name)]))
        .set(i64::from(link.reachable));
    let status = cluster_status(cluster, &pools, &link, &now);
    publish_reachability(ctx, cluster, &status).await;
    publish_rotation(ctx, cluster, &status).await;
    if is_member(cluster) {
        remove_orphans(cluster, ctx).await?;
    }

    let lost = sovereignty_lost(cluster.status.as_ref(), &status);
    if !lost.is_empty() {
        let note = format!("no longer sovereign: {}", lost.join("; "));
        ctx.audit
            .record(AuditEntry {
                action: AuditAction::SovereigntyLost,
                object: ObjectRef::from_resource(cluster),
                class: None,
                cluster: Some(cluster.name_any()),
                pools: Vec::new(),
                reasons: lost.clone(),
            })
            .await?;
        publish(
            ctx,
            cluster,
            EventType::Warning,
            "SovereigntyLost",
            "Observe",
            &note,
        )
        .await;
    }

    if cluster.status.as_ref() != Some(&status) {
        let api: Api<SovereignCluster> = Api::all(ctx.client.clone());
        let body = json!({
            "apiVersion": SovereignCluster::api_version(&()),
            "kind": SovereignCluster::kind(&()),
            "status": status,
        });
        api.patch_status(
            &cluster.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
        ctx.memory.cluster_statuses.remember(&uid, status);
    }
    Ok(Action::requeue(requeue))
}

/// How Sovra reaches a cluster, as its status reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub reachable: bool,
    /// Condition reason: `Hub`, `Probed`, or a `ConnectionFault` code.
    pub reason: String,
    pub message: String,
    pub version: Option<String>,
    /// Members only: why the newest kubeconfig was refused while the previous one is still
    /// used (`Some(None)`: the kubeconfig in the Secret is the one in use).
    pub rotation_refused: Option<Option<String>>,
}

impl Link {
    pub fn hub(version: Option<String>) -> Self {
        Self {
            reachable: true,
            reason: "Hub".to_owned(),
            message: "the operator runs in this cluster".to_owned(),
            version,
            rotation_refused: None,
        }
    }

    pub fn member(health: &Health) -> Self {
        match health {
            Health::Reachable { version } => Self {
                reachable: true,
                reason: "Probed".to_owned(),
                message: "the API server answers and Sovra may read its Nodes".to_owned(),
                version: Some(version.clone()),
                rotation_refused: None,
            },
            Health::Unreachable { why, message } => Self {
                reachable: false,
                reason: why.code().to_owned(),
                message: message.clone(),
                version: None,
                rotation_refused: None,
            },
            Health::Connecting => Self {
                reachable: false,
                reason: "Connecting".to_owned(),
                message: "not probed yet".to_owned(),
                version: None,
                rotation_refused: None,
            },
        }
    }
}

/// A Warning `ClusterUnreachable` when the Reachable condition turns False or changes reason,
/// and a Normal `ClusterReachable` when it turns True again.
async fn publish_reachability(
    ctx: &Context,
    cluster: &SovereignCluster,
    status: &SovereignClusterStatus,
) {
    let reachable = |s: &SovereignClusterStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "Reachable")
            .map(|c| (c.status == "True", c.reason.clone()))
    };
    let before = cluster.status.as_ref().and_then(reachable);
    let Some((now_ok, reason)) = reachable(status) else {
        return;
    };
    let message = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Reachable")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    match (before, now_ok) {
        (Some((false, _)), true) => {
            publish(
                ctx,
                cluster,
                EventType::Normal,
                "ClusterReachable",
                "Probe",
                &format!("reachable again: {message}"),
            )
            .await;
        }
        (Some((true, _)) | None, false) if reason != "Connecting" => {
            unreachable_event(ctx, cluster, &reason, &message).await;
        }
        (Some((false, previous)), false) if previous != reason && reason != "Connecting" => {
            unreachable_event(ctx, cluster, &reason, &message).await;
        }
        _ => {}
    }
}

/// A Warning `KubeconfigRefused` when a rotated kubeconfig is refused (or refused for a new
/// reason), and a Normal `KubeconfigAccepted` when the Secret's kubeconfig is in use again.
async fn publish_rotation(
    ctx: &Context,
    cluster: &SovereignCluster,
    status: &SovereignClusterStatus,
) {
    let find = |s: &SovereignClusterStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == CONDITION_KUBECONFIG)
            .map(|c| (c.status.clone(), c.message.clone()))
    };
    let before = cluster.status.as_ref().and_then(find);
    let Some((now, message)) = find(status) else {
        return;
    };
    if before.as_ref() == Some(&(now.clone(), message.clone())) {
        return;
    }
    match (before.as_ref().map(|(s, _)| s.as_str()), now.as_str()) {
        (_, "False") => {
            publish(
                ctx,
                cluster,
                EventType::Warning,
                "KubeconfigRefused",
                "Probe",
                &message,
            )
            .await;
        }
        (Some("False"), "True") => {
            publish(
                ctx,
                cluster,
                EventType::Normal,
                "KubeconfigAccepted",
                "Probe",
                &message,
            )
            .await;
        }
        _ => {}
    }
}

async fn unreachable_event(ctx: &Context, cluster: &SovereignCluster, reason: &str, message: &str) {
    publish(
        ctx,
        cluster,
        EventType::Warning,
        "ClusterUnreachable",
        "Probe",
        &format!(
            "{reason}: {message}; placements there are kept but not updated, and no new ones are made"
        ),
    )
    .await;
}

/// The status Sovra reports for a cluster (pure).
pub fn cluster_status(
    cluster: &SovereignCluster,
    pools: &[NodePool],
    link: &Link,
    now: &Time,
) -> SovereignClusterStatus {
    let jurisdiction = jurisdiction_of(&cluster.spec.country);
    let previous = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let generation = cluster.metadata.generation;
    let pool_status: Vec<NodePoolStatus> = pools
        .iter()
        .map(|p| NodePoolStatus {
            name: p.name.clone(),
            nodes: p.nodes,
            sovereign_nodes: p.sovereign_nodes,
            sovereign: p.is_sovereign() && !p.country_conflict,
            dedicated_to: p.dedicated_to.clone(),
            country: p.country.clone(),
            reasons: p.notes.clone(),
        })
        .collect();
    let sovereign_pools =
        i32::try_from(pool_status.iter().filter(|p| p.sovereign).count()).unwrap_or(i32::MAX);
    let condition = |type_: &str, ok: bool, reason: &str, message: String| {
        super::status::condition(previous, type_, ok, reason, &message, generation, now)
    };
    let reachable_condition = condition(
        "Reachable",
        link.reachable,
        &link.reason,
        link.message.clone(),
    );
    let kubeconfig_condition = link.rotation_refused.as_ref().map(|refused| match refused {
        Some(why) => condition(
            CONDITION_KUBECONFIG,
            false,
            "RotationRefused",
            format!("{why}; Sovra keeps using the previous kubeconfig"),
        ),
        None => condition(
            CONDITION_KUBECONFIG,
            true,
            "InUse",
            "the kubeconfig in the Secret is in use".to_owned(),
        ),
    });
    let sovereign_condition = if jurisdiction == Jurisdiction::ThirdCountry {
        condition(
            "Sovereign",
            false,
            "OutsideEuEea",
            format!("country {} is outside the EU/EEA", cluster.spec.country),
        )
    } else if sovereign_pools == 0 {
        condition(
            "Sovereign",
            false,
            "NoSovereignPool",
            "no node pool has nodes labelled sovereign by an administrator".to_owned(),
        )
    } else {
        condition(
            "Sovereign",
            true,
            "SovereignPools",
            format!("{sovereign_pools} sovereign node pool(s)"),
        )
    };
    SovereignClusterStatus {
        observed_generation: generation,
        jurisdiction: Some(jurisdiction),
        kubernetes_version: link.version.clone().or_else(|| {
            // An unreachable member keeps the version it last reported.
            cluster
                .status
                .as_ref()
                .and_then(|s| s.kubernetes_version.clone())
        }),
        sovereign_pools,
        node_pools: pool_status,
        conditions: [
            Some(reachable_condition),
            kubeconfig_condition,
            Some(sovereign_condition),
        ]
        .into_iter()
        .flatten()
        .collect(),
    }
}

/// What stopped being sovereign between two statuses: pools that were sovereign and are not
/// (or are gone), and the cluster as a whole.
pub fn sovereignty_lost(
    before: Option<&SovereignClusterStatus>,
    after: &SovereignClusterStatus,
) -> Vec<String> {
    let Some(before) = before else {
        return Vec::new();
    };
    let mut lost = Vec::new();
    for pool in before.node_pools.iter().filter(|p| p.sovereign) {
        match after.node_pools.iter().find(|p| p.name == pool.name) {
            Some(now) if now.sovereign => {}
            Some(now) => lost.push(format!(
                "node pool {}: {}",
                pool.name,
                now.reasons.join(", ")
            )),
            None => lost.push(format!("node pool {} has no nodes any more", pool.name)),
        }
    }
    let was = before
        .conditions
        .iter()
        .any(|c| c.type_ == "Sovereign" && c.status == "True");
    if let Some(now) = after
        .conditions
        .iter()
        .find(|c| c.type_ == "Sovereign" && c.status == "False")
        && was
    {
        lost.push(format!("cluster: {}", now.message));
    }
    lost
}
