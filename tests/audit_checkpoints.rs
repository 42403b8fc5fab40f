#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Signed checkpoints on real trail files: what a rewritten tail, a forged checkpoint, the
//! wrong key, a truncated file and a checkpoint of another trail look like to
//! `sovra audit verify`, and the key pair `sovra audit keygen` writes.

use sovra::audit::{
    AuditAction, AuditEntry, AuditRecord, AuditTrail, Checkpoint, CheckpointPolicy,
    ExternalCheckpoint, ObjectRef, SignedCheckpoint, SigningKey, TrustedKey, canonical_line,
    line_hash, verify_evidence, verify_file,
};
use std::path::{Path, PathBuf};

const ORIGIN: &str = "sovra.dev/5f0c2b4e-kube-system/sovra-0";

fn placed(name: &str) -> AuditEntry {
    let mut entry = AuditEntry::new(
        AuditAction::Placed,
        ObjectRef {
            kind: "SovereignWorkload".into(),
            namespace: Some("ministry-fin".into()),
            name: name.into(),
            uid: Some(format!("uid-{name}")),
        },
    );
    entry.class = Some("confidential".into());
    entry.cluster = Some("rijkscloud-nl".into());
    entry.pools = vec!["gov-confidential".into()];
    entry
}

fn policy(key: &SigningKey, origin: &str, every: u64) -> CheckpointPolicy {
    CheckpointPolicy {
        key: key.clone(),
        origin: origin.into(),
        every_records: every,
    }
}

/// A trail of `n` records with a checkpoint every 100 and one at the end; returns the path
/// and every checkpoint it published (those the ConfigMap or a witness would hold).
async fn signed_trail(
    dir: &Path,
    key: &SigningKey,
    origin: &str,
    n: usize,
) -> (PathBuf, Vec<SignedCheckpoint>) {
    let path = dir.join(format!("{}.jsonl", origin.replace('/', "_")));
    let trail = AuditTrail::open_signed(
        Some(path.clone()),
        "sovra/sovra-0".into(),
        false,
        Some(policy(key, origin, 100)),
    )
    .await
    .unwrap();
    let mut published = Vec::new();
    let mut seen = trail.checkpoints().unwrap();
    for i in 1..=n {
        trail.record(placed(&format!("w{i}"))).await.unwrap();
        if seen.has_changed().unwrap() {
            published.push(seen.borrow_and_update().last().unwrap().clone());
        }
    }
    published.push(trail.checkpoint().await.unwrap().unwrap());
    (path, published)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn text(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .into_bytes()
}

/// What someone who can write the file does: changes line `from` (1-based) and recomputes
/// `seq` and `prev` of every line after it, so the chain is intact again.
fn rewrite_from(lines: &[String], from: usize, keep_checkpoints: bool) -> Vec<String> {
    let mut records: Vec<AuditRecord> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    records[from - 1].cluster = Some("us-east-cloud".into());
    let mut out: Vec<String> = Vec::new();
    for (i, mut record) in records.into_iter().enumerate() {
        if i + 1 > from && record.action == AuditAction::Checkpoint && !keep_checkpoints {
            continue;
        }
        if i + 1 >= from {
            record.seq = out.len() as u64 + 1;
            record.prev = line_hash(out.last().unwrap().as_bytes());
        }
        out.push(canonical_line(&record).unwrap());
    }
    out
}

fn external(signed: &SignedCheckpoint, source: &str) -> ExternalCheckpoint {
    ExternalCheckpoint {
        source: source.into(),
        note: signed.to_string(),
        of_many: false,
    }
}

fn public(key: &SigningKey) -> TrustedKey {
    TrustedKey::Public(key.public_key())
}

#[tokio::test]
async fn a_signed_trail_verifies_with_its_key_and_its_published_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let (path, published) = signed_trail(dir.path(), &key, ORIGIN, 250).await;
    let sizes: Vec<u64> = published.iter().map(|c| c.checkpoint.tree_size).collect();
    assert_eq!(
        sizes,
        [100, 201, 252],
        "after 100 records each, and at the end"
    );
    let lines = lines(&path);
    assert_eq!(lines.len(), 253);
    assert!(
        lines[100].contains("\"action\":\"Checkpoint\""),
        "{}",
        lines[100]
    );

    let given: Vec<ExternalCheckpoint> = published.iter().map(|c| external(c, "file cp")).collect();
    let report = verify_evidence(&text(&lines), Some(&public(&key)), &given);
    assert!(report.is_ok(), "{report}");
    let shown = report.to_string();
    assert!(shown.contains(&format!("origin: {ORIGIN}")), "{shown}");
    assert!(
        shown.contains("checkpoints in the file: 3 (3 signed by"),
        "{shown}"
    );
    assert!(
        shown.contains(
            "checkpoint 2 (tree size 201, from file cp): signature verified; a prefix of this file"
        ),
        "{shown}"
    );
    assert!(shown.ends_with("VERIFIED"), "{shown}");
}

