//! What a SovereignCluster's status says (pure): how Sovra reaches the cluster, its
//! jurisdiction, its node pools and their sovereignty, and what stopped being sovereign
//! between two statuses.

use super::member_health::Health;
use super::policy_report::{Detection, REPORT_NAME, report_api};
use super::pool_status::pool_status;
use super::settings::PolicyReports;
use super::status;
use crate::crd::{Jurisdiction, NodePoolStatus, SovereignCluster, SovereignClusterStatus};
use crate::policy::{NodePool, jurisdiction_of};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use std::time::Duration;

/// Condition on member SovereignClusters: whether the kubeconfig in the Secret is the one in use.
pub const CONDITION_KUBECONFIG: &str = "KubeconfigAccepted";
/// Condition on the hub's SovereignCluster: whether Sovra can write its policy reports.
pub const CONDITION_POLICY_REPORTS: &str = "PolicyReports";

/// How Sovra reaches a cluster, as its status reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub reachable: bool,
    /// Condition reason: `Hub`, `Probed`, or a `ConnectionFault` code.
    pub reason: String,
    pub message: String,
    pub version: Option<String>,
    /// Members only: why the newest kubeconfig was refused while the previous one is still
    /// used (`Some(None)`: the kubeconfig in the Secret is the one in use).
    pub rotation_refused: Option<Option<String>>,
}

impl Link {
    pub fn hub(version: Option<String>) -> Self {
        Self {
            reachable: true,
            reason: "Hub".to_owned(),
            message: "the operator runs in this cluster".to_owned(),
            version,
            rotation_refused: None,
        }
    }

    pub fn member(health: &Health) -> Self {
        match health {
            Health::Reachable { version } => Self {
                reachable: true,
                reason: "Probed".to_owned(),
                message: "the API server answers and Sovra may read its Nodes".to_owned(),
                version: Some(version.clone()),
                rotation_refused: None,
            },
            Health::Unreachable { why, message } => Self {
                reachable: false,
                reason: why.code().to_owned(),
                message: message.clone(),
                version: None,
                rotation_refused: None,
            },
            Health::Connecting => Self {
                reachable: false,
                reason: "Connecting".to_owned(),
                message: "not probed yet".to_owned(),
                version: None,
                rotation_refused: None,
            },
        }
    }
}

/// The status Sovra reports for a cluster (pure).
pub fn cluster_status(
    cluster: &SovereignCluster,
    pools: &[NodePool],
    link: &Link,
    now: &Time,
) -> SovereignClusterStatus {
    let jurisdiction = jurisdiction_of(&cluster.spec.country);
    let previous = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let generation = cluster.metadata.generation;
    let pool_status: Vec<NodePoolStatus> = pools.iter().map(pool_status).collect();
    let sovereign_pools =
        i32::try_from(pool_status.iter().filter(|p| p.sovereign).count()).unwrap_or(i32::MAX);
    let condition = |type_: &str, ok: bool, reason: &str, message: String| {
        status::condition(previous, type_, ok, reason, &message, generation, now)
    };
    let reachable_condition = condition(
        "Reachable",
        link.reachable,
        &link.reason,
        link.message.clone(),
    );
    let kubeconfig_condition = link.rotation_refused.as_ref().map(|refused| match refused {
        Some(why) => condition(
            CONDITION_KUBECONFIG,
            false,
            "RotationRefused",
            format!("{why}; Sovra keeps using the previous kubeconfig"),
        ),
        None => condition(
            CONDITION_KUBECONFIG,
            true,
            "InUse",
            "the kubeconfig in the Secret is in use".to_owned(),
        ),
    });
    let sovereign_condition = if jurisdiction == Jurisdiction::ThirdCountry {
        condition(
            "Sovereign",
            false,
            "OutsideEuEea",
            format!("country {} is outside the EU/EEA", cluster.spec.country),
        )
    } else if sovereign_pools == 0 {
        condition(
            "Sovereign",
            false,
            "NoSovereignPool",
            "no node pool has nodes labelled sovereign by an administrator".to_owned(),
        )
    } else {
        condition(
            "Sovereign",
            true,
            "SovereignPools",
            format!("{sovereign_pools} sovereign node pool(s)"),
        )
    };
    SovereignClusterStatus {
        observed_generation: generation,
        jurisdiction: Some(jurisdiction),
        kubernetes_version: link.version.clone().or_else(|| {
            // An unreachable member keeps the version it last reported.
            cluster
                .status
                .as_ref()
                .and_then(|s| s.kubernetes_version.clone())
        }),
        sovereign_pools,
        node_pools: pool_status,
        conditions: [
            Some(reachable_condition),
            kubeconfig_condition,
            Some(sovereign_condition),
        ]
        .into_iter()
        .flatten()
        .collect(),
    }
}

