//! The fleet under test: a hub with Sovra's CRDs and classes, 10 member clusters with 100
//! nodes each in 10 node pools, and the SovereignWorkloads to place.

use super::support;
use serde_json::{Value, json};
use test_apiserver::TestApiServer;

pub const MEMBERS: usize = 10;
pub const POOLS_PER_MEMBER: usize = 10;
pub const NODES_PER_POOL: usize = 10;
pub const COUNTRIES: [&str; MEMBERS] = ["DE", "FR", "BE", "AT", "NL", "SE", "FI", "DK", "IE", "ES"];
/// Where the workloads live; the replay's copies go to [`REPLAY_NAMESPACE`], a name of the same
/// length, so that retargeted bodies keep their size.
pub const NAMESPACE: &str = "bench";
pub const REPLAY_NAMESPACE: &str = "rerun";
pub const OPERATOR_NAMESPACE: &str = "sovra-system";
/// The last pool of every member is dedicated (tainted) to `confidential`.
const CONFIDENTIAL_POOL: usize = POOLS_PER_MEMBER - 1;

pub fn member_name(i: usize) -> String {
    format!("member-{}", COUNTRIES[i].to_lowercase())
}

pub fn workload_name(i: usize) -> String {
    format!("w-{i:05}")
}

/// Members with an even index hold BIO and C5 and no extraterritorial exposure: they meet
/// `confidential`; the others meet `public` and `internal` only.
fn certified(member: usize) -> bool {
    member.is_multiple_of(2)
}

pub fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

pub async fn hub() -> TestApiServer {
    let hub = TestApiServer::start().await;
    for crd in sovra::crd::all() {
        hub.put(serde_json::to_value(crd).unwrap()).unwrap();
    }
    for class in support::yaml_objects("deploy/sensitivityclasses.yaml") {
        hub.put(class).unwrap();
    }
    for ns in [NAMESPACE, REPLAY_NAMESPACE, OPERATOR_NAMESPACE] {
        hub.put(namespace(ns)).unwrap();
    }
    hub
}

fn node(member: usize, pool: usize, n: usize) -> Value {
    let taints: Vec<Value> = (pool == CONFIDENTIAL_POOL)
        .then(|| json!({"key": "sovra.dev/sensitivity", "value": "confidential", "effect": "NoSchedule"}))
        .into_iter()
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": format!("pool-{pool}-node-{n}"), "labels": {
            support::POOL_LABEL: format!("pool-{pool}"),
            "sovra.dev/country": COUNTRIES[member],
            support::SOVEREIGN: "true"}},
        "spec": {"taints": taints}
    })
}

/// Starts member `i`, with its nodes, and registers it with the hub.
pub async fn member(hub: &TestApiServer, i: usize) -> TestApiServer {
    let member = TestApiServer::start().await;
    for pool in 0..POOLS_PER_MEMBER {
        for n in 0..NODES_PER_POOL {
            member.put(node(i, pool, n)).unwrap();
        }
    }
    let certifications = if certified(i) {
        json!(["BIO", "C5"])
    } else {
        json!(["ISO27001"])
    };
    let name = member_name(i);
    let cluster = json!({
        "apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignCluster",
        "metadata": {"name": name},
        "spec": {
            "country": COUNTRIES[i], "operatedBy": "eu-provider",
            "provider": {"name": format!("EU Cloud {}", COUNTRIES[i]), "headquartersCountry": COUNTRIES[i],
                         "extraterritorialExposure": false},
            "certifications": certifications,
            "connection": {"kubeconfigSecretRef": {"name": format!("{name}-kubeconfig")}}
        }
    });
    support::join(hub, cluster, &member);
    member
}

/// Workload `i`: 40% public, 40% internal, 20% confidential; a third require a country, the
/// rest prefer one, rotating over the members that meet the class, so that they spread. Each
/// member is its own provider, so a workload that requires a country has no exit alternative,
/// and Sovra warns about it once (a NoExitAlternative Event beside its Placed one).
pub fn workload(i: usize, namespace: &str) -> Value {
    let (class, member) = match i % 10 {
        0..=3 => ("public", (i / 10) % MEMBERS),
        4..=7 => ("internal", (i / 10 + 3) % MEMBERS),
        _ => ("confidential", ((i / 10) % (MEMBERS / 2)) * 2),
    };
    let country = COUNTRIES[member];
    let placement = if i.is_multiple_of(3) {
        json!({"requiredCountries": [country]})
    } else {
        json!({"preferredCountries": [country]})
    };
    let name = workload_name(i);
    json!({
        "apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignWorkload",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "sensitivity": class, "replicas": 2, "placement": placement,
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": "registry.example.eu/app:1"}]}}
        }
    })
}
