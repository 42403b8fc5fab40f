#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The audit trail end to end, on real files: chaining, tamper detection, restarts,
//! concurrency and the human-readable view.

use sha2::{Digest, Sha256};
use sovra::audit::{
    AuditAction, AuditEntry, AuditTrail, GENESIS_HASH, ObjectRef, ShowFilter, VerifyReport,
    show_file, verify_file, verify_lines,
};
use std::path::{Path, PathBuf};

fn workload(ns: &str, name: &str) -> ObjectRef {
    ObjectRef {
        kind: "SovereignWorkload".into(),
        namespace: Some(ns.into()),
        name: name.into(),
        uid: Some(format!("uid-{name}")),
    }
}

fn placed(ns: &str, name: &str, class: &str) -> AuditEntry {
    let mut entry = AuditEntry::new(AuditAction::Placed, workload(ns, name));
    entry.class = Some(class.into());
    entry.cluster = Some("rijkscloud-nl".into());
    entry.pools = vec![format!("gov-{class}")];
    entry.reasons = vec!["all requirements of the class are met".into()];
    entry
}

fn at(second: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_795_000_000 + second).unwrap()
}

async fn open(path: &Path) -> AuditTrail {
    AuditTrail::open(Some(path.to_owned()), "sovra/sovra-0".into(), false)
        .await
        .unwrap()
}

/// A trail file with `n` records (workloads `w1`..`wn` in `ministry-fin`), closed again.
async fn trail_with(dir: &tempfile::TempDir, n: usize) -> PathBuf {
    let path = dir.path().join("audit.jsonl");
    let trail = open(&path).await;
    for i in 1..=n {
        trail
            .record_at(
                placed("ministry-fin", &format!("w{i}"), "confidential"),
                at(i as i64),
            )
            .await
            .unwrap();
    }
    path
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn verify(lines: &[String]) -> VerifyReport {
    verify_lines(&lines.iter().map(|l| format!("{l}\n")).collect::<String>())
}

fn broken_line(report: &VerifyReport) -> (usize, String) {
    let b = report.first_break.clone().expect("chain should be broken");
    (b.line, b.problem)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn chain_verifies_after_many_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = trail_with(&dir, 50).await;

    let report = verify_file(&path).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.records, 50);
    assert!(
        report
            .to_string()
            .starts_with("OK: 50 records, chain intact")
    );

    let lines = lines(&path);
    assert!(lines[0].contains(&format!("\"prev\":\"{GENESIS_HASH}\"")));
    assert!(lines[0].starts_with("{\"seq\":1,\"time\":"));
    assert!(lines[1].contains(&format!("\"prev\":\"{}\"", sha256_hex(lines[0].as_bytes()))));
}

#[tokio::test]
async fn record_returns_exactly_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let trail = open(&path).await;
    let record = trail
        .record_at(placed("ministry-fin", "tax", "secret"), at(0))
        .await
        .unwrap();
    assert_eq!(record.seq, 1);
    assert_eq!(record.actor, "sovra/sovra-0");
    assert_eq!(record.prev, GENESIS_HASH);
    let written = lines(&path);
    assert_eq!(written.len(), 1);
    assert_eq!(
        serde_json::from_str::<sovra::audit::AuditRecord>(&written[0]).unwrap(),
        record
    );
}

#[tokio::test]
async fn verify_fails_on_the_line_after_an_edited_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = lines(&trail_with(&dir, 5).await);
    lines[2] = lines[2].replace("rijkscloud-nl", "us-east-cloud");

    let (line, problem) = broken_line(&verify(&lines));
    assert_eq!(line, 4);
    assert!(
        problem.starts_with("prev hash does not match line 3"),
        "{problem}"
    );
}

#[tokio::test]
async fn verify_fails_on_an_edited_line_that_is_not_in_canonical_form() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = lines(&trail_with(&dir, 5).await);
    lines[2] = lines[2].replace("\"class\":\"confidential\"", "\"class\": \"public\"");

    let (line, problem) = broken_line(&verify(&lines));
    assert_eq!(line, 3);
    assert!(problem.starts_with("line was edited"), "{problem}");
}

