//! Defects found by a read of the controller (issue 12), each with the test that failed before
//! its fix. A test that asserts something did *not* happen first proves that the code path ran:
//! a fault was served, a request was logged, a reconcile was counted.
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
use test_apiserver::{RequestMatcher, RequestRecord, ResourceRef, TestApiServer};

fn pods() -> ResourceRef {
    ResourceRef::new("", "v1", "pods")
}

fn served(server: &TestApiServer, what: impl Fn(&RequestRecord) -> bool) -> Vec<RequestRecord> {
    server.requests().into_iter().filter(|r| what(r)).collect()
}

fn status_writes_of(r: &RequestRecord, name: &str) -> bool {
    r.verb == "patch"
        && r.resource == "sovereignworkloads"
        && r.subresource.as_deref() == Some("status")
        && r.name.as_deref() == Some(name)
}

fn records_for(path: &std::path::Path, name: &str, action: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["object"]["name"] == name && r["action"] == action)
        .count()
}

// Item 1: a decision is recorded once, however often acting on it is retried.

#[tokio::test]
async fn a_placement_whose_status_write_fails_is_recorded_once() {
    let server = hub_server().await;
    server.faults().fail_next(
        RequestMatcher::verb("patch")
            .resource("sovereignworkloads")
            .subresource("status"),
        500,
        3,
    );
    let dir = tempfile::tempdir().unwrap();
    let operator = start_operator(&server, dir.path(), "sovra-0", false);
    server
        .put(workload("tax", "internal", 2, json!({})))
        .unwrap();
    wait_for_phase(&server, "tax", "Placed").await;

    let failed = served(&server, |r| status_writes_of(r, "tax") && r.status == 500);
    assert_eq!(failed.len(), 3, "the status write failed three times first");
    assert_eq!(records_for(&operator.audit_log, "tax", "Placed"), 1);
    assert_eq!(
        events_for(&server, NAMESPACE, "tax", "Placed").len(),
        1,
        "the Placed Event is published once too"
    );
}

#[tokio::test]
async fn a_child_apply_that_fails_records_nothing_until_the_placement_happens() {
    let server = hub_server().await;
    server.faults().fail_next(
        RequestMatcher::verb("patch").resource("deployments"),
        409,
        3,
    );
    let dir = tempfile::tempdir().unwrap();
    let operator = start_operator(&server, dir.path(), "sovra-0", false);
    server
        .put(workload("tax", "internal", 2, json!({})))
        .unwrap();

    // While the apply keeps failing, nothing is claimed.
    eventually("the first failed apply", WAIT, || async {
        (!served(&server, |r| r.resource == "deployments" && r.status == 409).is_empty())
            .then_some(())
    })
    .await;
    assert_eq!(records_for(&operator.audit_log, "tax", "Placed"), 0);

    wait_for_phase(&server, "tax", "Placed").await;
    let conflicts = served(&server, |r| r.resource == "deployments" && r.status == 409);
    assert_eq!(conflicts.len(), 3, "three applies were refused first");
    assert_eq!(records_for(&operator.audit_log, "tax", "Placed"), 1);
    assert!(server.get(&deployments(), Some(NAMESPACE), "tax").is_some());
}

// Item 2: drift judges pods against the decision, not only against a status that lags.

