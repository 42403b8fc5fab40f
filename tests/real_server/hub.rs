//! A hub as an administrator sets one up (README "Running against a real cluster", Helm
//! instead of kustomize): Sovra's CRDs applied server-side and Established, the chart installed
//! with real Helm, the hub's SovereignCluster and labelled Nodes; a member as
//! docs/member-clusters.md joins one; and the operator running in-process as the chart's
//! ServiceAccount, with a requested token, so every call it makes goes through the chart's RBAC.

use super::apiserver::ApiServer;
use super::process::say;
use super::{Binaries, WAIT, repo};
use crate::support::{NAMESPACE, OPERATOR_NAMESPACE, hub_cluster, hub_nodes, node_in, run_args};
use serde_json::{Value, json};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The chart's release name, and so its ServiceAccount's name (`sovra.fullname`).
pub const RELEASE: &str = "sovra";
/// The user the API server sees for the operator.
pub const OPERATOR_USER: &str = "system:serviceaccount:sovra-system:sovra";
/// The ServiceAccount `deploy/member` creates on a member, and its user there.
pub const MEMBER_NAMESPACE: &str = "sovra-member";
pub const MEMBER_USER: &str = "system:serviceaccount:sovra-member:sovra";

/// The names of the CRDs in `crds/`.
pub fn crd_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("crds"))
        .unwrap_or_else(|e| panic!("crds/: {e}"))
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter_map(|f| f.strip_suffix(".yaml").map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// `kubectl apply --server-side -f crds/`, then every CRD must become Established (and its
/// names accepted) within [`WAIT`].
pub async fn install_crds(server: &ApiServer) {
    let crds = repo().join("crds");
    server
        .kubectl(&["apply", "--server-side", "-f", &crds.display().to_string()])
        .await;
    let names = crd_names();
    let mut established = vec!["wait", "--for=condition=Established", "--timeout=60s"];
    let targets: Vec<String> = names.iter().map(|n| format!("crd/{n}")).collect();
    established.extend(targets.iter().map(String::as_str));
    server.kubectl(&established).await;
    for name in &names {
        let crd = server
            .get(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
                name,
            )
            .await
            .unwrap_or_else(|| panic!("CRD {name} was applied but does not exist"));
        for type_ in ["NamesAccepted", "Established"] {
            let status = crd
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|c| c.iter().find(|c| c["type"] == type_))
                .map(|c| c["status"].clone());
            assert_eq!(
                status,
                Some(json!("True")),
                "CRD {name} {type_}: {}",
                crd.pointer("/status/conditions")
                    .cloned()
                    .unwrap_or_default()
            );
        }
    }
    wait_for_openapi(server, "sovra.dev/v1alpha1").await;
}

/// Waits until the API server publishes `group_version` in its OpenAPI v3 discovery (done
/// asynchronously after a CRD is Established; clients that validate against it, Helm among
/// them, need it).
pub async fn wait_for_openapi(server: &ApiServer, group_version: &str) {
    let path = format!("apis/{group_version}");
    wait(
        server,
        &format!("OpenAPI v3 document for {path}"),
        || async {
            let request = kube::core::Request::new("/openapi")
                .get("v3", &kube::api::GetParams::default())
                .map_err(|e| e.to_string())?;
            let index = server
                .admin()
                .request_text(request)
                .await
                .map_err(|e| e.to_string())?;
            let index: Value = serde_json::from_str(&index).map_err(|e| e.to_string())?;
            if index.pointer("/paths").and_then(|p| p.get(&path)).is_some() {
                Ok(())
            } else {
                Err(format!("{path} not among /openapi/v3 paths"))
            }
        },
    )
    .await;
}

