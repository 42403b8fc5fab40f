//! Why a cluster or node pool cannot take a workload. Each reason has a stable code (for
//! metrics, condition reasons and audit records) and a message a platform team can act on.

use crate::crd::{Certification, Jurisdiction, OperatedBy};
use std::fmt;

/// How binding a reason is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// A platform invariant: never relaxed, not even by `enforcement: audit`.
    Invariant,
    /// A requirement of the sensitivity class: `audit` enforcement reports it instead.
    Class,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// The cluster (or pool) is in a third country.
    OutsideEuEea {
        country: String,
    },
    /// Sovereign nodes of a pool disagree on their country.
    PoolLocationUnknown,
    /// The cluster cannot be reached, so nothing can be proven about it.
    ClusterUnreachable {
        detail: String,
    },
    /// No node of the pool carries the administrator-set sovereign label.
    PoolNotSovereign,
    /// The cluster has no sovereign node pool at all.
    NoSovereignPool,
    /// The pool is dedicated (tainted) to another class.
    PoolDedicatedToOtherClass {
        class: String,
    },
    /// The workload's own `requiredCountries` excludes the country.
    CountryNotRequested {
        country: String,
    },
    /// The class allows only some jurisdictions (e.g. EU but not EEA).
    JurisdictionNotAllowed {
        country: String,
        jurisdiction: Jurisdiction,
    },
    /// The class allows only a list of countries.
    CountryNotAllowed {
        country: String,
        allowed: Vec<String>,
    },
    ProviderHeadquartersNotAllowed {
        provider: String,
        country: String,
        jurisdiction: Jurisdiction,
    },
    ExtraterritorialExposure {
        provider: String,
    },
    OperatorNotAllowed {
        operated_by: OperatedBy,
    },
    MissingCertifications {
        missing: Vec<Certification>,
    },
    NoneOfCertifications {
        any_of: Vec<Certification>,
    },
    /// The class requires a pool dedicated to it.
    PoolNotDedicated {
        class: String,
    },
    /// Fewer compliant clusters than `spec.placement.clusters` asks for.
    NotEnoughClusters {
        wanted: i32,
        found: i32,
    },
    /// Fewer distinct providers (by parent) offer a compliant cluster than the class or the
    /// workload asks for (`minProviders`); `found` names the compliant providers that exist.
    NotEnoughProviders {
        wanted: i32,
        found: Vec<String>,
    },
    /// There is no SovereignCluster at all.
    NoClusters,
    /// The workload names a SensitivityClass that does not exist.
    ClassNotFound {
        class: String,
    },
}

impl Reason {
    pub fn severity(&self) -> Severity {
        match self {
            Self::JurisdictionNotAllowed { .. }
            | Self::CountryNotAllowed { .. }
            | Self::ProviderHeadquartersNotAllowed { .. }
            | Self::ExtraterritorialExposure { .. }
            | Self::OperatorNotAllowed { .. }
            | Self::MissingCertifications { .. }
            | Self::NoneOfCertifications { .. }
            | Self::PoolNotDedicated { .. } => Severity::Class,
            _ => Severity::Invariant,
        }
    }

    /// Stable CamelCase code: used as metric label, condition reason and in audit records.
    pub fn code(&self) -> &'static str {
        match self {
            Self::OutsideEuEea { .. } => "OutsideEuEea",
            Self::PoolLocationUnknown => "PoolLocationUnknown",
            Self::ClusterUnreachable { .. } => "ClusterUnreachable",
            Self::PoolNotSovereign => "PoolNotSovereign",
            Self::NoSovereignPool => "NoSovereignPool",
            Self::PoolDedicatedToOtherClass { .. } => "PoolDedicatedToOtherClass",
            Self::CountryNotRequested { .. } => "CountryNotRequested",
            Self::JurisdictionNotAllowed { .. } => "JurisdictionNotAllowed",
            Self::CountryNotAllowed { .. } => "CountryNotAllowed",
            Self::ProviderHeadquartersNotAllowed { .. } => "ProviderHeadquartersNotAllowed",
            Self::ExtraterritorialExposure { .. } => "ExtraterritorialExposure",
            Self::OperatorNotAllowed { .. } => "OperatorNotAllowed",
            Self::MissingCertifications { .. } => "MissingCertifications",
            Self::NoneOfCertifications { .. } => "NoneOfCertifications",
            Self::PoolNotDedicated { .. } => "PoolNotDedicated",
            Self::NotEnoughClusters { .. } => "NotEnoughClusters",
            Self::NotEnoughProviders { .. } => "NotEnoughProviders",
            Self::NoClusters => "NoClusters",
            Self::ClassNotFound { .. } => "ClassNotFound",
        }
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutsideEuEea { country } => {
                write!(f, "country {country} is outside the EU/EEA")
            }
            Self::PoolLocationUnknown => f.write_str("sovereign nodes disagree on their country"),
            Self::ClusterUnreachable { detail } => write!(f, "cluster unreachable: {detail}"),
            Self::PoolNotSovereign => {
                f.write_str("no node carries the administrator-set sovereign label")
            }
            Self::NoSovereignPool => f.write_str("cluster has no sovereign node pool"),
            Self::PoolDedicatedToOtherClass { class } => {
                write!(f, "pool is dedicated to class {class}")
            }
            Self::CountryNotRequested { country } => {
                write!(
                    f,
                    "country {country} is not in spec.placement.requiredCountries"
                )
            }
            Self::JurisdictionNotAllowed {
                country,
                jurisdiction,
            } => write!(
                f,
                "country {country} ({jurisdiction}) is not in a jurisdiction the class allows"
            ),
            Self::CountryNotAllowed { country, allowed } => write!(
                f,
                "country {country} is not allowed by the class (allowed: {})",
                allowed.join(", ")
            ),
            Self::ProviderHeadquartersNotAllowed {
                provider,
                country,
                jurisdiction,
            } => write!(
                f,
                "provider {provider} is headquartered in {country} ({jurisdiction})"
            ),
            Self::ExtraterritorialExposure { provider } => write!(
                f,
                "provider {provider} is subject to extraterritorial non-EU law"
            ),
            Self::OperatorNotAllowed { operated_by } => {
                write!(
                    f,
                    "operated by {operated_by}, which the class does not allow"
                )
            }
            Self::MissingCertifications { missing } => {
                write!(f, "missing certifications: {}", join(missing))
            }
            Self::NoneOfCertifications { any_of } => {
                write!(f, "holds none of the certifications: {}", join(any_of))
            }
            Self::PoolNotDedicated { class } => write!(
                f,
                "pool is not dedicated to class {class} (taint sovra.dev/sensitivity={class}:NoSchedule)"
            ),
            Self::NotEnoughClusters { wanted, found } => write!(
                f,
                "{wanted} distinct compliant clusters requested, {found} qualify"
            ),
            Self::NotEnoughProviders { wanted, found } if found.is_empty() => write!(
                f,
                "{wanted} distinct providers required (minProviders), no provider offers a compliant cluster"
            ),
            Self::NotEnoughProviders { wanted, found } => write!(
                f,
                "{wanted} distinct providers required (minProviders), compliant clusters exist only from {}: {}",
                if found.len() == 1 {
                    "one provider"
                } else {
                    "these providers"
                },
                found.join(", ")
            ),
            Self::NoClusters => f.write_str("no SovereignCluster exists"),
            Self::ClassNotFound { class } => write!(f, "SensitivityClass {class} not found"),
        }
    }
}
