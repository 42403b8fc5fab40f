//! PATCH bodies: merge, strategic-merge approximation, JSON patch, and the
//! decoding of server-side apply bodies (applied by [`crate::fieldmanager`]).

use serde_json::Value;

use crate::error::ApiError;

/// The patch flavours, keyed by Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    /// Approximated as a JSON merge patch: lists are replaced, not merged by key,
    /// and `$`-directives other than `$patch: delete` are dropped.
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        match content_type.split(';').next().unwrap_or_default().trim() {
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchKind::Apply)
            }
            _ => None,
        }
    }

    /// The short name recorded in the access log.
    pub fn name(self) -> &'static str {
        match self {
            PatchKind::Json => "json",
            PatchKind::Merge => "merge",
            PatchKind::Strategic => "strategic",
            PatchKind::Apply => "apply",
        }
    }
}

/// Applies a non-apply patch to `target`.
pub fn patch_object(kind: PatchKind, target: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let mut result = target.clone();
    match kind {
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            for op in ops.0 {
                // Upstream's json-patch passes `test` of null against a missing path;
                // kube-runtime's finalizer helper relies on that to add the first finalizer.
                if let json_patch::PatchOperation::Test(test) = &op
                    && test.value.is_null()
                    && result
                        .pointer(test.path.as_str())
                        .is_none_or(Value::is_null)
                {
                    continue;
                }
                json_patch::patch(&mut result, &[op])
                    .map_err(|e| ApiError::invalid(format!("the JSON patch failed: {e}")))?;
            }
        }
        PatchKind::Merge | PatchKind::Strategic => {
            let mut patch: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON merge patch: {e}")))?;
            if kind == PatchKind::Strategic {
                strip_strategic_directives(&mut patch);
            }
            json_patch::merge(&mut result, &patch);
        }
        PatchKind::Apply => return Err(ApiError::internal("apply is not a plain patch")),
    }
    Ok(result)
}

/// Turns `{"$patch": "delete"}` maps into `null` (delete) and drops other
/// `$`-keys (`$setElementOrder/…`, `$retainKeys`, …) that only make sense to a
/// real strategic merge.
fn strip_strategic_directives(patch: &mut Value) {
    if let Value::Object(map) = patch {
        if map.get("$patch").and_then(Value::as_str) == Some("delete") {
            *patch = Value::Null;
            return;
        }
        map.retain(|key, _| !key.starts_with('$'));
        map.values_mut().for_each(strip_strategic_directives);
    }
}

/// An apply body: JSON, or YAML (kubectl sends YAML, kube-rs sends JSON).
pub fn parse_apply_body(body: &[u8]) -> Result<Value, ApiError> {
    let value = match serde_json::from_slice::<Value>(body) {
        Ok(v) => v,
        Err(_) => serde_norway::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?,
    };
    if value.is_object() {
        Ok(value)
    } else {
        Err(ApiError::bad_request("apply body must be an object"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_is_a_merge_patch_without_directives() {
        let target = json!({"spec": {"x": 1, "y": {"z": 1}}});
        let body = br#"{"$setElementOrder/c": [], "spec": {"x": 2, "y": {"$patch": "delete"}}}"#;
        assert_eq!(
            patch_object(PatchKind::Strategic, &target, body).unwrap(),
            json!({"spec": {"x": 2}})
        );
    }

    #[test]
    fn json_patch_test_of_null_passes_on_a_missing_path_like_upstream() {
        let body = br#"[{"op": "test", "path": "/metadata/finalizers", "value": null},
                        {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}]"#;
        let out = patch_object(PatchKind::Json, &json!({"metadata": {}}), body).unwrap();
        assert_eq!(out, json!({"metadata": {"finalizers": ["f"]}}));
        let taken = json!({"metadata": {"finalizers": ["g"]}});
        assert_eq!(
            patch_object(PatchKind::Json, &taken, body)
                .unwrap_err()
                .code,
            422
        );
    }

    #[test]
    fn json_patch_failures_are_invalid_and_garbage_is_a_bad_request() {
        let target = json!({"a": 1});
        let body = br#"[{"op": "test", "path": "/a", "value": 2}]"#;
        assert_eq!(
            patch_object(PatchKind::Json, &target, body)
                .unwrap_err()
                .code,
            422
        );
        assert_eq!(
            patch_object(PatchKind::Json, &target, b"{")
                .unwrap_err()
                .code,
            400
        );
    }
}
