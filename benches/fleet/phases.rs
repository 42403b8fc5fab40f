//! The phases after start-up, each printing its figures as it ends: readiness, steady state,
//! a relist of every watch, a restart with everything placed.

use super::access_log::{Breakdown, take_writes};
use super::operator::Operator;
use super::summary::Figures;
use super::support::deployments;
use super::topology::NAMESPACE;
use super::waits;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};
use test_apiserver::TestApiServer;

/// How long the servers must be quiet to call the operator idle.
const QUIET: Duration = Duration::from_secs(2);
/// The longest any phase may take before the bench gives up on it.
pub const LIMIT: Duration = Duration::from_secs(600);

pub struct Fleet<'a> {
    pub hub: &'a TestApiServer,
    pub members: &'a [TestApiServer],
    pub count: usize,
}

impl Fleet<'_> {
    pub fn servers(&self) -> Vec<&TestApiServer> {
        std::iter::once(self.hub).chain(self.members).collect()
    }

    pub async fn idle(&self) -> Duration {
        waits::idle(&self.servers(), QUIET, LIMIT).await
    }

    /// Waits until `done` holds for every workload, or fails the bench saying why not.
    pub async fn all(
        &self,
        operator: &mut Operator,
        what: &str,
        done: fn(&Value) -> bool,
    ) -> Duration {
        let waited = waits::all(self.hub, operator, self.count, done, LIMIT).await;
        waited.unwrap_or_else(|missing| panic!("{what}: {missing}"))
    }
}

/// Every member Deployment reports all its replicas ready (as a kubelet and the Deployment
/// controller would); the operator's writes per change until every workload says so.
pub async fn readiness(fleet: &Fleet<'_>, operator: &mut Operator, figures: &mut Figures) {
    // Edits of the start-up may still be applied: a Deployment read now could be overwritten
    // with an older spec.
    fleet.idle().await;
    take_writes(&fleet.servers());
    let reconciled = operator.workload_reconciles().await;
    let started = Instant::now();
    let mut changes = 0;
    for member in fleet.members {
        for mut deployment in member.list(&deployments(), Some(NAMESPACE)) {
            let replicas = deployment
                .pointer("/spec/replicas")
                .cloned()
                .unwrap_or(json!(1));
            let generation = deployment
                .pointer("/metadata/generation")
                .cloned()
                .unwrap_or(json!(1));
            deployment["status"] = json!({
                "observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
                "readyReplicas": replicas, "availableReplicas": replicas,
            });
            member.put(deployment).unwrap();
            changes += 1;
        }
    }
    fleet.all(operator, "ready", waits::is_ready).await;
    let took = started.elapsed();
    fleet.idle().await;
    let writes = Breakdown::of(&take_writes(&fleet.servers()), &HashSet::new());
    println!(
        "readiness: {changes} Deployments became ready; all workloads said so after {:.2} s, after {:.0} workload reconciles ({:.0} in all since the start)",
        took.as_secs_f64(),
        operator.workload_reconciles().await - reconciled,
        reconciled
    );
    writes.print(changes);
    figures.writes_per_readiness = writes.per(changes);
}

/// Idle: the resident memory, and the writes in a window in which nothing changes.
pub async fn steady(fleet: &Fleet<'_>, operator: &Operator, figures: &mut Figures) {
    fleet.idle().await;
    take_writes(&fleet.servers());
    let window = Duration::from_secs(5);
    tokio::time::sleep(window).await;
    let writes = take_writes(&fleet.servers());
    figures.steady_mib = operator.rss.current_mib();
    figures.idle_window = window;
    figures.idle_writes = writes.len();
    println!(
        "steady: RSS {:.1} MiB; {} writes in {} s idle",
        figures.steady_mib,
        writes.len(),
        window.as_secs()
    );
}

/// Every watch of the operator, on the hub and on every member, must relist (410 Gone on
/// re-watch): the peak memory while it does, and the writes of the resync that follows.
pub async fn relist(fleet: &Fleet<'_>, operator: &mut Operator, figures: &mut Figures) {
    take_writes(&fleet.servers());
    operator.rss.reset_peak();
    for server in fleet.servers() {
        server.expire_watches();
    }
    let settled = fleet.idle().await;
    operator.check_alive();
    let relists = fleet
        .servers()
        .iter()
        .flat_map(|s| s.requests())
        .filter(|r| r.verb == "list")
        .count();
    let writes = take_writes(&fleet.servers());
    figures.relist_peak_mib = operator.rss.peak_mib();
    figures.relist_settled = settled;
    figures.relist_writes = writes.len();
    // Printed to compare with steady: the caches are then rebuilt from fresh lists.
    let after = operator.rss.current_mib();
    println!(
        "relist: {relists} lists, settled after {:.2} s; RSS peak {:.1} MiB ({:.2}x steady), {after:.1} MiB once settled; {} writes",
        settled.as_secs_f64(),
        figures.relist_peak_mib,
        figures.relist_peak_mib / figures.steady_mib,
        writes.len()
    );
    Breakdown::of(&writes, &HashSet::new()).print(fleet.count);
}

/// The operator stops (SIGTERM) and starts again with every workload placed: how long until
/// its caches are synced and every workload was reconciled, and what it wrote (nothing, ideally).
pub async fn restart(
    fleet: &Fleet<'_>,
    operator: Operator,
    dir: &Path,
    kubeconfig: &Path,
    figures: &mut Figures,
) -> Operator {
    operator.stop().await;
    fleet.idle().await;
    take_writes(&fleet.servers());
    let started = Instant::now();
    let mut operator = Operator::start(dir, kubeconfig, "restart");
    let wanted = fleet.count as f64;
    while started.elapsed() < LIMIT {
        operator.check_alive();
        if figures.restart_synced.is_none() && operator.ready().await {
            figures.restart_synced = Some(started.elapsed());
        }
        if operator.workload_reconciles().await >= wanted {
            figures.restart_reconciled = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fleet
        .all(
            &mut operator,
            "current after the restart",
            waits::is_current,
        )
        .await;
    fleet.idle().await;
    let writes = take_writes(&fleet.servers());
    figures.restart_writes = writes.len();
    println!(
        "restart: synced after {:.2} s, every workload reconciled after {:.2} s; {} writes",
        figures.restart_synced.unwrap_or_default().as_secs_f64(),
        figures.restart_reconciled.unwrap_or_default().as_secs_f64(),
        writes.len()
    );
    Breakdown::of(&writes, &HashSet::new()).print(fleet.count);
    operator
}
