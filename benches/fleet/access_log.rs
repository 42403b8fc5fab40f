//! What the operator wrote, from the servers' access logs: writes by kind, per workload, and
//! the retries (409 Conflict, 422 Invalid) among them. The bench's own writes carry a field
//! manager starting with [`BENCH_MANAGER`] and are left out.

use super::topology::NAMESPACE;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use test_apiserver::{RequestRecord, TestApiServer};

pub const BENCH_MANAGER: &str = "sovra-bench";

/// A request of one server, tagged with which server it went to (0 is the hub, 1.. members).
pub struct Served {
    pub server: usize,
    pub record: RequestRecord,
}

pub fn is_write(record: &RequestRecord) -> bool {
    matches!(
        record.verb.as_str(),
        "create" | "update" | "patch" | "delete" | "deletecollection"
    )
}

fn is_operators(record: &RequestRecord) -> bool {
    !record
        .field_manager
        .as_deref()
        .is_some_and(|m| m.starts_with(BENCH_MANAGER))
}

/// Empties the access logs of the hub and every member and returns the operator's writes.
pub fn take_writes(servers: &[&TestApiServer]) -> Vec<Served> {
    take_requests(servers, is_write)
}

/// A request the replay sends again: a write, or a read of one object (a GET). Lists and
/// watches feed the caches; a list replayed across namespaces would also list the replay's
/// copies, and a watch has no end.
pub fn is_replayable(record: &RequestRecord) -> bool {
    is_write(record) || record.verb == "get"
}

/// Empties the access logs and returns the operator's requests that `keep` keeps, in the
/// order each server answered them.
pub fn take_requests(
    servers: &[&TestApiServer],
    keep: impl Fn(&RequestRecord) -> bool,
) -> Vec<Served> {
    let mut requests = Vec::new();
    for (server, api) in servers.iter().enumerate() {
        let records = api.take_requests().into_iter();
        let mine = records.filter(|r| keep(r) && is_operators(r));
        requests.extend(mine.map(|record| Served { server, record }));
    }
    requests
}

/// Requests served so far by all of them (reads included): a cheap sign of activity.
pub fn request_count(servers: &[&TestApiServer]) -> usize {
    servers.iter().map(|s| s.request_count()).sum()
}

/// The name of the object a write concerns: in the path, or for a create in the body (kept
/// only while the server records bodies).
pub fn object_name(record: &RequestRecord) -> Option<String> {
    let created = || {
        let body: Value = serde_json::from_slice(record.body.as_deref()?).ok()?;
        body.pointer("/metadata/name")?.as_str().map(str::to_owned)
    };
    record.name.clone().or_else(created)
}

/// The workload a write concerns, from its object's name (in the path, or for a create in the
/// body): the workload itself, its child Deployment (same name) or an Event about it
/// (`<name>.<suffix>`). None for shared objects (cluster status, namespaces, policy reports).
pub fn workload_of(record: &RequestRecord) -> Option<String> {
    let name = object_name(record)?;
    let workload = name.split('.').next()?;
    let in_namespace = record.namespace.as_deref() == Some(NAMESPACE);
    (in_namespace && workload.starts_with("w-")).then(|| workload.to_owned())
}

/// An Event's reason, from the body of its create (kept only while the server records bodies).
fn event_reason(record: &RequestRecord) -> Option<String> {
    if record.resource != "events" {
        return None;
    }
    let body: Value = serde_json::from_slice(record.body.as_deref()?).ok()?;
    body.get("reason")?.as_str().map(str::to_owned)
}

/// Events said once for a workload that no other provider could host: a warning the floor's
/// four writes do not include, and which Sovra owes exactly the stranded workloads.
pub const EXIT_WARNING: &str = "NoExitAlternative";

fn kind(record: &RequestRecord) -> String {
    let mut kind = format!("{} {}", record.verb, record.resource);
    if let Some(reason) = event_reason(record) {
        kind.push_str(&format!(" [{reason}]"));
    }
    if let Some(sub) = &record.subresource {
        kind.push('/');
        kind.push_str(sub);
    }
    if let Some(patch) = &record.patch_type {
        kind.push_str(&format!(" ({patch})"));
    }
    kind
}

/// Writes by kind, and the retries among them.
pub struct Breakdown {
    pub by_kind: BTreeMap<String, usize>,
    pub total: usize,
    pub retries: usize,
    /// [`EXIT_WARNING`] Events among the writes.
    pub exit_warnings: usize,
    /// Writes concerning the excluded workloads (e.g. those edited during the phase).
    pub excluded: usize,
    pub failed: BTreeMap<u16, usize>,
}

impl Breakdown {
    /// Counts the writes among `requests`, leaving out those that concern a workload in
    /// `exclude`.
    pub fn of(requests: &[Served], exclude: &HashSet<String>) -> Breakdown {
        let mut breakdown = Breakdown {
            by_kind: BTreeMap::new(),
            total: 0,
            retries: 0,
            exit_warnings: 0,
            excluded: 0,
            failed: BTreeMap::new(),
        };
        let writes = requests.iter().filter(|s| is_write(&s.record));
        for Served { record, .. } in writes {
            if workload_of(record).is_some_and(|w| exclude.contains(&w)) {
                breakdown.excluded += 1;
                continue;
            }
            breakdown.total += 1;
            *breakdown.by_kind.entry(kind(record)).or_default() += 1;
            if matches!(record.status, 409 | 422) {
                breakdown.retries += 1;
            }
            if event_reason(record).as_deref() == Some(EXIT_WARNING) {
                breakdown.exit_warnings += 1;
            }
            if record.status >= 300 {
                *breakdown.failed.entry(record.status).or_default() += 1;
            }
        }
        breakdown
    }

    pub fn per(&self, workloads: usize) -> f64 {
        self.total as f64 / workloads.max(1) as f64
    }

    /// The table: each kind's count and its share per workload.
    pub fn print(&self, workloads: usize) {
        for (kind, count) in &self.by_kind {
            println!(
                "    {kind:<58} {count:>8}  {:>6.2} per workload",
                *count as f64 / workloads.max(1) as f64
            );
        }
        println!(
            "    {:<58} {:>8}  {:>6.2} per workload",
            "total",
            self.total,
            self.per(workloads)
        );
        println!(
            "    answered with an error: {}; retries (409/422): {}",
            describe_codes(&self.failed),
            self.retries
        );
    }
}

/// `3× 409, 1× 422`, or `none`.
pub fn describe_codes(codes: &BTreeMap<u16, usize>) -> String {
    let codes: Vec<String> = codes.iter().map(|(c, n)| format!("{n}× {c}")).collect();
    if codes.is_empty() {
        "none".to_owned()
    } else {
        codes.join(", ")
    }
}
