//! Drift enforcement: Pods of a SovereignWorkload that run outside its placement are reported
//! (Events on the Pod and the workload, an audit record) and, under `enforce`, evicted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{Value, json};
use support::*;
use test_apiserver::{ResourceRef, TestApiServer};

fn pods() -> ResourceRef {
    ResourceRef::new("", "v1", "pods")
}

/// A running Pod of workload `workload` (class `class`) bound to `node`.
fn pod(name: &str, workload: &str, class: &str, node: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE,
                     "labels": {"sovra.dev/workload": workload, "sovra.dev/sensitivity": class, "app": workload}},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": format!("registry.example.nl/{workload}:1")}]},
        "status": {"phase": "Running"}
    })
}

fn audit_actions(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect()
}

async fn wait_for_violation_record(path: &std::path::Path, pod: &str) -> Value {
    eventually(
        &format!("Violation audit record for {pod}"),
        WAIT,
        || async {
            audit_actions(path).into_iter().find(|r| {
                r["action"] == "Violation"
                    && r["object"]["kind"] == "Pod"
                    && r["object"]["name"] == pod
            })
        },
    )
    .await
}

async fn placed_workload(server: &TestApiServer, name: &str, class: &str) -> Value {
    server.put(workload(name, class, 2, json!({}))).unwrap();
    wait_for_phase(server, name, "Placed").await
}

#[tokio::test]
async fn a_pod_on_a_non_sovereign_node_is_reported_and_evicted_under_enforce() {
    let server = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let operator = start_operator(&server, dir.path(), "sovra-0", false);
    placed_workload(&server, "portal", "internal").await;

    server
        .put(pod("portal-rogue", "portal", "internal", "build-agents-0"))
        .unwrap();

    eventually("rogue pod evicted", WAIT, || async {
        server
            .get(&pods(), Some(NAMESPACE), "portal-rogue")
            .is_none()
            .then_some(())
    })
    .await;
    let on_pod = wait_for_event(&server, NAMESPACE, "portal-rogue", "PolicyViolation").await;
    assert_eq!(on_pod["type"], "Warning");
    assert_eq!(on_pod["regarding"]["kind"], "Pod");
    let note = on_pod["note"].as_str().unwrap();
    assert!(note.contains("build-agents-0"), "{note}");
    assert!(note.contains("pool build-agents"), "{note}");
    assert!(note.contains("is not sovereign"), "{note}");
    let on_workload = wait_for_event(&server, NAMESPACE, "portal", "PolicyViolation").await;
    assert_eq!(on_workload["regarding"]["kind"], "SovereignWorkload");

    let record = wait_for_violation_record(&operator.audit_log, "portal-rogue").await;
    assert_eq!(record["class"], "internal");
    assert_eq!(record["cluster"], HUB);
    assert_eq!(record["pools"], json!(["build-agents"]));
    assert!(
        sovra::audit::verify_file(&operator.audit_log)
            .unwrap()
            .is_intact()
    );
}

