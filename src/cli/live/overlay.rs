//! The hub's objects with `-f` overrides laid over them (pure): an object of the same kind,
//! namespace and name replaces the hub's, any other is added. A replacement without a status
//! keeps the hub object's status, so a tightened class is compared with the placements the
//! workloads really have, and a changed cluster keeps the pools and reachability last recorded.
//!
//! Pools come from the cluster's status (as the operator records them, through its one
//! mapping), or from the Nodes in the override files when some belong to the cluster (the
//! `sovra.dev/cluster` annotation, as offline). A cluster read from the hub is reachable when
//! its `Reachable` condition says so (the hub always is); a cluster only the overrides name is
//! assumed reachable, as offline.

use super::LiveInputs;
use crate::cli::manifests::Manifests;
use crate::cli::world::{World, local_cluster, nodes_of};
use crate::controller::pools_from_status;
use crate::crd::SovereignCluster;
use crate::policy::{ClusterFacts, Reachability, cluster_facts, node_pools};
use kube::Resource;
use std::collections::BTreeSet;

/// The world to decide in, and what the overrides changed.
#[derive(Clone, Debug, Default)]
pub struct Overlaid {
    pub world: World,
    /// One line per override: `SensitivityClass confidential replaced`.
    pub overrides: Vec<String>,
}

pub fn overlay(hub: LiveInputs, overrides: &Manifests, pool_label: &str) -> Overlaid {
    let mut notes = Vec::new();
    let (classes, _) = merge(hub.classes, &overrides.classes, &mut notes, |_, _| {});
    let (clusters, added) = merge(hub.clusters, &overrides.clusters, &mut notes, |new, old| {
        if new.status.is_none() {
            new.status = old.status.clone();
        }
    });
    let (workloads, _) = merge(
        hub.workloads,
        &overrides.workloads,
        &mut notes,
        |new, old| {
            if new.status.is_none() {
                new.status = old.status.clone();
            }
        },
    );
    let clusters: Vec<SovereignCluster> = clusters
        .into_iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .collect();
    let local = local_cluster(&clusters);
    let facts: Vec<ClusterFacts> = clusters
        .iter()
        .map(|cluster| {
            let nodes = nodes_of(&overrides.nodes, cluster, local.as_deref());
            let pools = if nodes.is_empty() {
                pools_from_status(cluster)
            } else {
                node_pools(&nodes, pool_label)
            };
            let name = cluster.metadata.name.clone().unwrap_or_default();
            cluster_facts(cluster, pools, reachability(cluster, added.contains(&name)))
        })
        .collect();
    let workloads = workloads
        .into_iter()
        .filter(|w| w.metadata.deletion_timestamp.is_none())
        .collect();
    Overlaid {
        world: World::new(&classes, facts, workloads),
        overrides: notes,
    }
}

/// Whether placement may count on the cluster, from what the hub recorded.
fn reachability(cluster: &SovereignCluster, only_in_overrides: bool) -> Reachability {
    if cluster.spec.connection.local {
        return Reachability::Reachable;
    }
    let condition = cluster
        .status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .find(|c| c.type_ == "Reachable");
    match condition {
        Some(c) if c.status == "True" => Reachability::Reachable,
        Some(c) => Reachability::Unreachable(format!("{}: {}", c.reason, c.message)),
        None if only_in_overrides => Reachability::Reachable,
        None => Reachability::Unreachable("Sovra has not probed it yet".to_owned()),
    }
}

