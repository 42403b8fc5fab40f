//! Bounded waits on the hub's objects. Each checks one pending workload at a time and stops at
//! the first that is not done yet, so that waiting costs the servers next to nothing (listing
//! every workload each poll took a third of the CPU a run had); each gives up after a limit,
//! saying how many are missing and why, from a sample's status.

use super::access_log::request_count;
use super::operator::Operator;
use super::support::workloads;
use super::topology::{NAMESPACE, workload_name};
use serde_json::Value;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use test_apiserver::TestApiServer;

/// Gave up: how many were not done, and one of them.
pub struct Missing {
    pub count: usize,
    pub sample: String,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} workloads never got there; e.g. {}",
            self.count, self.sample
        )
    }
}

pub fn workload(hub: &TestApiServer, i: usize) -> Option<Value> {
    hub.get(&workloads(), Some(NAMESPACE), &workload_name(i))
}

pub fn is_placed(w: &Value) -> bool {
    w.pointer("/status/phase").and_then(Value::as_str) == Some("Placed")
}

/// Status caught up with the spec: observedGeneration is the generation.
pub fn is_current(w: &Value) -> bool {
    let generation = w.pointer("/metadata/generation").and_then(Value::as_i64);
    generation.is_some()
        && w.pointer("/status/observedGeneration")
            .and_then(Value::as_i64)
            == generation
}

pub fn is_ready(w: &Value) -> bool {
    let wanted = w.pointer("/spec/replicas").and_then(Value::as_i64);
    is_placed(w)
        && wanted.is_some()
        && w.pointer("/status/readyReplicas").and_then(Value::as_i64) == wanted
}

fn describe(hub: &TestApiServer, i: usize) -> String {
    let Some(w) = workload(hub, i) else {
        return format!("{} does not exist", workload_name(i));
    };
    let phase = w
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("no phase");
    let conditions: Vec<String> = w
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let text = |k: &str| {
                c.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            format!(
                "{}={} {}: {}",
                text("type"),
                text("status"),
                text("reason"),
                text("message")
            )
        })
        .collect();
    format!(
        "{} phase {phase}; {}",
        workload_name(i),
        conditions.join("; ")
    )
}

/// Waits until `done` holds for workloads `0..count`, at most `limit`; fails the bench at
/// once if the operator exits meanwhile.
pub async fn all(
    hub: &TestApiServer,
    operator: &mut Operator,
    count: usize,
    done: fn(&Value) -> bool,
    limit: Duration,
) -> Result<Duration, Missing> {
    let started = Instant::now();
    let mut checked = Instant::now();
    let mut pending: VecDeque<usize> = (0..count).collect();
    while let Some(&i) = pending.front() {
        if checked.elapsed() > Duration::from_secs(1) {
            operator.check_alive();
            checked = Instant::now();
        }
        if workload(hub, i).is_some_and(|w| done(&w)) {
            pending.pop_front();
            continue;
        }
        if started.elapsed() > limit {
            let sample = describe(hub, i);
            return Err(Missing {
                count: pending.len(),
                sample,
            });
        }
        pending.rotate_left(1);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(started.elapsed())
}

/// Waits until no server has served a request for `quiet`, at most `limit`; how long it took
/// until the last request.
pub async fn idle(servers: &[&TestApiServer], quiet: Duration, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut last = (request_count(servers), Instant::now());
    while started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let count = request_count(servers);
        if count != last.0 {
            last = (count, Instant::now());
        } else if last.1.elapsed() >= quiet {
            break;
        }
    }
    last.1.duration_since(started)
}
