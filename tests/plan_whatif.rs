//! `sovra plan --without` and `--concentration` as a pipeline runs them: the real binary on the
//! shipped examples (two providers, Rijkscloud and the Hexacloud group of secnum-paris and its
//! Belgian subsidiary hexacloud-brussels), the exit code and what it prints.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn sovra(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sovra"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("plan")
        .args(args)
        .output()
        .expect("sovra runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The line of `workload` in the what-if table.
fn row<'a>(text: &'a str, workload: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(workload))
        .unwrap_or_else(|| panic!("no row for {workload} in:\n{text}"))
}

/// The shipped clusters, nodes and classes, and only the workloads in `workloads`: a fleet
/// whose plan passes (exit 0) until something is taken away.
fn examples_without_refusals(workloads: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["clusters.yaml", "nodes.yaml", "sensitivityclasses.yaml"] {
        let from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name);
        std::fs::copy(from, dir.path().join(name)).unwrap();
    }
    std::fs::write(dir.path().join("workloads.yaml"), workloads).unwrap();
    dir
}

const SPREAD_OVER_TWO_PROVIDERS: &str = "apiVersion: sovra.dev/v1alpha1
kind: SovereignWorkload
metadata: {name: benefits-payments, namespace: ministry-szw}
spec:
  sensitivity: internal
  replicas: 4
  placement: {minProviders: 2}
  template: {spec: {containers: [{name: app, image: registry.example.nl/app:1}]}}
";