/// `base` with `over` laid over it; `keep` carries what a replacement keeps of the original.
/// Returns the names of the objects only `over` has.
fn merge<K: Resource<DynamicType = ()> + Clone>(
    mut base: Vec<K>,
    over: &[K],
    notes: &mut Vec<String>,
    keep: impl Fn(&mut K, &K),
) -> (Vec<K>, BTreeSet<String>) {
    let key = |k: &K| (k.meta().namespace.clone(), k.meta().name.clone());
    let mut added = BTreeSet::new();
    for object in over {
        let name = match &object.meta().namespace {
            Some(ns) => format!("{ns}/{}", object.meta().name.as_deref().unwrap_or_default()),
            None => object.meta().name.clone().unwrap_or_default(),
        };
        let mut object = object.clone();
        if let Some(existing) = base.iter_mut().find(|b| key(b) == key(&object)) {
            keep(&mut object, existing);
            *existing = object;
            notes.push(format!("{} {name} replaced", K::kind(&())));
        } else {
            base.push(object);
            notes.push(format!("{} {name} added", K::kind(&())));
            added.insert(name);
        }
    }
    (base, added)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{SensitivityClass, SovereignWorkload};
    use serde_json::{Value, json};

    fn object<K: serde::de::DeserializeOwned>(value: Value) -> K {
        serde_json::from_value(value).unwrap()
    }

    fn class(name: &str, countries: &[&str]) -> SensitivityClass {
        object(
            json!({"apiVersion": "sovra.dev/v1alpha1", "kind": "SensitivityClass",
            "metadata": {"name": name}, "spec": {"location": {"countries": countries}}}),
        )
    }

    fn cluster(name: &str, local: bool, status: Value) -> SovereignCluster {
        let connection = if local {
            json!({"local": true})
        } else {
            json!({"kubeconfigSecretRef": {"name": format!("{name}-kubeconfig")}})
        };
        object(
            json!({"apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignCluster",
            "metadata": {"name": name},
            "spec": {"country": "NL", "operatedBy": "government", "connection": connection,
                     "provider": {"name": "Rijkscloud", "headquartersCountry": "NL", "extraterritorialExposure": false}},
            "status": status}),
        )
    }

    fn pools(names: &[&str]) -> Value {
        let pools: Vec<Value> = names
            .iter()
            .map(|n| json!({"name": n, "nodes": 2, "sovereignNodes": 2, "sovereign": true}))
            .collect();
        json!({"nodePools": pools})
    }

    fn workload(name: &str, placed_on: Option<&str>) -> SovereignWorkload {
        let status = placed_on.map_or(Value::Null, |c| {
            json!({"placements": [{"cluster": c, "country": "NL", "nodePools": ["gov"], "replicas": 1}]})
        });
        object(
            json!({"apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignWorkload",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"sensitivity": "internal", "template": {}}, "status": status}),
        )
    }

    fn hub() -> LiveInputs {
        LiveInputs {
            classes: vec![class("internal", &["NL"]), class("public", &[])],
            clusters: vec![
                cluster("hub", true, pools(&["gov"])),
                cluster(
                    "member",
                    false,
                    json!({"conditions": [{"type": "Reachable", "status": "False",
                    "reason": "ServerUnreachable", "message": "connection refused",
                    "lastTransitionTime": "2025-01-01T00:00:00Z"}]}),
                ),
            ],
            workloads: vec![workload("w", Some("hub"))],
            skipped: Vec::new(),
        }
    }

    #[test]
    fn without_overrides_the_hub_is_decided_as_it_recorded_itself() {
        let world = overlay(hub(), &Manifests::default(), "pool").world;
        assert_eq!(world.classes.len(), 2);
        let hub = &world.clusters[0];
        assert_eq!((hub.name.as_str(), hub.pools.len()), ("hub", 1));
        assert_eq!(hub.reachability, Reachability::Reachable);
        assert_eq!(
            world.clusters[1].reachability,
            Reachability::Unreachable("ServerUnreachable: connection refused".into())
        );
        let placements = &world.workloads[0].status.as_ref().unwrap().placements;
        assert_eq!(placements[0].cluster, "hub");
    }

    /// Manifests as `-f` files give them.
    fn overrides(yaml: &str) -> Manifests {
        let mut manifests = Manifests::default();
        let mut problems = Vec::new();
        manifests.read_str(std::path::Path::new("override.yaml"), yaml, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        manifests
    }

    const OVERRIDES: &str = r#"
apiVersion: sovra.dev/v1alpha1
kind: SensitivityClass
metadata: {name: internal}
spec: {location: {countries: [FR]}}
---
apiVersion: sovra.dev/v1alpha1
kind: SovereignCluster
metadata: {name: new}
spec:
  country: NL
  operatedBy: government
  provider: {name: Other, headquartersCountry: NL, extraterritorialExposure: false}
  connection: {kubeconfigSecretRef: {name: new-kubeconfig}}
---
apiVersion: sovra.dev/v1alpha1
kind: SovereignCluster
metadata: {name: hub}
spec:
  country: BE
  operatedBy: government
  provider: {name: Rijkscloud, headquartersCountry: NL, extraterritorialExposure: false}
  connection: {local: true}
---
apiVersion: sovra.dev/v1alpha1
kind: SovereignWorkload
metadata: {name: w, namespace: ns}
spec: {sensitivity: internal, replicas: 3, template: {}}
---
apiVersion: sovra.dev/v1alpha1
kind: SovereignWorkload
metadata: {name: other, namespace: ns}
spec: {sensitivity: internal, template: {}}
"#;

    #[test]
    fn an_override_replaces_the_object_of_its_name_and_keeps_its_status() {
        let overlaid = overlay(hub(), &overrides(OVERRIDES), "pool");
        assert_eq!(
            overlaid.overrides,
            [
                "SensitivityClass internal replaced",
                "SovereignCluster new added",
                "SovereignCluster hub replaced",
                "SovereignWorkload ns/w replaced",
                "SovereignWorkload ns/other added",
            ]
        );
        let world = overlaid.world;
        assert_eq!(
            world.classes["internal"].location.countries,
            Some(vec!["FR".to_owned()])
        );
        let by_name = |n: &str| world.clusters.iter().find(|c| c.name == n).unwrap();
        assert_eq!(by_name("hub").spec.country, "BE");
        assert_eq!(by_name("hub").pools.len(), 1, "status pools kept");
        assert_eq!(by_name("new").reachability, Reachability::Reachable);
        assert!(by_name("new").pools.is_empty());
        let names: Vec<_> = world
            .workloads
            .iter()
            .map(|w| w.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["other", "w"], "sorted");
        let w = &world.workloads[1];
        assert_eq!(w.spec.replicas, 3);
        assert_eq!(
            w.status.as_ref().unwrap().placements[0].cluster,
            "hub",
            "status kept"
        );
    }

    #[test]
    fn nodes_in_the_overrides_replace_the_pools_a_status_reports() {
        let nodes = overrides(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n  labels: {pool: fresh, sovra.dev/country: NL, node-restriction.kubernetes.io/sovra-sovereign: \"true\"}\n",
        );
        let world = overlay(hub(), &nodes, "pool").world;
        let names: Vec<&str> = world.clusters[0]
            .pools
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["fresh"], "an unannotated Node belongs to the hub");
    }
}
