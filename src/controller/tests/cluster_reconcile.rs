//! The cluster reconciler on the hub, against exact scripts of API requests. The hub is not a
//! member: it has no finalizer, no probe and no orphan sweep, so its reconcile only writes
//! status (when it changed) and reports lost sovereignty (audit record, then Event, then
//! status, awaited one after the other).

use super::super::cluster::reconcile;
use super::fixtures::{Cluster, Harness, Step, within};
use super::objects::{HUB, condition, hub_cluster, node, shipped_classes};
use super::requests::{cluster_status, publish_event};
use crate::crd::SovereignCluster;
use crate::policy::NodeFacts;
use http::{Method, StatusCode};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn guard(cluster: SovereignCluster) -> Arc<DeserializeGuard<SovereignCluster>> {
    Arc::new(DeserializeGuard(Ok(cluster)))
}

/// The hub with two sovereign pools and one nobody attested.
fn hub() -> Cluster {
    Cluster {
        classes: shipped_classes(),
        clusters: vec![hub_cluster()],
        nodes: vec![
            node("gov-general-0", "gov-general", true, None),
            node("gov-general-1", "gov-general", true, None),
            node("gov-spare-0", "gov-spare", true, None),
            node("build-agents-0", "build-agents", false, None),
        ],
        ..Cluster::default()
    }
}

#[tokio::test]
async fn the_hub_cluster_reports_its_pools_and_that_it_is_reachable_as_the_hub() {
    let mut h = Harness::new(hub()).await;
    let verifier = h.serve(vec![cluster_status(&hub_cluster())]);
    let result = within(
        "observing the hub",
        reconcile(guard(hub_cluster()), h.ctx()),
    )
    .await;
    let served = h.finish(verifier).await;

    assert_eq!(
        result.expect("observed"),
        Action::requeue(Duration::from_secs(300))
    );
    let [status] = &served[..] else {
        panic!("one status write and no Event: {served:?}");
    };
    assert!(status.query.contains("fieldManager=sovra") && status.query.contains("force=true"));
    let status = &status.body["status"];
    let pools: Vec<(&str, bool)> = status["nodePools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default(),
                p["sovereign"] == true,
            )
        })
        .collect();
    assert_eq!(
        pools,
        [
            ("build-agents", false),
            ("gov-general", true),
            ("gov-spare", true)
        ]
    );
    assert_eq!(status["sovereignPools"], 2);
    assert_eq!(status["jurisdiction"], "EU");
    assert_eq!(status["kubernetesVersion"], "v1.33.2");
    let reachable = condition(status, "Reachable");
    assert_eq!(
        (&reachable["status"], &reachable["reason"]),
        (&json!("True"), &json!("Hub"))
    );
    assert_eq!(condition(status, "Sovereign")["status"], "True");
    assert!(h.audit_actions().is_empty());
}

/// An administrator removes the sovereign label from gov-spare's only node.
fn unlabel_gov_spare(h: &mut Harness) {
    h.feeds
        .nodes
        .apply_watcher_event(&watcher::Event::Apply(NodeFacts::from_node(&node(
            "gov-spare-0",
            "gov-spare",
            false,
            None,
        ))));
    h.ctx().world.invalidate();
}

