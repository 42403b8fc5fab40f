//! The trail's last signed checkpoint, as the report shows it.
//!
//! Checking a checkpoint (a C2SP signed note of the trail's size and head hash, Ed25519) is
//! the audit module's work (`crate::audit::SignedCheckpoint`, `TrustedKey`); the report asks
//! [`checkpoint_status`] and renders whichever [`CheckpointStatus`] it gets.

use super::trail::{CheckpointLine, format_time};
use crate::audit::{SignedCheckpoint, TrustedKey, VerifyReport};
use serde::Serialize;
use std::path::PathBuf;

/// The public key given with `--key`: a file, read but not interpreted here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub path: PathBuf,
    pub text: String,
}

/// Where the checkpoint is in the trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointAt {
    /// 1-based line of the checkpoint in the trail file.
    pub line: usize,
    pub seq: Option<u64>,
    /// RFC 3339, as written.
    pub time: Option<String>,
}

/// Why a checkpoint's signature was not checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Unchecked {
    /// No `--key` was given.
    NoKey,
    /// This build of Sovra cannot check checkpoint signatures yet.
    NotSupported,
}

/// What the report says about the last checkpoint in the trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum CheckpointStatus {
    /// The trail holds no checkpoint.
    None,
    /// A checkpoint is in the trail, but its signature was not checked.
    Unverified { at: CheckpointAt, why: Unchecked },
    /// The signature verified with the key, and the checkpoint's size and head hash are the
    /// trail's at that line.
    #[serde(rename_all = "camelCase")]
    Valid {
        at: CheckpointAt,
        /// Records the checkpoint vouches for.
        size: u64,
        head: String,
        /// The key's name in the signed note.
        key_name: String,
    },
    /// The signature does not verify with the key, or the checkpoint does not match the chain.
    Invalid { at: CheckpointAt, problem: String },
}

impl CheckpointStatus {
    /// True only for a checkpoint whose signature verified.
    pub fn is_valid(&self) -> bool {
        matches!(self, Self::Valid { .. })
    }
}

/// The status of the trail's last checkpoint (`last`), checked with `key` against `chain`.
///
/// Without `--key` a checkpoint is `Unverified`. With one, it is `Valid` when its signature
/// verifies with the key for its origin and the chain holds: the chain scan already checks
/// that every checkpoint line commits to exactly the lines before it
/// ([`crate::audit::verify_evidence`] explains what that proves).
pub fn checkpoint_status(
    last: Option<&CheckpointLine>,
    key: Option<&PublicKey>,
    chain: &VerifyReport,
) -> CheckpointStatus {
    let Some(line) = last else {
        return CheckpointStatus::None;
    };
    let at = CheckpointAt {
        line: line.line,
        seq: line.seq,
        time: line.time.as_ref().map(format_time),
    };
    let Some(key) = key else {
        return CheckpointStatus::Unverified {
            at,
            why: Unchecked::NoKey,
        };
    };
    match verify(line, key, chain) {
        Ok((size, head, key_name)) => CheckpointStatus::Valid {
            at,
            size,
            head,
            key_name,
        },
        Err(problem) => CheckpointStatus::Invalid { at, problem },
    }
}

