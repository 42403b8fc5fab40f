//! A Node as the caches keep it: the [`NodeFacts`] placement reads (name, labels, taints).
//!
//! The caches hold every Node of the hub and of each member (1,000 in the fleet bench). A
//! k8s-openapi `Node` lays out its spec and status in place, about 1.4 KB even when emptied,
//! before its metadata's maps; the watch reads a [`NodeObject`] (the status, with its images and
//! heartbeats, is never deserialized) and the caches keep the facts made of it.

use crate::policy::{NodeFacts, Taint};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::watcher;
use serde::Deserialize;
use std::borrow::Cow;

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

/// A watch event of a [`NodeObject`] as the [`NodeFacts`] the caches keep.
pub fn facts_event(event: watcher::Event<NodeObject>) -> watcher::Event<NodeFacts> {
    match event {
        watcher::Event::Apply(node) => watcher::Event::Apply(node.into()),
        watcher::Event::Delete(node) => watcher::Event::Delete(node.into()),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(node) => watcher::Event::InitApply(node.into()),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// The caches find a Node by name. Its UID and resource version are not kept (nothing reads
/// them from a cached Node), so its cache key holds neither.
impl kube::runtime::reflector::Lookup for NodeFacts {
    type DynamicType = ();

    fn kind(_: &()) -> Cow<'_, str> {
        <Node as Resource>::kind(&())
    }
    fn group(_: &()) -> Cow<'_, str> {
        <Node as Resource>::group(&())
    }
    fn version(_: &()) -> Cow<'_, str> {
        <Node as Resource>::version(&())
    }
    fn plural(_: &()) -> Cow<'_, str> {
        <Node as Resource>::plural(&())
    }
    fn name(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.name))
    }
    fn namespace(&self) -> Option<Cow<'_, str>> {
        None
    }
    fn resource_version(&self) -> Option<Cow<'_, str>> {
        None
    }
    fn uid(&self) -> Option<Cow<'_, str>> {
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
