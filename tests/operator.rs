//! The real operator against the in-process Kubernetes API server: placement, refusal, moves,
//! deletion, malformed objects, audit enforcement, determinism, faults and leader election.
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

fn condition<'a>(workload: &'a Value, type_: &str) -> &'a Value {
    workload
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("condition {type_} in {workload}"))
}

#[tokio::test]
async fn confidential_workload_is_placed_onto_the_dedicated_sovereign_pool() {
    let server = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let _operator = start_operator(&server, dir.path(), "sovra-0", false);
    server
        .put(workload("tax", "confidential", 3, json!({})))
        .unwrap();

    let placed = wait_for_phase(&server, "tax", "Placed").await;
    assert_eq!(placed["status"]["placements"][0]["cluster"], HUB);
    assert_eq!(
        placed["status"]["placements"][0]["nodePools"],
        json!(["gov-confidential"])
    );
    assert_eq!(condition(&placed, "Placed")["status"], "True");
    assert_eq!(condition(&placed, "Compliant")["status"], "True");
    let candidates = placed["status"]["decision"]["candidates"]
        .as_array()
        .unwrap();
    let rejected_pool = candidates
        .iter()
        .find(|c| c["nodePool"] == "gov-general")
        .unwrap();
    assert_eq!(rejected_pool["accepted"], false);
    assert!(
        rejected_pool["reasons"][0]
            .as_str()
            .unwrap()
            .contains("not dedicated")
    );

    let deployment = server
        .get(&deployments(), Some(NAMESPACE), "tax")
        .expect("Deployment created");
    assert_eq!(
        affinity_values(&deployment, POOL_LABEL),
        ["gov-confidential"]
    );
    assert_eq!(affinity_values(&deployment, SOVEREIGN), ["true"]);
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(
        deployment["metadata"]["labels"]["sovra.dev/sensitivity"],
        "confidential"
    );
    assert_eq!(
        deployment["metadata"]["labels"]["sovra.dev/workload"],
        "tax"
    );
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["labels"]["sovra.dev/sensitivity"],
        "confidential"
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["tolerations"][0]["value"],
        "confidential"
    );
    assert_eq!(deployment["metadata"]["ownerReferences"][0]["name"], "tax");
    assert_eq!(
        deployment["metadata"]["ownerReferences"][0]["controller"],
        true
    );

    let event = wait_for_event(&server, NAMESPACE, "tax", "Placed").await;
    assert_eq!(event["type"], "Normal");
    assert!(event["note"].as_str().unwrap().contains("gov-confidential"));
}

#[tokio::test]
async fn workload_no_cluster_qualifies_for_is_refused_with_reasons_and_gets_no_deployment() {
    let server = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let _operator = start_operator(&server, dir.path(), "sovra-0", false);
    server
        .put(pinned_to_de("exchange", "confidential", 2, json!({})))
        .unwrap();

    let refused = wait_for_phase(&server, "exchange", "Refused").await;
    let placed = condition(&refused, "Placed");
    assert_eq!(placed["status"], "False");
    assert_eq!(placed["reason"], "CountryNotRequested");
    // The deciding constraint leads, then the nearest candidate, then every reason.
    let summary = "no SovereignCluster is in DE (requiredCountries: [DE]); clusters exist in NL; nearest: rijkscloud-nl/";
    let message = placed["message"].as_str().unwrap();
    assert!(message.starts_with(summary), "{message}");
    let event = wait_for_event(&server, NAMESPACE, "exchange", "PlacementRefused").await;
    assert_eq!(event["type"], "Warning");
    let note = event["note"].as_str().unwrap();
    assert!(note.starts_with(summary), "{note}");
    assert!(
        note.contains("country NL is not in spec.placement.requiredCountries"),
        "{note}"
    );
    assert!(
        server
            .get(&deployments(), Some(NAMESPACE), "exchange")
            .is_none()
    );
}

#[tokio::test]
async fn removing_a_certification_from_the_cluster_refuses_the_workload_and_scales_its_deployment_to_zero()
 {
    let server = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let operator = start_operator(&server, dir.path(), "sovra-0", false);
    server
        .put(workload("tax", "confidential", 1, json!({})))
        .unwrap();
    wait_for_phase(&server, "tax", "Placed").await;
    assert!(server.get(&deployments(), Some(NAMESPACE), "tax").is_some());

    let mut cluster = server.get(&clusters(), None, HUB).unwrap();
    cluster["spec"]["certifications"] = json!(["ISO27001", "EUCS-High", "Haven"]);
    server.put(cluster).unwrap();

    let refused = wait_for_phase(&server, "tax", "Refused").await;
    let message = condition(&refused, "Placed")["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "no cluster holds certification BIO, which the class requires; nearest: rijkscloud-nl/"
        ),
        "{message}"
    );
    assert!(message.contains("missing certifications: BIO"), "{message}");
    // Nothing may keep running where the class is no longer met; the Deployment itself stays,
    // inspectable, until the workload is placed again or deleted.
    eventually("Deployment scaled to zero", WAIT, || async {
        server
            .get(&deployments(), Some(NAMESPACE), "tax")
            .filter(|d| d.pointer("/spec/replicas") == Some(&json!(0)))
    })
    .await;
    wait_for_event(&server, NAMESPACE, "tax", "PlacementRefused").await;

    assert_eq!(audit_actions(&operator.audit_log), ["Placed", "Refused"]);
    assert!(
        sovra::audit::verify_file(&operator.audit_log)
            .unwrap()
            .is_intact()
    );
}

