//! The trail's file: opening (create, lock, verify), durable appends and the stdout echo.

use crate::Error;
use crate::audit::verify::{Scan, scan};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::Path;

pub(super) struct AppendFailure {
    pub error: std::io::Error,
    /// Why the file can no longer be appended to, when rolling back failed too.
    pub unusable: Option<String>,
}

/// Writes `bytes` at the end of `file` and syncs; on failure truncates back to the old length.
pub(super) fn append_durably(mut file: &File, bytes: &[u8]) -> Result<(), AppendFailure> {
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
pub(super) fn echo(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

/// Opens (creating) and locks the trail file and verifies its contents: the file, and the scan
/// of it, for continuing the chain.
pub(super) fn open_file(path: &Path) -> Result<(File, Scan), Error> {
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
    if let Some(b) = &scanned.report.first_break {
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

    Ok((file, scanned))
}
