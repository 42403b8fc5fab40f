//! Field ownership and server-side apply, after kube-apiserver's field
//! manager (`k8s.io/apimachinery/pkg/util/managedfields/internal`) and
//! structured-merge-diff's `merge.Updater`.
//!
//! Every write records who owns which fields in `metadata.managedFields`,
//! one entry per manager, operation (`Apply` or `Update`), API version (for
//! updates) and subresource. Updates (create, PUT, merge / JSON / strategic
//! patches) never conflict: they take the fields they change from everyone
//! else. An apply merges the applied configuration into the object by the
//! schema's list and map types, drops fields the applier applied before but
//! no longer does (unless someone else owns them), and fails with 409 when it
//! would change a field another manager owns, unless forced.
//!
//! Simplifications: no version conversion (every version has the same
//! fields); the status subresource owns `status` only and the main resource
//! everything but `status` (upstream's reset fields for resources with a
//! status subresource); no cap on the number of update managers; no
//! `last-applied-configuration` interplay with client-side apply.

pub mod fieldpath;
pub mod schema;
mod typed;

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::error::ApiError;
use fieldpath::{PathElement, Set, path_string};
pub use schema::Schema;

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projection {
    /// Resources without a status subresource.
    Whole,
    /// The main resource of a kind with a status subresource (status is reset).
    WithoutStatus,
    /// The status subresource.
    StatusOnly,
}

/// The resource a write goes to.
pub struct Scope<'a> {
    pub schema: &'a Schema,
    /// `group/version` of the request, e.g. `apps/v1`.
    pub api_version: String,
    pub subresource: Option<&'a str>,
    pub projection: Projection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// A manager as upstream's `BuildManagerIdentifier` tells managers apart:
/// appliers by name (and subresource), updaters also by API version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Identity {
    manager: String,
    operation: Operation,
    /// Empty for appliers.
    api_version: String,
    subresource: String,
}

impl Identity {
    /// How conflicts name a manager (upstream's `printManager`).
    fn describe(&self) -> String {
        let mut out = json!(self.manager).to_string();
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {}", json!(self.subresource)));
        }
        if self.operation == Operation::Update {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    set: Set,
    api_version: String,
    time: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Managed(BTreeMap<Identity, Entry>);

/// Upstream's `DecodeManagedFields`.
fn decode(value: Option<&Value>) -> Result<Managed, String> {
    let entries = match value {
        None | Some(Value::Null) => return Ok(Managed::default()),
        Some(Value::Array(entries)) => entries,
        Some(other) => return Err(format!("managedFields must be a list, got {other}")),
    };
    let mut managed = Managed::default();
    for (i, entry) in entries.iter().enumerate() {
        let text = |field: &str| entry.get(field).and_then(Value::as_str).unwrap_or_default();
        let operation = match text("operation") {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return Err("operation must be `Apply` or `Update`".into()),
        };
        let api_version = text("apiVersion");
        if api_version.is_empty() {
            return Err("apiVersion must not be empty".into());
        }
        match text("fieldsType") {
            "FieldsV1" => {}
            "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
            other => {
                return Err(format!(
                    "invalid fieldsType {other:?} in managed fields entry {i}"
                ));
            }
        }
        let set = match entry.get("fieldsV1") {
            None | Some(Value::Null) => Set::default(),
            Some(fields) => Set::from_fields_v1(fields)?,
        };
        let identity = Identity {
            manager: text("manager").to_string(),
            operation,
            api_version: match operation {
                Operation::Apply => String::new(),
                Operation::Update => api_version.to_string(),
            },
            subresource: text("subresource").to_string(),
        };
        let time = entry
            .get("time")
            .and_then(Value::as_str)
            .map(str::to_string);
        managed.0.insert(
            identity,
            Entry {
                set,
                api_version: api_version.to_string(),
                time,
            },
        );
    }
    Ok(managed)
}

fn seconds(time: Option<&String>) -> i64 {
    time.and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .map_or(0, |t| t.as_second())
}

/// Upstream's `encodeManagedFields` (sorted like `sortEncodedManagedFields`);
/// None when nobody owns anything.
fn encode(managed: &Managed) -> Option<Value> {
    if managed.0.is_empty() {
        return None;
    }
    let mut entries: Vec<(&Identity, &Entry)> = managed.0.iter().collect();
    entries.sort_by(|(a, ae), (b, be)| {
        a.operation
            .cmp(&b.operation)
            .then_with(|| seconds(ae.time.as_ref()).cmp(&seconds(be.time.as_ref())))
            .then_with(|| a.manager.cmp(&b.manager))
            .then_with(|| ae.api_version.cmp(&be.api_version))
            .then_with(|| a.subresource.cmp(&b.subresource))
    });
    let encoded = entries.into_iter().map(|(id, entry)| {
        let mut out = Map::new();
        if !id.manager.is_empty() {
            out.insert("manager".into(), json!(id.manager));
        }
        out.insert("operation".into(), json!(id.operation.name()));
        out.insert("apiVersion".into(), json!(entry.api_version));
        if let Some(time) = &entry.time {
            out.insert("time".into(), json!(time));
        }
        out.insert("fieldsType".into(), json!("FieldsV1"));
        out.insert("fieldsV1".into(), entry.set.to_fields_v1());
        if !id.subresource.is_empty() {
            out.insert("subresource".into(), json!(id.subresource));
        }
        Value::Object(out)
    });
    Some(Value::Array(encoded.collect()))
}

/// `[]` or `[{}]`: the client asks to drop all managedFields.
fn is_reset(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Array(entries)) => match entries.as_slice() {
            [] => true,
            [only] => only.as_object().is_some_and(Map::is_empty),
            _ => false,
        },
        _ => false,
    }
}

