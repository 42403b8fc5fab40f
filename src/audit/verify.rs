//! Checking a trail: every line must be a canonical record, `seq` must count 1, 2, 3, ... and
//! every `prev` must be the SHA-256 of the line before it. Pure except for [`verify_file`].
//!
//! The first line that fails any check is reported, with the reason. For an edited line in the
//! middle of a trail that is the line *after* it ("prev hash does not match line 4"), unless the
//! edit also left the line in a form Sovra never writes, which is caught on the line itself.
//! A deleted or reordered line shows as a gap in `seq`; an inserted line as a repeated `seq` or
//! a `prev` that does not match. The last line has no successor to vouch for it, so its
//! integrity rests on the head hash: record `head: <sha256>` outside the cluster and compare.

use super::checkpoint::SignedCheckpoint;
use super::checkpoint_line::check_checkpoint_line;
use super::record::{AuditAction, AuditRecord, GENESIS_HASH, canonical_line, line_hash};
use crate::Error;
use std::fmt;
use std::path::Path;

/// Where and why the chain first fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainBreak {
    /// 1-based line number in the file.
    pub line: usize,
    pub problem: String,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

/// Outcome of verifying a trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records that verified: all of them when intact, those before the break otherwise.
    pub records: usize,
    /// The first line that fails, if any.
    pub first_break: Option<ChainBreak>,
    /// SHA-256 of the last line that verified (`None` when no line did). For an intact trail
    /// this is the anchor auditors record externally: it changes if any line is edited,
    /// including the last one, which no later `prev` protects.
    pub head: Option<String>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

impl fmt::Display for VerifyReport {
    /// `OK: 120 records, chain intact` followed by `head: <sha256>` on its own line (when
    /// there is a record), or `BROKEN at line 37: <problem>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.first_break {
            None => {
                write!(f, "OK: {} records, chain intact", self.records)?;
                if let Some(head) = &self.head {
                    write!(f, "\nhead: {head}")?;
                }
                Ok(())
            }
            Some(b) => write!(f, "BROKEN at line {}: {}", b.line, b.problem),
        }
    }
}

/// Verifies the trail file at `path`. `Err` only when the file cannot be read; a broken chain
/// is an `Ok` report with `first_break` set.
pub fn verify_file(path: &Path) -> Result<VerifyReport, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    Ok(scan(&bytes).report)
}

/// Verifies trail text (the whole file's contents).
pub fn verify_lines(text: &str) -> VerifyReport {
    scan(text.as_bytes()).report
}

/// A verification plus what a writer needs to continue the chain.
pub(crate) struct Scan {
    pub report: VerifyReport,
    /// `seq` of the last verified record (0 when none).
    pub last_seq: u64,
    /// Hash of the last verified line ([`GENESIS_HASH`] when none): the next line's `prev`.
    pub head: String,
    /// The `Checkpoint` lines that verified, with their line numbers, in order. Their notes
    /// are well formed and commit to the lines before them; signatures are not checked here.
    pub checkpoints: Vec<(usize, SignedCheckpoint)>,
    /// Verified records after the last checkpoint (all of them when there is none).
    pub since_checkpoint: u64,
}

impl Scan {
    /// The trail's origin: that of its checkpoints.
    pub fn origin(&self) -> Option<&str> {
        self.checkpoints
            .first()
            .map(|(_, c)| c.checkpoint.origin.as_str())
    }
}

pub(crate) fn scan(bytes: &[u8]) -> Scan {
    let mut last_seq = 0;
    let mut head = GENESIS_HASH.to_owned();
    let mut records = 0;
    let mut first_break = None;
    let mut checkpoints: Vec<(usize, SignedCheckpoint)> = Vec::new();
    let mut since_checkpoint = 0;

    let mut pieces = bytes.split(|b| *b == b'\n').enumerate().peekable();
    while let Some((index, line)) = pieces.next() {
        let is_last_piece = pieces.peek().is_none();
        if is_last_piece && line.is_empty() {
            // Text after the final newline: nothing, as it should be.
            break;
        }
        let number = index + 1;
        let origin = checkpoints
            .first()
            .map(|(_, c)| c.checkpoint.origin.as_str());
        match check_line(line, !is_last_piece, number, last_seq, &head, origin) {
            Ok((seq, checkpoint)) => {
                records += 1;
                last_seq = seq;
                head = line_hash(line);
                match checkpoint {
                    Some(checkpoint) => {
                        checkpoints.push((number, checkpoint));
                        since_checkpoint = 0;
                    }
                    None => since_checkpoint += 1,
                }
            }
            Err(problem) => {
                first_break = Some(ChainBreak {
                    line: number,
                    problem,
                });
                break;
            }
        }
    }

    let report = VerifyReport {
        records,
        first_break,
        head: (records > 0).then(|| head.clone()),
    };
    Scan {
        report,
        last_seq,
        head,
        checkpoints,
        since_checkpoint,
    }
}

