//! Policy reports against the in-process API server: one OpenReports `Report` per namespace with
//! a result per workload (pass, fail, warn under audit) and drift violations as fail results
//! until resolved; no write when nothing changed; without the CRD a condition on the hub and
//! placement as before; `--policy-reports=wgpolicyk8s`; a report that is not Sovra's left alone.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::*;
use test_apiserver::{ResourceRef, TestApiServer};

const OPENREPORTS_CRD: &str = "reports.openreports.io.yaml";

fn row(result: &str, policy: &str, rule: &str, name: &str) -> (String, String, String, String) {
    (result.into(), policy.into(), rule.into(), name.into())
}

/// An `audit` class the hub fails (it is not SecNumCloud certified): placed, with a warning.
fn pilot_class() -> Value {
    json!({
        "apiVersion": "sovra.dev/v1alpha1", "kind": "SensitivityClass", "metadata": {"name": "pilot"},
        "spec": {"enforcement": "audit", "certifications": {"allOf": ["SecNumCloud"]}}
    })
}

fn in_namespace(mut workload: Value, namespace: &str) -> Value {
    workload["metadata"]["namespace"] = json!(namespace);
    workload
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn report_requests(server: &TestApiServer, plural: &str) -> Vec<test_apiserver::RequestRecord> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.resource == plural)
        .collect()
}

fn pods() -> ResourceRef {
    ResourceRef::new("", "v1", "pods")
}