#[tokio::test]
async fn a_tail_rewritten_with_recomputed_hashes_is_caught_by_the_checkpoint_kept_outside() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let (path, published) = signed_trail(dir.path(), &key, ORIGIN, 250).await;
    let rewritten = rewrite_from(&lines(&path), 150, false);
    // The file alone is consistent: the chain holds no secret.
    assert!(sovra::audit::verify_lines(&String::from_utf8(text(&rewritten)).unwrap()).is_intact());

    let given = [external(&published[1], "ConfigMap sovra-audit-checkpoint")];
    let report = verify_evidence(&text(&rewritten), Some(&public(&key)), &given);
    assert!(!report.is_ok());
    let expected = format!(
        "checkpoint 1 (tree size 201, from ConfigMap sovra-audit-checkpoint) commits to head {} but line 201 hashes to {}",
        published[1].checkpoint.head(),
        line_hash(rewritten[200].as_bytes())
    );
    assert!(report.problems[0].starts_with(&expected), "{report}");
}

#[tokio::test]
async fn a_rewrite_that_keeps_the_checkpoint_lines_is_named_by_the_first_checkpoint_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let (path, _) = signed_trail(dir.path(), &key, ORIGIN, 250).await;
    let rewritten = rewrite_from(&lines(&path), 150, true);
    let report = verify_evidence(&text(&rewritten), None, &[]);
    let broken = report.chain.first_break.clone().unwrap();
    assert_eq!(broken.line, 202);
    assert!(
        broken
            .problem
            .starts_with("checkpoint at line 202 (tree size 201) commits to head"),
        "{}",
        broken.problem
    );
    // And Sovra refuses to extend it.
    std::fs::write(&path, text(&rewritten)).unwrap();
    let refused = AuditTrail::open(Some(path), "sovra/sovra-0".into(), false)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("checkpoint at line 202"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_forged_checkpoint_fails_its_signature() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let (path, _) = signed_trail(dir.path(), &key, ORIGIN, 150).await;
    // Rewrite after line 120, then forge the checkpoints that follow with another key.
    let forger = SigningKey::generate().unwrap();
    let mut forged = rewrite_from(&lines(&path), 120, false);
    let head = line_hash(forged.last().unwrap().as_bytes());
    let size = forged.len() as u64;
    let note = Checkpoint::new(ORIGIN, size, &head).unwrap().sign(&forger);
    let mut record: AuditRecord = serde_json::from_str(&forged[100]).unwrap();
    record.seq = size + 1;
    record.prev = head;
    record.checkpoint = Some(note.to_string());
    forged.push(canonical_line(&record).unwrap());

    // Without a key the file is consistent; with Sovra's key the forgery shows.
    assert!(verify_evidence(&text(&forged), None, &[]).is_ok());
    let report = verify_evidence(&text(&forged), Some(&public(&key)), &[]);
    assert_eq!(report.problems.len(), 1, "{report}");
    assert!(
        report.problems[0].starts_with(&format!(
            "checkpoint at line {} (tree size {size}): not signed by {ORIGIN}+",
            size + 1
        )),
        "{report}"
    );
    // A checkpoint whose note was edited to fit the rewrite fails its signature.
    let mut altered: SignedCheckpoint = SignedCheckpoint::parse(&note.to_string()).unwrap();
    altered.signatures = Checkpoint::new(ORIGIN, 1, &"00".repeat(32))
        .unwrap()
        .sign(&key)
        .signatures;
    let given = [external(&altered, "file forged.txt")];
    let report = verify_evidence(&text(&forged), Some(&public(&key)), &given);
    assert!(
        report.problems.iter().any(|p| p
            .starts_with("checkpoint 1 (tree size 151, from file forged.txt): the signature of")
            && p.contains("does not verify")),
        "{report}"
    );
}