#[tokio::test]
async fn pods_of_a_child_applied_before_a_failed_status_write_are_not_violations() {
    let server = hub_server().await;
    // The status write fails for a while (backoff 1 + 2 + 4 + 8 s): the child runs, status lags.
    server.faults().fail_next(
        RequestMatcher::verb("patch")
            .resource("sovereignworkloads")
            .subresource("status"),
        500,
        5,
    );
    let dir = tempfile::tempdir().unwrap();
    let operator = start_operator(&server, dir.path(), "sovra-0", false);
    server
        .put(workload("portal", "internal", 1, json!({})))
        .unwrap();
    let child = eventually("the child Deployment", WAIT, || async {
        server.get(&deployments(), Some(NAMESPACE), "portal")
    })
    .await;
    let pool = affinity_values(&child, POOL_LABEL)[0].clone();
    assert!(
        server.get(&workloads(), Some(NAMESPACE), "portal").unwrap()["status"]
            .get("placements")
            .is_none(),
        "status does not show the placement yet"
    );

    // A pod of the child, on a node of the placed pool.
    server.clear_requests();
    server
        .put(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "portal-1", "namespace": NAMESPACE,
                         "labels": {"sovra.dev/workload": "portal", "sovra.dev/sensitivity": "internal"}},
            "spec": {"nodeName": format!("{pool}-0"), "containers": [{"name": "app", "image": "app:1"}]},
            "status": {"phase": "Running"}
        }))
        .unwrap();
    // Drift judged the pod: it read the workload the pod belongs to.
    eventually("drift reads the pod's workload", WAIT, || async {
        (!served(&server, |r| {
            r.verb == "get"
                && r.resource == "sovereignworkloads"
                && r.name.as_deref() == Some("portal")
        })
        .is_empty())
        .then_some(())
    })
    .await;
    assert!(
        server.get(&workloads(), Some(NAMESPACE), "portal").unwrap()["status"]
            .get("placements")
            .is_none(),
        "it judged the pod while status still lagged"
    );
    wait_for_phase(&server, "portal", "Placed").await;
    assert_eq!(records_for(&operator.audit_log, "portal-1", "Violation"), 0);
    assert!(
        server.get(&pods(), Some(NAMESPACE), "portal-1").is_some(),
        "the pod was not evicted"
    );
    assert!(served(&server, |r| r.subresource.as_deref() == Some("eviction")).is_empty());
}

// Item 3: someone else's Deployment is never taken over.

fn hand_made_deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "someone-else:1"}]}
            }
        }
    })
}

#[tokio::test]
async fn a_hand_made_deployment_with_the_workloads_name_is_never_touched() {
    let server = hub_server().await;
    let created = server.put(hand_made_deployment("tax")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let operator = start_operator(&server, dir.path(), "sovra-0", false);
    server
        .put(workload("tax", "internal", 2, json!({})))
        .unwrap();

    let conflicted = eventually("Placed=False ChildConflict", WAIT, || async {
        let w = server.get(&workloads(), Some(NAMESPACE), "tax")?;
        let placed = w["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Placed")?
            .clone();
        (placed["reason"] == "ChildConflict").then_some((w, placed))
    })
    .await;
    let (workload, placed) = conflicted;
    assert_eq!(placed["status"], "False");
    let message = placed["message"].as_str().unwrap();
    assert!(
        message.contains("Deployment ministry-fin/tax on cluster rijkscloud-nl is not Sovra's"),
        "{message}"
    );
    assert_eq!(workload["status"]["phase"], "Pending");
    let event = wait_for_event(&server, NAMESPACE, "tax", "ChildConflict").await;
    assert_eq!(event["type"], "Warning");

    // Give the backoff time to re-check a few times; the Deployment is read, never written.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let touching = served(&server, |r| {
        r.resource == "deployments" && r.name.as_deref() == Some("tax")
    });
    let reads = touching.iter().filter(|r| r.verb == "get").count();
    assert!(reads >= 2, "the conflict was re-checked: {touching:?}");
    assert!(reads <= 5, "with backoff, not in a storm: {touching:?}");
    assert!(
        touching.iter().all(|r| r.verb == "get"),
        "never patched or deleted: {touching:?}"
    );
    let now = server.get(&deployments(), Some(NAMESPACE), "tax").unwrap();
    assert_eq!(
        now["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"],
        "the Deployment is as its owner left it"
    );
    assert_eq!(records_for(&operator.audit_log, "tax", "Placed"), 0);
    assert_eq!(
        events_for(&server, NAMESPACE, "tax", "ChildConflict").len(),
        1,
        "reported once, not per re-check"
    );

    // Once its owner removes it, the workload is placed, and that is recorded once.
    server
        .delete(&deployments(), Some(NAMESPACE), "tax")
        .unwrap();
    eventually(
        "placed after the conflict is gone",
        Duration::from_secs(30),
        || async {
            let w = server.get(&workloads(), Some(NAMESPACE), "tax")?;
            (w["status"]["phase"] == "Placed").then_some(())
        },
    )
    .await;
    assert_eq!(records_for(&operator.audit_log, "tax", "Placed"), 1);
    let child = server.get(&deployments(), Some(NAMESPACE), "tax").unwrap();
    assert_eq!(
        child["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "sovra"
    );
}