/// What stopped being sovereign between two statuses: pools that were sovereign and are not
/// (or are gone), and the cluster as a whole.
pub fn sovereignty_lost(
    before: Option<&SovereignClusterStatus>,
    after: &SovereignClusterStatus,
) -> Vec<String> {
    let Some(before) = before else {
        return Vec::new();
    };
    let mut lost = Vec::new();
    for pool in before.node_pools.iter().filter(|p| p.sovereign) {
        match after.node_pools.iter().find(|p| p.name == pool.name) {
            Some(now) if now.sovereign => {}
            Some(now) => lost.push(format!(
                "node pool {}: {}",
                pool.name,
                now.reasons.join(", ")
            )),
            None => lost.push(format!("node pool {} has no nodes any more", pool.name)),
        }
    }
    let was = before
        .conditions
        .iter()
        .any(|c| c.type_ == "Sovereign" && c.status == "True");
    if let Some(now) = after
        .conditions
        .iter()
        .find(|c| c.type_ == "Sovereign" && c.status == "False")
        && was
    {
        lost.push(format!("cluster: {}", now.message));
    }
    lost
}

/// The hub's `PolicyReports` condition; none when reports are off. While the CRD's presence is
/// unknown the condition stays as it was, so a failed check does not flap it.
pub fn reports_condition(
    reports: PolicyReports,
    detection: Detection,
    recheck: Duration,
    previous: &[Condition],
    generation: Option<i64>,
    now: &Time,
) -> Option<Condition> {
    let api = report_api(reports)?;
    let condition = |ok: bool, reason: &str, message: String| {
        status::condition(
            previous,
            CONDITION_POLICY_REPORTS,
            ok,
            reason,
            &message,
            generation,
            now,
        )
    };
    match detection {
        Detection::Unknown => previous
            .iter()
            .find(|c| c.type_ == CONDITION_POLICY_REPORTS)
            .cloned(),
        Detection::Installed => Some(condition(
            true,
            "Writing",
            format!(
                "one {}/{} {} named {REPORT_NAME} per namespace with SovereignWorkloads",
                api.group, api.version, api.kind
            ),
        )),
        Detection::Missing => Some(condition(
            false,
            "CRDNotInstalled",
            format!(
                "the CRD {} is not installed: Sovra writes no {} and checks again every {} s",
                api.crd,
                api.kind,
                recheck.as_secs().max(1)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(seconds).expect("a valid time"))
    }

    #[test]
    fn the_hub_says_once_whether_reports_can_be_written() {
        let recheck = Duration::from_secs(15);
        let at = |s| time(s);
        let missing = reports_condition(
            PolicyReports::OpenReports,
            Detection::Missing,
            recheck,
            &[],
            Some(1),
            &at(10),
        )
        .expect("a condition");
        assert_eq!(
            (missing.status.as_str(), missing.reason.as_str()),
            ("False", "CRDNotInstalled")
        );
        assert!(
            missing.message.contains("reports.openreports.io"),
            "{}",
            missing.message
        );
        let again = reports_condition(
            PolicyReports::OpenReports,
            Detection::Missing,
            recheck,
            std::slice::from_ref(&missing),
            Some(1),
            &at(99),
        );
        assert_eq!(
            again.as_ref(),
            Some(&missing),
            "unchanged: the same condition, the same time"
        );
        let unknown = reports_condition(
            PolicyReports::OpenReports,
            Detection::Unknown,
            recheck,
            std::slice::from_ref(&missing),
            Some(1),
            &at(99),
        );
        assert_eq!(
            unknown.as_ref(),
            Some(&missing),
            "a failed check does not flap it"
        );
        let installed = reports_condition(
            PolicyReports::WgPolicyK8s,
            Detection::Installed,
            recheck,
            std::slice::from_ref(&missing),
            Some(1),
            &at(120),
        )
        .expect("a condition");
        assert_eq!(
            (installed.status.as_str(), installed.reason.as_str()),
            ("True", "Writing")
        );
        assert_eq!(installed.last_transition_time, at(120));
        assert!(
            installed
                .message
                .contains("wgpolicyk8s.io/v1alpha2 PolicyReport")
        );
        assert_eq!(
            reports_condition(
                PolicyReports::None,
                Detection::Missing,
                recheck,
                &[],
                None,
                &at(1)
            ),
            None
        );
        assert_eq!(
            reports_condition(
                PolicyReports::OpenReports,
                Detection::Unknown,
                recheck,
                &[],
                None,
                &at(1)
            ),
            None
        );
    }
}