#[tokio::test]
async fn a_pool_that_stops_being_sovereign_is_recorded_and_announced_once() {
    let mut h = Harness::new(hub()).await;
    let verifier = h.serve(vec![
        cluster_status(&hub_cluster()),
        // A cluster-scoped object's Events go to `default`.
        publish_event("default"),
        cluster_status(&hub_cluster()),
    ]);
    let first = within(
        "the first observation",
        reconcile(guard(hub_cluster()), h.ctx()),
    )
    .await;
    unlabel_gov_spare(&mut h);
    // The cluster cache has not caught up with the first status write: the loss is found
    // against the status Sovra remembers writing.
    let lost = within(
        "observing the loss",
        reconcile(guard(hub_cluster()), h.ctx()),
    )
    .await;
    let again = within("observing again", reconcile(guard(hub_cluster()), h.ctx())).await;
    let served = h.finish(verifier).await;

    for result in [first, lost, again] {
        assert_eq!(
            result.expect("observed"),
            Action::requeue(Duration::from_secs(300))
        );
    }
    let [_, event, status] = &served[..] else {
        panic!("a status, then an Event and a status: {served:?}");
    };
    assert_eq!(event.body["reason"], "SovereigntyLost");
    assert_eq!(event.body["type"], "Warning");
    assert_eq!(event.body["regarding"]["kind"], "SovereignCluster");
    assert_eq!(event.body["regarding"]["name"], HUB);
    assert!(
        event.body["note"]
            .as_str()
            .is_some_and(|n| n.starts_with("no longer sovereign: node pool gov-spare"))
    );
    let spare = status.body["status"]["nodePools"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "gov-spare")
        .cloned()
        .unwrap_or_default();
    assert_eq!(spare["sovereign"], false);
    assert_eq!(status.body["status"]["sovereignPools"], 1);
    assert_eq!(h.audit_actions(), ["SovereigntyLost"]);
    let record = &h.audit_records()[0];
    assert_eq!(record["cluster"], HUB);
    assert!(
        record["reasons"][0]
            .as_str()
            .is_some_and(|r| r.starts_with("node pool gov-spare"))
    );
}

#[tokio::test]
async fn a_loss_recorded_before_a_failed_status_write_is_not_recorded_again_on_the_retry() {
    let mut h = Harness::new(hub()).await;
    let status_path = format!("/apis/sovra.dev/v1alpha1/sovereignclusters/{HUB}/status");
    let verifier = h.serve(vec![
        cluster_status(&hub_cluster()),
        publish_event("default"),
        // The status write after the loss fails ...
        Step::new(Method::PATCH, status_path, |_| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                       "reason": "InternalError", "message": "etcd timeout", "code": 500}),
            )
        }),
        // ... and the retry writes it, with no second Event before it.
        cluster_status(&hub_cluster()),
    ]);
    let first = within(
        "the first observation",
        reconcile(guard(hub_cluster()), h.ctx()),
    )
    .await;
    unlabel_gov_spare(&mut h);
    let failed = within(
        "the loss, then a failed write",
        reconcile(guard(hub_cluster()), h.ctx()),
    )
    .await;
    let retried = within("the retry", reconcile(guard(hub_cluster()), h.ctx())).await;
    let served = h.finish(verifier).await;

    assert!(first.is_ok());
    assert!(failed.is_err(), "the failed write fails the reconcile");
    assert!(retried.is_ok());
    assert_eq!(
        served.len(),
        4,
        "the retry sent only its status write: {served:?}"
    );
    assert_eq!(h.audit_actions(), ["SovereigntyLost"], "recorded once");
}

#[tokio::test]
async fn without_the_report_crd_the_hub_says_so_and_a_resync_writes_nothing_more() {
    let mut h = Harness::new(hub()).await;
    h.ctx()
        .reports
        .set_detection(super::super::policy_report::Detection::Missing);
    let verifier = h.serve(vec![cluster_status(&hub_cluster())]);
    within(
        "observing the hub",
        reconcile(guard(hub_cluster()), h.ctx()),
    )
    .await
    .expect("observed");
    // The status Sovra wrote is what the next reconcile compares with: nothing to write.
    within(
        "observing the hub again",
        reconcile(guard(hub_cluster()), h.ctx()),
    )
    .await
    .expect("observed");
    let served = h.finish(verifier).await;

    let [status] = &served[..] else {
        panic!("one status write: {served:?}");
    };
    let reports = condition(&status.body["status"], "PolicyReports");
    assert_eq!(
        (&reports["status"], &reports["reason"]),
        (&json!("False"), &json!("CRDNotInstalled"))
    );
    assert!(
        reports["message"]
            .as_str()
            .unwrap_or_default()
            .contains("reports.openreports.io"),
        "{reports}"
    );
}