#[tokio::test]
async fn a_pod_outside_its_placement_is_only_reported_under_audit() {
    let server = hub_server().await;
    server
        .put(json!({
            "apiVersion": "sovra.dev/v1alpha1", "kind": "SensitivityClass", "metadata": {"name": "pilot"},
            "spec": {"enforcement": "audit"}
        }))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (operator, addr) = start_serving_operator(&server, dir.path(), "sovra-0", false).await;
    placed_workload(&server, "trial", "pilot").await;

    server
        .put(pod("trial-rogue", "trial", "pilot", "build-agents-1"))
        .unwrap();

    let on_pod = wait_for_event(&server, NAMESPACE, "trial-rogue", "PolicyViolation").await;
    assert!(
        on_pod["note"]
            .as_str()
            .unwrap()
            .contains("enforcement audit: reported only")
    );
    wait_for_event(&server, NAMESPACE, "trial", "PolicyViolation").await;
    let record = wait_for_violation_record(&operator.audit_log, "trial-rogue").await;
    assert_eq!(record["class"], "pilot");

    // The reconcile that reported the pod (running when its Events appeared) has returned, so
    // it got past the point where `enforce` evicts.
    eventually("the reporting drift reconcile returned", WAIT, || async {
        (metric(addr, r#"sovra_reconciles_in_flight{controller="drift"}"#).await == 0.0)
            .then_some(())
    })
    .await;
    assert!(
        server
            .get(&pods(), Some(NAMESPACE), "trial-rogue")
            .is_some(),
        "audit enforcement does not evict"
    );
    assert_eq!(
        events_for(&server, NAMESPACE, "trial-rogue", "PolicyViolation").len(),
        1,
        "reported once"
    );
}

#[tokio::test]
async fn a_pod_in_a_placed_sovereign_pool_is_left_alone() {
    let server = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let (operator, addr) = start_serving_operator(&server, dir.path(), "sovra-0", false).await;
    let placed = placed_workload(&server, "tax", "confidential").await;
    assert_eq!(
        placed["status"]["placements"][0]["nodePools"],
        json!(["gov-confidential"])
    );

    let started = reconciles_started(addr, "drift").await;
    server
        .put(pod("tax-good", "tax", "confidential", "gov-confidential-0"))
        .unwrap();
    // The compliant pod was judged: it is the only Pod, so a drift reconcile begun after it was
    // created is its own, and that one has finished.
    wait_for_reconciles_after(addr, "drift", started, 1).await;
    // A sovereign node, but not in the pool the workload was placed on: the same judgement
    // does report that.
    server
        .put(pod("tax-stray", "tax", "confidential", "gov-general-0"))
        .unwrap();

    let stray = wait_for_event(&server, NAMESPACE, "tax-stray", "PolicyViolation").await;
    assert!(
        stray["note"].as_str().unwrap().contains(
            "node pool gov-general is not one of the placed node pools [gov-confidential]"
        )
    );
    assert!(server.get(&pods(), Some(NAMESPACE), "tax-good").is_some());
    assert!(events_for(&server, NAMESPACE, "tax-good", "PolicyViolation").is_empty());
    assert!(
        audit_actions(&operator.audit_log)
            .iter()
            .all(|r| r["object"]["name"] != "tax-good")
    );
}

#[tokio::test]
async fn an_eviction_blocked_by_a_disruption_budget_is_retried_without_reporting_again() {
    let server = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let _operator = start_operator(&server, dir.path(), "sovra-0", false);
    placed_workload(&server, "portal", "internal").await;
    let budget = |allowed: i32| {
        json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "portal", "namespace": NAMESPACE},
            "spec": {"selector": {"matchLabels": {"sovra.dev/workload": "portal"}}, "minAvailable": 1},
            "status": {"disruptionsAllowed": allowed, "desiredHealthy": 1, "currentHealthy": 1}
        })
    };
    server.put(budget(0)).unwrap();

    server
        .put(pod("portal-rogue", "portal", "internal", "build-agents-0"))
        .unwrap();
    wait_for_event(&server, NAMESPACE, "portal-rogue", "PolicyViolation").await;
    // The eviction was tried and refused by the budget (429), and tried again.
    eventually("two evictions refused by the budget", WAIT, || async {
        let refused = server
            .requests()
            .iter()
            .filter(|r| {
                r.subresource.as_deref() == Some("eviction")
                    && r.name.as_deref() == Some("portal-rogue")
                    && r.status == 429
            })
            .count();
        (refused >= 2).then_some(())
    })
    .await;
    assert!(
        server
            .get(&pods(), Some(NAMESPACE), "portal-rogue")
            .is_some(),
        "the budget blocks the eviction"
    );

    server.put(budget(1)).unwrap();
    eventually("rogue pod evicted once the budget allows", WAIT, || async {
        server
            .get(&pods(), Some(NAMESPACE), "portal-rogue")
            .is_none()
            .then_some(())
    })
    .await;
    let events = events_for(&server, NAMESPACE, "portal-rogue", "PolicyViolation");
    assert_eq!(events.len(), 1, "reported once: {events:?}");
    assert!(
        events[0].get("series").is_none(),
        "not repeated: {events:?}"
    );
}
