//! `--without`: what a what-if takes away. `provider=NAME` (a provider, or a parent group and
//! all its subsidiaries), `cluster=NAME` or `country=XX`; the clusters it matches are decided
//! as gone, as if they had failed or stopped being compliant.

use crate::policy::ClusterFacts;
use std::collections::BTreeSet;
use std::fmt;

/// One `--without` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Without {
    /// Clusters whose provider, or whose provider's parent, has this name.
    Provider(String),
    Cluster(String),
    /// Clusters in this country (ISO 3166-1 alpha-2, `spec.country`).
    Country(String),
}

const EXPECTED: &str = "expected provider=NAME, cluster=NAME or country=XX";

/// Parses a `--without` value (clap's value parser: an error is a usage error, exit 2).
pub fn parse_without(text: &str) -> Result<Without, String> {
    let Some((kind, value)) = text.split_once('=') else {
        return Err(format!("{text:?}: {EXPECTED}"));
    };
    if value.trim().is_empty() {
        return Err(format!("{text:?}: {kind}= needs a value ({EXPECTED})"));
    }
    match kind {
        "provider" => Ok(Without::Provider(value.to_owned())),
        "cluster" => Ok(Without::Cluster(value.to_owned())),
        "country" if value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase()) => {
            Ok(Without::Country(value.to_owned()))
        }
        "country" => Err(format!(
            "{text:?}: a country is an ISO 3166-1 alpha-2 code in capitals, e.g. country=NL"
        )),
        _ => Err(format!("{text:?}: unknown kind {kind:?}; {EXPECTED}")),
    }
}

impl Without {
    pub fn matches(&self, cluster: &ClusterFacts) -> bool {
        let provider = &cluster.spec.provider;
        match self {
            Self::Provider(name) => {
                provider.name == *name || provider.parent.as_ref().is_some_and(|p| p.name == *name)
            }
            Self::Cluster(name) => cluster.name == *name,
            Self::Country(code) => cluster.spec.country == *code,
        }
    }
}

impl fmt::Display for Without {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Provider(name) => write!(f, "provider={name}"),
            Self::Cluster(name) => write!(f, "cluster={name}"),
            Self::Country(code) => write!(f, "country={code}"),
        }
    }
}

/// The world a what-if decides in.
#[derive(Clone, Debug, Default)]
pub struct Removal {
    /// The clusters no `--without` matches, in their order.
    pub remaining: Vec<ClusterFacts>,
    /// Names of the clusters taken away, sorted.
    pub removed: Vec<String>,
}

