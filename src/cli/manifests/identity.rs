//! Which documents are Kubernetes objects, and which of them are the kinds `plan` reads: a
//! document is identified before it is parsed, so a stray file gives a clear error and
//! another group's kind of the same name is not mistaken for Sovra's.

use super::wording::{describe, shortened};
use serde_json::Value;

/// Whether an object of `kind` with `api_version` is the one `plan` reads (`expected`), or an
/// object of another API group that happens to use the same kind name (false). Another version
/// of the expected group, or a version without a group, is a mistake.
pub(super) fn ours(api_version: &str, kind: &str, expected: &str) -> Result<bool, String> {
    let group = |v: &str| v.rsplit_once('/').map(|(group, _)| group.to_owned());
    if api_version == expected {
        return Ok(true);
    }
    match group(api_version) {
        Some(other) if Some(&other) != group(expected).as_ref() => Ok(false),
        _ => Err(format!(
            "{kind} has apiVersion {}; sovra plan reads {kind} {expected}",
            shortened(api_version)
        )),
    }
}

/// `apiVersion` and `kind` of a document that is a Kubernetes object.
pub(super) fn identify(value: &Value) -> Result<(String, String), String> {
    let Some(object) = value.as_object() else {
        return Err(format!(
            "not a Kubernetes object: a document must be a mapping with apiVersion and kind, this one is {}",
            describe(value)
        ));
    };
    let field = |name: &str| match object.get(name) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
        Some(other) if !other.is_null() => Err(format!(
            "not a Kubernetes object: {name} must be a string, not {}",
            describe(other)
        )),
        _ => Err(format!("not a Kubernetes object: it has no {name}")),
    };
    Ok((field("apiVersion")?, field("kind")?))
}