#[test]
fn taking_away_a_provider_group_refuses_what_needs_it_and_ends_with_a_summary() {
    let output = sovra(&["-f", "examples/", "--without", "provider=Hexacloud SAS"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        text.contains(
            "What if: without provider=Hexacloud SAS, taking away hexacloud-brussels, secnum-paris."
        ),
        "the parent's name takes its subsidiary too:\n{text}"
    );
    assert!(row(&text, "ministry-bzk/case-management").contains(" kept "));
    assert!(row(&text, "ministry-fin/tax-assessment").contains(" refused "));
    assert!(row(&text, "ministry-fin/partner-data-exchange").contains(" still refused "));
    assert!(row(&text, "ministry-def/intelligence-analysis").contains(" stranded "));
    assert!(
        text.contains("ministry-szw/benefits-payments (internal): refused: 2 distinct providers (minProviders) requested, 1 qualifies: Rijkscloud (ODC-Noord); nearest: "),
        "{text}"
    );
    assert!(
        text.contains("What-if summary (without provider=Hexacloud SAS, taking away hexacloud-brussels, secnum-paris): 0 moved, 3 refused (2 placed before), 3 stranded, 0 newly placed, 4 kept, of 7 workload(s)."),
        "{text}"
    );
    assert!(stderr(&output).contains("3 workload(s) refused"));
}

#[test]
fn a_removal_alone_turns_a_passing_plan_into_exit_1() {
    let dir = examples_without_refusals(SPREAD_OVER_TWO_PROVIDERS);
    let path = dir.path().to_str().unwrap();

    let baseline = sovra(&["-f", path]);
    assert_eq!(baseline.status.code(), Some(0), "{}", stderr(&baseline));

    let gone = sovra(&["-f", path, "--without", "provider=Hexacloud SAS"]);
    assert_eq!(gone.status.code(), Some(1), "{}", stdout(&gone));
    assert!(stderr(&gone).contains("1 workload(s) refused"));
    assert!(
        stdout(&gone).contains("0 moved, 1 refused (1 placed before), 0 stranded"),
        "{}",
        stdout(&gone)
    );

    // One cluster of the group gone: its sibling of the same parent takes over, which is
    // still a second provider.
    let one = sovra(&["-f", path, "--without", "cluster=secnum-paris"]);
    assert_eq!(one.status.code(), Some(0), "{}", stdout(&one));
    let text = stdout(&one);
    assert!(
        row(&text, "ministry-szw/benefits-payments").ends_with(
            "rijkscloud-nl [gov-general] x2; secnum-paris [secnum-general] x2 -> hexacloud-brussels [hx-general] x2; rijkscloud-nl [gov-general] x2"
        ),
        "{text}"
    );
    // On two providers again, so not stranded: losing either leaves it on the other.
    assert!(
        text.contains("1 moved, 0 refused (0 placed before), 0 stranded"),
        "{text}"
    );
}

#[test]
fn values_can_be_repeated_and_combine() {
    let dir = examples_without_refusals(SPREAD_OVER_TWO_PROVIDERS);
    let path = dir.path().to_str().unwrap();
    let output = sovra(&[
        "-f",
        path,
        "--without",
        "country=FR",
        "--without",
        "country=BE",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(
        stdout(&output).contains(
            "without country=FR, country=BE, taking away hexacloud-brussels, secnum-paris"
        ),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_malformed_or_unmatched_value_exits_2_naming_it() {
    for (value, expected) in [
        (
            "Hexacloud",
            "expected provider=NAME, cluster=NAME or country=XX",
        ),
        (
            "country=fr",
            "a country is an ISO 3166-1 alpha-2 code in capitals",
        ),
        ("region=eu-west", "unknown kind \"region\""),
        (
            "provider=Hexacloud",
            "--without provider=Hexacloud matches no SovereignCluster (there are: Example Hyperscaler, Example Hyperscaler EU (US parent), Hexacloud Benelux SRL, Hexacloud SAS, Rijkscloud (ODC-Noord))",
        ),
        (
            "cluster=nowhere",
            "--without cluster=nowhere matches no SovereignCluster",
        ),
    ] {
        let output = sovra(&["-f", "examples/", "--without", value]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{value}: {}",
            stderr(&output)
        );
        assert!(stdout(&output).is_empty(), "{value}: {}", stdout(&output));
        assert!(
            stderr(&output).contains(expected),
            "{value}: expected {expected:?} in:\n{}",
            stderr(&output)
        );
    }
}

#[test]
fn json_says_what_changed_against_what_with_the_summary() {
    let output = sovra(&[
        "-f",
        "examples/",
        "-o",
        "json",
        "--without",
        "cluster=secnum-paris",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let plan: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let workload = |name: &str| {
        plan["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {plan}"))
            .clone()
    };
    let tax = workload("tax-assessment");
    assert_eq!(tax["outcome"], "Placed");
    assert_eq!(tax["change"]["kind"], "moved");
    let clusters = |placements: &Value| -> Vec<String> {
        placements
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["cluster"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        clusters(&tax["change"]["before"]),
        ["rijkscloud-nl", "secnum-paris"]
    );
    assert_eq!(
        clusters(&tax["placements"]),
        ["hexacloud-brussels", "rijkscloud-nl"]
    );
    assert_eq!(
        tax["exit"]["stranded"], false,
        "spread over two providers, it is not stranded"
    );
    let portal = workload("open-data-portal");
    assert_eq!(portal["change"]["kind"], "kept");
    assert_eq!(portal["exit"]["stranded"], false);
    assert!(
        !portal["exit"]["alternatives"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        workload("partner-data-exchange")["change"]["kind"],
        "still refused"
    );
    assert!(workload("partner-data-exchange")["exit"].is_null());

    let what_if = &plan["whatIf"];
    assert_eq!(what_if["baseline"], "plan");
    assert_eq!(
        what_if["without"],
        serde_json::json!(["cluster=secnum-paris"])
    );
    assert_eq!(
        what_if["removedClusters"],
        serde_json::json!(["secnum-paris"])
    );
    let total = what_if["summary"].as_array().unwrap().last().unwrap();
    assert_eq!(total["class"], "*");
    assert_eq!(
        (total["workloads"].as_u64(), total["moved"].as_u64()),
        (Some(7), Some(2))
    );
}

#[test]
fn concentration_gives_shares_the_index_and_single_provider_workloads() {
    let output = sovra(&["-f", "examples/", "--concentration"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stdout(&output);
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        text.contains("ministry-fin/partner-data-exchange  confidential  enforce      Refused"),
        "the plan as always, first:\n{text}"
    );
    // internal: case-management 3 and benefits-payments 2 on Rijkscloud, 2 on Hexacloud SAS:
    // (5/7)^2 + (2/7)^2 = 59.18 % of 10,000.
    assert!(
        words.contains("internal 7 5,918 highly concentrated Rijkscloud (ODC-Noord) 71.4% (5), Hexacloud SAS 28.6% (2)"),
        "{text}"
    );
    assert!(
        words.contains("secret 2 10,000 highly concentrated Rijkscloud (ODC-Noord) 100.0% (2)"),
        "{text}"
    );
    assert!(
        text.contains("confidential: on a single provider: ministry-bzk/civil-registry (Rijkscloud (ODC-Noord))"),
        "{text}"
    );
    assert!(
        text.contains("Above 2,500 is highly concentrated"),
        "{text}"
    );

    let json = sovra(&["-f", "examples/", "--concentration", "-o", "json"]);
    let plan: Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(plan["workloads"].as_array().unwrap().len(), 7);
    assert!(plan.get("whatIf").is_none());
    let internal = plan["concentration"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["class"] == "internal")
        .unwrap();
    assert_eq!(internal["hhi"], 5918);
    assert_eq!(internal["reading"], "highly concentrated");
    assert_eq!(
        internal["providers"][0]["provider"],
        "Rijkscloud (ODC-Noord)"
    );
    assert_eq!(internal["providers"][0]["share"], 71.4);
    assert_eq!(
        internal["singleProvider"][0]["workload"],
        "ministry-bzk/case-management"
    );

    // Without the new flags, -o json stays the list it always was.
    let plain: Value =
        serde_json::from_str(&stdout(&sovra(&["-f", "examples/", "-o", "json"]))).unwrap();
    assert!(plain.is_array());
    assert!(plain[0].get("change").is_none());
}

#[test]
fn concentration_combines_with_a_what_if() {
    let output = sovra(&[
        "-f",
        "examples/",
        "--concentration",
        "--without",
        "provider=Rijkscloud (ODC-Noord)",
    ]);
    let words = stdout(&output)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(words.contains("secret 0 - nothing placed -"), "{words}");
    assert!(
        words.contains("internal 3 10,000 highly concentrated Hexacloud SAS 100.0% (3)"),
        "{words}"
    );
}

#[test]
fn live_flags_need_live_and_files_are_needed_without_it() {
    let output = sovra(&["--context", "hub"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--live"), "{}", stderr(&output));
}