#[tokio::test]
async fn the_wrong_key_fails_every_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let (path, published) = signed_trail(dir.path(), &key, ORIGIN, 120).await;
    let wrong = public(&SigningKey::generate().unwrap());
    let given = [external(&published[0], "file cp")];
    let report = verify_evidence(&text(&lines(&path)), Some(&wrong), &given);
    assert_eq!(
        report.problems.len(),
        3,
        "two in the file, one given: {report}"
    );
    assert!(
        report.problems.iter().all(|p| p.contains("not signed by")),
        "{report}"
    );
    // The right key under another name is another verifier key too.
    let renamed = TrustedKey::Verifier(key.public_key().verifier("example.org/other").unwrap());
    let report = verify_evidence(&text(&lines(&path)), Some(&renamed), &[]);
    assert!(!report.is_ok(), "{report}");
}

#[tokio::test]
async fn a_truncated_file_is_caught_by_a_checkpoint_of_more_lines() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let (path, published) = signed_trail(dir.path(), &key, ORIGIN, 250).await;
    let mut cut = lines(&path);
    cut.truncate(180);
    std::fs::write(&path, text(&cut)).unwrap();
    assert!(
        verify_file(&path).unwrap().is_intact(),
        "whole lines cut off"
    );

    let given = [external(published.last().unwrap(), "file latest.txt")];
    let report = verify_evidence(&text(&cut), Some(&public(&key)), &given);
    assert_eq!(
        report.problems,
        [
            "checkpoint 1 (tree size 252, from file latest.txt) commits to 252 lines, but the file has only 180: lines were removed (the file was truncated, or its tail rewritten shorter)"
        ]
    );
}

#[tokio::test]
async fn checkpoints_from_another_origin_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let (path, _) = signed_trail(dir.path(), &key, ORIGIN, 120).await;
    let other = "sovra.dev/5f0c2b4e-kube-system/sovra-1";
    let (_, theirs) = signed_trail(dir.path(), &key, other, 120).await;
    let given = [external(&theirs[0], "file sovra-1.txt")];
    let report = verify_evidence(&text(&lines(&path)), Some(&public(&key)), &given);
    assert_eq!(
        report.problems,
        [format!(
            "checkpoint 1 (tree size 100, from file sovra-1.txt) is for origin {other}, not this trail's origin {ORIGIN}"
        )]
    );
    // A checkpoint line copied in from the other trail breaks the chain on the line itself.
    let mut mixed = lines(&path);
    let copied = lines(
        &dir.path()
            .join(format!("{}.jsonl", other.replace('/', "_"))),
    )[100]
        .clone();
    mixed[100] = copied;
    let broken = verify_evidence(&text(&mixed), None, &[])
        .chain
        .first_break
        .unwrap();
    assert_eq!(broken.line, 101);
}