// Item 10: members are probed on the probe interval, not on every world change.

#[tokio::test]
async fn world_changes_on_one_member_do_not_re_probe_the_others() {
    let hub = hub_server().await;
    let churning = member_server("DE").await;
    let quiet = member_server("DE").await;
    join(&hub, member_cluster("bund-de-1", "DE"), &churning);
    join(&hub, member_cluster("bund-de-2", "DE"), &quiet);
    let dir = tempfile::tempdir().unwrap();
    let mut args = run_args("sovra-0", dir.path().join("audit.jsonl"), false);
    args.member_probe_interval = Duration::from_secs(3);
    let _operator = start_operator_with(&hub, args);
    wait_for_reachable(&hub, "bund-de-1", "True", "Probed").await;
    wait_for_reachable(&hub, "bund-de-2", "True", "Probed").await;
    let probes = |server: &TestApiServer| {
        server
            .requests()
            .iter()
            .filter(|r| r.path == "/version")
            .count()
    };

    // Ten world changes in four seconds: a sovereign node of bund-de-1 flips its label (400 ms
    // apart, beyond the controllers' 200 ms debounce).
    hub.clear_requests();
    quiet.clear_requests();
    for i in 0..10 {
        churning
            .put(node_in("general-1", "general", "DE", i % 2 == 1))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // The world did change each time: bund-de-1's status followed its pools.
    let cluster_writes = served(&hub, |r| {
        r.resource == "sovereignclusters"
            && r.subresource.as_deref() == Some("status")
            && r.name.as_deref() == Some("bund-de-1")
    });
    assert!(cluster_writes.len() >= 5, "{cluster_writes:?}");
    // The quiet member was probed on its interval (3 s here: once or twice in 4 s), not once
    // per world change (which would make it ten or more).
    let quiet_probes = probes(&quiet);
    assert!(quiet_probes >= 1, "probed on the interval: {quiet_probes}");
    assert!(
        quiet_probes <= 3,
        "not on every world change: {quiet_probes}"
    );
}

// Item 6: a deletion waiting for an unreachable member is released after a bounded wait.

#[tokio::test]
async fn a_deletion_waits_a_bounded_time_for_a_down_member_then_releases_and_the_sweep_cleans_up() {
    let hub = hub_server().await;
    let member = member_server("DE").await;
    join(&hub, member_cluster("bund-de-1", "DE"), &member);
    let dir = tempfile::tempdir().unwrap();
    let mut args = run_args("sovra-0", dir.path().join("audit.jsonl"), false);
    args.member_cleanup_timeout = Duration::from_secs(3);
    let operator = start_operator_with(&hub, args);
    hub.put(pinned_to_de("tax", "internal", 1, json!({})))
        .unwrap();
    wait_for_phase(&hub, "tax", "Placed").await;
    assert!(member.get(&deployments(), Some(NAMESPACE), "tax").is_some());

    member.stop().await;
    wait_for_reachable(&hub, "bund-de-1", "False", "ServerUnreachable").await;
    hub.delete(&workloads(), Some(NAMESPACE), "tax").unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        hub.get(&workloads(), Some(NAMESPACE), "tax").is_some(),
        "the finalizer holds while the wait lasts"
    );
    eventually(
        "released after the wait",
        Duration::from_secs(30),
        || async {
            hub.get(&workloads(), Some(NAMESPACE), "tax")
                .is_none()
                .then_some(())
        },
    )
    .await;
    let warning = wait_for_event(&hub, NAMESPACE, "tax", "ReleaseUnconfirmed").await;
    assert_eq!(warning["type"], "Warning");
    assert!(
        warning["note"].as_str().unwrap().contains("bund-de-1"),
        "{warning}"
    );
    let trail = std::fs::read_to_string(&operator.audit_log).unwrap();
    let released: Vec<Value> = trail
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["action"] == "Released")
        .collect();
    assert_eq!(released.len(), 1, "{trail}");
    assert!(
        released[0]["reasons"][1]
            .as_str()
            .unwrap()
            .contains("was not confirmed removed"),
        "{trail}"
    );

    // The member returns: the orphan sweep removes the child left there.
    member.restart().await;
    wait_gone(&member, &deployments(), Some(NAMESPACE), "tax").await;
    wait_for_event(&hub, "default", "bund-de-1", "OrphanRemoved").await;
}

