//! Bridges the resource types to the engine: the decision for one SovereignWorkload given the
//! classes and clusters that exist. Shared by the controller and `sovra plan`, so the offline
//! plan and the live operator can never decide differently.

use super::engine::{
    ClusterFacts, CurrentPlacement, Decision, Outcome, Reachability, Target, WorkloadRequest,
    decide,
};
use super::node_pool::NodePool;
use super::reason::Reason;
use crate::crd::{
    CandidateVerdict, Placement, PlacementDecision, SensitivityClassSpec, SovereignCluster,
    SovereignWorkload, SovereignWorkloadStatus,
};
use std::collections::BTreeMap;

/// Decides for one workload. A missing class is a refusal: without the class nothing can be
/// proven about where the workload may run.
pub fn decide_for_workload(
    workload: &SovereignWorkload,
    classes: &BTreeMap<String, SensitivityClassSpec>,
    clusters: &[ClusterFacts],
) -> Decision {
    let class_name = workload.spec.sensitivity.as_str();
    let Some(class) = classes.get(class_name) else {
        return Decision::refused(Reason::ClassNotFound {
            class: class_name.to_owned(),
        });
    };
    let current = current_placements(workload.status.as_ref());
    let request = WorkloadRequest {
        class_name,
        class,
        preferences: &workload.spec.placement,
        replicas: workload.spec.replicas,
        current: &current,
    };
    decide(&request, clusters)
}

/// The placements recorded in status, which the engine keeps while they stay valid.
pub fn current_placements(status: Option<&SovereignWorkloadStatus>) -> Vec<CurrentPlacement> {
    status
        .map(|s| {
            s.placements
                .iter()
                .map(|p| CurrentPlacement {
                    cluster: p.cluster.clone(),
                    pools: p.node_pools.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// How a target is recorded in `status.placements`.
pub fn placement_record(target: &Target, ready_replicas: i32) -> Placement {
    Placement {
        cluster: target.cluster.clone(),
        country: target.country.clone(),
        node_pools: target.pools.clone(),
        replicas: target.replicas,
        ready_replicas,
    }
}

/// The decision as recorded in `status.decision`: sorted, deterministic, human-readable.
pub fn decision_record(decision: &Decision) -> PlacementDecision {
    let reasons = match &decision.outcome {
        Outcome::Refused(reasons) => reasons.iter().map(ToString::to_string).collect(),
        Outcome::Placed(_) => Vec::new(),
    };
    PlacementDecision {
        enforcement: decision.enforcement,
        reasons,
        audit_violations: decision.audit_violations(),
        candidates: decision
            .verdicts
            .iter()
            .map(|v| CandidateVerdict {
                cluster: v.cluster.clone(),
                node_pool: v.pool.clone(),
                accepted: v.compliant,
                reasons: v.reasons.iter().map(ToString::to_string).collect(),
            })
            .collect(),
    }
}

/// Placement facts of a SovereignCluster: its spec, whether it is reachable and its pools.
pub fn cluster_facts(
    cluster: &SovereignCluster,
    pools: Vec<NodePool>,
    reachability: Reachability,
) -> ClusterFacts {
    ClusterFacts {
        name: cluster.metadata.name.clone().unwrap_or_default(),
        spec: cluster.spec.clone(),
        reachability,
        pools,
    }
}
