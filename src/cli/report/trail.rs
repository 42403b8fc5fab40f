//! Reading a trail for a report, leniently: the chain is judged by `audit::verify_file`; here
//! every line that can be read is taken, so a line of an action this build does not know (a
//! newer Sovra's) or an unreadable line is counted and skipped instead of ending the report.

use crate::audit::{AuditAction, ObjectRef};
use jiff::Timestamp;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A time as the trail writes it (UTC, `Z`, six fractional digits), for the report's JSON.
pub use crate::audit::format_time;

/// One decision read from the trail.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// 1-based line number in the file.
    pub line: usize,
    pub seq: u64,
    pub time: Timestamp,
    pub action: AuditAction,
    pub object: ObjectRef,
    pub class: Option<String>,
    /// As written: one cluster, or several joined with `,` for a spread placement.
    pub cluster: Option<String>,
    pub pools: Vec<String>,
    pub reasons: Vec<String>,
}

impl Entry {
    /// The clusters the record names (a spread placement names several, comma-joined).
    pub fn clusters(&self) -> Vec<String> {
        self.cluster
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// `namespace/name` of the object, with its kind when it is not a SovereignWorkload.
    pub fn object_name(&self) -> String {
        if self.is_workload() {
            self.object.qualified_name()
        } else {
            format!("{}/{}", self.object.kind, self.object.qualified_name())
        }
    }

    pub fn is_workload(&self) -> bool {
        self.object.kind == "SovereignWorkload"
    }
}

/// A checkpoint line, kept whole: its fields belong to the signed-checkpoint format.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointLine {
    pub line: usize,
    pub seq: Option<u64>,
    pub time: Option<Timestamp>,
    pub value: serde_json::Value,
}

/// Everything readable in a trail.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrailRead {
    /// Non-empty lines in the file.
    pub lines: usize,
    pub entries: Vec<Entry>,
    pub checkpoints: Vec<CheckpointLine>,
    /// Lines with an action this build does not know, by action name.
    pub unknown_actions: BTreeMap<String, usize>,
    /// Lines that are not JSON objects with the fields of a record.
    pub unreadable: usize,
}

/// The fields every record has; `action` as text so an unknown one can be counted.
#[derive(Deserialize)]
struct Line {
    seq: u64,
    time: String,
    action: String,
    object: ObjectRef,
    #[serde(default)]
    class: Option<String>,
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default)]
    pools: Vec<String>,
    #[serde(default)]
    reasons: Vec<String>,
}

/// Reads the trail's bytes line by line. Never fails: what cannot be read is counted.
pub fn read(bytes: &[u8]) -> TrailRead {
    let mut read = TrailRead::default();
    for (index, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        read.lines += 1;
        let number = index + 1;
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(raw) else {
            read.unreadable += 1;
            continue;
        };
        if value.get("action").and_then(|a| a.as_str()) == Some(AuditAction::Checkpoint.as_str()) {
            read.checkpoints.push(CheckpointLine {
                line: number,
                seq: value.get("seq").and_then(serde_json::Value::as_u64),
                time: value
                    .get("time")
                    .and_then(|t| t.as_str())
                    .and_then(|t| t.parse().ok()),
                value,
            });
            continue;
        }
        let Ok(line) = serde_json::from_value::<Line>(value) else {
            read.unreadable += 1;
            continue;
        };
        let Ok(time) = line.time.parse::<Timestamp>() else {
            read.unreadable += 1;
            continue;
        };
        let Some(action) = AuditAction::ALL
            .into_iter()
            .find(|a| a.as_str() == line.action)
        else {
            *read.unknown_actions.entry(line.action).or_default() += 1;
            continue;
        };
        read.entries.push(Entry {
            line: number,
            seq: line.seq,
            time,
            action,
            object: line.object,
            class: line.class,
            cluster: line.cluster,
            pools: line.pools,
            reasons: line.reasons,
        });
    }
    read
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLACED: &str = r#"{"seq":1,"time":"2026-03-02T09:00:00.000000Z","actor":"sovra/sovra-0","action":"Placed","object":{"kind":"SovereignWorkload","namespace":"ministry-fin","name":"tax","uid":"u1"},"class":"confidential","cluster":"rijkscloud-nl,stackit-de","pools":["rijkscloud-nl/gov-confidential"],"reasons":[],"prev":"00"}"#;

    #[test]
    fn a_record_is_read_with_its_clusters_split() {
        let read = read(format!("{PLACED}\n").as_bytes());
        assert_eq!(read.lines, 1);
        let entry = &read.entries[0];
        assert_eq!(entry.action, AuditAction::Placed);
        assert_eq!(entry.clusters(), ["rijkscloud-nl", "stackit-de"]);
        assert_eq!(entry.object_name(), "ministry-fin/tax");
        assert_eq!(entry.line, 1);
    }

    #[test]
    fn unknown_actions_and_unreadable_lines_are_counted_not_fatal() {
        let future = PLACED.replace("\"Placed\"", "\"Quarantined\"");
        let text = format!("{future}\nnot json\n{{\"seq\":2}}\n\n{PLACED}\n{future}\n");
        let read = read(text.as_bytes());
        assert_eq!(read.lines, 5);
        assert_eq!(read.entries.len(), 1);
        assert_eq!(read.entries[0].line, 5);
        assert_eq!(read.unreadable, 2);
        assert_eq!(read.unknown_actions.get("Quarantined"), Some(&2));
    }

    #[test]
    fn a_checkpoint_line_is_kept_whole_and_not_counted_as_unknown() {
        let line = r#"{"seq":7,"time":"2026-03-04T00:00:00.000000Z","action":"Checkpoint","note":"sovra.example/trail\n7\nabc\n"}"#;
        let read = read(format!("{PLACED}\n{line}\n").as_bytes());
        assert!(read.unknown_actions.is_empty());
        assert_eq!(read.checkpoints.len(), 1);
        let checkpoint = &read.checkpoints[0];
        assert_eq!((checkpoint.line, checkpoint.seq), (2, Some(7)));
        assert!(checkpoint.time.is_some());
        assert!(checkpoint.value.get("note").is_some());
    }
}
