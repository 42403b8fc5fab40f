//! The report as an object: what is left out, both report APIs, the bound on results, the
//! severity of a class, and when a found report needs no write.

use super::fixtures::*;
use super::*;

#[test]
fn undecided_and_deleted_workloads_and_other_namespaces_are_not_reported() {
    let mut undecided = placed("new", "public");
    undecided.status = None;
    let mut leaving = placed("old", "public");
    leaving.metadata.deletion_timestamp = Some(time(1));
    let mut elsewhere = placed("other", "public");
    elsewhere.metadata.namespace = Some("ministry-bzk".into());
    let none = namespace_report(
        PolicyReports::OpenReports,
        NS,
        &[undecided, leaving, elsewhere],
        &[],
        &BTreeMap::new(),
    );
    assert_eq!(none, None, "nothing to report: no report");
}

#[test]
fn an_openreports_report_is_named_labelled_and_has_a_source() {
    let report = report(&[placed("a", "public")], &[]);
    assert_eq!(report["apiVersion"], "openreports.io/v1alpha1");
    assert_eq!(report["kind"], "Report");
    assert_eq!(report["metadata"]["name"], "sovra");
    assert_eq!(report["metadata"]["namespace"], NS);
    assert_eq!(
        report["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "sovra"
    );
    assert_eq!(report["source"], "sovra");
    assert!(
        report.get("scope").is_none(),
        "a namespace report has no scope"
    );
    assert!(is_sovra_report(&report));
}

#[test]
fn a_wgpolicyk8s_report_is_a_policy_report_with_a_source_per_result() {
    let report = namespace_report(
        PolicyReports::WgPolicyK8s,
        NS,
        &[placed("a", "public")],
        &[],
        &BTreeMap::new(),
    )
    .expect("a report");
    assert_eq!(report["apiVersion"], "wgpolicyk8s.io/v1alpha2");
    assert_eq!(report["kind"], "PolicyReport");
    assert!(report.get("source").is_none());
    assert_eq!(report["results"][0]["source"], "sovra");
    assert_eq!(
        namespace_report(
            PolicyReports::None,
            NS,
            &[placed("a", "public")],
            &[],
            &BTreeMap::new()
        ),
        None
    );
}

#[test]
fn a_report_cut_to_its_bound_keeps_failures_before_passes() {
    let mut workloads: Vec<SovereignWorkload> = (0..MAX_RESULTS)
        .map(|i| placed(&format!("a-{i:04}"), "public"))
        .collect();
    workloads.push(refused("z-last", "public", "NoClusters"));
    let report = report(&workloads, &[]);
    assert_eq!(
        report["results"].as_array().map(Vec::len),
        Some(MAX_RESULTS)
    );
    assert_eq!(report["summary"]["fail"], 1);
    assert_eq!(report["summary"]["pass"], MAX_RESULTS - 1);
}

#[test]
fn severity_follows_the_class() {
    let spec = |yaml: &str| -> SensitivityClassSpec {
        serde_norway::from_str(yaml).expect("a class spec")
    };
    let cases = [
        ("public", None, "low"),
        ("internal", None, "medium"),
        ("confidential", None, "high"),
        ("secret", None, "critical"),
        ("missing", None, "high"),
        (
            "open-data",
            Some(spec("provider: {extraterritorialExposureAllowed: true}")),
            "low",
        ),
        (
            "eu-only",
            Some(spec(
                "provider: {headquartersJurisdictions: [EU], extraterritorialExposureAllowed: true}",
            )),
            "medium",
        ),
        ("health", Some(spec("nodePool: {dedicated: true}")), "high"),
        (
            "state-secret",
            Some(spec(
                "location: {countries: [NL]}\nprovider: {operatedBy: [government]}",
            )),
            "critical",
        ),
    ];
    for (class, spec, expected) in cases {
        assert_eq!(severity(class, spec.as_ref()), expected, "{class}");
    }
}

#[test]
fn a_found_report_that_says_the_same_needs_no_write() {
    let desired = report(&[placed("a", "public")], &[]);
    let mut found = desired.clone();
    found["metadata"]["resourceVersion"] = json!("42");
    found["metadata"]["managedFields"] = json!([{"manager": "sovra"}]);
    assert!(same_report(&found, &desired));
    found["results"][0]["result"] = json!("fail");
    assert!(!same_report(&found, &desired));
    let mut foreign = desired.clone();
    foreign["metadata"]["labels"] = json!({"app.kubernetes.io/managed-by": "kyverno"});
    assert!(!is_sovra_report(&foreign));
    assert!(!same_report(&foreign, &desired));
}
