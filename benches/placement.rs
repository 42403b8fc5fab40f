//! Placement engine throughput: 10,000 workloads x 50 clusters x 10 node pools.
//! Prints candidate (cluster x pool) evaluations per second, decision latency, the time to
//! decide every workload again after one cluster changed, and the same without sharing.
//! Run with `make bench`.
#![allow(clippy::indexing_slicing)] // fixed-size synthetic data, indices are always in range

use sovra::crd::{
    Certification, CertificationRequirements, ClusterConnection, Enforcement, LocationRequirements,
    NodePoolRequirements, OperatedBy, PlacementPreferences, Provider, ProviderRequirements,
    SensitivityClassSpec, SovereignClusterSpec,
};
use sovra::policy::{
    Candidates, ClusterFacts, CurrentPlacement, NodePool, Reachability, WorkloadRequest, decide,
};
use std::hint::black_box;
use std::time::{Duration, Instant};

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

fn preferences() -> Vec<PlacementPreferences> {
    (0..4)
        .map(|i| PlacementPreferences {
            preferred_countries: if i % 2 == 0 {
                vec!["NL".into()]
            } else {
                vec![]
            },
            clusters: 1 + i % 2,
            ..PlacementPreferences::default()
        })
        .collect()
}

/// The fleet's workloads: four classes, four sets of preferences, one in ten placed already.
struct Fleet {
    classes: Vec<SensitivityClassSpec>,
    preferences: Vec<PlacementPreferences>,
    current: [CurrentPlacement; 1],
}

impl Fleet {
    fn request(&self, w: usize) -> WorkloadRequest<'_> {
        let class = w % 4;
        WorkloadRequest {
            class_name: CLASS_NAMES[class],
            class: &self.classes[class],
            preferences: &self.preferences[w % self.preferences.len()],
            replicas: 3,
            current: if w.is_multiple_of(10) {
                &self.current
            } else {
                &[]
            },
        }
    }

    /// Decides every workload in one world, as the operator does after a world change.
    fn decide_all(&self, candidates: &Candidates) -> usize {
        (0..WORKLOADS)
            .filter(|w| {
                let decision = black_box(candidates.decide(&self.request(*w)));
                !decision.targets().is_empty()
            })
            .count()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

fn main() {
    let fleet = Fleet {
        classes: classes(),
        preferences: preferences(),
        current: [CurrentPlacement {
            cluster: "cluster-12".into(),
            pools: vec!["pool-1".into()],
        }],
    };
    let clusters = clusters();
    let candidates_per_decision = CLUSTERS * POOLS;
    println!(
        "placement engine: {WORKLOADS} workloads x {CLUSTERS} clusters x {POOLS} pools \
         ({candidates_per_decision} candidates per decision), {ROUNDS} rounds, one core"
    );

    // Steady state: one world, every decision in it shares what depends only on the class.
    let world = Candidates::new(clusters.clone());
    let mut latencies = Vec::with_capacity(ROUNDS * WORKLOADS);
    let mut placed = 0usize;
    let started = Instant::now();
    for _ in 0..ROUNDS {
        for w in 0..WORKLOADS {
            let request = fleet.request(w);
            let decided = Instant::now();
            let decision = black_box(world.decide(black_box(&request)));
            latencies.push(decided.elapsed());
            placed += usize::from(!decision.targets().is_empty());
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let decisions = (ROUNDS * WORKLOADS) as f64;
    let evaluations = decisions * candidates_per_decision as f64;
    println!(
        "  candidate evaluations:   {:>12.0} /s  (cluster x pool pairs; goal >= 10,000,000)",
        evaluations / elapsed.as_secs_f64()
    );
    println!(
        "  decisions:               {:>12.0} /s  ({:.2} us each)",
        decisions / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / decisions
    );
    println!(
        "  decision latency:        p50 {:.2} us, p99 {:.2} us, max {:.2} us  (goal p99 <= 100 us)",
        percentile(&latencies, 0.50).as_secs_f64() * 1e6,
        percentile(&latencies, 0.99).as_secs_f64() * 1e6,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e6
    );
    println!("  placed: {} of {WORKLOADS}", placed / ROUNDS);

    // One cluster changes: a new world is derived and every workload decided again in it.
    let mut redecides = Vec::new();
    for round in 0..ROUNDS {
        let mut changed = clusters.clone();
        changed[7].spec.certifications = if round.is_multiple_of(2) {
            vec![Certification::Bio, Certification::C5]
        } else {
            vec![Certification::Iso27001]
        };
        let started = Instant::now();
        let world = Candidates::new(changed);
        black_box(fleet.decide_all(&world));
        redecides.push(started.elapsed());
    }
    redecides.sort_unstable();
    println!(
        "  re-decide all {WORKLOADS} after one cluster changed: {:.1} ms (median of {ROUNDS}; goal <= 50 ms)",
        percentile(&redecides, 0.5).as_secs_f64() * 1e3
    );

    // For comparison: nothing shared, every decision judges every candidate itself.
    let unshared = WORKLOADS / 10;
    let started = Instant::now();
    for w in 0..unshared {
        black_box(decide(&fleet.request(w), black_box(&clusters)));
    }
    let elapsed = started.elapsed();
    println!(
        "  without sharing:         {:>12.0} evaluations/s  ({:.1} us per decision, {unshared} decisions)",
        (unshared * candidates_per_decision) as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / unshared as f64
    );
}
