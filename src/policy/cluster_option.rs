//! Rule 4 of the engine: what an evaluated cluster offers once enforcement, stability and
//! preferences are applied (its usable pools and its rank), and how replicas are spread over
//! the clusters chosen.

use super::decision::{Reachability, Target, WorkloadRequest};
use super::evaluation::EvaluatedCluster;
use super::node_pool::NodePool;
use super::reason::{Reason, Severity};
use crate::crd::Enforcement;
use std::cmp::Reverse;
use std::collections::BTreeSet;

/// A cluster that can take (part of) the workload, with the key it is ranked by.
pub(super) struct ClusterOption {
    pub(super) rank: (bool, usize, usize, Reverse<i64>, String),
    /// Who the cluster's provider is, for diversity ([`crate::crd::Provider::identity`]).
    pub(super) provider: String,
    pub(super) target: Target,
}

impl EvaluatedCluster<'_> {
    /// The cluster as a placement option, or `None` when no pool of it may be used.
    pub(super) fn into_option(
        self,
        request: &WorkloadRequest<'_>,
        enforcement: Enforcement,
    ) -> Option<ClusterOption> {
        let current = request
            .current
            .iter()
            .find(|c| c.cluster == self.facts.name);
        // A current placement on an unreachable cluster stays (its pods keep running) unless
        // the workload asked for failover; a new placement never goes to an unreachable cluster.
        let keep_while_unreachable = current.is_some() && !request.preferences.failover;
        let usable = |reason: &Reason| match reason {
            Reason::ClusterUnreachable { .. } => keep_while_unreachable,
            other => enforcement == Enforcement::Audit && other.severity() == Severity::Class,
        };
        if !self.cluster_reasons.iter().all(usable) {
            return None;
        }
        let eligible: Vec<&(&NodePool, Vec<Reason>)> = self
            .pools
            .iter()
            .filter(|(_, reasons)| reasons.iter().all(usable))
            .collect();
        if eligible.is_empty() {
            return None;
        }
        // Audit relaxes class requirements only where it must: if some pools of the cluster
        // are compliant, use just those rather than spreading onto violating ones.
        let eligible: Vec<&(&NodePool, Vec<Reason>)> =
            if eligible.iter().any(|(_, reasons)| reasons.is_empty()) {
                eligible
                    .into_iter()
                    .filter(|(_, reasons)| reasons.is_empty())
                    .collect()
            } else {
                eligible
            };
        // Stability: keep exactly the current pools while all of them remain eligible.
        let chosen: Vec<&(&NodePool, Vec<Reason>)> = match current {
            Some(current)
                if !current.pools.is_empty()
                    && current
                        .pools
                        .iter()
                        .all(|p| eligible.iter().any(|(pool, _)| &pool.name == p)) =>
            {
                eligible
                    .into_iter()
                    .filter(|(pool, _)| current.pools.contains(&pool.name))
                    .collect()
            }
            _ => eligible,
        };

        let mut violations: BTreeSet<Reason> = self
            .cluster_reasons
            .iter()
            .filter(|r| r.severity() == Severity::Class)
            .cloned()
            .collect();
        for (_, reasons) in &chosen {
            violations.extend(
                reasons
                    .iter()
                    .filter(|r| r.severity() == Severity::Class)
                    .cloned(),
            );
        }
        let capacity: i64 = chosen
            .iter()
            .map(|(pool, _)| i64::from(pool.sovereign_nodes))
            .sum();
        let dedicated_to = chosen
            .iter()
            .any(|(pool, _)| pool.dedicated_to.as_deref() == Some(request.class_name))
            .then(|| request.class_name.to_owned());
        let preferred_rank = request
            .preferences
            .preferred_countries
            .iter()
            .position(|c| *c == self.facts.spec.country)
            .unwrap_or(usize::MAX);
        let mut pools: Vec<String> = chosen.iter().map(|(pool, _)| pool.name.clone()).collect();
        pools.sort();
        Some(ClusterOption {
            provider: self.facts.spec.provider.identity().to_owned(),
            rank: (
                current.is_none(),
                violations.len(),
                preferred_rank,
                Reverse(capacity),
                self.facts.name.clone(),
            ),
            target: Target {
                cluster: self.facts.name.clone(),
                country: self.facts.spec.country.clone(),
                pools,
                replicas: 0,
                dedicated_to,
                violations: violations.into_iter().collect(),
                reachable: self.facts.reachability == Reachability::Reachable,
            },
        })
    }
}

/// Chooses `slots` options, best rank first, such that they come from at least `min_providers`
/// distinct providers: first the best option of each provider, in rank order, until that many
/// providers are in; then the best of the rest. `options` must be sorted by rank, and must hold
/// enough options and providers (the engine refuses otherwise).
pub(super) fn choose(
    options: Vec<ClusterOption>,
    slots: usize,
    min_providers: usize,
) -> Vec<ClusterOption> {
    let mut providers = BTreeSet::new();
    let (mut chosen, mut rest): (Vec<_>, Vec<_>) = (Vec::new(), Vec::new());
    for option in options {
        if providers.len() < min_providers && providers.insert(option.provider.clone()) {
            chosen.push(option);
        } else {
            rest.push(option);
        }
    }
    let room = slots.saturating_sub(chosen.len());
    chosen.extend(rest.into_iter().take(room));
    chosen.sort_by(|a, b| a.rank.cmp(&b.rank));
    chosen
}

/// Spreads replicas over the chosen clusters: equal shares, the remainder to the first ones by
/// name. By name, not rank: rank depends on which clusters are current, and re-deciding must not
/// shuffle replicas between the same clusters.
pub(super) fn spread(replicas: i32, mut options: Vec<ClusterOption>) -> Vec<Target> {
    let replicas = replicas.max(0);
    let n = i32::try_from(options.len()).unwrap_or(i32::MAX).max(1);
    options.sort_by(|a, b| a.target.cluster.cmp(&b.target.cluster));
    options
        .into_iter()
        .zip(0..)
        .map(|(option, i)| Target {
            replicas: replicas / n + i32::from(i < replicas % n),
            ..option.target
        })
        .collect()
}
