//! A control-plane outage does not end the operator: the hub's API server is down for 60 s,
//! the leader stops reconciling once it cannot renew (and `/readyz` fails), both replicas
//! campaign again in the same process, and when the server is back one of them leads with fresh
//! caches and places new work at once; never two at a time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;
use test_apiserver::TestApiServer;
use tokio::time::Instant;

const OUTAGE: Duration = Duration::from_secs(60);
/// The operator's renew deadline: a leader that cannot renew for this long stops.
const RENEW_DEADLINE: Duration = Duration::from_secs(10);

fn start(server: &TestApiServer, dir: &Path, identity: &str, addr: SocketAddr) -> Operator {
    let mut args = run_args(identity, dir.join(format!("{identity}-audit.jsonl")), true);
    args.http_addr = addr;
    start_operator_with(server, args)
}

/// What `/readyz` of one replica said at one moment.
#[derive(Clone, Debug)]
struct Sample {
    at: Duration,
    status: Option<u16>,
    body: String,
}

impl Sample {
    /// The replica holds the lease and may act: starting its term or reconciling.
    fn leads(&self) -> bool {
        self.body.contains("reconciling") || self.body.contains("leading")
    }
}

/// Polls both replicas' `/readyz` every 100 ms into a timeline, until dropped.
fn sample(addrs: [SocketAddr; 2], epoch: Instant) -> (Arc<Mutex<Vec<[Sample; 2]>>>, AbortOnDrop) {
    let timeline = Arc::new(Mutex::new(Vec::new()));
    let task = {
        let timeline = timeline.clone();
        tokio::spawn(async move {
            loop {
                let mut pair = Vec::new();
                for addr in addrs {
                    let answer = http_get(addr, "/readyz").await;
                    pair.push(Sample {
                        at: epoch.elapsed(),
                        status: answer.as_ref().map(|(s, _)| *s),
                        body: answer.map(|(_, b)| b).unwrap_or_default(),
                    });
                }
                let pair: [Sample; 2] = pair.try_into().unwrap();
                timeline.lock().unwrap().push(pair);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    (timeline, AbortOnDrop(task))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn audit_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn parse_time(value: &Value) -> jiff::Timestamp {
    value.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn the_hub_api_server_down_for_a_minute_does_not_end_the_operator() {
    let server = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let addrs = [free_addr(), free_addr()];
    let first = start(&server, dir.path(), "sovra-0", addrs[0]);
    eventually("sovra-0 reconciles", WAIT, || async {
        http_get(addrs[0], "/readyz")
            .await
            .filter(|(s, b)| *s == 200 && b.contains("reconciling"))
    })
    .await;
    let second = start(&server, dir.path(), "sovra-1", addrs[1]);
    eventually("sovra-1 stands by", WAIT, || async {
        http_get(addrs[1], "/readyz")
            .await
            .filter(|(s, b)| *s == 200 && b.contains("standing by; sovra-0 leads"))
    })
    .await;
    server
        .put(workload("before", "public", 1, json!({})))
        .unwrap();
    wait_for_phase(&server, "before", "Placed").await;

    let epoch = Instant::now();
    let (timeline, sampler) = sample(addrs, epoch);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped = epoch.elapsed();
    server.stop().await;
    tokio::time::sleep(OUTAGE).await;
    server.restart().await;
    let restarted = epoch.elapsed();
    server
        .put(workload("after", "public", 1, json!({})))
        .unwrap();
    eventually(
        "the workload created after the outage is placed",
        Duration::from_secs(20),
        || async {
            server
                .get(&workloads(), Some(NAMESPACE), "after")
                .filter(|w| w["status"]["phase"] == "Placed")
        },
    )
    .await;
    let placed_in = epoch.elapsed() - restarted;
    // Let the new term settle, then stop sampling.
    eventually(
        "one replica reconciles, the other stands by",
        WAIT,
        || async {
            let last = timeline.lock().unwrap().last().cloned()?;
            let bodies = [&last[0].body, &last[1].body];
            (bodies.iter().any(|b| b.contains("reconciling"))
                && bodies.iter().any(|b| b.contains("standing by")))
            .then_some(())
        },
    )
    .await;
    drop(sampler);
    let timeline = timeline.lock().unwrap().clone();

    // Neither operator task returned: both are the run_with_client futures started above.
    assert!(!first.task.is_finished(), "sovra-0 kept running");
    assert!(!second.task.is_finished(), "sovra-1 kept running");

    // Before the outage sovra-0 reconciled; during it, once the renew deadline had passed,
    // both served /readyz (the process lives) and both failed it.
    let before: Vec<_> = timeline.iter().filter(|p| p[0].at < stopped).collect();
    assert!(!before.is_empty() && before.iter().all(|p| p[0].body.contains("reconciling")));
    let late_in_outage: Vec<_> = timeline
        .iter()
        .filter(|p| p[0].at > stopped + RENEW_DEADLINE + Duration::from_secs(3))
        .filter(|p| p[1].at < restarted)
        .collect();
    assert!(
        late_in_outage.len() > 100,
        "{} samples",
        late_in_outage.len()
    );
    for pair in &late_in_outage {
        for sample in pair.iter() {
            assert_eq!(sample.status, Some(503), "{sample:?}");
            assert!(sample.body.contains("leadership unknown"), "{sample:?}");
        }
    }
    // sovra-0 kept leading until its renew deadline (counted from its last renewal, at most
    // 2 s before the stop), then stopped at once.
    let stepped_down = timeline
        .iter()
        .find(|p| p[0].at > stopped && !p[0].body.contains("reconciling"))
        .map(|p| p[0].at - stopped)
        .unwrap();
    assert!(
        stepped_down >= RENEW_DEADLINE - Duration::from_secs(2)
            && stepped_down <= RENEW_DEADLINE + Duration::from_secs(1),
        "sovra-0 stopped reconciling {stepped_down:?} into the outage"
    );
    assert!(
        timeline
            .iter()
            .flat_map(|p| p.iter())
            .all(|s| s.status.is_some()),
        "/readyz always answered: the processes never went away"
    );

    // Never two leaders at once, by their own account...
    let both: Vec<_> = timeline
        .iter()
        .filter(|p| p[0].leads() && p[1].leads())
        .collect();
    assert!(both.is_empty(), "both led at once: {both:?}");
    // ... and by what they wrote. A replica records each decision in its own trail before it
    // acts; the trails interleave only at a handover of the lease.
    let lease = server
        .get(&leases(), Some(OPERATOR_NAMESPACE), "sovra-leader")
        .unwrap();
    let transitions = lease["spec"]["leaseTransitions"].as_u64().unwrap();
    let leader = lease["spec"]["holderIdentity"].as_str().unwrap().to_owned();
    let mut records: Vec<(jiff::Timestamp, String, String)> = [&first, &second]
        .iter()
        .flat_map(|op| {
            audit_records(&op.audit_log).into_iter().map(|r| {
                (
                    parse_time(&r["time"]),
                    op.identity.clone(),
                    r["object"]["name"].as_str().unwrap().to_owned(),
                )
            })
        })
        .collect();
    records.sort();
    let writers: Vec<&str> = records.iter().map(|(_, who, _)| who.as_str()).collect();
    let runs = 1 + writers.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(
        runs as u64 <= transitions + 1,
        "{runs} runs of writers with {transitions} lease transitions: {records:?}"
    );
    assert_eq!(
        records
            .iter()
            .map(|(_, who, name)| (who.as_str(), name.as_str()))
            .collect::<Vec<_>>(),
        [("sovra-0", "before"), (leader.as_str(), "after")],
        "each workload was decided once, by the replica leading at the time"
    );
    // The Events say the same: each was published by the replica that decided.
    for (name, by) in [("before", "sovra-0"), ("after", leader.as_str())] {
        let placed = events_for(&server, NAMESPACE, name, "Placed");
        assert_eq!(placed.len(), 1, "{placed:?}");
        assert_eq!(placed[0]["reportingInstance"], by);
    }
    for op in [&first, &second] {
        assert!(
            sovra::audit::verify_file(&op.audit_log)
                .map(|r| r.is_intact())
                .unwrap_or(true)
        );
    }
    eprintln!(
        "sovra-0 stopped {stepped_down:?} into the outage; placed {placed_in:?} after the restart; \
         leader after the outage: {leader}; transitions: {transitions}"
    );
    assert!(placed_in <= Duration::from_secs(20));
    first.shutdown().await.unwrap();
    second.shutdown().await.unwrap();
}
