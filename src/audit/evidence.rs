//! What a trail proves together with its signed checkpoints. Pure except for
//! [`verify_evidence_file`].
//!
//! - A `Checkpoint` line must commit to exactly the lines before it (tree size `seq - 1`, root
//!   hash = the hash of the line before it) and share the trail's origin. This is checked on
//!   every scan, with or without a key, so a rewrite of the lines before a checkpoint is
//!   reported as contradicting that checkpoint.
//! - With a key, every checkpoint's signature must verify: a checkpoint whose note was changed
//!   to fit a rewrite, or one made without the key, fails.
//! - Each external checkpoint (a copy kept outside the pod: the ConfigMap, a witness, a file)
//!   must be a prefix of the file: the file has at least its tree size of lines and line N
//!   hashes to its root hash. This catches what the file alone cannot: a tail rewritten, or
//!   cut off, together with the checkpoints that covered it.

use super::checkpoint::SignedCheckpoint;
use super::record::line_hash;
use super::signing_key::TrustedKey;
use super::verify::{VerifyReport, scan};
use crate::Error;
use std::fmt;
use std::path::Path;

/// A checkpoint kept outside the trail, and where it came from (for messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalCheckpoint {
    /// e.g. `file cp.txt` or `ConfigMap sovra-system/sovra-audit-checkpoint`.
    pub source: String,
    /// The signed note.
    pub note: String,
    /// One of a collection of several trails' checkpoints (the ConfigMap holds every
    /// replica's): one of another origin is skipped, not a failure.
    pub of_many: bool,
}

/// The outcome of [`verify_evidence`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvidenceReport {
    pub chain: VerifyReport,
    /// The trail's origin (its checkpoints', else the key's name or the first external
    /// checkpoint's).
    pub origin: Option<String>,
    /// What was checked and held, one finding a line.
    pub findings: Vec<String>,
    /// What failed besides the chain, one a line, each naming its checkpoint.
    pub problems: Vec<String>,
}

impl EvidenceReport {
    pub fn is_ok(&self) -> bool {
        self.chain.is_intact() && self.problems.is_empty()
    }
}

impl fmt::Display for EvidenceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.chain)?;
        if let Some(origin) = &self.origin {
            writeln!(f, "origin: {origin}")?;
        }
        for finding in &self.findings {
            writeln!(f, "{finding}")?;
        }
        for problem in &self.problems {
            writeln!(f, "FAILED: {problem}")?;
        }
        if self.is_ok() {
            write!(f, "VERIFIED")
        } else {
            let count = self.problems.len() + usize::from(!self.chain.is_intact());
            write!(f, "NOT VERIFIED: {count} problem(s)")
        }
    }
}

/// Verifies the trail file at `path` with its checkpoints; see [`verify_evidence`].
pub fn verify_evidence_file(
    path: &Path,
    key: Option<&TrustedKey>,
    external: &[ExternalCheckpoint],
) -> Result<EvidenceReport, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    Ok(verify_evidence(&bytes, key, external))
}

