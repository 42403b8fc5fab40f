//! What the report knows besides the trail: the clusters (country and provider, from
//! `--clusters` manifests or the hub) and, with `--live`, the workloads as the hub shows them
//! now. Plain data, made from the CRD types; no IO here.

use crate::crd::{SovereignCluster, SovereignWorkload};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde::Serialize;
use std::collections::BTreeMap;

/// The condition a workload's exit readiness is published in (`controller::exit_status`).
pub use crate::controller::CONDITION_EXIT_READY;

/// Where a cluster is and whose it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterInfo {
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// `spec.provider.identity()`: the parent when there is one, else the provider.
    pub provider: String,
}

/// Clusters by name.
pub type ClusterFacts = BTreeMap<String, ClusterInfo>;

/// Where the cluster facts came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FactsSource {
    /// Neither `--clusters` nor `--live`: country and provider cannot be shown.
    #[default]
    None,
    /// `--clusters` manifests.
    File,
    /// The hub's SovereignClusters (`--live`).
    Live,
    /// Both; the hub's win where they differ.
    FileAndLive,
}

/// The facts of each cluster, by name.
pub fn cluster_facts(clusters: &[SovereignCluster]) -> ClusterFacts {
    clusters
        .iter()
        .map(|c| {
            (
                c.metadata.name.clone().unwrap_or_default(),
                ClusterInfo {
                    country: c.spec.country.clone(),
                    provider: c.spec.provider.identity().to_owned(),
                },
            )
        })
        .collect()
}

/// One placement of a workload as the hub shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LivePlacement {
    pub cluster: String,
    pub country: String,
}

/// A SovereignWorkload as the hub shows it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveWorkload {
    pub namespace: String,
    pub name: String,
    pub class: String,
    pub placements: Vec<LivePlacement>,
    /// `status.exit.stranded`; `None` when the status has no `exit` (not placed, or written
    /// by a Sovra without exit readiness).
    pub stranded: Option<bool>,
    /// `status.exit.alternativeCount`.
    pub alternatives: Option<i32>,
    /// The `ExitReady` condition: `Some(true)` when its status is `True`.
    pub exit_ready: Option<bool>,
}

impl LiveWorkload {
    pub fn from_resource(workload: &SovereignWorkload) -> Self {
        let status = workload.status.as_ref();
        let exit = status.and_then(|s| s.exit.as_ref());
        let conditions: &[Condition] = status.map_or(&[], |s| s.conditions.as_slice());
        Self {
            namespace: workload.metadata.namespace.clone().unwrap_or_default(),
            name: workload.metadata.name.clone().unwrap_or_default(),
            class: workload.spec.sensitivity.clone(),
            placements: status
                .map(|s| {
                    s.placements
                        .iter()
                        .map(|p| LivePlacement {
                            cluster: p.cluster.clone(),
                            country: p.country.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            stranded: exit.map(|e| e.stranded),
            alternatives: exit.map(|e| e.alternative_count),
            exit_ready: conditions
                .iter()
                .find(|c| c.type_ == CONDITION_EXIT_READY)
                .map(|c| c.status == "True"),
        }
    }

    pub fn qualified_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// What `--live` read from the hub.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveState {
    pub workloads: Vec<LiveWorkload>,
    pub clusters: ClusterFacts,
    /// Objects listed that do not match their CRD's schema (skipped, counted).
    pub invalid_objects: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_clusters_provider_is_its_parent_when_it_has_one() {
        let cluster: SovereignCluster = serde_json::from_value(json!({
            "apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignCluster",
            "metadata": {"name": "hyperscaler-frankfurt"},
            "spec": {"country": "DE", "operatedBy": "third-country-provider",
                "provider": {"name": "Example Hyperscaler EU", "headquartersCountry": "DE",
                    "extraterritorialExposure": true,
                    "parent": {"name": "Example Corp", "headquartersCountry": "US", "extraterritorialExposure": true}},
                "connection": {"local": true}}
        }))
        .unwrap();
        let facts = cluster_facts(&[cluster]);
        assert_eq!(
            facts.get("hyperscaler-frankfurt"),
            Some(&ClusterInfo {
                country: "DE".into(),
                provider: "Example Corp".into()
            })
        );
    }

    #[test]
    fn a_live_workload_takes_exit_readiness_from_status_exit_and_the_exit_ready_condition() {
        let workload: SovereignWorkload = serde_json::from_value(json!({
            "apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignWorkload",
            "metadata": {"name": "tax", "namespace": "ministry-fin"},
            "spec": {"sensitivity": "confidential", "replicas": 1,
                "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": {"phase": "Placed",
                "placements": [{"cluster": "rijkscloud-nl", "country": "NL", "nodePools": ["gov"], "replicas": 1}],
                "exit": {"alternativeCount": 0, "stranded": true},
                "conditions": [{"type": "ExitReady", "status": "False", "reason": "NoAlternative",
                    "message": "", "lastTransitionTime": "2026-03-02T09:00:00Z"}]}
        }))
        .unwrap();
        let live = LiveWorkload::from_resource(&workload);
        assert_eq!(live.qualified_name(), "ministry-fin/tax");
        assert_eq!(live.stranded, Some(true));
        assert_eq!(live.alternatives, Some(0));
        assert_eq!(live.exit_ready, Some(false));
        assert_eq!(live.placements[0].country, "NL");
    }
}