#[tokio::test]
async fn a_pool_losing_its_sovereign_label_moves_the_workload_off_it() {
    let server = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let _operator = start_operator(&server, dir.path(), "sovra-0", false);
    server
        .put(workload("portal", "internal", 2, json!({})))
        .unwrap();
    let placed = wait_for_phase(&server, "portal", "Placed").await;
    assert_eq!(
        placed["status"]["placements"][0]["nodePools"],
        json!(["gov-general", "gov-spare"])
    );
    // What is lost must have been recorded first: the hub's status reports gov-spare sovereign
    // (portal may be placed from the Node cache before that status is written).
    hub_reports_spare(&server, true).await;

    server
        .put(node("gov-spare-0", "gov-spare", false, None))
        .unwrap();

    let moved = eventually("moved off gov-spare", WAIT, || async {
        server
            .get(&deployments(), Some(NAMESPACE), "portal")
            .filter(|d| affinity_values(d, POOL_LABEL) == ["gov-general"])
    })
    .await;
    assert_eq!(affinity_values(&moved, SOVEREIGN), ["true"]);
    wait_for_event(&server, NAMESPACE, "portal", "Moved").await;
    let lost = wait_for_event(&server, "default", HUB, "SovereigntyLost").await;
    assert!(lost["note"].as_str().unwrap().contains("gov-spare"));
    // The loss is recorded and announced first, then the status says so.
    hub_reports_spare(&server, false).await;
}

/// Waits until the hub's SovereignCluster status reports pool gov-spare (not) sovereign.
async fn hub_reports_spare(server: &TestApiServer, sovereign: bool) {
    eventually("the hub's status reports gov-spare", WAIT, || async {
        server.get(&clusters(), None, HUB).filter(|c| {
            c["status"]["nodePools"].as_array().is_some_and(|pools| {
                pools
                    .iter()
                    .any(|p| p["name"] == "gov-spare" && p["sovereign"] == sovereign)
            })
        })
    })
    .await;
}

#[tokio::test]
async fn deleting_the_workload_removes_its_deployment_and_records_the_release() {
    let server = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let operator = start_operator(&server, dir.path(), "sovra-0", false);
    server
        .put(workload("tax", "confidential", 1, json!({})))
        .unwrap();
    let placed = wait_for_phase(&server, "tax", "Placed").await;
    assert_eq!(
        placed["metadata"]["finalizers"],
        json!([sovra::controller::FINALIZER])
    );

    server.delete(&workloads(), Some(NAMESPACE), "tax").unwrap();
    eventually("workload and Deployment gone", WAIT, || async {
        (server.get(&workloads(), Some(NAMESPACE), "tax").is_none()
            && server.get(&deployments(), Some(NAMESPACE), "tax").is_none())
        .then_some(())
    })
    .await;
    wait_for_event(&server, NAMESPACE, "tax", "Released").await;
    let trail = std::fs::read_to_string(&operator.audit_log).unwrap();
    assert!(trail.lines().last().unwrap().contains("\"Released\""));
}

#[tokio::test]
async fn a_malformed_workload_is_reported_and_does_not_stop_the_controller() {
    let server = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let _operator = start_operator(&server, dir.path(), "sovra-0", false);
    let mut broken = workload("broken", "internal", 1, json!({}));
    broken["spec"]["replicas"] = json!("many");
    // Stored as if written before the schema said replicas is an integer.
    server.put_unvalidated(broken).unwrap();
    server
        .put(workload("fine", "internal", 1, json!({})))
        .unwrap();

    wait_for_phase(&server, "fine", "Placed").await;
    let event = wait_for_event(&server, NAMESPACE, "broken", "InvalidSpec").await;
    assert!(event["note"].as_str().unwrap().contains("schema"));
    let broken = wait_for_phase(&server, "broken", "Refused").await;
    assert_eq!(condition(&broken, "Ready")["reason"], "InvalidSpec");
    assert!(
        server
            .get(&deployments(), Some(NAMESPACE), "broken")
            .is_none()
    );
}

