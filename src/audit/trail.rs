//! The writer: one append-only file per Sovra process, continued across restarts; with a
//! signing key it also writes signed checkpoints (see [`CheckpointPolicy`]).

mod file;

use super::checkpoint::SignedCheckpoint;
use super::record::{AuditEntry, AuditRecord, GENESIS_HASH, canonical_line, line_hash};
use super::signer::{CheckpointPolicy, Signer};
use crate::Error;
use crate::sync::lock;
use file::{append_durably, echo, open_file};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Where records go when there is no file.
const STDOUT: &str = "<stdout>";

/// Handle to the audit trail. Cheap to clone; all clones append to the same chain.
#[derive(Clone, Debug)]
pub struct AuditTrail {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    path: Option<PathBuf>,
    actor: String,
    echo_stdout: bool,
    /// A std mutex, held by a blocking task for the whole append (write, fsync, update, echo).
    /// If the caller's future is dropped mid-append the task still finishes, so the in-memory
    /// head never disagrees with the file.
    state: Mutex<State>,
    /// Appends waiting for `state`: whoever holds it next writes them all (group commit).
    waiting: Mutex<Vec<Waiting>>,
}

/// An append that joined the queue, and where its answer goes.
#[derive(Debug)]
struct Waiting {
    entry: AuditEntry,
    time: jiff::Timestamp,
    answer: std::sync::mpsc::SyncSender<Result<AuditRecord, Error>>,
}

#[derive(Debug)]
struct State {
    /// `None`: stdout only.
    file: Option<File>,
    last_seq: u64,
    /// Hash of the last line: the next record's `prev`.
    head: String,
    /// Set when a failed write could not be rolled back: the file may end in a torn line,
    /// so nothing more may be appended to it.
    unusable: Option<String>,
    /// Present when checkpoints are signed.
    signer: Option<Signer>,
}

impl AuditTrail {
    /// Opens (creating if missing, with parent directories) the append-only trail at `path`
    /// and verifies it, so the chain continues across restarts. Refuses, with
    /// [`Error::Audit`] naming the first broken line, when the existing chain is broken,
    /// including when the last line has no newline (a torn write) and when a checkpoint in it
    /// contradicts the lines before it: Sovra never extends a tampered trail. Also refuses
    /// when another process holds the file's lock.
    ///
    /// `path: None` writes to stdout only (still hash-chained, in memory; `echo_stdout` is
    /// then implied). `actor` is written on every line, e.g. `sovra/<pod name>`.
    pub async fn open(
        path: Option<PathBuf>,
        actor: String,
        echo_stdout: bool,
    ) -> Result<Self, Error> {
        Self::open_signed(path, actor, echo_stdout, None).await
    }

