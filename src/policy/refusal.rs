//! A refusal said the way an expert would say it: first the deciding constraint, the fewest
//! requirements that together rule out every candidate, with what was required and what
//! exists; then the nearest candidate and exactly what it lacks. The full per-candidate list
//! stays in the decision's verdicts (`status.decision`, `sovra plan --explain`).
//!
//! A candidate is a (cluster, pool) pair, or a cluster without pools. What it misses are the
//! reasons against its cluster and against its pool that block it (under `audit`, class
//! requirements do not). Reasons are grouped into requirement kinds; the deciding constraint
//! is a minimum hitting set over those kinds, found by exact search by increasing size (there
//! are few kinds), ties broken by the order of `Kind`.

mod shortfall;
mod wording;

#[cfg(test)]
mod tests;

use super::decision::{ClusterFacts, Decision, Outcome};
use super::reason::{Reason, Severity};
use crate::crd::{Enforcement, PlacementPreferences};
use std::collections::BTreeSet;
use std::fmt;

/// What an expert says first about a refusal. `Display` gives the one-paragraph headline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusalSummary {
    /// The constraint that decides the refusal: what was required and what exists.
    pub deciding: String,
    /// The candidate closest to qualifying and what it lacks, when there is one.
    pub nearest: Option<String>,
}

impl RefusalSummary {
    /// The summary as one paragraph, for Events, conditions and `sovra plan`.
    pub fn headline(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for RefusalSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.deciding)?;
        match &self.nearest {
            Some(nearest) => write!(f, "; nearest: {nearest}"),
            None => Ok(()),
        }
    }
}

/// A requirement a candidate can miss, in the order an expert names them when several would
/// explain a refusal equally well: the workload's own request, then the class's location,
/// provider and certification requirements, then the node pool, then reachability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    RequestedCountry,
    ClassCountry,
    Jurisdiction,
    EuEea,
    ProviderHeadquarters,
    ProviderExposure,
    Operator,
    Certifications,
    AnyCertification,
    SovereignPool,
    DedicatedPool,
    OtherClassPool,
    PoolLocation,
    Reachable,
}

/// What part a reason plays in a refusal.
enum Role<'a> {
    /// A requirement one candidate misses.
    Requirement(Kind),
    /// The decision as a whole falls short of a number (said first when some qualify).
    /// `named`: what qualifies, when the reason says; otherwise the qualifying clusters.
    Shortfall {
        wanted: i32,
        found: i32,
        counted: &'static str,
        named: Option<&'a [String]>,
    },
    /// Needs no candidates: said as is.
    Alone(String),
}

/// The one place a reason is classified. A new per-candidate reason is a `Requirement` arm
/// (with a new `Kind`); a new reason about the whole decision, such as a number of distinct
/// providers, is a `Shortfall` arm naming what qualifies.
fn role(reason: &Reason) -> Role<'_> {
    let kind = match reason {
        Reason::CountryNotRequested { .. } => Kind::RequestedCountry,
        Reason::CountryNotAllowed { .. } => Kind::ClassCountry,
        Reason::JurisdictionNotAllowed { .. } => Kind::Jurisdiction,
        Reason::OutsideEuEea { .. } => Kind::EuEea,
        Reason::ProviderHeadquartersNotAllowed { .. } => Kind::ProviderHeadquarters,
        Reason::ExtraterritorialExposure { .. } => Kind::ProviderExposure,
        Reason::OperatorNotAllowed { .. } => Kind::Operator,
        Reason::MissingCertifications { .. } => Kind::Certifications,
        Reason::NoneOfCertifications { .. } => Kind::AnyCertification,
        Reason::NoSovereignPool | Reason::PoolNotSovereign => Kind::SovereignPool,
        Reason::PoolNotDedicated { .. } => Kind::DedicatedPool,
        Reason::PoolDedicatedToOtherClass { .. } => Kind::OtherClassPool,
        Reason::PoolLocationUnknown => Kind::PoolLocation,
        Reason::ClusterUnreachable { .. } => Kind::Reachable,
        Reason::NotEnoughClusters { wanted, found } => {
            return Role::Shortfall {
                wanted: *wanted,
                found: *found,
                counted: "distinct compliant clusters",
                named: None,
            };
        }
        Reason::NotEnoughProviders { wanted, found } => {
            return Role::Shortfall {
                wanted: *wanted,
                found: i32::try_from(found.len()).unwrap_or(i32::MAX),
                counted: "distinct providers (minProviders)",
                named: Some(found),
            };
        }
        Reason::NoClusters => {
            return Role::Alone(
                "no SovereignCluster exists, so there is nowhere to place anything".to_owned(),
            );
        }
        Reason::ClassNotFound { class } => {
            return Role::Alone(format!(
                "SensitivityClass {class} does not exist, so nothing can be proven about where the workload may run"
            ));
        }
    };
    Role::Requirement(kind)
}

/// One blocking reason of a candidate.
struct Miss<'a> {
    kind: Kind,
    reason: &'a Reason,
    /// Against the whole cluster rather than the candidate's pool.
    on_cluster: bool,
}

struct Candidate<'a> {
    cluster: &'a str,
    pool: Option<&'a str>,
    misses: Vec<Miss<'a>>,
}

impl Candidate<'_> {
    fn kinds(&self) -> BTreeSet<Kind> {
        self.misses.iter().map(|m| m.kind).collect()
    }

    fn name(&self) -> String {
        match self.pool {
            Some(pool) => format!("{}/{pool}", self.cluster),
            None => self.cluster.to_owned(),
        }
    }
}

