//! The domain vocabulary shared by clusters and classes (see DOMAIN.md): jurisdictions,
//! certifications, operators and the enforcement mode. Country lists live in `policy::country`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Legal area a country belongs to. Derived from the country code, never declared.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Jurisdiction {
    /// A member state of the European Union.
    #[serde(rename = "EU")]
    Eu,
    /// Iceland, Liechtenstein or Norway: in the European Economic Area but not the EU.
    #[serde(rename = "EEA")]
    Eea,
    /// Anywhere else. Sovra never places onto a cluster in a third country.
    ThirdCountry,
}

impl fmt::Display for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Eu => "EU",
            Self::Eea => "EEA",
            Self::ThirdCountry => "third country",
        })
    }
}

/// Security certifications a cluster (its provider and operation) holds.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Certification {
    /// Baseline Informatiebeveiliging Overheid (Dutch government baseline).
    #[serde(rename = "BIO")]
    Bio,
    #[serde(rename = "ISO27001")]
    Iso27001,
    #[serde(rename = "EUCS-Basic")]
    EucsBasic,
    #[serde(rename = "EUCS-Substantial")]
    EucsSubstantial,
    #[serde(rename = "EUCS-High")]
    EucsHigh,
    /// ANSSI's French qualification, immune to extraterritorial law by design.
    #[serde(rename = "SecNumCloud")]
    SecNumCloud,
    /// BSI Cloud Computing Compliance Criteria Catalogue (Germany).
    #[serde(rename = "C5")]
    C5,
    /// VNG's Haven standard for Dutch municipal Kubernetes platforms.
    #[serde(rename = "Haven")]
    Haven,
}

impl Certification {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bio => "BIO",
            Self::Iso27001 => "ISO27001",
            Self::EucsBasic => "EUCS-Basic",
            Self::EucsSubstantial => "EUCS-Substantial",
            Self::EucsHigh => "EUCS-High",
            Self::SecNumCloud => "SecNumCloud",
            Self::C5 => "C5",
            Self::Haven => "Haven",
        }
    }
}

impl fmt::Display for Certification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who runs the cluster day to day (and so who can be compelled to hand over access).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum OperatedBy {
    Government,
    EuProvider,
    ThirdCountryProvider,
}

impl fmt::Display for OperatedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Government => "government",
            Self::EuProvider => "eu-provider",
            Self::ThirdCountryProvider => "third-country-provider",
        })
    }
}

/// What Sovra does with a placement the class would refuse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    /// Refuse: nothing runs unless every requirement holds.
    #[default]
    Enforce,
    /// Report only: class requirements that fail are reported (status, Events) but do not block
    /// placement. The platform invariants (EU/EEA location, administrator-attested sovereign
    /// nodes, reachable cluster) are never relaxed, not even in audit mode.
    Audit,
}

impl fmt::Display for Enforcement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Enforce => "enforce",
            Self::Audit => "audit",
        })
    }
}
