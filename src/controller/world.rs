//! The world a decision depends on: classes, clusters and the hub's nodes, kept by reflectors.
//! Nodes are stripped to what placement reads (labels, taints) so the cache stays small.

use crate::crd::{SensitivityClass, SensitivityClassSpec, SovereignCluster};
use crate::policy::{ClusterFacts, NodeFacts, Reachability, cluster_facts};
use k8s_openapi::api::core::v1::Node;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::Store;
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

#[derive(Clone)]
pub struct World {
    pub classes: Store<DeserializeGuard<SensitivityClass>>,
    pub clusters: Store<DeserializeGuard<SovereignCluster>>,
    pub nodes: Store<Node>,
    pub pool_label: String,
}

/// Removes everything of a Node that placement does not read.
pub fn strip_node(node: &mut Node) {
    node.metadata.managed_fields = None;
    node.metadata.annotations = None;
    node.status = None;
    if let Some(spec) = node.spec.as_mut() {
        let taints = spec.taints.take();
        *spec = Default::default();
        spec.taints = taints;
    }
}

impl World {
    /// Valid classes by name. An undeserializable class is absent: workloads of that class are
    /// refused (ClassNotFound) rather than placed against requirements nobody can read.
    pub fn classes(&self) -> BTreeMap<String, SensitivityClassSpec> {
        self.classes
            .state()
            .iter()
            .filter_map(|guard| guard.0.as_ref().ok())
            .filter(|c| c.metadata.deletion_timestamp.is_none())
            .map(|c| (c.metadata.name.clone().unwrap_or_default(), c.spec.clone()))
            .collect()
    }

    /// Name of the SovereignCluster that is the hub itself (`connection.local: true`).
    pub fn hub_name(&self) -> Option<String> {
        let mut hubs: Vec<String> = self
            .clusters
            .state()
            .iter()
            .filter_map(|guard| guard.0.as_ref().ok())
            .filter(|c| c.spec.connection.local && c.metadata.deletion_timestamp.is_none())
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        hubs.sort();
        hubs.into_iter().next()
    }

    pub fn hub_nodes(&self) -> Vec<NodeFacts> {
        let mut nodes: Vec<NodeFacts> = self
            .nodes
            .state()
            .iter()
            .map(|n| NodeFacts::from_node(n))
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        nodes
    }

    /// Placement facts for every valid SovereignCluster. The hub (`connection.local`) is always
    /// reachable from inside itself; member clusters are reached through kubeconfig Secrets.
    pub fn cluster_facts(&self) -> Vec<ClusterFacts> {
        let hub_nodes = self.hub_nodes();
        let mut facts: Vec<ClusterFacts> = self
            .clusters
            .state()
            .iter()
            .filter_map(|guard| guard.0.as_ref().ok())
            .filter(|c| c.metadata.deletion_timestamp.is_none())
            .map(|cluster| {
                if cluster.spec.connection.local {
                    cluster_facts(
                        cluster,
                        &hub_nodes,
                        &self.pool_label,
                        Reachability::Reachable,
                    )
                } else {
                    cluster_facts(
                        cluster,
                        &[],
                        &self.pool_label,
                        Reachability::Unreachable(
                            "member cluster connections are not enabled in this build".to_owned(),
                        ),
                    )
                }
            })
            .collect();
        facts.sort_by(|a, b| a.name.cmp(&b.name));
        facts
    }

    /// Changes whenever anything a decision reads changes, and only then: node heartbeats and
    /// status churn do not wake every workload.
    pub fn fingerprint(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        for (name, class) in self.classes() {
            name.hash(&mut hasher);
            format!("{class:?}").hash(&mut hasher);
        }
        for cluster in self.cluster_facts() {
            format!("{cluster:?}").hash(&mut hasher);
        }
        hasher.finish()
    }
}
