//! Leader election against the in-process API server: a leader whose start-up is slower than
//! the lease keeps it (renewal runs in the background from the moment it is acquired), and a
//! holder whose clock is an hour behind keeps its lease as long as it renews (expiry is judged
//! by when this replica saw the record change, never by comparing `renewTime` with the local
//! clock).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use support::*;
use test_apiserver::{RequestMatcher, TestApiServer};
use tokio::time::Instant;

/// The operator's lease duration (`leaseDurationSeconds` it writes).
const LEASE: Duration = Duration::from_secs(15);

/// An operator with leader election whose `/readyz` is on `addr`.
fn start(server: &TestApiServer, dir: &Path, identity: &str, addr: SocketAddr) -> Operator {
    let mut args = run_args(identity, dir.join(format!("{identity}-audit.jsonl")), true);
    args.http_addr = addr;
    start_operator_with(server, args)
}

async fn readyz(addr: SocketAddr) -> String {
    http_get(addr, "/readyz").await.map_or_else(
        || "no answer".to_owned(),
        |(status, body)| format!("{status} {body}"),
    )
}

fn lease(server: &TestApiServer) -> Option<Value> {
    server.get(&leases(), Some(OPERATOR_NAMESPACE), "sovra-leader")
}

fn holder(server: &TestApiServer) -> Option<String> {
    lease(server).and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
}

/// Events this identity published (its Recorder's `reportingInstance`).
fn events_by(server: &TestApiServer, identity: &str) -> Vec<Value> {
    server
        .list(&events(), None)
        .into_iter()
        .filter(|e| e["reportingInstance"] == identity)
        .collect()
}

fn is_write(verb: &str) -> bool {
    matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    )
}

fn audit_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn a_leader_frozen_in_start_up_keeps_renewing_and_the_standby_never_takes_over() {
    let server = hub_server().await;
    // Every list the leader's start-up waits for answers only after more than a lease
    // duration: the hub's Nodes (the world's caches) and Sovra's Deployments on the hub.
    let frozen = LEASE + Duration::from_secs(5);
    server
        .faults()
        .delay(RequestMatcher::verb("list").resource("nodes"), frozen);
    server
        .faults()
        .delay(RequestMatcher::verb("list").resource("deployments"), frozen);
    let dir = tempfile::tempdir().unwrap();
    let (first_addr, second_addr) = (free_addr(), free_addr());
    let first = start(&server, dir.path(), "sovra-0", first_addr);
    eventually("sovra-0 acquires the lease", WAIT, || async {
        (holder(&server).as_deref() == Some("sovra-0")).then_some(())
    })
    .await;
    let acquired = Instant::now();
    let second = start(&server, dir.path(), "sovra-1", second_addr);
    let from = server.requests().len();
    server
        .put(workload("frozen", "public", 1, json!({})))
        .unwrap();

    // Sample until the first replica reconciles.
    let mut holders = BTreeSet::new();
    let mut transitions = BTreeSet::new();
    let mut renewals_after_a_lease = BTreeSet::new();
    let mut first_phases = Vec::new();
    let mut second_phases = BTreeSet::new();
    // The freeze ends at the last request seen while sovra-0 still said it was starting: it
    // says "reconciling" before its controllers run, so nothing up to there is a reconcile's.
    let mut to = from;
    let reconciling = loop {
        let seen = server.requests().len();
        let lease = lease(&server).unwrap();
        holders.insert(lease["spec"]["holderIdentity"].to_string());
        transitions.insert(lease["spec"]["leaseTransitions"].to_string());
        if acquired.elapsed() > LEASE {
            renewals_after_a_lease.insert(lease["spec"]["renewTime"].to_string());
        }
        let phase = readyz(first_addr).await;
        first_phases.push((acquired.elapsed(), phase.clone()));
        second_phases.insert(readyz(second_addr).await);
        if phase.contains("reconciling") {
            break acquired.elapsed();
        }
        to = seen;
        assert!(
            acquired.elapsed() < frozen + Duration::from_secs(20),
            "sovra-0 never started reconciling: {first_phases:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    server.faults().clear();

    // The precondition: the first replica was frozen in start-up longer than a lease...
    assert!(reconciling > LEASE, "start-up took only {reconciling:?}");
    assert!(
        first_phases
            .iter()
            .any(|(at, phase)| *at > LEASE && phase.contains("leading; caches syncing")),
        "sovra-0 was still starting after a lease duration: {first_phases:?}"
    );
    // ... and the second replica campaigned all along: it read the Lease (the leader renews
    // by updating the Lease it wrote, so the GETs are the standby's) and followed sovra-0.
    let window = &server.requests()[from..to];
    let lease_gets = window
        .iter()
        .filter(|r| r.resource == "leases" && r.verb == "get")
        .count();
    assert!(
        lease_gets >= 5,
        "the standby read the Lease {lease_gets} times"
    );
    assert!(
        second_phases.contains("200 ready: standing by; sovra-0 leads"),
        "{second_phases:?}"
    );

    // The lease never changed hands and was renewed while the leader was still starting.
    assert_eq!(holders, BTreeSet::from(["\"sovra-0\"".to_owned()]));
    assert_eq!(transitions, BTreeSet::from(["0".to_owned()]));
    assert!(
        renewals_after_a_lease.len() >= 2,
        "renewed after the first lease duration: {renewals_after_a_lease:?}"
    );
    // Nobody but the leader's renewals wrote during the freeze: the leader reconciled nothing
    // yet, so any other write would have been the standby's.
    let writes: Vec<_> = window
        .iter()
        .filter(|r| is_write(&r.verb) && r.resource != "leases")
        .collect();
    assert!(writes.is_empty(), "writes during the freeze: {writes:?}");
    assert!(
        window
            .iter()
            .filter(|r| r.resource == "leases" && is_write(&r.verb))
            .all(|r| r.verb == "update" && r.status == 200),
        "only renewals of the Lease"
    );

    // Once started, the first places the workload; the second still never acted.
    let placed = wait_for_phase(&server, "frozen", "Placed").await;
    assert_eq!(placed["status"]["placements"][0]["cluster"], HUB);
    let placed_by_first: Vec<_> = audit_records(&first.audit_log)
        .into_iter()
        .filter(|r| r["object"]["name"] == "frozen")
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(placed_by_first, ["Placed"]);
    assert!(
        !events_by(&server, "sovra-0").is_empty(),
        "sovra-0 publishes Events"
    );
    assert!(
        audit_records(&second.audit_log).is_empty(),
        "the standby never opened its audit trail for writing"
    );
    assert!(events_by(&server, "sovra-1").is_empty());
    assert!(
        readyz(second_addr)
            .await
            .contains("standing by; sovra-0 leads"),
        "the standby still follows"
    );
    assert_eq!(holder(&server).as_deref(), Some("sovra-0"));
    first.shutdown().await.unwrap();
    second.shutdown().await.unwrap();
}

/// A Lease as another replica would write it, with its clock an hour behind.
fn skewed_lease(holder: &str) -> Value {
    let behind = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let time = serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        behind,
    ))
    .unwrap();
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "sovra-leader", "namespace": OPERATOR_NAMESPACE},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "acquireTime": time,
                 "renewTime": time, "leaseTransitions": 0}
    })
}

