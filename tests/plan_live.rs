//! `sovra plan --live` against the in-process test API server: a hub whose clusters report
//! their node pools in status and whose workloads report their placements, read with list
//! requests only, with an override file that tightens two classes and adds a cluster. The plan
//! is the difference from the placements in status.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{Value, json};
use sovra::cli::live::live_inputs;
use sovra::cli::plan::{OutputFormat, PlanOptions, plan_live};
use sovra::cli::whatif::parse_without;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

fn pool(name: &str, dedicated_to: Option<&str>, country: &str) -> Value {
    let mut pool = json!({"name": name, "nodes": 2, "sovereignNodes": 2, "sovereign": true, "country": country});
    if let Some(class) = dedicated_to {
        pool["dedicatedTo"] = json!(class);
    }
    pool
}

fn reachable() -> Value {
    json!([{"type": "Reachable", "status": "True", "reason": "Probed",
            "message": "the API server answers and Sovra may read its Nodes",
            "lastTransitionTime": "2025-01-01T00:00:00Z"}])
}

/// A workload with `placed_on` (cluster, pool) recorded in its status, as the operator writes it.
fn placed(mut workload: Value, placed_on: Option<(&str, &str)>) -> Value {
    let replicas = workload["spec"]["replicas"].clone();
    workload["status"] = match placed_on {
        Some((cluster, pool)) => json!({"phase": "Placed", "replicas": replicas,
            "placements": [{"cluster": cluster, "country": "NL", "nodePools": [pool], "replicas": replicas}]}),
        None => json!({"phase": "Refused", "replicas": replicas}),
    };
    workload
}

/// The hub: Sovra's CRDs and default classes, the hub cluster with a general and a
/// confidential pool in status, a reachable French member with a confidential pool, and four
/// workloads, three of them placed on the hub.
async fn hub() -> test_apiserver::TestApiServer {
    let server = hub_server().await;
    let mut hub = hub_cluster(&["BIO", "ISO27001", "EUCS-High", "Haven"]);
    hub["status"] = json!({"nodePools": [pool("gov-general", None, "NL"), pool("gov-confidential", Some("confidential"), "NL")]});
    server.put(hub).unwrap();
    server
        .put(json!({
            "apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignCluster",
            "metadata": {"name": "secnum-paris"},
            "spec": {"country": "FR", "operatedBy": "eu-provider",
                     "provider": {"name": "Hexacloud SAS", "headquartersCountry": "FR", "extraterritorialExposure": false},
                     "certifications": ["BIO", "SecNumCloud", "EUCS-High"],
                     "connection": {"kubeconfigSecretRef": {"name": "secnum-paris-kubeconfig"}}},
            "status": {"nodePools": [pool("secnum-confidential", Some("confidential"), "FR")], "conditions": reachable()}
        }))
        .unwrap();
    for workload in [
        placed(
            workload("tax", "confidential", 2, json!({})),
            Some((HUB, "gov-confidential")),
        ),
        placed(
            workload("portal", "internal", 1, json!({})),
            Some((HUB, "gov-general")),
        ),
        placed(
            workload("open-data", "public", 1, json!({})),
            Some((HUB, "gov-general")),
        ),
        placed(pinned_to_de("exchange", "confidential", 1, json!({})), None),
    ] {
        server.put(workload).unwrap();
    }
    let mut broken = workload("broken", "internal", 1, json!({}));
    broken["spec"]["replicas"] = json!("many");
    server.put_unvalidated(broken).unwrap();
    server
}

/// Confidential now requires SecNumCloud (the hub has none), internal only France (whose one
/// cluster has no pool internal may use), and a German cluster whose pool is given as Nodes.
const OVERRIDES: &str = r#"
apiVersion: sovra.dev/v1alpha1
kind: SensitivityClass
metadata: {name: confidential}
spec:
  enforcement: enforce
  location: {jurisdictions: [EU, EEA]}
  provider: {headquartersJurisdictions: [EU, EEA], extraterritorialExposureAllowed: false}
  certifications: {allOf: [BIO, SecNumCloud]}
  nodePool: {dedicated: true}
---
apiVersion: sovra.dev/v1alpha1
kind: SensitivityClass
metadata: {name: internal}
spec:
  enforcement: enforce
  location: {jurisdictions: [EU, EEA], countries: [FR]}
  provider: {headquartersJurisdictions: [EU, EEA], extraterritorialExposureAllowed: true}
