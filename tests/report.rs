//! `sovra report` on a scripted scenario: its JSON form's figures, exactly; a period; a line
//! of an action this build does not know; and `--live` against the real operator on the
//! in-process test API server. The page itself is rendered in tests/report_render.rs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod report_scenario;
mod support;

use report_scenario::{PARTNER_REASONS, example_clusters, sovra_report, write_trail};
use serde_json::{Value, json};
use support::*;

fn json_of(output: &std::process::Output) -> Value {
    assert!(
        output.stderr.is_empty() || output.status.code().is_some(),
        "{output:?}"
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// `[{name, count}, ...]` as `[(name, count)]`.
fn counts(breakdown: &Value) -> Vec<(String, u64)> {
    breakdown["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn named(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    pairs.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect()
}

#[tokio::test]
async fn the_json_report_of_the_scenario_has_exactly_its_figures() {
    let dir = tempfile::tempdir().unwrap();
    let trail = write_trail(dir.path()).await;
    let clusters = example_clusters();
    let output = sovra_report(&[
        "--audit-log",
        trail.to_str().unwrap(),
        "--clusters",
        clusters.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let r = json_of(&output);

    assert_eq!(r["chain"]["intact"], json!(true));
    assert_eq!(r["chain"]["verifiedRecords"], json!(12));
    let verified = sovra::audit::verify_file(&trail).unwrap();
    assert_eq!(r["chain"]["head"], json!(verified.head.unwrap()));
    assert_eq!(r["checkpoint"], json!({"state": "none"}));
    assert_eq!(r["lines"]["total"], json!(12));
    assert_eq!(r["lines"]["unknownActions"], json!([]));

    assert_eq!(
        r["decisions"],
        json!({"total": 12, "placed": 5, "moved": 1, "refused": 2, "violation": 2, "sovereigntyLost": 1, "released": 1})
    );
    assert_eq!(r["period"]["first"], json!("2026-03-02T09:00:00.000000Z"));
    assert_eq!(r["period"]["last"], json!("2026-03-05T12:00:00.000000Z"));

    // At the end: tax-assessment, case-management (two clusters), intelligence-analysis and
    // open-data-portal run; open-data was released, partner-data-exchange refused.
    let p = &r["placements"];
    assert_eq!(
        (p["workloads"].as_u64(), p["total"].as_u64()),
        (Some(4), Some(5))
    );
    assert_eq!(
        counts(&p["byClass"]),
        named(&[
            ("internal", 2),
            ("confidential", 1),
            ("public", 1),
            ("secret", 1)
        ])
    );
    assert_eq!(
        counts(&p["byNamespace"]),
        named(&[
            ("ministry-bzk", 2),
            ("ministry-def", 1),
            ("ministry-ezk", 1),
            ("ministry-fin", 1)
        ])
    );
    assert_eq!(
        counts(&p["byCluster"]),
        named(&[
            ("rijkscloud-nl", 3),
            ("hyperscaler-frankfurt", 1),
            ("stackit-de", 1)
        ])
    );
    assert_eq!(counts(&p["byCountry"]), named(&[("NL", 3), ("DE", 1)]));
    assert_eq!(p["byCountry"]["unknown"], json!(1));
    assert_eq!(
        counts(&p["byProvider"]),
        named(&[
            ("Rijkscloud (ODC-Noord)", 3),
            ("Example Hyperscaler EU (US parent)", 1)
        ])
    );
    assert_eq!(p["byProvider"]["unknown"], json!(1));
    assert_eq!(p["facts"], json!("file"));
    assert_eq!(p["clustersWithoutFacts"], json!(["stackit-de"]));

    let f = &r["refusals"];
    assert_eq!(
        (f["total"].as_u64(), f["workloads"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        counts(&json!({"counts": f["byReason"]})),
        named(&[(PARTNER_REASONS[0], 2), (PARTNER_REASONS[1], 2)])
    );
    assert_eq!(f["list"][1]["time"], json!("2026-03-04T09:30:00.000000Z"));

    let v = &r["violations"];
    assert_eq!(
        (v["total"].as_u64(), v["sovereigntyLost"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(v["bucket"], json!("day"));
    assert_eq!(
        v["overTime"],
        json!([
            {"label": "2026-03-02", "violations": 0, "sovereigntyLost": 0},
            {"label": "2026-03-03", "violations": 1, "sovereigntyLost": 1},
            {"label": "2026-03-04", "violations": 0, "sovereigntyLost": 0},
            {"label": "2026-03-05", "violations": 1, "sovereigntyLost": 0},
        ])
    );
    assert_eq!(
        v["list"][0]["object"],
        json!("Pod/ministry-fin/tax-assessment-7f9c")
    );
    assert_eq!(
        v["list"][1]["object"],
        json!("SovereignCluster/secnum-paris")
    );

    assert_eq!(r["live"], Value::Null, "exit readiness needs --live");
    let workloads: Vec<(&str, usize, Value)> = r["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["workload"].as_str().unwrap(),
                w["decisions"].as_array().unwrap().len(),
                w["current"].clone(),
            )
        })
        .collect();
    assert_eq!(
        workloads,
        [
            (
                "ministry-bzk/case-management",
                2,
                json!(["rijkscloud-nl", "stackit-de"])
            ),
            (
                "ministry-def/intelligence-analysis",
                1,
                json!(["rijkscloud-nl"])
            ),
            ("ministry-ezk/open-data", 2, json!([])),
            (
                "ministry-ezk/open-data-portal",
                1,
                json!(["hyperscaler-frankfurt"])
            ),
            ("ministry-fin/partner-data-exchange", 2, json!([])),
            ("ministry-fin/tax-assessment", 1, json!(["rijkscloud-nl"])),
        ]
    );
}

#[tokio::test]
async fn a_period_counts_its_decisions_and_shows_placements_as_of_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let trail = write_trail(dir.path()).await;
    let trail = trail.to_str().unwrap();
    let since = json_of(&sovra_report(&[
        "--audit-log",
        trail,
        "--since",
        "2026-03-04T00:00:00Z",
        "-o",
        "json",
    ]));
    assert_eq!(
        since["decisions"],
        json!({"total": 5, "placed": 2, "moved": 0, "refused": 1, "violation": 1, "sovereigntyLost": 0, "released": 1})
    );
    assert_eq!(
        since["placements"]["total"],
        json!(5),
        "the end is the same"
    );
    assert_eq!(since["placements"]["facts"], json!("none"));
    assert_eq!(
        since["placements"]["byCountry"],
        json!({"counts": [], "unknown": 5})
    );

    let until = json_of(&sovra_report(&[
        "--audit-log",
        trail,
        "--until",
        "2026-03-03T23:59:59Z",
        "-o",
        "json",
    ]));
    assert_eq!(until["decisions"]["total"], json!(7));
    // tax-assessment, case-management on two clusters, and open-data, not yet released.
    assert_eq!(
        (
            until["placements"]["workloads"].as_u64(),
            until["placements"]["total"].as_u64()
        ),
        (Some(3), Some(4))
    );

    let backwards = sovra_report(&[
        "--audit-log",
        trail,
        "--since",
        "2026-03-05T00:00:00Z",
        "--until",
        "2026-03-04T00:00:00Z",
    ]);
    assert_eq!(backwards.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&backwards.stderr).contains("is after --until"));
}

#[tokio::test]
async fn a_line_of_an_action_this_build_does_not_know_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let trail = write_trail(dir.path()).await;
    // A newer Sovra's record, chained correctly after the last line.
    let head = sovra::audit::verify_file(&trail).unwrap().head.unwrap();
    let future = format!(
        r#"{{"seq":13,"time":"2026-03-06T00:00:00.000000Z","actor":"sovra/sovra-0","action":"Quarantined","object":{{"kind":"SovereignWorkload","namespace":"ministry-fin","name":"tax-assessment","uid":"u"}},"class":"confidential","cluster":null,"pools":[],"reasons":[],"prev":"{head}"}}"#
    );
    let mut text = std::fs::read_to_string(&trail).unwrap();
    text.push_str(&future);
    text.push('\n');
    std::fs::write(&trail, text).unwrap();

    let output = sovra_report(&["--audit-log", trail.to_str().unwrap(), "-o", "json"]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "this build's verifier does not know the line"
    );
    let r = json_of(&output);
    assert_eq!(
        r["lines"]["unknownActions"],
        json!([{"name": "Quarantined", "count": 1}])
    );
    assert_eq!(r["decisions"]["total"], json!(12));
    assert_eq!(r["chain"]["brokenAtLine"], json!(13));
    assert_eq!(r["chain"]["untrustedDecisions"], json!(0));

    let html = dir.path().join("report.html");
    let output = sovra_report(&[
        "--audit-log",
        trail.to_str().unwrap(),
        "-o",
        html.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        std::fs::read_to_string(&html)
            .unwrap()
            .contains("Quarantined: 1")
    );
}

#[tokio::test]
async fn live_shows_the_operators_stranded_and_exit_ready_workloads_and_placements_by_provider() {
    let hub = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let operator = start_operator(&hub, dir.path(), "sovra-0", false);
    // A second provider that can take public workloads, but has no pool for confidential;
    // connected before the workloads come, so each is decided once.
    let member = member_server("DE").await;
    join(&hub, member_cluster("bund-de", "DE"), &member);
    eventually("bund-de reachable", WAIT, || async {
        let reachable = cluster_condition(&hub, "bund-de", "Reachable")?;
        (reachable["status"] == "True").then_some(())
    })
    .await;
    hub.put(workload("portal", "public", 1, json!({}))).unwrap();
    hub.put(workload("tax", "confidential", 1, json!({})))
        .unwrap();
    hub.put(workload("intel", "secret", 1, json!({}))).unwrap();
    wait_for_phase(&hub, "portal", "Placed").await;
    wait_for_phase(&hub, "tax", "Placed").await;
    wait_for_phase(&hub, "intel", "Refused").await;
    for name in ["portal", "tax"] {
        eventually(&format!("{name} exit readiness"), WAIT, || async {
            hub.get(&workloads(), Some(NAMESPACE), name)?
                .pointer("/status/exit")
                .map(|_| ())
        })
        .await;
    }

    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, hub.kubeconfig_yaml()).unwrap();
    let audit_log = operator.audit_log.to_str().unwrap().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sovra"))
            .args(["report", "--audit-log", &audit_log, "--live", "-o", "json"])
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let r = json_of(&output);
    assert_eq!(r["decisions"]["placed"], json!(2));
    assert_eq!(r["decisions"]["refused"], json!(1));
    assert_eq!(r["placements"]["facts"], json!("live"));
    assert_eq!(
        counts(&r["placements"]["byProvider"]),
        named(&[("Rijkscloud", 2)])
    );
    let live = &r["live"];
    assert_eq!(live["workloads"], json!(3));
    assert_eq!(live["placements"], json!(2));
    assert_eq!(counts(&live["byProvider"]), named(&[("Rijkscloud", 2)]));
    assert_eq!(counts(&live["byCountry"]), named(&[("NL", 2)]));
    let names = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|l| l["workload"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&live["stranded"]), [format!("{NAMESPACE}/tax")]);
    assert_eq!(names(&live["exitReady"]), [format!("{NAMESPACE}/portal")]);
    assert_eq!(live["exitReady"][0]["alternatives"], json!(1));
    assert_eq!(live["invalidObjects"], json!(0));
    operator.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_signed_trail_reports_its_last_checkpoint_valid_with_its_key_and_invalid_with_another() {
    use sovra::audit::{
        AuditAction, AuditEntry, AuditTrail, CheckpointPolicy, ObjectRef, SigningKey,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signed.jsonl");
    let key = SigningKey::generate().unwrap();
    let origin = "sovra.example/kube-system/sovra-0";
    let trail = AuditTrail::open_signed(
        Some(path.clone()),
        "sovra/sovra-0".into(),
        false,
        Some(CheckpointPolicy {
            key: key.clone(),
            origin: origin.into(),
            every_records: 2,
        }),
    )
    .await
    .unwrap();
    for name in ["a", "b", "c"] {
        let object = ObjectRef {
            kind: "SovereignWorkload".into(),
            namespace: Some("ministry-fin".into()),
            name: name.into(),
            uid: None,
        };
        let mut entry = AuditEntry::new(AuditAction::Placed, object);
        entry.class = Some("internal".into());
        entry.cluster = Some("rijkscloud-nl".into());
        trail.record(entry).await.unwrap();
    }
    trail.checkpoint().await.unwrap();
    drop(trail);
    let ours = dir.path().join("ours.pub.pem");
    std::fs::write(&ours, key.public_key().to_string()).unwrap();
    let theirs = dir.path().join("theirs.pub.pem");
    let other = SigningKey::generate().unwrap();
    std::fs::write(&theirs, other.public_key().to_string()).unwrap();
    let report = |key: &std::path::Path| {
        sovra_report(&[
            "--audit-log",
            path.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "-o",
            "json",
        ])
    };

    let valid = report(&ours);
    assert_eq!(valid.status.code(), Some(0), "{valid:?}");
    let r = json_of(&valid);
    assert_eq!(r["checkpoint"]["state"], "valid", "{}", r["checkpoint"]);
    assert_eq!(r["checkpoint"]["keyName"], origin);
    assert_eq!(r["decisions"]["total"], 3, "checkpoints are not decisions");

    let forged = report(&theirs);
    assert_eq!(
        forged.status.code(),
        Some(1),
        "an invalid checkpoint fails the report"
    );
    assert_eq!(json_of(&forged)["checkpoint"]["state"], "invalid");
}
