//! End-to-end placement across member clusters: the real operator places 2,000 workloads onto
//! 10 in-process member API servers. The baseline is the same number of raw Deployment
//! creates against the same servers, in the same run, with the same concurrency. Prints both
//! times and their ratio. Run with `make bench`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "../tests/support/mod.rs"]
mod support;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use sovra::cli::RunArgs;
use std::time::{Duration, Instant};
use test_apiserver::{ResourceRef, TestApiServer};

const WORKLOADS: usize = 2_000;
const MEMBERS: usize = 10;
const CONCURRENCY: u16 = 8;
const COUNTRIES: [&str; MEMBERS] = ["DE", "FR", "BE", "AT", "NL", "SE", "FI", "DK", "IE", "ES"];
const NAMESPACE: &str = "bench";
const POOL_LABEL: &str = "sovra.dev/node-pool";

fn workloads() -> ResourceRef {
    ResourceRef::new("sovra.dev", "v1alpha1", "sovereignworkloads")
}

fn member_name(i: usize) -> String {
    format!("member-{}", COUNTRIES[i].to_lowercase())
}

async fn hub() -> TestApiServer {
    let hub = TestApiServer::start().await;
    for crd in sovra::crd::all() {
        hub.put(serde_json::to_value(crd).unwrap()).unwrap();
    }
    for class in support::yaml_objects("deploy/sensitivityclasses.yaml") {
        hub.put(class).unwrap();
    }
    for ns in [NAMESPACE, "sovra-system"] {
        hub.put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .unwrap();
    }
    hub
}

async fn member(hub: &TestApiServer, i: usize) -> TestApiServer {
    let member = TestApiServer::start().await;
    for n in 0..2 {
        member
            .put(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": format!("general-{n}"), "labels": {
                POOL_LABEL: "general", "sovra.dev/country": COUNTRIES[i],
                "node-restriction.kubernetes.io/sovra-sovereign": "true"}}}))
            .unwrap();
    }
    let name = member_name(i);
    hub.put(support::kubeconfig_secret(
        &format!("{name}-kubeconfig"),
        &member.kubeconfig_yaml(),
    ))
    .unwrap();
    hub.put(json!({
        "apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignCluster",
        "metadata": {"name": name},
        "spec": {
            "country": COUNTRIES[i], "operatedBy": "eu-provider",
            "provider": {"name": "EU Cloud", "headquartersCountry": COUNTRIES[i], "extraterritorialExposure": false},
            "connection": {"kubeconfigSecretRef": {"name": format!("{name}-kubeconfig")}}
        }
    }))
    .unwrap();
    member
}

fn workload(i: usize) -> Value {
    json!({
        "apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignWorkload",
        "metadata": {"name": format!("w-{i:04}"), "namespace": NAMESPACE},
        "spec": {
            "sensitivity": "internal", "replicas": 2,
            "placement": {"requiredCountries": [COUNTRIES[i % MEMBERS]]},
            "template": {"metadata": {"labels": {"app": format!("w-{i:04}")}},
                         "spec": {"containers": [{"name": "app", "image": "registry.example.eu/app:1"}]}}
        }
    })
}

fn raw_deployment(i: usize) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": format!("w-{i:04}"), "namespace": "raw"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": format!("w-{i:04}")}},
                 "template": {"metadata": {"labels": {"app": format!("w-{i:04}")}},
                              "spec": {"containers": [{"name": "app", "image": "registry.example.eu/app:1"}]}}}
    }))
    .unwrap()
}