    /// [`AuditTrail::open`], and with `checkpoints` the trail writes signed checkpoints: after
    /// every `every_records` records, and on [`AuditTrail::checkpoint`]. A trail whose file
    /// already has checkpoints keeps their origin (a different configured one is logged).
    pub async fn open_signed(
        path: Option<PathBuf>,
        actor: String,
        echo_stdout: bool,
        checkpoints: Option<CheckpointPolicy>,
    ) -> Result<Self, Error> {
        let (file, scanned) = match &path {
            None => (None, None),
            Some(p) => {
                let p = p.clone();
                let for_error = p.clone();
                let (file, scanned) = tokio::task::spawn_blocking(move || open_file(&p))
                    .await
                    .map_err(|e| Error::Audit {
                    path: for_error,
                    message: format!("opening task failed: {e}"),
                })??;
                (Some(file), Some(scanned))
            }
        };
        let (last_seq, head) = scanned.as_ref().map_or((0, GENESIS_HASH.to_owned()), |s| {
            (s.last_seq, s.head.clone())
        });
        let signer = checkpoints.map(|mut policy| {
            let found: Vec<SignedCheckpoint> = scanned
                .as_ref()
                .map(|s| s.checkpoints.iter().map(|(_, c)| c.clone()).collect())
                .unwrap_or_default();
            if let Some(existing) = found.first().map(|c| c.checkpoint.origin.clone())
                && existing != policy.origin
            {
                tracing::warn!(
                    configured = %policy.origin, %existing,
                    "the trail's checkpoints name another origin; keeping the trail's"
                );
                policy.origin = existing;
            }
            warn_unsigned(&found, &policy);
            let since = scanned.as_ref().map_or(0, |s| s.since_checkpoint);
            Signer::new(policy, found, since)
        });
        if let Some(p) = &path {
            tracing::info!(
                path = %p.display(),
                records = last_seq,
                head = %head,
                origin = signer.as_ref().map(Signer::origin),
                "audit trail verified and opened"
            );
        }
        let state = State {
            file,
            last_seq,
            head,
            unusable: None,
            signer,
        };
        Ok(Self {
            shared: Arc::new(Shared {
                path,
                actor,
                echo_stdout,
                state: Mutex::new(state),
                waiting: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Appends one record timestamped now. See [`AuditTrail::record_at`].
    pub async fn record(&self, entry: AuditEntry) -> Result<AuditRecord, Error> {
        self.record_at(entry, jiff::Timestamp::now()).await
    }

    /// Appends one record with the given time (truncated to microseconds): the line and its
    /// newline are written and `fsync`ed (`sync_data`) before this returns, so a decision
    /// Sovra acts on is never missing from the trail. Then the line is echoed to stdout when
    /// enabled, as bare JSON. Appends are serialized, so concurrent callers produce one chain;
    /// the records of callers that arrive while one append is being written are written
    /// together, with one `fsync` (group commit), each still answered only once it is durable.
    /// When the record makes a checkpoint due by count, the checkpoint line follows it (a
    /// checkpoint that cannot be written is logged and tried again after the next record).
    ///
    /// If the write fails the file is truncated back to its previous length and the error
    /// returned; if even that fails, the trail refuses further appends until Sovra restarts
    /// (and re-verifies the file).
    pub async fn record_at(
        &self,
        entry: AuditEntry,
        time: jiff::Timestamp,
    ) -> Result<AuditRecord, Error> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || shared.append(entry, time))
            .await
            .map_err(|e| Error::Audit {
                path: self.shared.error_path(),
                message: format!("audit writer task failed: {e}"),
            })?
    }

    /// Appends a signed checkpoint of every line so far, unless the trail signs none or no
    /// record was appended since the last checkpoint. Returns the checkpoint written, if any.
    pub async fn checkpoint(&self) -> Result<Option<SignedCheckpoint>, Error> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let mut state = lock(&shared.state);
            shared.checkpoint(&mut state, jiff::Timestamp::now())
        })
        .await
        .map_err(|e| Error::Audit {
            path: self.shared.error_path(),
            message: format!("audit writer task failed: {e}"),
        })?
    }

    /// The recent checkpoints (at most [`super::RECENT_CHECKPOINTS`], oldest first: those in
    /// the file when it was opened, then each one written), updated after every checkpoint.
    /// `None` when the trail signs no checkpoints.
    pub fn checkpoints(&self) -> Option<watch::Receiver<Vec<SignedCheckpoint>>> {
        self.lock().signer.as_ref().map(Signer::subscribe)
    }

    /// The origin the trail's checkpoints name, when it signs them.
    pub fn origin(&self) -> Option<String> {
        self.lock().signer.as_ref().map(|s| s.origin().to_owned())
    }

    /// The trail file, or `None` when writing to stdout only.
    pub fn path(&self) -> Option<&Path> {
        self.shared.path.as_deref()
    }

    /// The actor written on every line.
    pub fn actor(&self) -> &str {
        &self.shared.actor
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.shared.state)
    }
}

/// Logs checkpoints in the file that the configured key did not sign (a rotated key, or a
/// forgery; `sovra audit verify --key` tells which key signed what).
fn warn_unsigned(found: &[SignedCheckpoint], policy: &CheckpointPolicy) {
    let Ok(verifier) = policy.key.public_key().verifier(&policy.origin) else {
        return;
    };
    let unsigned = found
        .iter()
        .filter(|c| c.verify(&verifier).is_err())
        .count();
    if unsigned > 0 {
        tracing::warn!(
            unsigned,
            key = %verifier,
            "checkpoints in the audit trail are not signed by the configured key"
        );
    }
}

