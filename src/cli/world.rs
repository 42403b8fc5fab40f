//! What `sovra plan` decides from: the classes, the clusters with their node pools, and the
//! workloads, whether read from manifests (offline) or from a hub (`--live`).

use super::manifests::Manifests;
use crate::crd::{SensitivityClass, SensitivityClassSpec, SovereignCluster, SovereignWorkload};
use crate::policy::{ClusterFacts, NodeFacts, Reachability, cluster_facts, node_pools};
use k8s_openapi::api::core::v1::Node;
use std::collections::BTreeMap;

/// Annotation on a Node in plan input naming the SovereignCluster it belongs to. Nodes without
/// it belong to the cluster with `connection.local: true` (the hub).
pub const NODE_CLUSTER_ANNOTATION: &str = "sovra.dev/cluster";

/// The world a plan decides in.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub classes: BTreeMap<String, SensitivityClassSpec>,
    /// Sorted by name.
    pub clusters: Vec<ClusterFacts>,
    /// Sorted by namespace, then name.
    pub workloads: Vec<SovereignWorkload>,
}

impl World {
    /// The world the manifests describe. Offline there is nobody to ask: every cluster is
    /// assumed reachable, and its pools are derived from the Nodes that belong to it.
    pub fn offline(manifests: &Manifests, pool_label: &str) -> Self {
        let local = local_cluster(&manifests.clusters);
        let clusters = manifests
            .clusters
            .iter()
            .map(|cluster| {
                let nodes = nodes_of(&manifests.nodes, cluster, local.as_deref());
                cluster_facts(
                    cluster,
                    node_pools(&nodes, pool_label),
                    Reachability::Reachable,
                )
            })
            .collect();
        Self::new(&manifests.classes, clusters, manifests.workloads.clone())
    }

    /// A world of these objects, sorted; classes and clusters being deleted are not in it.
    pub fn new(
        classes: &[SensitivityClass],
        mut clusters: Vec<ClusterFacts>,
        mut workloads: Vec<SovereignWorkload>,
    ) -> Self {
        clusters.sort_by(|a, b| a.name.cmp(&b.name));
        workloads.sort_by_key(|w| (w.metadata.namespace.clone(), w.metadata.name.clone()));
        Self {
            classes: classes
                .iter()
                .filter(|c| c.metadata.deletion_timestamp.is_none())
                .map(|c| (c.metadata.name.clone().unwrap_or_default(), c.spec.clone()))
                .collect(),
            clusters,
            workloads,
        }
    }
}

/// The name of the hub: the cluster with `connection.local: true`.
pub fn local_cluster(clusters: &[SovereignCluster]) -> Option<String> {
    clusters
        .iter()
        .find(|c| c.spec.connection.local)
        .and_then(|c| c.metadata.name.clone())
}

/// The Nodes of `cluster`: those its name in [`NODE_CLUSTER_ANNOTATION`], and those without
/// the annotation when it is the hub (`local`).
pub fn nodes_of(nodes: &[Node], cluster: &SovereignCluster, local: Option<&str>) -> Vec<NodeFacts> {
    let name = cluster.metadata.name.as_deref();
    nodes
        .iter()
        .filter(|node| {
            let owner = node
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(NODE_CLUSTER_ANNOTATION))
                .map(String::as_str)
                .or(local);
            owner == name
        })
        .map(NodeFacts::from_node)
        .collect()
}