#[tokio::test]
async fn a_template_with_node_name_is_refused_as_invalid() {
    let server = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let _operator = start_operator(&server, dir.path(), "sovra-0", false);
    let mut pinned = workload("pinned", "public", 1, json!({}));
    pinned["spec"]["template"]["spec"]["nodeName"] = json!("some-node-in-virginia");
    server.put(pinned).unwrap();
    let refused = wait_for_phase(&server, "pinned", "Refused").await;
    assert_eq!(condition(&refused, "Placed")["reason"], "InvalidSpec");
    wait_for_event(&server, NAMESPACE, "pinned", "InvalidSpec").await;
    assert!(
        server
            .get(&deployments(), Some(NAMESPACE), "pinned")
            .is_none()
    );
}

#[tokio::test]
async fn audit_enforcement_places_but_reports_what_enforce_would_refuse() {
    let server = hub_server().await;
    server
        .put(json!({
            "apiVersion": "sovra.dev/v1alpha1", "kind": "SensitivityClass", "metadata": {"name": "french-pilot"},
            "spec": {"enforcement": "audit", "certifications": {"allOf": ["SecNumCloud"]}}
        }))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _operator = start_operator(&server, dir.path(), "sovra-0", false);
    server
        .put(workload("pilot", "french-pilot", 1, json!({})))
        .unwrap();

    let placed = wait_for_phase(&server, "pilot", "Placed").await;
    let compliant = condition(&placed, "Compliant");
    assert_eq!(compliant["status"], "False");
    assert!(
        compliant["message"]
            .as_str()
            .unwrap()
            .contains("missing certifications: SecNumCloud")
    );
    assert!(
        server
            .get(&deployments(), Some(NAMESPACE), "pilot")
            .is_some()
    );
    let event = wait_for_event(&server, NAMESPACE, "pilot", "PolicyViolation").await;
    assert_eq!(event["type"], "Warning");
}

#[tokio::test]
async fn ready_replicas_reported_by_the_deployment_make_the_workload_ready() {
    let server = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let _operator = start_operator(&server, dir.path(), "sovra-0", false);
    server
        .put(workload("portal", "public", 2, json!({})))
        .unwrap();
    let placed = wait_for_phase(&server, "portal", "Placed").await;
    assert_eq!(condition(&placed, "Ready")["status"], "False");
    assert_eq!(placed["status"]["ready"], "0/2");

    let mut deployment = server
        .get(&deployments(), Some(NAMESPACE), "portal")
        .unwrap();
    deployment["status"] = json!({"replicas": 2, "readyReplicas": 2, "availableReplicas": 2});
    server.put(deployment).unwrap();
    eventually("workload ready", WAIT, || async {
        server
            .get(&workloads(), Some(NAMESPACE), "portal")
            .filter(|w| w.pointer("/status/ready").and_then(Value::as_str) == Some("2/2"))
    })
    .await;
}

#[tokio::test]
async fn reconciling_an_unchanged_workload_writes_nothing() {
    let server = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let (_operator, addr) = start_serving_operator(&server, dir.path(), "sovra-0", false).await;
    server
        .put(workload("tax", "confidential", 1, json!({})))
        .unwrap();
    wait_for_phase(&server, "tax", "Placed").await;
    wait_for_event(&server, NAMESPACE, "tax", "Placed").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.get(&workloads(), Some(NAMESPACE), "tax").unwrap();

    // Wake the controller without changing anything it decides on.
    let started = reconciles_started(addr, "workload").await;
    let mut touched = before.clone();
    touched["metadata"]["annotations"] = json!({"example.org/touched": "yes"});
    server.put(touched).unwrap();
    server.clear_requests();
    // The touch was reconciled (tax is the only workload): a reconcile begun after it has
    // finished.
    wait_for_reconciles_after(addr, "workload", started, 1).await;

    let writes: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| {
            r.resource == "sovereignworkloads" && r.subresource.as_deref() == Some("status")
        })
        .collect();
    assert!(writes.is_empty(), "no status writes: {writes:?}");
    let after = server.get(&workloads(), Some(NAMESPACE), "tax").unwrap();
    assert_eq!(before["status"], after["status"]);
    assert_eq!(events_for(&server, NAMESPACE, "tax", "Placed").len(), 1);
}

#[tokio::test]
async fn a_conflict_on_apply_is_retried_until_the_workload_is_placed() {
    let server = hub_server().await;
    server.faults().fail_next(
        RequestMatcher::verb("patch").resource("deployments"),
        409,
        2,
    );
    let dir = tempfile::tempdir().unwrap();
    let _operator = start_operator(&server, dir.path(), "sovra-0", false);
    server
        .put(workload("tax", "confidential", 1, json!({})))
        .unwrap();
    wait_for_phase(&server, "tax", "Placed").await;
    assert!(server.get(&deployments(), Some(NAMESPACE), "tax").is_some());
    let conflicts = server
        .requests()
        .iter()
        .filter(|r| r.resource == "deployments" && r.status == 409)
        .count();
    assert_eq!(conflicts, 2);
}