#[tokio::test]
async fn verify_fails_where_a_line_was_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = lines(&trail_with(&dir, 5).await);
    lines.remove(2);

    let (line, problem) = broken_line(&verify(&lines));
    assert_eq!(line, 3);
    assert_eq!(problem, "seq 4 follows 2 (a line was deleted or reordered)");
}

#[tokio::test]
async fn verify_fails_at_the_first_of_reordered_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = lines(&trail_with(&dir, 5).await);
    lines.swap(1, 3);

    let (line, problem) = broken_line(&verify(&lines));
    assert_eq!(line, 2);
    assert_eq!(problem, "seq 4 follows 1 (a line was deleted or reordered)");
}

#[tokio::test]
async fn verify_fails_on_an_inserted_line_with_a_wrong_prev() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = lines(&trail_with(&dir, 5).await);
    // A forger who renumbers but does not know the chain: seq fits, prev does not.
    let forged = lines[1]
        .replace("\"seq\":2,", "\"seq\":3,")
        .replace("\"name\":\"w2\"", "\"name\":\"forged\"");
    lines.insert(2, forged);

    let (line, problem) = broken_line(&verify(&lines));
    assert_eq!(line, 3);
    assert!(
        problem.starts_with("prev hash does not match line 2"),
        "{problem}"
    );
}

#[tokio::test]
async fn verify_fails_after_an_inserted_line_even_when_it_chains_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = lines(&trail_with(&dir, 5).await);
    // A forger who computes a valid prev and seq for the inserted line: the line after it
    // then repeats seq 3 and its prev does not match the forged line.
    let forged = lines[2].replace("\"name\":\"w3\"", "\"name\":\"forged\"");
    lines.insert(2, forged);

    let report = verify(&lines);
    let (line, problem) = broken_line(&report);
    assert_eq!(line, 4);
    assert_eq!(
        problem,
        "seq 3 follows 3 (a line was inserted, duplicated or reordered)"
    );
    assert_eq!(report.records, 3);
}

#[tokio::test]
async fn verify_fails_on_a_garbage_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = lines(&trail_with(&dir, 5).await);
    lines.insert(3, "this is not json".into());

    let (line, problem) = broken_line(&verify(&lines));
    assert_eq!(line, 4);
    assert!(problem.starts_with("not valid JSON"), "{problem}");
}

#[tokio::test]
async fn verify_reports_a_truncated_last_line_as_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = trail_with(&dir, 5).await;
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 20]).unwrap();

    let report = verify_file(&path).unwrap();
    let (line, problem) = broken_line(&report);
    assert_eq!(line, 5);
    assert!(problem.contains("torn write"), "{problem}");
    assert_eq!(report.records, 4);
    assert!(report.to_string().starts_with("BROKEN at line 5: "));
}

#[tokio::test]
async fn a_complete_last_line_without_its_newline_is_still_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = trail_with(&dir, 3).await;
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();

    let (line, problem) = broken_line(&verify_file(&path).unwrap());
    assert_eq!(line, 3);
    assert!(problem.contains("no trailing newline"), "{problem}");
}

#[tokio::test]
async fn reopening_after_a_restart_continues_seq_and_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = trail_with(&dir, 3).await;
    let before = lines(&path);

    // "Restart": a new handle on the same file (the first was dropped in `trail_with`).
    let trail = AuditTrail::open(Some(path.clone()), "sovra/sovra-1".into(), false)
        .await
        .unwrap();
    let next = trail
        .record_at(placed("ministry-fin", "w4", "secret"), at(100))
        .await
        .unwrap();
    assert_eq!(next.seq, 4);
    assert_eq!(next.prev, sha256_hex(before[2].as_bytes()));
    drop(trail);

    let report = verify_file(&path).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.records, 4);
    assert_eq!(lines(&path)[..3], before[..]);
}

