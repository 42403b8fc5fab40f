//! The honest baseline: the very writes Sovra made while placing (verbs, resources,
//! subresources, patch types, bodies), re-targeted from namespace `bench` to `rerun` (a name of
//! the same length, so every body keeps its size) and sent again to the server each went to,
//! at the operator's concurrency. Writes to one object keep their order (as the operator's
//! per-object reconciles do); namespaces go first, as the objects in them need them.

use super::access_log::{Served, object_name, workload_of};
use super::topology::{NAMESPACE, REPLAY_NAMESPACE};
use futures::StreamExt;
use http_body_util::BodyExt;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub struct Replayed {
    pub requests: usize,
    pub elapsed: Duration,
    /// Status codes of the answers that were not a success.
    pub failed: BTreeMap<u16, usize>,
}

struct Request {
    server: usize,
    method: http::Method,
    uri: String,
    content_type: &'static str,
    body: Vec<u8>,
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

fn retarget(text: &str) -> String {
    text.replace(
        &format!("\"{NAMESPACE}\""),
        &format!("\"{REPLAY_NAMESPACE}\""),
    )
    .replace(
        &format!("/namespaces/{NAMESPACE}/"),
        &format!("/namespaces/{REPLAY_NAMESPACE}/"),
    )
}

fn request(served: &Served) -> Request {
    let record = &served.record;
    let method = match record.verb.as_str() {
        "create" => http::Method::POST,
        "update" => http::Method::PUT,
        "patch" => http::Method::PATCH,
        _ => http::Method::DELETE,
    };
    let mut path = retarget(&record.path);
    if record.resource == "namespaces" && record.name.as_deref() == Some(NAMESPACE) {
        path = path.replace(
            &format!("/namespaces/{NAMESPACE}"),
            &format!("/namespaces/{REPLAY_NAMESPACE}"),
        );
    }
    let uri = if record.query.is_empty() {
        path
    } else {
        format!("{path}?{}", record.query)
    };
    let body = record.body.as_deref().unwrap_or_default();
    let body = retarget(&String::from_utf8_lossy(body)).into_bytes();
    Request {
        server: served.server,
        method,
        uri,
        content_type: content_type(record.patch_type.as_deref()),
        body,
    }
}

/// Sends one object's writes in order; the status codes of those that failed.
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
                if status >= 300 {
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

/// Replays `writes` against the servers `clients` reach (same order as `Served::server`).
pub async fn replay(clients: &[kube::Client], writes: &[Served], concurrency: usize) -> Replayed {
    let mut namespaces = Vec::new();
    let mut objects: BTreeMap<String, Vec<Request>> = BTreeMap::new();
    for served in writes {
        let request = request(served);
        if served.record.resource == "namespaces" {
            namespaces.push(request);
        } else {
            objects.entry(sequence(served)).or_default().push(request);
        }
    }
    let started = Instant::now();
    let mut codes = send_all(clients, namespaces).await;
    let failures: Vec<Vec<u16>> = futures::stream::iter(objects.into_values())
        .map(|requests| send_all(clients, requests))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    codes.extend(failures.into_iter().flatten());
    let mut failed = BTreeMap::new();
    for code in codes {
        *failed.entry(code).or_default() += 1;
    }
    Replayed {
        requests: writes.len(),
        elapsed,
        failed,
    }
}