impl Shared {
    fn error_path(&self) -> PathBuf {
        self.path.clone().unwrap_or_else(|| PathBuf::from(STDOUT))
    }

    /// Group commit: the record joins the queue, and whoever holds the state next writes every
    /// queued record (see [`Shared::write_queued`]). By the time this caller holds the state its
    /// record has been written and answered, by itself or by an earlier holder that took it
    /// from the queue: a holder answers everything it took before it lets the state go.
    fn append(&self, entry: AuditEntry, time: jiff::Timestamp) -> Result<AuditRecord, Error> {
        let (answer, answered) = std::sync::mpsc::sync_channel(1);
        lock(&self.waiting).push(Waiting {
            entry,
            time,
            answer,
        });
        {
            let mut state = lock(&self.state);
            let queued = std::mem::take(&mut *lock(&self.waiting));
            self.write_queued(&mut state, queued);
        }
        answered.try_recv().unwrap_or_else(|_| {
            Err(Error::Audit {
                path: self.error_path(),
                message: "the audit writer did not answer for the record".to_owned(),
            })
        })
    }

    /// Writes `queued` in order, as few writes and `fsync`s as the checkpoints allow: a
    /// record that makes a checkpoint due by count ends a write, and the checkpoint line
    /// follows it. A write that fails fails the records in it, and the next ones are chained
    /// to what the file holds, as if those had never been asked for.
    fn write_queued(&self, state: &mut State, queued: Vec<Waiting>) {
        let mut queued = queued.into_iter().peekable();
        while queued.peek().is_some() {
            let room = state
                .signer
                .as_ref()
                .and_then(Signer::records_until_due)
                .map_or(usize::MAX, |n| {
                    usize::try_from(n.max(1)).unwrap_or(usize::MAX)
                });
            let (mut records, mut lines, mut answers) = (Vec::new(), Vec::new(), Vec::new());
            let (mut seq, mut head) = (state.last_seq, state.head.clone());
            while lines.len() < room
                && let Some(waiting) = queued.next()
            {
                let made = self.next_seq(state, seq).and_then(|next| {
                    let record = AuditRecord::new(
                        next,
                        waiting.time,
                        &self.actor,
                        waiting.entry,
                        head.clone(),
                    );
                    canonical_line(&record).map(|line| (record, line))
                });
                match made {
                    Ok((record, line)) => {
                        (seq, head) = (record.seq, line_hash(line.as_bytes()));
                        records.push(record);
                        lines.push(line);
                        answers.push(waiting.answer);
                    }
                    Err(error) => {
                        let _ = waiting.answer.send(Err(error));
                    }
                }
            }
            let time = records.last().map(|record| record.time);
            let written = self.write_lines(state, &lines, seq);
            for (record, answer) in records.into_iter().zip(answers) {
                let result = match &written {
                    Ok(()) => {
                        if let Some(signer) = &mut state.signer {
                            signer.recorded();
                        }
                        Ok(record)
                    }
                    Err(error) => Err(self.failure_of_each(error)),
                };
                let _ = answer.send(result);
            }
            if let (Ok(()), Some(time)) = (&written, time)
                && state.signer.as_ref().is_some_and(Signer::due_by_count)
                && let Err(error) = self.checkpoint(state, time)
            {
                // The records are durable; the checkpoint is tried again after the next one.
                tracing::error!(%error, seq = state.last_seq, "could not write an audit checkpoint");
            }
        }
    }

