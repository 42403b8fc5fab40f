//! An audit trail's text as `sovra audit verify` checks it: any bytes must give a report,
//! never a panic. The input is checked alone and after two valid records, so the checks of
//! later lines (seq, prev) are reached too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sovra::audit::{AuditRecord, GENESIS_HASH, canonical_line, line_hash, verify_lines};
use std::sync::LazyLock;

const RECORD: &str = r#"{"seq":1,"time":"2026-11-23T18:00:00.123456Z","actor":"sovra/fuzz","action":"Placed","object":{"kind":"SovereignWorkload","namespace":"ministry-fin","name":"tax","uid":null},"class":"confidential","cluster":"rijkscloud-nl","pools":["gov-confidential"],"reasons":[],"prev":""}"#;

/// Two valid, chained records, each with its newline.
static VALID: LazyLock<String> = LazyLock::new(|| {
    let Ok(mut record) = serde_json::from_str::<AuditRecord>(RECORD) else {
        return String::new();
    };
    let mut prev = GENESIS_HASH.to_owned();
    let mut text = String::new();
    for seq in 1..=2 {
        record.seq = seq;
        record.prev = prev;
        let Ok(line) = canonical_line(&record) else {
            return String::new();
        };
        prev = line_hash(line.as_bytes());
        text.push_str(&line);
        text.push('\n');
    }
    text
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let alone = verify_lines(&text);
    let _ = alone.to_string();
    if alone.is_intact() {
        assert_eq!(alone.records, text.lines().count(), "{text:?}");
    }
    let after = verify_lines(&format!("{}{text}", *VALID));
    assert!(after.records >= 2 || VALID.is_empty(), "{after}");
});
