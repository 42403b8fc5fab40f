//! The operator's RBAC is derived from what it really calls: a scenario exercising every code
//! path runs the operator against the test API server, whose access log records each request
//! as RBAC would authorize it (verb, API group, resource/subresource). The chart's rendered
//! ClusterRole and Role must grant exactly that set: every call is covered and nothing more is
//! granted.
//!
//! The same holds on a member cluster: the calls Sovra makes there with the member's
//! credentials must equal the ClusterRole in `deploy/member/rbac.yaml`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use support::*;

type Grants = BTreeSet<(String, String, String)>;

/// Grants no request uses but an admission plugin checks: setting `blockOwnerDeletion` in an
/// ownerReference needs `update` on the owner's finalizers (OwnerReferencesPermissionEnforcement).
const ADMISSION_ONLY: [(&str, &str, &str); 1] =
    [("sovra.dev", "sovereignworkloads/finalizers", "update")];

/// The calls the operator made, as (group, resource[/subresource], verb). A server-side apply
/// that created its object also needs `create`, which the API server authorizes on creation.
fn calls(server: &test_apiserver::TestApiServer) -> Grants {
    let mut grants = Grants::new();
    for r in server.requests() {
        if r.resource.is_empty() {
            continue; // discovery and /version: non-resource URLs every client may read
        }
        let resource = match &r.subresource {
            Some(sub) => format!("{}/{sub}", r.resource),
            None => r.resource.clone(),
        };
        grants.insert((r.group.clone(), resource.clone(), r.verb.clone()));
        if r.verb == "patch" && r.patch_type.as_deref() == Some("apply") && r.status == 201 {
            grants.insert((r.group.clone(), resource, "create".to_owned()));
        }
    }
    grants
}

fn helm() -> Option<PathBuf> {
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/helm");
    if local.is_file() {
        return Some(local);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("helm"))
        .find(|p| p.is_file())
}

/// The chart's read-only ClusterRole for people and `sovra plan --live`: bound to nobody, so
/// none of the operator's grants (tests/plan_live.rs checks it against plan's requests).
const VIEWER_ROLE: &str = "sovra-viewer";

/// Every rule of the ClusterRoles and Roles in a YAML stream, but the viewer role's.
fn rules_of(text: &str) -> Grants {
    let mut grants = Grants::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let doc: Value = serde::Deserialize::deserialize(doc).unwrap();
        if !matches!(doc["kind"].as_str(), Some("ClusterRole" | "Role"))
            || doc["metadata"]["name"] == VIEWER_ROLE
        {
            continue;
        }
        for rule in doc["rules"].as_array().unwrap() {
            for group in rule["apiGroups"].as_array().unwrap() {
                for resource in rule["resources"].as_array().unwrap() {
                    for verb in rule["verbs"].as_array().unwrap() {
                        grants.insert((
                            group.as_str().unwrap().to_owned(),
                            resource.as_str().unwrap().to_owned(),
                            verb.as_str().unwrap().to_owned(),
                        ));
                    }
                }
            }
        }
    }
    grants
}

/// The rules that name their objects (`resourceNames`): (group, resource, verb) -> names.
fn named_rules(text: &str) -> std::collections::BTreeMap<(String, String, String), Vec<String>> {
    let mut named = std::collections::BTreeMap::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let doc: Value = serde::Deserialize::deserialize(doc).unwrap();
        if !matches!(doc["kind"].as_str(), Some("ClusterRole" | "Role")) {
            continue;
        }
        for rule in doc["rules"].as_array().unwrap() {
            let Some(names) = rule["resourceNames"].as_array() else {
                continue;
            };
            let names: Vec<String> = names
                .iter()
                .map(|n| n.as_str().unwrap().to_owned())
                .collect();
            for verb in rule["verbs"].as_array().unwrap() {
                let key = (
                    rule["apiGroups"][0].as_str().unwrap().to_owned(),
                    rule["resources"][0].as_str().unwrap().to_owned(),
                    verb.as_str().unwrap().to_owned(),
                );
                named.insert(key, names.clone());
            }
        }
    }
    named
}

/// The chart's default rendering.
fn chart_text(helm: &PathBuf) -> String {
    chart_text_with(helm, &[])
}