/// Verifies a trail's chain, the signatures of its checkpoints when `key` is given (without
/// one they are reported as not verified, which is not a failure), and that every `external`
/// checkpoint is a prefix of it.
pub fn verify_evidence(
    bytes: &[u8],
    key: Option<&TrustedKey>,
    external: &[ExternalCheckpoint],
) -> EvidenceReport {
    let scanned = scan(bytes);
    let mut findings = Vec::new();
    let mut problems = Vec::new();
    let parsed: Vec<Result<SignedCheckpoint, String>> = external
        .iter()
        .map(|e| SignedCheckpoint::parse(&e.note))
        .collect();
    let origin = scanned
        .origin()
        .map(str::to_owned)
        .or_else(|| match key {
            Some(TrustedKey::Verifier(v)) => Some(v.name().to_owned()),
            _ => None,
        })
        .or_else(|| {
            // A checkpoint given on its own names the trail before one of a collection does.
            let mut given: Vec<(&ExternalCheckpoint, &SignedCheckpoint)> = external
                .iter()
                .zip(&parsed)
                .filter_map(|(e, p)| Some((e, p.as_ref().ok()?)))
                .collect();
            given.sort_by_key(|(e, _)| e.of_many);
            given.first().map(|(_, c)| c.checkpoint.origin.clone())
        });

    let signature = |signed: &SignedCheckpoint| -> Result<&'static str, String> {
        let Some(key) = key else {
            return Ok("signature not verified (no --key)");
        };
        let verifier = key.for_origin(&signed.checkpoint.origin)?;
        signed.verify(&verifier).map(|()| "signature verified")
    };

    let mut verified = 0;
    for (line, signed) in &scanned.checkpoints {
        match signature(signed) {
            Ok(_) => verified += 1,
            Err(e) => problems.push(format!(
                "checkpoint at line {line} (tree size {}): {e}",
                signed.checkpoint.tree_size
            )),
        }
    }
    if let Some((line, last)) = scanned.checkpoints.last() {
        let how = match key {
            Some(key) => format!("{verified} signed by {key}"),
            None => "signatures not verified (no --key)".to_owned(),
        };
        findings.push(format!(
            "checkpoints in the file: {} ({how}); latest at line {line}: {}",
            scanned.checkpoints.len(),
            last.checkpoint
        ));
    } else {
        findings.push("checkpoints in the file: none".to_owned());
    }

    let hashes = terminated_line_hashes(bytes);
    for (index, (given, parsed)) in external.iter().zip(&parsed).enumerate() {
        let number = index + 1;
        let signed = match parsed {
            Ok(signed) => signed,
            Err(e) => {
                problems.push(format!(
                    "checkpoint {number} (from {}) is not a signed checkpoint: {e}",
                    given.source
                ));
                continue;
            }
        };
        let c = &signed.checkpoint;
        let label = format!(
            "checkpoint {number} (tree size {}, from {})",
            c.tree_size, given.source
        );
        if let Some(origin) = &origin
            && *origin != c.origin
        {
            if given.of_many {
                findings.push(format!(
                    "{label}: of origin {}, another trail: skipped",
                    c.origin
                ));
                continue;
            }
            problems.push(format!(
                "{label} is for origin {}, not this trail's origin {origin}",
                c.origin
            ));
            continue;
        }
        let signed_by = match signature(signed) {
            Ok(how) => how,
            Err(e) => {
                problems.push(format!("{label}: {e}"));
                continue;
            }
        };
        match prefix_problem(c.tree_size, &c.head(), &hashes) {
            Some(problem) => problems.push(format!("{label} {problem}")),
            None => findings.push(format!("{label}: {signed_by}; a prefix of this file")),
        }
    }

    EvidenceReport {
        chain: scanned.report,
        origin,
        findings,
        problems,
    }
}

/// Why a checkpoint of `size` lines with head `head` is not a prefix of a file whose
/// newline-terminated lines hash to `hashes`; `None` when it is.
fn prefix_problem(size: u64, head: &str, hashes: &[String]) -> Option<String> {
    let Some(index) = usize::try_from(size).ok().and_then(|s| s.checked_sub(1)) else {
        return None; // tree size 0: every file starts with no lines
    };
    match hashes.get(index) {
        None => Some(format!(
            "commits to {size} lines, but the file has only {}: lines were removed (the file \
             was truncated, or its tail rewritten shorter)",
            hashes.len()
        )),
        Some(actual) if actual != head => Some(format!(
            "commits to head {head} but line {size} hashes to {actual}: the trail was rewritten \
             at or before line {size} after this checkpoint was signed"
        )),
        Some(_) => None,
    }
}

/// SHA-256 of every line that ends in a newline, in order.
fn terminated_line_hashes(bytes: &[u8]) -> Vec<String> {
    let mut pieces: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    pieces.pop(); // after the last newline: empty, or a torn line
    pieces.into_iter().map(line_hash).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_needs_the_line_and_its_hash() {
        let hashes = vec![line_hash(b"a"), line_hash(b"b")];
        assert_eq!(prefix_problem(0, "x", &hashes), None);
        assert_eq!(prefix_problem(2, &line_hash(b"b"), &hashes), None);
        let truncated = prefix_problem(3, "x", &hashes).unwrap();
        assert!(truncated.contains("the file has only 2"), "{truncated}");
        let rewritten = prefix_problem(1, &line_hash(b"z"), &hashes).unwrap();
        assert!(
            rewritten.contains(&format!("line 1 hashes to {}", line_hash(b"a"))),
            "{rewritten}"
        );
    }

    #[test]
    fn a_torn_last_line_is_not_a_line_of_the_file() {
        assert_eq!(terminated_line_hashes(b"a\nb"), vec![line_hash(b"a")]);
        assert_eq!(terminated_line_hashes(b"a\n").len(), 1);
        assert!(terminated_line_hashes(b"").is_empty());
    }
}
