//! A workload that keeps failing is reported on the object: one `ReconcileError` Warning
//! Event and `Ready=False` reason `ReconcileError`, counted by the error's own kind; it clears
//! once the reconcile succeeds again.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::*;
use test_apiserver::{RequestMatcher, TestApiServer};

fn ready_condition(server: &TestApiServer, name: &str) -> Option<Value> {
    server
        .get(&workloads(), Some(NAMESPACE), name)?
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
}

/// Failures with backoff 1 s, 2 s, 4 s, 8 s, 16 s: the fifth retry comes after about 30 s.
const SLOW: Duration = Duration::from_secs(60);

#[tokio::test]
async fn repeated_failures_are_reported_once_on_the_workload_and_clear_on_success() {
    let server = hub_server().await;
    server.faults().fail_next(
        RequestMatcher::verb("patch").resource("deployments"),
        403,
        5,
    );
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut args = run_args("sovra-0", dir.path().join("audit.jsonl"), false);
    args.http_addr = addr;
    let _operator = start_operator_with(&server, args);
    server.put(workload("tax", "public", 1, json!({}))).unwrap();

    let event = eventually("a ReconcileError event", SLOW, || async {
        events_for(&server, NAMESPACE, "tax", "ReconcileError")
            .into_iter()
            .next()
    })
    .await;
    // The precondition: the child's apply really failed, and more than once.
    let forbidden = || {
        server
            .requests()
            .iter()
            .filter(|r| r.resource == "deployments" && r.verb == "patch" && r.status == 403)
            .count()
    };
    assert!(forbidden() >= 3, "{} failed applies", forbidden());
    assert_eq!(event["type"], "Warning");
    let note = event["note"].as_str().unwrap();
    assert!(note.contains("injected fault: HTTP 403"), "{note}");
    assert!(
        !note.starts_with("finalizer"),
        "the wrapper is not shown: {note}"
    );

    let reported = eventually("Ready=False ReconcileError", SLOW, || async {
        ready_condition(&server, "tax").filter(|c| c["reason"] == "ReconcileError")
    })
    .await;
    assert_eq!(reported["status"], "False");
    assert_eq!(reported["message"], note);
    let reported_since = reported["lastTransitionTime"].clone();

    let metrics = http_get(addr, "/metrics").await.unwrap().1;
    assert!(
        metrics.contains(r#"sovra_reconcile_errors_total{kind="SovereignWorkload",error="kube"}"#),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"error="finalizer""#), "{metrics}");

    // Once the fault is used up the workload is placed and Ready is the normal condition.
    let placed = eventually("placed after the faults", SLOW, || async {
        server
            .get(&workloads(), Some(NAMESPACE), "tax")
            .filter(|w| w["status"]["phase"] == "Placed")
    })
    .await;
    assert_eq!(forbidden(), 5, "every injected failure was hit");
    let ready = eventually("Ready no longer reports the error", WAIT, || async {
        ready_condition(&server, "tax").filter(|c| c["reason"] != "ReconcileError")
    })
    .await;
    assert_eq!(ready["status"], "False", "no pod is ready: {ready}");
    assert_eq!(
        ready["lastTransitionTime"], reported_since,
        "Ready stayed False, so its transition time stays"
    );
    assert!(server.get(&deployments(), Some(NAMESPACE), "tax").is_some());
    assert_eq!(placed["status"]["placements"][0]["cluster"], HUB);

    // Five failures with one text: one Event, published once (no series).
    let reported_events = events_for(&server, NAMESPACE, "tax", "ReconcileError");
    assert_eq!(reported_events.len(), 1, "{reported_events:?}");
    assert!(
        reported_events[0]["series"].is_null(),
        "{reported_events:?}"
    );
    let metrics = http_get(addr, "/metrics").await.unwrap().1;
    assert!(
        metrics
            .contains(r#"sovra_reconcile_errors_total{kind="SovereignWorkload",error="kube"} 5"#),
        "{metrics}"
    );
}
