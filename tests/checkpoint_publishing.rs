//! The operator with a signing key against the in-process test API server: checkpoints after
//! N records and on shutdown land in the trail, in the ConfigMap `sovra-audit-checkpoint`, in
//! an `AuditCheckpoint` Event and at a local witness; a trail cut short since its published
//! checkpoint is refused at start.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::json;
use sovra::audit::{ExternalCheckpoint, SigningKey, TrustedKey, verify_evidence_file};
use std::sync::{Arc, Mutex};
use support::*;
use test_apiserver::ResourceRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config_maps() -> ResourceRef {
    ResourceRef::new("", "v1", "configmaps")
}

/// A witness on loopback: answers every POST with 200 and keeps the bodies.
async fn witness() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/add-checkpoint", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let keep = received.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let keep = keep.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                // Bounded: one request of a few hundred bytes.
                for _ in 0..64 {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buffer).into_owned();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        continue;
                    };
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        assert!(head.starts_with("POST /add-checkpoint "), "{head}");
                        keep.lock().unwrap().push(body.to_owned());
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await;
                        return;
                    }
                }
            });
        }
    });
    (url, received)
}

async fn signed_server() -> test_apiserver::TestApiServer {
    let server = hub_server().await;
    server
        .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}))
        .unwrap();
    server
}

fn kube_system_uid(server: &test_apiserver::TestApiServer) -> String {
    server.get(&namespaces(), None, "kube-system").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn signing_args(
    dir: &std::path::Path,
    witness: Option<String>,
) -> (sovra::cli::RunArgs, SigningKey) {
    let key_path = dir.join("audit-signing-key.pem");
    let key = match SigningKey::read(&key_path) {
        Ok(key) => key,
        Err(_) => {
            let key = SigningKey::generate().unwrap();
            std::fs::write(&key_path, key.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
            key
        }
    };
    let mut args = run_args("sovra-0", dir.join("sovra-0-audit.jsonl"), false);
    args.audit_signing_key = Some(key_path);
    args.checkpoint_every_records = 2;
    args.checkpoint_witness_url = witness;
    (args, key)
}

fn published(server: &test_apiserver::TestApiServer, key: &str) -> Option<String> {
    server
        .get(
            &config_maps(),
            Some(OPERATOR_NAMESPACE),
            "sovra-audit-checkpoint",
        )?
        .pointer(&format!("/data/{key}"))?
        .as_str()
        .map(str::to_owned)
}

#[tokio::test]
async fn checkpoints_after_n_records_and_on_shutdown_reach_the_trail_configmap_event_and_witness() {
    let server = signed_server().await;
    let dir = tempfile::tempdir().unwrap();
    let (url, received) = witness().await;
    let (args, key) = signing_args(dir.path(), Some(url));
    let log = args.audit_log.clone().unwrap();
    let operator = start_operator_with(&server, args);
    let origin = format!("sovra.dev/{}/sovra-0", kube_system_uid(&server));

    server
        .put(workload("tax", "confidential", 1, json!({})))
        .unwrap();
    server
        .put(workload("portal", "internal", 1, json!({})))
        .unwrap();
    wait_for_phase(&server, "tax", "Placed").await;
    wait_for_phase(&server, "portal", "Placed").await;

    // Two records: a checkpoint of both follows them.
    eventually("a checkpoint after two records", WAIT, || async {
        let actions = audit_actions(&log);
        (actions == ["Placed", "Placed", "Checkpoint"]).then_some(())
    })
    .await;
    let latest = eventually("the ConfigMap holds it", WAIT, || async {
        published(&server, "sovra-0.latest.checkpoint")
    })
    .await;
    assert!(latest.starts_with(&format!("{origin}\n2\n")), "{latest}");
    assert_eq!(
        published(&server, "sovra-0.2.checkpoint").as_deref(),
        Some(latest.as_str())
    );
    assert_eq!(
        published(&server, "sovra-0.verifier-key"),
        Some(key.public_key().verifier(&origin).unwrap().to_string())
    );
    let event = wait_for_event(
        &server,
        OPERATOR_NAMESPACE,
        "sovra-audit-checkpoint",
        "AuditCheckpoint",
    )
    .await;
    assert_eq!(event["type"], "Normal");
    assert_eq!(event["regarding"]["kind"], "ConfigMap");
    assert!(
        event["note"]
            .as_str()
            .unwrap()
            .contains("tree size 2, head"),
        "{event}"
    );
    eventually("the witness received it", WAIT, || async {
        received.lock().unwrap().contains(&latest).then_some(())
    })
    .await;

    // One more record, then shutdown: the checkpoint on shutdown covers it.
    server
        .put(workload("register", "public", 1, json!({})))
        .unwrap();
    wait_for_phase(&server, "register", "Placed").await;
    eventually("the third record", WAIT, || async {
        (audit_actions(&log).len() == 4).then_some(())
    })
    .await;
    operator.shutdown().await.unwrap();
    assert_eq!(
        audit_actions(&log),
        ["Placed", "Placed", "Checkpoint", "Placed", "Checkpoint"]
    );
    let last = published(&server, "sovra-0.latest.checkpoint").unwrap();
    assert!(last.starts_with(&format!("{origin}\n4\n")), "{last}");
    assert!(received.lock().unwrap().contains(&last));

    let given = [ExternalCheckpoint {
        source: "ConfigMap sovra-audit-checkpoint".into(),
        note: last,
        of_many: false,
    }];
    let report =
        verify_evidence_file(&log, Some(&TrustedKey::Public(key.public_key())), &given).unwrap();
    assert!(report.is_ok(), "{report}");
}

#[tokio::test]
async fn a_trail_cut_short_since_its_published_checkpoint_is_refused_at_start() {
    let server = signed_server().await;
    let dir = tempfile::tempdir().unwrap();
    let (args, _) = signing_args(dir.path(), None);
    let log = args.audit_log.clone().unwrap();
    let operator = start_operator_with(&server, args);
    server
        .put(workload("tax", "confidential", 1, json!({})))
        .unwrap();
    server
        .put(workload("portal", "internal", 1, json!({})))
        .unwrap();
    let latest = eventually(
        "the checkpoint of two records is published",
        WAIT,
        || async { published(&server, "sovra-0.latest.checkpoint") },
    )
    .await;
    operator.shutdown().await.unwrap();
    assert_eq!(
        audit_actions(&log),
        ["Placed", "Placed", "Checkpoint"],
        "{latest}"
    );

    // Someone deletes the trail's last lines (whole lines: the chain alone stays intact).
    let text = std::fs::read_to_string(&log).unwrap();
    let kept: String = text.lines().take(1).map(|l| format!("{l}\n")).collect();
    std::fs::write(&log, kept).unwrap();
    let (args, _) = signing_args(dir.path(), None);
    let mut restarted = start_operator_with(&server, args);
    let ended = tokio::time::timeout(WAIT, &mut restarted.task)
        .await
        .unwrap()
        .unwrap();
    let error = ended.unwrap_err().to_string();
    assert!(
        error.contains("commits to 2 lines, but the file has only 1: lines were removed"),
        "{error}"
    );
    assert!(
        error.contains("contradicts its published checkpoint"),
        "{error}"
    );
    assert_eq!(audit_actions(&log), ["Placed"], "nothing appended to it");
}