/// `helm install sovra charts/sovra --namespace sovra-system --create-namespace`; the release
/// must be `deployed`. Returns the objects of its manifest.
pub async fn install_chart(server: &ApiServer) -> Vec<Value> {
    let chart = repo().join("charts/sovra");
    server
        .helm(&[
            "install",
            RELEASE,
            &chart.display().to_string(),
            "--namespace",
            OPERATOR_NAMESPACE,
            "--create-namespace",
            "--timeout",
            "60s",
        ])
        .await;
    let status: Value = serde_json::from_str(
        &server
            .helm(&[
                "status",
                RELEASE,
                "--namespace",
                OPERATOR_NAMESPACE,
                "-o",
                "json",
            ])
            .await,
    )
    .unwrap_or_else(|e| panic!("helm status -o json: {e}"));
    assert_eq!(
        status["info"]["status"], "deployed",
        "helm status: {status}"
    );
    let manifest = server
        .helm(&[
            "get",
            "manifest",
            RELEASE,
            "--namespace",
            OPERATOR_NAMESPACE,
        ])
        .await;
    serde_norway::Deserializer::from_str(&manifest)
        .filter_map(|doc| serde::Deserialize::deserialize(doc).ok())
        .filter(|v: &Value| v.is_object())
        .collect()
}

/// The workload namespace (with the `default` ServiceAccount the ServiceAccount admission
/// plugin wants for Pods; no controller-manager creates it here), the hub's SovereignCluster
/// and its Nodes, labelled by the administrator.
pub async fn hub_fixtures(server: &ApiServer) {
    workload_namespace(server).await;
    server
        .apply(hub_cluster(&["BIO", "ISO27001", "EUCS-High", "Haven"]))
        .await;
    for node in hub_nodes() {
        server.apply(node).await;
    }
}

/// Namespace `ministry-fin` and its `default` ServiceAccount.
pub async fn workload_namespace(server: &ApiServer) {
    server
        .apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
        .await;
    server
        .apply(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": NAMESPACE}}))
        .await;
}

/// A hub: kube-apiserver, CRDs, chart, fixtures.
pub async fn start_hub(binaries: &Binaries) -> ApiServer {
    let server = ApiServer::start(binaries, "hub").await;
    install_crds(&server).await;
    install_chart(&server).await;
    hub_fixtures(&server).await;
    server
}

/// A member cluster on its own kube-apiserver and etcd, prepared as docs/member-clusters.md
/// says: `kubectl apply -k deploy/member`, Nodes labelled by its administrator (pool
/// `general` sovereign, pool `batch` not), in `country`. Returns the server and the kubeconfig
/// for the hub's Secret: inline CA data and a token for `sovra-member/sovra`, requested
/// through the TokenRequest API (no controller-manager runs here to fill the `sovra-token`
/// Secret that deploy/member also creates).
pub async fn start_member(binaries: &Binaries, country: &str) -> (ApiServer, String) {
    let member = ApiServer::start(binaries, "member").await;
    member
        .kubectl(&[
            "apply",
            "-k",
            &repo().join("deploy/member").display().to_string(),
        ])
        .await;
    for (name, pool, sovereign) in [
        ("general-0", "general", true),
        ("general-1", "general", true),
        ("batch-0", "batch", false),
    ] {
        member.apply(node_in(name, pool, country, sovereign)).await;
    }
    let token = member.token(MEMBER_NAMESPACE, "sovra").await;
    let kubeconfig = member.kubeconfig_with_token(&token);
    (member, kubeconfig)
}

/// The operator, in-process, authenticated as the chart's ServiceAccount; stops when dropped.
pub struct Operator {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), sovra::Error>>,
    pub audit_log: PathBuf,
    _dir: TempDir,
}

