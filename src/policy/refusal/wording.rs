//! How each requirement kind is said: on its own when it rules out every candidate, as a
//! clause naming the candidates it rules out when it takes several kinds together, and as a
//! short label for what the nearest candidate lacks.

use super::{Candidate, Kind, Miss};
use crate::crd::{Certification, PlacementPreferences};
use crate::policy::country::jurisdiction_of;
use crate::policy::decision::ClusterFacts;
use crate::policy::reason::Reason;
use crate::policy::{DEDICATED_TAINT_KEY, SOVEREIGN_NODE_LABEL};
use std::collections::BTreeSet;

/// Candidates named in a clause before the rest are counted.
const NAMED: usize = 4;

/// A short name of what a kind requires, as in "meets every requirement but country".
pub(super) fn label(kind: Kind) -> &'static str {
    match kind {
        Kind::RequestedCountry => "country",
        Kind::ClassCountry => "the class's countries",
        Kind::Jurisdiction => "jurisdiction",
        Kind::EuEea => "EU/EEA location",
        Kind::ProviderHeadquarters => "provider headquarters",
        Kind::ProviderExposure => "extraterritorial exposure",
        Kind::Operator => "operator",
        Kind::Certifications => "certifications",
        Kind::AnyCertification => "one-of certifications",
        Kind::SovereignPool => "sovereign nodes",
        Kind::DedicatedPool => "a dedicated pool",
        Kind::OtherClassPool => "a pool free of other classes",
        Kind::PoolLocation => "pool location",
        Kind::Reachable => "reachability",
    }
}

/// The deciding constraint in words. One kind: what no candidate has. Several: which
/// candidates each kind rules out (each candidate under the first kind, in order, it misses).
pub(super) fn deciding(
    kinds: &[Kind],
    candidates: &[Candidate],
    clusters: &[ClusterFacts],
    preferences: &PlacementPreferences,
) -> String {
    if let [kind] = kinds {
        let group = misses_of(*kind, candidates.iter());
        return alone(*kind, &group, clusters, preferences);
    }
    let clauses: Vec<String> = kinds
        .iter()
        .map(|kind| {
            let assigned = candidates.iter().filter(|c| {
                c.misses.iter().map(|m| m.kind).find(|k| kinds.contains(k)) == Some(*kind)
            });
            let group = misses_of(*kind, assigned);
            format!(
                "{}: {}",
                predicate(*kind, &group, preferences),
                items(&group)
            )
        })
        .collect();
    let labels: Vec<&str> = kinds.iter().map(|k| label(*k)).collect();
    format!(
        "{} together rule out every candidate: {}",
        and(&labels),
        clauses.join("; ")
    )
}

/// A candidate and one reason of a kind it misses.
type Subject<'a, 'b> = (&'b Candidate<'a>, &'b Miss<'a>);

fn misses_of<'a, 'b>(
    kind: Kind,
    of: impl Iterator<Item = &'b Candidate<'a>>,
) -> Vec<Subject<'a, 'b>> {
    of.flat_map(|c| {
        c.misses
            .iter()
            .filter(move |m| m.kind == kind)
            .map(move |m| (c, m))
    })
    .collect()
}

