//! The world index (classes, clusters and the hub's Nodes, as decisions read them), fed watch
//! events the way the reflectors feed it, and read back through its snapshot.

use super::super::fleet::Fleet;
use super::super::world::World;
use super::fixtures::test_fleet;
use super::objects::{HUB, POOL_LABEL, hub_cluster, member_cluster, node, shipped_classes, typed};
use crate::crd::{SensitivityClass, SovereignCluster};
use crate::policy::{NodeFacts, NodePool, Reachability};
use k8s_openapi::api::core::v1::Node;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher::Event;
use serde_json::json;
use std::sync::Arc;

/// A world over empty caches, with the writers that feed them.
struct Index {
    world: World,
    fleet: Fleet,
    classes: Writer<DeserializeGuard<SensitivityClass>>,
    clusters: Writer<DeserializeGuard<SovereignCluster>>,
    nodes: Writer<NodeFacts>,
}

impl Index {
    fn new() -> Self {
        let (classes_store, classes) = reflector::store();
        let (clusters_store, clusters) = reflector::store();
        let (nodes_store, nodes) = reflector::store();
        Self {
            world: World::new(
                classes_store,
                clusters_store,
                nodes_store,
                POOL_LABEL.into(),
            ),
            fleet: test_fleet(),
            classes,
            clusters,
            nodes,
        }
    }

    /// The first list of every watch, as the watcher delivers it: Init, one InitApply per
    /// object, InitDone.
    fn listed(
        mut self,
        classes: Vec<SensitivityClass>,
        clusters: Vec<DeserializeGuard<SovereignCluster>>,
        nodes: Vec<Node>,
    ) -> Self {
        self.classes.apply_watcher_event(&Event::Init);
        for class in classes {
            let event = Event::InitApply(DeserializeGuard(Ok(class)));
            self.classes.apply_watcher_event(&event);
        }
        self.classes.apply_watcher_event(&Event::InitDone);
        self.clusters.apply_watcher_event(&Event::Init);
        for cluster in clusters {
            self.clusters
                .apply_watcher_event(&Event::InitApply(cluster));
        }
        self.clusters.apply_watcher_event(&Event::InitDone);
        self.nodes.apply_watcher_event(&Event::Init);
        for node in nodes {
            self.nodes
                .apply_watcher_event(&Event::InitApply(NodeFacts::from_node(&node)));
        }
        self.nodes.apply_watcher_event(&Event::InitDone);
        self.world.invalidate();
        self
    }

    fn fingerprint(&self) -> u64 {
        self.world.fingerprint(&self.fleet)
    }
}

fn valid(cluster: SovereignCluster) -> DeserializeGuard<SovereignCluster> {
    DeserializeGuard(Ok(cluster))
}

fn hub_nodes() -> Vec<Node> {
    vec![
        node("gov-general-0", "gov-general", true, None),
        node(
            "gov-confidential-0",
            "gov-confidential",
            true,
            Some("confidential"),
        ),
        node("build-agents-0", "build-agents", false, None),
    ]
}

#[test]
fn classes_clusters_and_nodes_fed_as_watch_events_make_the_snapshot() {
    let index = Index::new().listed(shipped_classes(), vec![valid(hub_cluster())], hub_nodes());
    let snapshot = index.world.snapshot(&index.fleet);

    let classes: Vec<&str> = snapshot.classes.keys().map(String::as_str).collect();
    assert_eq!(classes, ["confidential", "internal", "public", "secret"]);
    assert_eq!(snapshot.hub.as_deref(), Some(HUB));
    let pools: Vec<(&str, i32, Option<&str>)> = snapshot
        .hub_pools
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.sovereign_nodes,
                p.dedicated_to.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        pools,
        [
            ("build-agents", 0, None),
            ("gov-confidential", 1, Some("confidential")),
            ("gov-general", 1, None)
        ]
    );
    let [hub] = snapshot.clusters() else {
        panic!("one cluster: {:?}", snapshot.clusters());
    };
    assert_eq!(hub.name, HUB);
    assert_eq!(
        hub.reachability,
        Reachability::Reachable,
        "the hub reaches itself"
    );
    assert_eq!(hub.pools, snapshot.hub_pools);
}

