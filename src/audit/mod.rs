//! Tamper-evident audit trail: auditors must be able to prove where sensitive workloads ran.
//!
//! Every decision Sovra acts on (placed, moved, refused, violation, sovereignty lost,
//! released) is one JSON line in an append-only file:
//!
//! ```json
//! {"seq":12,"time":"2026-11-23T18:00:00.123456Z","actor":"sovra/sovra-0","action":"Placed","object":{"kind":"SovereignWorkload","namespace":"ministry-fin","name":"tax-assessment","uid":"..."},"class":"confidential","cluster":"rijkscloud-nl","pools":["gov-confidential"],"reasons":["..."],"prev":"<sha256 of the previous line>"}
//! ```
//!
//! Why it is built this way:
//!
//! - **Hash chain.** Each line's `prev` is the SHA-256 of the previous line's exact bytes
//!   (64 zeros on the first line) and `seq` counts 1, 2, 3, ... Editing, deleting, reordering
//!   or inserting a line breaks `prev` and/or `seq` at or right after that line, and
//!   [`verify_file`] names the first broken line. Lines are serialized from a struct with a
//!   fixed field order and time format, so their bytes are reproducible; a line not in that
//!   exact form is reported as edited.
//! - **Anchor the head: signed checkpoints.** Nothing follows the last line, so an edit to it
//!   (or a rewrite of the whole tail with recomputed hashes: the chain holds no secret) is only
//!   caught against a copy of the head kept outside the cluster. With a signing key the trail
//!   writes that copy itself: a `Checkpoint` line every N records and on demand, carrying a
//!   C2SP signed note of (origin, tree size, head) ([`Checkpoint`], [`CheckpointPolicy`]), which
//!   the controller publishes outside the trail. [`verify_evidence`] checks the signatures and
//!   that checkpoints kept elsewhere are prefixes of the file. docs/audit.md says what that
//!   proves.
//! - **fsync before acting.** [`AuditTrail::record`] returns only after the line is written
//!   and synced, so the controller records first and acts second: a decision that took effect
//!   is never missing from the trail, even after a crash. A crash mid-append leaves a final
//!   line without a newline, which verification reports as a torn write.
//! - **Fail closed.** [`AuditTrail::open`] verifies the existing file and refuses to extend a
//!   broken chain; a human keeps the file as evidence and moves it aside.
//! - **Single writer.** Appends within a process are serialized; across processes the file
//!   is locked. With leader election only the leader records decisions, and each replica in
//!   the Helm chart has its own file, so no two writers ever share a chain.
//!
//! Records also go to stdout (bare JSON, one per line) when enabled, for log pipelines; the
//! file, not stdout, is the evidence.

mod checkpoint;
mod checkpoint_line;
mod evidence;
mod record;
mod show;
mod signer;
mod signing_key;
mod trail;
mod verify;

pub use checkpoint::{Checkpoint, NoteSignature, SignedCheckpoint};
pub use evidence::{EvidenceReport, ExternalCheckpoint, verify_evidence, verify_evidence_file};
pub use record::format_time;
pub use record::{
    AuditAction, AuditEntry, AuditRecord, CHECKPOINT_KIND, GENESIS_HASH, ObjectRef, canonical_line,
    line_hash,
};
pub use show::{ShowFilter, show_file};
pub use signer::{CheckpointPolicy, RECENT_CHECKPOINTS};
pub use signing_key::{PublicKey, SigningKey, TrustedKey, VerifierKey};
pub use trail::AuditTrail;
pub use verify::{ChainBreak, VerifyReport, verify_file, verify_lines};
