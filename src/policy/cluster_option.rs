//! Rule 4 of the engine: what an evaluated cluster offers once enforcement and stability are
//! applied (its usable pools, its violations and capacity), how the offers are ranked and
//! chosen, and how replicas are spread over the clusters chosen.

use super::decision::{ClusterFacts, CurrentPlacement, Reachability, Target};
use super::evaluation::EvaluatedCluster;
use super::reason::{Reason, Severity};
use crate::crd::Enforcement;
use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BTreeSet;

/// What a cluster can take of a workload: the part of an option that does not depend on the
/// workload's preferences, so that one offer serves every workload of a class that is not
/// placed on the cluster yet.
#[derive(Clone, Debug)]
pub(super) struct Offer {
    /// Pools the pods may use, as indices into [`ClusterFacts::pools`], sorted by pool name.
    pools: Vec<usize>,
    /// Class requirements the cluster or a chosen pool breaks (only ever non-empty under audit).
    violations: Vec<Reason>,
    /// Sovereign nodes of the chosen pools.
    capacity: i64,
    /// Whether a chosen pool is dedicated to the workload's class.
    dedicated: bool,
}

impl EvaluatedCluster {
    /// What the cluster offers, or `None` when no pool of it may be used. `current` is the
    /// workload's placement on this cluster, if any.
    pub(super) fn offer(
        &self,
        facts: &ClusterFacts,
        class_name: &str,
        enforcement: Enforcement,
        current: Option<&CurrentPlacement>,
        failover: bool,
    ) -> Option<Offer> {
        // A current placement on an unreachable cluster stays (its pods keep running) unless
        // the workload asked for failover; a new placement never goes to an unreachable cluster.
        let keep_while_unreachable = current.is_some() && !failover;
        let usable = |reason: &Reason| match reason {
            Reason::ClusterUnreachable { .. } => keep_while_unreachable,
            other => enforcement == Enforcement::Audit && other.severity() == Severity::Class,
        };
        if !self.cluster_reasons.iter().all(usable) {
            return None;
        }
        let eligible: Vec<&(usize, Vec<Reason>)> = self
            .pools
            .iter()
            .filter(|(_, reasons)| reasons.iter().all(usable))
            .collect();
        if eligible.is_empty() {
            return None;
        }
        // Audit relaxes class requirements only where it must: if some pools of the cluster
        // are compliant, use just those rather than spreading onto violating ones.
        let eligible: Vec<&(usize, Vec<Reason>)> =
            if eligible.iter().any(|(_, reasons)| reasons.is_empty()) {
                eligible
                    .into_iter()
                    .filter(|(_, reasons)| reasons.is_empty())
                    .collect()
            } else {
                eligible
            };
        let pool_name = |index: usize| facts.pools.get(index).map(|pool| pool.name.as_str());
        // Stability: keep exactly the current pools while all of them remain eligible.
        let chosen: Vec<&(usize, Vec<Reason>)> = match current {
            Some(current)
                if !current.pools.is_empty()
                    && current.pools.iter().all(|p| {
                        eligible
                            .iter()
                            .any(|(index, _)| pool_name(*index) == Some(p.as_str()))
                    }) =>
            {
                eligible
                    .into_iter()
                    .filter(|(index, _)| {
                        pool_name(*index)
                            .is_some_and(|name| current.pools.iter().any(|p| p == name))
                    })
                    .collect()
            }
            _ => eligible,
        };

        let mut violations: BTreeSet<&Reason> = self
            .cluster_reasons
            .iter()
            .filter(|r| r.severity() == Severity::Class)
            .collect();
        for (_, reasons) in &chosen {
            violations.extend(reasons.iter().filter(|r| r.severity() == Severity::Class));
        }
        let chosen_pools = || {
            chosen
                .iter()
                .filter_map(|(index, _)| facts.pools.get(*index))
        };
        Some(Offer {
            pools: chosen.iter().map(|(index, _)| *index).collect(),
            violations: violations.into_iter().cloned().collect(),
            capacity: chosen_pools().map(|p| i64::from(p.sovereign_nodes)).sum(),
            dedicated: chosen_pools().any(|p| p.dedicated_to.as_deref() == Some(class_name)),
        })
    }
}

