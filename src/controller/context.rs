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
// Tokio's clock, so tests can advance it.
use tokio::time::Instant;

pub struct Context {
    pub client: Client,
    /// The operator's namespace: member kubeconfig Secrets live here.
    pub namespace: String,
    /// How often member clusters are probed.
    pub probe_interval: Duration,
    /// How long a deleted workload waits for an unreachable member before it is released.
    pub cleanup_timeout: Duration,
    pub world: World,
    pub recorder: Recorder,
    pub audit: AuditTrail,
    pub metrics: Metrics,
    pub backoff: Backoff,
    /// Consecutive failures per object and what was published about them.
    pub errors: super::reconciler::ErrorReports,
    /// Kubernetes version of the hub, reported in the hub's SovereignCluster status.
    pub hub_version: Option<String>,
    /// The Deployments Sovra manages on the hub (members have theirs in the fleet).
    pub hub_children: Store<Deployment>,
    pub applied: Applied,
    /// Every SovereignWorkload, as the workload controller sees them.
    pub workloads: Store<kube::core::DeserializeGuard<crate::crd::SovereignWorkload>>,
    /// What this process wrote or recorded, so that a retry does not do it twice.
    pub memory: Memory,
}

/// What the controllers remember between reconciles of one object. Each map is keyed by the
/// object's UID.
#[derive(Default)]
pub struct Memory {
    /// The status Sovra last wrote for each SovereignCluster, newer than the cache may be.
    pub cluster_statuses: LastWritten<crate::crd::SovereignClusterStatus>,
    /// The status Sovra last wrote for each SovereignWorkload, until the cache shows it.
    pub workload_statuses: LastWritten<crate::crd::SovereignWorkloadStatus>,
    /// The decision last recorded in the audit trail for each workload (generation and
    /// digest): a reconcile retried after a failed status write does not record it again.
    pub recorded: Mutex<HashMap<String, (Option<i64>, u64)>>,
    /// Workloads whose release is already in the audit trail: a cleanup that is retried
    /// records it once.
    pub released: Mutex<std::collections::HashSet<String>>,
    /// Undeserializable workloads already reported, with a digest of the problem: each
    /// distinct problem is published once.
    pub invalid: Mutex<HashMap<String, u64>>,
}

impl Memory {
    /// Drops what is remembered of workloads that are gone (`live` says which UIDs exist).
    pub fn prune_workloads(&self, live: impl Fn(&str) -> bool) {
        self.workload_statuses.retain(&live);
        lock(&self.recorded).retain(|uid, _| live(uid));
        lock(&self.released).retain(|uid| live(uid));
        lock(&self.invalid).retain(|uid, _| live(uid));
    }
}

/// The status Sovra last wrote for each object. The cache may lag behind Sovra's own write, and
/// deciding from the older status would act (and record) the same change twice. Sovra is the
/// only writer of these statuses, so what it wrote is the newest.
pub struct LastWritten<S> {
    written: Mutex<HashMap<String, S>>,
}

impl<S> Default for LastWritten<S> {
    fn default() -> Self {
        Self {
            written: Mutex::default(),
        }
    }
}

impl<S: Clone + PartialEq> LastWritten<S> {
    /// The newest status of `uid`: what Sovra wrote, until the cache shows the same; then the
    /// entry is dropped, so the map holds only writes the cache has not caught up with.
    pub fn newest(&self, uid: &str, cached: Option<&S>) -> Option<S> {
        let mut written = lock(&self.written);
        match written.get(uid) {
            Some(mine) if Some(mine) == cached => {
                written.remove(uid);
                cached.cloned()
            }
            Some(mine) => Some(mine.clone()),
            None => cached.cloned(),
        }
    }

    pub fn remember(&self, uid: &str, status: S) {
        lock(&self.written).insert(uid.to_owned(), status);
    }

    pub fn forget(&self, uid: &str) {
        lock(&self.written).remove(uid);
    }