---
apiVersion: sovra.dev/v1alpha1
kind: SovereignCluster
metadata: {name: bund-de-1}
spec:
  country: DE
  operatedBy: government
  provider: {name: Bundescloud, headquartersCountry: DE, extraterritorialExposure: false}
  certifications: [BIO, SecNumCloud]
  connection: {kubeconfigSecretRef: {name: bund-de-1-kubeconfig}}
---
apiVersion: v1
kind: Node
metadata:
  name: bund-de-1-confidential-0
  annotations: {sovra.dev/cluster: bund-de-1}
  labels:
    sovra.dev/node-pool: de-confidential
    sovra.dev/country: DE
    node-restriction.kubernetes.io/sovra-sovereign: "true"
spec:
  taints: [{key: sovra.dev/sensitivity, value: confidential, effect: NoSchedule}]
"#;

fn options(output: OutputFormat) -> PlanOptions {
    PlanOptions {
        pool_label: POOL_LABEL.to_owned(),
        ..PlanOptions::new(output)
    }
}

fn overrides_file(dir: &Path) -> PathBuf {
    let path = dir.join("overrides.yaml");
    std::fs::write(&path, OVERRIDES).unwrap();
    path
}

fn workload_in<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {plan}"))
}

#[tokio::test]
async fn an_override_that_tightens_classes_shows_what_would_move_be_refused_or_newly_fit() {
    let server = hub().await;
    server.clear_requests();
    let inputs = live_inputs(server.client()).await.unwrap();
    assert_eq!(
        inputs.skipped.len(),
        1,
        "the malformed workload is left out: {:?}",
        inputs.skipped
    );
    assert!(inputs.skipped[0].starts_with("SovereignWorkload broken: does not match its schema"));
    let dir = tempfile::tempdir().unwrap();
    let overrides = [overrides_file(dir.path())];

    let report = plan_live(inputs.clone(), &overrides, &options(OutputFormat::Json));
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.refused, 1, "{}", report.rendered);
    let plan: Value = serde_json::from_str(&report.rendered).unwrap();
    let change = |name: &str| workload_in(&plan, name)["change"]["kind"].clone();
    assert_eq!(change("tax"), "moved");
    assert_eq!(
        workload_in(&plan, "tax")["change"]["before"][0]["cluster"],
        HUB
    );
    assert_eq!(
        workload_in(&plan, "tax")["placements"][0]["cluster"],
        "secnum-paris"
    );
    assert_eq!(change("portal"), "refused");
    assert_eq!(change("open-data"), "kept");
    assert_eq!(change("exchange"), "newly placed");
    assert_eq!(
        workload_in(&plan, "exchange")["placements"][0]["cluster"],
        "bund-de-1"
    );
    assert_eq!(plan["whatIf"]["baseline"], "status");
    assert_eq!(
        plan["whatIf"]["overrides"],
        json!([
            "SensitivityClass confidential replaced",
            "SensitivityClass internal replaced",
            "SovereignCluster bund-de-1 added"
        ])
    );

    // As text: only the difference is listed.
    let text = plan_live(inputs.clone(), &overrides, &options(OutputFormat::Table)).rendered;
    assert!(
        text.starts_with(
            "Read from the hub: 4 SensitivityClasses, 2 SovereignClusters, 4 SovereignWorkloads."
        ),
        "{text}"
    );
    let row = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{NAMESPACE}/{name} ")))
    };
    let tax = row("tax").unwrap();
    assert!(tax.contains(" moved "), "{text}");
    assert!(
        tax.ends_with(&format!(
            "{HUB} [gov-confidential] x2 -> secnum-paris [secnum-confidential] x2"
        )),
        "{text}"
    );
    assert!(row("portal").unwrap().contains(" refused "), "{text}");
    assert!(
        row("exchange").unwrap().contains(" newly placed "),
        "{text}"
    );
    assert!(row("open-data").is_none(), "{text}");
    assert!(
        text.contains(
            "Not listed: 1 workload(s) keep their placement, 0 stay refused (--explain lists them)."
        ),
        "{text}"
    );

    // --without combines with --live: without France and Germany (the added cluster too),
    // tax has nowhere to go.
    let without = PlanOptions {
        without: vec![
            parse_without("country=FR").unwrap(),
            parse_without("country=DE").unwrap(),
        ],
        ..options(OutputFormat::Json)
    };
    let report = plan_live(inputs.clone(), &overrides, &without);
    let plan: Value = serde_json::from_str(&report.rendered).unwrap();
    assert_eq!(workload_in(&plan, "tax")["change"]["kind"], "refused");
    assert_eq!(
        plan["whatIf"]["removedClusters"],
        json!(["bund-de-1", "secnum-paris"])
    );
    assert_eq!(
        workload_in(&plan, "exchange")["change"]["kind"],
        "still refused"
    );
    assert_eq!(report.refused, 3);

    // Without overrides the hub is decided as it recorded itself: nothing changes.
    let unchanged = plan_live(inputs, &[], &options(OutputFormat::Table));
    assert!(
        unchanged
            .rendered
            .contains("No workload would move, be refused or newly fit."),
        "{}",
        unchanged.rendered
    );
    assert_eq!(unchanged.refused, 1, "exchange stays refused");

    assert_read_only(&server);
}

