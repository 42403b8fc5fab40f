//! Drift's rule (pure): may a pod of a workload run on a given node? It reads the same node
//! facts the engine places with ([`NodeFacts`]: the sovereign label and the pool label), and
//! judges against the decision the engine makes now as well as the placement in status.

use super::candidates::Candidates;
use super::node_pool::NodeFacts;
use super::workload::decide_for_workload;
use super::{Outcome, SOVEREIGN_NODE_LABEL};
use crate::crd::{SensitivityClassSpec, SovereignWorkload};
use std::collections::BTreeMap;

/// What a workload allows on one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allowed {
    /// The workload is placed on the cluster onto these pools.
    Pools(Vec<String>),
    /// The workload allows nothing on the cluster; the reason says why.
    Nothing(String),
}

/// The workload a pod's `sovra.dev/workload` label names, as the API server has it.
#[derive(Clone, Copy, Debug)]
pub enum PodOwner<'a> {
    Missing,
    /// It exists but does not match the schema, so it is not placed.
    Invalid,
    Workload(&'a SovereignWorkload),
}

/// What workload `name` allows on `cluster`, judged against the decision the engine makes now,
/// not only against status: a child applied just before a failed status write runs pods the
/// status does not show yet. Pools of the placement in status stay allowed too, since during a
/// move the old pods run until the new ones are placed (make before break).
pub fn allowed_on(
    cluster: &str,
    name: &str,
    owner: PodOwner<'_>,
    classes: &BTreeMap<String, SensitivityClassSpec>,
    candidates: &Candidates,
) -> Allowed {
    let workload = match owner {
        PodOwner::Missing => return Allowed::Nothing(format!("workload {name} does not exist")),
        PodOwner::Invalid => {
            return Allowed::Nothing(format!(
                "workload {name} does not match the SovereignWorkload schema and is not placed"
            ));
        }
        PodOwner::Workload(workload) => workload,
    };
    let decision = decide_for_workload(workload, classes, candidates);
    if matches!(decision.outcome, Outcome::Refused(_)) {
        return Allowed::Nothing(format!("workload {name} is refused; nothing may run"));
    }
    let decided = decision.targets().iter().filter(|t| t.cluster == cluster);
    let recorded = workload
        .status
        .iter()
        .flat_map(|s| s.placements.iter())
        .filter(|p| p.cluster == cluster);
    let mut pools: Vec<String> = decided
        .flat_map(|t| t.pools.iter().cloned())
        .chain(recorded.flat_map(|p| p.node_pools.iter().cloned()))
        .collect();
    pools.sort();
    pools.dedup();
    if pools.is_empty() {
        return Allowed::Nothing(format!(
            "workload {name} is not placed on cluster {cluster}"
        ));
    }
    Allowed::Pools(pools)
}

/// Why a pod on `node` breaks what its workload allows; empty when it does not.
pub fn pod_violations(node: &NodeFacts, pool_label: &str, allowed: &Allowed) -> Vec<String> {
    let mut reasons = Vec::new();
    let name = &node.name;
    if !node.is_sovereign() {
        reasons.push(format!(
            "node {name} is not sovereign: label {SOVEREIGN_NODE_LABEL}=true is missing"
        ));
    }
    match (allowed, node.labels.get(pool_label)) {
        (Allowed::Nothing(why), _) => reasons.push(why.clone()),
        (Allowed::Pools(_), None) => reasons.push(format!(
            "node {name} has no {pool_label} label, so it is in none of the placed node pools"
        )),
        (Allowed::Pools(pools), Some(pool)) if !pools.contains(pool) => {
            reasons.push(format!(
                "node pool {pool} is not one of the placed node pools [{}]",
                pools.join(", ")
            ));
        }
        (Allowed::Pools(_), Some(_)) => {}
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, pool: Option<&str>, sovereign: bool) -> NodeFacts {
        let mut labels = BTreeMap::new();
        if let Some(pool) = pool {
            labels.insert("sovra.dev/node-pool".to_owned(), pool.to_owned());
        }
        if sovereign {
            labels.insert(SOVEREIGN_NODE_LABEL.to_owned(), "true".to_owned());
        }
        NodeFacts {
            name: name.to_owned(),
            labels,
            taints: Vec::new(),
        }
    }

    #[test]
    fn a_sovereign_node_in_a_placed_pool_is_no_violation() {
        let allowed = Allowed::Pools(vec!["gov-general".into()]);
        let node = node("n", Some("gov-general"), true);
        assert!(pod_violations(&node, "sovra.dev/node-pool", &allowed).is_empty());
    }

    #[test]
    fn non_sovereign_nodes_other_pools_and_unplaced_workloads_are_violations() {
        let allowed = Allowed::Pools(vec!["gov-general".into()]);
        let reasons = pod_violations(
            &node("b-0", Some("build"), false),
            "sovra.dev/node-pool",
            &allowed,
        );
        assert_eq!(reasons.len(), 2);
        assert!(reasons[0].contains("not sovereign"));
        assert!(reasons[1].contains("node pool build is not one of"));
        let nothing = Allowed::Nothing("workload w does not exist".into());
        let reasons = pod_violations(
            &node("g-0", Some("gov-general"), true),
            "sovra.dev/node-pool",
            &nothing,
        );
        assert_eq!(reasons, ["workload w does not exist"]);
        let reasons = pod_violations(&node("x", None, true), "sovra.dev/node-pool", &allowed);
        assert!(reasons[0].contains("has no sovra.dev/node-pool label"));
    }

    #[test]
    fn a_missing_or_invalid_workload_allows_nothing() {
        let classes = BTreeMap::new();
        assert_eq!(
            allowed_on(
                "hub",
                "w",
                PodOwner::Missing,
                &classes,
                &Candidates::default()
            ),
            Allowed::Nothing("workload w does not exist".into())
        );
        assert!(matches!(
            allowed_on("hub", "w", PodOwner::Invalid, &classes, &Candidates::default()),
            Allowed::Nothing(why) if why.contains("does not match")
        ));
    }

    #[test]
    fn a_workload_whose_class_is_missing_is_refused_and_allows_nothing() {
        let workload = SovereignWorkload::new(
            "w",
            crate::crd::SovereignWorkloadSpec {
                sensitivity: "secret".into(),
                replicas: 1,
                template: Default::default(),
                placement: Default::default(),
            },
        );
        assert!(matches!(
            allowed_on("hub", "w", PodOwner::Workload(&workload), &BTreeMap::new(), &Candidates::default()),
            Allowed::Nothing(why) if why.contains("refused")
        ));
    }
}