#[tokio::test]
async fn opening_a_tampered_trail_refuses_to_continue_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = trail_with(&dir, 4).await;
    let mut tampered = lines(&path);
    tampered.remove(1);
    let text: String = tampered.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, &text).unwrap();

    let err = AuditTrail::open(Some(path.clone()), "sovra/sovra-0".into(), false)
        .await
        .unwrap_err();
    assert!(matches!(err, sovra::Error::Audit { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("broken at line 2"), "{message}");
    assert!(message.contains("Refusing to extend"), "{message}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "the file is left as evidence"
    );
}

#[tokio::test]
async fn opening_a_torn_trail_refuses_and_says_it_is_torn() {
    let dir = tempfile::tempdir().unwrap();
    let path = trail_with(&dir, 2).await;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut file, b"{\"seq\":3,\"ti").unwrap();
    drop(file);

    let message = AuditTrail::open(Some(path), "sovra/sovra-0".into(), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("broken at line 3"), "{message}");
    assert!(message.contains("torn write"), "{message}");
}

#[tokio::test]
async fn opening_creates_missing_parent_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("var/lib/sovra/audit.jsonl");
    let trail = open(&path).await;
    trail
        .record_at(placed("ns", "a", "public"), at(0))
        .await
        .unwrap();
    assert_eq!(verify_file(&path).unwrap().records, 1);
}

#[tokio::test]
async fn a_second_writer_on_the_same_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let _first = open(&path).await;
    let err = AuditTrail::open(Some(path), "sovra/sovra-1".into(), false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("lock"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_records_from_many_tasks_form_one_valid_chain_with_none_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let trail = open(&path).await;

    let tasks: Vec<_> = (0..40)
        .map(|t| {
            let trail = trail.clone();
            tokio::spawn(async move {
                let mut records = Vec::new();
                for i in 0..5 {
                    let entry = placed("ns", &format!("t{t}-{i}"), "internal");
                    records.push(trail.record(entry).await.unwrap());
                }
                records
            })
        })
        .collect();
    let mut records = Vec::new();
    for task in tasks {
        records.extend(task.await.unwrap());
    }
    let mut seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=200).collect::<Vec<u64>>());
    // Records written together (group commit) each answer with exactly their own line.
    let written = lines(&path);
    for record in &records {
        let line = &written[usize::try_from(record.seq).unwrap() - 1];
        assert_eq!(
            &serde_json::from_str::<sovra::audit::AuditRecord>(line).unwrap(),
            record
        );
    }

    let report = verify_file(&path).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.records, 200);
    let names = lines(&path);
    for t in 0..40 {
        for i in 0..5 {
            let name = format!("\"name\":\"t{t}-{i}\"");
            assert_eq!(names.iter().filter(|l| l.contains(&name)).count(), 1);
        }
    }
}

#[tokio::test]
async fn stdout_only_trail_is_still_hash_chained() {
    let trail = AuditTrail::open(None, "sovra/sovra-0".into(), true)
        .await
        .unwrap();
    assert_eq!(trail.path(), None);
    let first = trail
        .record_at(placed("ns", "a", "public"), at(0))
        .await
        .unwrap();
    let second = trail
        .record_at(placed("ns", "b", "public"), at(1))
        .await
        .unwrap();
    assert_eq!(first.prev, GENESIS_HASH);
    assert_eq!(second.seq, 2);
    let first_line = sovra::audit::canonical_line(&first).unwrap();
    assert_eq!(second.prev, sha256_hex(first_line.as_bytes()));
}