    /// Writes a checkpoint line if one is due (see [`AuditTrail::checkpoint`]).
    fn checkpoint(
        &self,
        state: &mut State,
        time: jiff::Timestamp,
    ) -> Result<Option<SignedCheckpoint>, Error> {
        if !state.signer.as_ref().is_some_and(Signer::due) {
            return Ok(None);
        }
        self.next_seq(state, state.last_seq)?;
        let made = state
            .signer
            .as_ref()
            .map(|signer| signer.line(state.last_seq, &state.head, time, &self.actor));
        let Some(made) = made else {
            return Ok(None);
        };
        let (record, signed) = made.map_err(|message| Error::Audit {
            path: self.error_path(),
            message: format!("could not make a checkpoint: {message}"),
        })?;
        self.write(state, &record)?;
        if let Some(signer) = &mut state.signer {
            signer.written(signed.clone());
        }
        tracing::info!(
            tree_size = signed.checkpoint.tree_size,
            head = %signed.checkpoint.head(),
            origin = %signed.checkpoint.origin,
            "audit checkpoint written"
        );
        Ok(Some(signed))
    }

    /// A failed write's error, for each record that was in it (an `io::Error` has no `Clone`).
    fn failure_of_each(&self, error: &Error) -> Error {
        match error {
            Error::WriteFile { path, source } => Error::WriteFile {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            other => Error::Audit {
                path: self.error_path(),
                message: other.to_string(),
            },
        }
    }

    /// The seq after `last`, unless the trail refuses appends.
    fn next_seq(&self, state: &State, last: u64) -> Result<u64, Error> {
        if let Some(reason) = &state.unusable {
            return Err(Error::Audit {
                path: self.error_path(),
                message: format!(
                    "refusing to append: {reason}; restart Sovra so it re-verifies the file"
                ),
            });
        }
        last.checked_add(1).ok_or_else(|| Error::Audit {
            path: self.error_path(),
            message: "seq overflow".to_owned(),
        })
    }

    /// Writes `record` as the next line (fsynced), echoes it, and moves the head.
    fn write(&self, state: &mut State, record: &AuditRecord) -> Result<(), Error> {
        let line = canonical_line(record)?;
        self.write_lines(state, &[line], record.seq)
    }

    /// Writes `lines` (each the canonical line of a record, chained to the one before, the
    /// first to the head; the last's seq is `last_seq`) with one write and one fsync, echoes
    /// them, and moves the head to the last. Nothing moves when the write fails.
    fn write_lines(&self, state: &mut State, lines: &[String], last_seq: u64) -> Result<(), Error> {
        let Some(last_line) = lines.last() else {
            return Ok(());
        };
        let mut bytes = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for line in lines {
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
        }
        match (&state.file, &self.path) {
            (Some(file), Some(path)) => {
                if let Err(reason) = append_durably(file, &bytes) {
                    if let Some(unusable) = reason.unusable {
                        state.unusable = Some(unusable);
                    }
                    return Err(Error::WriteFile {
                        path: path.clone(),
                        source: reason.error,
                    });
                }
                if self.echo_stdout
                    && let Err(error) = echo(&bytes)
                {
                    // The records are durable in the file; stdout is a convenience copy.
                    tracing::warn!(%error, seq = last_seq, "could not echo audit records to stdout");
                }
            }
            _ => echo(&bytes).map_err(|source| Error::WriteFile {
                path: PathBuf::from(STDOUT),
                source,
            })?,
        }
        state.last_seq = last_seq;
        state.head = line_hash(last_line.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::{AuditAction, ObjectRef};

    fn entry() -> AuditEntry {
        AuditEntry::new(
            AuditAction::Released,
            ObjectRef {
                kind: "SovereignWorkload".into(),
                namespace: Some("ns".into()),
                name: "w".into(),
                uid: None,
            },
        )
    }

    #[test]
    fn trail_handle_can_be_shared_across_tasks() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<AuditTrail>();
    }

    #[tokio::test]
    async fn a_trail_left_unusable_by_a_failed_rollback_refuses_appends() {
        let trail = AuditTrail::open(None, "sovra/t".into(), false)
            .await
            .unwrap();
        trail.shared.state.lock().unwrap().unusable = Some("torn".into());
        let err = trail.record(entry()).await.unwrap_err();
        assert!(
            err.to_string().contains("refusing to append: torn"),
            "{err}"
        );
        assert_eq!(trail.shared.state.lock().unwrap().last_seq, 0);
    }

    fn named(name: &str) -> AuditEntry {
        let mut entry = entry();
        entry.object.name = name.to_owned();
        entry
    }

    /// Puts records in the trail's queue, as callers that arrived while another append was
    /// being written would: the next append writes them with its own.
    fn queue(
        trail: &AuditTrail,
        names: &[&str],
    ) -> Vec<std::sync::mpsc::Receiver<Result<AuditRecord, Error>>> {
        let mut queue = trail.shared.waiting.lock().unwrap();
        names
            .iter()
            .map(|name| {
                let (answer, answered) = std::sync::mpsc::sync_channel(1);
                queue.push(Waiting {
                    entry: named(name),
                    time: jiff::Timestamp::UNIX_EPOCH,
                    answer,
                });
                answered
            })
            .collect()
    }

    #[tokio::test]
    async fn records_queued_together_are_written_in_order_with_a_checkpoint_after_every_third() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let policy = CheckpointPolicy {
            key: crate::audit::SigningKey::generate().unwrap(),
            origin: "sovra.dev/test/sovra-0".into(),
            every_records: 3,
        };
        let trail =
            AuditTrail::open_signed(Some(path.clone()), "sovra/t".into(), false, Some(policy))
                .await
                .unwrap();
        let queued = queue(&trail, &["a", "b", "c", "d", "e", "f", "g"]);
        let own = trail.record(named("h")).await.unwrap();
        let seqs: Vec<u64> = queued
            .iter()
            .map(|answered| answered.try_recv().unwrap().unwrap().seq)
            .collect();
        assert_eq!(seqs, [1, 2, 3, 5, 6, 7, 9], "checkpoints at 4 and 8");
        assert_eq!(own.seq, 10);
        let lines: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        let checkpoints: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].contains("\"action\":\"Checkpoint\""))
            .map(|i| i + 1)
            .collect();
        assert_eq!(
            checkpoints,
            [4, 8],
            "each right after the third record since the last one; h is the second since 8"
        );
        let names: Vec<&str> = ["a", "b", "c", "d", "e", "f", "g", "h"].into();
        for (name, seq) in names.iter().zip(seqs.iter().chain([&own.seq])) {
            let line = &lines[usize::try_from(*seq).unwrap() - 1];
            assert!(
                line.contains(&format!("\"name\":\"{name}\"")),
                "{seq}: {line}"
            );
        }
        let report = crate::audit::verify_file(&path).unwrap();
        assert!(report.is_intact(), "{report}");
    }

    #[tokio::test]
    async fn a_failed_write_fails_every_record_written_with_it_and_moves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let trail = AuditTrail::open(Some(path.clone()), "sovra/t".into(), false)
            .await
            .unwrap();
        // A handle that cannot write, nor truncate back: the write fails and so does the
        // rollback, which leaves the trail refusing appends.
        trail.shared.state.lock().unwrap().file = Some(File::open(&path).unwrap());
        let queued = queue(&trail, &["a", "b"]);
        let err = trail.record(named("c")).await.unwrap_err();
        assert!(matches!(err, Error::WriteFile { .. }), "{err}");
        for answered in queued {
            let err = answered.try_recv().unwrap().unwrap_err();
            assert!(matches!(err, Error::WriteFile { .. }), "{err}");
        }
        let state = trail.shared.state.lock().unwrap();
        assert_eq!((state.last_seq, state.head.as_str()), (0, GENESIS_HASH));
        assert!(state.unusable.is_some(), "the rollback failed too");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }

    #[tokio::test]
    async fn records_keep_microseconds_of_the_given_time() {
        let trail = AuditTrail::open(None, "sovra/t".into(), false)
            .await
            .unwrap();
        let time: jiff::Timestamp = "2026-11-23T18:00:00.123456789Z".parse().unwrap();
        let record = trail.record_at(entry(), time).await.unwrap();
        assert_eq!(record.time.to_string(), "2026-11-23T18:00:00.123456Z");
        assert_eq!(record.actor, "sovra/t");
    }
}