/// The chart rendered with `set` (`--set` values).
fn chart_text_with(helm: &PathBuf, set: &[&str]) -> String {
    let mut args = vec![
        "template",
        "sovra",
        "charts/sovra",
        "--namespace",
        "sovra-system",
    ];
    for value in set {
        args.extend(["--set", value]);
    }
    let output = Command::new(helm)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Rules of the chart's ClusterRole and Role with default values.
fn chart_grants(helm: &PathBuf) -> Grants {
    rules_of(&chart_text(helm))
}

/// Rules of the chart's ClusterRole and Role with `set` (`--set` values).
fn chart_grants_with(helm: &PathBuf, set: &[&str]) -> Grants {
    rules_of(&chart_text_with(helm, set))
}

/// Drives the operator through every path that talks to the API: leader election and lease
/// renewal, placement, a move, a refusal, a malformed object (raw read, repeated Event),
/// deletion with the finalizer, drift on a pod, signed audit checkpoints (the origin from
/// kube-system, the published checkpoint read at start, ConfigMap applied, Event), and the
/// policy reports (looked up, applied, removed with a namespace's last workload).
async fn exercise_every_path(
    server: &test_apiserver::TestApiServer,
    member: &test_apiserver::TestApiServer,
    dir: &std::path::Path,
) {
    join(server, member_cluster("bund-de-1", "DE"), member);
    install_report_crd(server, "reports.openreports.io.yaml");
    server
        .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}))
        .unwrap();
    let key = dir.join("audit-signing-key.pem");
    let pem = sovra::audit::SigningKey::generate()
        .unwrap()
        .to_pkcs8_pem()
        .unwrap();
    std::fs::write(&key, pem.as_bytes()).unwrap();
    let mut args = run_args("sovra-0", dir.join("sovra-0-audit.jsonl"), true);
    args.audit_signing_key = Some(key);
    args.checkpoint_every_records = 3;
    let operator = start_operator_with(server, args);
    reports_come_and_go(server, &reports(), "archive").await;
    // On the member: namespace created, child applied, then scaled to zero when the member
    // stops meeting the class, then deleted with the workload.
    server
        .put(pinned_to_de("register", "internal", 1, json!({})))
        .unwrap();
    wait_for_phase(server, "register", "Placed").await;
    let mut cluster = server.get(&clusters(), None, "bund-de-1").unwrap();
    cluster["spec"]["provider"]["headquartersCountry"] = json!("US");
    server.put(cluster).unwrap();
    wait_for_phase(server, "register", "Refused").await;
    server
        .delete(&workloads(), Some(NAMESPACE), "register")
        .unwrap();
    eventually("register released", WAIT, || async {
        member
            .get(&deployments(), Some(NAMESPACE), "register")
            .is_none()
            .then_some(())
    })
    .await;
    server
        .put(workload("tax", "confidential", 1, json!({})))
        .unwrap();
    server
        .put(workload("portal", "internal", 1, json!({})))
        .unwrap();
    server
        .put(pinned_to_de("exchange", "confidential", 1, json!({})))
        .unwrap();
    let mut broken = workload("broken", "internal", 1, json!({}));
    broken["spec"]["replicas"] = json!("many");
    // Stored as if written before the schema said replicas is an integer.
    server.put_unvalidated(broken).unwrap();
    wait_for_phase(server, "tax", "Placed").await;
    wait_for_phase(server, "portal", "Placed").await;
    wait_for_phase(server, "exchange", "Refused").await;
    wait_for_event(server, NAMESPACE, "broken", "InvalidSpec").await;

    // A second problem with the object is published as the same Event's series (a patch of
    // the Event); the same problem again is not published at all.
    let mut touched = server.get(&workloads(), Some(NAMESPACE), "broken").unwrap();
    touched["spec"]["replicas"] = json!("lots");
    // A real server refuses any main-resource update of it (the scale subresource's
    // spec.replicas must be an integer, and that check does not ratchet).
    server.put_unvalidated(touched).unwrap();
    eventually("the second problem reported", WAIT, || async {
        let w = server.get(&workloads(), Some(NAMESPACE), "broken")?;
        w.pointer("/status/conditions/0/message")?
            .as_str()?
            .contains("lots")
            .then_some(())
    })
    .await;
    server
        .put(node("gov-spare-0", "gov-spare", false, None))
        .unwrap();
    wait_for_event(server, NAMESPACE, "portal", "Moved").await;

    // A pod of a placed workload on a node outside its pools: drift.
    server
        .put(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "tax-rogue", "namespace": NAMESPACE,
                         "labels": {"sovra.dev/workload": "tax", "sovra.dev/sensitivity": "confidential"}},
            "spec": {"nodeName": "build-agents-0", "containers": [{"name": "app", "image": "x"}]}}))
        .unwrap();

    server.delete(&workloads(), Some(NAMESPACE), "tax").unwrap();
    eventually("tax released", WAIT, || async {
        server
            .get(&workloads(), Some(NAMESPACE), "tax")
            .is_none()
            .then_some(())
    })
    .await;
    // Let the lease be renewed at least once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    eventually("a checkpoint published", WAIT, || async {
        server
            .get(
                &test_apiserver::ResourceRef::new("", "v1", "configmaps"),
                Some(OPERATOR_NAMESPACE),
                "sovra-audit-checkpoint",
            )
            .map(|_| ())
    })
    .await;
    wait_for_event(
        server,
        OPERATOR_NAMESPACE,
        "sovra-audit-checkpoint",
        "AuditCheckpoint",
    )
    .await;
    operator.shutdown().await.unwrap();
}