#[tokio::test]
async fn each_namespace_gets_one_report_with_a_result_per_workload() {
    let server = hub_server().await;
    install_report_crd(&server, OPENREPORTS_CRD);
    server.put(pilot_class()).unwrap();
    server.put(namespace("ministry-bzk")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _operator = start_operator(&server, dir.path(), "sovra-0", false);
    server
        .put(workload("portal", "internal", 1, json!({})))
        .unwrap();
    server
        .put(pinned_to_de("exchange", "confidential", 1, json!({})))
        .unwrap();
    server
        .put(workload("trial", "pilot", 1, json!({})))
        .unwrap();
    server
        .put(in_namespace(
            workload("register", "public", 1, json!({})),
            "ministry-bzk",
        ))
        .unwrap();

    let expected = [
        row("fail", "confidential", "CountryNotRequested", "exchange"),
        row("pass", "internal", "Compliant", "portal"),
        row("warn", "pilot", "MissingCertifications", "trial"),
    ];
    let report = wait_for_report(&server, &reports(), NAMESPACE, "three results", |r| {
        report_rows(r) == expected
    })
    .await;
    assert_eq!(report["source"], "sovra");
    assert_eq!(
        report["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "sovra"
    );
    assert_eq!(
        report["summary"],
        json!({"pass": 1, "fail": 1, "warn": 1, "error": 0, "skip": 0})
    );
    let results = report["results"].as_array().unwrap();
    let severities: Vec<&str> = results
        .iter()
        .map(|r| r["severity"].as_str().unwrap())
        .collect();
    assert_eq!(severities, ["high", "medium", "high"]);
    let portal = server.get(&workloads(), Some(NAMESPACE), "portal").unwrap();
    assert_eq!(results[1]["resources"][0]["uid"], portal["metadata"]["uid"]);
    assert_eq!(results[1]["resources"][0]["kind"], "SovereignWorkload");
    // The time the result was found: the deciding condition's, not the time of the write.
    let compliant = portal["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Compliant")
        .unwrap()
        .clone();
    let seconds = compliant["lastTransitionTime"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_second();
    assert_eq!(
        results[1]["timestamp"],
        json!({"seconds": seconds, "nanos": 0})
    );
    let trial = &results[2];
    assert!(
        trial["message"]
            .as_str()
            .unwrap()
            .contains("missing certifications: SecNumCloud"),
        "{trial}"
    );

    wait_for_report(
        &server,
        &reports(),
        "ministry-bzk",
        "its own workload",
        |r| report_rows(r) == [row("pass", "public", "Compliant", "register")],
    )
    .await;
}

#[tokio::test]
async fn a_reconcile_that_changes_nothing_sends_no_report_request() {
    let server = hub_server().await;
    install_report_crd(&server, OPENREPORTS_CRD);
    let dir = tempfile::tempdir().unwrap();
    let (_operator, addr) = start_serving_operator(&server, dir.path(), "sovra-0", false).await;
    server
        .put(workload("portal", "internal", 1, json!({})))
        .unwrap();
    wait_for_report(&server, &reports(), NAMESPACE, "portal passes", |r| {
        report_rows(r) == [row("pass", "internal", "Compliant", "portal")]
    })
    .await;
    let writes = |server: &TestApiServer| {
        report_requests(server, "reports")
            .into_iter()
            .filter(|r| r.verb != "get")
            .count()
    };
    eventually("the report written once", WAIT, || async {
        (writes(&server) == 1).then_some(())
    })
    .await;
    // Let the report writer settle, then forget what it did.
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.clear_requests();

    let started = reconciles_started(addr, "workload").await;
    touch_workload(&server, "portal").await;
    wait_for_reconciles_after(addr, "workload", started, 1).await;
    // Longer than the writer's debounce: it built the report and found it unchanged.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent = report_requests(&server, "reports");
    assert!(sent.is_empty(), "nothing changed, nothing sent: {sent:?}");
}

#[tokio::test]
async fn without_the_report_crd_the_hub_says_so_once_and_placement_goes_on() {
    let server = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let (_operator, addr) = start_serving_operator(&server, dir.path(), "sovra-0", false).await;
    server
        .put(workload("portal", "internal", 1, json!({})))
        .unwrap();
    wait_for_phase(&server, "portal", "Placed").await;
    let said = eventually("the hub says the CRD is missing", WAIT, || async {
        cluster_condition(&server, HUB, "PolicyReports")
            .filter(|c| c["status"] == "False" && c["reason"] == "CRDNotInstalled")
    })
    .await;
    assert!(
        said["message"]
            .as_str()
            .unwrap()
            .contains("reports.openreports.io is not installed"),
        "{said}"
    );

    // Said once: a hub reconcile that finds the same writes nothing, and placing goes on.
    let hub_status_writes = |server: &TestApiServer| {
        server
            .requests()
            .into_iter()
            .filter(|r| {
                r.resource == "sovereignclusters"
                    && r.subresource.as_deref() == Some("status")
                    && r.verb == "patch"
            })
            .count()
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = hub_status_writes(&server);
    let started = reconciles_started(addr, "cluster").await;
    let api: kube::Api<sovra::crd::SovereignCluster> = kube::Api::all(server.client());
    api.patch(
        HUB,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(
            json!({"metadata": {"annotations": {"example.org/touched": "1"}}}),
        ),
    )
    .await
    .unwrap();
    wait_for_reconciles_after(addr, "cluster", started, 1).await;
    server
        .put(workload("tax", "confidential", 1, json!({})))
        .unwrap();
    wait_for_phase(&server, "tax", "Placed").await;
    assert_eq!(
        hub_status_writes(&server),
        before,
        "the condition is not written again"
    );
    assert_eq!(cluster_condition(&server, HUB, "PolicyReports"), Some(said));
    assert!(
        report_requests(&server, "reports").is_empty(),
        "no report is written without its CRD"
    );

    // Installing the CRD later starts the reports (it is looked for as often as members are
    // probed), and the hub says so.
    install_report_crd(&server, OPENREPORTS_CRD);
    wait_for_report(&server, &reports(), NAMESPACE, "both workloads", |r| {
        report_rows(r).len() == 2
    })
    .await;
    eventually("the hub says reports are written", WAIT, || async {
        cluster_condition(&server, HUB, "PolicyReports")
            .filter(|c| c["status"] == "True" && c["reason"] == "Writing")
    })
    .await;
}

#[tokio::test]
async fn with_wgpolicyk8s_a_policy_report_is_written_instead() {
    let server = hub_server().await;
    install_report_crd(&server, "policyreports.wgpolicyk8s.io.yaml");
    let dir = tempfile::tempdir().unwrap();
    let mut args = run_args("sovra-0", dir.path().join("audit.jsonl"), false);
    args.policy_reports = sovra::cli::PolicyReportsArg::Wgpolicyk8s;
    let _operator = start_operator_with(&server, args);
    server
        .put(workload("portal", "internal", 1, json!({})))
        .unwrap();

    let report = wait_for_report(&server, &policy_reports(), NAMESPACE, "portal", |r| {
        report_rows(r) == [row("pass", "internal", "Compliant", "portal")]
    })
    .await;
    assert_eq!(report["apiVersion"], "wgpolicyk8s.io/v1alpha2");
    assert_eq!(report["kind"], "PolicyReport");
    assert_eq!(report["results"][0]["source"], "sovra");
    assert_eq!(report["summary"]["pass"], 1);
    eventually("the hub says policy reports are written", WAIT, || async {
        cluster_condition(&server, HUB, "PolicyReports").filter(|c| {
            c["status"] == "True" && c["message"].as_str().unwrap().contains("PolicyReport")
        })
    })
    .await;
}

#[tokio::test]
async fn a_drift_violation_is_a_fail_result_on_the_workload_until_the_pod_goes() {
    let server = hub_server().await;
    install_report_crd(&server, OPENREPORTS_CRD);
    server
        .put(json!({
            "apiVersion": "sovra.dev/v1alpha1", "kind": "SensitivityClass", "metadata": {"name": "lenient"},
            "spec": {"enforcement": "audit"}
        }))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _operator = start_operator(&server, dir.path(), "sovra-0", false);
    server
        .put(workload("trial", "lenient", 1, json!({})))
        .unwrap();
    wait_for_phase(&server, "trial", "Placed").await;
    // Under audit the pod is reported, not evicted: it stays in violation.
    server
        .put(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "trial-rogue", "namespace": NAMESPACE,
                         "labels": {"sovra.dev/workload": "trial", "sovra.dev/sensitivity": "lenient"}},
            "spec": {"nodeName": "build-agents-0", "containers": [{"name": "app", "image": "x"}]},
            "status": {"phase": "Running"}}))
        .unwrap();

    let report = wait_for_report(&server, &reports(), NAMESPACE, "the violation", |r| {
        report_rows(r)
            == [
                row("pass", "lenient", "Compliant", "trial"),
                row("fail", "lenient", "PolicyViolation", "trial"),
            ]
    })
    .await;
    let drift = &report["results"][1];
    assert_eq!(drift["category"], "Drift");
    assert_eq!(drift["properties"]["pod"], "trial-rogue");
    assert_eq!(drift["properties"]["node"], "build-agents-0");
    assert!(
        drift["message"]
            .as_str()
            .unwrap()
            .contains("is not sovereign"),
        "{drift}"
    );
    assert_eq!(report["summary"]["fail"], 1);

    server
        .delete(&pods(), Some(NAMESPACE), "trial-rogue")
        .unwrap();
    let resolved = wait_for_report(&server, &reports(), NAMESPACE, "resolved", |r| {
        report_rows(r) == [row("pass", "lenient", "Compliant", "trial")]
    })
    .await;
    assert_eq!(resolved["summary"]["fail"], 0);
}

#[tokio::test]
async fn a_report_under_sovras_name_that_is_not_sovras_is_left_alone() {
    let server = hub_server().await;
    install_report_crd(&server, OPENREPORTS_CRD);
    let foreign = json!({
        "apiVersion": "openreports.io/v1alpha1", "kind": "Report",
        "metadata": {"name": "sovra", "namespace": NAMESPACE, "labels": {"app.kubernetes.io/managed-by": "kyverno"}},
        "source": "kyverno",
        "results": [{"policy": "require-labels", "rule": "team", "result": "fail"}]
    });
    server.put(foreign).unwrap();
    let before = server.get(&reports(), Some(NAMESPACE), "sovra").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _operator = start_operator(&server, dir.path(), "sovra-0", false);
    server
        .put(workload("portal", "internal", 1, json!({})))
        .unwrap();
    wait_for_phase(&server, "portal", "Placed").await;

    let said = wait_for_event(&server, NAMESPACE, "sovra", "ReportConflict").await;
    assert_eq!(said["regarding"]["kind"], "Report");
    assert!(
        said["note"].as_str().unwrap().contains("not Sovra's"),
        "{said}"
    );
    let writes: Vec<_> = report_requests(&server, "reports")
        .into_iter()
        .filter(|r| r.verb != "get")
        .collect();
    assert!(writes.is_empty(), "never written: {writes:?}");
    assert_eq!(
        server.get(&reports(), Some(NAMESPACE), "sovra").unwrap(),
        before
    );
}

#[tokio::test]
async fn a_namespace_whose_last_workload_goes_loses_its_report() {
    let server = hub_server().await;
    install_report_crd(&server, OPENREPORTS_CRD);
    let dir = tempfile::tempdir().unwrap();
    let _operator = start_operator(&server, dir.path(), "sovra-0", false);
    server
        .put(workload("portal", "internal", 1, json!({})))
        .unwrap();
    wait_for_report(&server, &reports(), NAMESPACE, "portal", |r| {
        report_rows(r).len() == 1
    })
    .await;

    server
        .delete(&workloads(), Some(NAMESPACE), "portal")
        .unwrap();
    wait_gone(&server, &reports(), Some(NAMESPACE), "sovra").await;
}
