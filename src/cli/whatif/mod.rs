//! What-if (pure): each workload decided again in another world, starting from where it runs
//! before (so a placement that stays valid is kept, as the operator keeps it), and what that
//! changes for it: kept, moved, refused or newly placed; and whether it would be stranded.
//!
//! Offline (`--without`), "before" is the plan without the removal; live, it is the placements
//! the hub recorded in `status.placements`.

pub mod render;
mod without;

pub use without::{Removal, Without, parse_without, remove};

use crate::crd::{Placement, SensitivityClassSpec, SovereignWorkload};
use crate::policy::{
    Candidates, ClusterFacts, Decision, ExitReadiness, Outcome, Target, decide_for_workload,
    exit_readiness,
};
use std::collections::{BTreeMap, BTreeSet};

/// What the other world changes for one workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Placed before and after on the same clusters and pools.
    Kept,
    /// Placed before and after, but not on the same clusters and pools.
    Moved,
    /// Placed before, refused now.
    Refused,
    /// Not placed before, and refused now too.
    StillRefused,
    /// Not placed before, placed now.
    NewlyPlaced,
}

impl Change {
    /// As printed and in JSON (`kind`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Kept => "kept",
            Self::Moved => "moved",
            Self::Refused => "refused",
            Self::StillRefused => "still refused",
            Self::NewlyPlaced => "newly placed",
        }
    }
}

/// One workload in the other world.
#[derive(Clone, Debug)]
pub struct WhatIf<'a> {
    pub workload: &'a SovereignWorkload,
    /// Where it ran before; empty when it was not placed.
    pub before: Vec<Placement>,
    /// The decision in the other world, made with `before` as its current placement.
    pub decision: Decision,
    pub change: Change,
    /// Exit readiness in the other world; `None` when refused there.
    pub exit: Option<ExitReadiness>,
}

impl WhatIf<'_> {
    pub fn stranded(&self) -> bool {
        self.exit.as_ref().is_some_and(ExitReadiness::stranded)
    }

    pub fn refused(&self) -> bool {
        matches!(self.decision.outcome, Outcome::Refused(_))
    }
}

/// Decides every workload in `clusters` through the operator's own path
/// ([`decide_for_workload`]), each with its `before` placements as the current ones.
pub fn what_if<'a>(
    before: Vec<(&'a SovereignWorkload, Vec<Placement>)>,
    classes: &BTreeMap<String, SensitivityClassSpec>,
    clusters: &[ClusterFacts],
) -> Vec<WhatIf<'a>> {
    let candidates = Candidates::new(clusters.to_vec());
    before
        .into_iter()
        .map(|(workload, before)| {
            let decision = decide_for_workload(&placed_at(workload, &before), classes, &candidates);
            WhatIf {
                workload,
                change: classify(&before, &decision),
                exit: exit_readiness(&decision, clusters),
                before,
                decision,
            }
        })
        .collect()
}

/// The workload as if its status recorded `placements`.
fn placed_at(workload: &SovereignWorkload, placements: &[Placement]) -> SovereignWorkload {
    let mut workload = workload.clone();
    workload
        .status
        .get_or_insert_with(Default::default)
        .placements = placements.to_vec();
    workload
}

/// Kept when the decision uses the same clusters with the same pools as before (replica
/// counts may differ: that is a scale, not a move).
pub fn classify(before: &[Placement], after: &Decision) -> Change {
    match (&after.outcome, before.is_empty()) {
        (Outcome::Refused(_), false) => Change::Refused,
        (Outcome::Refused(_), true) => Change::StillRefused,
        (Outcome::Placed(_), true) => Change::NewlyPlaced,
        (Outcome::Placed(targets), false) => {
            let was: BTreeSet<(&str, BTreeSet<&str>)> = before
                .iter()
                .map(|p| (p.cluster.as_str(), strs(&p.node_pools)))
                .collect();
            let is: BTreeSet<(&str, BTreeSet<&str>)> = targets
                .iter()
                .map(|t: &Target| (t.cluster.as_str(), strs(&t.pools)))
                .collect();
            if was == is {
                Change::Kept
            } else {
                Change::Moved
            }
        }
    }
}

fn strs(names: &[String]) -> BTreeSet<&str> {
    names.iter().map(String::as_str).collect()
}

/// What the other world does to one class's workloads.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassSummary {
    pub class: String,
    pub workloads: usize,
    pub kept: usize,
    pub moved: usize,
    pub newly_placed: usize,
    /// Refused in the other world, placed before or not.
    pub refused: usize,
    /// Of those, the ones that were placed before.
    pub newly_refused: usize,
    /// Placed in the other world without a compliant cluster of another provider.
    pub stranded: usize,
}

