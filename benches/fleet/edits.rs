//! Edits during the start-up backlog: one workload every 100 ms gets `spec.replicas` bumped,
//! and the time from the edit until its status observes the new generation is its latency.
//! Edits must not wait behind the backlog.

use super::access_log::BENCH_MANAGER;
use super::support::workloads;
use super::topology::{NAMESPACE, workload_name};
use super::waits::workload;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use test_apiserver::TestApiServer;
use tokio::sync::watch;

const EVERY: Duration = Duration::from_millis(100);
/// An edit not handled within this long counts as never handled.
const LIMIT: Duration = Duration::from_secs(120);

/// Latencies of the edits, and the workloads edited (their writes are not the placement's).
#[derive(Default)]
pub struct Edits {
    pub latencies: Vec<Duration>,
    /// Each handled edit's latency with when it was made, counted from the operator's start.
    pub made: Vec<(Duration, Duration)>,
    pub unhandled: usize,
    pub edited: HashSet<String>,
}

impl Edits {
    /// The `n` slowest edits as (made after operator start, latency).
    pub fn slowest(&self, n: usize) -> Vec<(Duration, Duration)> {
        let mut made = self.made.clone();
        made.sort_by_key(|&(_, latency)| std::cmp::Reverse(latency));
        made.truncate(n);
        made
    }

    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted.get(rank).copied()
    }
}

/// Edits workloads until `stop` turns true, then waits for the edits in flight.
pub async fn during(hub: TestApiServer, count: usize, mut stop: watch::Receiver<bool>) -> Edits {
    let started = Instant::now();
    let resource = ApiResource::erase::<sovra::crd::SovereignWorkload>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(hub.client(), NAMESPACE, &resource);
    let done = Arc::new(Mutex::new(Edits::default()));
    let mut tasks = tokio::task::JoinSet::new();
    let mut ticker = tokio::time::interval(EVERY);
    // A stride coprime with the usual counts spreads the edits over the backlog's order.
    for k in 0.. {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
        let i = (k * 7919 + 13) % count;
        let name = workload_name(i);
        if !done.lock().unwrap().edited.insert(name.clone()) {
            break; // every workload was edited once
        }
        let replicas = workload(&hub, i)
            .and_then(|w| w.pointer("/spec/replicas").and_then(Value::as_i64))
            .unwrap_or(2);
        let params = PatchParams::apply(BENCH_MANAGER);
        let patch = Patch::Merge(json!({"spec": {"replicas": replicas + 1}}));
        let edited_at = Instant::now();
        let Ok(edited) = api.patch(&name, &params, &patch).await else {
            continue;
        };
        let generation = edited.metadata.generation.unwrap_or_default();
        let (hub, done) = (hub.clone(), done.clone());
        tasks.spawn(async move {
            let latency = observed(&hub, &name, generation, edited_at).await;
            let mut done = done.lock().unwrap();
            match latency {
                Some(latency) => {
                    done.latencies.push(latency);
                    done.made.push((edited_at.duration_since(started), latency));
                }
                None => done.unhandled += 1,
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    std::mem::take(&mut *done.lock().unwrap())
}

/// When the workload's status observed `generation`, counted from `since`.
async fn observed(
    hub: &TestApiServer,
    name: &str,
    generation: i64,
    since: Instant,
) -> Option<Duration> {
    while since.elapsed() < LIMIT {
        let seen = hub.get(&workloads(), Some(NAMESPACE), name).and_then(|w| {
            w.pointer("/status/observedGeneration")
                .and_then(Value::as_i64)
        });
        if seen.is_some_and(|seen| seen >= generation) {
            return Some(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
