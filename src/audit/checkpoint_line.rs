//! A `Checkpoint` line of the trail against the chain it sits in: it must commit to exactly
//! the lines before it and share the trail's origin. Every scan of a trail checks this, with
//! or without a key, so a rewrite of the lines before a checkpoint is caught.

use super::checkpoint::SignedCheckpoint;
use super::record::{AuditRecord, CHECKPOINT_KIND};

/// Checks a `Checkpoint` line (`number`, 1-based) against the hash of the line before it
/// (`head`) and the origin of the trail's earlier checkpoints.
pub(crate) fn check_checkpoint_line(
    record: &AuditRecord,
    number: usize,
    head: &str,
    origin: Option<&str>,
) -> Result<SignedCheckpoint, String> {
    let note = record
        .checkpoint
        .as_deref()
        .ok_or("a Checkpoint line without its checkpoint")?;
    let signed =
        SignedCheckpoint::parse(note).map_err(|e| format!("not a signed checkpoint: {e}"))?;
    let c = &signed.checkpoint;
    let before = record.seq.saturating_sub(1);
    if c.tree_size != before {
        return Err(format!(
            "checkpoint at line {number} states tree size {}, but it follows line {before}",
            c.tree_size
        ));
    }
    if c.head() != head {
        return Err(format!(
            "checkpoint at line {number} (tree size {before}) commits to head {}, but line \
             {before} hashes to {head}: the trail was rewritten at or before line {before} after \
             this checkpoint was signed",
            c.head()
        ));
    }
    if record.object.kind != CHECKPOINT_KIND || record.object.name != c.origin {
        return Err(format!(
            "checkpoint at line {number} is for origin {} but its line names {}/{}",
            c.origin, record.object.kind, record.object.name
        ));
    }
    if let Some(origin) = origin
        && origin != c.origin
    {
        return Err(format!(
            "checkpoint at line {number} is for origin {}, but this trail's checkpoints are \
             for {origin}: it comes from another trail",
            c.origin
        ));
    }
    Ok(signed)
}
