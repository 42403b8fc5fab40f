//! Every message quotes the offending value; quoting is shared so all messages quote alike and
//! none grows with the size of the input.

use serde_json::Value;

/// Values as the API server quotes them, cut short so a huge value does not make a huge error.
pub(super) fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => shown_str(text),
        other => truncated(other.to_string()),
    }
}

pub(super) fn shown_str(text: &str) -> String {
    truncated(Value::from(text).to_string())
}

fn truncated(text: String) -> String {
    const MAX: usize = 120;
    if text.chars().count() <= MAX {
        return text;
    }
    let cut: String = text.chars().take(MAX).collect();
    format!("{cut}...")
}
