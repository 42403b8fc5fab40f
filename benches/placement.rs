//! Placement engine throughput: 10,000 workloads x 50 clusters x 10 node pools.
//! Prints candidate (cluster x pool) evaluations per second. Run with `make bench`.
#![allow(clippy::indexing_slicing)] // fixed-size synthetic data, indices are always in range

use sovra::crd::{
    Certification, CertificationRequirements, ClusterConnection, Enforcement, LocationRequirements,
    NodePoolRequirements, OperatedBy, PlacementPreferences, Provider, ProviderRequirements,
    SensitivityClassSpec, SovereignClusterSpec,
};
use sovra::policy::{
    ClusterFacts, CurrentPlacement, NodePool, Reachability, WorkloadRequest, decide,
};
use std::hint::black_box;
use std::time::Instant;

const WORKLOADS: usize = 10_000;
const CLUSTERS: usize = 50;
const POOLS: usize = 10;
const ROUNDS: usize = 3;
const COUNTRIES: [&str; 8] = ["NL", "DE", "FR", "BE", "NO", "US", "SE", "GB"];
const CLASS_NAMES: [&str; 4] = ["public", "internal", "confidential", "secret"];

fn classes() -> Vec<SensitivityClassSpec> {
    let strict =
        |countries: Option<Vec<String>>, operated_by: Vec<OperatedBy>| SensitivityClassSpec {
            description: None,
            enforcement: Enforcement::Enforce,
            location: LocationRequirements {
                countries,
                ..LocationRequirements::default()
            },
            provider: ProviderRequirements {
                headquarters_jurisdictions: vec![
                    sovra::crd::Jurisdiction::Eu,
                    sovra::crd::Jurisdiction::Eea,
                ],
                extraterritorial_exposure_allowed: false,
                operated_by,
            },
            certifications: CertificationRequirements {
                all_of: vec![Certification::Bio],
                any_of: vec![
                    Certification::EucsHigh,
                    Certification::SecNumCloud,
                    Certification::C5,
                ],
            },
            node_pool: NodePoolRequirements { dedicated: true },
            continuity: Default::default(),
        };
    vec![
        SensitivityClassSpec {
            provider: ProviderRequirements {
                extraterritorial_exposure_allowed: true,
                ..Default::default()
            },
            ..Default::default()
        },
        SensitivityClassSpec {
            provider: ProviderRequirements {
                headquarters_jurisdictions: vec![sovra::crd::Jurisdiction::Eu],
                extraterritorial_exposure_allowed: true,
                operated_by: vec![],
            },
            ..Default::default()
        },
        strict(None, vec![]),
        strict(Some(vec!["NL".into()]), vec![OperatedBy::Government]),
    ]
}

fn clusters() -> Vec<ClusterFacts> {
    (0..CLUSTERS)
        .map(|c| {
            let country = COUNTRIES[c % COUNTRIES.len()];
            ClusterFacts {
                name: format!("cluster-{c:02}"),
                spec: SovereignClusterSpec {
                    country: country.into(),
                    region: None,
                    provider: Provider {
                        name: format!("provider-{}", c % 7),
                        headquarters_country: if c % 5 == 0 {
                            "US".into()
                        } else {
                            country.into()
                        },
                        extraterritorial_exposure: c % 5 == 0,
                        parent: None,
                    },
                    operated_by: if c % 3 == 0 {
                        OperatedBy::Government
                    } else {
                        OperatedBy::EuProvider
                    },
                    certifications: if c % 2 == 0 {
                        vec![Certification::Bio, Certification::EucsHigh]
                    } else {
                        vec![Certification::Iso27001]
                    },
                    connection: ClusterConnection {
                        local: c == 0,
                        kubeconfig_secret_ref: None,
                    },
                },
                reachability: Reachability::Reachable,
                pools: (0..POOLS)
                    .map(|p| NodePool {
                        name: format!("pool-{p}"),
                        nodes: 3,
                        sovereign_nodes: if p % 4 == 3 { 0 } else { 3 },
                        country: None,
                        country_conflict: false,
                        dedicated_to: (p % 3 == 0).then(|| CLASS_NAMES[p % 4].to_owned()),
                        notes: vec![],
                    })
                    .collect(),
            }
        })
        .collect()
}

fn main() {
    let classes = classes();
    let clusters = clusters();
    let preferences: Vec<PlacementPreferences> = (0..4)
        .map(|i| PlacementPreferences {
            preferred_countries: if i % 2 == 0 {
                vec!["NL".into()]
            } else {
                vec![]
            },
            clusters: 1 + i % 2,
            ..PlacementPreferences::default()
        })
        .collect();
    let current = [CurrentPlacement {
        cluster: "cluster-12".into(),
        pools: vec!["pool-1".into()],
    }];
    let mut placed = 0usize;
    let started = Instant::now();
    for _ in 0..ROUNDS {
        for w in 0..WORKLOADS {
            let class = w % 4;
            let request = WorkloadRequest {
                class_name: CLASS_NAMES[class],
                class: &classes[class],
                preferences: &preferences[w % preferences.len()],
                replicas: 3,
                current: if w % 10 == 0 { &current } else { &[] },
            };
            let decision = black_box(decide(&request, black_box(&clusters)));
            placed += usize::from(!decision.targets().is_empty());
        }
    }
    let elapsed = started.elapsed();
    let evaluations = (ROUNDS * WORKLOADS * CLUSTERS * POOLS) as f64;
    let decisions = (ROUNDS * WORKLOADS) as f64;
    println!(
        "placement engine: {WORKLOADS} workloads x {CLUSTERS} clusters x {POOLS} pools, {ROUNDS} rounds"
    );
    println!(
        "  decisions:               {:>12.0} /s  ({:.1} us each)",
        decisions / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / decisions
    );
    println!(
        "  candidate evaluations:   {:>12.0} /s  (cluster x pool pairs)",
        evaluations / elapsed.as_secs_f64()
    );
    println!(
        "  one full pass (10k):     {:>12.3} s",
        elapsed.as_secs_f64() / ROUNDS as f64
    );
    println!("  placed: {} of {}", placed / ROUNDS, WORKLOADS);
}