/// Every request was a list of one of Sovra's three resources, each granted by the chart's
/// viewer ClusterRole.
fn assert_read_only(server: &test_apiserver::TestApiServer) {
    let requests = server.requests();
    let calls: BTreeSet<(String, String, String)> = requests
        .iter()
        .map(|r| {
            assert!(
                r.verb == "list" || r.verb == "get",
                "plan --live only reads: {r:?}"
            );
            (r.group.clone(), r.resource.clone(), r.verb.clone())
        })
        .collect();
    let expected: BTreeSet<(String, String, String)> = [
        "sensitivityclasses",
        "sovereignclusters",
        "sovereignworkloads",
    ]
    .iter()
    .map(|r| ("sovra.dev".to_owned(), (*r).to_owned(), "list".to_owned()))
    .collect();
    assert_eq!(calls, expected);

    let Some(helm) = helm() else {
        eprintln!("SKIP viewer role comparison: helm not found; run make tools");
        return;
    };
    let output = Command::new(helm)
        .args([
            "template",
            "sovra",
            "charts/sovra",
            "--namespace",
            "sovra-system",
        ])
        .args(["--show-only", "templates/viewerrole.yaml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let role: Value = serde_norway::from_slice(&output.stdout).unwrap();
    let mut granted = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        for resource in rule["resources"].as_array().unwrap() {
            for verb in rule["verbs"].as_array().unwrap() {
                granted.insert((
                    rule["apiGroups"][0].as_str().unwrap().to_owned(),
                    resource.as_str().unwrap().to_owned(),
                    verb.as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    let missing: Vec<_> = calls.difference(&granted).collect();
    assert!(
        missing.is_empty(),
        "sovra-viewer does not grant {missing:?}"
    );
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

#[tokio::test]
async fn a_hub_that_cannot_be_listed_is_an_error_naming_what_failed() {
    let server = hub().await;
    server.stop().await;
    let error = live_inputs(server.client()).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("cannot read the hub: list sensitivityclasses.sovra.dev: "),
        "{error}"
    );
}

/// Runs the real binary (off the runtime's thread, so the in-process server keeps answering).
async fn sovra(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_sovra"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("plan")
            .args(args)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_binary_reads_the_hub_of_a_kubeconfig_context_and_exits_1_on_a_refusal() {
    let server = hub().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig_yaml()).unwrap();
    let overrides = overrides_file(dir.path());
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let live = |extra: &[&str]| {
        let mut args = vec![
            "--live".to_owned(),
            "--kubeconfig".to_owned(),
            path(&kubeconfig),
            "--context".to_owned(),
            format!("test-{}", server.port()),
            "--node-pool-label".to_owned(),
            POOL_LABEL.to_owned(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    };

    let output = sovra(live(&["-f", &path(&overrides)])).await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("What if: with SensitivityClass confidential replaced"),
        "{stdout}"
    );
    assert!(
        stderr.contains("warning: SovereignWorkload broken: does not match its schema"),
        "{stderr}"
    );
    assert!(stderr.contains("1 workload(s) refused"), "{stderr}");

    let output = sovra(vec![
        "--live".to_owned(),
        "--kubeconfig".to_owned(),
        path(&kubeconfig),
        "--context".to_owned(),
        "nowhere".to_owned(),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("error: cannot read the hub: kubeconfig"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}
