//! `--concentration` (pure): per class, how the placed replicas are shared over providers (by
//! identity: the parent group, else the provider), the Herfindahl–Hirschman index of those
//! shares, and the workloads that depend on a single provider.
//!
//! The HHI is the sum of the squared percentage shares: 10,000 when one provider has
//! everything, 10,000 / N for N equal providers. Competition authorities read it in bands
//! (the 2010 US Horizontal Merger Guidelines, the usual reference): below 1,500 unconcentrated,
//! 1,500 to 2,500 moderately concentrated, above 2,500 highly concentrated.

use crate::cli::table::{columns, thousands, workload_name};
use crate::crd::SovereignWorkload;
use crate::policy::{ClusterFacts, Decision};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// One provider's part of a class's placed replicas.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderShare {
    pub provider: String,
    pub replicas: i64,
    /// Percent of the class's placed replicas, 0–100.
    pub share: f64,
}

/// A workload all of whose placements are with one provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SingleProvider {
    pub workload: String,
    pub provider: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassConcentration {
    pub class: String,
    /// Placed replicas of the class.
    pub replicas: i64,
    /// Largest share first, then by name.
    pub providers: Vec<ProviderShare>,
    /// 0–10,000; absent when nothing of the class is placed.
    pub hhi: Option<u32>,
    /// What the HHI means: `unconcentrated`, `moderately concentrated`, `highly concentrated`.
    pub reading: Option<&'static str>,
    pub single_provider: Vec<SingleProvider>,
}

/// The Herfindahl–Hirschman index of these quantities' shares (sum of squared percentage
/// shares, 0–10,000, rounded); `None` when they add up to nothing.
pub fn hhi(quantities: &[i64]) -> Option<u32> {
    let positive = |q: &i64| u128::try_from(*q).unwrap_or(0);
    let total: u128 = quantities.iter().map(positive).sum();
    if total == 0 {
        return None;
    }
    let squares: u128 = quantities.iter().map(positive).map(|q| q * q).sum();
    let denominator = total * total;
    let index = (squares * 10_000 + denominator / 2) / denominator;
    u32::try_from(index).ok()
}

/// The usual competition-authority reading of an HHI.
pub fn reading(hhi: u32) -> &'static str {
    match hhi {
        0..1_500 => "unconcentrated",
        1_500..=2_500 => "moderately concentrated",
        _ => "highly concentrated",
    }
}

/// Concentration of the placements in `decisions` per class (every class a workload names),
/// providers looked up in `clusters`.
pub fn concentration(
    decisions: &[(&SovereignWorkload, &Decision)],
    clusters: &[ClusterFacts],
) -> Vec<ClassConcentration> {
    let provider_of = |cluster: &str| {
        clusters.iter().find(|c| c.name == cluster).map_or_else(
            || cluster.to_owned(),
            |c| c.spec.provider.identity().to_owned(),
        )
    };
    let mut classes: BTreeMap<&str, (BTreeMap<String, i64>, Vec<SingleProvider>)> = BTreeMap::new();
    for (workload, decision) in decisions {
        let (replicas, single) = classes.entry(&workload.spec.sensitivity).or_default();
        let mut providers = BTreeSet::new();
        for target in decision.targets() {
            let provider = provider_of(&target.cluster);
            *replicas.entry(provider.clone()).or_default() += i64::from(target.replicas.max(0));
            providers.insert(provider);
        }
        if let (1, Some(provider)) = (providers.len(), providers.first()) {
            single.push(SingleProvider {
                workload: workload_name(workload),
                provider: provider.clone(),
            });
        }
    }
    classes
        .into_iter()
        .map(|(class, (replicas, single_provider))| {
            let total: i64 = replicas.values().sum();
            let index = hhi(&replicas.values().copied().collect::<Vec<_>>());
            let mut providers: Vec<ProviderShare> = replicas
                .into_iter()
                .filter(|(_, r)| *r > 0)
                .map(|(provider, r)| ProviderShare {
                    provider,
                    replicas: r,
                    share: percent(r, total),
                })
                .collect();
            providers.sort_by_key(|p| std::cmp::Reverse(p.replicas));
            ClassConcentration {
                class: class.to_owned(),
                replicas: total,
                providers,
                hhi: index,
                reading: index.map(reading),
                single_provider,
            }
        })
        .collect()
}

/// `part` of `total` in percent, to one decimal.
fn percent(part: i64, total: i64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let tenths = (part * 1000 + total / 2) / total;
    // At most 1000 tenths: exact in an f64.
    f64::from(i32::try_from(tenths).unwrap_or(0)) / 10.0
}