    /// Drops entries of objects that are gone.
    pub fn retain(&self, live: impl Fn(&str) -> bool) {
        lock(&self.written).retain(|uid, _| live(uid));
    }
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
///
/// An object that keeps failing asks for its next delay at least every [`Backoff::MAX`]; an
/// entry untouched for twice that belongs to an object that went away (deleted while failing),
/// and is dropped, so the map stays bounded by the objects failing now.
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Backoff {
    const BASE: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(300);

    pub fn next_delay(&self, key: &str) -> Duration {
        let now = Instant::now();
        let mut failures = lock(&self.failures);
        failures.retain(|_, (_, touched)| now.duration_since(*touched) <= Self::MAX * 2);
        let (n, touched) = failures.entry(key.to_owned()).or_insert((0, now));
        *touched = now;
        let delay = Self::BASE
            .saturating_mul(2u32.saturating_pow(*n))
            .min(Self::MAX);
        *n = n.saturating_add(1);
        delay
    }

    /// Consecutive failures of `key` so far.
    pub fn failures(&self, key: &str) -> u32 {
        lock(&self.failures).get(key).map_or(0, |(n, _)| *n)
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

    /// Forgets every child on `cluster` (it was drained or let go).
    pub fn forget_cluster(&self, cluster: &str) {
        let prefix = format!("{cluster}/");
        self.children().retain(|key, _| !key.starts_with(&prefix));
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

    #[tokio::test(start_paused = true)]
    async fn backoff_entries_of_objects_that_stopped_failing_long_ago_are_dropped() {
        let backoff = Backoff::default();
        backoff.next_delay("deleted-while-failing");
        backoff.next_delay("still-failing");
        tokio::time::advance(Backoff::MAX).await;
        backoff.next_delay("still-failing");
        tokio::time::advance(Backoff::MAX + Duration::from_secs(1)).await;
        backoff.next_delay("still-failing");
        assert_eq!(backoff.failures("deleted-while-failing"), 0, "expired");
        assert_eq!(
            backoff.failures("still-failing"),
            3,
            "kept while it keeps failing"
        );
    }

    #[test]
    fn memory_of_workloads_that_are_gone_is_pruned() {
        let memory = Memory::default();
        for uid in ["live", "gone"] {
            memory.workload_statuses.remember(uid, Default::default());
            lock(&memory.recorded).insert(uid.to_owned(), (Some(1), 7));
            lock(&memory.released).insert(uid.to_owned());
            lock(&memory.invalid).insert(uid.to_owned(), 9);
        }
        memory.prune_workloads(|uid| uid == "live");
        assert!(lock(&memory.recorded).contains_key("live"));
        assert!(!lock(&memory.recorded).contains_key("gone"));
        assert!(!lock(&memory.released).contains("gone"));
        assert!(!lock(&memory.invalid).contains_key("gone"));
        assert_eq!(memory.workload_statuses.newest("gone", None), None);
        assert!(memory.workload_statuses.newest("live", None).is_some());
    }

    #[test]
    fn the_last_written_status_is_used_until_the_cache_shows_it() {
        let written: LastWritten<u32> = LastWritten::default();
        assert_eq!(
            written.newest("a", Some(&1)),
            Some(1),
            "nothing written: the cache"
        );
        written.remember("a", 2);
        assert_eq!(written.newest("a", Some(&1)), Some(2), "the cache lags");
        assert_eq!(
            written.newest("a", Some(&2)),
            Some(2),
            "the cache caught up"
        );
        assert_eq!(
            written.newest("a", Some(&3)),
            Some(3),
            "and the entry is gone"
        );
    }

    #[test]
    fn a_drained_clusters_applied_children_are_forgotten() {
        let applied = Applied::default();
        let child = Deployment::default();
        applied.record("bund-de-1/ns/tax", &child, &child);
        applied.record("bund-de-10/ns/tax", &child, &child);
        applied.forget_cluster("bund-de-1");
        assert!(!applied.is_current("bund-de-1/ns/tax", &child, &child));
        assert!(applied.is_current("bund-de-10/ns/tax", &child, &child));
    }

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