/// The fields nobody owns (upstream's `stripMetaManager`).
fn strip_set() -> Set {
    let field = |name: &str| PathElement::Field(name.into());
    let mut set = Set::default();
    for top in ["apiVersion", "kind", "metadata"] {
        set.insert(&[field(top)]);
    }
    for meta in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        set.insert(&[field("metadata"), field(meta)]);
    }
    set
}

/// The part of an object a write may own, without managedFields.
fn project(obj: &Value, projection: Projection) -> Value {
    let mut map = obj.as_object().cloned().unwrap_or_default();
    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
        meta.remove("managedFields");
    }
    match projection {
        Projection::Whole => {}
        Projection::WithoutStatus => {
            map.remove("status");
        }
        Projection::StatusOnly => map.retain(|key, _| key == "status"),
    }
    Value::Object(map)
}

/// Puts a projected result back into the full object.
fn unproject(live: &Value, result: Value, projection: Projection) -> Value {
    let mut out = match projection {
        Projection::Whole | Projection::WithoutStatus => result.clone(),
        Projection::StatusOnly => live.clone(),
    };
    let status = match projection {
        Projection::Whole => return out,
        Projection::WithoutStatus => live.get("status").cloned(),
        Projection::StatusOnly => result.get("status").cloned(),
    };
    if let Value::Object(map) = &mut out {
        match status {
            Some(status) => map.insert("status".into(), status),
            None => map.remove("status"),
        };
    }
    out
}

fn set_managed_fields(obj: &mut Value, managed: Option<Value>) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    match managed {
        Some(managed) => meta.insert("managedFields".into(), managed),
        None => meta.remove("managedFields"),
    };
}

/// Removing fields leaves maps that became empty as null (upstream's
/// `RemoveItems`); the stored object has them absent, like a decoded object
/// would. Nulls the applied configuration or the live object had stay.
fn drop_new_nulls(value: &mut Value, live: Option<&Value>, config: Option<&Value>) {
    let Value::Object(map) = value else {
        return;
    };
    map.retain(|key, child| {
        !child.is_null()
            || live.and_then(|l| l.get(key)).is_some_and(Value::is_null)
            || config.and_then(|c| c.get(key)).is_some_and(Value::is_null)
    });
    for (key, child) in map.iter_mut() {
        drop_new_nulls(
            child,
            live.and_then(|l| l.get(key)),
            config.and_then(|c| c.get(key)),
        );
    }
}

/// Records the ownership a non-apply write (create, update, patch) takes and
/// stores it in `new`'s managedFields. `candidate` is the managedFields the
/// request body carried: honoured on the main resource (`[]` or `[{}]`
/// resets them), otherwise the live object's are used. `manager: None` is a
/// write nobody is recorded for (the test backdoor). Like upstream's
/// `UpdateNoErrors`, a failure keeps the live managedFields.
pub fn update(
    live: &Value,
    new: &mut Value,
    candidate: Option<&Value>,
    manager: Option<&str>,
    scope: &Scope,
) {
    let live_fields = live.pointer("/metadata/managedFields");
    let managed = if scope.subresource.is_some() {
        decode(live_fields).unwrap_or_default()
    } else if is_reset(candidate) {
        Managed::default()
    } else {
        match decode(candidate) {
            Ok(managed) if !managed.0.is_empty() => managed,
            _ => decode(live_fields).unwrap_or_default(),
        }
    };
    let lhs = project(live, scope.projection);
    let rhs = project(new, scope.projection);
    let encoded = match update_managed(managed, &lhs, &rhs, manager, scope) {
        Ok(managed) => {
            let encoded = encode(&managed);
            // Keep the stored bytes when nothing changed, so a no-op write stays a no-op.
            let unchanged = decode(live_fields).is_ok_and(|live| encode(&live) == encoded);
            if unchanged {
                live_fields.cloned()
            } else {
                encoded
            }
        }
        Err(_) => live_fields.cloned(),
    };
    set_managed_fields(new, encoded);
}

