//! When a trail writes a signed checkpoint, and what it remembers of the ones it wrote. The
//! trail calls it under its append lock; nothing here does IO.
//!
//! A checkpoint is due after every `every_records` records and whenever asked (a timer,
//! shutdown), but only when a record was appended since the last checkpoint: an idle trail
//! writes none. The recent checkpoints (those found in the file when it was opened, then each
//! new one) are offered on a `watch` channel for publishing outside the trail.

use super::checkpoint::{Checkpoint, SignedCheckpoint};
use super::record::AuditRecord;
use super::signing_key::SigningKey;
use std::collections::VecDeque;
use tokio::sync::watch;

/// How many recent checkpoints are kept for publishing.
pub const RECENT_CHECKPOINTS: usize = 16;

/// What a trail needs to sign checkpoints.
#[derive(Clone, Debug)]
pub struct CheckpointPolicy {
    pub key: SigningKey,
    /// The trail's identity in its checkpoints, e.g. `sovra.dev/<kube-system UID>/<replica>`.
    /// A trail that already has checkpoints keeps the origin they name.
    pub origin: String,
    /// A checkpoint after this many records; 0: only when asked.
    pub every_records: u64,
}

#[derive(Debug)]
pub(crate) struct Signer {
    policy: CheckpointPolicy,
    /// Records (not checkpoints) appended since the last checkpoint.
    since: u64,
    recent: VecDeque<SignedCheckpoint>,
    published: watch::Sender<Vec<SignedCheckpoint>>,
}

impl Signer {
    /// `found`: the checkpoints already in the file, oldest first; `since`: the records after
    /// the last of them.
    pub fn new(policy: CheckpointPolicy, found: Vec<SignedCheckpoint>, since: u64) -> Self {
        let skip = found.len().saturating_sub(RECENT_CHECKPOINTS);
        let recent: VecDeque<SignedCheckpoint> = found.into_iter().skip(skip).collect();
        let (published, _) = watch::channel(recent.iter().cloned().collect());
        Self {
            policy,
            since,
            recent,
            published,
        }
    }

    pub fn origin(&self) -> &str {
        &self.policy.origin
    }

    pub fn subscribe(&self) -> watch::Receiver<Vec<SignedCheckpoint>> {
        self.published.subscribe()
    }

    pub fn recorded(&mut self) {
        self.since = self.since.saturating_add(1);
    }

    /// After a record: is a checkpoint due by count?
    pub fn due_by_count(&self) -> bool {
        self.policy.every_records > 0 && self.since >= self.policy.every_records
    }

    /// How many more records make a checkpoint due by count (0: one is due already); `None`
    /// when checkpoints are not written by count.
    pub fn records_until_due(&self) -> Option<u64> {
        (self.policy.every_records > 0)
            .then(|| self.policy.every_records.saturating_sub(self.since))
    }

    /// Asked for one: is there anything new to commit to?
    pub fn due(&self) -> bool {
        self.since > 0
    }

    /// The signed checkpoint of lines 1 to `tree_size` (the last hashing to `head`) and the
    /// `Checkpoint` line that carries it, at seq `tree_size + 1`.
    pub fn line(
        &self,
        tree_size: u64,
        head: &str,
        time: jiff::Timestamp,
        actor: &str,
    ) -> Result<(AuditRecord, SignedCheckpoint), String> {
        let signed = Checkpoint::new(&self.policy.origin, tree_size, head)?.sign(&self.policy.key);
        let record = AuditRecord::checkpoint(
            tree_size.saturating_add(1),
            time,
            actor,
            &self.policy.origin,
            signed.to_string(),
            head.to_owned(),
        );
        Ok((record, signed))
    }

    /// The checkpoint's line is durable: start counting again, and publish it.
    pub fn written(&mut self, signed: SignedCheckpoint) {
        self.since = 0;
        self.recent.push_back(signed);
        while self.recent.len() > RECENT_CHECKPOINTS {
            self.recent.pop_front();
        }
        self.published
            .send_replace(self.recent.iter().cloned().collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::{GENESIS_HASH, canonical_line};

    fn signer(every: u64) -> Signer {
        let policy = CheckpointPolicy {
            key: SigningKey::generate().unwrap(),
            origin: "sovra.dev/test/sovra-0".into(),
            every_records: every,
        };
        Signer::new(policy, Vec::new(), 0)
    }

    #[test]
    fn a_checkpoint_is_due_after_n_records_and_only_when_something_is_new() {
        let mut s = signer(2);
        assert!(!s.due());
        s.recorded();
        assert!(s.due() && !s.due_by_count());
        assert_eq!(s.records_until_due(), Some(1));
        s.recorded();
        assert!(s.due_by_count());
        assert_eq!(s.records_until_due(), Some(0));
        let (_, signed) = s
            .line(2, GENESIS_HASH, jiff::Timestamp::UNIX_EPOCH, "a")
            .unwrap();
        s.written(signed);
        assert!(!s.due());
        assert!(!signer(0).due_by_count());
        assert_eq!(signer(0).records_until_due(), None);
    }

    #[test]
    fn the_checkpoint_line_follows_the_lines_it_commits_to() {
        let s = signer(1);
        let head = "ab".repeat(32);
        let (record, signed) = s
            .line(7, &head, jiff::Timestamp::UNIX_EPOCH, "sovra/x")
            .unwrap();
        assert_eq!(record.seq, 8);
        assert_eq!(record.prev, head);
        assert_eq!(signed.checkpoint.tree_size, 7);
        assert_eq!(signed.checkpoint.head(), head);
        assert_eq!(record.checkpoint, Some(signed.to_string()));
        assert!(
            canonical_line(&record)
                .unwrap()
                .contains("\"action\":\"Checkpoint\"")
        );
    }

    #[test]
    fn only_the_recent_checkpoints_are_published() {
        let mut s = signer(1);
        let rx = s.subscribe();
        for size in 1..=20 {
            let (_, signed) = s
                .line(size, GENESIS_HASH, jiff::Timestamp::UNIX_EPOCH, "a")
                .unwrap();
            s.written(signed);
        }
        let published = rx.borrow().clone();
        assert_eq!(published.len(), RECENT_CHECKPOINTS);
        assert_eq!(published[0].checkpoint.tree_size, 5);
        assert_eq!(published[15].checkpoint.tree_size, 20);
    }
}
