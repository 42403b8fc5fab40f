//! Size bounds of every string, list and map in Sovra's CRDs, sized from the domain.
//!
//! kube-apiserver estimates the worst-case cost of each CEL rule from these bounds and rejects
//! a CRD whose rules could exceed its budget, so nothing in a schema may be unbounded. The
//! controller caps what it writes to status with the same constants, so a large fleet can never
//! produce a status the API server refuses.

/// ISO 3166-1 alpha-2: two letters.
pub const COUNTRY_CODE: u32 = 2;
/// EU member states (27) plus the other EEA members (3): the most distinct countries a class
/// or workload can usefully name, since Sovra never places outside them.
pub const COUNTRIES: u32 = 30;
/// EU, EEA, third country.
pub const JURISDICTIONS: u32 = 3;
/// Every certification of the vocabulary (`Certification`).
pub const CERTIFICATIONS: u32 = 8;
/// Every value of `OperatedBy`.
pub const OPERATORS: u32 = 3;
/// A Kubernetes object name (DNS-1123 subdomain).
pub const OBJECT_NAME: u32 = 253;
/// A label value, e.g. a node pool name (the value of the pool label).
pub const LABEL_VALUE: u32 = 63;
/// A free-text name such as a provider's.
pub const DISPLAY_NAME: u32 = 128;
/// A human description or one reason sentence.
pub const TEXT: u32 = 1024;
/// A Kubernetes version string (`v1.33.2+k3s1`).
pub const VERSION: u32 = 64;
/// Node pools reported per cluster.
pub const NODE_POOLS: u32 = 1024;
/// Notes on why one pool is not (fully) sovereign.
pub const POOL_NOTES: u32 = 16;
/// Clusters a workload may be spread over (`spec.placement.clusters`).
pub const CLUSTERS: u32 = 64;
/// `status.clusters`: the placed cluster names joined with commas.
pub const CLUSTER_LIST: u32 = CLUSTERS * (OBJECT_NAME + 1);
/// Reasons and violations listed in `status.decision`; more are summarised in the last one.
pub const DECISION_REASONS: u32 = 16;
/// Candidate verdicts listed in `status.decision.candidates`; the rest are counted and grouped.
pub const LISTED_CANDIDATES: u32 = 16;
/// Groups of rejected candidates in `status.decision.rejected`, one per reason code.
pub const REJECTION_GROUPS: u32 = 32;
/// Example candidates named per rejection group.
pub const GROUP_EXAMPLES: u32 = 3;
/// `cluster/pool`.
pub const CANDIDATE_NAME: u32 = OBJECT_NAME + 1 + LABEL_VALUE;
/// Conditions on one object.
pub const CONDITIONS: u32 = 8;