#[tokio::test]
async fn show_file_filters_by_workload_and_class() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let trail = open(&path).await;
    trail
        .record_at(
            placed("ministry-fin", "tax-assessment", "confidential"),
            at(1),
        )
        .await
        .unwrap();
    trail
        .record_at(placed("ministry-bzk", "tax-assessment", "internal"), at(2))
        .await
        .unwrap();
    trail
        .record_at(placed("ministry-fin", "payroll", "secret"), at(3))
        .await
        .unwrap();
    let mut moved = AuditEntry::new(AuditAction::Moved, workload("ministry-fin", "payroll"));
    moved.class = Some("secret".into());
    moved.reasons = vec![
        "cluster rijkscloud-nl lost certification BIO".into(),
        "moved to overheidscloud-nl".into(),
    ];
    trail.record_at(moved, at(4)).await.unwrap();
    drop(trail);

    let by_workload = show_file(
        &path,
        &ShowFilter {
            workload: Some("ministry-fin/tax-assessment".into()),
            ..ShowFilter::default()
        },
    )
    .unwrap();
    let rows: Vec<&str> = by_workload.lines().collect();
    assert!(rows[0].starts_with("SEQ"), "{by_workload}");
    for header in [
        "TIME", "ACTION", "OBJECT", "CLASS", "CLUSTER", "POOLS", "REASONS",
    ] {
        assert!(rows[0].contains(header), "{}", rows[0]);
    }
    assert_eq!(rows.len(), 4, "{by_workload}");
    assert!(rows[1].starts_with("1 "), "{by_workload}");
    assert!(rows[1].contains("ministry-fin/tax-assessment"));
    assert_eq!(rows[2], "(1 of 4 records shown)");
    assert!(
        rows[3].starts_with("chain verified: 4 records, intact; head: "),
        "{by_workload}"
    );

    let bare_name = show_file(
        &path,
        &ShowFilter {
            workload: Some("tax-assessment".into()),
            ..ShowFilter::default()
        },
    )
    .unwrap();
    assert!(bare_name.contains("(2 of 4 records shown)"), "{bare_name}");

    let secret = show_file(
        &path,
        &ShowFilter {
            class: Some("secret".into()),
            ..ShowFilter::default()
        },
    )
    .unwrap();
    assert!(secret.contains("(2 of 4 records shown)"), "{secret}");
    assert!(
        secret.contains("cluster rijkscloud-nl lost certification BIO; moved to overheidscloud-nl"),
        "reasons are joined and never cut: {secret}"
    );

    let moved_secret = show_file(
        &path,
        &ShowFilter {
            class: Some("secret".into()),
            action: Some(AuditAction::Moved),
            ..ShowFilter::default()
        },
    )
    .unwrap();
    assert!(
        moved_secret.contains("(1 of 4 records shown)"),
        "{moved_secret}"
    );
}

#[tokio::test]
async fn show_file_ends_by_saying_the_chain_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    let path = trail_with(&dir, 4).await;
    let mut tampered = lines(&path);
    tampered[1] = tampered[1].replace("rijkscloud-nl", "elsewhere");
    std::fs::write(
        &path,
        tampered
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    )
    .unwrap();

    let shown = show_file(&path, &ShowFilter::default()).unwrap();
    let last = shown.lines().last().unwrap();
    assert!(
        last.starts_with("chain NOT verified: BROKEN at line 3: prev hash does not match line 2"),
        "{shown}"
    );
}

#[tokio::test]
async fn head_hash_printed_by_verify_is_sha256_of_the_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = trail_with(&dir, 7).await;
    let last = lines(&path).pop().unwrap();

    let printed = verify_file(&path).unwrap().to_string();
    let head = printed
        .lines()
        .find_map(|l| l.strip_prefix("head: "))
        .expect("verify prints the head hash");
    assert_eq!(head, sha256_hex(last.as_bytes()));
}

#[tokio::test]
async fn editing_the_last_line_is_caught_only_by_the_anchored_head() {
    let dir = tempfile::tempdir().unwrap();
    let path = trail_with(&dir, 3).await;
    let anchored = verify_file(&path).unwrap().head.unwrap();

    let mut tampered = lines(&path);
    tampered[2] = tampered[2].replace("rijkscloud-nl", "elsewhere");
    let report = verify(&tampered);

    assert!(
        report.is_intact(),
        "nothing follows the last line to vouch for it"
    );
    assert_ne!(report.head.unwrap(), anchored);
}
