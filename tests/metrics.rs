//! `/metrics`, `/healthz` and `/readyz` of a running operator reflect a scripted scenario.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::json;
use support::*;

#[tokio::test]
async fn metrics_count_placements_and_refusals_by_class_and_reason() {
    let server = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut args = run_args("sovra-0", dir.path().join("audit.jsonl"), false);
    args.http_addr = addr;
    let operator = start_operator_with(&server, args);

    let (status, body) = eventually("healthz answers", WAIT, || async {
        http_get(addr, "/healthz").await
    })
    .await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    eventually("ready once caches are synced", WAIT, || async {
        http_get(addr, "/readyz")
            .await
            .filter(|(status, _)| *status == 200)
    })
    .await;

    server
        .put(workload("tax", "confidential", 1, json!({})))
        .unwrap();
    server
        .put(pinned_to_de("exchange", "confidential", 1, json!({})))
        .unwrap();
    wait_for_phase(&server, "tax", "Placed").await;
    wait_for_phase(&server, "exchange", "Refused").await;

    let metrics = eventually("metrics reflect the scenario", WAIT, || async {
        http_get(addr, "/metrics").await.map(|(_, body)| body).filter(|body| {
            // The cluster controller runs beside the workload controller, not before it.
            body.contains(r#"sovra_placements_total{class="confidential"} 1"#)
                && body.contains(r#"sovra_refusals_total{class="confidential",reason="CountryNotRequested"} 1"#)
                && body.contains(r#"sovra_cluster_reachable{cluster="rijkscloud-nl"} 1"#)
        })
    })
    .await;
    assert!(
        metrics.contains(r#"sovra_cluster_reachable{cluster="rijkscloud-nl"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sovra_reconcile_duration_seconds_count{controller="workload"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sovra_reconciles_in_flight{controller="workload"} 0"#),
        "{metrics}"
    );

    operator.shutdown().await.unwrap();
}