/// Waits until every workload is Placed. Checks one pending workload at a time and stops at
/// the first that is not placed yet, so that watching costs the servers next to nothing
/// (listing all 2,000 every poll took a third of the CPU the run had).
async fn wait_until_placed(hub: &TestApiServer) {
    let mut pending: std::collections::VecDeque<usize> = (0..WORKLOADS).collect();
    while let Some(&i) = pending.front() {
        let placed = hub
            .get(&workloads(), Some(NAMESPACE), &format!("w-{i:04}"))
            .is_some_and(|w| w.pointer("/status/phase").and_then(Value::as_str) == Some("Placed"));
        if placed {
            pending.pop_front();
        } else {
            pending.rotate_left(1);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let hub = hub().await;
    let mut members = Vec::new();
    for i in 0..MEMBERS {
        members.push(member(&hub, i).await);
    }
    // The audit trail fsyncs every record before acting, so the disk shows in the figure.
    // SOVRA_BENCH_AUDIT_DIR=/dev/shm measures without a real fsync.
    let dir = match std::env::var_os("SOVRA_BENCH_AUDIT_DIR") {
        Some(base) => tempfile::tempdir_in(base).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let args = RunArgs {
        namespace: "sovra-system".into(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        node_pool_label: POOL_LABEL.into(),
        leader_election: false,
        lease_name: "sovra-leader".into(),
        identity: "bench".into(),
        audit_log: Some(dir.path().join("audit.jsonl")),
        audit_stdout: false,
        audit_signing_key: None,
        audit_origin: None,
        checkpoint_every_records: 100,
        checkpoint_interval: Duration::from_secs(600),
        checkpoint_witness_url: None,
        checkpoint_witness_timeout: Duration::from_secs(10),
        concurrency: CONCURRENCY,
        member_probe_interval: Duration::from_secs(15),
        member_timeout: Duration::from_secs(10),
        member_cleanup_timeout: Duration::from_secs(600),
        log_format: "text".into(),
        policy_reports: sovra::cli::PolicyReportsArg::Openreports,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let client = hub.client();
    let operator = tokio::spawn(sovra::controller::run_with_client(
        client,
        args.into(),
        async move {
            let _ = stopped.await;
        },
    ));

    // Wait until every member is connected before timing anything.
    let reachable = |hub: &TestApiServer| {
        hub.list(
            &ResourceRef::new("sovra.dev", "v1alpha1", "sovereignclusters"),
            None,
        )
        .iter()
        .filter(|c| c.pointer("/status/sovereignPools").and_then(Value::as_i64) == Some(1))
        .count()
    };
    while reachable(&hub) < MEMBERS {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for member in &members {
        member.clear_requests();
    }
    hub.clear_requests();

    let started = Instant::now();
    for i in 0..WORKLOADS {
        hub.put(workload(i)).unwrap();
    }
    wait_until_placed(&hub).await;
    let sovra_time = started.elapsed();
    let member_requests: usize = members.iter().map(|m| m.requests().len()).sum();
    let hub_requests = hub.requests().len();
    let _ = stop.send(());
    let _ = operator.await;

    // Baseline: the same number of Deployment creates, spread the same way, same concurrency.
    let clients: Vec<kube::Client> = members.iter().map(TestApiServer::client).collect();
    for client in &clients {
        let namespace = Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some("raw".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
    }
    let started = Instant::now();
    futures::stream::iter(0..WORKLOADS)
        .map(|i| {
            let api: Api<Deployment> = Api::namespaced(clients[i % MEMBERS].clone(), "raw");
            async move {
                api.create(&PostParams::default(), &raw_deployment(i))
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(usize::from(CONCURRENCY))
        .collect::<Vec<()>>()
        .await;
    let raw_time = started.elapsed();

    let per_second = |d: Duration| WORKLOADS as f64 / d.as_secs_f64();
    println!(
        "fleet placement: {WORKLOADS} workloads across {MEMBERS} in-process members, concurrency {CONCURRENCY}"
    );
    println!(
        "  sovra (decide, audit with fsync, namespace, apply on member, status, event): {:>8.2} s  ({:>7.0} workloads/s)",
        sovra_time.as_secs_f64(),
        per_second(sovra_time)
    );
    println!(
        "  raw Deployment creates against the same members:                          {:>8.2} s  ({:>7.0} creates/s)",
        raw_time.as_secs_f64(),
        per_second(raw_time)
    );
    println!(
        "  ratio sovra / raw: {:.1}x; API requests per workload: {:.1} on the hub, {:.1} on members",
        sovra_time.as_secs_f64() / raw_time.as_secs_f64(),
        hub_requests as f64 / WORKLOADS as f64,
        member_requests as f64 / WORKLOADS as f64
    );
}
