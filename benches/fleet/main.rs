//! End-to-end fleet bench (issue 14): the release `sovra run` binary, as its own process,
//! against an in-process hub and 10 member API servers with 1,000 nodes in 100 node pools,
//! placing N SovereignWorkloads (SOVRA_BENCH_WORKLOADS, default 10,000). It prints, and asserts
//! nothing about time:
//! - start-up: workloads created while the operator is stopped, then the time from its start
//!   until all are Placed, with edits during that backlog and their latency;
//! - writes per placement by kind (verb, resource, subresource, patch type) and the retries;
//! - writes per readiness change; RSS and writes when idle; RSS peak during a relist of every
//!   watch; a restart with everything placed;
//! - an honest baseline: the same requests (writes and single-object reads) replayed against
//!   the same servers at the same concurrency, and Sovra's time over the replay's.
//!
//! Run with `make bench` or `SOVRA_BENCH_WORKLOADS=1000 cargo bench --bench fleet`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../../tests/support/mod.rs"]
mod support;

mod access_log;
mod edits;
mod operator;
mod phases;
mod replay;
mod summary;
mod topology;
mod waits;

use access_log::{Breakdown, take_requests};
use operator::{CONCURRENCY, Operator};
use phases::Fleet;
use std::time::{Duration, Instant};
use summary::Figures;
use test_apiserver::TestApiServer;
use topology::{MEMBERS, NAMESPACE, REPLAY_NAMESPACE};