/// What no candidate has, when `kind` alone rules out every candidate.
fn alone(
    kind: Kind,
    group: &[Subject],
    clusters: &[ClusterFacts],
    preferences: &PlacementPreferences,
) -> String {
    let on_clusters = group.iter().all(|(_, m)| m.on_cluster);
    let noun = if on_clusters {
        "SovereignCluster"
    } else {
        "SovereignCluster and node pool"
    };
    let exist = |jurisdiction: bool| {
        let countries: BTreeSet<&str> = if on_clusters {
            clusters.iter().map(|c| c.spec.country.as_str()).collect()
        } else {
            group
                .iter()
                .filter_map(|(_, m)| country(m.reason))
                .collect()
        };
        let countries: Vec<String> = countries
            .into_iter()
            .map(|c| {
                if jurisdiction {
                    format!("{c} ({})", jurisdiction_of(c))
                } else {
                    c.to_owned()
                }
            })
            .collect();
        let whose = if on_clusters {
            "clusters exist"
        } else {
            "candidates are"
        };
        format!("{whose} in {}", countries.join(", "))
    };
    match kind {
        Kind::RequestedCountry => {
            let required = &preferences.required_countries;
            if required.is_empty() {
                format!(
                    "no {noun} is in spec.placement.requiredCountries; {}",
                    exist(false)
                )
            } else {
                let wanted: Vec<&str> = required.iter().map(String::as_str).collect();
                format!(
                    "no {noun} is in {} (requiredCountries: [{}]); {}",
                    or(&wanted),
                    wanted.join(", "),
                    exist(false)
                )
            }
        }
        Kind::ClassCountry => format!(
            "no {noun} is in a country the class allows ({}); {}",
            allowed(group),
            exist(false)
        ),
        Kind::Jurisdiction => format!(
            "no {noun} is in a jurisdiction the class allows; {}",
            exist(true)
        ),
        Kind::EuEea => format!("no {noun} is in the EU/EEA; {}", exist(false)),
        Kind::ProviderHeadquarters => format!(
            "no provider qualifies: every cluster's provider is headquartered outside the jurisdictions the class allows ({})",
            details(group)
        ),
        Kind::ProviderExposure => format!(
            "no provider qualifies: every cluster's provider is exposed to extraterritorial non-EU law ({})",
            details(group)
        ),
        Kind::Operator => format!(
            "no cluster is operated by an operator the class allows; clusters are {}",
            details(group)
        ),
        Kind::Certifications => {
            // What every candidate lacks, when they lack something in common.
            let mut common: Option<BTreeSet<Certification>> = None;
            for reason in group.iter().map(|(_, m)| m.reason) {
                if let Reason::MissingCertifications { missing } = reason {
                    let these = missing.iter().copied().collect();
                    common = Some(match common {
                        Some(so_far) => so_far.intersection(&these).copied().collect(),
                        None => these,
                    });
                }
            }
            let common: Vec<Certification> = common.unwrap_or_default().into_iter().collect();
            match common.as_slice() {
                [] => format!(
                    "no cluster holds every certification the class requires: {}",
                    items(group)
                ),
                [one] => format!("no cluster holds certification {one}, which the class requires"),
                many => format!(
                    "no cluster holds certifications {}, which the class requires",
                    list(many)
                ),
            }
        }
        Kind::AnyCertification => format!(
            "no cluster holds any of the certifications {}",
            any_of(group)
        ),
        Kind::SovereignPool => format!(
            "no cluster has a sovereign node pool: no node carries the administrator-set label {SOVEREIGN_NODE_LABEL}=true"
        ),
        Kind::DedicatedPool => {
            let class = dedicated_class(group);
            format!(
                "no node pool is dedicated to class {class} (taint {DEDICATED_TAINT_KEY}={class}:NoSchedule)"
            )
        }
        Kind::OtherClassPool => format!(
            "every node pool is dedicated to another class ({})",
            details(group)
        ),
        Kind::PoolLocation => format!(
            "no node pool has a known location: its sovereign nodes disagree on their country ({})",
            items(group)
        ),
        Kind::Reachable => format!("no cluster can be reached: {}", items(group)),
    }
}

/// What the candidates of a clause lack, said before naming them.
fn predicate(kind: Kind, group: &[Subject], preferences: &PlacementPreferences) -> String {
    match kind {
        Kind::RequestedCountry if preferences.required_countries.is_empty() => {
            "outside spec.placement.requiredCountries".to_owned()
        }
        Kind::RequestedCountry => format!(
            "outside requiredCountries [{}]",
            preferences.required_countries.join(", ")
        ),
        Kind::ClassCountry => format!("outside the class's countries [{}]", allowed(group)),
        Kind::Jurisdiction => "in a jurisdiction the class does not allow".to_owned(),
        Kind::EuEea => "outside the EU/EEA".to_owned(),
        Kind::ProviderHeadquarters => {
            "provider headquartered outside the allowed jurisdictions".to_owned()
        }
        Kind::ProviderExposure => "provider exposed to extraterritorial non-EU law".to_owned(),
        Kind::Operator => "operator not allowed by the class".to_owned(),
        Kind::Certifications => "missing required certifications".to_owned(),
        Kind::AnyCertification => format!("none of the certifications {}", any_of(group)),
        Kind::SovereignPool => "no sovereign nodes".to_owned(),
        Kind::DedicatedPool => format!("pool not dedicated to class {}", dedicated_class(group)),
        Kind::OtherClassPool => "pool dedicated to another class".to_owned(),
        Kind::PoolLocation => "sovereign nodes disagree on their country".to_owned(),
        Kind::Reachable => "unreachable".to_owned(),
    }
}

