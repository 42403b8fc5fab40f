//! What the controllers remember between reconciles of one object, so that a retry does not
//! do (or record) the same thing twice: statuses written, decisions recorded, releases,
//! invalid objects reported, and what was applied to each child.

use super::exit_tally::ExitTally;
use super::own_writes::OwnWrites;
use super::spare_capacity::ShedSpare;
use super::violations::Violations;
use crate::sync::lock;
use k8s_openapi::api::apps::v1::Deployment;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, MutexGuard};

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
    /// Workloads Sovra added its finalizer to while the cache does not show it yet: a
    /// reconcile from that older cache must not add it again (its patch's `test` would fail).
    pub finalized: Mutex<std::collections::HashSet<String>>,
    /// Workloads whose release is already in the audit trail: a cleanup that is retried
    /// records it once.
    pub released: Mutex<std::collections::HashSet<String>>,
    /// Undeserializable workloads already reported, with a digest of the problem: each
    /// distinct problem is published once.
    pub invalid: Mutex<HashMap<String, u64>>,
    /// Each placed workload's exit standing, behind the exit-readiness gauges.
    pub exit: ExitTally,
    /// The loss of sovereignty last recorded for each SovereignCluster, with the status it was
    /// judged against: a retry after a failed status write does not record it again.
    pub sovereignty_lost: Mutex<HashMap<String, u64>>,
    /// Drift's current violations (Pods outside their placement), for the policy reports.
    pub violations: Violations,
    /// Resource versions of Sovra's own workload writes, until the watch shows them.
    pub own_writes: OwnWrites,
}

impl Memory {
    /// Drops what is remembered of workloads that are gone (`live` says which UIDs exist).
    pub fn prune_workloads(&self, live: impl Fn(&str) -> bool) {
        self.workload_statuses.retain(&live);
        lock(&self.recorded).retain(|uid, _| live(uid));
        lock(&self.released).retain(|uid| live(uid));
        lock(&self.finalized).retain(|uid| live(uid));
        lock(&self.invalid).retain(|uid, _| live(uid));
        self.own_writes.retain(&live);
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
                written.shed_spare();
                cached.cloned()
            }
            Some(mine) => Some(mine.clone()),
            None => cached.cloned(),
        }
    }

    /// Drops what Sovra wrote for `uid` once the cache shows the same (`cached` reads the cached
    /// status, only when something is remembered), as [`Self::newest`] does: a workload that no
    /// reconcile reads again does not keep its last write for good.
    pub fn settle(&self, uid: &str, cached: impl FnOnce() -> Option<S>) {
        let mut written = lock(&self.written);
        if written
            .get(uid)
            .is_some_and(|mine| Some(mine) == cached().as_ref())
        {
            written.remove(uid);
            written.shed_spare();
        }
    }

    pub fn remember(&self, uid: &str, status: S) {
        lock(&self.written).insert(uid.to_owned(), status);
    }

    pub fn forget(&self, uid: &str) {
        let mut written = lock(&self.written);
        written.remove(uid);
        written.shed_spare();
    }

    /// Drops entries of objects that are gone.
    pub fn retain(&self, live: impl Fn(&str) -> bool) {
        let mut written = lock(&self.written);
        written.retain(|uid, _| live(uid));
        written.shed_spare();
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
    fn a_written_status_is_forgotten_once_the_cache_shows_it_without_a_reconcile() {
        let written: LastWritten<u32> = LastWritten::default();
        written.remember("a", 2);
        let mut read = 0;
        written.settle("a", || {
            read += 1;
            Some(1)
        });
        assert_eq!(read, 1, "the cached status was compared");
        assert_eq!(
            written.newest("a", Some(&1)),
            Some(2),
            "an older cache keeps it"
        );
        written.settle("a", || Some(2));
        assert_eq!(
            written.newest("a", Some(&1)),
            Some(1),
            "forgotten once shown"
        );
        written.settle("b", || {
            unreachable!("nothing remembered of b: nothing to read")
        });
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
}
