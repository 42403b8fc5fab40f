//! Workloads (as their status says) and drift violations for the report builder's tables.

use super::*;
use crate::crd::{Enforcement, PlacementDecision, SovereignWorkloadSpec, SovereignWorkloadStatus};

pub const NS: &str = "ministry-fin";

pub fn time(seconds: i64) -> Time {
    Time(jiff::Timestamp::from_second(seconds).expect("a valid time"))
}

pub fn condition(type_: &str, ok: bool, reason: &str, message: &str, at: i64) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: Some(1),
        last_transition_time: time(at),
    }
}

/// A workload of `class` whose status has `placed` and `compliant` conditions.
pub fn workload(name: &str, class: &str, conditions: Vec<Condition>) -> SovereignWorkload {
    let mut w = SovereignWorkload::new(
        name,
        SovereignWorkloadSpec {
            sensitivity: class.into(),
            replicas: 1,
            template: Default::default(),
            placement: Default::default(),
        },
    );
    w.metadata.namespace = Some(NS.into());
    w.metadata.uid = Some(format!("uid-{name}"));
    w.status = Some(SovereignWorkloadStatus {
        conditions,
        decision: Some(PlacementDecision::default()),
        ..Default::default()
    });
    w
}

pub fn placed(name: &str, class: &str) -> SovereignWorkload {
    workload(
        name,
        class,
        vec![
            condition(
                "Placed",
                true,
                "Placed",
                "placed onto rijkscloud-nl [gov-general]",
                100,
            ),
            condition(
                "Compliant",
                true,
                "Compliant",
                "every requirement of the class is met",
                110,
            ),
        ],
    )
}

pub fn refused(name: &str, class: &str, reason: &str) -> SovereignWorkload {
    workload(
        name,
        class,
        vec![
            condition("Placed", false, reason, "rijkscloud-nl: refused", 200),
            condition("Compliant", true, "NothingPlaced", "nothing runs", 200),
        ],
    )
}

pub fn audited(name: &str, code: &str) -> SovereignWorkload {
    let mut w = workload(
        name,
        "pilot",
        vec![
            condition(
                "Placed",
                true,
                "Placed",
                "placed onto aws-fra [general]",
                300,
            ),
            condition(
                "Compliant",
                false,
                code,
                "enforcement audit: enforce would refuse: cluster aws-fra: provider Hyperscale Inc. is subject to extraterritorial non-EU law",
                310,
            ),
        ],
    );
    if let Some(decision) = w.status.as_mut().and_then(|s| s.decision.as_mut()) {
        decision.enforcement = Enforcement::Audit;
    }
    w
}

pub fn violation(workload: &str, pod: &str, class: &str) -> Violation {
    Violation {
        namespace: NS.into(),
        workload: workload.into(),
        workload_found: true,
        pod: pod.into(),
        node: "build-agents-0".into(),
        pool: "build-agents".into(),
        class: class.into(),
        reasons: vec!["node build-agents-0 is not sovereign".into()],
        since: 500,
    }
}

pub fn report(workloads: &[SovereignWorkload], violations: &[Violation]) -> Value {
    namespace_report(
        PolicyReports::OpenReports,
        NS,
        workloads,
        violations,
        &BTreeMap::new(),
    )
    .expect("something to report")
}

pub fn results(report: &Value) -> Vec<(String, String, String, String)> {
    report["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (
                s("result"),
                s("policy"),
                s("rule"),
                r["resources"][0]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

pub fn row(result: &str, policy: &str, rule: &str, name: &str) -> (String, String, String, String) {
    (result.into(), policy.into(), rule.into(), name.into())
}