/// The country a location reason is about.
fn country(reason: &Reason) -> Option<&str> {
    match reason {
        Reason::CountryNotRequested { country }
        | Reason::CountryNotAllowed { country, .. }
        | Reason::JurisdictionNotAllowed { country, .. }
        | Reason::OutsideEuEea { country } => Some(country),
        _ => None,
    }
}

/// The particular of a reason worth naming next to its candidate.
fn detail(reason: &Reason) -> Option<String> {
    match reason {
        Reason::JurisdictionNotAllowed {
            country,
            jurisdiction,
        } => Some(format!("{country}, {jurisdiction}")),
        Reason::ProviderHeadquartersNotAllowed {
            provider, country, ..
        } => Some(format!("{provider} in {country}")),
        Reason::ExtraterritorialExposure { provider } => Some(provider.clone()),
        Reason::OperatorNotAllowed { operated_by } => Some(format!("operated by {operated_by}")),
        Reason::MissingCertifications { missing } => Some(list(missing)),
        Reason::PoolDedicatedToOtherClass { class } => Some(class.clone()),
        Reason::ClusterUnreachable { detail } => Some(detail.clone()),
        other => country(other).map(str::to_owned),
    }
}

/// The candidates of a group with their particulars: `hub-nl (NL), hub-de/general (DE)`.
fn items(group: &[Subject]) -> String {
    let mut named: Vec<String> = Vec::new();
    for (candidate, miss) in group {
        let subject = if miss.on_cluster {
            candidate.cluster.to_owned()
        } else {
            candidate.name()
        };
        let item = match detail(miss.reason) {
            Some(detail) => format!("{subject} ({detail})"),
            None => subject,
        };
        if !named.contains(&item) {
            named.push(item);
        }
    }
    capped(named)
}

/// Just the particulars of a group, each once: `Hyperscaler in US, Other in CH`.
fn details(group: &[Subject]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for detail in group.iter().filter_map(|(_, m)| detail(m.reason)) {
        if !seen.contains(&detail) {
            seen.push(detail);
        }
    }
    capped(seen)
}

fn capped(mut named: Vec<String>) -> String {
    if named.len() > NAMED {
        let more = named.len() - NAMED;
        named.truncate(NAMED);
        named.push(format!("{more} more"));
    }
    named.join(", ")
}

/// A requirement as a reason of the group states it (the same in every reason of a kind).
fn stated(group: &[Subject], what: impl Fn(&Reason) -> Option<String>) -> String {
    group
        .iter()
        .find_map(|(_, m)| what(m.reason))
        .unwrap_or_default()
}

fn any_of(group: &[Subject]) -> String {
    stated(group, |r| match r {
        Reason::NoneOfCertifications { any_of } => Some(list(any_of)),
        _ => None,
    })
}

fn dedicated_class(group: &[Subject]) -> String {
    stated(group, |r| match r {
        Reason::PoolNotDedicated { class } => Some(class.clone()),
        _ => None,
    })
}

fn allowed(group: &[Subject]) -> String {
    stated(group, |r| match r {
        Reason::CountryNotAllowed { allowed, .. } => Some(allowed.join(", ")),
        _ => None,
    })
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `a`, `a and b`, `a, b and c`.
pub(super) fn and(words: &[&str]) -> String {
    joined(words, "and")
}

fn or(words: &[&str]) -> String {
    joined(words, "or")
}

fn joined(words: &[&str], last: &str) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., tail] => format!("{} {last} {tail}", init.join(", ")),
    }
}
