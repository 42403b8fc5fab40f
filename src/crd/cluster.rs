//! `SovereignCluster`: a Kubernetes cluster Sovra may place onto, with the facts that decide
//! which classes it may run.

use super::bounds;
use super::schema;
use super::vocabulary::{Certification, Jurisdiction, OperatedBy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A cluster's location, provider, operator, certifications and how to reach it.
// kube's repeated `printcolumn(type_ = ...)` arguments trip clippy's duplicated_attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "sovra.dev",
    version = "v1alpha1",
    kind = "SovereignCluster",
    shortname = "scl",
    category = "sovra",
    status = "SovereignClusterStatus",
    derive = "PartialEq",
    printcolumn(name = "Country", type_ = "string", json_path = ".spec.country"),
    printcolumn(
        name = "Jurisdiction",
        type_ = "string",
        json_path = ".status.jurisdiction"
    ),
    printcolumn(name = "Operated-By", type_ = "string", json_path = ".spec.operatedBy"),
    printcolumn(
        name = "Reachable",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Reachable\")].status"
    ),
    printcolumn(
        name = "Sovereign-Pools",
        type_ = "integer",
        json_path = ".status.sovereignPools"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SovereignClusterSpec {
    /// Country the cluster's data centres are in (ISO 3166-1 alpha-2).
    #[schemars(schema_with = "schema::country")]
    pub country: String,
    /// Free-text region, e.g. `eu-west`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = bounds::LABEL_VALUE))]
    pub region: Option<String>,
    pub provider: Provider,
    pub operated_by: OperatedBy,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::CERTIFICATIONS))]
    pub certifications: Vec<Certification>,
    pub connection: ClusterConnection,
}

/// The company that provides the infrastructure.
#[derive(JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provider {
    #[schemars(length(min = 1, max = bounds::DISPLAY_NAME))]
    pub name: String,
    /// Country of the provider's (ultimate parent's) headquarters.
    #[schemars(schema_with = "schema::country")]
    pub headquarters_country: String,
    /// True when the provider or its parent is subject to non-EU law that can compel access
    /// to data (e.g. the US CLOUD Act). Required: an administrator must state it.
    pub extraterritorial_exposure: bool,
    /// The group that ultimately controls the provider, when it is not the provider itself.
    /// Clusters of providers with the same parent count as one provider for diversity, and the
    /// parent's headquarters and exposure are held to the class like the provider's own.
    /// Declared by an administrator; Sovra does not verify it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ProviderParent>,
}

/// The group that ultimately controls a provider.
#[derive(JsonSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderParent {
    #[schemars(length(min = 1, max = bounds::DISPLAY_NAME))]
    pub name: String,
    /// Country of the parent's headquarters.
    #[schemars(schema_with = "schema::country")]
    pub headquarters_country: String,
    /// True when the parent is subject to non-EU law that can compel access to data.
    pub extraterritorial_exposure: bool,
}

impl Provider {
    /// Who a cluster's provider is, for diversity: its parent when it has one, else itself.
    /// Two clusters are from the same provider when this is the same.
    pub fn identity(&self) -> &str {
        self.parent
            .as_ref()
            .map_or(&self.name, |parent| &parent.name)
    }
}

/// How Sovra reaches the cluster: exactly one of `local` or `kubeconfigSecretRef`.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.local) && self.local) != has(self.kubeconfigSecretRef)").message("set exactly one of local: true or kubeconfigSecretRef"))]
pub struct ClusterConnection {
    /// The hub cluster Sovra itself runs in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local: bool,
    /// A Secret in the operator's namespace holding a kubeconfig for a member cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_secret_ref: Option<SecretKeyRef>,
}

#[derive(JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[schemars(length(min = 1, max = bounds::OBJECT_NAME))]
    pub name: String,
    /// Key in the Secret's data; defaults to `kubeconfig`.
    #[serde(default = "default_kubeconfig_key")]
    #[schemars(length(min = 1, max = bounds::OBJECT_NAME))]
    pub key: String,
}

fn default_kubeconfig_key() -> String {
    "kubeconfig".to_owned()
}

/// What Sovra observed of the cluster.
#[derive(JsonSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SovereignClusterStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Derived from `spec.country`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<Jurisdiction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = bounds::VERSION))]
    pub kubernetes_version: Option<String>,
    /// Number of node pools that are sovereign.
    #[serde(default)]
    pub sovereign_pools: i32,
    /// Every node pool seen, sovereign or not, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::NODE_POOLS))]
    pub node_pools: Vec<NodePoolStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::conditions")]
    pub conditions: Vec<Condition>,
}

/// One node pool as Sovra sees it.
#[derive(JsonSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePoolStatus {
    #[schemars(length(max = bounds::LABEL_VALUE))]
    pub name: String,
    pub nodes: i32,
    /// Nodes carrying the administrator-set sovereign label.
    pub sovereign_nodes: i32,
    pub sovereign: bool,
    /// Class the pool is dedicated to (from its taint), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = bounds::OBJECT_NAME))]
    pub dedicated_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = bounds::COUNTRY_CODE))]
    pub country: Option<String>,
    /// Why the pool is not (fully) sovereign.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::POOL_NOTES), inner(length(max = bounds::TEXT)))]
    pub reasons: Vec<String>,
}

impl SovereignCluster {
    /// A member: a cluster Sovra reaches through a kubeconfig, not the hub it runs in.
    pub fn is_member(&self) -> bool {
        !self.spec.connection.local && self.spec.connection.kubeconfig_secret_ref.is_some()
    }
}
