//! `SovereignWorkload`: a workload declared with a sensitivity class, placed by Sovra.

use super::bounds;
use super::packed_conditions::PackedConditions;
use super::pod_template::PodTemplate;
use super::schema;
use super::vocabulary::Enforcement;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A workload (replicas of a pod template, like a Deployment) that may run only where its
/// sensitivity class allows.
// kube's repeated `printcolumn(type_ = ...)` arguments trip clippy's duplicated_attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "sovra.dev",
    version = "v1alpha1",
    kind = "SovereignWorkload",
    namespaced,
    shortname = "swl",
    category = "sovra",
    status = "SovereignWorkloadStatus",
    derive = "PartialEq",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Class", type_ = "string", json_path = ".spec.sensitivity"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Cluster", type_ = "string", json_path = ".status.clusters"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.ready"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SovereignWorkloadSpec {
    /// Name of the SensitivityClass. Immutable: a workload's class never changes during its
    /// life, so its audit trail has one class; to change class, create a new workload.
    #[x_kube(validation = Rule::new("self == oldSelf").message("sensitivity is immutable; create a new SovereignWorkload to change class"))]
    #[schemars(length(min = 1, max = 253))]
    pub sensitivity: String,
    /// Desired number of pods (across all placements).
    #[serde(default = "one")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    // Kept compact (see PodTemplate); a doc comment here would become the schema description.
    #[schemars(schema_with = "schema::pod_template")]
    pub template: PodTemplate,
    #[serde(default)]
    pub placement: PlacementPreferences,
}

fn one() -> i32 {
    1
}

/// Narrowing and preferences on top of the class. These can only restrict where the workload
/// goes, never widen what the class allows.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.requiredCountries) || !has(self.preferredCountries) || self.preferredCountries.all(c, c in self.requiredCountries)").message("preferredCountries must be a subset of requiredCountries"))]
pub struct PlacementPreferences {
    /// Countries tried first, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::countries")]
    pub preferred_countries: Vec<String>,
    /// When set, only these countries (intersected with what the class allows).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::countries")]
    pub required_countries: Vec<String>,
    /// Number of distinct compliant clusters to spread replicas over.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 64))]
    pub clusters: i32,
    /// When a placed cluster becomes unreachable, place on another compliant cluster.
    #[serde(default)]
    pub failover: bool,
    /// Spread over at least this many distinct providers. Can only raise the class's
    /// `continuity.minProviders`, never lower it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = bounds::CLUSTERS))]
    pub min_providers: Option<i32>,
}

impl Default for PlacementPreferences {
    fn default() -> Self {
        Self {
            preferred_countries: Vec::new(),
            required_countries: Vec::new(),
            clusters: 1,
            failover: false,
            min_providers: None,
        }
    }
}

#[derive(JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkloadPhase {
    /// Not decided yet.
    Pending,
    /// Running where its class allows.
    Placed,
    /// No compliant placement exists; nothing runs.
    Refused,
    /// Placed, but not all replicas are ready or a placement's cluster is unreachable.
    Degraded,
}

impl std::fmt::Display for WorkloadPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// What Sovra decided and observed. Deterministic: the same world gives the same status, so
/// reconciles that change nothing write nothing.
#[derive(JsonSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SovereignWorkloadStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<WorkloadPhase>,
    /// Pods desired across placements (scale subresource).
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    /// `ready/desired`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub ready: Option<String>,
    /// Label selector of the pods (scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub selector: Option<String>,
    /// Comma-separated placed clusters, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = bounds::CLUSTER_LIST))]
    pub clusters: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::CLUSTERS))]
    pub placements: Vec<Placement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<PlacementDecision>,
    /// Placed workloads only: could it switch away from the providers it runs on now?
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::conditions")]
    pub conditions: Vec<Condition>,
    /// Never sent nor read: set only on a status as the operator keeps it in memory, without
    /// what no reconcile reads (`crd::compacted_status`); the digest of the whole status.
    #[serde(skip)]
    #[schemars(skip)]
    pub compacted_from: Option<StatusDigest>,
    /// Never sent nor read: set only on a status as the operator's cache keeps it, with its
    /// conditions moved here, packed (`crd::packed_conditions`); `compacted` unpacks them.
    #[serde(skip)]
    #[schemars(skip)]
    pub packed_conditions: Option<PackedConditions>,
}

