//! A scripted fake API server and a test [`Context`] built around it, as kube-rs/controller-rs
//! tests its reconciler: the client's transport is a `tower_test` mock, and a verifier task
//! expects an exact script of requests (method and path), answers each one, and hands back
//! what it served so a test can assert on the bodies. Once the test drops every client (the
//! context), the verifier also proves that no request came after the script.

use super::super::backoff::Backoff;
use super::super::caches::Signals;
use super::super::child_view::ChildView;
use super::super::context::Context;
use super::super::error_reports::ErrorReports;
use super::super::event_recorder::EventRecorder;
use super::super::fleet::Fleet;
use super::super::memory::{Applied, Memory};
use super::super::metrics::Metrics;
use super::super::policy_reports::PolicyReports;
use super::super::world::World;
use super::objects::POOL_LABEL;
use crate::audit::AuditTrail;
use crate::crd::{SensitivityClass, SovereignCluster, SovereignWorkload};
use crate::policy::NodeFacts;
use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::client::Body;
use kube::core::DeserializeGuard;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::watcher;
use serde_json::{Value, json};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tower_test::mock::{self, Handle};

/// How long any one reconcile, or the whole script, may take: a wrong script fails the test
/// instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(5);

/// Awaits `future`, failing the test if it takes longer than [`PATIENCE`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what} did not finish within {PATIENCE:?}"),
    }
}

/// What the fake API server answers to one request: a status code and a JSON body, made from
/// the request's body.
type Answer = Box<dyn FnOnce(&Value) -> (StatusCode, Value) + Send>;

/// One expected request and its answer.
pub struct Step {
    method: Method,
    path: String,
    answer: Answer,
}

impl Step {
    pub fn new(
        method: Method,
        path: impl Into<String>,
        answer: impl FnOnce(&Value) -> (StatusCode, Value) + Send + 'static,
    ) -> Self {
        Self {
            method,
            path: path.into(),
            answer: Box::new(answer),
        }
    }
}

/// A request the fake API server served.
#[derive(Debug)]
pub struct Served {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
}

impl Served {
    /// `"PATCH /apis/..."`: what a test compares scripts by.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The API server side of the mock transport.
pub struct ApiServer(Handle<Request<Body>, Response<Body>>);

/// The running script; [`Verifier::finish`] waits for it and returns what was served.
pub struct Verifier(JoinHandle<Vec<Served>>);

impl ApiServer {
    /// Serves `script`, in order, asserting each request's method and path. After the last
    /// step it waits until every client is gone and fails on any further request.
    pub fn serve(self, script: Vec<Step>) -> Verifier {
        let mut handle = self.0;
        Verifier(tokio::spawn(async move {
            let mut served = Vec::new();
            for (n, step) in script.into_iter().enumerate() {
                let expected = format!("{} {}", step.method, step.path);
                let Some((request, send)) = handle.next_request().await else {
                    panic!("step {n}: expected {expected}, but the reconciler sent nothing more");
                };
                let request = read(request).await;
                assert_eq!(
                    request.line(),
                    expected,
                    "step {n}: unexpected request (query {:?}, body {})",
                    request.query,
                    request.body
                );
                let (status, body) = (step.answer)(&request.body);
                send.send_response(respond(status, &body));
                served.push(request);
            }
            if let Some((request, _)) = handle.next_request().await {
                let request = read(request).await;
                panic!(
                    "request after the script: {} (body {})",
                    request.line(),
                    request.body
                );
            }
            served
        }))
    }
}

impl Verifier {
    /// Waits for the script to end (the test must have dropped every client) and returns
    /// what was served; a failed assertion in the verifier fails the test with its message.
    pub async fn finish(self) -> Vec<Served> {
        match within("the script (is a client still alive?)", self.0).await {
            Ok(served) => served,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(error) => panic!("the scripted API server was cancelled: {error}"),
        }
    }
}

async fn read(request: Request<Body>) -> Served {
    let (parts, body) = request.into_parts();
    let bytes = body.collect_bytes().await.expect("request body");
    Served {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        content_type: parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("request body is JSON")
        },
    }
}

fn respond(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(body).expect("JSON")))
        .expect("response")
}

