//! What changed between the status Sovra recorded and a new decision (pure): it decides which
//! audit record and which Events a reconcile produces. A resync that changes nothing is
//! `Unchanged`, and publishes nothing.

use crate::crd::{SovereignWorkloadStatus, WorkloadPhase};
use crate::policy::{Decision, Outcome};

/// What a decision changed, for Events and the audit trail.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Transition {
    Placed,
    Moved,
    Refused,
    Unchanged,
}

pub(super) fn transition(
    previous: Option<&SovereignWorkloadStatus>,
    decision: &Decision,
) -> Transition {
    let before: Vec<(&str, &[String])> = previous
        .map(|s| {
            s.placements
                .iter()
                .map(|p| (p.cluster.as_str(), p.node_pools.as_slice()))
                .collect()
        })
        .unwrap_or_default();
    let after: Vec<(&str, &[String])> = decision
        .targets()
        .iter()
        .map(|t| (t.cluster.as_str(), t.pools.as_slice()))
        .collect();
    let was_refused = previous.and_then(|s| s.phase) == Some(WorkloadPhase::Refused);
    match &decision.outcome {
        Outcome::Refused(reasons) if was_refused && before.is_empty() => {
            let same = previous.and_then(|s| s.decision.as_ref()).is_some_and(|d| {
                d.reasons
                    .iter()
                    .cloned()
                    .eq(reasons.iter().map(ToString::to_string))
            });
            if same {
                Transition::Unchanged
            } else {
                Transition::Refused
            }
        }
        Outcome::Refused(_) => Transition::Refused,
        Outcome::Placed(_) if before.is_empty() => Transition::Placed,
        Outcome::Placed(_) if before != after => Transition::Moved,
        Outcome::Placed(_) => Transition::Unchanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Placement;
    use crate::policy::Reason;
    use crate::policy::Target;

    fn placed(cluster: &str, pool: &str) -> Decision {
        Decision {
            enforcement: Default::default(),
            outcome: Outcome::Placed(vec![Target {
                cluster: cluster.into(),
                country: "NL".into(),
                pools: vec![pool.into()],
                replicas: 1,
                dedicated_to: None,
                violations: vec![],
                reachable: true,
            }]),
            verdicts: Default::default(),
        }
    }

    fn status_on(cluster: &str, pool: &str) -> SovereignWorkloadStatus {
        SovereignWorkloadStatus {
            phase: Some(WorkloadPhase::Placed),
            placements: vec![Placement {
                cluster: cluster.into(),
                node_pools: vec![pool.into()],
                ..Placement::default()
            }],
            ..SovereignWorkloadStatus::default()
        }
    }

    #[test]
    fn first_placement_is_placed_a_different_pool_is_a_move_and_the_same_is_unchanged() {
        assert_eq!(transition(None, &placed("a", "p")), Transition::Placed);
        assert_eq!(
            transition(Some(&status_on("a", "p")), &placed("a", "q")),
            Transition::Moved
        );
        assert_eq!(
            transition(Some(&status_on("a", "p")), &placed("a", "p")),
            Transition::Unchanged
        );
    }

    #[test]
    fn a_repeated_identical_refusal_is_not_reported_again() {
        let refused = Decision::refused(Reason::NoClusters);
        let mut status = SovereignWorkloadStatus {
            phase: Some(WorkloadPhase::Refused),
            decision: Some(crate::policy::decision_record(&refused)),
            ..SovereignWorkloadStatus::default()
        };
        assert_eq!(transition(Some(&status), &refused), Transition::Unchanged);
        status.decision = None;
        assert_eq!(transition(Some(&status), &refused), Transition::Refused);
        assert_eq!(
            transition(Some(&status_on("a", "p")), &refused),
            Transition::Refused
        );
    }
}