/// The first 128 bits of the SHA-256 of a whole status's JSON (`crd::compacted_status`).
pub type StatusDigest = [u8; 16];

/// Exit readiness: the compliant clusters of *other* providers (by parent) that could host
/// the workload now. None at all means it is stranded: it keeps running, as an early warning.
#[derive(JsonSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitStatus {
    /// The first alternatives by cluster name; `alternativeCount` counts them all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::LISTED_CANDIDATES))]
    pub alternatives: Vec<ExitAlternative>,
    pub alternative_count: i32,
    /// True when there is no alternative.
    pub stranded: bool,
}

/// A compliant cluster of another provider that could host the workload now.
#[derive(JsonSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitAlternative {
    #[schemars(length(max = bounds::OBJECT_NAME))]
    pub cluster: String,
    /// The provider's parent, or the provider when it has none.
    #[schemars(length(max = bounds::DISPLAY_NAME))]
    pub provider: String,
}

/// Where (part of) the workload runs.
#[derive(JsonSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    #[schemars(length(max = bounds::OBJECT_NAME))]
    pub cluster: String,
    #[schemars(length(max = bounds::COUNTRY_CODE))]
    pub country: String,
    #[schemars(length(max = bounds::NODE_POOLS), inner(length(max = bounds::LABEL_VALUE)))]
    pub node_pools: Vec<String>,
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
}

/// The placement decision with its evidence. Bounded whatever the size of the fleet: the first
/// candidates are listed with their verdicts, and every rejected one is counted in a group per
/// reason. The complete per-candidate list is in `sovra plan --explain` and the audit trail.
#[derive(JsonSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementDecision {
    pub enforcement: Enforcement,
    /// Refused, or the reasons a compliant placement could not be made in full.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::DECISION_REASONS), inner(length(max = bounds::TEXT)))]
    pub reasons: Vec<String>,
    /// Requirements the chosen placement does not meet (only in `audit` enforcement).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::DECISION_REASONS), inner(length(max = bounds::TEXT)))]
    pub audit_violations: Vec<String>,
    /// How many clusters and node pools were judged, and how many pools were accepted.
    #[serde(default)]
    pub counts: CandidateCounts,
    /// Verdicts on the first candidates, accepted ones first, in name order.
    #[serde(default)]
    #[schemars(length(max = bounds::LISTED_CANDIDATES))]
    pub candidates: Vec<CandidateVerdict>,
    /// Every rejected candidate, grouped by reason, most frequent reason first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::REJECTION_GROUPS))]
    pub rejected: Vec<RejectionGroup>,
}

/// How many candidates a decision judged.
#[derive(JsonSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CandidateCounts {
    pub clusters: i32,
    pub node_pools: i32,
    /// Node pools that are compliant and on a compliant cluster.
    pub accepted_node_pools: i32,
}

/// One cluster, or one node pool of a cluster, and the verdict on it.
#[derive(JsonSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CandidateVerdict {
    #[schemars(length(max = bounds::OBJECT_NAME))]
    pub cluster: String,
    /// Absent when the verdict is about the cluster as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = bounds::LABEL_VALUE))]
    pub node_pool: Option<String>,
    pub accepted: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::DECISION_REASONS), inner(length(max = bounds::TEXT)))]
    pub reasons: Vec<String>,
}

/// The candidates one reason rejected.
#[derive(JsonSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectionGroup {
    /// The reason's stable code, e.g. `PoolNotSovereign`.
    #[schemars(length(max = bounds::LABEL_VALUE))]
    pub reason: String,
    /// How many clusters or node pools it rejected.
    pub count: i32,
    /// The reason as said of the first of them.
    #[schemars(length(max = bounds::TEXT))]
    pub message: String,
    /// The first few of them: `cluster` or `cluster/pool`.
    #[schemars(length(max = bounds::GROUP_EXAMPLES), inner(length(max = bounds::CANDIDATE_NAME)))]
    pub examples: Vec<String>,
}