fn update_managed(
    mut managed: Managed,
    lhs: &Value,
    rhs: &Value,
    manager: Option<&str>,
    scope: &Scope,
) -> Result<Managed, String> {
    for value in [lhs, rhs] {
        let errors = typed::validate(value, scope.schema, true);
        if !errors.is_empty() {
            return Err(errors.join("\n"));
        }
    }
    let comparison = typed::compare(lhs, rhs, scope.schema);
    let changed = comparison.modified.union(&comparison.added);
    // An update takes the fields it changes from everyone (it is always forced).
    for entry in managed.0.values_mut() {
        entry.set = entry
            .set
            .difference(&changed)
            .difference(&comparison.removed);
    }
    managed.0.retain(|_, entry| !entry.set.is_empty());
    let taken = changed.difference(&strip_set());
    if let Some(name) = manager
        && !taken.is_empty()
    {
        let identity = Identity {
            manager: if name.is_empty() { "unknown" } else { name }.to_string(),
            operation: Operation::Update,
            api_version: scope.api_version.clone(),
            subresource: scope.subresource.unwrap_or_default().to_string(),
        };
        let set = match managed.0.remove(&identity) {
            Some(previous) => taken.union(&previous.set),
            None => taken,
        };
        let entry = Entry {
            set,
            api_version: scope.api_version.clone(),
            time: Some(crate::store::now()),
        };
        managed.0.insert(identity, entry);
    }
    Ok(managed)
}

/// Server-side apply of `config` by `manager` onto `live` (an empty object
/// when the apply creates it). Returns the new object with its managedFields.
/// `describe` names the object in errors (`namespace/name; group/version, Kind=Kind`).
pub fn apply(
    live: &Value,
    config: &Value,
    manager: &str,
    force: bool,
    scope: &Scope,
    describe: &str,
) -> Result<Value, ApiError> {
    let mut managed = decode(live.pointer("/metadata/managedFields"))
        .map_err(|e| ApiError::internal(format!("failed to decode managed fields: {e}")))?;
    let schema = scope.schema;
    let lhs = project(live, scope.projection);
    let cfg = project(config, scope.projection);
    let typing_errors = |what: &str, errors: Vec<String>| {
        let list = match errors.as_slice() {
            [one] => one.clone(),
            _ => format!("errors:\n  {}", errors.join("\n  ")),
        };
        ApiError::internal(format!(
            "failed to create typed {what} ({describe}): {list}"
        ))
    };
    let errors = typed::validate(&cfg, schema, false);
    if !errors.is_empty() {
        return Err(typing_errors("patch object", errors));
    }
    let errors = typed::validate(&lhs, schema, true);
    if !errors.is_empty() {
        return Err(typing_errors("live object", errors));
    }

    let merged = typed::merge(Some(&lhs), Some(&cfg), schema).unwrap_or_else(|| json!({}));
    let applier = Identity {
        manager: manager.to_string(),
        operation: Operation::Apply,
        api_version: String::new(),
        subresource: scope.subresource.unwrap_or_default().to_string(),
    };
    let previous = managed.0.get(&applier).cloned();
    let applied = Entry {
        set: typed::to_field_set(&cfg, schema),
        api_version: scope.api_version.clone(),
        time: previous.as_ref().and_then(|p| p.time.clone()),
    };
    managed.0.insert(applier.clone(), applied);
    let merged = prune(merged, &managed, previous.as_ref().map(|p| &p.set), schema);

    let comparison = typed::compare(&lhs, &merged, schema);
    let changed = comparison.modified.union(&comparison.added);
    let conflicts: Vec<(Identity, Set)> = managed
        .0
        .iter()
        .filter(|(id, _)| **id != applier)
        .map(|(id, entry)| (id.clone(), entry.set.intersection(&changed)))
        .filter(|(_, set)| !set.is_empty())
        .collect();
    if !force && !conflicts.is_empty() {
        return Err(conflict_error(&conflicts));
    }
    for (id, entry) in managed.0.iter_mut() {
        if *id == applier {
            continue;
        }
        entry.set = entry
            .set
            .difference(&changed)
            .difference(&comparison.removed);
    }
    let object_changed = merged != lhs;
    if let Some(entry) = managed.0.get_mut(&applier) {
        entry.set = entry.set.difference(&strip_set());
        if object_changed {
            entry.time = Some(crate::store::now());
        }
    }
    managed.0.retain(|_, entry| !entry.set.is_empty());

    let result = if object_changed { merged } else { lhs.clone() };
    let mut out = unproject(live, result, scope.projection);
    drop_new_nulls(&mut out, Some(live), Some(config));
    set_managed_fields(&mut out, encode(&managed));
    Ok(out)
}

