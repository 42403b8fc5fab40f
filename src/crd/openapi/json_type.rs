//! JSON values as OpenAPI types them: messages name these types, and an integral float counts
//! as an integer both when defaulting and when checking types.

use serde_json::Value;

pub(super) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The integer an integral float stands for (`3.0` is `3`).
pub(super) fn integral_i64(value: f64) -> Option<i64> {
    let in_range = value >= i64::MIN as f64 && value < i64::MAX as f64;
    (value.fract() == 0.0 && in_range).then_some(value as i64)
}
