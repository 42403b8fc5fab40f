//! A workload's status stays small however large the fleet: the decision lists the first
//! candidates and groups every rejected one by reason, so a real API server never refuses a
//! status write for exceeding the CRD's bounds, and `kubectl describe` stays readable.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sovra::controller::status::workload_status;
use sovra::crd::{
    ClusterConnection, OperatedBy, Provider, SensitivityClassSpec, SovereignClusterSpec,
    SovereignWorkload, SovereignWorkloadSpec, bounds,
};
use sovra::policy::{
    Candidates, ClusterFacts, EU_COUNTRIES, NodePool, Reachability, decide_for_workload,
};
use std::collections::BTreeMap;

const STATUS_LIMIT: usize = 8 * 1024;

/// 100 clusters of 100 providers, each with 10 pools of which every third is not sovereign and
/// every fifth is dedicated to `secret`.
fn fleet() -> Vec<ClusterFacts> {
    (0..100)
        .map(|c| ClusterFacts {
            name: format!("cluster-{c:03}-{}", "x".repeat(40)),
            spec: SovereignClusterSpec {
                country: EU_COUNTRIES[c % EU_COUNTRIES.len()].to_owned(),
                region: Some("eu-west".to_owned()),
                provider: Provider {
                    name: format!("Provider number {c} of a long name"),
                    headquarters_country: if c % 2 == 0 { "NL" } else { "US" }.to_owned(),
                    extraterritorial_exposure: c % 2 == 1,
                    parent: None,
                },
                operated_by: OperatedBy::EuProvider,
                certifications: Vec::new(),
                connection: ClusterConnection {
                    local: c == 0,
                    kubeconfig_secret_ref: None,
                },
            },
            reachability: Reachability::Reachable,
            pools: (0..10)
                .map(|p| NodePool {
                    name: format!("pool-{p:02}-{}", "y".repeat(30)),
                    nodes: 3,
                    sovereign_nodes: if p % 3 == 0 { 0 } else { 3 },
                    country: None,
                    country_conflict: false,
                    dedicated_to: (p % 5 == 0).then(|| "secret".to_owned()),
                    notes: Vec::new(),
                })
                .collect(),
        })
        .collect()
}

fn workload(required_countries: &[&str]) -> SovereignWorkload {
    let mut workload = SovereignWorkload::new(
        "tax",
        SovereignWorkloadSpec {
            sensitivity: "internal".to_owned(),
            replicas: 3,
            template: PodTemplateSpec {
                metadata: None,
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "app".to_owned(),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            }
            .into(),
            placement: Default::default(),
        },
    );
    workload.spec.placement.required_countries =
        required_countries.iter().map(|c| (*c).to_owned()).collect();
    workload.metadata.namespace = Some("ministry-fin".to_owned());
    workload
}

fn classes() -> BTreeMap<String, SensitivityClassSpec> {
    BTreeMap::from([("internal".to_owned(), SensitivityClassSpec::default())])
}

fn status_bytes(workload: &SovereignWorkload) -> (usize, serde_json::Value) {
    let fleet = fleet();
    let candidates = Candidates::new(fleet);
    let decision = decide_for_workload(workload, &classes(), &candidates);
    let now = Time(jiff::Timestamp::UNIX_EPOCH);
    let status = workload_status(
        workload,
        &decision,
        candidates.clusters(),
        &BTreeMap::new(),
        &now,
    );
    let json = serde_json::to_value(&status).unwrap();
    (serde_json::to_string(&json).unwrap().len(), json)
}

#[test]
fn a_placed_workload_status_stays_under_8_kib_at_100_clusters_of_10_pools() {
    let (size, status) = status_bytes(&workload(&[]));
    println!("placed: status is {size} bytes");
    assert_eq!(status["phase"], "Placed");
    assert!(size < STATUS_LIMIT, "{size} bytes: {status:#}");
    let decision = &status["decision"];
    assert_eq!(decision["counts"]["clusters"], 100);
    assert_eq!(decision["counts"]["nodePools"], 1000);
    let listed = decision["candidates"].as_array().unwrap();
    assert_eq!(listed.len(), bounds::LISTED_CANDIDATES as usize);
    assert!(
        listed.iter().all(|c| c["accepted"] == true),
        "accepted candidates are listed first"
    );
}

#[test]
fn a_refused_workload_status_stays_under_8_kib_and_counts_every_rejection() {
    // Only Iceland: no cluster of the fleet is there, so every cluster is rejected.
    let (size, status) = status_bytes(&workload(&["IS"]));
    println!("refused: status is {size} bytes");
    assert_eq!(status["phase"], "Refused");
    assert!(size < STATUS_LIMIT, "{size} bytes: {status:#}");
    let groups = status["decision"]["rejected"].as_array().unwrap();
    let not_requested = groups
        .iter()
        .find(|g| g["reason"] == "CountryNotRequested")
        .unwrap();
    assert_eq!(not_requested["count"], 100, "every cluster is counted");
    assert_eq!(
        not_requested["examples"].as_array().unwrap().len(),
        bounds::GROUP_EXAMPLES as usize
    );
    let reasons = status["decision"]["reasons"].as_array().unwrap();
    assert!(reasons.len() <= bounds::DECISION_REASONS as usize);
}