fn workload_count() -> usize {
    std::env::var("SOVRA_BENCH_WORKLOADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let count = workload_count();
    let hub = topology::hub().await;
    let mut members = Vec::new();
    for i in 0..MEMBERS {
        members.push(topology::member(&hub, i).await);
    }
    let fleet = Fleet {
        hub: &hub,
        members: &members,
        count,
    };
    // The audit trail fsyncs every record before acting, so the disk shows in the figure.
    // SOVRA_BENCH_AUDIT_DIR=/dev/shm measures without a real fsync.
    let dir = match std::env::var_os("SOVRA_BENCH_AUDIT_DIR") {
        Some(base) => tempfile::tempdir_in(base).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let kubeconfig = dir.path().join("hub.kubeconfig");
    std::fs::write(&kubeconfig, hub.kubeconfig_yaml()).unwrap();
    for i in 0..count {
        hub.put(topology::workload(i, NAMESPACE)).unwrap();
    }
    println!(
        "fleet: {count} workloads, {MEMBERS} in-process members with {} nodes each in {} pools, operator pid below, concurrency {CONCURRENCY}",
        topology::POOLS_PER_MEMBER * topology::NODES_PER_POOL,
        topology::POOLS_PER_MEMBER
    );
    let mut figures = Figures {
        workloads: count,
        ..Figures::default()
    };

    for server in fleet.servers() {
        server.clear_requests();
        server.record_bodies(true);
    }
    let servers_cpu = operator::cpu_seconds("self").unwrap_or_default();
    let mut operator = Operator::start(dir.path(), &kubeconfig, "first");
    let started = Instant::now();
    let (stop_editing, editing) = tokio::sync::watch::channel(false);
    let edits = tokio::spawn(edits::during(hub.clone(), count, editing));
    let synced = tokio::spawn(until_ready(operator.http, started));
    fleet.all(&mut operator, "placed", waits::is_placed).await;
    figures.startup = started.elapsed();
    figures.startup_operator_cpu = operator.cpu_seconds();
    figures.startup_servers_cpu = operator::cpu_seconds("self").unwrap_or_default() - servers_cpu;
    let _ = stop_editing.send(true);
    let reconciles = operator.workload_reconcile_time().await;
    let edits = edits.await.unwrap();
    figures.synced = synced.await.unwrap();
    figures.startup_peak_mib = operator.rss.peak_mib();
    figures.edits = edits.latencies.len();
    figures.edits_unhandled = edits.unhandled;
    figures.edit_p50 = edits.percentile(0.50);
    figures.edit_p99 = edits.percentile(0.99);
    let slowest: Vec<String> = edits
        .slowest(3)
        .iter()
        .map(|(made, latency)| {
            format!(
                "{:.2} s (made {:.2} s after the operator started)",
                latency.as_secs_f64(),
                made.as_secs_f64()
            )
        })
        .collect();
    println!("slowest edits: {}", slowest.join("; "));
    if let Some((count, seconds)) = reconciles {
        println!(
            "workload reconciles during start-up: {count:.0}, {:.2} ms each on average; {:.0}% of the {CONCURRENCY} permits' time",
            seconds * 1e3 / count.max(1.0),
            seconds * 100.0 / (CONCURRENCY as f64 * figures.startup.as_secs_f64())
        );
    }
    // Writes and single-object reads, in order: the breakdowns count the writes, the replay
    // sends both.
    let startup_requests = take_requests(&fleet.servers(), access_log::is_replayable);
    for server in fleet.servers() {
        server.record_bodies(false);
    }
    println!(
        "start-up (operator pid {}): all Placed after {:.2} s ({:.0}/s; caches synced after {}); RSS peak {:.1} MiB",
        operator.pid(),
        figures.startup.as_secs_f64(),
        count as f64 / figures.startup.as_secs_f64(),
        figures
            .synced
            .map_or("n/a".into(), |d| format!("{:.2} s", d.as_secs_f64())),
        figures.startup_peak_mib
    );
    let placed = count - edits.edited.len();
    let breakdown = Breakdown::of(&startup_requests, &edits.edited);
    println!(
        "writes during start-up by kind, per placement ({} edited workloads and their {} writes left out):",
        edits.edited.len(),
        breakdown.excluded
    );
    breakdown.print(placed);
    figures.writes_per_placement = breakdown.per(placed);
    figures.exit_warnings_per_placement = breakdown.exit_warnings as f64 / placed.max(1) as f64;
    figures.retries = Breakdown::of(&startup_requests, &Default::default()).retries;

    phases::readiness(&fleet, &mut operator, &mut figures).await;
    phases::steady(&fleet, &operator, &mut figures).await;
    phases::relist(&fleet, &mut operator, &mut figures).await;
    figures.hwm_mib = operator.hwm_mib();
    let operator = phases::restart(&fleet, operator, dir.path(), &kubeconfig, &mut figures).await;
    operator.stop().await;

    baseline(&fleet, &startup_requests, &mut figures).await;
    figures.print();
}

/// How long after `started` the operator's `/readyz` first answered 200 (caches synced).
async fn until_ready(http: std::net::SocketAddr, started: Instant) -> Option<Duration> {
    while started.elapsed() < phases::LIMIT {
        if operator::ready(http).await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Replays start-up's requests (the operator stopped) onto copies of the workloads as they
/// were created, in the replay's namespace.
async fn baseline(fleet: &Fleet<'_>, requests: &[access_log::Served], figures: &mut Figures) {
    for i in 0..fleet.count {
        fleet
            .hub
            .put(topology::workload(i, REPLAY_NAMESPACE))
            .unwrap();
    }
    let clients: Vec<kube::Client> = fleet
        .servers()
        .into_iter()
        .map(TestApiServer::client)
        .collect();
    let replayed = replay::replay(&clients, requests, REPLAY_NAMESPACE, CONCURRENCY).await;
    figures.replay_cpu = replayed.cpu;
    figures.replay = replayed.elapsed;
    figures.replay_requests = replayed.requests;
    figures.replay_writes = replayed.writes;
    println!(
        "raw replay: {} requests ({} writes) in {:.2} s ({:.0}/s) at concurrency {CONCURRENCY}; sovra / replay {:.2}x; answered with an error where Sovra was not: {}",
        replayed.requests,
        replayed.writes,
        replayed.elapsed.as_secs_f64(),
        replayed.requests as f64 / replayed.elapsed.as_secs_f64(),
        figures.startup.as_secs_f64() / replayed.elapsed.as_secs_f64(),
        access_log::describe_codes(&replayed.failed)
    );
}