/// A cluster that can take (part of) the workload, with the key it is ranked by.
pub(super) struct ClusterOption<'a> {
    /// Not current first, fewest violations, preferred country, most capacity, then the
    /// cluster's position in name order, so the rank never depends on input order.
    pub(super) rank: (bool, usize, usize, Reverse<i64>, usize),
    pub(super) facts: &'a ClusterFacts,
    pub(super) offer: Cow<'a, Offer>,
}

impl<'a> ClusterOption<'a> {
    /// `position` is the cluster's place among the clusters sorted by name.
    pub(super) fn new(
        facts: &'a ClusterFacts,
        position: usize,
        offer: Cow<'a, Offer>,
        current: bool,
        preferred_countries: &[String],
    ) -> Self {
        let preferred_rank = preferred_countries
            .iter()
            .position(|c| *c == facts.spec.country)
            .unwrap_or(usize::MAX);
        Self {
            rank: (
                !current,
                offer.violations.len(),
                preferred_rank,
                Reverse(offer.capacity),
                position,
            ),
            facts,
            offer,
        }
    }

    /// Who the cluster's provider is, for diversity ([`crate::crd::Provider::identity`]).
    pub(super) fn provider(&self) -> &'a str {
        self.facts.spec.provider.identity()
    }

    fn into_target(self, replicas: i32, class_name: &str) -> Target {
        let mut pools: Vec<String> = self
            .offer
            .pools
            .iter()
            .filter_map(|index| self.facts.pools.get(*index))
            .map(|pool| pool.name.clone())
            .collect();
        pools.sort();
        Target {
            cluster: self.facts.name.clone(),
            country: self.facts.spec.country.clone(),
            pools,
            replicas,
            dedicated_to: self.offer.dedicated.then(|| class_name.to_owned()),
            violations: self.offer.violations.clone(),
            reachable: self.facts.reachability == Reachability::Reachable,
        }
    }
}

/// Chooses `slots` options, best rank first, such that they come from at least `min_providers`
/// distinct providers: first the best option of each provider, in rank order, until that many
/// providers are in; then the best of the rest. `options` must be sorted by rank, and must hold
/// enough options and providers (the engine refuses otherwise).
pub(super) fn choose(
    options: Vec<ClusterOption<'_>>,
    slots: usize,
    min_providers: usize,
) -> Vec<ClusterOption<'_>> {
    let mut providers = BTreeSet::new();
    let (mut chosen, mut rest): (Vec<_>, Vec<_>) = (Vec::new(), Vec::new());
    for option in options {
        // Once enough providers are in, the rest are taken in rank order: later ones never.
        if providers.len() >= min_providers && chosen.len() + rest.len() >= slots {
            break;
        }
        if providers.len() < min_providers && providers.insert(option.provider()) {
            chosen.push(option);
        } else {
            rest.push(option);
        }
    }
    let room = slots.saturating_sub(chosen.len());
    chosen.extend(rest.into_iter().take(room));
    chosen.sort_by_key(|option| option.rank);
    chosen
}

/// Spreads replicas over the chosen clusters: equal shares, the remainder to the first ones by
/// name. By name, not rank: rank depends on which clusters are current, and re-deciding must not
/// shuffle replicas between the same clusters.
pub(super) fn spread(
    replicas: i32,
    class_name: &str,
    mut options: Vec<ClusterOption<'_>>,
) -> Vec<Target> {
    let replicas = replicas.max(0);
    let n = i32::try_from(options.len()).unwrap_or(i32::MAX).max(1);
    options.sort_by(|a, b| a.facts.name.cmp(&b.facts.name));
    options
        .into_iter()
        .zip(0..)
        .map(|(option, i)| {
            option.into_target(replicas / n + i32::from(i < replicas % n), class_name)
        })
        .collect()
}