#[tokio::test]
async fn a_holder_whose_clock_is_an_hour_behind_keeps_its_lease_while_it_renews() {
    let server = hub_server().await;
    server.put(skewed_lease("simulated-holder")).unwrap();
    // The simulated holder renews every 2 s, each time writing a renewTime an hour in the past.
    let (stop_renewing, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let holder_task = {
        let server = server.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
                    () = tokio::time::sleep(Duration::from_secs(2)) => {
                        server.put(skewed_lease("simulated-holder")).unwrap();
                    }
                }
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let operator = start(&server, dir.path(), "sovra-0", addr);

    // The operator runs and follows the simulated holder...
    eventually("the operator stands by", WAIT, || async {
        readyz(addr)
            .await
            .contains("200 ready: standing by; simulated-holder leads")
            .then_some(())
    })
    .await;
    // ... for well over a lease duration, reading the Lease all along, and never takes it.
    let watching = Instant::now();
    while watching.elapsed() < LEASE + Duration::from_secs(5) {
        assert_eq!(holder(&server).as_deref(), Some("simulated-holder"));
        let phase = readyz(addr).await;
        assert!(
            phase.contains("standing by; simulated-holder leads"),
            "after {:?}: {phase}",
            watching.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let requests = server.requests();
    let lease_gets = requests
        .iter()
        .filter(|r| r.resource == "leases" && r.verb == "get")
        .count();
    assert!(
        lease_gets >= 8,
        "the operator read the Lease {lease_gets} times"
    );
    let writes: Vec<_> = requests.iter().filter(|r| is_write(&r.verb)).collect();
    assert!(
        writes.is_empty(),
        "the operator (the only HTTP client) wrote nothing: {writes:?}"
    );
    assert!(audit_records(&operator.audit_log).is_empty());

    // The holder stops renewing: the operator takes over once it has seen no change for a
    // lease duration, and not before.
    stop_renewing.send(()).unwrap();
    holder_task.await.unwrap();
    let stopped_at = Instant::now();
    eventually("the operator takes over", LEASE * 2, || async {
        (holder(&server).as_deref() == Some("sovra-0")).then_some(())
    })
    .await;
    let took_over = stopped_at.elapsed();
    // The last renewal was at most 2 s before the holder stopped.
    assert!(
        took_over >= LEASE - Duration::from_secs(2),
        "took over after only {took_over:?}"
    );
    assert_eq!(lease(&server).unwrap()["spec"]["leaseTransitions"], 1);

    server
        .put(workload("after-takeover", "public", 1, json!({})))
        .unwrap();
    wait_for_phase(&server, "after-takeover", "Placed").await;
    assert_eq!(
        support::audit_actions(&operator.audit_log),
        ["Placed"],
        "the new leader records its decisions"
    );
    operator.shutdown().await.unwrap();
    assert_eq!(
        lease(&server).unwrap()["spec"]["holderIdentity"],
        Value::Null,
        "released on shutdown"
    );
    eprintln!("took over {took_over:?} after the holder stopped renewing");
}