/// One summary per class, by class name; the last one is the total (class `*`).
pub fn summarize(items: &[WhatIf<'_>]) -> Vec<ClassSummary> {
    let mut classes: BTreeMap<&str, ClassSummary> = BTreeMap::new();
    let mut total = ClassSummary {
        class: "*".to_owned(),
        ..ClassSummary::default()
    };
    for item in items {
        let class = item.workload.spec.sensitivity.as_str();
        let summary = classes.entry(class).or_insert_with(|| ClassSummary {
            class: class.to_owned(),
            ..ClassSummary::default()
        });
        for s in [summary, &mut total] {
            s.workloads += 1;
            match item.change {
                Change::Kept => s.kept += 1,
                Change::Moved => s.moved += 1,
                Change::NewlyPlaced => s.newly_placed += 1,
                Change::Refused => {
                    s.refused += 1;
                    s.newly_refused += 1;
                }
                Change::StillRefused => s.refused += 1,
            }
            if item.stranded() {
                s.stranded += 1;
            }
        }
    }
    classes.into_values().chain([total]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Enforcement;
    use crate::policy::Reason;

    fn placement(cluster: &str, pools: &[&str], replicas: i32) -> Placement {
        Placement {
            cluster: cluster.to_owned(),
            country: "NL".to_owned(),
            node_pools: pools.iter().map(|p| (*p).to_owned()).collect(),
            replicas,
            ready_replicas: 0,
        }
    }

    fn placed(targets: &[(&str, &[&str], i32)]) -> Decision {
        Decision {
            enforcement: Enforcement::Enforce,
            outcome: Outcome::Placed(
                targets
                    .iter()
                    .map(|(cluster, pools, replicas)| Target {
                        cluster: (*cluster).to_owned(),
                        country: "NL".to_owned(),
                        pools: pools.iter().map(|p| (*p).to_owned()).collect(),
                        replicas: *replicas,
                        dedicated_to: None,
                        violations: Vec::new(),
                        reachable: true,
                    })
                    .collect(),
            ),
            verdicts: Default::default(),
        }
    }

    fn refused() -> Decision {
        Decision::refused(Reason::NoClusters)
    }

    #[test]
    fn each_workload_is_classified_by_where_it_ran_and_where_it_would_run() {
        let a = placement("a", &["gov"], 2);
        let table: [(&str, Vec<Placement>, Decision, Change); 8] = [
            (
                "same cluster and pool",
                vec![a.clone()],
                placed(&[("a", &["gov"], 2)]),
                Change::Kept,
            ),
            (
                "only the replicas differ",
                vec![a.clone()],
                placed(&[("a", &["gov"], 5)]),
                Change::Kept,
            ),
            (
                "same pools in another order",
                vec![placement("a", &["x", "y"], 2)],
                placed(&[("a", &["y", "x"], 2)]),
                Change::Kept,
            ),
            (
                "another cluster",
                vec![a.clone()],
                placed(&[("b", &["gov"], 2)]),
                Change::Moved,
            ),
            (
                "another pool",
                vec![a.clone()],
                placed(&[("a", &["spare"], 2)]),
                Change::Moved,
            ),
            (
                "spread onto a second cluster",
                vec![a.clone()],
                placed(&[("a", &["gov"], 1), ("b", &["gov"], 1)]),
                Change::Moved,
            ),
            ("placed, then refused", vec![a], refused(), Change::Refused),
            (
                "refused both times",
                Vec::new(),
                refused(),
                Change::StillRefused,
            ),
        ];
        for (what, before, after, expected) in table {
            assert_eq!(classify(&before, &after), expected, "{what}");
        }
        assert_eq!(
            classify(&[], &placed(&[("a", &["gov"], 1)])),
            Change::NewlyPlaced
        );
    }

    #[test]
    fn labels_are_lower_case_words() {
        let labels: Vec<&str> = [
            Change::Kept,
            Change::Moved,
            Change::Refused,
            Change::StillRefused,
            Change::NewlyPlaced,
        ]
        .map(Change::label)
        .to_vec();
        assert_eq!(
            labels,
            ["kept", "moved", "refused", "still refused", "newly placed"]
        );
    }

    #[test]
    fn the_summary_counts_per_class_and_in_total() {
        let workload = |class: &str| {
            let mut w = SovereignWorkload::new(
                "w",
                serde_json::from_value(serde_json::json!({
                    "sensitivity": class, "template": {}
                }))
                .unwrap(),
            );
            w.metadata.namespace = Some("ns".into());
            w
        };
        let (internal, secret) = (workload("internal"), workload("secret"));
        let item = |w, change, exit: Option<ExitReadiness>| WhatIf {
            workload: w,
            before: Vec::new(),
            decision: refused(),
            change,
            exit,
        };
        let stranded = || {
            Some(ExitReadiness {
                providers: vec!["p".into()],
                alternatives: Vec::new(),
            })
        };
        let items = [
            item(&internal, Change::Kept, stranded()),
            item(&internal, Change::Moved, None),
            item(&internal, Change::Refused, None),
            item(&secret, Change::StillRefused, None),
            item(&secret, Change::NewlyPlaced, stranded()),
        ];
        let summary = summarize(&items);
        let counts = |s: &ClassSummary| {
            (
                s.class.clone(),
                [
                    s.workloads,
                    s.kept,
                    s.moved,
                    s.newly_placed,
                    s.refused,
                    s.newly_refused,
                    s.stranded,
                ],
            )
        };
        assert_eq!(
            summary.iter().map(counts).collect::<Vec<_>>(),
            [
                ("internal".to_owned(), [3, 1, 1, 0, 1, 1, 1]),
                ("secret".to_owned(), [2, 0, 0, 1, 1, 0, 1]),
                ("*".to_owned(), [5, 1, 1, 1, 2, 1, 2]),
            ]
        );
    }
}
