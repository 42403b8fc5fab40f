//! The trail's last signed checkpoint, as the report shows it.
//!
//! **Seam for signed checkpoints.** Checking a checkpoint (a C2SP signed note of the trail's
//! size and head hash, Ed25519) belongs to the audit module's checkpoint work, not to the
//! report. The report only asks [`checkpoint_status`] and renders whichever
//! [`CheckpointStatus`] it gets: every variant is rendered and tested already
//! (`html.rs`, `model.rs`). When `crate::audit` can verify checkpoints, the `Some` arm of
//! [`checkpoint_status`] calls it with the key and the chain and maps its answer to `Valid`
//! or `Invalid`; nothing else in the report changes.

use super::trail::{CheckpointLine, format_time};
use crate::audit::VerifyReport;
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
/// Today no checkpoint can be checked: a checkpoint line found in the trail is `Unverified`
/// (`NoKey` without `--key`, else `NotSupported`). This is the one function the signed
/// checkpoint work fills in (see the module docs).
pub fn checkpoint_status(
    last: Option<&CheckpointLine>,
    key: Option<&PublicKey>,
    chain: &VerifyReport,
) -> CheckpointStatus {
    let Some(line) = last else {
        return CheckpointStatus::None;
    };
    // The signature check, once the audit module has it, needs the key and the chain.
    let _ = chain;
    let at = CheckpointAt {
        line: line.line,
        seq: line.seq,
        time: line.time.as_ref().map(format_time),
    };
    let why = match key {
        None => Unchecked::NoKey,
        Some(_) => Unchecked::NotSupported,
    };
    CheckpointStatus::Unverified { at, why }
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

    fn line() -> CheckpointLine {
        CheckpointLine {
            line: 3,
            seq: Some(3),
            time: "2026-03-04T00:00:00Z".parse().ok(),
            value: serde_json::json!({"action": "Checkpoint"}),
        }
    }

    fn key() -> PublicKey {
        PublicKey {
            path: "trail.pub".into(),
            text: "sovra.example+abcd+AAAA".into(),
        }
    }

    #[test]
    fn a_trail_without_a_checkpoint_has_none_with_or_without_a_key() {
        assert_eq!(
            checkpoint_status(None, None, &chain()),
            CheckpointStatus::None
        );
        assert_eq!(
            checkpoint_status(None, Some(&key()), &chain()),
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
    fn a_checkpoint_with_a_key_is_never_reported_valid_while_signatures_cannot_be_checked() {
        let status = checkpoint_status(Some(&line()), Some(&key()), &chain());
        assert!(!status.is_valid());
        assert!(matches!(
            status,
            CheckpointStatus::Unverified {
                why: Unchecked::NotSupported,
                ..
            }
        ));
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