/// Checks one line against the chain so far (and a `Checkpoint` line against the lines before
/// it and the trail's `origin`); returns its `seq`, and its checkpoint.
fn check_line(
    line: &[u8],
    terminated: bool,
    number: usize,
    last_seq: u64,
    head: &str,
    origin: Option<&str>,
) -> Result<(u64, Option<SignedCheckpoint>), String> {
    if !terminated {
        return Err(
            "last line has no trailing newline: a torn write (the writer stopped \
                    mid-append, e.g. a crash) or a truncated file"
                .to_owned(),
        );
    }
    if line.is_empty() {
        return Err("empty line".to_owned());
    }
    let text = std::str::from_utf8(line).map_err(|_| "not valid UTF-8".to_owned())?;
    let record: AuditRecord = serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message);
        if e.is_data() {
            format!("not an audit record: {message} (column {})", e.column())
        } else {
            format!("not valid JSON: {message} (column {})", e.column())
        }
    })?;
    if canonical_line(&record).ok().as_deref() != Some(text) {
        return Err("line was edited: its bytes differ from the form Sovra writes".to_owned());
    }

    let expected = last_seq.saturating_add(1);
    if record.seq != expected {
        return Err(if number == 1 {
            format!(
                "seq {} on the first line, expected 1 (the start of the trail was removed)",
                record.seq
            )
        } else if record.seq > expected {
            format!(
                "seq {} follows {last_seq} (a line was deleted or reordered)",
                record.seq
            )
        } else {
            format!(
                "seq {} follows {last_seq} (a line was inserted, duplicated or reordered)",
                record.seq
            )
        });
    }

    // Before `prev`: a rewrite of the lines before a checkpoint is reported as contradicting
    // the checkpoint, whether or not the rewriter also recomputed this line's `prev`.
    let checkpoint = match (record.action, &record.checkpoint) {
        (AuditAction::Checkpoint, _) => Some(check_checkpoint_line(&record, number, head, origin)?),
        (_, None) => None,
        (action, Some(_)) => {
            return Err(format!(
                "a {action} line carries a checkpoint; only Checkpoint lines do"
            ));
        }
    };

    if record.prev != head {
        return Err(if number == 1 {
            "prev is not the genesis hash (the start of the trail was removed or replaced)"
                .to_owned()
        } else {
            let before = number - 1;
            format!(
                "prev hash does not match line {before} (line {before} was edited, or this \
                 line's prev was)"
            )
        });
    }
    Ok((record.seq, checkpoint))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::{AuditAction, AuditEntry, ObjectRef};

    fn trail(n: u64) -> Vec<String> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let entry = AuditEntry::new(
                    AuditAction::Placed,
                    ObjectRef {
                        kind: "SovereignWorkload".into(),
                        namespace: Some("ns".into()),
                        name: format!("w{seq}"),
                        uid: None,
                    },
                );
                let time = jiff::Timestamp::from_second(1_800_000_000 + seq as i64).unwrap();
                let record = AuditRecord::new(seq, time, "sovra/test", entry, prev.clone());
                let line = canonical_line(&record).unwrap();
                prev = line_hash(line.as_bytes());
                line
            })
            .collect()
    }

    fn text(lines: &[String]) -> String {
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    #[test]
    fn empty_trail_is_intact_with_no_head() {
        let report = verify_lines("");
        assert!(report.is_intact());
        assert_eq!(report.records, 0);
        assert_eq!(report.head, None);
        assert_eq!(report.to_string(), "OK: 0 records, chain intact");
    }

    #[test]
    fn intact_trail_reports_count_and_head_of_last_line() {
        let lines = trail(3);
        let report = verify_lines(&text(&lines));
        assert_eq!(report.records, 3);
        let head = line_hash(lines[2].as_bytes());
        assert_eq!(
            report.to_string(),
            format!("OK: 3 records, chain intact\nhead: {head}")
        );
    }

    #[test]
    fn reformatted_line_is_caught_on_the_line_itself() {
        let mut lines = trail(3);
        lines[1] = lines[1].replace("\"seq\":2,", "\"seq\": 2,");
        let report = verify_lines(&text(&lines));
        let b = report.first_break.unwrap();
        assert_eq!(b.line, 2);
        assert!(b.problem.starts_with("line was edited"), "{}", b.problem);
        assert_eq!(report.records, 1);
    }

    #[test]
    fn first_line_must_start_from_genesis() {
        let lines = trail(3);
        let report = verify_lines(&text(&lines[1..]));
        let b = report.first_break.unwrap();
        assert_eq!(b.line, 1);
        assert!(
            b.problem.contains("seq 2 on the first line"),
            "{}",
            b.problem
        );
    }

    #[test]
    fn blank_line_in_the_middle_breaks_the_chain() {
        let lines = trail(2);
        let report = verify_lines(&format!("{}\n\n{}\n", lines[0], lines[1]));
        assert_eq!(
            report.first_break,
            Some(ChainBreak {
                line: 2,
                problem: "empty line".into()
            })
        );
    }

    #[test]
    fn json_that_is_not_a_record_is_named_as_such() {
        let report = verify_lines("{\"seq\":1}\n");
        let b = report.first_break.unwrap();
        assert!(
            b.problem.starts_with("not an audit record"),
            "{}",
            b.problem
        );
        assert!(!b.problem.contains("at line"), "{}", b.problem);
    }

    #[test]
    fn broken_report_displays_line_and_problem() {
        let report = verify_lines("nonsense\n");
        assert!(
            report
                .to_string()
                .starts_with("BROKEN at line 1: not valid JSON"),
            "{report}"
        );
    }
}