/// The summary of a refused decision; `None` when the decision placed the workload.
/// `clusters` are the facts the decision was made from, `preferences` the workload's request.
pub fn refusal_summary(
    decision: &Decision,
    clusters: &[ClusterFacts],
    preferences: &PlacementPreferences,
) -> Option<RefusalSummary> {
    let Outcome::Refused(reasons) = &decision.outcome else {
        return None;
    };
    let mut shortfalls = Vec::new();
    for reason in reasons {
        match role(reason) {
            Role::Alone(deciding) => {
                return Some(RefusalSummary {
                    deciding,
                    nearest: None,
                });
            }
            Role::Shortfall {
                wanted,
                found,
                counted,
                named,
            } if found > 0 => shortfalls.push((wanted, found, counted, named)),
            _ => {}
        }
    }
    let candidates = candidates(decision);
    if !shortfalls.is_empty() {
        let (qualifying, deciding) = shortfall::said(&shortfalls, &candidates, clusters);
        let rest: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| !qualifying.contains(c.cluster))
            .collect();
        return Some(RefusalSummary {
            deciding,
            nearest: nearest(&rest, decision.enforcement),
        });
    }
    let sets: Vec<BTreeSet<Kind>> = candidates.iter().map(Candidate::kinds).collect();
    if candidates.is_empty() || sets.iter().any(BTreeSet::is_empty) {
        // Nothing the candidates lack explains the refusal: say its reasons as they are.
        let deciding = reasons
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Some(RefusalSummary {
            deciding,
            nearest: None,
        });
    }
    let kinds = hitting_set(&sets);
    let all: Vec<&Candidate> = candidates.iter().collect();
    Some(RefusalSummary {
        deciding: wording::deciding(&kinds, &candidates, clusters, preferences),
        nearest: nearest(&all, decision.enforcement),
    })
}

/// Every candidate with its blocking reasons, sorted by cluster then pool.
fn candidates(decision: &Decision) -> Vec<Candidate<'_>> {
    let audit = decision.enforcement == Enforcement::Audit;
    let misses = |reasons, on_cluster| blocking(reasons, on_cluster, audit);
    let mut out = Vec::new();
    for cluster in decision.verdicts.iter().filter(|v| v.pool.is_none()) {
        let pools: Vec<_> = decision
            .verdicts
            .iter()
            .filter(|v| v.cluster == cluster.cluster && v.pool.is_some())
            .collect();
        if pools.is_empty() {
            out.push(Candidate {
                cluster: &cluster.cluster,
                pool: None,
                misses: misses(&cluster.reasons, true),
            });
        }
        for pool in pools {
            let mut all = misses(&cluster.reasons, true);
            all.extend(misses(&pool.reasons, false));
            all.sort_by_key(|m| m.kind);
            out.push(Candidate {
                cluster: &cluster.cluster,
                pool: pool.pool.as_deref(),
                misses: all,
            });
        }
    }
    out.sort_by(|a, b| (a.cluster, a.pool).cmp(&(b.cluster, b.pool)));
    out
}

/// The reasons that keep a candidate out (under `audit`, class requirements do not).
fn blocking(reasons: &[Reason], on_cluster: bool, audit: bool) -> Vec<Miss<'_>> {
    reasons
        .iter()
        .filter(|r| !(audit && r.severity() == Severity::Class))
        .filter_map(|reason| match role(reason) {
            Role::Requirement(kind) => Some(Miss {
                kind,
                reason,
                on_cluster,
            }),
            Role::Shortfall { .. } | Role::Alone(_) => None,
        })
        .collect()
}

/// The smallest set of kinds every candidate misses one of; among sets of that size, the first
/// in the order of `Kind`. Every set in `sets` is non-empty.
fn hitting_set(sets: &[BTreeSet<Kind>]) -> Vec<Kind> {
    let present: Vec<Kind> = sets
        .iter()
        .flatten()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    (1..=present.len())
        .find_map(|size| first_hitting(&present, size, &mut Vec::new(), sets))
        .unwrap_or(present)
}

/// Extends `chosen` with kinds of `from`, in order, to `size` kinds hitting every set.
fn first_hitting(
    from: &[Kind],
    size: usize,
    chosen: &mut Vec<Kind>,
    sets: &[BTreeSet<Kind>],
) -> Option<Vec<Kind>> {
    if chosen.len() == size {
        let hits = sets.iter().all(|s| chosen.iter().any(|k| s.contains(k)));
        return hits.then(|| chosen.clone());
    }
    let mut rest = from;
    while let Some((kind, tail)) = rest.split_first() {
        chosen.push(*kind);
        if let Some(found) = first_hitting(tail, size, chosen, sets) {
            return Some(found);
        }
        chosen.pop();
        rest = tail;
    }
    None
}

/// The candidate missing the fewest kinds (ties: fewer missing items, e.g. one certification
/// rather than two; then by cluster and pool) and what it lacks.
fn nearest(candidates: &[&Candidate], enforcement: Enforcement) -> Option<String> {
    let items = |c: &Candidate| -> usize {
        c.misses
            .iter()
            .map(|m| match m.reason {
                Reason::MissingCertifications { missing } => missing.len(),
                _ => 1,
            })
            .sum()
    };
    let best = candidates
        .iter()
        .filter(|c| !c.misses.is_empty())
        .min_by_key(|c| (c.kinds().len(), items(c), c.cluster, c.pool))?;
    let labels: Vec<&str> = best.kinds().into_iter().map(wording::label).collect();
    let mut lacks: Vec<String> = Vec::new();
    for miss in &best.misses {
        let text = miss.reason.to_string();
        if !lacks.contains(&text) {
            lacks.push(text);
        }
    }
    let which = match enforcement {
        Enforcement::Enforce => "every requirement",
        Enforcement::Audit => "every enforced requirement",
    };
    Some(format!(
        "{}, which meets {which} but {} ({})",
        best.name(),
        wording::and(&labels),
        lacks.join("; ")
    ))
}
