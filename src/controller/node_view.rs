//! A Node as the caches keep it: the [`NodeFacts`] placement reads (name, labels, taints).
//!
//! The caches hold every Node of the hub and of each member (1,000 in the fleet bench). A
//! k8s-openapi `Node` lays out its spec and status in place, about 1.4 KB even when emptied,
//! before its metadata's maps; the watch reads a [`NodeObject`] (the status, with its images and
//! heartbeats, is never deserialized) and the caches keep the facts made of it.

use super::cache_view::{ViewKey, lookup_by_name};
use crate::policy::{NodeFacts, Taint};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

/// A Node as the watch reads it (a Node's resource: `v1` `nodes`): the whole metadata, and of
/// the spec only the taints.
#[derive(Clone, Debug, Default, Deserialize, kube::Resource)]
#[resource(inherit = Node)]
pub struct NodeObject {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<NodeTaints>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct NodeTaints {
    #[serde(default)]
    taints: Option<Vec<k8s_openapi::api::core::v1::Taint>>,
}

impl From<NodeObject> for NodeFacts {
    fn from(node: NodeObject) -> Self {
        let taints = node.spec.and_then(|spec| spec.taints).unwrap_or_default();
        Self {
            name: node.metadata.name.unwrap_or_default(),
            labels: node.metadata.labels.unwrap_or_default(),
            taints: taints
                .into_iter()
                .map(|t| Taint {
                    key: t.key,
                    value: t.value,
                    effect: t.effect,
                })
                .collect(),
        }
    }
}

// The caches find a Node by name. Its UID and resource version are not kept (nothing reads
// them from a cached Node), so its cache key holds neither.
lookup_by_name!(NodeFacts, Node);

impl ViewKey for NodeFacts {
    fn view_name(&self) -> &str {
        &self.name
    }

    fn view_namespace(&self) -> Option<&str> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cached_node_keeps_its_name_labels_and_taints_as_placement_reads_them() {
        let node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "n-1", "uid": "u", "resourceVersion": "7",
                "labels": {"sovra.dev/node-pool": "general"},
                "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
            "spec": {"podCIDR": "10.0.0.0/24",
                "taints": [{"key": "dedicated", "value": "tax", "effect": "NoSchedule"}]},
            "status": {"images": [{"names": ["registry/app:1"], "sizeBytes": 1}],
                "conditions": [{"type": "Ready", "status": "True"}]},
        });
        let whole: Node = serde_json::from_value(node.clone()).expect("a Node reads");
        let object: NodeObject = serde_json::from_value(node).expect("a Node reads");
        assert_eq!(NodeFacts::from(object), NodeFacts::from_node(&whole));
    }
}
