//! Rules 1 and 2 of the engine, for one cluster at a time: every reason the cluster as a whole,
//! and each of its node pools, may not take the workload. Judging is apart from choosing, so
//! every cluster gets a full verdict whether or not it is chosen.

use super::country::jurisdiction_of;
use super::decision::{ClusterFacts, Reachability, WorkloadRequest};
use super::node_pool::NodePool;
use super::reason::Reason;
use crate::crd::Jurisdiction;

/// The verdict on one cluster: reasons against it as a whole, and against each of its pools.
/// It reads only the class, the class's name and the workload's `requiredCountries`, so one
/// evaluation serves every workload of the same class and countries ([`super::Candidates`]).
#[derive(Debug)]
pub(super) struct EvaluatedCluster {
    pub(super) cluster_reasons: Vec<Reason>,
    /// Each pool as its index in [`ClusterFacts::pools`], with its reasons; sorted by pool name.
    pub(super) pools: Vec<(usize, Vec<Reason>)>,
}

pub(super) fn evaluate_cluster(
    request: &WorkloadRequest<'_>,
    cluster: &ClusterFacts,
) -> EvaluatedCluster {
    let spec = &cluster.spec;
    let class = request.class;
    let mut reasons = location_reasons(&spec.country, request);

    if let Reachability::Unreachable(detail) = &cluster.reachability {
        reasons.push(Reason::ClusterUnreachable {
            detail: detail.clone(),
        });
    }

    let hq = jurisdiction_of(&spec.provider.headquarters_country);
    let allowed_hq = &class.provider.headquarters_jurisdictions;
    if !allowed_hq.is_empty() && !allowed_hq.contains(&hq) {
        reasons.push(Reason::ProviderHeadquartersNotAllowed {
            provider: spec.provider.name.clone(),
            country: spec.provider.headquarters_country.clone(),
            jurisdiction: hq,
        });
    }
    if spec.provider.extraterritorial_exposure && !class.provider.extraterritorial_exposure_allowed
    {
        reasons.push(Reason::ExtraterritorialExposure {
            provider: spec.provider.name.clone(),
        });
    }
    // The group that controls the provider answers to its own law: a provider bought by a
    // non-EU parent stops qualifying where the class cares about headquarters or exposure.
    if let Some(parent) = &spec.provider.parent {
        let parent_hq = jurisdiction_of(&parent.headquarters_country);
        if !allowed_hq.is_empty() && !allowed_hq.contains(&parent_hq) {
            reasons.push(Reason::ProviderHeadquartersNotAllowed {
                provider: parent.name.clone(),
                country: parent.headquarters_country.clone(),
                jurisdiction: parent_hq,
            });
        }
        if parent.extraterritorial_exposure && !class.provider.extraterritorial_exposure_allowed {
            reasons.push(Reason::ExtraterritorialExposure {
                provider: parent.name.clone(),
            });
        }
    }
    if !class.provider.operated_by.is_empty()
        && !class.provider.operated_by.contains(&spec.operated_by)
    {
        reasons.push(Reason::OperatorNotAllowed {
            operated_by: spec.operated_by,
        });
    }

    let mut missing: Vec<_> = class
        .certifications
        .all_of
        .iter()
        .filter(|c| !spec.certifications.contains(c))
        .copied()
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if !missing.is_empty() {
        reasons.push(Reason::MissingCertifications { missing });
    }
    let any_of = &class.certifications.any_of;
    if !any_of.is_empty() && !any_of.iter().any(|c| spec.certifications.contains(c)) {
        let mut any_of = any_of.clone();
        any_of.sort_unstable();
        any_of.dedup();
        reasons.push(Reason::NoneOfCertifications { any_of });
    }

    if !cluster.pools.iter().any(NodePool::is_sovereign) {
        reasons.push(Reason::NoSovereignPool);
    }

    let mut pools: Vec<(usize, &NodePool, Vec<Reason>)> = cluster
        .pools
        .iter()
        .enumerate()
        .map(|(index, pool)| (index, pool, pool_reasons(request, &spec.country, pool)))
        .collect();
    pools.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    reasons.sort();
    reasons.dedup();
    EvaluatedCluster {
        cluster_reasons: reasons,
        pools: pools
            .into_iter()
            .map(|(index, _, reasons)| (index, reasons))
            .collect(),
    }
}

/// Location rules, applied to the cluster's country and to a pool's own country.
fn location_reasons(country: &str, request: &WorkloadRequest<'_>) -> Vec<Reason> {
    let mut reasons = Vec::new();
    let jurisdiction = jurisdiction_of(country);
    if jurisdiction == Jurisdiction::ThirdCountry {
        reasons.push(Reason::OutsideEuEea {
            country: country.to_owned(),
        });
    } else if !request.class.location.jurisdictions.contains(&jurisdiction) {
        reasons.push(Reason::JurisdictionNotAllowed {
            country: country.to_owned(),
            jurisdiction,
        });
    }
    if let Some(allowed) = &request.class.location.countries
        && !allowed.iter().any(|c| c == country)
    {
        reasons.push(Reason::CountryNotAllowed {
            country: country.to_owned(),
            allowed: allowed.clone(),
        });
    }
    let required = &request.preferences.required_countries;
    if !required.is_empty() && !required.iter().any(|c| c == country) {
        reasons.push(Reason::CountryNotRequested {
            country: country.to_owned(),
        });
    }
    reasons
}

fn pool_reasons(
    request: &WorkloadRequest<'_>,
    cluster_country: &str,
    pool: &NodePool,
) -> Vec<Reason> {
    let mut reasons = Vec::new();
    if !pool.is_sovereign() {
        reasons.push(Reason::PoolNotSovereign);
    }
    if pool.country_conflict {
        reasons.push(Reason::PoolLocationUnknown);
    }
    if let Some(country) = pool.country.as_deref().filter(|c| *c != cluster_country) {
        reasons.extend(location_reasons(country, request));
    }
    match pool.dedicated_to.as_deref() {
        Some(class) if class != request.class_name => {
            reasons.push(Reason::PoolDedicatedToOtherClass {
                class: class.to_owned(),
            });
        }
        None if request.class.node_pool.dedicated => reasons.push(Reason::PoolNotDedicated {
            class: request.class_name.to_owned(),
        }),
        _ => {}
    }
    reasons.sort();
    reasons.dedup();
    reasons
}