/// Takes away every cluster one of `without` matches. A value that matches no cluster is an
/// error: a misspelt provider must not pass a CI job as "nothing would change".
pub fn remove(clusters: &[ClusterFacts], without: &[Without]) -> Result<Removal, Vec<String>> {
    let unmatched: Vec<String> = without
        .iter()
        .filter(|w| !clusters.iter().any(|c| w.matches(c)))
        .map(|w| {
            let known = |values: BTreeSet<&str>| values.into_iter().collect::<Vec<_>>().join(", ");
            let choices = match w {
                Without::Provider(_) => known(
                    clusters
                        .iter()
                        .flat_map(|c| {
                            let p = &c.spec.provider;
                            std::iter::once(p.name.as_str())
                                .chain(p.parent.as_ref().map(|parent| parent.name.as_str()))
                        })
                        .collect(),
                ),
                Without::Cluster(_) => known(clusters.iter().map(|c| c.name.as_str()).collect()),
                Without::Country(_) => {
                    known(clusters.iter().map(|c| c.spec.country.as_str()).collect())
                }
            };
            format!("--without {w} matches no SovereignCluster (there are: {choices})")
        })
        .collect();
    if !unmatched.is_empty() {
        return Err(unmatched);
    }
    let (removed, remaining): (Vec<ClusterFacts>, Vec<ClusterFacts>) = clusters
        .iter()
        .cloned()
        .partition(|c| without.iter().any(|w| w.matches(c)));
    let mut removed: Vec<String> = removed.into_iter().map(|c| c.name).collect();
    removed.sort();
    Ok(Removal { remaining, removed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{
        ClusterConnection, OperatedBy, Provider, ProviderParent, SovereignClusterSpec,
    };
    use crate::policy::Reachability;

    fn cluster(name: &str, country: &str, provider: &str, parent: Option<&str>) -> ClusterFacts {
        ClusterFacts {
            name: name.to_owned(),
            spec: SovereignClusterSpec {
                country: country.to_owned(),
                region: None,
                provider: Provider {
                    name: provider.to_owned(),
                    headquarters_country: country.to_owned(),
                    extraterritorial_exposure: false,
                    parent: parent.map(|name| ProviderParent {
                        name: name.to_owned(),
                        headquarters_country: "FR".to_owned(),
                        extraterritorial_exposure: false,
                    }),
                },
                operated_by: OperatedBy::EuProvider,
                certifications: Vec::new(),
                connection: ClusterConnection::default(),
            },
            reachability: Reachability::Reachable,
            pools: Vec::new(),
        }
    }

    fn fleet() -> Vec<ClusterFacts> {
        vec![
            cluster("paris", "FR", "Hexacloud SAS", None),
            cluster("brussels", "BE", "Hexacloud Benelux", Some("Hexacloud SAS")),
            cluster("gov", "NL", "Rijkscloud", None),
        ]
    }

    #[test]
    fn values_parse_into_what_they_name() {
        for (text, expected) in [
            (
                "provider=Hexacloud SAS",
                Without::Provider("Hexacloud SAS".into()),
            ),
            ("cluster=paris", Without::Cluster("paris".into())),
            ("country=NL", Without::Country("NL".into())),
            ("provider=a=b", Without::Provider("a=b".into())),
        ] {
            assert_eq!(parse_without(text), Ok(expected.clone()), "{text}");
            assert_eq!(expected.to_string(), text);
        }
    }

    #[test]
    fn malformed_values_say_what_is_expected() {
        for (text, expected) in [
            (
                "Hexacloud",
                "expected provider=NAME, cluster=NAME or country=XX",
            ),
            ("provider=", "provider= needs a value"),
            ("cluster= ", "cluster= needs a value"),
            ("country=nl", "ISO 3166-1 alpha-2 code in capitals"),
            ("country=NLD", "ISO 3166-1 alpha-2 code in capitals"),
            ("region=eu-west", "unknown kind \"region\""),
        ] {
            let error = parse_without(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn a_provider_matches_by_its_own_name_or_its_parents() {
        let table = [
            (
                Without::Provider("Hexacloud SAS".into()),
                vec!["brussels", "paris"],
            ),
            (
                Without::Provider("Hexacloud Benelux".into()),
                vec!["brussels"],
            ),
            (Without::Cluster("gov".into()), vec!["gov"]),
            (Without::Country("BE".into()), vec!["brussels"]),
        ];
        for (without, expected) in table {
            let removal = remove(&fleet(), std::slice::from_ref(&without)).unwrap();
            assert_eq!(removal.removed, expected, "{without}");
            assert_eq!(removal.remaining.len(), 3 - expected.len(), "{without}");
        }
    }

    #[test]
    fn several_values_take_away_every_cluster_any_of_them_matches() {
        let removal = remove(
            &fleet(),
            &[
                Without::Country("NL".into()),
                Without::Cluster("paris".into()),
            ],
        )
        .unwrap();
        assert_eq!(removal.removed, ["gov", "paris"]);
        assert_eq!(removal.remaining[0].name, "brussels");
    }

    #[test]
    fn a_value_matching_no_cluster_is_an_error_naming_what_exists() {
        let errors = remove(
            &fleet(),
            &[
                Without::Provider("Hexacloud".into()),
                Without::Country("DE".into()),
                Without::Cluster("gov".into()),
            ],
        )
        .unwrap_err();
        assert_eq!(
            errors,
            [
                "--without provider=Hexacloud matches no SovereignCluster (there are: Hexacloud Benelux, Hexacloud SAS, Rijkscloud)",
                "--without country=DE matches no SovereignCluster (there are: BE, FR, NL)",
            ]
        );
    }
}
