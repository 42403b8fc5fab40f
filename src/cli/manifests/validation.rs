//! An object is checked as the API server would check it before it is deserialized, so
//! `plan` refuses what `kubectl apply` would refuse, in the same words, instead of planning it.

use super::wording::shortened;
use crate::crd::openapi;
use serde_json::Value;

/// Violations listed per object; the rest are counted.
const MAX_VIOLATIONS: usize = 20;

/// Deserializes one object after checking it as the API server would: its CRD's OpenAPI
/// schema (after pruning nulls and applying defaults), then the CEL rules. Nodes are only
/// checked for a name.
pub(super) fn parse<T: serde::de::DeserializeOwned>(
    kind: &str,
    mut value: Value,
) -> Result<T, String> {
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map_or_else(|| "<unnamed>".to_owned(), shortened);
    let failed = |violations: Vec<String>| {
        let more = violations.len().saturating_sub(MAX_VIOLATIONS);
        let mut listed: Vec<String> = violations.into_iter().take(MAX_VIOLATIONS).collect();
        if more > 0 {
            listed.push(format!("and {more} more"));
        }
        format!("{kind} {name}: {}", listed.join("; "))
    };
    let violations = match openapi::for_kind(kind) {
        Some(schema) => {
            schema.apply_defaults(&mut value);
            let violations = schema.validate(&value);
            if violations.is_empty() {
                schema.validate_cel(&value)
            } else {
                violations
            }
        }
        None => openapi::validate_metadata(value.get("metadata"), false),
    };
    if !violations.is_empty() {
        return Err(failed(violations));
    }
    serde_json::from_value(value).map_err(|e| format!("{kind} {name}: {e}"))
}
