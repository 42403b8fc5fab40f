//! The workload reconciler's branches, each against an exact script of API requests. Every
//! request a reconcile makes is awaited before the next one is sent (the one placement
//! target, then removals, the audit record, the decision's Events, the status, then the
//! exit-readiness Event), so the scripts assert the order too.
//!
//! The test hub is the only cluster, of one provider: a workload placed there has no exit
//! alternative, so placing it also announces `NoExitAlternative` (once, after the status).

use super::super::workload::reconcile;
use super::fixtures::{Cluster, Harness, Step, ok, within};
use super::objects::{
    HUB, NAMESPACE, condition, deleting, finalized, foreign_deployment, hub_cluster, json_of, node,
    pinned_pools, placed_on, shipped_classes, sovra_child, workload, workload_json,
};
use super::requests::{
    add_finalizer, apply_child, delete_child, get_child, invalid_workload_status, publish_event,
    remove_finalizer, workload_path, workload_status,
};
use crate::crd::{SovereignWorkload, SovereignWorkloadStatus};
use http::Method;
use k8s_openapi::api::core::v1::Node;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// A reconcile that placed, refused or moved its workload waits for the next change: the
/// resync comes from the intake's wheel, not from a timer per workload.
fn waits_for_a_change() -> Action {
    Action::await_change()
}

fn guard(workload: SovereignWorkload) -> Arc<DeserializeGuard<SovereignWorkload>> {
    Arc::new(DeserializeGuard(Ok(workload)))
}

/// A hub with a sovereign pool dedicated to `confidential` and a pool nobody attested.
fn confidential_hub() -> Cluster {
    Cluster {
        classes: shipped_classes(),
        clusters: vec![hub_cluster()],
        nodes: vec![
            node(
                "gov-confidential-0",
                "gov-confidential",
                true,
                Some("confidential"),
            ),
            node(
                "gov-confidential-1",
                "gov-confidential",
                true,
                Some("confidential"),
            ),
            node("build-agents-0", "build-agents", false, None),
        ],
        ..Cluster::default()
    }
}

fn hub_with(nodes: Vec<Node>) -> Cluster {
    Cluster {
        nodes,
        ..confidential_hub()
    }
}

#[tokio::test]
async fn a_workload_whose_class_is_satisfied_is_placed_recorded_once_and_announced() {
    let mut h = Harness::new(confidential_hub()).await;
    let new = workload("tax", "confidential");
    let seen = finalized(new.clone());
    let verifier = h.serve(vec![
        add_finalizer(&new),
        get_child("tax", None),
        apply_child("tax"),
        publish_event(NAMESPACE),
        workload_status(&seen),
        publish_event(NAMESPACE),
    ]);
    // One reconcile adds the finalizer and places: a first placement is not two reconciles.
    let first = within("placing", reconcile(guard(new), h.ctx())).await;
    // The child's watch delivered it; the workload cache still shows no status. What Sovra
    // applied and wrote is remembered: nothing is sent, recorded or announced again.
    h.feeds
        .hub_children
        .apply_watcher_event(&kube::runtime::watcher::Event::Apply(
            (&sovra_child(&seen, &["gov-confidential"])).into(),
        ));
    let resync = within("a resync", reconcile(guard(seen), h.ctx())).await;
    let served = h.finish(verifier).await;

    assert_eq!(first.expect("placed"), waits_for_a_change());
    assert_eq!(resync.expect("unchanged"), waits_for_a_change());
    let [finalizer, get, apply, event, status, stranded] = &served[..] else {
        panic!("six requests: {served:?}");
    };
    assert_eq!(finalizer.content_type, "application/json-patch+json");
    assert_eq!(
        finalizer.body,
        json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
               {"op": "add", "path": "/metadata/finalizers", "value": ["sovra.dev/cleanup"]}])
    );
    assert_eq!(
        get.method,
        Method::GET,
        "the unknown child is looked up first"
    );
    assert_eq!(apply.content_type, "application/apply-patch+yaml");
    assert!(apply.query.contains("fieldManager=sovra") && apply.query.contains("force=true"));
    let labels = &apply.body["metadata"]["labels"];
    assert_eq!(labels["sovra.dev/workload"], "tax");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "sovra");
    assert_eq!(labels["sovra.dev/cluster"], HUB);
    assert_eq!(apply.body["metadata"]["ownerReferences"][0]["name"], "tax");
    assert_eq!(pinned_pools(&apply.body), json!(["gov-confidential"]));
    assert_eq!(event.body["reason"], "Placed");
    assert_eq!(event.body["type"], "Normal");
    assert_eq!(event.body["regarding"]["name"], "tax");
    assert!(
        event.body["note"]
            .as_str()
            .is_some_and(|n| n.contains("gov-confidential"))
    );
    assert_eq!(status.body["status"]["phase"], "Placed");
    assert_eq!(
        condition(&status.body["status"], "Placed")["status"],
        "True"
    );
    assert_eq!(
        status.body["status"]["placements"][0]["nodePools"],
        json!(["gov-confidential"])
    );
    assert_eq!(status.body["status"]["exit"]["stranded"], true);
    assert_eq!(stranded.body["reason"], "NoExitAlternative");
    assert_eq!(stranded.body["type"], "Warning");
    assert_eq!(h.audit_actions(), ["Placed"]);
    let record = &h.audit_records()[0];
    assert_eq!(record["cluster"], HUB);
    assert_eq!(record["pools"], json!([format!("{HUB}/gov-confidential")]));
}

