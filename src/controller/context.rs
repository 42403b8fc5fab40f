//! State shared by every reconcile: the client, the world, the event recorder, the audit trail,
//! metrics and per-object backoff.

use super::metrics::Metrics;
use super::world::World;
use crate::audit::AuditTrail;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

pub struct Context {
    pub client: Client,
    /// The operator's namespace: member kubeconfig Secrets live here.
    pub namespace: String,
    /// How often member clusters are probed.
    pub probe_interval: Duration,
    pub world: World,
    pub recorder: Recorder,
    pub audit: AuditTrail,
    pub metrics: Metrics,
    pub backoff: Backoff,
    /// Kubernetes version of the hub, reported in the hub's SovereignCluster status.
    pub hub_version: Option<String>,
    /// The Deployments Sovra manages on the hub (members have theirs in the fleet).
    pub hub_children: Store<Deployment>,
    pub applied: Applied,
    /// The status Sovra last wrote for each SovereignCluster (by UID), newer than the cache
    /// may be.
    pub cluster_statuses: Mutex<HashMap<String, crate::crd::SovereignClusterStatus>>,
    /// Every SovereignWorkload, as the workload controller sees them.
    pub workloads: Store<kube::core::DeserializeGuard<crate::crd::SovereignWorkload>>,
    /// Workloads (by UID) whose release is already in the audit trail: a cleanup that is
    /// retried records it once.
    pub released: Mutex<std::collections::HashSet<String>>,
}

impl AsRef<Context> for Context {
    fn as_ref(&self) -> &Context {
        self
    }
}

/// Locks a mutex; a panic elsewhere while holding it does not make its data unusable here.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Per-object exponential backoff: a failing object is retried after 1 s, 2 s, 4 s ... up to
/// 5 minutes, without slowing down any other object. Reset on the first success.
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    const BASE: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(300);

    pub fn next_delay(&self, key: &str) -> Duration {
        let mut failures = lock(&self.failures);
        let n = failures.entry(key.to_owned()).or_insert(0);
        let delay = Self::BASE
            .saturating_mul(2u32.saturating_pow(*n))
            .min(Self::MAX);
        *n = n.saturating_add(1);
        delay
    }

    pub fn reset(&self, key: &str) {
        let mut failures = lock(&self.failures);
        failures.remove(key);
    }
}

/// What Sovra last applied to each child, so that a reconcile which changes nothing sends
/// nothing: a child is applied again only when the desired Deployment changed or its
/// generation moved (someone else edited its spec, which the apply then reverts).
#[derive(Default)]
pub struct Applied {
    children: Mutex<HashMap<String, (u64, Option<i64>)>>,
}

impl Applied {
    fn children(&self) -> MutexGuard<'_, HashMap<String, (u64, Option<i64>)>> {
        lock(&self.children)
    }

    fn digest(desired: &Deployment) -> u64 {
        let mut hasher = DefaultHasher::new();
        serde_json::to_string(desired)
            .unwrap_or_default()
            .hash(&mut hasher);
        hasher.finish()
    }

    /// True when `cached` is exactly what Sovra applied last as `desired`.
    pub fn is_current(&self, key: &str, desired: &Deployment, cached: &Deployment) -> bool {
        let children = self.children();
        children.get(key) == Some(&(Self::digest(desired), cached.metadata.generation))
    }

    pub fn forget(&self, key: &str) {
        let mut children = self.children();
        children.remove(key);
    }

    pub fn record(&self, key: &str, desired: &Deployment, applied: &Deployment) {
        let mut children = self.children();
        children.insert(
            key.to_owned(),
            (Self::digest(desired), applied.metadata.generation),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_object_caps_at_five_minutes_and_resets_on_success() {
        let backoff = Backoff::default();
        let delays: Vec<u64> = (0..12).map(|_| backoff.next_delay("a").as_secs()).collect();
        assert_eq!(&delays[..4], &[1, 2, 4, 8]);
        assert_eq!(delays[11], 300);
        assert_eq!(
            backoff.next_delay("b").as_secs(),
            1,
            "other objects are not slowed down"
        );
        backoff.reset("a");
        assert_eq!(backoff.next_delay("a").as_secs(), 1);
    }
}
