//! The honest baseline: the very requests Sovra made while placing (its writes with their
//! verbs, resources, subresources, patch types and bodies, and its reads of single objects),
//! re-targeted from namespace `bench` to another of the same length (so every body keeps its
//! size) and sent again to the server each went to, at the operator's concurrency. The requests
//! about one workload keep their order (as its reconcile makes them in turn); namespaces go
//! first, as the objects in them need them.

use super::access_log::{Served, is_write, object_name, workload_of};
use super::operator::cpu_seconds;
use super::topology::NAMESPACE;
use futures::StreamExt;
use http_body_util::BodyExt;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub struct Replayed {
    pub requests: usize,
    /// How many of them were writes.
    pub writes: usize,
    pub elapsed: Duration,
    /// CPU seconds the bench process (the servers and this client) used meanwhile.
    pub cpu: f64,
    /// Status codes of the answers that were not a success where Sovra's was.
    pub failed: BTreeMap<u16, usize>,
}

struct Request {
    server: usize,
    method: http::Method,
    uri: String,
    content_type: &'static str,
    body: Vec<u8>,
    /// What the server answered Sovra.
    answered: u16,
}

fn content_type(patch_type: Option<&str>) -> &'static str {
    match patch_type {
        Some("apply") => "application/apply-patch+yaml",
        Some("merge") => "application/merge-patch+json",
        Some("json") => "application/json-patch+json",
        Some("strategic") => "application/strategic-merge-patch+json",
        _ => "application/json",
    }
}

fn retarget(text: &str, to: &str) -> String {
    text.replace(&format!("\"{NAMESPACE}\""), &format!("\"{to}\""))
        .replace(
            &format!("/namespaces/{NAMESPACE}/"),
            &format!("/namespaces/{to}/"),
        )
}

fn request(served: &Served, to: &str) -> Request {
    let record = &served.record;
    let method = match record.verb.as_str() {
        "get" => http::Method::GET,
        "create" => http::Method::POST,
        "update" => http::Method::PUT,
        "patch" => http::Method::PATCH,
        _ => http::Method::DELETE,
    };
    let mut path = retarget(&record.path, to);
    if record.resource == "namespaces" && record.name.as_deref() == Some(NAMESPACE) {
        path = path.replace(
            &format!("/namespaces/{NAMESPACE}"),
            &format!("/namespaces/{to}"),
        );
    }
    let uri = if record.query.is_empty() {
        path
    } else {
        format!("{path}?{}", record.query)
    };
    let body = record.body.as_deref().unwrap_or_default();
    let body = retarget(&String::from_utf8_lossy(body), to).into_bytes();
    Request {
        server: served.server,
        method,
        uri,
        content_type: content_type(record.patch_type.as_deref()),
        body,
        answered: record.status,
    }
}

/// Sends one object's requests in order; the status codes of those that failed where Sovra's
/// did not (a GET of a child not created yet was a 404 for Sovra too).
async fn send_all(clients: &[kube::Client], requests: Vec<Request>) -> Vec<u16> {
    let mut failed = Vec::new();
    for r in requests {
        let request = http::Request::builder()
            .method(r.method)
            .uri(&r.uri)
            .header(http::header::CONTENT_TYPE, r.content_type)
            .body(kube::client::Body::from(r.body))
            .unwrap();
        match clients[r.server].send(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                let _ = response.into_body().collect().await;
                if status >= 300 && r.answered < 300 {
                    failed.push(status);
                }
            }
            Err(_) => failed.push(0),
        }
    }
    failed
}

/// Which ordered sequence a write belongs to: all writes about one workload (itself, its
/// Events, its child on a member) in the order Sovra made them, as one reconcile makes them in
/// turn; any other object on its own.
fn sequence(served: &Served) -> String {
    let record = &served.record;
    match workload_of(record) {
        Some(workload) => format!("workload {workload}"),
        None => format!(
            "{} {} {:?} {}",
            served.server,
            record.resource,
            record.namespace,
            object_name(record).unwrap_or_default()
        ),
    }
}

/// Replays `requests` against the servers `clients` reach (same order as `Served::server`),
/// with namespace `bench` replaced by `to`.
pub async fn replay(
    clients: &[kube::Client],
    requests: &[Served],
    to: &str,
    concurrency: usize,
) -> Replayed {
    let mut namespaces = Vec::new();
    let mut objects: BTreeMap<String, Vec<Request>> = BTreeMap::new();
    for served in requests {
        let request = request(served, to);
        if served.record.resource == "namespaces" {
            namespaces.push(request);
        } else {
            objects.entry(sequence(served)).or_default().push(request);
        }
    }
    let cpu = cpu_seconds("self").unwrap_or_default();
    let started = Instant::now();
    let mut codes = send_all(clients, namespaces).await;
    let failures: Vec<Vec<u16>> = futures::stream::iter(objects.into_values())
        .map(|requests| send_all(clients, requests))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let cpu = cpu_seconds("self").unwrap_or_default() - cpu;
    codes.extend(failures.into_iter().flatten());
    let mut failed = BTreeMap::new();
    for code in codes {
        *failed.entry(code).or_default() += 1;
    }
    Replayed {
        requests: requests.len(),
        writes: requests.iter().filter(|s| is_write(&s.record)).count(),
        elapsed,
        cpu,
        failed,
    }
}