#[tokio::test]
async fn a_workload_no_pool_qualifies_for_is_refused_with_no_child_applied() {
    let mut h = Harness::new(hub_with(vec![node(
        "build-agents-0",
        "build-agents",
        false,
        None,
    )]))
    .await;
    let exchange = finalized(workload("exchange", "internal"));
    let verifier = h.serve(vec![publish_event(NAMESPACE), workload_status(&exchange)]);
    let result = within("refusing", reconcile(guard(exchange), h.ctx())).await;
    let served = h.finish(verifier).await;

    assert_eq!(result.expect("refused"), waits_for_a_change());
    let [event, status] = &served[..] else {
        panic!("an Event and a status, and no Deployment: {served:?}");
    };
    assert_eq!(event.body["reason"], "PlacementRefused");
    assert_eq!(event.body["type"], "Warning");
    assert_eq!(status.body["status"]["phase"], "Refused");
    let placed = condition(&status.body["status"], "Placed");
    assert_eq!(placed["status"], "False");
    assert_eq!(placed["reason"], "NoSovereignPool");
    assert_eq!(status.body["status"]["placements"], json!(null));
    assert_eq!(h.audit_actions(), ["Refused"]);
    assert_eq!(h.audit_records()[0]["cluster"], json!(null));
}

#[tokio::test]
async fn a_workload_whose_pool_stopped_qualifying_is_moved_to_the_one_that_does() {
    let placed = placed_on(finalized(workload("tax", "internal")), &["gov-general"]);
    let mut h = Harness::new(Cluster {
        // gov-general lost its sovereign label; gov-spare qualifies.
        nodes: vec![
            node("gov-general-0", "gov-general", false, None),
            node("gov-spare-0", "gov-spare", true, None),
        ],
        hub_children: vec![sovra_child(&placed, &["gov-general"])],
        ..confidential_hub()
    })
    .await;
    // The child is cached, so it is applied without a lookup first.
    let verifier = h.serve(vec![
        apply_child("tax"),
        publish_event(NAMESPACE),
        workload_status(&placed),
        publish_event(NAMESPACE),
    ]);
    let result = within("moving", reconcile(guard(placed), h.ctx())).await;
    let served = h.finish(verifier).await;

    assert_eq!(result.expect("moved"), waits_for_a_change());
    let [apply, event, status, stranded] = &served[..] else {
        panic!("four requests: {served:?}");
    };
    assert_eq!(pinned_pools(&apply.body), json!(["gov-spare"]));
    assert_eq!(event.body["reason"], "Moved");
    assert!(
        event.body["note"]
            .as_str()
            .is_some_and(|n| n.starts_with(&format!("moved to {HUB} [gov-spare]")))
    );
    assert_eq!(status.body["status"]["phase"], "Placed");
    assert_eq!(
        status.body["status"]["placements"][0]["nodePools"],
        json!(["gov-spare"])
    );
    assert_eq!(stranded.body["reason"], "NoExitAlternative");
    assert_eq!(h.audit_actions(), ["Moved"]);
    assert_eq!(
        h.audit_records()[0]["pools"],
        json!([format!("{HUB}/gov-spare")])
    );
}

#[tokio::test]
async fn a_deployment_of_someone_else_under_the_childs_name_is_never_overwritten_nor_recorded() {
    let mut h = Harness::new(confidential_hub()).await;
    let tax = finalized(workload("tax", "confidential"));
    let verifier = h.serve(vec![
        get_child("tax", Some(foreign_deployment("tax"))),
        workload_status(&tax),
        publish_event(NAMESPACE),
    ]);
    let result = within("the conflict", reconcile(guard(tax), h.ctx())).await;
    let served = h.finish(verifier).await;

    // Checked again with backoff, from one second on.
    assert_eq!(
        result.expect("reported"),
        Action::requeue(Duration::from_secs(1))
    );
    let [get, status, event] = &served[..] else {
        panic!("the lookup, a status and an Event, and no apply: {served:?}");
    };
    assert_eq!(
        get.method,
        Method::GET,
        "the conflict was found by the lookup"
    );
    let placed = condition(&status.body["status"], "Placed");
    assert_eq!(placed["status"], "False");
    assert_eq!(placed["reason"], "ChildConflict");
    assert!(
        placed["message"]
            .as_str()
            .is_some_and(|m| m.contains("kubectl-client-side-apply"))
    );
    assert_eq!(status.body["status"]["phase"], "Pending");
    assert_eq!(event.body["reason"], "ChildConflict");
    assert_eq!(event.body["type"], "Warning");
    assert!(
        h.audit_actions().is_empty(),
        "nothing happened, nothing is recorded"
    );
}