#[tokio::test]
async fn a_cut_watch_and_a_compacted_history_do_not_lose_changes() {
    let server = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let _operator = start_operator(&server, dir.path(), "sovra-0", false);
    server.put(workload("a", "public", 1, json!({}))).unwrap();
    wait_for_phase(&server, "a", "Placed").await;
    server.clear_requests();
    // Compacted first, then cut: the re-watch is sure to come from a resourceVersion that is
    // gone (410 Gone), not from one handed out after the compaction.
    server.compact();
    server.cut_watches();
    server.put(workload("b", "public", 1, json!({}))).unwrap();
    wait_for_phase(&server, "b", "Placed").await;
    // The faults were served: the workload watch was cut and, on 410 Gone, relisted (a watch
    // that merely ended resumes with a watch, not a list).
    eventually("the SovereignWorkload cache relisted", WAIT, || async {
        server
            .requests()
            .iter()
            .any(|r| r.verb == "list" && r.resource == "sovereignworkloads" && r.status == 200)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn only_the_leader_reconciles_and_a_standby_takes_over_when_it_stops() {
    let server = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let first = start_operator(&server, dir.path(), "sovra-0", true);
    let leader = eventually("a leader", WAIT, || async {
        server
            .get(&leases(), Some("sovra-system"), "sovra-leader")
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
    })
    .await;
    assert_eq!(leader, "sovra-0");
    let (second, standby) = start_serving_operator(&server, dir.path(), "sovra-1", true).await;
    // The standby runs, and stands by behind the leader, while `a` is handled.
    let standing_by = || async {
        http_get(standby, "/readyz")
            .await
            .filter(|(status, body)| *status == 200 && body.contains("standing by; sovra-0 leads"))
    };
    eventually("sovra-1 stands by", WAIT, standing_by).await;
    server.put(workload("a", "public", 1, json!({}))).unwrap();
    wait_for_phase(&server, "a", "Placed").await;
    eventually("the leader recorded a", WAIT, || async {
        std::fs::read_to_string(&first.audit_log)
            .ok()
            .filter(|trail| trail.contains("\"name\":\"a\""))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    eventually("sovra-1 still stands by", WAIT, standing_by).await;
    assert_eq!(
        reconciles_started(standby, "workload").await,
        0,
        "the standby reconciles nothing"
    );
    assert!(
        std::fs::read_to_string(&second.audit_log)
            .unwrap_or_default()
            .is_empty(),
        "the standby records nothing"
    );

    first.shutdown().await.unwrap();
    eventually("standby takes over", Duration::from_secs(20), || async {
        server
            .get(&leases(), Some("sovra-system"), "sovra-leader")
            .filter(|l| l["spec"]["holderIdentity"] == "sovra-1")
    })
    .await;
    server.put(workload("b", "public", 1, json!({}))).unwrap();
    wait_for_phase(&server, "b", "Placed").await;
    assert!(
        std::fs::read_to_string(&second.audit_log)
            .unwrap()
            .contains("\"name\":\"b\"")
    );
}

#[tokio::test]
async fn a_workload_deleted_while_the_operator_is_down_is_released_when_it_returns() {
    let server = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let operator = start_operator(&server, dir.path(), "sovra-0", false);
    server
        .put(workload("tax", "confidential", 1, json!({})))
        .unwrap();
    wait_for_phase(&server, "tax", "Placed").await;
    operator.shutdown().await.unwrap();

    // Without the operator the finalizer holds the workload (documented in docs/install.md).
    server.delete(&workloads(), Some(NAMESPACE), "tax").unwrap();
    let held = server.get(&workloads(), Some(NAMESPACE), "tax").unwrap();
    assert!(held["metadata"]["deletionTimestamp"].is_string());

    let _operator = start_operator(&server, dir.path(), "sovra-0", false);
    eventually("workload and Deployment gone", WAIT, || async {
        (server.get(&workloads(), Some(NAMESPACE), "tax").is_none()
            && server.get(&deployments(), Some(NAMESPACE), "tax").is_none())
        .then_some(())
    })
    .await;
    let actions = audit_actions(&dir.path().join("sovra-0-audit.jsonl"));
    assert_eq!(
        actions,
        ["Placed", "Released"],
        "the restarted operator continues the chain"
    );
    assert!(
        sovra::audit::verify_file(&dir.path().join("sovra-0-audit.jsonl"))
            .unwrap()
            .is_intact()
    );
}