/// The concentration as text: one row per class, then the single-provider workloads.
pub fn text(classes: &[ClassConcentration]) -> String {
    let mut out =
        String::from("\nProvider concentration (placed replicas per provider, by parent group):\n");
    let rows: Vec<[String; 5]> = classes
        .iter()
        .map(|c| {
            let providers: Vec<String> = c
                .providers
                .iter()
                .map(|p| format!("{} {:.1}% ({})", p.provider, p.share, p.replicas))
                .collect();
            [
                c.class.clone(),
                c.replicas.to_string(),
                c.hhi.map_or_else(|| "-".to_owned(), thousands),
                c.reading.unwrap_or("nothing placed").to_owned(),
                if providers.is_empty() {
                    "-".to_owned()
                } else {
                    providers.join(", ")
                },
            ]
        })
        .collect();
    let header = [
        "CLASS",
        "REPLICAS",
        "HHI",
        "READING",
        "PROVIDERS (share, replicas)",
    ];
    out.push_str(&columns(header, &rows));
    for c in classes.iter().filter(|c| !c.single_provider.is_empty()) {
        let names: Vec<String> = c
            .single_provider
            .iter()
            .map(|s| format!("{} ({})", s.workload, s.provider))
            .collect();
        let _ = writeln!(
            out,
            "{}: on a single provider: {}",
            c.class,
            names.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "HHI: the sum of the providers' squared percentage shares, 0 to 10,000 (one provider). Above 2,500 is highly concentrated, 1,500 to 2,500 moderately, below 1,500 unconcentrated, as competition authorities usually read it."
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_is_the_sum_of_squared_percentage_shares() {
        for (replicas, expected) in [
            (vec![4], Some(10_000)),
            (vec![2, 2], Some(5_000)),
            (vec![1, 1, 1, 1], Some(2_500)),
            (vec![3, 1], Some(6_250)),
            (vec![1, 1, 1], Some(3_333)),
            (vec![1, 2], Some(5_556)),
            (vec![5, 0], Some(10_000)),
            (vec![1; 10], Some(1_000)),
            (vec![], None),
            (vec![0, 0], None),
            (vec![-3, 1], Some(10_000)),
        ] {
            assert_eq!(hhi(&replicas), expected, "{replicas:?}");
        }
    }

    #[test]
    fn the_reading_follows_the_competition_authority_bands() {
        for (index, expected) in [
            (0, "unconcentrated"),
            (1_499, "unconcentrated"),
            (1_500, "moderately concentrated"),
            (2_500, "moderately concentrated"),
            (2_501, "highly concentrated"),
            (10_000, "highly concentrated"),
        ] {
            assert_eq!(reading(index), expected, "{index}");
        }
    }

    fn cluster(name: &str, provider: &str, parent: Option<&str>) -> ClusterFacts {
        let mut provider = serde_json::json!({"name": provider, "headquartersCountry": "NL", "extraterritorialExposure": false});
        if let Some(parent) = parent {
            provider["parent"] = serde_json::json!({"name": parent, "headquartersCountry": "FR", "extraterritorialExposure": false});
        }
        ClusterFacts {
            name: name.to_owned(),
            spec: serde_json::from_value(serde_json::json!({
                "country": "NL", "operatedBy": "eu-provider", "provider": provider,
                "connection": {"local": true}
            }))
            .unwrap(),
            reachability: crate::policy::Reachability::Reachable,
            pools: Vec::new(),
        }
    }

    fn workload(name: &str, class: &str) -> SovereignWorkload {
        let mut w = SovereignWorkload::new(
            name,
            serde_json::from_value(serde_json::json!({"sensitivity": class, "template": {}}))
                .unwrap(),
        );
        w.metadata.namespace = Some("ns".into());
        w
    }

    fn placed(targets: &[(&str, i32)]) -> Decision {
        Decision {
            enforcement: crate::crd::Enforcement::Enforce,
            outcome: crate::policy::Outcome::Placed(
                targets
                    .iter()
                    .map(|(cluster, replicas)| crate::policy::Target {
                        cluster: (*cluster).to_owned(),
                        country: "NL".to_owned(),
                        pools: vec!["p".to_owned()],
                        replicas: *replicas,
                        dedicated_to: None,
                        violations: Vec::new(),
                        reachable: true,
                    })
                    .collect(),
            ),
            verdicts: Default::default(),
        }
    }

    #[test]
    fn providers_are_counted_by_parent_and_single_provider_workloads_are_named() {
        let clusters = [
            cluster("gov", "Rijkscloud", None),
            cluster("paris", "Hexacloud SAS", None),
            cluster("brussels", "Hexacloud Benelux", Some("Hexacloud SAS")),
        ];
        let (spread, subsidiaries, public, refused) = (
            workload("spread", "internal"),
            workload("subsidiaries", "internal"),
            workload("portal", "public"),
            workload("refused", "secret"),
        );
        let decisions = [
            placed(&[("gov", 2), ("paris", 2)]),
            placed(&[("paris", 1), ("brussels", 3)]),
            placed(&[("gov", 2)]),
            Decision::refused(crate::policy::Reason::NoClusters),
        ];
        let pairs = [
            (&spread, &decisions[0]),
            (&subsidiaries, &decisions[1]),
            (&public, &decisions[2]),
            (&refused, &decisions[3]),
        ];
        let classes = concentration(&pairs, &clusters);
        let internal = &classes[0];
        assert_eq!(internal.class, "internal");
        assert_eq!(internal.replicas, 8);
        assert_eq!(
            internal
                .providers
                .iter()
                .map(|p| (p.provider.as_str(), p.replicas, p.share))
                .collect::<Vec<_>>(),
            [("Hexacloud SAS", 6, 75.0), ("Rijkscloud", 2, 25.0)]
        );
        assert_eq!(internal.hhi, Some(6_250));
        assert_eq!(internal.reading, Some("highly concentrated"));
        assert_eq!(
            internal.single_provider,
            [SingleProvider {
                workload: "ns/subsidiaries".into(),
                provider: "Hexacloud SAS".into()
            }],
            "two subsidiaries of one group are one provider"
        );
        assert_eq!(classes[1].class, "public");
        assert_eq!(classes[1].single_provider.len(), 1);
        let secret = &classes[2];
        assert_eq!(
            (secret.replicas, secret.hhi, secret.reading),
            (0, None, None)
        );
        let words = text(&classes)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            words.contains(
                "internal 8 6,250 highly concentrated Hexacloud SAS 75.0% (6), Rijkscloud 25.0% (2)"
            ),
            "{words}"
        );
    }

    #[test]
    fn shares_are_percentages_to_one_decimal() {
        assert_eq!(percent(1, 3), 33.3);
        assert_eq!(percent(2, 3), 66.7);
        assert_eq!(percent(3, 3), 100.0);
        assert_eq!(percent(0, 0), 0.0);
    }
}
