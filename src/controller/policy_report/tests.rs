//! The report builder as tables: each workload's result, drift violations, the summary and
//! determinism.

use super::fixtures::*;
use super::*;

#[test]
fn each_workload_gets_one_result_decided_by_its_conditions() {
    let cases = [
        (
            placed("portal", "internal"),
            row("pass", "internal", "Compliant", "portal"),
            "medium",
            110,
        ),
        (
            refused("exchange", "confidential", "CountryNotRequested"),
            row("fail", "confidential", "CountryNotRequested", "exchange"),
            "high",
            200,
        ),
        (
            audited("trial", "ExtraterritorialExposure"),
            row("warn", "pilot", "ExtraterritorialExposure", "trial"),
            "high",
            310,
        ),
        (
            refused("broken", "public", "InvalidSpec"),
            row("error", "public", "InvalidSpec", "broken"),
            "low",
            200,
        ),
        (
            refused("clash", "secret", "ChildConflict"),
            row("error", "secret", "ChildConflict", "clash"),
            "critical",
            200,
        ),
    ];
    for (workload, expected, severity, seconds) in cases {
        let report = report(&[workload], &[]);
        assert_eq!(
            results(&report),
            std::slice::from_ref(&expected),
            "{expected:?}"
        );
        let result = &report["results"][0];
        assert_eq!(result["source"], "sovra");
        assert_eq!(result["category"], "Placement");
        assert_eq!(result["severity"], severity, "{expected:?}");
        assert_eq!(result["timestamp"], json!({"seconds": seconds, "nanos": 0}));
        assert_eq!(result["resources"][0]["kind"], "SovereignWorkload");
        assert_eq!(result["resources"][0]["apiVersion"], "sovra.dev/v1alpha1");
        assert_eq!(result["resources"][0]["namespace"], NS);
        assert_eq!(result["resources"][0]["uid"], format!("uid-{}", expected.3));
    }
}

#[test]
fn a_warning_under_audit_says_what_enforce_would_refuse_and_names_the_enforcement() {
    let report = report(&[audited("trial", "ExtraterritorialExposure")], &[]);
    let result = &report["results"][0];
    let message = result["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("placed onto aws-fra"), "{message}");
    assert!(message.contains("extraterritorial non-EU law"), "{message}");
    assert_eq!(result["properties"]["enforcement"], "audit");
}

#[test]
fn a_drift_violation_is_a_fail_result_on_the_workload_until_it_is_resolved() {
    let workloads = [placed("tax", "confidential")];
    let during = report(&workloads, &[violation("tax", "tax-rogue", "confidential")]);
    assert_eq!(
        results(&during),
        [
            row("pass", "confidential", "Compliant", "tax"),
            row("fail", "confidential", "PolicyViolation", "tax"),
        ]
    );
    let drift = &during["results"][1];
    assert_eq!(drift["category"], "Drift");
    assert_eq!(drift["resources"][0]["uid"], "uid-tax");
    assert_eq!(drift["properties"]["pod"], "tax-rogue");
    assert_eq!(drift["timestamp"]["seconds"], 500);
    assert!(
        drift["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not sovereign")
    );
    assert_eq!(during["summary"]["fail"], 1);

    let after = report(&workloads, &[]);
    assert_eq!(
        results(&after),
        [row("pass", "confidential", "Compliant", "tax")]
    );
    assert_eq!(after["summary"]["fail"], 0);
}

#[test]
fn a_violation_whose_workload_does_not_exist_is_about_the_pod() {
    let mut orphan = violation("gone", "gone-0", "secret");
    orphan.workload_found = false;
    let report = report(&[], &[orphan]);
    let resource = &report["results"][0]["resources"][0];
    assert_eq!(
        (&resource["kind"], &resource["name"]),
        (&json!("Pod"), &json!("gone-0"))
    );
    assert_eq!(report["results"][0]["severity"], "critical");
}

#[test]
fn the_summary_counts_the_results() {
    let report = report(
        &[
            placed("a", "public"),
            placed("b", "internal"),
            refused("c", "secret", "CountryNotAllowed"),
            audited("d", "MissingCertifications"),
            refused("e", "public", "InvalidSpec"),
        ],
        &[violation("a", "a-rogue", "public")],
    );
    assert_eq!(
        report["summary"],
        json!({"pass": 2, "fail": 2, "warn": 1, "error": 1, "skip": 0})
    );
}

#[test]
fn the_report_is_deterministic_whatever_the_order_and_precision_of_its_input() {
    let mut precise = placed("b", "internal");
    for c in &mut precise.status.as_mut().expect("status").conditions {
        // What Sovra just wrote carries nanoseconds; the cache has whole seconds.
        c.last_transition_time = Time(
            jiff::Timestamp::new(c.last_transition_time.0.as_second(), 123_456_789)
                .expect("a valid time"),
        );
    }
    let one = report(
        &[placed("b", "internal"), placed("a", "public")],
        &[
            violation("a", "a-2", "public"),
            violation("a", "a-1", "public"),
        ],
    );
    let other = report(
        &[placed("a", "public"), precise],
        &[
            violation("a", "a-1", "public"),
            violation("a", "a-2", "public"),
        ],
    );
    assert_eq!(one, other);
    assert_eq!(
        serde_json::to_string(&one).ok(),
        serde_json::to_string(&other).ok()
    );
    let names: Vec<String> = results(&one).into_iter().map(|r| r.3).collect();
    assert_eq!(names, ["a", "a", "a", "b"]);
}