#[test]
fn an_undeserializable_cluster_is_left_out_of_decisions_but_keeps_its_name() {
    let broken: DeserializeGuard<SovereignCluster> = typed(json!({
        "apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignCluster",
        "metadata": {"name": "broken-cluster"},
        "spec": {"country": 31, "connection": {"local": false}}
    }));
    assert!(broken.0.is_err());
    let index = Index::new().listed(vec![], vec![valid(hub_cluster()), broken], hub_nodes());

    let snapshot = index.world.snapshot(&index.fleet);
    let names: Vec<&str> = snapshot
        .clusters()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, [HUB]);
    assert_eq!(
        index.world.cluster_names().into_iter().collect::<Vec<_>>(),
        ["broken-cluster", HUB],
        "its children stay in reach"
    );
}

#[test]
fn a_deleted_class_disappears_once_the_world_is_invalidated() {
    let mut index = Index::new().listed(shipped_classes(), vec![valid(hub_cluster())], hub_nodes());
    assert!(
        index
            .world
            .snapshot(&index.fleet)
            .classes
            .contains_key("secret")
    );
    let secret = shipped_classes()
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some("secret"))
        .expect("the shipped secret class");
    index
        .classes
        .apply_watcher_event(&Event::Delete(DeserializeGuard(Ok(secret))));
    assert!(
        index
            .world
            .snapshot(&index.fleet)
            .classes
            .contains_key("secret"),
        "derived once per change announced, not per read"
    );
    index.world.invalidate();
    let snapshot = index.world.snapshot(&index.fleet);
    assert!(!snapshot.classes.contains_key("secret"));
    assert_eq!(snapshot.classes.len(), 3);
}

#[test]
fn the_snapshot_is_shared_until_the_world_is_invalidated() {
    let mut index = Index::new().listed(shipped_classes(), vec![valid(hub_cluster())], hub_nodes());
    let first = index.world.snapshot(&index.fleet);
    assert!(Arc::ptr_eq(&first, &index.world.snapshot(&index.fleet)));
    index
        .nodes
        .apply_watcher_event(&Event::Apply(NodeFacts::from_node(&node(
            "gov-spare-0",
            "gov-spare",
            true,
            None,
        ))));
    assert!(Arc::ptr_eq(&first, &index.world.snapshot(&index.fleet)));
    index.world.invalidate();
    let second = index.world.snapshot(&index.fleet);
    assert!(!Arc::ptr_eq(&first, &second));
    assert!(second.hub_pools.iter().any(|p| p.name == "gov-spare"));
    assert!(Arc::ptr_eq(&second, &index.world.snapshot(&index.fleet)));
}

#[test]
fn a_member_without_a_node_cache_is_decided_from_the_pools_its_status_reports() {
    let member = member_cluster(
        "bund-de-1",
        json!([{"name": "bund-secure", "nodes": 3, "sovereignNodes": 3, "sovereign": true,
                "country": "DE"}]),
    );
    let index = Index::new().listed(
        vec![],
        vec![valid(hub_cluster()), valid(member)],
        hub_nodes(),
    );

    let snapshot = index.world.snapshot(&index.fleet);
    let member = snapshot
        .clusters()
        .iter()
        .find(|c| c.name == "bund-de-1")
        .expect("the member is decided on");
    assert_eq!(
        member.pools,
        [NodePool {
            name: "bund-secure".into(),
            nodes: 3,
            sovereign_nodes: 3,
            country: Some("DE".into()),
            ..NodePool::default()
        }]
    );
    assert_eq!(
        member.reachability,
        Reachability::Unreachable("Sovra has not connected to it yet".into())
    );
    let names: Vec<&str> = snapshot
        .clusters()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["bund-de-1", HUB], "sorted by name");
}

#[test]
fn a_node_heartbeat_leaves_the_fingerprint_alone_and_a_label_change_moves_it() {
    let mut index = Index::new().listed(shipped_classes(), vec![valid(hub_cluster())], hub_nodes());
    let before = index.fingerprint();

    let mut heartbeat = node("gov-general-0", "gov-general", true, None);
    heartbeat.metadata.resource_version = Some("2".into());
    heartbeat.status = Some(typed(json!({
        "conditions": [{"type": "Ready", "status": "True",
                        "lastHeartbeatTime": "2025-06-01T12:00:00Z"}]
    })));
    index
        .nodes
        .apply_watcher_event(&Event::Apply(NodeFacts::from_node(&heartbeat)));
    index.world.invalidate();
    assert_eq!(
        index.fingerprint(),
        before,
        "a heartbeat changes no decision"
    );

    let relabelled = node("gov-general-0", "gov-general", false, None);
    index
        .nodes
        .apply_watcher_event(&Event::Apply(NodeFacts::from_node(&relabelled)));
    index.world.invalidate();
    assert_ne!(index.fingerprint(), before, "a lost sovereign label does");
}