/// Removes what the applier applied last time but not now, unless another
/// manager owns it (upstream's `Updater.prune` with `addBackOwnedItems` and
/// `addBackDanglingItems`).
fn prune(merged: Value, managed: &Managed, last: Option<&Set>, schema: &Schema) -> Value {
    let Some(last) = last.filter(|l| !l.is_empty()) else {
        return merged;
    };
    let named = |set: &Set| set.ensure_named_fields_are_members(schema);
    let pruned = typed::remove_items(&merged, &named(last), schema);

    let owned = managed
        .0
        .values()
        .fold(Set::default(), |all, entry| all.union(&entry.set));
    let merged_set = named(&typed::to_field_set(&merged, schema));
    let pruned_set = named(&typed::to_field_set(&pruned, schema));
    let unowned = merged_set.difference(&pruned_set.union(&named(&owned)));
    let pruned = typed::remove_items(&merged, &unowned, schema);

    let pruned_set = named(&typed::to_field_set(&pruned, schema));
    let dangling = merged_set
        .difference(&pruned_set)
        .intersection(&named(last));
    typed::remove_items(&merged, &dangling, schema)
}

/// The 409 of an apply that would change fields other managers own
/// (upstream's `NewConflictError`).
fn conflict_error(conflicts: &[(Identity, Set)]) -> ApiError {
    let mut listed: Vec<(&Identity, String)> = Vec::new();
    for (id, set) in conflicts {
        for path in set.paths() {
            listed.push((id, path_string(&path)));
        }
    }
    let causes: Vec<Value> = listed
        .iter()
        .map(|(id, field)| {
            json!({"reason": "FieldManagerConflict",
                   "message": format!("conflict with {}", id.describe()),
                   "field": field})
        })
        .collect();
    let message = match listed.as_slice() {
        [(id, field)] => format!(
            "Apply failed with 1 conflict: conflict with {}: {field}",
            id.describe()
        ),
        _ => {
            let mut lines = Vec::new();
            for (id, set) in conflicts {
                lines.push(format!("conflicts with {}:", id.describe()));
                lines.extend(set.paths().iter().map(|p| format!("- {}", path_string(p))));
            }
            format!(
                "Apply failed with {} conflicts: {}",
                listed.len(),
                lines.join("\n")
            )
        }
    };
    ApiError::new(409, message).with_details(json!({"causes": causes}))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn scope(schema: &Schema) -> Scope<'_> {
        Scope {
            schema,
            api_version: "v1".into(),
            subresource: None,
            projection: Projection::Whole,
        }
    }

    fn cm(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data})
    }

    #[test]
    fn an_applier_drops_fields_only_it_owned_and_shares_equal_values() {
        let schema = schema::builtin("", "ConfigMap");
        let scope = scope(&schema);
        let live = apply(
            &json!({}),
            &cm(json!({"a": "1", "b": "2"})),
            "one",
            false,
            &scope,
            "",
        )
        .unwrap();
        let live = apply(&live, &cm(json!({"b": "2"})), "two", false, &scope, "").unwrap();
        let err = apply(&live, &cm(json!({"b": "3"})), "two", false, &scope, "").unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"one\": .data.b"
        );
        let out = apply(&live, &cm(json!({})), "one", false, &scope, "").unwrap();
        assert_eq!(out["data"], json!({"b": "2"}), "b is still two's");
    }

    #[test]
    fn updates_take_ownership_of_what_they_change() {
        let schema = schema::builtin("", "ConfigMap");
        let scope = scope(&schema);
        let live = apply(
            &json!({}),
            &cm(json!({"a": "1"})),
            "applier",
            false,
            &scope,
            "",
        )
        .unwrap();
        let mut new = live.clone();
        new["data"]["a"] = json!("2");
        update(&live, &mut new, None, Some("editor"), &scope);
        let entries = new["metadata"]["managedFields"].as_array().unwrap().clone();
        assert_eq!(
            entries.len(),
            1,
            "the applier lost its only field: {entries:?}"
        );
        assert_eq!(entries[0]["manager"], "editor");
        assert_eq!(entries[0]["operation"], "Update");
        assert_eq!(entries[0]["fieldsV1"], json!({"f:data": {"f:a": {}}}));
        let err = apply(&new, &cm(json!({"a": "3"})), "applier", false, &scope, "").unwrap_err();
        assert!(
            err.message
                .ends_with("conflict with \"editor\" using v1: .data.a"),
            "{}",
            err.message
        );
    }
}
