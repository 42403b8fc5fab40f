//! How input appears in messages: text from the input is cut short and a value is named by its
//! shape, so an error stays readable however large or odd the input.

use serde_json::Value;

/// At most 100 characters of a name taken from the input, for messages.
pub(super) fn shortened(text: &str) -> String {
    if text.chars().count() <= 100 {
        text.to_owned()
    } else {
        format!("{}...", text.chars().take(100).collect::<String>())
    }
}

pub(super) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
