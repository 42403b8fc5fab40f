//! A readable view of a trail for people: filtered, aligned, and always ending with whether
//! the chain verified, so nobody reads a tampered trail without being told.

use super::checkpoint::SignedCheckpoint;
use super::record::{AuditAction, AuditRecord, format_time};
use super::verify::{VerifyReport, scan};
use crate::Error;
use std::path::Path;

/// Which records [`show_file`] lists. The default lists all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShowFilter {
    /// `namespace/name`, or `name` in any namespace.
    pub workload: Option<String>,
    /// Sensitivity class name.
    pub class: Option<String>,
    pub action: Option<AuditAction>,
}

impl ShowFilter {
    pub fn matches(&self, record: &AuditRecord) -> bool {
        let workload_ok = match self.workload.as_deref() {
            None => true,
            Some(wanted) => match wanted.split_once('/') {
                Some((ns, name)) => {
                    record.object.namespace.as_deref() == Some(ns) && record.object.name == name
                }
                None => record.object.name == wanted,
            },
        };
        let class_ok = self.class.is_none() || record.class == self.class;
        let action_ok = self.action.is_none_or(|a| a == record.action);
        workload_ok && class_ok && action_ok
    }
}

const HEADERS: [&str; 8] = [
    "SEQ", "TIME", "ACTION", "OBJECT", "CLASS", "CLUSTER", "POOLS", "REASONS",
];

/// Reads the trail at `path` and renders the records `filter` selects as an aligned table
/// (`SEQ TIME ACTION OBJECT CLASS CLUSTER POOLS REASONS`; reasons joined with `"; "`, never
/// cut), then how many were shown, then a final line saying whether the chain verified.
/// Lines that are not records are skipped here; the verification line reports the first.
pub fn show_file(path: &Path, filter: &ShowFilter) -> Result<String, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let report = scan(&bytes).report;
    let records: Vec<AuditRecord> = bytes
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice(line).ok())
        .collect();
    let shown: Vec<&AuditRecord> = records.iter().filter(|r| filter.matches(r)).collect();
    Ok(render(&shown, records.len(), &report))
}

fn render(shown: &[&AuditRecord], total: usize, report: &VerifyReport) -> String {
    let rows: Vec<[String; 8]> = shown.iter().map(|r| row(r)).collect();
    let mut widths = HEADERS.map(|h| h.chars().count());
    for cells in &rows {
        for (width, cell) in widths.iter_mut().zip(cells) {
            *width = (*width).max(cell.chars().count());
        }
    }

    let mut out = String::new();
    push_row(&mut out, &HEADERS.map(str::to_owned), &widths);
    for cells in &rows {
        push_row(&mut out, cells, &widths);
    }
    out.push_str(&format!("({} of {total} records shown)\n", rows.len()));
    out.push_str(&verification_line(report));
    out.push('\n');
    if shown.iter().any(|r| r.action == AuditAction::Checkpoint) {
        out.push_str(
            "checkpoint signatures are not checked here: sovra audit verify FILE --key PUB\n",
        );
    }
    out
}

fn row(r: &AuditRecord) -> [String; 8] {
    let object = if r.object.kind == "SovereignWorkload" {
        r.object.qualified_name()
    } else {
        format!("{}/{}", r.object.kind, r.object.qualified_name())
    };
    [
        r.seq.to_string(),
        format_time(&r.time),
        r.action.to_string(),
        object,
        or_dash(r.class.as_deref().unwrap_or_default()),
        or_dash(r.cluster.as_deref().unwrap_or_default()),
        or_dash(&r.pools.join(",")),
        or_dash(&reasons(r)),
    ]
}

/// A checkpoint line shows what it commits to; other lines their reasons.
fn reasons(r: &AuditRecord) -> String {
    match (r.action, &r.checkpoint) {
        (AuditAction::Checkpoint, Some(note)) => match SignedCheckpoint::parse(note) {
            Ok(signed) => format!("signed checkpoint: {}", signed.checkpoint),
            Err(e) => format!("malformed checkpoint: {e}"),
        },
        _ => r.reasons.join("; "),
    }
}

fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

/// Pads every column but the last, so long reasons are never followed by spaces.
fn push_row(out: &mut String, cells: &[String; 8], widths: &[usize; 8]) {
    let last = cells.len().saturating_sub(1);
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        out.push_str(cell);
        if i < last {
            let pad = width.saturating_sub(cell.chars().count()) + 2;
            out.extend(std::iter::repeat_n(' ', pad));
        }
    }
    out.push('\n');
}

fn verification_line(report: &VerifyReport) -> String {
    match (&report.first_break, &report.head) {
        (None, Some(head)) => format!(
            "chain verified: {} records, intact; head: {head}",
            report.records
        ),
        (None, None) => "chain verified: 0 records".to_owned(),
        (Some(b), _) => format!(
            "chain NOT verified: BROKEN at line {}: {}; records from line {} on cannot be \
             trusted",
            b.line, b.problem, b.line
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::{AuditEntry, GENESIS_HASH, ObjectRef};

    fn record(seq: u64, ns: &str, name: &str, class: &str) -> AuditRecord {
        let mut entry = AuditEntry::new(
            AuditAction::Placed,
            ObjectRef {
                kind: "SovereignWorkload".into(),
                namespace: Some(ns.into()),
                name: name.into(),
                uid: None,
            },
        );
        entry.class = Some(class.into());
        AuditRecord::new(
            seq,
            jiff::Timestamp::UNIX_EPOCH,
            "sovra/t",
            entry,
            GENESIS_HASH.into(),
        )
    }

    #[test]
    fn workload_filter_accepts_namespace_slash_name_or_bare_name() {
        let r = record(1, "ministry-fin", "tax", "secret");
        let by = |w: &str| ShowFilter {
            workload: Some(w.into()),
            ..ShowFilter::default()
        };
        assert!(by("ministry-fin/tax").matches(&r));
        assert!(by("tax").matches(&r));
        assert!(!by("other/tax").matches(&r));
        assert!(!by("ministry-fin/ta").matches(&r));
        assert!(ShowFilter::default().matches(&r));
    }

    #[test]
    fn table_columns_align_and_empty_cells_show_a_dash() {
        let a = record(1, "ns", "a", "public");
        let mut b = record(22, "longer-namespace", "b", "secret");
        b.reasons = vec!["one".into(), "two".into()];
        let report = VerifyReport {
            records: 22,
            first_break: None,
            head: Some("ab".into()),
        };
        let text = render(&[&a, &b], 22, &report);
        let lines: Vec<&str> = text.lines().collect();
        let col = |l: &str| l.find("ACTION").or_else(|| l.find("Placed")).unwrap();
        assert_eq!(col(lines[0]), col(lines[1]));
        assert_eq!(col(lines[1]), col(lines[2]));
        assert!(lines[1].ends_with("  -"), "{}", lines[1]);
        assert!(lines[2].ends_with("one; two"), "{}", lines[2]);
        assert_eq!(lines[3], "(2 of 22 records shown)");
        assert_eq!(lines[4], "chain verified: 22 records, intact; head: ab");
    }
}