/// A workload in a namespace of its own: its report is written, and removed when it goes.
async fn reports_come_and_go(
    server: &test_apiserver::TestApiServer,
    res: &test_apiserver::ResourceRef,
    name: &str,
) {
    server
        .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ministry-bzk"}}))
        .unwrap();
    let mut archive = workload(name, "public", 1, json!({}));
    archive["metadata"]["namespace"] = json!("ministry-bzk");
    server.put(archive).unwrap();
    wait_for_report(server, res, "ministry-bzk", "written", |r| {
        report_rows(r).len() == 1
    })
    .await;
    server
        .delete(&workloads(), Some("ministry-bzk"), name)
        .unwrap();
    wait_gone(server, res, Some("ministry-bzk"), "sovra").await;
}

/// The report grants of each `--policy-reports` choice: `wgpolicyk8s` calls only its API, and
/// the chart set to it grants exactly that; `none` grants neither report API.
#[tokio::test]
async fn the_chart_grants_the_report_api_chosen_and_no_other() {
    let Some(helm) = helm() else {
        eprintln!("SKIP: helm not found; run make tools");
        return;
    };
    let report_grants = |grants: Grants| -> Grants {
        grants
            .into_iter()
            .filter(|(group, _, _)| group == "openreports.io" || group == "wgpolicyk8s.io")
            .collect()
    };
    let server = hub_server().await;
    install_report_crd(&server, "policyreports.wgpolicyk8s.io.yaml");
    let dir = tempfile::tempdir().unwrap();
    let mut args = run_args("sovra-0", dir.path().join("audit.jsonl"), false);
    args.policy_reports = sovra::cli::PolicyReportsArg::Wgpolicyk8s;
    let operator = start_operator_with(&server, args);
    reports_come_and_go(&server, &policy_reports(), "archive").await;
    operator.shutdown().await.unwrap();
    let used = report_grants(calls(&server));
    assert!(!used.is_empty());
    assert_eq!(
        used,
        report_grants(chart_grants_with(
            &helm,
            &["operator.policyReports=wgpolicyk8s"]
        )),
        "the chart with policyReports=wgpolicyk8s must grant exactly what Sovra calls"
    );
    assert!(
        report_grants(chart_grants_with(&helm, &["operator.policyReports=none"])).is_empty(),
        "policyReports=none grants no report API"
    );
}

#[tokio::test]
async fn the_chart_grants_exactly_the_api_calls_the_operator_makes() {
    let Some(helm) = helm() else {
        eprintln!("SKIP: helm not found; run make tools");
        return;
    };
    let server = hub_server().await;
    let member = member_server("DE").await;
    let dir = tempfile::tempdir().unwrap();
    exercise_every_path(&server, &member, dir.path()).await;

    let member_used = calls(&member);
    let member_rbac = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/member/rbac.yaml"),
    )
    .unwrap();
    assert_eq!(
        member_used,
        rules_of(&member_rbac),
        "deploy/member/rbac.yaml must grant exactly what Sovra calls on a member"
    );

    let mut used = calls(&server);
    used.extend(
        ADMISSION_ONLY
            .iter()
            .map(|(g, r, v)| ((*g).to_owned(), (*r).to_owned(), (*v).to_owned())),
    );
    let granted = chart_grants(&helm);
    let named = named_rules(&chart_text(&helm));
    for r in server.requests() {
        let key = (r.group.clone(), r.resource.clone(), r.verb.clone());
        if let Some(names) = named.get(&key) {
            let name = r.name.clone().unwrap_or_default();
            assert!(
                names.contains(&name),
                "{} {} {name:?}: the chart grants it only on {names:?}",
                r.verb,
                r.resource
            );
        }
    }
    let missing: Vec<_> = used.difference(&granted).collect();
    let unused: Vec<_> = granted.difference(&used).collect();
    assert!(
        missing.is_empty(),
        "the operator calls these but the chart does not grant them: {missing:?}"
    );
    assert!(
        unused.is_empty(),
        "the chart grants these but the operator never calls them: {unused:?}"
    );
}
