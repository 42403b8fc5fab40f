//! State shared by every reconcile: the client, the world, the event recorder, the audit trail,
//! metrics and per-object backoff.

use super::backoff::Backoff;
use super::error_reports::ErrorReports;
use super::event_recorder::EventRecorder;
use super::fleet::Fleet;
use super::memory::{Applied, Memory};
use super::metrics::Metrics;
use super::policy_reports::PolicyReports;
use super::world::{Snapshot, World};
use crate::audit::AuditTrail;
use kube::Client;
use kube::runtime::reflector::Store;
use std::sync::Arc;
use std::time::Duration;

pub struct Context {
    pub client: Client,
    /// The operator's namespace: member kubeconfig Secrets live here.
    pub namespace: String,
    /// How often member clusters are probed.
    pub probe_interval: Duration,
    /// How long a deleted workload waits for an unreachable member before it is released.
    pub cleanup_timeout: Duration,
    /// Classes, clusters and the hub's Nodes, from which decisions are derived.
    pub world: World,
    /// Connections to member clusters: their health, node pools and children.
    pub fleet: Fleet,
    pub recorder: EventRecorder,
    pub audit: AuditTrail,
    pub metrics: Metrics,
    pub backoff: Backoff,
    /// Consecutive failures per object and what was published about them.
    pub errors: ErrorReports,
    /// Kubernetes version of the hub, reported in the hub's SovereignCluster status.
    pub hub_version: Option<String>,
    /// The Deployments Sovra manages on the hub (members have theirs in the fleet).
    pub hub_children: Store<super::child_view::ChildView>,
    pub applied: Applied,
    /// Every SovereignWorkload, as the workload controller sees them.
    pub workloads: Store<kube::core::DeserializeGuard<crate::crd::SovereignWorkload>>,
    /// What this process wrote or recorded, so that a retry does not do it twice.
    pub memory: Memory,
    /// The policy report of each namespace: what to write, and what was written.
    pub reports: PolicyReports,
}

impl Context {
    /// What decisions read now: the world, with each member's health and pools.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.world.snapshot(&self.fleet)
    }
}

impl AsRef<Context> for Context {
    fn as_ref(&self) -> &Context {
        self
    }
}