/// The checkpoint's tree size, head and key name once its signature verified.
fn verify(
    line: &CheckpointLine,
    key: &PublicKey,
    chain: &VerifyReport,
) -> Result<(u64, String, String), String> {
    let note = line
        .value
        .get("checkpoint")
        .and_then(serde_json::Value::as_str)
        .ok_or("the checkpoint line holds no signed note")?;
    let signed =
        SignedCheckpoint::parse(note).map_err(|e| format!("not a signed checkpoint: {e}"))?;
    let trusted = TrustedKey::parse(&key.text)
        .map_err(|e| format!("the key in {} cannot be used: {e}", key.path.display()))?;
    let verifier = trusted.for_origin(&signed.checkpoint.origin)?;
    signed.verify(&verifier)?;
    if !chain.is_intact() {
        return Err("the signature holds, but the chain is broken: what the checkpoint vouches for is not what the file holds".to_owned());
    }
    Ok((
        signed.checkpoint.tree_size,
        signed.checkpoint.head(),
        verifier.name().to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> VerifyReport {
        VerifyReport {
            records: 3,
            first_break: None,
            head: Some("ab".into()),
        }
    }

    const ORIGIN: &str = "sovra.example/trail";

    /// A checkpoint line at line 3 whose note `signer` signed.
    fn signed_line(signer: &crate::audit::SigningKey) -> CheckpointLine {
        let head = "ab".repeat(32);
        let note = crate::audit::Checkpoint::new(ORIGIN, 2, &head)
            .map(|c| c.sign(signer).to_string())
            .unwrap_or_default();
        CheckpointLine {
            line: 3,
            seq: Some(3),
            time: "2026-03-04T00:00:00Z".parse().ok(),
            value: serde_json::json!({"action": "Checkpoint", "checkpoint": note}),
        }
    }

    fn line() -> CheckpointLine {
        CheckpointLine {
            line: 3,
            seq: Some(3),
            time: "2026-03-04T00:00:00Z".parse().ok(),
            value: serde_json::json!({"action": "Checkpoint"}),
        }
    }

    /// The verifier key of `signer` for [`ORIGIN`], as `sovra audit verifier-key` writes it.
    fn verifier_of(signer: &crate::audit::SigningKey) -> PublicKey {
        PublicKey {
            path: "trail.pub".into(),
            text: signer
                .public_key()
                .verifier(ORIGIN)
                .map(|v| v.to_string())
                .unwrap_or_default(),
        }
    }

    fn signer() -> crate::audit::SigningKey {
        crate::audit::SigningKey::generate().expect("a key")
    }

    #[test]
    fn a_trail_without_a_checkpoint_has_none_with_or_without_a_key() {
        assert_eq!(
            checkpoint_status(None, None, &chain()),
            CheckpointStatus::None
        );
        assert_eq!(
            checkpoint_status(None, Some(&verifier_of(&signer())), &chain()),
            CheckpointStatus::None
        );
    }

    #[test]
    fn a_checkpoint_without_a_key_is_unverified_for_want_of_the_key() {
        let status = checkpoint_status(Some(&line()), None, &chain());
        let CheckpointStatus::Unverified { at, why } = status else {
            panic!("expected Unverified, got {status:?}");
        };
        assert_eq!(why, Unchecked::NoKey);
        assert_eq!(at.line, 3);
        assert_eq!(at.time.as_deref(), Some("2026-03-04T00:00:00.000000Z"));
    }

    #[test]
    fn a_checkpoint_signed_by_the_key_on_an_intact_chain_is_valid() {
        let key = signer();
        let status =
            checkpoint_status(Some(&signed_line(&key)), Some(&verifier_of(&key)), &chain());
        let CheckpointStatus::Valid { size, key_name, .. } = status else {
            panic!("expected Valid, got {status:?}");
        };
        assert_eq!((size, key_name.as_str()), (2, ORIGIN));
    }

    #[test]
    fn a_checkpoint_signed_by_another_key_is_invalid() {
        let status = checkpoint_status(
            Some(&signed_line(&signer())),
            Some(&verifier_of(&signer())),
            &chain(),
        );
        assert!(
            matches!(status, CheckpointStatus::Invalid { .. }),
            "{status:?}"
        );
    }

    #[test]
    fn a_good_signature_over_a_broken_chain_is_not_valid() {
        let key = signer();
        let broken = VerifyReport {
            first_break: Some(crate::audit::ChainBreak {
                line: 2,
                problem: "edited".into(),
            }),
            ..chain()
        };
        let status = checkpoint_status(Some(&signed_line(&key)), Some(&verifier_of(&key)), &broken);
        let CheckpointStatus::Invalid { problem, .. } = status else {
            panic!("expected Invalid, got {status:?}");
        };
        assert!(problem.contains("chain is broken"), "{problem}");
    }

    #[test]
    fn a_checkpoint_line_without_its_note_is_invalid_with_a_key() {
        let status = checkpoint_status(Some(&line()), Some(&verifier_of(&signer())), &chain());
        assert!(
            matches!(status, CheckpointStatus::Invalid { .. }),
            "{status:?}"
        );
    }

    #[test]
    fn statuses_serialize_with_their_state_named() {
        let valid = CheckpointStatus::Valid {
            at: CheckpointAt {
                line: 9,
                seq: Some(9),
                time: None,
            },
            size: 9,
            head: "cd".into(),
            key_name: "sovra.example".into(),
        };
        let json = serde_json::to_value(&valid).unwrap();
        assert_eq!(json["state"], "valid");
        assert_eq!(json["keyName"], "sovra.example");
        assert_eq!(
            serde_json::to_value(CheckpointStatus::None).unwrap()["state"],
            "none"
        );
    }
}