impl Operator {
    /// Runs `sovra::controller::run_with_client` with a client holding a TokenRequest token
    /// of `sovra-system/sovra` and the hub's CA; leader election on, with the chart's Lease.
    pub async fn start(hub: &ApiServer) -> Operator {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let client = hub
            .service_account_client(OPERATOR_NAMESPACE, RELEASE)
            .await;
        let dir = tempfile::Builder::new()
            .prefix("sovra-operator-")
            .tempdir()
            .unwrap_or_else(|e| panic!("operator temp dir: {e}"));
        let audit_log = dir.path().join("audit.jsonl");
        let mut args = run_args("sovra-0", audit_log.clone(), true);
        // The chart's Lease name is "<fullname>-leader".
        args.lease_name = format!("{RELEASE}-leader");
        // A real API server on a busy machine: probe every second, allow a member 10 s.
        args.member_probe_interval = Duration::from_secs(1);
        args.member_timeout = Duration::from_secs(10);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let result = sovra::controller::run_with_client(client, args.into(), async move {
                let _ = stopped.await;
            })
            .await;
            if let Err(e) = &result {
                say(&format!(
                    "real-server: the operator stopped with an error: {e}"
                ));
            }
            result
        });
        Operator {
            stop: Some(stop),
            task,
            audit_log,
            _dir: dir,
        }
    }

    /// Asks the operator to stop and waits (bounded) for it.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = std::mem::replace(&mut self.task, tokio::spawn(async { Ok(()) }));
        match tokio::time::timeout(WAIT, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => panic!("the operator stopped with an error: {e}"),
            Ok(Err(e)) => panic!("the operator task failed: {e}"),
            Err(_) => panic!("timed out after {WAIT:?} waiting for: the operator to stop"),
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `check` until it returns `Ok`, for at most [`WAIT`]; then fails naming `what`, what
/// `check` last saw (its `Err`), and every request `server` denied a ServiceAccount (a missing
/// RBAC rule shows up here first, as a wait that never ends).
pub async fn wait<T, F, Fut>(server: &ApiServer, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        let seen = match check().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if started.elapsed() > WAIT {
            let denied = server.denied_to_service_accounts();
            let denied = if denied.is_empty() {
                String::new()
            } else {
                format!(
                    "\nrequests the {} API server denied to ServiceAccounts:\n{}",
                    server.name(),
                    denied.join("\n")
                )
            };
            panic!("timed out after {WAIT:?} waiting for: {what}\nlast seen: {seen}{denied}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// [`wait`] for a check that has nothing to say while it waits.
pub async fn wait_until<T, F, Fut>(server: &ApiServer, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait(server, what, || {
        let next = check();
        async move { next.await.ok_or_else(|| "not yet".to_owned()) }
    })
    .await
}

/// Waits until `server` has `api_version`/`kind` `name` with `pointer` equal to `value`, and
/// returns the object.
pub async fn wait_for_field(
    server: &ApiServer,
    (api_version, kind): (&str, &str),
    namespace: Option<&str>,
    name: &str,
    pointer: &str,
    value: Value,
) -> Value {
    let what = format!("{} {kind} {name} {pointer} = {value}", server.name());
    wait(server, &what, || async {
        match server.get(api_version, kind, namespace, name).await {
            Some(object) if object.pointer(pointer) == Some(&value) => Ok(object),
            Some(object) => Err(format!(
                "{pointer} = {}, status {}",
                object.pointer(pointer).cloned().unwrap_or_default(),
                object.get("status").cloned().unwrap_or_default()
            )),
            None => Err(format!("no {kind} {name}")),
        }
    })
    .await
}

/// Waits until `server` no longer has `name`.
pub async fn wait_gone(
    server: &ApiServer,
    (api_version, kind): (&str, &str),
    namespace: Option<&str>,
    name: &str,
) {
    let what = format!("{} {kind} {name} gone", server.name());
    wait(server, &what, || async {
        match server.get(api_version, kind, namespace, name).await {
            None => Ok(()),
            Some(object) => Err(format!("metadata {}", object["metadata"])),
        }
    })
    .await;
}

/// Waits for an Event with `reason` regarding `name` in `namespace` and returns it.
pub async fn wait_for_event(
    server: &ApiServer,
    namespace: &str,
    name: &str,
    reason: &str,
) -> Value {
    let what = format!("{} {reason} Event on {name}", server.name());
    wait(server, &what, || async {
        let events = server
            .list("events.k8s.io/v1", "Event", Some(namespace))
            .await;
        let about: Vec<&Value> = events
            .iter()
            .filter(|e| e.pointer("/regarding/name").and_then(Value::as_str) == Some(name))
            .collect();
        about
            .iter()
            .find(|e| e.get("reason").and_then(Value::as_str) == Some(reason))
            .map(|e| (*e).clone())
            .ok_or_else(|| {
                let reasons: Vec<&str> =
                    about.iter().filter_map(|e| e["reason"].as_str()).collect();
                format!("Events on {name}: {reasons:?}")
            })
    })
    .await
}

pub const WORKLOAD: (&str, &str) = ("sovra.dev/v1alpha1", "SovereignWorkload");
pub const CLUSTER: (&str, &str) = ("sovra.dev/v1alpha1", "SovereignCluster");
pub const DEPLOYMENT: (&str, &str) = ("apps/v1", "Deployment");
pub const NODE: (&str, &str) = ("v1", "Node");
pub const POD: (&str, &str) = ("v1", "Pod");
