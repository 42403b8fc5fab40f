//! The placement decision.
//!
//! Rules, in order of authority:
//! 1. Platform invariants, never relaxed: the cluster and the pool's nodes are in the EU/EEA,
//!    only nodes with the administrator-set sovereign label count, the cluster is reachable
//!    (a current placement on an unreachable cluster is kept unless failover is requested),
//!    and the workload's own `requiredCountries` hold.
//! 2. Class requirements: jurisdiction, countries, provider, operator, certifications and
//!    dedicated pools. `enforcement: audit` reports these instead of refusing.
//! 3. When nothing qualifies the decision is a refusal listing every reason: never a fallback.
//! 4. Among qualifying clusters: keep the current placement (stability), then prefer compliant
//!    over audit-violating, then `preferredCountries` order, then more sovereign nodes, then
//!    name, so the result never depends on input order.

use super::country::jurisdiction_of;
use super::node_pool::NodePool;
use super::reason::{Reason, Severity};
use crate::crd::{
    Enforcement, Jurisdiction, PlacementPreferences, SensitivityClassSpec, SovereignClusterSpec,
};
use std::cmp::Reverse;
use std::collections::BTreeSet;

/// Whether the operator can currently talk to a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reachability {
    Reachable,
    Unreachable(String),
}

/// Everything placement needs to know about one cluster.
#[derive(Clone, Debug)]
pub struct ClusterFacts {
    pub name: String,
    pub spec: SovereignClusterSpec,
    pub reachability: Reachability,
    pub pools: Vec<NodePool>,
}

/// Where the workload runs now (from its status), for stability.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CurrentPlacement {
    pub cluster: String,
    pub pools: Vec<String>,
}

/// The workload side of a decision.
#[derive(Clone, Copy, Debug)]
pub struct WorkloadRequest<'a> {
    pub class_name: &'a str,
    pub class: &'a SensitivityClassSpec,
    pub preferences: &'a PlacementPreferences,
    pub replicas: i32,
    pub current: &'a [CurrentPlacement],
}

/// The verdict on one cluster (`pool: None`) or one of its pools. Empty `reasons` = compliant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub cluster: String,
    pub pool: Option<String>,
    /// For a pool verdict: whether the pool *and* its cluster are compliant.
    pub compliant: bool,
    pub reasons: Vec<Reason>,
}

/// Part of the workload placed on one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub cluster: String,
    pub country: String,
    /// Node pools the pods may be scheduled on (node affinity), sorted.
    pub pools: Vec<String>,
    pub replicas: i32,
    /// Set when a chosen pool is dedicated to the workload's class: pods need its toleration.
    pub dedicated_to: Option<String>,
    /// Class requirements this target does not meet (only ever non-empty under `audit`).
    pub violations: Vec<Reason>,
    /// False only for a kept placement on a cluster that is currently unreachable.
    pub reachable: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Placed(Vec<Target>),
    /// Nothing qualifies. The reasons are the union of every candidate's reasons, sorted.
    Refused(Vec<Reason>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub enforcement: Enforcement,
    pub outcome: Outcome,
    /// Evidence: a verdict for every cluster and every node pool, sorted by cluster then pool.
    pub verdicts: Vec<Verdict>,
}

impl Decision {
    /// A refusal that needs no candidates, e.g. when the class does not exist.
    pub fn refused(reason: Reason) -> Self {
        Self {
            enforcement: Enforcement::Enforce,
            outcome: Outcome::Refused(vec![reason]),
            verdicts: Vec::new(),
        }
    }

    pub fn targets(&self) -> &[Target] {
        match &self.outcome {
            Outcome::Placed(targets) => targets,
            Outcome::Refused(_) => &[],
        }
    }

    /// Class requirements the placement breaks (what `enforce` would have refused).
    pub fn audit_violations(&self) -> Vec<String> {
        let mut out = BTreeSet::new();
        for target in self.targets() {
            for reason in &target.violations {
                out.insert(format!("cluster {}: {reason}", target.cluster));
            }
        }
        out.into_iter().collect()
    }

    /// Why the decision is what it is, one line each: the rejected candidates, or the refusal
    /// reasons when there were no candidates to judge (e.g. the class does not exist).
    pub fn explanation(&self) -> Vec<String> {
        let lines = self.rejection_lines();
        match &self.outcome {
            Outcome::Refused(reasons) if lines.is_empty() => {
                reasons.iter().map(ToString::to_string).collect()
            }
            _ => lines,
        }
    }

    /// Clusters of kept placements that cannot be reached now.
    pub fn unreachable_clusters(&self) -> Vec<&str> {
        self.targets()
            .iter()
            .filter(|t| !t.reachable)
            .map(|t| t.cluster.as_str())
            .collect()
    }

    /// The reason that best explains a refusal, for condition reasons and metric labels: when
    /// some clusters qualify but fewer than asked for, that; otherwise a reason against a
    /// whole cluster outweighs one against a single pool.
    pub fn deciding_reason(&self) -> Option<&Reason> {
        let Outcome::Refused(reasons) = &self.outcome else {
            return None;
        };
        if let Some(too_few) = reasons
            .iter()
            .find(|r| matches!(r, Reason::NotEnoughClusters { found, .. } if *found > 0))
        {
            return Some(too_few);
        }
        let on_clusters = self.verdicts.iter().filter(|v| v.pool.is_none());
        let on_pools = self.verdicts.iter().filter(|v| v.pool.is_some());
        on_clusters
            .chain(on_pools)
            .flat_map(|v| v.reasons.iter())
            .next()
            .or_else(|| reasons.first())
    }

