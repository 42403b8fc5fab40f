//! Shared harness for integration tests: a hub cluster (the in-process test API server with
//! Sovra's CRDs, the default classes, a hub SovereignCluster and labelled nodes) and the real
//! operator running against it.
#![allow(dead_code)]

use serde_json::{Value, json};
use sovra::cli::RunArgs;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;
use test_apiserver::{ResourceRef, TestApiServer};

pub const POOL_LABEL: &str = "sovra.dev/node-pool";
pub const SOVEREIGN: &str = "node-restriction.kubernetes.io/sovra-sovereign";
pub const NAMESPACE: &str = "ministry-fin";
pub const HUB: &str = "rijkscloud-nl";

pub fn deployments() -> ResourceRef {
    ResourceRef::new("apps", "v1", "deployments")
}
pub fn workloads() -> ResourceRef {
    ResourceRef::new("sovra.dev", "v1alpha1", "sovereignworkloads")
}
pub fn clusters() -> ResourceRef {
    ResourceRef::new("sovra.dev", "v1alpha1", "sovereignclusters")
}
pub fn nodes() -> ResourceRef {
    ResourceRef::new("", "v1", "nodes")
}
pub fn events() -> ResourceRef {
    ResourceRef::new("events.k8s.io", "v1", "events")
}
pub fn leases() -> ResourceRef {
    ResourceRef::new("coordination.k8s.io", "v1", "leases")
}

/// The hub's nodes: two sovereign general pools, a pool dedicated to `confidential`, and a
/// pool nobody attested as sovereign.
pub fn hub_nodes() -> Vec<Value> {
    let mut nodes = Vec::new();
    for (pool, count, sovereign, taint) in [
        ("gov-general", 2, true, None),
        ("gov-spare", 1, true, None),
        ("gov-confidential", 2, true, Some("confidential")),
        ("build-agents", 2, false, None),
    ] {
        for i in 0..count {
            nodes.push(node(&format!("{pool}-{i}"), pool, sovereign, taint));
        }
    }
    nodes
}

pub fn node(name: &str, pool: &str, sovereign: bool, taint: Option<&str>) -> Value {
    let mut labels = json!({POOL_LABEL: pool, "sovra.dev/country": "NL", "topology.kubernetes.io/region": "eu-west"});
    if sovereign {
        labels[SOVEREIGN] = json!("true");
    }
    let taints: Vec<Value> = taint
        .map(
            |class| json!({"key": "sovra.dev/sensitivity", "value": class, "effect": "NoSchedule"}),
        )
        .into_iter()
        .collect();
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}})
}

pub fn hub_cluster(certifications: &[&str]) -> Value {
    json!({
        "apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignCluster",
        "metadata": {"name": HUB},
        "spec": {
            "country": "NL", "region": "eu-west", "operatedBy": "government",
            "provider": {"name": "Rijkscloud", "headquartersCountry": "NL", "extraterritorialExposure": false},
            "certifications": certifications,
            "connection": {"local": true}
        }
    })
}

pub fn workload(name: &str, class: &str, replicas: i32, placement: Value) -> Value {
    json!({
        "apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignWorkload",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "sensitivity": class, "replicas": replicas, "placement": placement,
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": format!("registry.example.nl/{name}:1")}]}}
        }
    })
}

/// A workload that may run only in Germany (`requiredCountries: [DE]`): never on the NL hub.
pub fn pinned_to_de(name: &str, class: &str, replicas: i32, placement: Value) -> Value {
    let mut placement = placement;
    placement["requiredCountries"] = json!(["DE"]);
    workload(name, class, replicas, placement)
}

/// Objects from a YAML file in the repository.
pub fn yaml_objects(relative: &str) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// A test API server with Sovra's CRDs, the default classes, the hub cluster and its nodes.
pub async fn hub_server() -> TestApiServer {
    let server = TestApiServer::start().await;
    for crd in sovra::crd::all() {
        server.put(serde_json::to_value(crd).unwrap()).unwrap();
    }
    for object in yaml_objects("deploy/sensitivityclasses.yaml") {
        server.put(object).unwrap();
    }
    server
        .put(hub_cluster(&["BIO", "ISO27001", "EUCS-High", "Haven"]))
        .unwrap();
    for node in hub_nodes() {
        server.put(node).unwrap();
    }
    server
        .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
        .unwrap();
    server
        .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sovra-system"}}))
        .unwrap();
    server
}