#[tokio::test]
async fn without_a_key_checkpoints_are_reported_unverified_not_failed() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();
    let (path, published) = signed_trail(dir.path(), &key, ORIGIN, 120).await;
    let given = [external(&published[0], "file cp")];
    let report = verify_evidence(&text(&lines(&path)), None, &given);
    assert!(report.is_ok(), "{report}");
    let shown = report.to_string();
    assert!(
        shown.contains("signatures not verified (no --key)"),
        "{shown}"
    );
    assert!(
        shown.contains("signature not verified (no --key); a prefix of this file"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_trail_without_checkpoints_still_verifies_and_gets_them_once_signed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let plain = AuditTrail::open(Some(path.clone()), "sovra/sovra-0".into(), false)
        .await
        .unwrap();
    for i in 0..3 {
        plain.record(placed(&format!("old{i}"))).await.unwrap();
    }
    assert_eq!(
        plain.checkpoint().await.unwrap(),
        None,
        "no key, no checkpoint"
    );
    drop(plain);
    assert!(verify_evidence(&std::fs::read(&path).unwrap(), None, &[]).is_ok());

    let key = SigningKey::generate().unwrap();
    let signed = AuditTrail::open_signed(
        Some(path.clone()),
        "sovra/sovra-0".into(),
        false,
        Some(policy(&key, ORIGIN, 0)),
    )
    .await
    .unwrap();
    let first = signed.checkpoint().await.unwrap().unwrap();
    assert_eq!(
        first.checkpoint.tree_size, 3,
        "covers the records from before the key"
    );
    assert_eq!(
        signed.checkpoint().await.unwrap(),
        None,
        "nothing new: no churn"
    );
    let report = verify_evidence(&std::fs::read(&path).unwrap(), Some(&public(&key)), &[]);
    assert!(report.is_ok(), "{report}");
}

#[test]
fn keygen_writes_a_key_pair_that_signs_and_verifies_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let said = sovra::cli::audit::keygen(dir.path(), Some(ORIGIN)).unwrap();
    let private = dir.path().join(sovra::cli::audit::PRIVATE_KEY_FILE);
    let public_pem = dir.path().join(sovra::cli::audit::PUBLIC_KEY_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let key = SigningKey::read(&private).unwrap();
    let trusted = TrustedKey::parse(&std::fs::read_to_string(&public_pem).unwrap()).unwrap();
    assert_eq!(trusted, public(&key));
    let vkey = key.public_key().verifier(ORIGIN).unwrap();
    assert!(said.contains(&format!("verifier key: {vkey}")), "{said}");
    let signed = Checkpoint::new(ORIGIN, 1, &"11".repeat(32))
        .unwrap()
        .sign(&key);
    assert_eq!(signed.verify(&vkey), Ok(()));
    assert!(sovra::cli::audit::keygen(dir.path(), None).is_err());
}

fn sovra(args: &[&str]) -> (i32, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sovra"))
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8(output.stdout).unwrap() + &String::from_utf8(output.stderr).unwrap();
    (output.status.code().unwrap(), text)
}

#[tokio::test]
async fn the_verify_command_reads_the_published_configmap_and_exits_1_naming_the_contradicted_checkpoint()
 {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, said) = sovra(&[
        "audit",
        "keygen",
        "--out-dir",
        d.to_str().unwrap(),
        "--name",
        ORIGIN,
    ]);
    assert_eq!(code, 0, "{said}");
    let key = SigningKey::read(&d.join(sovra::cli::audit::PRIVATE_KEY_FILE)).unwrap();
    let vkey = key.public_key().verifier(ORIGIN).unwrap().to_string();
    let (path, published) = signed_trail(d, &key, ORIGIN, 250).await;
    let (_, theirs) = signed_trail(d, &key, "sovra.dev/5f0c2b4e-kube-system/sovra-1", 30).await;
    // The ConfigMap as `kubectl get -o yaml` shows it: both replicas' checkpoints.
    let mut data = serde_json::Map::new();
    data.insert(
        "sovra-0.201.checkpoint".into(),
        published[1].to_string().into(),
    );
    data.insert(
        "sovra-0.latest.checkpoint".into(),
        published[2].to_string().into(),
    );
    data.insert(
        "sovra-1.latest.checkpoint".into(),
        theirs[0].to_string().into(),
    );
    data.insert("sovra-0.verifier-key".into(), vkey.clone().into());
    let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "sovra-audit-checkpoint", "namespace": "sovra-system"}, "data": data});
    let cm_path = d.join("checkpoints.yaml");
    std::fs::write(&cm_path, serde_norway::to_string(&cm).unwrap()).unwrap();
    let file = path.to_str().unwrap();
    let cms = cm_path.to_str().unwrap();

    let (code, good) = sovra(&["audit", "verify", file, "--key", &vkey, "--checkpoint", cms]);
    assert_eq!(code, 0, "{good}");
    assert!(
        good.contains("of origin sovra.dev/5f0c2b4e-kube-system/sovra-1, another trail: skipped"),
        "{good}"
    );
    assert!(good.trim_end().ends_with("VERIFIED"), "{good}");

    std::fs::write(&path, text(&rewrite_from(&lines(&path), 150, false))).unwrap();
    let public = d.join(sovra::cli::audit::PUBLIC_KEY_FILE);
    let (code, bad) = sovra(&[
        "audit",
        "verify",
        file,
        "--key",
        public.to_str().unwrap(),
        "--checkpoint",
        cms,
    ]);
    assert_eq!(code, 1, "{bad}");
    assert!(bad.starts_with("OK: 251 records, chain intact\n"), "{bad}");
    assert!(
        bad.contains(&format!(
            "FAILED: checkpoint 1 (tree size 201, from ConfigMap sovra-audit-checkpoint key sovra-0.201.checkpoint in {cms}) commits to head {}",
            published[1].checkpoint.head()
        )),
        "{bad}"
    );
    assert!(
        bad.contains("commits to 252 lines, but the file has only 251"),
        "{bad}"
    );
    assert!(
        bad.trim_end().ends_with("NOT VERIFIED: 2 problem(s)"),
        "{bad}"
    );
    if let Ok(out) = std::env::var("SOVRA_SAMPLE_OUT") {
        std::fs::write(format!("{out}/good.txt"), &good).unwrap();
        std::fs::write(format!("{out}/bad.txt"), &bad).unwrap();
        std::fs::write(format!("{out}/checkpoint.txt"), published[1].to_string()).unwrap();
        std::fs::write(format!("{out}/keygen.txt"), &said).unwrap();
        std::fs::copy(&public, format!("{out}/pub.pem")).unwrap();
    }
}