    /// One line per rejected cluster or pool, for Events and the CLI.
    pub fn rejection_lines(&self) -> Vec<String> {
        self.verdicts
            .iter()
            .filter(|v| !v.reasons.is_empty())
            .map(|v| {
                let reasons = v
                    .reasons
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>();
                match &v.pool {
                    Some(pool) => format!("{}/{}: {}", v.cluster, pool, reasons.join("; ")),
                    None => format!("{}: {}", v.cluster, reasons.join("; ")),
                }
            })
            .collect()
    }
}

/// Decides where a workload may run. Pure and deterministic.
///
/// Failover never makes things worse: when a workload asks for it but no reachable compliant
/// alternative exists, its placement on the unreachable cluster is kept (as without failover)
/// rather than refused, because refusing would stop what still runs there the moment the
/// cluster answers again, while making nothing more compliant.
pub fn decide(request: &WorkloadRequest<'_>, clusters: &[ClusterFacts]) -> Decision {
    let decision = decide_once(request, clusters);
    let on_unreachable = request.current.iter().any(|current| {
        clusters.iter().any(|c| {
            c.name == current.cluster && matches!(c.reachability, Reachability::Unreachable(_))
        })
    });
    if request.preferences.failover
        && on_unreachable
        && matches!(decision.outcome, Outcome::Refused(_))
    {
        let without_failover = PlacementPreferences {
            failover: false,
            ..request.preferences.clone()
        };
        let kept = decide_once(
            &WorkloadRequest {
                preferences: &without_failover,
                ..*request
            },
            clusters,
        );
        if matches!(kept.outcome, Outcome::Placed(_)) {
            return kept;
        }
    }
    decision
}

fn decide_once(request: &WorkloadRequest<'_>, clusters: &[ClusterFacts]) -> Decision {
    let enforcement = request.class.enforcement;
    let mut sorted: Vec<&ClusterFacts> = clusters.iter().collect();
    // Names are unique in Kubernetes; should the input still repeat one (hand-written plan
    // manifests), the tie-break keeps the result independent of input order.
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    if sorted
        .windows(2)
        .any(|w| matches!(w, [a, b] if a.name == b.name))
    {
        sorted.sort_by_cached_key(|c| (c.name.clone(), format!("{c:?}")));
        sorted.dedup_by(|a, b| a.name == b.name);
    }

    let mut verdicts = Vec::new();
    let mut options = Vec::new();
    for cluster in sorted {
        let evaluated = evaluate_cluster(request, cluster);
        verdicts.push(Verdict {
            cluster: cluster.name.clone(),
            pool: None,
            compliant: evaluated.cluster_reasons.is_empty()
                && evaluated.pools.iter().any(|(_, r)| r.is_empty()),
            reasons: evaluated.cluster_reasons.clone(),
        });
        for (pool, reasons) in &evaluated.pools {
            verdicts.push(Verdict {
                cluster: cluster.name.clone(),
                pool: Some(pool.name.clone()),
                compliant: evaluated.cluster_reasons.is_empty() && reasons.is_empty(),
                reasons: reasons.clone(),
            });
        }
        if let Some(option) = evaluated.into_option(request, enforcement) {
            options.push(option);
        }
    }

    let wanted = request.preferences.clusters.max(1);
    let wanted_len = usize::try_from(wanted).unwrap_or(usize::MAX);
    if options.len() < wanted_len {
        let mut reasons: BTreeSet<Reason> = verdicts
            .iter()
            .flat_map(|v| v.reasons.iter().cloned())
            .collect();
        if clusters.is_empty() {
            reasons.insert(Reason::NoClusters);
        }
        if wanted > 1 || reasons.is_empty() {
            reasons.insert(Reason::NotEnoughClusters {
                wanted,
                found: i32::try_from(options.len()).unwrap_or(i32::MAX),
            });
        }
        return Decision {
            enforcement,
            outcome: Outcome::Refused(reasons.into_iter().collect()),
            verdicts,
        };
    }

    options.sort_by(|a, b| a.rank.cmp(&b.rank));
    options.truncate(wanted_len);
    let targets = spread(request.replicas, options);
    Decision {
        enforcement,
        outcome: Outcome::Placed(targets),
        verdicts,
    }
}

struct EvaluatedCluster<'a> {
    facts: &'a ClusterFacts,
    cluster_reasons: Vec<Reason>,
    pools: Vec<(&'a NodePool, Vec<Reason>)>,
}

/// A cluster that can take (part of) the workload, with the key it is ranked by.
struct ClusterOption {
    rank: (bool, usize, usize, Reverse<i64>, String),
    target: Target,
}

fn evaluate_cluster<'a>(
    request: &WorkloadRequest<'_>,
    cluster: &'a ClusterFacts,
) -> EvaluatedCluster<'a> {
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

    let mut pools: Vec<(&NodePool, Vec<Reason>)> = cluster
        .pools
        .iter()
        .map(|pool| (pool, pool_reasons(request, &spec.country, pool)))
        .collect();
    pools.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    reasons.sort();
    reasons.dedup();
    EvaluatedCluster {
        facts: cluster,
        cluster_reasons: reasons,
        pools,
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

impl EvaluatedCluster<'_> {
    /// The cluster as a placement option, or `None` when no pool of it may be used.
    fn into_option(
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

/// Spreads replicas over the chosen clusters: equal shares, the remainder to the first ones by
/// name. By name, not rank: rank depends on which clusters are current, and re-deciding must not
/// shuffle replicas between the same clusters.
fn spread(replicas: i32, mut options: Vec<ClusterOption>) -> Vec<Target> {
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
