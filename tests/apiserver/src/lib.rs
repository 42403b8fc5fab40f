//! An in-process Kubernetes API server for integration tests.
//!
//! It speaks plain HTTP on `127.0.0.1` with real API semantics (resourceVersions,
//! optimistic concurrency, watches with bookmarks and 410 Gone, merge / JSON /
//! server-side-apply patches, status subresources, finalizers, garbage
//! collection, CRDs, discovery) so that the real kube-rs client, watchers,
//! controllers, event recorder and lease-based leader election run against it.
//! Objects are plain JSON; the server knows nothing about Sovra's types.
//!
//! Several instances can run side by side (one per simulated cluster), and each
//! can be stopped, restarted, compacted, have its watches cut, and get faults
//! injected through [`Faults`].
//!
//! ```no_run
//! # async fn demo() {
//! use test_apiserver::{RequestMatcher, TestApiServer};
//! let member = TestApiServer::start().await;
//! let client = member.client(); // inside a Tokio runtime
//! member.faults().fail_next(RequestMatcher::verb("patch").resource("deployments"), 409, 1);
//! member.stop().await; // the member is "down"
//! member.restart().await; // same port, same objects
//! # }
//! ```
//!
//! Deliberate simplifications (each documented where it is implemented):
//! no controllers beyond CRD establishment, namespace cleanup and garbage
//! collection (no scheduler, kubelet, Deployment or PDB status controllers);
//! writes are admitted like kube-apiserver admits them (module `validation`):
//! custom resources are pruned, defaulted and checked against their CRD's
//! structural schema (OpenAPI types, bounds, patterns, enums, required fields,
//! list-type uniqueness, embedded resources, scale paths, CEL rules, with
//! upstream's ratcheting of unchanged invalid values), but defaults and pruning
//! apply to requests only, never on read, so an object stored with
//! [`TestApiServer::put_unvalidated`] is served as stored, and CEL rules have
//! no runtime cost budget; built-in kinds get every object's metadata rules
//! (names per kind, labels, annotations, owner references, finalizers) and the
//! rules of the kinds Sovra writes (Deployments, Pods, ConfigMaps, Secrets,
//! Events, Leases), but neither built-in defaulting nor type checks of their
//! other fields; no admission plugins or webhooks, no `fieldValidation=Strict`,
//! no version conversion; lists
//! page by `limit`/`continue` (later pages from the current state, not a snapshot) and ignore
//! `resourceVersion`; strategic merge patch is a
//! JSON merge patch; server-side apply and managedFields follow upstream's
//! field manager (list and map types from CRD schemas, and from a table of
//! the built-in fields Sovra uses), but the status subresource owns only
//! `status`, and there is no version conversion, cap on update managers or
//! client-side-apply interplay.

mod cel_cost;
mod discovery;
mod error;
mod faults;
mod fieldmanager;
mod http;
mod metadata_only;
mod paging;
mod patch;
mod registry;
mod selector;
mod store;
mod validation;
mod watch;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::{JoinHandle, JoinSet};

pub use cel_cost::*;
pub use error::ApiError;
pub use faults::{Faults, RequestMatcher};
use selector::Selectors;
use store::{DeleteOptions, State, Store, Target};

/// Tunables of one server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// How many changes are kept for watch replay before older
    /// resourceVersions become "too old" (410 Gone).
    pub history_limit: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            bookmark_interval: Duration::from_secs(1),
            history_limit: 10_000,
        }
    }
}

/// A `group/version/plural` to address objects directly (`""` is the core group).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceRef {
    pub group: String,
    pub version: String,
    pub plural: String,
}

impl ResourceRef {
    pub fn new(group: &str, version: &str, plural: &str) -> Self {
        ResourceRef {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
        }
    }

    /// The resource of a k8s-openapi or kube-derived type, e.g. `ResourceRef::of::<ConfigMap>()`.
    pub fn of<K: kube::Resource<DynamicType = ()>>() -> Self {
        ResourceRef {
            group: K::group(&()).into(),
            version: K::version(&()).into(),
            plural: K::plural(&()).into(),
        }
    }
}

/// One served request, with the attributes RBAC would authorize it by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestRecord {
    /// get list watch create update patch delete deletecollection; for
    /// non-resource URLs (discovery, /version) the lower-case HTTP method.
    pub verb: String,
    pub group: String,
    pub version: String,
    /// Plural resource; empty for non-resource URLs.
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// json, merge, strategic or apply, for PATCH requests.
    pub patch_type: Option<String>,
    pub field_manager: Option<String>,
    /// The HTTP status code of the response.
    pub status: u16,
    /// The URL path (identifies non-resource requests).
    pub path: String,
    /// The raw query string, without the `?` (e.g. `fieldManager=sovra&force=true`).
    pub query: String,
    /// Size of the request body in bytes.
    pub request_bytes: usize,
    /// The request body itself, kept only while [`TestApiServer::record_bodies`] is on
    /// (benchmarks replay it); `None` otherwise.
    pub body: Option<hyper::body::Bytes>,
}

