//! Builders for the objects the reconcilers read: the shipped sensitivity classes, a hub
//! SovereignCluster (`connection.local: true`) and a member, hub Nodes in labelled pools,
//! workloads, and Deployments on the hub (Sovra's children and someone else's).

use super::super::deployment::desired_deployment;
use crate::crd::{SensitivityClass, SovereignCluster, SovereignWorkload, SovereignWorkloadStatus};
use crate::policy::{SOVEREIGN_NODE_LABEL, Target};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub const POOL_LABEL: &str = "sovra.dev/node-pool";
pub const NAMESPACE: &str = "ministry-fin";
pub const HUB: &str = "rijkscloud-nl";

/// `value` as a `K`; the builders write objects as the API server would send them.
pub fn typed<K: DeserializeOwned>(value: Value) -> K {
    serde_json::from_value(value).expect("a valid object")
}

/// `object` as JSON, to answer a request with.
pub fn json_of<K: Serialize>(object: &K) -> Value {
    serde_json::to_value(object).expect("serializable")
}

/// The classes Sovra ships in `deploy/sensitivityclasses.yaml` (public, internal,
/// confidential, secret).
pub fn shipped_classes() -> Vec<SensitivityClass> {
    let text = include_str!("../../../deploy/sensitivityclasses.yaml");
    serde_norway::Deserializer::from_str(text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("a SensitivityClass"))
        .collect()
}

/// The hub: in NL, government-operated, certified for `confidential`.
pub fn hub_cluster() -> SovereignCluster {
    typed(json!({
        "apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignCluster",
        "metadata": {"name": HUB, "uid": "uid-hub", "generation": 1, "resourceVersion": "1"},
        "spec": {
            "country": "NL", "region": "eu-west", "operatedBy": "government",
            "provider": {"name": "Rijkscloud", "headquartersCountry": "NL", "extraterritorialExposure": false},
            "certifications": ["BIO", "ISO27001", "EUCS-High", "Haven"],
            "connection": {"local": true}
        }
    }))
}

/// A member in Germany reached through a kubeconfig Secret, whose status reports `pools`.
pub fn member_cluster(name: &str, pools: Value) -> SovereignCluster {
    typed(json!({
        "apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignCluster",
        "metadata": {"name": name, "uid": format!("uid-{name}"), "generation": 1},
        "spec": {
            "country": "DE", "operatedBy": "government",
            "provider": {"name": "Bundescloud", "headquartersCountry": "DE", "extraterritorialExposure": false},
            "certifications": ["BIO", "C5"],
            "connection": {"kubeconfigSecretRef": {"name": format!("{name}-kubeconfig")}}
        },
        "status": {"sovereignPools": 1, "nodePools": pools}
    }))
}

/// A hub Node in `pool`, in NL; `sovereign` sets the administrator's label, `dedicated_to` the
/// `sovra.dev/sensitivity=<class>:NoSchedule` taint.
pub fn node(name: &str, pool: &str, sovereign: bool, dedicated_to: Option<&str>) -> Node {
    let mut labels = json!({POOL_LABEL: pool, "sovra.dev/country": "NL"});
    if sovereign {
        labels[SOVEREIGN_NODE_LABEL] = json!("true");
    }
    let taints: Vec<Value> = dedicated_to
        .map(
            |class| json!({"key": "sovra.dev/sensitivity", "value": class, "effect": "NoSchedule"}),
        )
        .into_iter()
        .collect();
    typed(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels, "resourceVersion": "1"},
        "spec": {"taints": taints}
    }))
}

/// A workload of `class` in the ministry's namespace, one replica, not yet seen by Sovra (no
/// finalizer, no status).
pub fn workload(name: &str, class: &str) -> SovereignWorkload {
    typed(workload_json(name, class))
}

pub fn workload_json(name: &str, class: &str) -> Value {
    json!({
        "apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignWorkload",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": format!("uid-{name}"),
                     "generation": 1, "resourceVersion": "7"},
        "spec": {
            "sensitivity": class, "replicas": 1, "placement": {},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": format!("registry.example.nl/{name}:1")}]}}
        }
    })
}

/// `workload` as it is once Sovra's finalizer is on it.
pub fn finalized(mut workload: SovereignWorkload) -> SovereignWorkload {
    workload.metadata.finalizers = Some(vec![super::super::FINALIZER.to_owned()]);
    workload
}

/// `workload` being deleted (it keeps its finalizers).
pub fn deleting(mut workload: SovereignWorkload) -> SovereignWorkload {
    workload.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
    workload
}

/// `workload` whose status says it runs on the hub, on `pools`.
pub fn placed_on(mut workload: SovereignWorkload, pools: &[&str]) -> SovereignWorkload {
    let status: SovereignWorkloadStatus = typed(json!({
        "observedGeneration": 1, "phase": "Placed", "replicas": 1, "readyReplicas": 1,
        "ready": "1/1", "clusters": HUB,
        "placements": [{"cluster": HUB, "country": "NL", "nodePools": pools,
                        "replicas": 1, "readyReplicas": 1}]
    }));
    workload.status = Some(status);
    workload
}

/// The child Sovra applies on the hub for `workload` on `pools`, as the hub's cache holds it.
pub fn sovra_child(workload: &SovereignWorkload, pools: &[&str]) -> Deployment {
    let target = Target {
        cluster: HUB.into(),
        country: "NL".into(),
        pools: pools.iter().map(|p| (*p).to_owned()).collect(),
        replicas: 1,
        dedicated_to: None,
        violations: vec![],
        reachable: true,
    };
    let mut child =
        desired_deployment(workload, &target, POOL_LABEL, true).expect("a valid template");
    child.metadata.generation = Some(1);
    child
}

/// A Deployment of the workload's name that someone else made with kubectl.
pub fn foreign_deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": "uid-foreign", "generation": 3,
                     "labels": {"app": name},
                     "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update",
                                        "apiVersion": "apps/v1"}]},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": "nginx"}]}}}
    })
}

/// The pools requested in an applied Deployment's node affinity (`sovra.dev/node-pool In`).
pub fn pinned_pools(deployment: &Value) -> Value {
    let terms = &deployment["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"];
    terms[0]["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["key"] == POOL_LABEL)
        .map(|e| e["values"].clone())
        .unwrap_or(Value::Null)
}

/// The condition of `type_` in a status body.
pub fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .unwrap_or(&Value::Null)
}
