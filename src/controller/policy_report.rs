//! One namespace's policy report (pure): a result per SovereignWorkload, read from the status
//! Sovra wrote, and a fail result per Pod that drift finds outside its workload's placement.
//! Deterministic: the same workloads and violations give the same object, with timestamps taken
//! from the status conditions (or when a violation was first found), never from the clock.
//!
//! A workload's result is decided by its conditions, and `rule` is the reason of the condition
//! that decided it, the same stable code the condition, the metrics and the audit trail use:
//! - `Placed=False` (refused): `fail`, rule = the requirement that refused it, e.g.
//!   `CountryNotAllowed`; `error` when it could not be judged or carried out (`InvalidSpec`,
//!   `ChildConflict`);
//! - placed, `Compliant=False` (only under `enforcement: audit`): `warn`, rule = the first
//!   requirement the placement breaks, e.g. `ExtraterritorialExposure`;
//! - placed and compliant: `pass`, rule `Compliant`.
//!
//! Drift: `fail`, rule `PolicyViolation` (the Event's reason), until the Pod goes or complies.

use super::deployment::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use super::settings::PolicyReports;
use super::status::{CONDITION_COMPLIANT, CONDITION_PLACED, truncate};
use super::violations::Violation;
use crate::crd::{SensitivityClassSpec, SovereignWorkload};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Name of Sovra's report in each namespace.
pub const REPORT_NAME: &str = "sovra";
/// `source` of the report and of every result.
pub const SOURCE: &str = "sovra";
/// Results in one report at most (an object must stay well below etcd's size limit); fail,
/// error and warn results are kept before pass results.
pub const MAX_RESULTS: usize = 500;

/// Where the reports of one kind live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportApi {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    /// The CRD that must be installed: `<plural>.<group>`.
    pub crd: &'static str,
}

pub fn report_api(reports: PolicyReports) -> Option<ReportApi> {
    match reports {
        PolicyReports::OpenReports => Some(ReportApi {
            group: "openreports.io",
            version: "v1alpha1",
            kind: "Report",
            plural: "reports",
            crd: "reports.openreports.io",
        }),
        PolicyReports::WgPolicyK8s => Some(ReportApi {
            group: "wgpolicyk8s.io",
            version: "v1alpha2",
            kind: "PolicyReport",
            plural: "policyreports",
            crd: "policyreports.wgpolicyk8s.io",
        }),
        PolicyReports::None => None,
    }
}

/// A result's outcome, in the order results are kept when a report is cut to [`MAX_RESULTS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Fail,
    Error,
    Warn,
    Pass,
}

/// `metav1.Timestamp`, as both report APIs spell a result's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanos: i32,
}

impl Timestamp {
    /// Whole seconds: what the API server keeps of a condition's time anyway.
    fn of(time: &Time) -> Self {
        Self {
            seconds: time.0.as_second(),
            nanos: 0,
        }
    }
}

/// One result, with the field names both report APIs use.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReportResult {
    pub source: String,
    pub policy: String,
    pub rule: String,
    pub category: String,
    pub severity: String,
    pub timestamp: Timestamp,
    pub result: Outcome,
    pub resources: Vec<ObjectReference>,
    pub message: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

/// Severity of a class's results. The default classes by name (public low, internal medium,
/// confidential high, secret critical); any other class by what it requires, measured against
/// the defaults: an explicit country list and operators as secret, no extraterritorial exposure
/// with certifications or a dedicated pool as confidential, a provider jurisdiction as internal.
/// A class that does not exist is judged high: sovereignty fails closed.
pub fn severity(class: &str, spec: Option<&SensitivityClassSpec>) -> &'static str {
    match class {
        "public" => return "low",
        "internal" => return "medium",
        "confidential" => return "high",
        "secret" => return "critical",
        _ => {}
    }
    let Some(spec) = spec else {
        return "high";
    };
    let certified =
        !spec.certifications.all_of.is_empty() || !spec.certifications.any_of.is_empty();
    if spec.location.countries.is_some() && !spec.provider.operated_by.is_empty() {
        "critical"
    } else if !spec.provider.extraterritorial_exposure_allowed
        && (certified || spec.node_pool.dedicated)
    {
        "high"
    } else if !spec.provider.headquarters_jurisdictions.is_empty() {
        "medium"
    } else {
        "low"
    }
}

fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

fn workload_ref(workload: &SovereignWorkload) -> ObjectReference {
    ObjectReference {
        api_version: Some(SovereignWorkload::api_version(&()).into_owned()),
        kind: Some(SovereignWorkload::kind(&()).into_owned()),
        name: Some(workload.name_any()),
        namespace: workload.namespace(),
        uid: workload.uid(),
        ..ObjectReference::default()
    }
}

/// The result of one workload, from the status Sovra wrote; none before it was decided, and
/// none while it is being deleted.
pub fn workload_result(
    workload: &SovereignWorkload,
    classes: &BTreeMap<String, SensitivityClassSpec>,
) -> Option<ReportResult> {
    if workload.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = workload.status.as_ref()?;
    let placed = find(&status.conditions, CONDITION_PLACED)?;
    let (outcome, decided_by, message) = if placed.status == "False" {
        let outcome = match placed.reason.as_str() {
            "InvalidSpec" | "ChildConflict" => Outcome::Error,
            _ => Outcome::Fail,
        };
        (outcome, placed, placed.message.clone())
    } else {
        let compliant = find(&status.conditions, CONDITION_COMPLIANT)?;
        let outcome = if compliant.status == "True" {
            Outcome::Pass
        } else {
            Outcome::Warn
        };
        let message = format!("{}; {}", placed.message, compliant.message);
        (outcome, compliant, message)
    };
    let class = &workload.spec.sensitivity;
    let mut properties = BTreeMap::new();
    if let Some(decision) = &status.decision {
        properties.insert("enforcement".to_owned(), decision.enforcement.to_string());
    }
    if let Some(clusters) = &status.clusters {
        properties.insert("clusters".to_owned(), clusters.clone());
    }
    Some(ReportResult {
        source: SOURCE.to_owned(),
        policy: class.clone(),
        rule: decided_by.reason.clone(),
        category: "Placement".to_owned(),
        severity: severity(class, classes.get(class)).to_owned(),
        timestamp: Timestamp::of(&decided_by.last_transition_time),
        result: outcome,
        resources: vec![workload_ref(workload)],
        message: truncate(&message, 1024),
        properties,
    })
}

