//! The world a decision depends on: classes, clusters and the hub's nodes, kept by reflectors.
//! Nodes are stripped to what placement reads (labels, taints) so the cache stays small.
//!
//! What decisions read is derived once per change of the caches ([`World::snapshot`]), not once
//! per reconcile: a world change wakes every workload, and each would otherwise rebuild the
//! same node pools from every Node.

use super::caches::pools_of;
use super::fleet::Fleet;
use super::member_health::Health;
use super::pool_status::pools_from_status;
use crate::crd::{SensitivityClass, SensitivityClassSpec, SovereignCluster};
use crate::policy::{Candidates, ClusterFacts, NodeFacts, NodePool, Reachability, cluster_facts};
use crate::sync::lock;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::Store;
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct World {
    pub classes: Store<DeserializeGuard<SensitivityClass>>,
    pub clusters: Store<DeserializeGuard<SovereignCluster>>,
    pub nodes: Store<NodeFacts>,
    pub pool_label: String,
    /// Bumped after every cache event; the snapshot is rebuilt when it moved.
    generation: Arc<AtomicU64>,
    cached: Arc<Mutex<Option<Cached>>>,
}

/// A snapshot and the generation it was derived at.
type Cached = (u64, Arc<Snapshot>);

/// Everything a placement decision reads, derived from the caches at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Valid classes by name. An undeserializable class is absent: workloads of that class are
    /// refused (ClassNotFound) rather than placed against requirements nobody can read.
    pub classes: BTreeMap<String, SensitivityClassSpec>,
    /// Placement facts of every valid SovereignCluster, sorted by name, with what the engine
    /// derives from them once per world ([`Candidates`]).
    pub candidates: Candidates,
    /// The SovereignCluster that is the hub itself (`connection.local: true`).
    pub hub: Option<String>,
    /// Node pools of the hub, from its Nodes.
    pub hub_pools: Vec<NodePool>,
}

impl Snapshot {
    /// Placement facts of every valid SovereignCluster, sorted by name.
    pub fn clusters(&self) -> &[ClusterFacts] {
        self.candidates.clusters()
    }
}

impl World {
    pub fn new(
        classes: Store<DeserializeGuard<SensitivityClass>>,
        clusters: Store<DeserializeGuard<SovereignCluster>>,
        nodes: Store<NodeFacts>,
        pool_label: String,
    ) -> Self {
        Self {
            classes,
            clusters,
            nodes,
            pool_label,
            generation: Arc::default(),
            cached: Arc::default(),
        }
    }

    /// Called after each cache event: the next [`World::snapshot`] derives anew.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The derived world, rebuilt only when a cache (or a member's health, which `fleet`
    /// announces as a world change) changed since the last call.
    pub fn snapshot(&self, fleet: &Fleet) -> Arc<Snapshot> {
        let generation = self.generation.load(Ordering::SeqCst);
        let mut cached = lock(&self.cached);
        if let Some((at, snapshot)) = cached.as_ref()
            && *at == generation
        {
            return snapshot.clone();
        }
        let snapshot = Arc::new(self.derive(fleet));
        *cached = Some((generation, snapshot.clone()));
        snapshot
    }

    fn derive(&self, fleet: &Fleet) -> Snapshot {
        let classes = self
            .classes
            .state()
            .iter()
            .filter_map(|guard| guard.0.as_ref().ok())
            .filter(|c| c.metadata.deletion_timestamp.is_none())
            .map(|c| (c.metadata.name.clone().unwrap_or_default(), c.spec.clone()))
            .collect();

        let hub_pools = pools_of(&self.nodes, &self.pool_label);

        // The hub is always reachable from inside itself. A member is reachable when its
        // last probe succeeded; until its Node cache has synced (or while it cannot be
        // reached) its pools are the ones its status last reported, so that a placement
        // there is kept rather than dropped for lack of pools.
        let mut clusters: Vec<ClusterFacts> = self
            .clusters
            .state()
            .iter()
            .filter_map(|guard| guard.0.as_ref().ok())
            .filter(|c| c.metadata.deletion_timestamp.is_none())
            .map(|cluster| {
                if cluster.spec.connection.local {
                    return cluster_facts(cluster, hub_pools.clone(), Reachability::Reachable);
                }
                let name = cluster.metadata.name.as_deref().unwrap_or_default();
                let pools = fleet
                    .pools(name, &self.pool_label)
                    .unwrap_or_else(|| pools_from_status(cluster));
                let reachability = match fleet.health(name) {
                    Some(Health::Reachable { .. }) => Reachability::Reachable,
                    Some(Health::Unreachable { why, .. }) => {
                        Reachability::Unreachable(why.summary().to_owned())
                    }
                    Some(Health::Connecting) | None => {
                        Reachability::Unreachable("Sovra has not connected to it yet".to_owned())
                    }
                };
                cluster_facts(cluster, pools, reachability)
            })
            .collect();
        clusters.sort_by(|a, b| a.name.cmp(&b.name));
        let hub = clusters
            .iter()
            .find(|c| c.spec.connection.local)
            .map(|c| c.name.clone());

        Snapshot {
            classes,
            candidates: Candidates::new(clusters),
            hub,
            hub_pools,
        }
    }

    /// Names of every SovereignCluster that exists, valid or not: a cluster whose object
    /// stopped matching the schema keeps its connection, so its children stay in reach.
    pub fn cluster_names(&self) -> std::collections::BTreeSet<String> {
        self.clusters
            .state()
            .iter()
            .filter_map(|guard| match &guard.0 {
                Ok(cluster) => cluster.metadata.name.clone(),
                Err(invalid) => invalid.metadata.name.clone(),
            })
            .collect()
    }

    /// Changes whenever anything a decision reads changes, and only then: node heartbeats and
    /// status churn do not wake every workload.
    pub fn fingerprint(&self, fleet: &Fleet) -> u64 {
        let mut hasher = DefaultHasher::new();
        let snapshot = self.snapshot(fleet);
        format!("{:?}{:?}", snapshot.classes, snapshot.clusters()).hash(&mut hasher);
        hasher.finish()
    }
}
