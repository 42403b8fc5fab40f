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
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plain HTTP/1.0 GET; returns (status code, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test]
async fn metrics_count_placements_and_refusals_by_class_and_reason() {
    let server = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let mut args = run_args("sovra-0", dir.path().join("audit.jsonl"), false);
    args.http_addr = addr;
    let operator = start_operator_with(&server, args);

    let (status, body) = eventually("healthz answers", WAIT, || async {
        get(addr, "/healthz").await
    })
    .await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    eventually("ready once caches are synced", WAIT, || async {
        get(addr, "/readyz")
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
        get(addr, "/metrics").await.map(|(_, body)| body).filter(|body| {
            body.contains(r#"sovra_placements_total{class="confidential"} 1"#)
                && body.contains(r#"sovra_refusals_total{class="confidential",reason="CountryNotRequested"} 1"#)
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
