//! Exit readiness (pure): could a placed workload carry on if one of its providers fell away
//! now? Its alternatives are the compliant clusters of *other* providers (by parent) that could
//! host it at this moment. A workload on one provider with no alternative is stranded; one
//! spread over several providers is not, since losing any one leaves it running on the others.
//! This is an early warning, never a refusal: a stranded workload keeps running.

use super::decision::{ClusterFacts, Decision, Outcome};
use std::collections::BTreeSet;

/// A compliant cluster of another provider that could host the workload now.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Alternative {
    pub cluster: String,
    /// The provider's identity: its parent's name, else its own.
    pub provider: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitReadiness {
    /// The providers the workload runs on now.
    pub providers: Vec<String>,
    /// Sorted by cluster name.
    pub alternatives: Vec<Alternative>,
}

impl ExitReadiness {
    /// Losing a provider would leave it nowhere to go: it runs on a single provider and no
    /// compliant cluster of another provider could take it.
    pub fn stranded(&self) -> bool {
        self.alternatives.is_empty() && self.providers.len() < 2
    }
}

/// The exit readiness of a placed decision, made from `clusters`; `None` for a refusal.
pub fn exit_readiness(decision: &Decision, clusters: &[ClusterFacts]) -> Option<ExitReadiness> {
    let Outcome::Placed(targets) = &decision.outcome else {
        return None;
    };
    let provider_of = |name: &str| {
        clusters
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.spec.provider.identity().to_owned())
    };
    let providers: BTreeSet<String> = targets
        .iter()
        .filter_map(|t| provider_of(&t.cluster))
        .collect();
    let mut alternatives: Vec<Alternative> = decision
        .verdicts
        .iter()
        .filter(|v| v.pool.is_none() && v.compliant)
        .filter_map(|v| {
            let provider = provider_of(&v.cluster)?;
            (!providers.contains(&provider)).then(|| Alternative {
                cluster: v.cluster.clone(),
                provider,
            })
        })
        .collect();
    alternatives.sort();
    alternatives.dedup();
    Some(ExitReadiness {
        providers: providers.into_iter().collect(),
        alternatives,
    })
}
