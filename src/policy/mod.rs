//! The placement engine: pure functions from (workload, class, clusters, node pools) to a
//! decision with reasons. No IO, no clocks, no randomness: the same input always gives the
//! same decision, which is what makes status deterministic and decisions auditable.

mod candidates;
mod cluster_option;
mod country;
mod decision;
mod engine;
mod evaluation;
mod exit;
mod node_pool;
mod pod_placement;
mod reason;
mod refusal;
mod workload;

pub use candidates::Candidates;
pub use country::{EEA_COUNTRIES, EU_COUNTRIES, jurisdiction_of};
pub use decision::{
    ClusterFacts, CurrentPlacement, Decision, Outcome, Reachability, Target, Verdict,
    WorkloadRequest,
};
pub use engine::decide;
pub use exit::{Alternative, ExitReadiness, exit_readiness};
pub use node_pool::{NodeFacts, NodePool, Taint, node_pools};
pub use pod_placement::{Allowed, PodOwner, allowed_on, pod_violations};
pub use reason::{Reason, Severity};
pub use refusal::{RefusalSummary, refusal_summary};
pub use workload::{
    cluster_facts, current_placements, decide_for_workload, decision_record, placement_record,
};

/// Node label naming the pool a node belongs to (configurable; this is the default).
pub const DEFAULT_NODE_POOL_LABEL: &str = "sovra.dev/node-pool";
/// Administrator-set label marking a node sovereign. The `node-restriction.kubernetes.io/`
/// prefix cannot be set by a kubelet on its own Node (NodeRestriction admission), so a
/// compromised node cannot declare itself sovereign.
pub const SOVEREIGN_NODE_LABEL: &str = "node-restriction.kubernetes.io/sovra-sovereign";
/// Optional node label with the node's country (ISO 3166-1 alpha-2).
pub const NODE_COUNTRY_LABEL: &str = "sovra.dev/country";
/// Taint key that dedicates a pool to one class: `sovra.dev/sensitivity=<class>:NoSchedule`.
pub const DEDICATED_TAINT_KEY: &str = "sovra.dev/sensitivity";
