//! Reconciles a SovereignCluster's status: jurisdiction, node pools and their sovereignty,
//! reachability. Reports `SovereigntyLost` when a pool or the cluster stops being sovereign;
//! the workload controller then moves or refuses the affected workloads.

use super::cluster_status::{
    CONDITION_KUBECONFIG, Link, cluster_status, reports_condition, sovereignty_lost,
};
use super::context::Context;
use super::deployment::FIELD_MANAGER;
use super::drain::{drain, remove_orphans};
use super::invalid::release_finalizer;
use super::member_health::Health;
use super::metrics::labels;
use super::pool_status::pools_from_status;
use super::report::publish;
use crate::Error;
use crate::audit::{AuditAction, AuditEntry, ObjectRef};
use crate::crd::{SovereignCluster, SovereignClusterStatus};
use crate::sync::lock;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

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
                release_finalizer(&api, &invalid.metadata, DRAIN_FINALIZER).await?;
            }
            return Ok(Action::await_change());
        }
    };
    let is_member = cluster.is_member();
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
            let fleet = &ctx.fleet;
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
            ctx.snapshot().hub_pools.clone(),
            Link::hub(ctx.hub_version.clone()),
            Duration::from_secs(300),
        ),
    };
    ctx.metrics
        .cluster_reachable
        .get_or_create(&labels(&[("cluster", &name)]))
        .set(i64::from(link.reachable));
    let mut status = cluster_status(cluster, &pools, &link, &now);
    if cluster.spec.connection.local {
        // The hub says whether the policy reports can be written.
        let previous = cluster.status.as_ref().map_or(&[][..], |s| &s.conditions);
        let reports = &ctx.reports;
        status.conditions.extend(reports_condition(
            reports.kind,
            reports.detection(),
            reports.recheck,
            previous,
            cluster.metadata.generation,
            &now,
        ));
    }
    publish_reachability(ctx, cluster, &status).await;
    publish_rotation(ctx, cluster, &status).await;
    if cluster.is_member() {
        remove_orphans(cluster, ctx).await?;
    }

    let lost = sovereignty_lost(cluster.status.as_ref(), &status);
    // Recorded once: a retry after a failed status write judges against the same previous
    // status and finds the same loss, which happened once. The digest is only made for a loss,
    // not on every observation.
    let loss = (!lost.is_empty()).then(|| {
        let mut hasher = std::hash::DefaultHasher::new();
        (
            serde_json::to_string(&cluster.status).unwrap_or_default(),
            &lost,
        )
            .hash(&mut hasher);
        hasher.finish()
    });
    if let Some(loss) =
        loss.filter(|loss| lock(&ctx.memory.sovereignty_lost).get(&uid) != Some(loss))
    {
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
        lock(&ctx.memory.sovereignty_lost).insert(uid.clone(), loss);
    }

    if cluster.status.as_ref() != Some(&status) {
        let api: Api<SovereignCluster> = Api::all(ctx.client.clone());
        let body = json!({
            "apiVersion": SovereignCluster::api_version(&()),
            "kind": SovereignCluster::kind(&()),
            "status": status,
        });
        let written = api
            .patch_status(
                &cluster.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await?;
        // As the server stored it, which the cache will show (see the workload's write).
        ctx.memory
            .cluster_statuses
            .remember(&uid, written.status.unwrap_or(status));
    }
    Ok(Action::requeue(requeue))
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