/// A running operator; stops when dropped.
pub struct Operator {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<Result<(), sovra::Error>>,
    pub audit_log: PathBuf,
    pub identity: String,
}

impl Operator {
    /// Asks the operator to shut down gracefully and waits for it.
    pub async fn shutdown(mut self) -> Result<(), sovra::Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = std::mem::replace(&mut self.task, tokio::spawn(async { Ok(()) }));
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("operator stops in time")
            .expect("operator task")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn run_args(identity: &str, audit_log: PathBuf, leader_election: bool) -> RunArgs {
    RunArgs {
        namespace: "sovra-system".into(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        node_pool_label: POOL_LABEL.into(),
        leader_election,
        lease_name: "sovra-leader".into(),
        identity: identity.into(),
        audit_log: Some(audit_log),
        audit_stdout: false,
        audit_signing_key: None,
        audit_origin: None,
        checkpoint_every_records: 100,
        checkpoint_interval: Duration::from_secs(600),
        checkpoint_witness_url: None,
        checkpoint_witness_timeout: Duration::from_secs(10),
        concurrency: 4,
        member_probe_interval: Duration::from_millis(500),
        member_timeout: Duration::from_secs(2),
        member_cleanup_timeout: Duration::from_secs(600),
        log_format: "text".into(),
        policy_reports: sovra::cli::PolicyReportsArg::Openreports,
    }
}

pub fn start_operator(
    server: &TestApiServer,
    dir: &std::path::Path,
    identity: &str,
    leader_election: bool,
) -> Operator {
    let audit_log = dir.join(format!("{identity}-audit.jsonl"));
    start_operator_with(server, run_args(identity, audit_log, leader_election))
}

/// Runs the operator with `args` against `server`.
pub fn start_operator_with(server: &TestApiServer, args: RunArgs) -> Operator {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let audit_log = args.audit_log.clone().unwrap_or_default();
    let identity = args.identity.clone();
    let client = server.client();
    let task = tokio::spawn(async move {
        sovra::controller::run_with_client(client, args.into(), async move {
            let _ = stopped.await;
        })
        .await
    });
    Operator {
        stop: Some(stop),
        task,
        audit_log,
        identity,
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub const WAIT: Duration = Duration::from_secs(15);

/// Waits until the workload's status has `phase`, and returns the workload.
pub async fn wait_for_phase(server: &TestApiServer, name: &str, phase: &str) -> Value {
    eventually(&format!("{name} phase {phase}"), WAIT, || async {
        server
            .get(&workloads(), Some(NAMESPACE), name)
            .filter(|w| w.pointer("/status/phase").and_then(Value::as_str) == Some(phase))
    })
    .await
}

/// Events with `reason` regarding the object `name`, in `namespace`.
pub fn events_for(server: &TestApiServer, namespace: &str, name: &str, reason: &str) -> Vec<Value> {
    server
        .list(&events(), Some(namespace))
        .into_iter()
        .filter(|e| {
            e.pointer("/regarding/name").and_then(Value::as_str) == Some(name)
                && e.get("reason").and_then(Value::as_str) == Some(reason)
        })
        .collect()
}

pub async fn wait_for_event(
    server: &TestApiServer,
    namespace: &str,
    name: &str,
    reason: &str,
) -> Value {
    eventually(&format!("{reason} event on {name}"), WAIT, || async {
        events_for(server, namespace, name, reason)
            .into_iter()
            .next()
    })
    .await
}

/// The values of the node affinity expression on `key` in the Deployment's first term.
pub fn affinity_values(deployment: &Value, key: &str) -> Vec<String> {
    let terms = deployment
        .pointer("/spec/template/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    terms
        .first()
        .and_then(|t| t.get("matchExpressions"))
        .and_then(Value::as_array)
        .and_then(|exprs| {
            exprs
                .iter()
                .find(|e| e.get("key").and_then(Value::as_str) == Some(key))
                .cloned()
        })
        .and_then(|e| e.get("values").cloned())
        .map(|v| serde_json::from_value(v).unwrap())
        .unwrap_or_default()
}

/// The `action` of every record in an audit trail file, in order.
pub fn audit_actions(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Namespace the operator runs in; member kubeconfig Secrets live here.
pub const OPERATOR_NAMESPACE: &str = "sovra-system";

pub fn namespaces() -> ResourceRef {
    ResourceRef::new("", "v1", "namespaces")
}

/// A member cluster's API server with one sovereign pool `general` of two nodes in `country`
/// and a non-sovereign pool `batch`.
pub async fn member_server(country: &str) -> TestApiServer {
    let server = TestApiServer::start().await;
    for (name, pool, sovereign) in [
        ("general-0", "general", true),
        ("general-1", "general", true),
        ("batch-0", "batch", false),
    ] {
        server.put(node_in(name, pool, country, sovereign)).unwrap();
    }
    server
}

pub fn node_in(name: &str, pool: &str, country: &str, sovereign: bool) -> Value {
    let mut node = node(name, pool, sovereign, None);
    node["metadata"]["labels"]["sovra.dev/country"] = json!(country);
    node
}

/// A Secret in the operator's namespace holding `kubeconfig`.
pub fn kubeconfig_secret(name: &str, kubeconfig: &str) -> Value {
    let secret = k8s_openapi::api::core::v1::Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(OPERATOR_NAMESPACE.into()),
            ..Default::default()
        },
        data: Some(
            [(
                "kubeconfig".to_owned(),
                k8s_openapi::ByteString(kubeconfig.as_bytes().to_vec()),
            )]
            .into(),
        ),
        ..Default::default()
    };
    let mut value = serde_json::to_value(secret).unwrap();
    value["apiVersion"] = json!("v1");
    value["kind"] = json!("Secret");
    value
}

/// An EU member run by a German public provider: meets `public` and `internal`.
pub fn member_cluster(name: &str, country: &str) -> Value {
    json!({
        "apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignCluster",
        "metadata": {"name": name},
        "spec": {
            "country": country, "operatedBy": "eu-provider",
            "provider": {"name": "Bundescloud", "headquartersCountry": "DE", "extraterritorialExposure": false},
            "certifications": ["ISO27001", "C5"],
            "connection": {"kubeconfigSecretRef": {"name": format!("{name}-kubeconfig")}}
        }
    })
}

/// A member in the EU whose provider is headquartered outside it: fails `internal` and up.
pub fn hyperscaler_cluster(name: &str, country: &str) -> Value {
    let mut cluster = member_cluster(name, country);
    cluster["spec"]["provider"] = json!({"name": "Hyperscale Inc.", "headquartersCountry": "US", "extraterritorialExposure": true});
    cluster["spec"]["operatedBy"] = json!("third-country-provider");
    cluster
}

/// Registers `member` with the hub: its kubeconfig Secret, then its SovereignCluster.
pub fn join(hub: &TestApiServer, cluster: Value, member: &TestApiServer) {
    let name = cluster["metadata"]["name"].as_str().unwrap().to_owned();
    hub.put(kubeconfig_secret(
        &format!("{name}-kubeconfig"),
        &member.kubeconfig_yaml(),
    ))
    .unwrap();
    hub.put(cluster).unwrap();
}

/// The status condition `type_` of a SovereignCluster on the hub.
pub fn cluster_condition(hub: &TestApiServer, cluster: &str, type_: &str) -> Option<Value> {
    hub.get(&clusters(), None, cluster)?
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

/// Waits until the cluster's Reachable condition has `status` and `reason`.
pub async fn wait_for_reachable(hub: &TestApiServer, cluster: &str, status: &str, reason: &str) {
    eventually(
        &format!("{cluster} Reachable={status} ({reason})"),
        WAIT,
        || async {
            cluster_condition(hub, cluster, "Reachable")
                .filter(|c| c["status"] == status && c["reason"] == reason)
        },
    )
    .await;
}

/// This workload's Deployments on `server` that run anything (replicas > 0).
pub fn running_children(server: &TestApiServer, workload: &str) -> Vec<Value> {
    server
        .list(&deployments(), None)
        .into_iter()
        .filter(|d| d.pointer("/metadata/labels/sovra.dev~1workload") == Some(&json!(workload)))
        .filter(|d| d.pointer("/spec/replicas").and_then(Value::as_i64) != Some(0))
        .collect()
}

/// Waits until `name` no longer exists on `server`.
pub async fn wait_gone(
    server: &TestApiServer,
    res: &ResourceRef,
    namespace: Option<&str>,
    name: &str,
) {
    eventually(&format!("{} {name} gone", res.plural), WAIT, || async {
        server.get(res, namespace, name).is_none().then_some(())
    })
    .await;
}

/// A free loopback address for the operator's HTTP endpoints (`/readyz`, `/metrics`).
pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
}

/// A plain HTTP/1.0 GET on the operator's HTTP address: (status code, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// Like [`start_operator`] (same audit log path), with `/healthz`, `/readyz` and `/metrics` on
/// a free loopback port; returns once `/healthz` answers there, with that address. A port taken
/// between choosing and binding it (the operator then ends at once) is chosen again.
pub async fn start_serving_operator(
    server: &TestApiServer,
    dir: &std::path::Path,
    identity: &str,
    leader_election: bool,
) -> (Operator, std::net::SocketAddr) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let addr = free_addr();
        let mut args = run_args(
            identity,
            dir.join(format!("{identity}-audit.jsonl")),
            leader_election,
        );
        args.http_addr = addr;
        let operator = start_operator_with(server, args);
        let serving = eventually(&format!("{identity} serves {addr}"), WAIT, || async {
            if operator.task.is_finished() {
                return Some(false);
            }
            http_get(addr, "/healthz")
                .await
                .filter(|(status, body)| *status == 200 && body == "ok")
                .map(|_| true)
        })
        .await;
        if serving {
            return (operator, addr);
        }
        assert!(
            attempt < 5,
            "{identity}: no free port for its HTTP endpoints"
        );
    }
}

/// One sample on the operator's `/metrics`, named with its labels exactly as rendered, e.g.
/// `sovra_reconciliations_total{controller="workload"}`; 0 while the series does not exist.
pub async fn metric(addr: std::net::SocketAddr, series: &str) -> f64 {
    let (status, body) = http_get(addr, "/metrics")
        .await
        .expect("the operator's /metrics answers");
    assert_eq!(status, 200, "/metrics: {body}");
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

/// How many reconciles `controller` (workload, cluster, drift) has started so far.
pub async fn reconciles_started(addr: std::net::SocketAddr, controller: &str) -> u64 {
    let series = format!("sovra_reconciliations_total{{controller=\"{controller}\"}}");
    metric(addr, &series).await as u64
}

/// Waits until `count` reconciles of `controller` that started after `started` (a
/// [`reconciles_started`] value) have finished: at most `started` reconciles had begun then, so
/// `started + count` finished ones include `count` that began later and saw what happened since.
pub async fn wait_for_reconciles_after(
    addr: std::net::SocketAddr,
    controller: &str,
    started: u64,
    count: u64,
) {
    let finished = format!("sovra_reconcile_duration_seconds_count{{controller=\"{controller}\"}}");
    eventually(
        &format!("{count} {controller} reconcile(s) begun after the first {started} finished"),
        WAIT,
        || async { (metric(addr, &finished).await as u64 >= started + count).then_some(()) },
    )
    .await;
}

/// Wakes the workload controller for workload `name` without changing anything it decides on:
/// a merge patch of an annotation, through the API (so it cannot undo a status write racing it).
pub async fn touch_workload(server: &TestApiServer, name: &str) {
    let api: kube::Api<sovra::crd::SovereignWorkload> =
        kube::Api::namespaced(server.client(), NAMESPACE);
    let touch = json!({"metadata": {"annotations": {"example.org/touched": server.resource_version().to_string()}}});
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&touch),
    )
    .await
    .unwrap();
}

/// OpenReports `Report`s.
pub fn reports() -> ResourceRef {
    ResourceRef::new("openreports.io", "v1alpha1", "reports")
}

/// wgpolicyk8s.io `PolicyReport`s.
pub fn policy_reports() -> ResourceRef {
    ResourceRef::new("wgpolicyk8s.io", "v1alpha2", "policyreports")
}

/// Installs a report CRD from `tests/fixtures/policy-reports/` (`reports.openreports.io.yaml`,
/// `policyreports.wgpolicyk8s.io.yaml`).
pub fn install_report_crd(server: &TestApiServer, file: &str) {
    for crd in yaml_objects(&format!("tests/fixtures/policy-reports/{file}")) {
        server.put(crd).unwrap();
    }
}

/// A report's results as (result, policy, rule, resource name), in order.
pub fn report_rows(report: &Value) -> Vec<(String, String, String, String)> {
    report["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (
                s(&r["result"]),
                s(&r["policy"]),
                s(&r["rule"]),
                s(&r["resources"][0]["name"]),
            )
        })
        .collect()
}

/// Waits until Sovra's report in `namespace` (of `res`) satisfies `check`, and returns it.
pub async fn wait_for_report(
    server: &TestApiServer,
    res: &ResourceRef,
    namespace: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    eventually(&format!("report in {namespace}: {what}"), WAIT, || async {
        server.get(res, Some(namespace), "sovra").filter(&check)
    })
    .await
}