pub(crate) struct Shared {
    store: Store,
    faults: Faults,
    log: Mutex<Vec<RequestRecord>>,
    /// Whether the access log keeps request bodies.
    record_bodies: AtomicBool,
    options: ServerOptions,
    addr: SocketAddr,
    serving: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Shared {
    fn records_bodies(&self) -> bool {
        self.record_bodies.load(Ordering::Relaxed)
    }

    fn log_request(&self, record: RequestRecord) {
        let (verb, path, status) = (&record.verb, &record.path, record.status);
        tracing::debug!(%verb, %path, status, "test-apiserver request");
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(record);
    }
}

/// An in-process API server. Cheap to clone; clones share the server.
#[derive(Clone)]
pub struct TestApiServer {
    shared: Arc<Shared>,
}

/// The harness itself cannot work (no socket, no client): the test must fail
/// loudly rather than continue against a server that does not exist.
#[allow(clippy::panic)]
fn harness_failure(what: &str, err: impl std::fmt::Display) -> ! {
    panic!("test-apiserver: {what}: {err}")
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    // restart() rebinds the same port while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

impl TestApiServer {
    /// Starts a server on a random port with default options.
    pub async fn start() -> TestApiServer {
        Self::start_with(ServerOptions::default()).await
    }

    pub async fn start_with(options: ServerOptions) -> TestApiServer {
        match Self::try_start_with(options).await {
            Ok(server) => server,
            Err(err) => harness_failure("binding 127.0.0.1:0", err),
        }
    }

    pub async fn try_start_with(options: ServerOptions) -> std::io::Result<TestApiServer> {
        let listener = bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let shared = Arc::new(Shared {
            store: Store::new(options.history_limit),
            faults: Faults::default(),
            log: Mutex::new(Vec::new()),
            record_bodies: AtomicBool::new(false),
            options,
            addr: listener.local_addr()?,
            serving: tokio::sync::Mutex::new(None),
        });
        *shared.serving.lock().await = Some(tokio::spawn(accept_loop(listener, shared.clone())));
        Ok(TestApiServer { shared })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    pub fn port(&self) -> u16 {
        self.shared.addr.port()
    }

    /// A kube config for this server (default namespace "default"; bearer token
    /// if [`Faults::require_token`] is set). Tweak it, e.g. `default_retry = false`.
    pub fn config(&self) -> kube::Config {
        let uri = match self.url().parse::<hyper::Uri>() {
            Ok(uri) => uri,
            Err(err) => harness_failure("server URL", err),
        };
        let mut config = kube::Config::new(uri);
        if let Some(token) = self.shared.faults.required_token() {
            config.auth_info =
                serde_json::from_value(json!({ "token": token })).unwrap_or_default();
        }
        config
    }

    /// A kube client for this server. Must be called inside a Tokio runtime.
    pub fn client(&self) -> kube::Client {
        match kube::Client::try_from(self.config()) {
            Ok(client) => client,
            Err(err) => harness_failure("building a kube client", err),
        }
    }

    /// A kubeconfig (cluster, user, context named after the port) for this server.
    pub fn kubeconfig_yaml(&self) -> String {
        let port = self.port();
        let user = match self.shared.faults.required_token() {
            Some(token) => json!({ "token": token }),
            None => json!({}),
        };
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": format!("test-apiserver-{port}"), "cluster": {"server": self.url()}}],
            "users": [{"name": format!("test-user-{port}"), "user": user}],
            "contexts": [{"name": format!("test-{port}"), "context": {
                "cluster": format!("test-apiserver-{port}"), "user": format!("test-user-{port}"), "namespace": "default"}}],
            "current-context": format!("test-{port}"),
            "preferences": {},
        });
        serde_norway::to_string(&config).unwrap_or_default()
    }

    /// Closes the listener and every connection (including watches): clients
    /// get "connection refused" until [`TestApiServer::restart`].
    pub async fn stop(&self) {
        if let Some(task) = self.shared.serving.lock().await.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port, with the same objects. No-op if running.
    pub async fn restart(&self) {
        let mut serving = self.shared.serving.lock().await;
        if serving.is_some() {
            return;
        }
        let mut attempts = 0;
        let listener = loop {
            match bind(self.shared.addr) {
                Ok(listener) => break listener,
                Err(err) if attempts >= 100 => harness_failure("rebinding the same port", err),
                Err(_) => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        *serving = Some(tokio::spawn(accept_loop(listener, self.shared.clone())));
    }

    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Every request served so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many requests the access log holds (cheap: nothing is copied).
    pub fn request_count(&self) -> usize {
        self.shared
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Every request served so far, in order, emptying the log (cheaper than
    /// [`TestApiServer::requests`] then [`TestApiServer::clear_requests`] for long logs).
    pub fn take_requests(&self) -> Vec<RequestRecord> {
        std::mem::take(
            &mut *self
                .shared
                .log
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Keeps each request's body in the access log ([`RequestRecord::body`]) from now on,
    /// or stops keeping them. Off by default: bodies cost memory.
    pub fn record_bodies(&self, on: bool) {
        self.shared.record_bodies.store(on, Ordering::Relaxed);
    }

    pub fn clear_requests(&self) {
        self.shared
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.lock().rv
    }

    /// Runs `f` on the object `res`/`namespace`/`name` addresses (`namespace`
    /// defaults to "default" and is ignored for cluster-scoped resources).
    fn with_target<T>(
        &self,
        res: &ResourceRef,
        namespace: Option<&str>,
        name: &str,
        f: impl FnOnce(&mut State, &Target) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut store = self.shared.store.lock();
        let rt = store
            .registry
            .find(&res.group, &res.version, &res.plural)
            .cloned();
        let rt = rt.ok_or_else(ApiError::no_such_resource)?;
        let ns = if rt.namespaced {
            namespace.unwrap_or("default")
        } else {
            ""
        };
        f(
            &mut store,
            &Target {
                rt: &rt,
                ns,
                name,
                subresource: None,
            },
        )
    }

    /// Reads an object directly (no HTTP, no faults).
    pub fn get(&self, res: &ResourceRef, namespace: Option<&str>, name: &str) -> Option<Value> {
        self.with_target(res, namespace, name, |store, t| store.get(t))
            .ok()
    }

    /// Lists objects directly; `None` lists all namespaces.
    pub fn list(&self, res: &ResourceRef, namespace: Option<&str>) -> Vec<Value> {
        let list = |store: &mut State, t: &Target| {
            Ok(store.list(
                t.rt,
                namespace.filter(|_| t.rt.namespaced),
                &Selectors::default(),
            ))
        };
        self.with_target(res, None, "", list).unwrap_or_default()
    }

    /// Creates or replaces (unconditionally) an object from a full object with
    /// apiVersion and kind, keeping the given `.status`. The server fills uid,
    /// resourceVersion, etc., and watchers see the change. Namespaced objects
    /// without a namespace go to "default"; the namespace must exist.
    ///
    /// The object is admitted like a create (or, if it exists, like an update): pruned,
    /// defaulted and validated, so fixtures are held to the rules a real API server
    /// applies; an object it would refuse is an `Err` (422).
    pub fn put(&self, obj: Value) -> Result<Value, ApiError> {
        self.shared.store.lock().put(obj)
    }

    /// Like [`TestApiServer::put`] but without admission: writes straight to storage, as
    /// an object stored before a schema change would be. For tests of how clients cope
    /// with objects the current schema rejects. Reads return it as stored (this server
    /// does not prune or default on read).
    pub fn put_unvalidated(&self, obj: Value) -> Result<Value, ApiError> {
        self.shared.store.lock().put_with(obj, false)
    }

    /// Deletes an object like a DELETE request (finalizers and garbage
    /// collection included).
    pub fn delete(
        &self,
        res: &ResourceRef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), ApiError> {
        let delete = |store: &mut State, t: &Target| store.delete(t, &DeleteOptions::default());
        self.with_target(res, namespace, name, delete).map(drop)
    }

    /// Forgets the watch history: a watch from any resourceVersion handed out
    /// so far gets 410 Gone (a relist then works again).
    pub fn compact(&self) {
        self.shared.store.lock().compact();
    }

    /// Ends every open watch stream abruptly; clients have to re-watch.
    pub fn cut_watches(&self) {
        self.shared.store.lock().cut_watches();
    }

    /// Forces every watcher to relist: forgets the watch history ([`TestApiServer::compact`])
    /// and ends every open watch ([`TestApiServer::cut_watches`]), so that each re-watch from
    /// the resourceVersion it had gets 410 Gone ("too old resource version").
    pub fn expire_watches(&self) {
        let mut store = self.shared.store.lock();
        store.compact();
        store.cut_watches();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Dropping this future (stop()) drops the listener and, through the
    // JoinSet, aborts every connection task.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req| http::handle(shared.clone(), req));
                        let connection = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service);
                        if let Err(err) = connection.await {
                            tracing::debug!(%err, "test-apiserver connection ended");
                        }
                    });
                }
                Err(err) => {
                    tracing::warn!(%err, "test-apiserver accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