// Item 12: an undeserializable workload is reported once per distinct problem, without a GET.

#[tokio::test]
async fn a_broken_workload_is_reported_once_per_distinct_problem_and_never_read_back() {
    let server = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let (_operator, addr) = start_serving_operator(&server, dir.path(), "sovra-0", false).await;
    let mut broken = workload("broken", "internal", 1, json!({}));
    broken["spec"]["replicas"] = json!("many");
    server.put_unvalidated(broken.clone()).unwrap();
    wait_for_event(&server, NAMESPACE, "broken", "InvalidSpec").await;
    wait_for_phase(&server, "broken", "Refused").await;

    // The same problem again (a label changed): reconciled, but nothing is sent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.clear_requests();
    let before = reconciles_started(addr, "workload").await;
    broken["metadata"]["labels"] = json!({"touched": "yes"});
    server.put_unvalidated(broken.clone()).unwrap();
    wait_for_reconciles_after(addr, "workload", before, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = served(&server, |r| {
        (r.resource == "events" && r.verb != "get" && r.verb != "list" && r.verb != "watch")
            || (r.resource == "sovereignworkloads" && r.name.as_deref() == Some("broken"))
    });
    assert!(
        sent.is_empty(),
        "nothing published, written or read back: {sent:?}"
    );

    // A different problem is reported: in the condition, and as an Event (which kube's
    // Recorder folds into the object's InvalidSpec series, so its note stays the first one).
    broken["spec"]["replicas"] = json!("lots");
    server.put_unvalidated(broken).unwrap();
    eventually("the new problem is in the condition", WAIT, || async {
        let w = server.get(&workloads(), Some(NAMESPACE), "broken")?;
        w["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| {
                c["type"] == "Ready" && c["message"].as_str().is_some_and(|m| m.contains("lots"))
            })
            .then_some(())
    })
    .await;
    // The Event follows the status write (so a failed write does not publish it twice).
    eventually("the new problem published", WAIT, || async {
        (!served(&server, |r| r.resource == "events" && r.verb == "patch").is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let published = served(&server, |r| r.resource == "events" && r.verb == "patch");
    assert_eq!(published.len(), 1, "published once more: {published:?}");
    let reads = served(&server, |r| {
        r.verb == "get" && r.resource == "sovereignworkloads" && r.name.as_deref() == Some("broken")
    });
    assert!(reads.is_empty(), "the status is not read back: {reads:?}");
}

#[tokio::test]
async fn a_hand_made_deployment_on_a_member_is_never_touched_either() {
    let hub = hub_server().await;
    let member = member_server("DE").await;
    join(&hub, member_cluster("bund-de-1", "DE"), &member);
    member
        .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
        .unwrap();
    let created = member.put(hand_made_deployment("tax")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let operator = start_operator(&hub, dir.path(), "sovra-0", false);
    hub.put(pinned_to_de("tax", "internal", 1, json!({})))
        .unwrap();

    let placed = eventually("Placed=False ChildConflict", WAIT, || async {
        let w = hub.get(&workloads(), Some(NAMESPACE), "tax")?;
        w["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Placed" && c["reason"] == "ChildConflict")
            .cloned()
    })
    .await;
    assert!(
        placed["message"]
            .as_str()
            .unwrap()
            .contains("on cluster bund-de-1 is not Sovra's"),
        "{placed}"
    );
    let touching = served(&member, |r| {
        r.resource == "deployments" && r.name.as_deref() == Some("tax")
    });
    assert!(
        !touching.is_empty(),
        "the member's Deployment was looked at"
    );
    assert!(
        touching.iter().all(|r| r.verb == "get"),
        "never patched or deleted: {touching:?}"
    );
    assert_eq!(
        member.get(&deployments(), Some(NAMESPACE), "tax").unwrap()["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    assert_eq!(records_for(&operator.audit_log, "tax", "Placed"), 0);
}