/// The fail result of a Pod running outside its workload's placement: about the workload
/// (`workload`, when it exists), else about the Pod.
pub fn violation_result(
    violation: &Violation,
    workload: Option<&SovereignWorkload>,
    classes: &BTreeMap<String, SensitivityClassSpec>,
) -> ReportResult {
    let resource = match workload {
        Some(workload) => workload_ref(workload),
        None => ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Pod".to_owned()),
            name: Some(violation.pod.clone()),
            namespace: Some(violation.namespace.clone()),
            ..ObjectReference::default()
        },
    };
    let message = format!(
        "pod {} runs on node {} in pool {}: {}",
        violation.pod,
        violation.node,
        violation.pool,
        violation.reasons.join("; ")
    );
    let properties = [
        ("pod", &violation.pod),
        ("node", &violation.node),
        ("pool", &violation.pool),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.clone()))
    .collect();
    ReportResult {
        source: SOURCE.to_owned(),
        policy: violation.class.clone(),
        rule: "PolicyViolation".to_owned(),
        category: "Drift".to_owned(),
        severity: severity(&violation.class, classes.get(&violation.class)).to_owned(),
        timestamp: Timestamp {
            seconds: violation.since,
            nanos: 0,
        },
        result: Outcome::Fail,
        resources: vec![resource],
        message: truncate(&message, 1024),
        properties,
    }
}

/// The report of `namespace`: one result per decided workload in it, and one per current drift
/// violation; `None` when there is nothing to report (a report Sovra wrote earlier then goes).
pub fn namespace_report(
    reports: PolicyReports,
    namespace: &str,
    workloads: &[SovereignWorkload],
    violations: &[Violation],
    classes: &BTreeMap<String, SensitivityClassSpec>,
) -> Option<Value> {
    let api = report_api(reports)?;
    let in_namespace: Vec<&SovereignWorkload> = workloads
        .iter()
        .filter(|w| w.namespace().as_deref() == Some(namespace))
        .collect();
    let mut results: Vec<ReportResult> = in_namespace
        .iter()
        .filter_map(|w| workload_result(w, classes))
        .collect();
    results.extend(
        violations
            .iter()
            .filter(|v| v.namespace == namespace)
            .map(|v| {
                let workload = in_namespace
                    .iter()
                    .find(|w| v.workload_found && w.name_any() == v.workload)
                    .copied();
                violation_result(v, workload, classes)
            }),
    );
    if results.is_empty() {
        return None;
    }
    if results.len() > MAX_RESULTS {
        results.sort_by_key(|r| (r.result, order(r)));
        results.truncate(MAX_RESULTS);
    }
    results.sort_by_key(order);
    let count = |outcome: Outcome| results.iter().filter(|r| r.result == outcome).count();
    let source = (reports == PolicyReports::OpenReports).then_some(SOURCE);
    let mut report = json!({
        "apiVersion": format!("{}/{}", api.group, api.version),
        "kind": api.kind,
        "metadata": {
            "name": REPORT_NAME,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
        },
        "summary": {
            "pass": count(Outcome::Pass),
            "fail": count(Outcome::Fail),
            "warn": count(Outcome::Warn),
            "error": count(Outcome::Error),
            "skip": 0,
        },
        "results": results,
    });
    // wgpolicyk8s.io/v1alpha2 has a source per result only.
    if let (Some(source), Some(object)) = (source, report.as_object_mut()) {
        object.insert("source".to_owned(), json!(source));
    }
    Some(report)
}

/// Results by the resource they are about, workload results before drift, then by Pod.
fn order(result: &ReportResult) -> (String, bool, String) {
    let name = result
        .resources
        .first()
        .and_then(|r| r.name.clone())
        .unwrap_or_default();
    let pod = result.properties.get("pod").cloned().unwrap_or_default();
    (name, result.category == "Drift", pod)
}

/// Whether a report found in the cluster says what `desired` says: the same results, summary,
/// source and Sovra's label. Then nothing needs to be written.
pub fn same_report(found: &Value, desired: &Value) -> bool {
    let label = |v: &Value| {
        v.pointer("/metadata/labels")
            .and_then(|l| l.get(MANAGED_BY_LABEL))
            .cloned()
    };
    ["results", "summary", "source"]
        .iter()
        .all(|field| found.get(field) == desired.get(field))
        && label(found) == label(desired)
}

/// Whether a report found under Sovra's name is Sovra's (it carries Sovra's label). Anything
/// else is never touched.
pub fn is_sovra_report(found: &Value) -> bool {
    found
        .pointer("/metadata/labels")
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .and_then(Value::as_str)
        == Some(MANAGED_BY_VALUE)
}

/// What Sovra knows of the report CRD.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Detection {
    /// Not checked yet (or the check failed).
    #[default]
    Unknown,
    Installed,
    Missing,
}

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod report_tests;
#[cfg(test)]
mod tests;
