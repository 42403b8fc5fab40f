//! `SensitivityClass`: what a class of data requires of the infrastructure it runs on.
//! A class is data, not code: every requirement is a field, so governments can add classes.

use super::bounds;
use super::schema;
use super::vocabulary::{Certification, Enforcement, Jurisdiction, OperatedBy};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Requirements a cluster and its node pools must meet to run workloads of this class.
// kube's repeated `printcolumn(type_ = ...)` arguments trip clippy's duplicated_attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "sovra.dev",
    version = "v1alpha1",
    kind = "SensitivityClass",
    plural = "sensitivityclasses",
    shortname = "sens",
    category = "sovra",
    derive = "PartialEq",
    printcolumn(
        name = "Enforcement",
        type_ = "string",
        json_path = ".spec.enforcement"
    ),
    printcolumn(
        name = "Countries",
        type_ = "string",
        json_path = ".spec.location.countries"
    ),
    printcolumn(
        name = "Dedicated",
        type_ = "boolean",
        json_path = ".spec.nodePool.dedicated"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SensitivityClassSpec {
    /// Human description, e.g. the BIO / VIR-BI level this class stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = bounds::TEXT))]
    pub description: Option<String>,
    /// `enforce` refuses non-compliant placements; `audit` places and reports.
    #[serde(default)]
    pub enforcement: Enforcement,
    #[serde(default)]
    pub location: LocationRequirements,
    #[serde(default)]
    pub provider: ProviderRequirements,
    #[serde(default)]
    pub certifications: CertificationRequirements,
    #[serde(default)]
    pub node_pool: NodePoolRequirements,
    #[serde(default)]
    pub continuity: ContinuityRequirements,
}

/// What the class asks for so that its workloads can switch when a provider falls away.
#[derive(JsonSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContinuityRequirements {
    /// Spread each workload's clusters over at least this many distinct providers (see
    /// `Provider.parent`). A platform rule: `enforcement: audit` does not relax it.
    #[serde(default = "one_provider")]
    #[schemars(range(min = 1, max = bounds::CLUSTERS))]
    pub min_providers: i32,
}

fn one_provider() -> i32 {
    1
}

impl Default for ContinuityRequirements {
    fn default() -> Self {
        Self {
            min_providers: one_provider(),
        }
    }
}

/// Where the cluster (and each node of the pool) must be.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationRequirements {
    /// Jurisdictions the cluster's country may be in. Third countries are never allowed.
    #[serde(default = "eu_and_eea")]
    #[schemars(length(max = bounds::JURISDICTIONS))]
    #[x_kube(validation = Rule::new("!self.exists(j, j == 'ThirdCountry')").message("a SensitivityClass can never allow third countries"))]
    pub jurisdictions: Vec<Jurisdiction>,
    /// When set, the cluster's country must be one of these (EU/EEA countries only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::countries")]
    #[x_kube(validation = Rule::new("self.all(c, c in ['AT','BE','BG','HR','CY','CZ','DK','EE','FI','FR','DE','GR','HU','IE','IT','LV','LT','LU','MT','NL','PL','PT','RO','SK','SI','ES','SE','IS','LI','NO'])").message("countries must be EU/EEA member states"))]
    pub countries: Option<Vec<String>>,
}

fn eu_and_eea() -> Vec<Jurisdiction> {
    vec![Jurisdiction::Eu, Jurisdiction::Eea]
}

impl Default for LocationRequirements {
    fn default() -> Self {
        Self {
            jurisdictions: eu_and_eea(),
            countries: None,
        }
    }
}

/// Who provides and operates the cluster.
#[derive(JsonSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRequirements {
    /// Jurisdictions the provider may be headquartered in; empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::JURISDICTIONS))]
    pub headquarters_jurisdictions: Vec<Jurisdiction>,
    /// Whether a provider subject to extraterritorial non-EU law (e.g. the US CLOUD Act) may
    /// run this class. Defaults to `false`: exposure must be allowed explicitly.
    #[serde(default)]
    pub extraterritorial_exposure_allowed: bool,
    /// Who may operate the cluster; empty means anyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::OPERATORS))]
    pub operated_by: Vec<OperatedBy>,
}

/// Certifications the cluster must hold.
#[derive(JsonSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificationRequirements {
    /// Every one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::CERTIFICATIONS))]
    pub all_of: Vec<Certification>,
    /// At least one of these (ignored when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::CERTIFICATIONS))]
    pub any_of: Vec<Certification>,
}

/// What the node pool must be. Every pool Sovra places onto is sovereign (its nodes carry the
/// administrator-set `node-restriction.kubernetes.io/sovra-sovereign=true`); that is a platform
/// invariant, not a class requirement.
#[derive(JsonSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePoolRequirements {
    /// The pool must be dedicated to this class: its nodes carry the taint
    /// `sovra.dev/sensitivity=<class>:NoSchedule`, so nothing else is scheduled beside it.
    #[serde(default)]
    pub dedicated: bool,
}
