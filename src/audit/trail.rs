//! The writer: one append-only file per Sovra process, continued across restarts.

use super::record::{AuditEntry, AuditRecord, GENESIS_HASH, canonical_line, line_hash};
use super::verify::scan;
use crate::Error;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

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
}

impl AuditTrail {
    /// Opens (creating if missing, with parent directories) the append-only trail at `path`
    /// and verifies it, so the chain continues across restarts. Refuses, with
    /// [`Error::Audit`] naming the first broken line, when the existing chain is broken,
    /// including when the last line has no newline (a torn write): Sovra never extends a
    /// tampered trail. Also refuses when another process holds the file's lock.
    ///
    /// `path: None` writes to stdout only (still hash-chained, in memory; `echo_stdout` is
    /// then implied). `actor` is written on every line, e.g. `sovra/<pod name>`.
    pub async fn open(
        path: Option<PathBuf>,
        actor: String,
        echo_stdout: bool,
    ) -> Result<Self, Error> {
        let state = match &path {
            None => State {
                file: None,
                last_seq: 0,
                head: GENESIS_HASH.to_owned(),
                unusable: None,
            },
            Some(p) => {
                let p = p.clone();
                let for_error = p.clone();
                tokio::task::spawn_blocking(move || open_file(&p))
                    .await
                    .map_err(|e| Error::Audit {
                        path: for_error,
                        message: format!("opening task failed: {e}"),
                    })??
            }
        };
        if let Some(p) = &path {
            tracing::info!(
                path = %p.display(),
                records = state.last_seq,
                head = %state.head,
                "audit trail verified and opened"
            );
        }
        Ok(Self {
            shared: Arc::new(Shared {
                path,
                actor,
                echo_stdout,
                state: Mutex::new(state),
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
    /// enabled, as bare JSON. Appends are serialized, so concurrent callers produce one chain.
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

    /// The trail file, or `None` when writing to stdout only.
    pub fn path(&self) -> Option<&Path> {
        self.shared.path.as_deref()
    }

    /// The actor written on every line.
    pub fn actor(&self) -> &str {
        &self.shared.actor
    }
}

impl Shared {
    fn error_path(&self) -> PathBuf {
        self.path.clone().unwrap_or_else(|| PathBuf::from(STDOUT))
    }

    fn append(&self, entry: AuditEntry, time: jiff::Timestamp) -> Result<AuditRecord, Error> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(reason) = &state.unusable {
            return Err(Error::Audit {
                path: self.error_path(),
                message: format!(
                    "refusing to append: {reason}; restart Sovra so it re-verifies the file"
                ),
            });
        }
        let seq = state.last_seq.checked_add(1).ok_or_else(|| Error::Audit {
            path: self.error_path(),
            message: "seq overflow".to_owned(),
        })?;
        let record = AuditRecord::new(seq, time, &self.actor, entry, state.head.clone());
        let line = canonical_line(&record)?;
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');

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
                    // The record is durable in the file; stdout is a convenience copy.
                    tracing::warn!(%error, seq, "could not echo audit record to stdout");
                }
            }
            _ => echo(&bytes).map_err(|source| Error::WriteFile {
                path: PathBuf::from(STDOUT),
                source,
            })?,
        }
        state.last_seq = seq;
        state.head = line_hash(line.as_bytes());
        Ok(record)
    }
}

struct AppendFailure {
    error: std::io::Error,
    /// Why the file can no longer be appended to, when rolling back failed too.
    unusable: Option<String>,
}

/// Writes `bytes` at the end of `file` and syncs; on failure truncates back to the old length.
fn append_durably(mut file: &File, bytes: &[u8]) -> Result<(), AppendFailure> {
    let len_before = file.metadata().map_err(|error| AppendFailure {
        error,
        unusable: None,
    })?;
    let len_before = len_before.len();
    let written = file.write_all(bytes).and_then(|()| file.sync_data());
    let Err(error) = written else {
        return Ok(());
    };
    let rollback = file.set_len(len_before).and_then(|()| file.sync_data());
    let unusable = rollback.err().map(|rollback_error| {
        format!(
            "an append failed ({error}) and truncating back to {len_before} bytes failed too \
             ({rollback_error}), so the file may end in a torn line"
        )
    });
    if let Some(reason) = &unusable {
        tracing::error!(%reason, "audit trail is unusable");
    }
    Err(AppendFailure { error, unusable })
}

/// One write of the whole line under the stdout lock, so lines never interleave.
fn echo(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

fn open_file(path: &Path) -> Result<State, Error> {
    let audit_error = |message: String| Error::Audit {
        path: path.to_owned(),
        message,
    };
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        std::fs::create_dir_all(parent).map_err(|source| Error::WriteFile {
            path: parent.to_owned(),
            source,
        })?;
    }
    let existed = path.exists();

    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o640);
    }
    let mut file = options.open(path).map_err(|source| Error::WriteFile {
        path: path.to_owned(),
        source,
    })?;

    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(audit_error(
                "another process holds this trail's lock; only one Sovra process may append \
                 to a trail file (each replica needs its own file)"
                    .to_owned(),
            ));
        }
        Err(TryLockError::Error(error)) => {
            // Some filesystems do not support locks; single writer then rests on deployment.
            tracing::warn!(path = %path.display(), %error, "could not lock the audit trail");
        }
    }

    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|source| Error::ReadFile {
            path: path.to_owned(),
            source,
        })?;
    let scanned = scan(&bytes);
    if let Some(b) = scanned.report.first_break {
        return Err(audit_error(format!(
            "chain is broken at line {}: {}. Refusing to extend a tampered or torn trail: keep \
             the file as evidence, investigate, then move it aside so Sovra starts a new trail",
            b.line, b.problem
        )));
    }

    #[cfg(unix)]
    if !existed && let Some(parent) = parent {
        // Make the new file's directory entry durable too.
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(|source| Error::WriteFile {
                path: parent.to_owned(),
                source,
            })?;
    }
    #[cfg(not(unix))]
    let _ = existed;

    Ok(State {
        file: Some(file),
        last_seq: scanned.last_seq,
        head: scanned.head,
        unusable: None,
    })
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
