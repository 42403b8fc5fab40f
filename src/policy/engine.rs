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

use super::candidates::Candidates;
use super::cluster_option::{ClusterOption, choose, spread};
use super::decision::{ClusterFacts, Decision, Outcome, Reachability, WorkloadRequest};
use super::reason::Reason;
use crate::crd::PlacementPreferences;
use std::borrow::Cow;
use std::collections::BTreeSet;

/// Decides where a workload may run among `clusters`. Pure and deterministic; for many
/// decisions in one world, [`Candidates::decide`] shares the work that does not depend on the
/// workload.
pub fn decide(request: &WorkloadRequest<'_>, clusters: &[ClusterFacts]) -> Decision {
    Candidates::new(clusters.to_vec()).decide(request)
}

impl Candidates {
    /// Decides where a workload may run. Pure and deterministic: the same world and request
    /// give the same decision as [`decide`], however many decisions came before.
    ///
    /// Failover never makes things worse: when a workload asks for it but no reachable
    /// compliant alternative exists, its placement on the unreachable cluster is kept (as
    /// without failover) rather than refused, because refusing would stop what still runs
    /// there the moment the cluster answers again, while making nothing more compliant.
    pub fn decide(&self, request: &WorkloadRequest<'_>) -> Decision {
        let decision = self.decide_once(request);
        let on_unreachable = request.current.iter().any(|current| {
            self.clusters().iter().any(|c| {
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
            let kept = self.decide_once(&WorkloadRequest {
                preferences: &without_failover,
                ..*request
            });
            if matches!(kept.outcome, Outcome::Placed(_)) {
                return kept;
            }
        }
        decision
    }

    fn decide_once(&self, request: &WorkloadRequest<'_>) -> Decision {
        let enforcement = request.class.enforcement;
        let view = self.view(request);
        let preferences = request.preferences;
        let mut options: Vec<ClusterOption<'_>> = Vec::new();
        for (position, (facts, judged)) in self.clusters().iter().zip(&view.clusters).enumerate() {
            let current = request.current.iter().find(|c| c.cluster == facts.name);
            // The shared offer holds for every workload not placed on the cluster; where the
            // workload runs now, stability and failover make its offer its own.
            let offer = match current {
                None => judged.offer.as_ref().map(Cow::Borrowed),
                Some(current) => judged
                    .evaluated
                    .offer(
                        facts,
                        request.class_name,
                        enforcement,
                        Some(current),
                        preferences.failover,
                    )
                    .map(Cow::Owned),
            };
            if let Some(offer) = offer {
                options.push(ClusterOption::new(
                    facts,
                    position,
                    offer,
                    current.is_some(),
                    &preferences.preferred_countries,
                ));
            }
        }

        let wanted = preferences.clusters.max(1);
        let wanted_len = usize::try_from(wanted).unwrap_or(usize::MAX);
        let min_providers = request.min_providers();
        let min_providers_len = usize::try_from(min_providers).unwrap_or(usize::MAX);
        // A platform rule: too few providers refuses under `audit` too, and is never weakened.
        // With one provider required, having none is already said by every candidate's reasons.
        let too_few_providers = (min_providers_len > 1)
            .then(|| {
                options
                    .iter()
                    .map(ClusterOption::provider)
                    .collect::<BTreeSet<_>>()
            })
            .filter(|providers| providers.len() < min_providers_len)
            .map(|providers| Reason::NotEnoughProviders {
                wanted: min_providers,
                found: providers.into_iter().map(str::to_owned).collect(),
            });
        if options.len() < wanted_len || too_few_providers.is_some() {
            let mut reasons: BTreeSet<Reason> = view.reasons.iter().cloned().collect();
            if self.clusters().is_empty() {
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
                verdicts: view.verdicts.clone(),
            };
        }

        options.sort_unstable_by_key(|option| option.rank);
        let chosen = choose(
            options,
            wanted_len.max(min_providers_len),
            min_providers_len,
        );
        let targets = spread(request.replicas, request.class_name, chosen);
        Decision {
            enforcement,
            outcome: Outcome::Placed(targets),
            verdicts: view.verdicts.clone(),
        }
    }
}
