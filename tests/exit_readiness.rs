//! Exit readiness on a running operator: `status.exit`, the `ExitReady` condition, the
//! `NoExitAlternative` / `ExitAlternativeAvailable` Events (once per change), the gauges, and
//! `minProviders` refusing until a second provider joins.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{Value, json};
use support::*;
use test_apiserver::TestApiServer;

fn exit_of(server: &TestApiServer, name: &str) -> Option<Value> {
    server
        .get(&workloads(), Some(NAMESPACE), name)?
        .pointer("/status/exit")
        .cloned()
}

fn exit_ready(server: &TestApiServer, name: &str) -> Option<(String, String)> {
    let workload = server.get(&workloads(), Some(NAMESPACE), name)?;
    let condition = workload
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == "ExitReady")?
        .clone();
    Some((
        condition["status"].as_str()?.to_owned(),
        condition["reason"].as_str()?.to_owned(),
    ))
}

/// The Event was published once: one object, never repeated into a series.
fn published_once(server: &TestApiServer, name: &str, reason: &str) -> bool {
    let events = events_for(server, NAMESPACE, name, reason);
    events.len() == 1 && events[0].get("series").is_none_or(Value::is_null)
}

#[tokio::test]
async fn a_workload_on_the_only_provider_is_stranded_until_another_provider_joins() {
    let hub = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let (_operator, addr) = start_serving_operator(&hub, dir.path(), "sovra-0", false).await;
    hub.put(workload("portal", "public", 1, json!({}))).unwrap();
    wait_for_phase(&hub, "portal", "Placed").await;

    let stranded = exit_of(&hub, "portal").unwrap();
    assert_eq!(stranded["stranded"], json!(true));
    assert_eq!(stranded["alternativeCount"], json!(0));
    assert_eq!(
        exit_ready(&hub, "portal"),
        Some(("False".into(), "NoAlternative".into()))
    );
    wait_for_event(&hub, NAMESPACE, "portal", "NoExitAlternative").await;
    let gauge = r#"sovra_workloads_stranded{class="public"}"#;
    eventually("the stranded gauge", WAIT, || async {
        (metric(addr, gauge).await == 1.0).then_some(())
    })
    .await;

    // Reconciles that change nothing publish nothing more.
    let before = reconciles_started(addr, "workload").await;
    touch_workload(&hub, "portal").await;
    wait_for_reconciles_after(addr, "workload", before, 1).await;
    assert!(published_once(&hub, "portal", "NoExitAlternative"));

    // A compliant cluster of another provider appears: the workload stays where it is, and is
    // exit-ready again.
    let member = member_server("DE").await;
    join(&hub, member_cluster("bund-de", "DE"), &member);
    eventually("ExitReady True", WAIT, || async {
        (exit_ready(&hub, "portal") == Some(("True".into(), "AlternativesExist".into())))
            .then_some(())
    })
    .await;
    let ready = exit_of(&hub, "portal").unwrap();
    assert_eq!(ready["stranded"], json!(false));
    assert_eq!(
        ready["alternatives"],
        json!([{"cluster": "bund-de", "provider": "Bundescloud"}])
    );
    assert_eq!(
        hub.get(&workloads(), Some(NAMESPACE), "portal").unwrap()["status"]["clusters"],
        json!(HUB),
        "exit readiness never moves a workload"
    );
    wait_for_event(&hub, NAMESPACE, "portal", "ExitAlternativeAvailable").await;
    assert!(published_once(&hub, "portal", "NoExitAlternative"));
    eventually("the stranded gauge back at 0", WAIT, || async {
        (metric(addr, gauge).await == 0.0).then_some(())
    })
    .await;
    let placements = r#"sovra_provider_placements{provider="Rijkscloud",class="public"}"#;
    assert_eq!(metric(addr, placements).await, 1.0);
}

#[tokio::test]
async fn two_providers_required_is_refused_with_one_and_spread_over_both_once_a_second_joins() {
    let hub = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let (_operator, _addr) = start_serving_operator(&hub, dir.path(), "sovra-0", false).await;
    hub.put(workload("ledger", "public", 2, json!({"minProviders": 2})))
        .unwrap();
    let refused = wait_for_phase(&hub, "ledger", "Refused").await;
    let placed = refused["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Placed"))
        .cloned()
        .unwrap();
    assert_eq!(placed["reason"], json!("NotEnoughProviders"));
    assert!(
        placed["message"]
            .as_str()
            .is_some_and(|m| m.contains("Rijkscloud")),
        "names the compliant provider that exists: {placed}"
    );
    assert!(
        exit_of(&hub, "ledger").is_none(),
        "nothing runs: no exit status"
    );

    let member = member_server("DE").await;
    join(&hub, member_cluster("bund-de", "DE"), &member);
    let placed = wait_for_phase(&hub, "ledger", "Placed").await;
    assert_eq!(
        placed["status"]["clusters"],
        json!(format!("bund-de,{HUB}"))
    );
}
