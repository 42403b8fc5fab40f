//! A real kube-apiserver on loopback with its own etcd, as controller-runtime's envtest starts
//! one (pkg/internal/testing/controlplane/apiserver.go and auth.go), plus what Sovra needs of a
//! real cluster: RBAC only, the default admission plugins plus NodeRestriction, a
//! service-account issuer and signing key so the TokenRequest API works, and an audit log so a
//! test can list every request the API server denied.

use super::certs::{Authority, Pem, SigningKey, service_account_key};
use super::etcd::{Etcd, base64};
use super::process::{Process, free_port, run, say};
use super::{Binaries, SEE_README, WAIT, repo};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{
    Api, DeleteParams, DynamicObject, GetParams, ListParams, Patch, PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Scope;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Field manager of everything the tests apply.
pub const FIELD_MANAGER: &str = "sovra-real-server-test";
/// Bound on one kubectl or helm run.
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
/// Lifetime of the service-account tokens the tests request.
const TOKEN_SECONDS: i64 = 3600;

/// Logs every request's metadata (user, verb, resource, response code), nothing of bodies.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
";

pub struct ApiServer {
    /// Killed and reaped when dropped; first, so the API server stops before its etcd.
    _process: Process,
    name: String,
    url: String,
    /// The CA that signed the serving certificate: what clients trust.
    ca_pem: String,
    /// Signs client certificates (`--client-ca-file`).
    client_ca: Authority,
    admin: kube::Client,
    admin_kubeconfig: PathBuf,
    audit_log: PathBuf,
    binaries: Binaries,
    resources: Mutex<HashMap<String, (ApiResource, bool)>>,
    /// Certificates, keys, kubeconfigs, logs, helm's and kubectl's caches; removed after the
    /// process is reaped (fields drop in declaration order), before etcd stops.
    dir: TempDir,
    _etcd: Etcd,
}

/// The kube-apiserver command line (every flag checked against the v1.32 options source).
fn flags(dir: &Path, port: u16, etcd: &str) -> Vec<String> {
    let file = |name: &str| dir.join(name).display().to_string();
    let mut flags = vec![
        // Storage: the test's own etcd.
        format!("--etcd-servers={etcd}"),
        // Secure serving on loopback only, with the certificate made for this run.
        "--bind-address=127.0.0.1".to_owned(),
        format!("--secure-port={port}"),
        format!("--tls-cert-file={}", file("apiserver.crt")),
        format!("--tls-private-key-file={}", file("apiserver.key")),
        // Nothing is generated there with the two files above; keeps it off /var/run/kubernetes.
        format!("--cert-dir={}", file("cert-dir")),
        // Client certificates signed by this CA authenticate (CN user, O group).
        format!("--client-ca-file={}", file("client-ca.crt")),
        "--authorization-mode=RBAC".to_owned(),
        // Added to the default plugins (NamespaceLifecycle, LimitRanger, ServiceAccount,
        // TaintNodesByCondition, PodSecurity, Priority, ..., ResourceQuota), which stay on.
        "--enable-admission-plugins=NodeRestriction".to_owned(),
        // Service-account tokens: the issuer and signing key make the TokenRequest API
        // (serviceaccounts/token) work; the public key verifies the tokens it issues.
        format!("--service-account-issuer=https://127.0.0.1:{port}"),
        format!("--service-account-key-file={}", file("sa.pub")),
        format!("--service-account-signing-key-file={}", file("sa.key")),
        // envtest's range; only allocated from (the chart's Service), never routed to.
        "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
        format!("--audit-policy-file={}", file("audit-policy.yaml")),
        format!("--audit-log-path={}", file("audit.log")),
    ];
    // kube-apiserver derives its advertise address from the default route; a machine without
    // one can name an address (not loopback: the kubernetes Endpoints reject it).
    if let Some(address) = std::env::var("SOVRA_REAL_ADVERTISE_ADDRESS")
        .ok()
        .filter(|a| !a.is_empty())
    {
        flags.push(format!("--advertise-address={address}"));
    }
    flags
}

impl ApiServer {
    /// Starts etcd and kube-apiserver and waits (up to [`super::WAIT`]) for `/readyz`.
    pub async fn start(binaries: &Binaries, name: &str) -> ApiServer {
        let etcd = Etcd::start(&binaries.etcd).await;
        let dir = tempfile::Builder::new()
            .prefix(&format!("sovra-{name}-apiserver-"))
            .tempdir()
            .unwrap_or_else(|e| panic!("{name}: temp dir: {e}"));
        let serving_ca = Authority::new(&format!("sovra-test {name} serving CA"));
        let serving = serving_ca.serving(&["127.0.0.1", "localhost"]);
        let client_ca = Authority::new(&format!("sovra-test {name} client CA"));
        let SigningKey {
            private_pem,
            public_pem,
        } = service_account_key();
        for (file, content) in [
            ("apiserver.crt", serving.cert.as_str()),
            ("apiserver.key", serving.key.as_str()),
            ("client-ca.crt", client_ca.cert_pem().as_str()),
            ("sa.key", private_pem.as_str()),
            ("sa.pub", public_pem.as_str()),
            ("audit-policy.yaml", AUDIT_POLICY),
        ] {
            write_private(&dir.path().join(file), content);
        }
        let _ = std::fs::create_dir(dir.path().join("cert-dir"));

        let admin_cert = client_ca.client("sovra-test-admin", "system:masters");
        let ca_pem = serving_ca.cert_pem();
        let admin_kubeconfig = dir.path().join("admin.kubeconfig");
        let mut attempt = 0;
        let (process, url, admin) = loop {
            attempt += 1;
            let port = free_port();
            let url = format!("https://127.0.0.1:{port}");
            let admin_yaml = kubeconfig_with_cert(&url, &ca_pem, &admin_cert);
            write_private(&admin_kubeconfig, &admin_yaml);
            let admin = client_from_kubeconfig(&admin_yaml).await;
            let mut process = Process::spawn(
                &format!("{name} kube-apiserver"),
                &binaries.kube_apiserver,
                &flags(dir.path(), port, etcd.client_url()),
                &dir.path().join("kube-apiserver.log"),
            );
            let started = Instant::now();
            match wait_ready(&mut process, &admin).await {
                Ok(()) => {
                    say(&format!(
                        "real-server: {name} kube-apiserver ready at {url} after {:.1?}",
                        started.elapsed()
                    ));
                    break (process, url, admin);
                }
                // Lost the race for the port: try another one.
                Err(log) if attempt < 3 && log.contains("address already in use") => continue,
                Err(log) => {
                    let hint = if log.contains("unable to find suitable network address") {
                        "\nThis machine has no default route: set SOVRA_REAL_ADVERTISE_ADDRESS to a non-loopback address of it."
                    } else {
                        ""
                    };
                    process.fail(&format!("{name} kube-apiserver /readyz at {url}"), hint);
                }
            }
        };
        ApiServer {
            _process: process,
            name: name.to_owned(),
            url,
            ca_pem,
            client_ca,
            admin,
            admin_kubeconfig,
            audit_log: dir.path().join("audit.log"),
            binaries: binaries.clone(),
            resources: Mutex::default(),
            dir,
            _etcd: etcd,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A client authenticated by a client certificate in `system:masters`.
    pub fn admin(&self) -> kube::Client {
        self.admin.clone()
    }

    /// A kubeconfig (inline CA data, bearer token) for this server.
    pub fn kubeconfig_with_token(&self, token: &str) -> String {
        kubeconfig(&self.url, &self.ca_pem, json!({"token": token}))
    }

    /// A client with a certificate for `user` in `group`, signed by the client CA.
    pub async fn client_for(&self, user: &str, group: &str) -> kube::Client {
        let cert = self.client_ca.client(user, group);
        client_from_kubeconfig(&kubeconfig_with_cert(&self.url, &self.ca_pem, &cert)).await
    }

    /// A token for ServiceAccount `namespace/name` from the TokenRequest API
    /// (`POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token`).
    pub async fn token(&self, namespace: &str, name: &str) -> String {
        let api: Api<ServiceAccount> = Api::namespaced(self.admin(), namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                // Empty: the API server's own audiences (the issuer), so it accepts the token.
                audiences: Vec::new(),
                expiration_seconds: Some(TOKEN_SECONDS),
                ..Default::default()
            },
            ..Default::default()
        };
        let issued = api
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|e| panic!("{}: TokenRequest for {namespace}/{name}: {e}", self.name));
        issued
            .status
            .map(|s| s.token)
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "{}: TokenRequest for {namespace}/{name} issued no token",
                    self.name
                )
            })
    }

    /// A client authenticated as ServiceAccount `namespace/name` with a requested token.
    pub async fn service_account_client(&self, namespace: &str, name: &str) -> kube::Client {
        let token = self.token(namespace, name).await;
        client_from_kubeconfig(&self.kubeconfig_with_token(&token)).await
    }

    /// Runs kubectl against this server as the admin; panics with its output on failure.
    pub async fn kubectl(&self, args: &[&str]) -> String {
        let mut command = Command::new(&self.binaries.kubectl);
        command
            .arg(format!("--kubeconfig={}", self.admin_kubeconfig.display()))
            .arg(format!(
                "--cache-dir={}",
                self.dir.path().join("kubectl-cache").display()
            ))
            .args(args)
            .env("KUBECONFIG", &self.admin_kubeconfig)
            .current_dir(repo());
        tool(format!("kubectl {}", args.join(" ")), command).await
    }

    /// Runs helm against this server as the admin, with helm's cache, config and data dirs
    /// under the temp dir; panics with its output on failure.
    pub async fn helm(&self, args: &[&str]) -> String {
        let home = self.dir.path().join("helm");
        let mut command = Command::new(&self.binaries.helm);
        command
            .args(args)
            .arg(format!("--kubeconfig={}", self.admin_kubeconfig.display()))
            .env("KUBECONFIG", &self.admin_kubeconfig)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .current_dir(repo());
        tool(format!("helm {}", args.join(" ")), command).await
    }

    /// The resource behind `apiVersion`/`kind` (discovered once) and whether it is namespaced.
    async fn resource(&self, api_version: &str, kind: &str) -> (ApiResource, bool) {
        let key = format!("{api_version}/{kind}");
        if let Some(found) = self
            .resources
            .lock()
            .ok()
            .and_then(|r| r.get(&key).cloned())
        {
            return found;
        }
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let (resource, capabilities) =
            kube::discovery::pinned_kind(&self.admin, &GroupVersionKind::gvk(group, version, kind))
                .await
                .unwrap_or_else(|e| panic!("{}: discover {key}: {e}", self.name));
        let found = (resource, capabilities.scope == Scope::Namespaced);
        if let Ok(mut resources) = self.resources.lock() {
            resources.insert(key, found.clone());
        }
        found
    }

    async fn api(
        &self,
        client: kube::Client,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Api<DynamicObject> {
        let (resource, namespaced) = self.resource(api_version, kind).await;
        match namespace {
            Some(namespace) if namespaced => Api::namespaced_with(client, namespace, &resource),
            _ => Api::all_with(client, &resource),
        }
    }

    /// Server-side applies `object` as the admin and returns what the server stored.
    pub async fn apply(&self, object: Value) -> Value {
        let (api_version, kind, namespace, name) = identity(&object);
        let api = self
            .api(self.admin(), &api_version, &kind, namespace.as_deref())
            .await;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let applied = api
            .patch(&name, &params, &Patch::Apply(&object))
            .await
            .unwrap_or_else(|e| panic!("{}: apply {kind} {name}: {e}", self.name));
        to_value(&applied)
    }

    /// JSON merge patch as the admin.
    pub async fn merge_patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        patch: Value,
    ) -> Value {
        let api = self.api(self.admin(), api_version, kind, namespace).await;
        let patched = api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("{}: patch {kind} {name}: {e}", self.name));
        to_value(&patched)
    }

    pub async fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let api = self.api(self.admin(), api_version, kind, namespace).await;
        api.get_opt(name)
            .await
            .unwrap_or_else(|e| panic!("{}: get {kind} {name}: {e}", self.name))
            .map(|o| to_value(&o))
    }

    pub async fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let api = self.api(self.admin(), api_version, kind, namespace).await;
        api.list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("{}: list {kind}: {e}", self.name))
            .items
            .iter()
            .map(to_value)
            .collect()
    }

    pub async fn delete(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) {
        let api = self.api(self.admin(), api_version, kind, namespace).await;
        api.delete(name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("{}: delete {kind} {name}: {e}", self.name));
    }

    /// events.k8s.io Events in `namespace` with `reason` regarding the object `name`.
    pub async fn events(&self, namespace: &str, name: &str, reason: &str) -> Vec<Value> {
        self.list("events.k8s.io/v1", "Event", Some(namespace))
            .await
            .into_iter()
            .filter(|e| {
                e.pointer("/regarding/name").and_then(Value::as_str) == Some(name)
                    && e.get("reason").and_then(Value::as_str) == Some(reason)
            })
            .collect()
    }

    /// Requests of users `user` accepts that the API server answered 403 (from its audit
    /// log), one line each.
    fn denied_where(&self, user: impl Fn(&str) -> bool) -> Vec<String> {
        std::fs::read_to_string(&self.audit_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|e| {
                e.pointer("/responseStatus/code").and_then(Value::as_i64) == Some(403)
                    && e.pointer("/user/username")
                        .and_then(Value::as_str)
                        .is_some_and(&user)
            })
            .map(|e| {
                let text = |p: &str| {
                    e.pointer(p)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned()
                };
                format!(
                    "{}: {} {} ({})",
                    text("/user/username"),
                    text("/verb"),
                    text("/requestURI"),
                    text("/responseStatus/message")
                )
            })
            .collect()
    }

    /// Requests of `username` the API server answered 403.
    pub fn denied(&self, username: &str) -> Vec<String> {
        self.denied_where(|u| u == username)
    }

    /// Requests of any ServiceAccount the API server answered 403.
    pub fn denied_to_service_accounts(&self) -> Vec<String> {
        self.denied_where(|u| u.starts_with("system:serviceaccount:"))
    }

    /// Fails when the API server denied `username` anything: its RBAC covers all it did.
    pub fn assert_never_denied(&self, username: &str) {
        let denied = self.denied(username);
        assert!(
            denied.is_empty(),
            "the {} API server denied {username} {} request(s):\n{}",
            self.name,
            denied.len(),
            denied.join("\n")
        );
    }
}

