//! PATCH bodies (merge, strategic-merge approximation, JSON patch) and a
//! simplified but honest server-side apply.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

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

type Path = Vec<String>;

/// The fields an applied configuration sets: scalars and lists are leaves
/// (lists are atomic here), maps are recursed into.
fn leaves(value: &Value) -> Vec<(Path, &Value)> {
    fn walk<'a>(value: &'a Value, prefix: &mut Path, out: &mut Vec<(Path, &'a Value)>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    prefix.push(key.clone());
                    walk(child, prefix, out);
                    prefix.pop();
                }
            }
            _ => out.push((prefix.clone(), value)),
        }
    }
    let mut out = Vec::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

fn get_path<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

fn remove_path(value: &mut Value, path: &[String]) {
    if let Some((last, parents)) = path.split_last() {
        let parent = parents.iter().try_fold(value, |v, key| v.get_mut(key));
        if let Some(Value::Object(map)) = parent {
            map.remove(last);
        }
    }
}

/// Recursively merges `overlay` into `base`: maps merge, everything else replaces.
pub fn deep_merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(key) {
                    Some(existing) => deep_merge(existing, value),
                    None => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, overlay) => *base = overlay.clone(),
    }
}

/// Removes the identity fields from an applied configuration, leaving only the
/// fields a manager can own.
pub fn owned_fields(config: &Value) -> Value {
    let mut owned = config.clone();
    if let Some(map) = owned.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
    }
    if let Some(Value::Object(meta)) = owned.get_mut("metadata") {
        for key in [
            "name",
            "namespace",
            "resourceVersion",
            "managedFields",
            "uid",
            "creationTimestamp",
            "generation",
        ] {
            meta.remove(key);
        }
    }
    owned
}

/// Server-side apply of `config` (already reduced to owned fields) by `manager`
/// onto `live`. `managers` maps every apply manager to the config it last
/// applied; the returned map is the updated one.
///
/// Simplifications: only Apply managers own fields (Update operations do not
/// take ownership), lists are atomic, and conflicts are detected per leaf.
pub fn server_side_apply(
    live: &Value,
    config: &Value,
    manager: &str,
    force: bool,
    managers: &BTreeMap<String, Value>,
) -> Result<(Value, BTreeMap<String, Value>), ApiError> {
    let mut managers = managers.clone();
    let new_leaves = leaves(config);

    let mut conflicts = Vec::new();
    for (other, other_config) in managers.iter().filter(|(m, _)| m.as_str() != manager) {
        for (path, value) in &new_leaves {
            if get_path(other_config, path).is_some_and(|theirs| theirs != *value) {
                conflicts.push((other.clone(), path.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(conflict_error(&conflicts));
        }
        // Forcing takes the fields over: the losers no longer own them.
        for (other, path) in &conflicts {
            if let Some(cfg) = managers.get_mut(other) {
                remove_path(cfg, path);
            }
        }
    }

    let mut object = live.clone();
    if let Some(previous) = managers.get(manager) {
        for (path, _) in leaves(previous) {
            let still_applied = get_path(config, &path).is_some();
            let owned_by_other = managers
                .iter()
                .any(|(m, cfg)| m.as_str() != manager && get_path(cfg, &path).is_some());
            if !still_applied && !owned_by_other {
                remove_path(&mut object, &path);
            }
        }
    }
    deep_merge(&mut object, config);
    managers.insert(manager.to_string(), config.clone());
    Ok((object, managers))
}

fn conflict_error(conflicts: &[(String, Path)]) -> ApiError {
    let field = |path: &Path| format!(".{}", path.join("."));
    let listed: Vec<String> = conflicts
        .iter()
        .map(|(m, p)| format!("conflict with \"{m}\": {}", field(p)))
        .collect();
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, p)| json!({"type": "FieldManagerConflict", "message": format!("conflict with \"{m}\""), "field": field(p)}))
        .collect();
    let mut details = Map::new();
    details.insert("causes".into(), Value::Array(causes));
    ApiError::new(
        409,
        format!(
            "Apply failed with {} conflict(s): {}",
            conflicts.len(),
            listed.join(", ")
        ),
    )
    .with_details(Value::Object(details))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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

    #[test]
    fn apply_drops_fields_only_when_no_other_manager_owns_them() {
        let live = json!({"data": {"a": "1", "b": "2", "c": "3"}});
        let managers = BTreeMap::from([
            ("one".to_string(), json!({"data": {"a": "1", "b": "2"}})),
            ("two".to_string(), json!({"data": {"b": "2"}})),
        ]);
        let (out, managers) =
            server_side_apply(&live, &json!({"data": {}}), "one", false, &managers).unwrap();
        assert_eq!(out, json!({"data": {"b": "2", "c": "3"}}));
        assert_eq!(managers.get("one"), Some(&json!({"data": {}})));
    }

    #[test]
    fn forced_apply_takes_ownership_from_the_loser() {
        let managers =
            BTreeMap::from([("two".to_string(), json!({"spec": {"replicas": 1, "x": 1}}))]);
        let live = json!({"spec": {"replicas": 1, "x": 1}});
        let config = json!({"spec": {"replicas": 3}});
        let err = server_side_apply(&live, &config, "one", false, &managers).unwrap_err();
        assert_eq!(err.code, 409);
        assert!(
            err.message.contains("\"two\": .spec.replicas"),
            "{}",
            err.message
        );
        let (out, managers) = server_side_apply(&live, &config, "one", true, &managers).unwrap();
        assert_eq!(out, json!({"spec": {"replicas": 3, "x": 1}}));
        assert_eq!(managers.get("two"), Some(&json!({"spec": {"x": 1}})));
    }
}
