//! How the placement decision is made.
//!
//! Rules, in order of authority:
//! 1. Platform invariants, never relaxed: the cluster and the pool's nodes are in the EU/EEA,
//!    only nodes with the administrator-set sovereign label count, the cluster is reachable
//!    (a current placement on an unreachable cluster is kept unless failover is requested),
//!    and the workload's own `requiredCountries` hold.
//! 2. Class requirements: jurisdiction, countries, provider, operator, certifications and
//!    dedicated pools. `enforcement: audit` reports these instead of refusing.
//! 3. When nothing qualifies the decision is a refusal listing every reason: never a fallback.
//!    Too few qualifying clusters (`clusters`) or distinct providers (`minProviders`, by
//!    parent) is a refusal too; no requirement is weakened to place.
//! 4. Among qualifying clusters: keep the current placement (stability), then prefer compliant
//!    over audit-violating, then `preferredCountries` order, then more sovereign nodes, then
//!    name, so the result never depends on input order. With `minProviders` N, the best
//!    cluster of each of N providers is taken first, then the best of the rest.

use super::cluster_option::{choose, spread};
use super::decision::{ClusterFacts, Decision, Outcome, Reachability, Verdict, WorkloadRequest};
use super::evaluation::evaluate_cluster;
use super::reason::Reason;
use crate::crd::PlacementPreferences;
use std::collections::BTreeSet;

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
    let min_providers = request.min_providers();
    let min_providers_len = usize::try_from(min_providers).unwrap_or(usize::MAX);
    let providers: BTreeSet<String> = options.iter().map(|o| o.provider.clone()).collect();
    // A platform rule: too few providers refuses under `audit` too, and is never weakened.
    // With one provider required, having none is already said by every candidate's reasons.
    let too_few_providers =
        (min_providers_len > 1 && providers.len() < min_providers_len).then(|| {
            Reason::NotEnoughProviders {
                wanted: min_providers,
                found: providers.iter().cloned().collect(),
            }
        });
    if options.len() < wanted_len || too_few_providers.is_some() {
        let mut reasons: BTreeSet<Reason> = verdicts
            .iter()
            .flat_map(|v| v.reasons.iter().cloned())
            .collect();
        if clusters.is_empty() {
            reasons.insert(Reason::NoClusters);
        }
        reasons.extend(too_few_providers);
        if options.len() < wanted_len && (wanted > 1 || reasons.is_empty()) {
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
    let chosen = choose(
        options,
        wanted_len.max(min_providers_len),
        min_providers_len,
    );
    let targets = spread(request.replicas, chosen);
    Decision {
        enforcement,
        outcome: Outcome::Placed(targets),
        verdicts,
    }
}