#[tokio::test]
async fn a_conflict_found_from_a_compacted_cached_status_keeps_the_whole_recorded_decision() {
    let mut placed = placed_on(finalized(workload("tax", "confidential")), &["gov-general"]);
    let candidates = json!([{"cluster": HUB, "nodePool": "gov-general", "accepted": true}]);
    if let Some(status) = placed.status.as_mut() {
        let decision = json!({"enforcement": "enforce", "candidates": candidates});
        status.decision = serde_json::from_value(decision).ok();
    }
    assert!(placed.status.as_ref().is_some_and(|s| s.decision.is_some()));
    // The cache keeps the status compacted, without the listed candidates.
    let mut cached = placed.clone();
    cached.status = cached.status.map(SovereignWorkloadStatus::compacted);
    let mut h = Harness::new(confidential_hub()).await;
    let verifier = h.serve(vec![
        get_child("tax", Some(foreign_deployment("tax"))),
        Step::new(
            Method::GET,
            format!("{}/status", workload_path("tax")),
            ok(json_of(&placed)),
        ),
        workload_status(&placed),
        publish_event(NAMESPACE),
    ]);
    let result = within("the conflict", reconcile(guard(cached), h.ctx())).await;
    let served = h.finish(verifier).await;

    assert!(result.is_ok(), "{result:?}");
    let [_, read, status, _] = &served[..] else {
        panic!("the lookup, the whole status read, a status and an Event: {served:?}");
    };
    assert_eq!(read.method, Method::GET);
    assert_eq!(
        condition(&status.body["status"], "Placed")["reason"],
        "ChildConflict"
    );
    assert_eq!(
        status.body["status"]["decision"]["candidates"], candidates,
        "the status written keeps the recorded candidates"
    );
}

#[tokio::test]
async fn an_undeserializable_workload_is_reported_once_per_problem_and_nothing_else_is_touched() {
    let mut h = Harness::new(confidential_hub()).await;
    let mut broken = workload_json("broken", "internal");
    broken["spec"]["replicas"] = json!("three");
    let invalid: DeserializeGuard<SovereignWorkload> =
        serde_json::from_value(broken.clone()).expect("a guard");
    assert!(invalid.0.is_err(), "the object does not deserialize");
    let invalid = Arc::new(invalid);
    // The status first, then the Event: a failed status write is retried without having
    // published the problem already.
    let verifier = h.serve(vec![
        invalid_workload_status("broken", broken),
        publish_event(NAMESPACE),
    ]);
    let first = within("reporting", reconcile(invalid.clone(), h.ctx())).await;
    // The same problem again (a resync, a relist): the script has ended, so any request
    // fails the verifier.
    let again = within("the same problem again", reconcile(invalid, h.ctx())).await;
    let served = h.finish(verifier).await;

    assert_eq!(first.expect("reported"), Action::await_change());
    assert_eq!(again.expect("left alone"), Action::await_change());
    let [status, event] = &served[..] else {
        panic!("a status and an Event: {served:?}");
    };
    assert_eq!(event.body["reason"], "InvalidSpec");
    assert_eq!(event.body["type"], "Warning");
    assert_eq!(event.body["regarding"]["name"], "broken");
    let note = event.body["note"].as_str().unwrap_or_default();
    assert!(note.starts_with("spec does not match the SovereignWorkload schema"));
    assert!(
        !note.contains(" at line "),
        "no position in the JSON: {note}"
    );
    assert_eq!(status.content_type, "application/apply-patch+yaml");
    assert_eq!(status.body["status"]["phase"], "Refused");
    assert_eq!(
        condition(&status.body["status"], "Placed")["reason"],
        "InvalidSpec"
    );
    assert!(h.audit_actions().is_empty());
}

#[tokio::test]
async fn a_deleted_workload_has_its_child_removed_its_release_recorded_and_its_finalizer_removed() {
    let tax = deleting(placed_on(
        finalized(workload("tax", "confidential")),
        &["gov-confidential"],
    ));
    let mut h = Harness::new(Cluster {
        hub_children: vec![sovra_child(&tax, &["gov-confidential"])],
        ..confidential_hub()
    })
    .await;
    let verifier = h.serve(vec![
        delete_child("tax"),
        publish_event(NAMESPACE),
        remove_finalizer(&tax),
    ]);
    let result = within("releasing", reconcile(guard(tax), h.ctx())).await;
    let served = h.finish(verifier).await;

    assert_eq!(result.expect("released"), Action::await_change());
    let [delete, event, finalizer] = &served[..] else {
        panic!("three requests: {served:?}");
    };
    assert_eq!(delete.body["propagationPolicy"], "Background");
    assert_eq!(event.body["reason"], "Released");
    assert_eq!(event.body["type"], "Normal");
    assert_eq!(
        finalizer.body,
        json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "sovra.dev/cleanup"},
               {"op": "remove", "path": "/metadata/finalizers/0"}])
    );
    assert_eq!(h.audit_actions(), ["Released"]);
    assert_eq!(
        h.audit_records()[0]["reasons"],
        json!(["SovereignWorkload deleted"])
    );
}
