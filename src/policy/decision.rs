//! What a placement decision is made from and what it says: the facts about clusters and the
//! workload's request going in, the outcome and the evidence for it coming out. Apart from
//! the algorithm, so the controller, `sovra plan` and the status records can read a decision
//! without depending on how it is made.

use super::node_pool::NodePool;
use super::reason::Reason;
use crate::crd::{Enforcement, PlacementPreferences, SensitivityClassSpec, SovereignClusterSpec};
use std::collections::BTreeSet;
use std::sync::Arc;

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

impl WorkloadRequest<'_> {
    /// Distinct providers the workload must be spread over: the class's
    /// `continuity.minProviders`, raised (never lowered) by the workload's own.
    pub fn min_providers(&self) -> i32 {
        self.class
            .continuity
            .min_providers
            .max(self.preferences.min_providers.unwrap_or(1))
            .max(1)
    }
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
    /// Shared by the decisions of one class in one world ([`super::Candidates`]).
    pub verdicts: Arc<[Verdict]>,
}

impl Decision {
    /// A refusal that needs no candidates, e.g. when the class does not exist.
    pub fn refused(reason: Reason) -> Self {
        Self {
            enforcement: Enforcement::Enforce,
            outcome: Outcome::Refused(vec![reason]),
            verdicts: Arc::default(),
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
        if let Some(too_few) = reasons.iter().find(|r| {
            matches!(r, Reason::NotEnoughClusters { found, .. } if *found > 0)
                || matches!(r, Reason::NotEnoughProviders { found, .. } if !found.is_empty())
        }) {
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
