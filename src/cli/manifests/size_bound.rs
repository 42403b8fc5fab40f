//! Input is bounded before it is read: `plan` reads untrusted files (in CI, from pull
//! requests), and a huge one, or a device such as `/dev/zero`, must be refused at once rather
//! than read into memory.

use crate::Error;
use std::io::Read as _;
use std::path::Path;

/// The largest file `plan` reads (a Kubernetes object is at most 1.5 MiB in etcd).
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// The most `plan` reads from all files together.
pub const MAX_TOTAL_BYTES: u64 = 64 * 1024 * 1024;

/// The file's text, refused when it is larger than `limit` bytes or not UTF-8.
pub(super) fn read_bounded(path: &Path, limit: u64) -> Result<String, Error> {
    let failed = |source| Error::ReadFile {
        path: path.to_owned(),
        source,
    };
    let too_large = || {
        failed(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "larger than {} MiB, the most sovra plan reads ({} MiB from one file, {} MiB in all)",
                limit / (1024 * 1024),
                MAX_FILE_BYTES / (1024 * 1024),
                MAX_TOTAL_BYTES / (1024 * 1024)
            ),
        ))
    };
    let file = std::fs::File::open(path).map_err(failed)?;
    if file
        .metadata()
        .is_ok_and(|m| m.is_file() && m.len() > limit)
    {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|_| {
        failed(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8 text",
        ))
    })
}