/// A synced reflector store holding `objects`, and its writer for later watch events.
pub fn synced<K>(objects: Vec<K>) -> (Store<K>, Writer<K>)
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Default,
{
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    for object in objects {
        writer.apply_watcher_event(&watcher::Event::InitApply(object));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    (store, writer)
}

fn guarded<K>(objects: Vec<K>) -> Vec<DeserializeGuard<K>> {
    objects
        .into_iter()
        .map(|o| DeserializeGuard(Ok(o)))
        .collect()
}

/// The watch-fed caches a test context reads, with the writers that feed them.
pub struct Feeds {
    pub nodes: Writer<NodeFacts>,
    pub hub_children: Writer<ChildView>,
}

/// What a test starts from: the classes, clusters and hub Nodes that exist, and the children
/// already in the hub's Deployment cache.
#[derive(Default)]
pub struct Cluster {
    pub classes: Vec<SensitivityClass>,
    pub clusters: Vec<SovereignCluster>,
    pub nodes: Vec<Node>,
    pub hub_children: Vec<Deployment>,
}

/// A context whose client talks to the scripted API server, and what belongs to it.
pub struct Harness {
    ctx: Option<Arc<Context>>,
    api: Option<ApiServer>,
    pub feeds: Feeds,
    audit_path: PathBuf,
    _audit_dir: tempfile::TempDir,
}

impl Harness {
    pub async fn new(world: Cluster) -> Self {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let (classes, _) = synced(guarded(world.classes));
        let (clusters, _) = synced(guarded(world.clusters));
        let (nodes, nodes_writer) = synced(world.nodes.iter().map(NodeFacts::from_node).collect());
        let (hub_children, children_writer) =
            synced(world.hub_children.iter().map(ChildView::from).collect());
        let (workloads, _) = synced::<DeserializeGuard<SovereignWorkload>>(Vec::new());
        let audit_dir = tempfile::tempdir().expect("temporary directory");
        let audit_path = audit_dir.path().join("audit.jsonl");
        let audit = AuditTrail::open(Some(audit_path.clone()), "sovra/test".into(), false)
            .await
            .expect("audit trail");
        let recorder = EventRecorder::new(
            client.clone(),
            Reporter {
                controller: "sovra".into(),
                instance: Some("test".into()),
            },
        );
        let ctx = Context {
            client,
            namespace: "sovra-system".into(),
            probe_interval: Duration::from_millis(500),
            cleanup_timeout: Duration::from_secs(600),
            world: World::new(classes, clusters, nodes, POOL_LABEL.into()),
            fleet: test_fleet(),
            recorder,
            audit,
            metrics: Metrics::default(),
            backoff: Backoff::default(),
            errors: ErrorReports::default(),
            hub_version: Some("v1.33.2".into()),
            hub_children,
            applied: Applied::default(),
            workloads,
            memory: Memory::default(),
            reports: PolicyReports::new(
                crate::controller::PolicyReports::OpenReports,
                Duration::from_secs(15),
            ),
        };
        Self {
            ctx: Some(Arc::new(ctx)),
            api: Some(ApiServer(handle)),
            feeds: Feeds {
                nodes: nodes_writer,
                hub_children: children_writer,
            },
            audit_path,
            _audit_dir: audit_dir,
        }
    }

    /// The context, for a reconcile.
    pub fn ctx(&self) -> Arc<Context> {
        self.ctx
            .clone()
            .expect("the context is dropped only by finish")
    }

    /// Starts serving `script` (once per test).
    pub fn serve(&mut self, script: Vec<Step>) -> Verifier {
        self.api.take().expect("one script per test").serve(script)
    }

    /// Drops the context (and so every client), then waits for the script to end: any request
    /// the script did not expect has failed it by then. Returns what was served.
    pub async fn finish(&mut self, verifier: Verifier) -> Vec<Served> {
        self.ctx = None;
        verifier.finish().await
    }

    /// The audit trail's records, as written to the file.
    pub fn audit_records(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.audit_path).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str(line).expect("an audit line is JSON"))
            .collect()
    }

    /// The `action` of every audit record, in order.
    pub fn audit_actions(&self) -> Vec<String> {
        self.audit_records()
            .iter()
            .map(|r| r["action"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// A fleet without members; what it announces goes nowhere.
pub fn test_fleet() -> Fleet {
    let (world, _) = tokio::sync::mpsc::unbounded_channel();
    let (workload, _) = tokio::sync::mpsc::unbounded_channel();
    let (cluster, _) = tokio::sync::mpsc::unbounded_channel();
    Fleet::new(
        Signals {
            world,
            workload,
            cluster,
        },
        Duration::from_secs(2),
        Duration::from_millis(500),
    )
}

/// Answers with `body`.
pub fn ok(body: Value) -> impl FnOnce(&Value) -> (StatusCode, Value) + Send + 'static {
    move |_| (StatusCode::OK, body)
}

/// Answers with the request's own body (an Event created or patched).
pub fn echo(request: &Value) -> (StatusCode, Value) {
    (StatusCode::CREATED, request.clone())
}

/// Answers 404 with a Kubernetes `Status`.
pub fn not_found(_: &Value) -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "reason": "NotFound", "message": "not found", "code": 404}),
    )
}

/// Answers a status apply with `object` carrying the applied status.
pub fn with_applied_status(object: Value) -> impl FnOnce(&Value) -> (StatusCode, Value) + Send {
    move |request| {
        let mut object = object;
        object["status"] = request["status"].clone();
        (StatusCode::OK, object)
    }
}