/// `Ok` once `/readyz` answers `ok` to the admin; `Err(log)` when the process ended or the
/// wait timed out.
async fn wait_ready(process: &mut Process, admin: &kube::Client) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < WAIT {
        if process.exited().is_some() {
            return Err(process.log());
        }
        let request = kube::core::Request::new("")
            .get("readyz", &GetParams::default())
            .unwrap_or_else(|e| panic!("/readyz request: {e}"));
        let answer =
            tokio::time::timeout(Duration::from_secs(5), admin.request_text(request)).await;
        if matches!(&answer, Ok(Ok(body)) if body.trim() == "ok") {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(process.log())
}

/// apiVersion, kind, namespace and name of a manifest.
fn identity(object: &Value) -> (String, String, Option<String>, String) {
    let text = |p: &str| object.pointer(p).and_then(Value::as_str).map(str::to_owned);
    (
        text("/apiVersion").unwrap_or_else(|| panic!("no apiVersion in {object}")),
        text("/kind").unwrap_or_else(|| panic!("no kind in {object}")),
        text("/metadata/namespace"),
        text("/metadata/name").unwrap_or_else(|| panic!("no metadata.name in {object}")),
    )
}

fn to_value(object: &DynamicObject) -> Value {
    serde_json::to_value(object).unwrap_or_else(|e| panic!("serialize object: {e}"))
}

/// Runs a tool off the async threads (it may take seconds); panics with its output on failure.
async fn tool(what: String, mut command: Command) -> String {
    let ran = tokio::task::spawn_blocking(move || {
        let (status, out, err) = run(&what, &mut command, TOOL_TIMEOUT);
        assert!(status.success(), "{what} failed ({status}):\n{err}{out}");
        out
    })
    .await;
    match ran {
        Ok(out) => out,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("tool run: {e}"),
    }
}

/// A kubeconfig for `server` trusting `ca_pem`, with inline credentials `user`.
pub fn kubeconfig(server: &str, ca_pem: &str, user: Value) -> String {
    let config = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "sovra-test", "cluster": {"server": server, "certificate-authority-data": base64(ca_pem.as_bytes())}}],
        "users": [{"name": "sovra-test", "user": user}],
        "contexts": [{"name": "sovra-test", "context": {"cluster": "sovra-test", "user": "sovra-test"}}],
        "current-context": "sovra-test"
    });
    serde_norway::to_string(&config).unwrap_or_else(|e| panic!("kubeconfig: {e}"))
}

/// A kubeconfig with an inline client certificate.
pub fn kubeconfig_with_cert(server: &str, ca_pem: &str, cert: &Pem) -> String {
    kubeconfig(
        server,
        ca_pem,
        json!({"client-certificate-data": base64(cert.cert.as_bytes()), "client-key-data": base64(cert.key.as_bytes())}),
    )
}

/// A kube client from kubeconfig text (kube-rs, rustls).
pub async fn client_from_kubeconfig(yaml: &str) -> kube::Client {
    let kubeconfig = Kubeconfig::from_yaml(yaml).unwrap_or_else(|e| panic!("kubeconfig: {e}"));
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("kube config: {e}"));
    kube::Client::try_from(config).unwrap_or_else(|e| panic!("kube client: {e}; {SEE_README}"))
}

/// Writes a file only its owner may read (keys; kubeconfigs, which helm warns about otherwise).
pub fn write_private(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}
