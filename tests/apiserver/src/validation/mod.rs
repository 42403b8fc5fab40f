//! What kube-apiserver does to a write between decoding it and storing it, so that a
//! request a real server would reject gets the same `422 Invalid` here.
//!
//! Every write goes through [`admit`]: creates, updates (PUT), every patch type, server-side
//! apply and `/status` writes, and `TestApiServer::put` (which validates like a create, or
//! like an update of an object that exists; `put_unvalidated` skips all of this).
//!
//! * All kinds: `metadata` is decoded like `ObjectMeta` (unknown fields dropped, empty ones
//!   omitted, badly typed ones a 400), then checked like upstream's `ValidateObjectMeta`:
//!   the kind's name rule, `generateName`, namespace, label keys and values, annotation
//!   keys and total size, owner references, finalizer names.
//! * Custom resources, against the served version's `openAPIV3Schema` (see `schema`):
//!   pruning, null pruning, defaulting (on the request, as upstream's decoder does; objects
//!   already stored are not defaulted on read, see the crate docs), the OpenAPI checks,
//!   `x-kubernetes-list-type` uniqueness, embedded resources, the scale subresource's
//!   paths, and `x-kubernetes-validations` (see `cel`), with upstream's ratcheting on
//!   updates. A `/status` write has only its status checked by the schema; CEL rules see
//!   the whole object, as upstream.
//! * Built-in kinds: see `builtin`.

mod builtin;
mod cel;
mod formats;
mod names;
mod render;
mod schema;

use serde_json::{Map, Value};

use crate::error::{ApiError, FieldError, FieldErrorType};
use crate::registry::ResourceType;
use names::NameRule;
use schema::SchemaCheck;

/// One write, as the store is about to commit it.
pub struct Admission<'a> {
    pub rt: &'a ResourceType,
    /// The stored object on updates; `None` on create.
    pub old: Option<&'a Value>,
    /// `Some("status")` for `/status` writes.
    pub subresource: Option<&'a str>,
    /// A direct store write (`TestApiServer::put`): it keeps the caller's status, so the
    /// status is validated as a `/status` write would be, besides the rest.
    pub backdoor: bool,
    /// The `CustomResourceDefinition` of a custom resource.
    pub crd: Option<&'a Value>,
}

/// Decodes (prunes, defaults) and validates `obj` in place, or says why a real API server
/// would refuse it.
pub fn admit(adm: &Admission, obj: &mut Value) -> Result<(), ApiError> {
    let rt = adm.rt;
    normalize_metadata(obj, rt)?;
    let mut errs = Vec::new();
    if rt.custom {
        custom_resource(adm, obj, &mut errs)?;
    } else {
        if let Some(rule) = builtin::name_rule(rt) {
            let update = adm.old.is_some();
            names::validate_object_meta(obj, rt.namespaced, rule, update, &mut errs);
        }
        let main = adm.subresource != Some("status");
        let status = !main || adm.backdoor;
        builtin::validate(rt, obj, adm.old, main, status, &mut errs);
    }
    if errs.is_empty() {
        return Ok(());
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let err = ApiError::invalid_fields(&rt.kind, &rt.group, name, &errs);
    // RUST_LOG=test_apiserver=info shows what a real server would have refused.
    tracing::info!(message = %err.message, "test-apiserver refused an invalid write");
    Err(err)
}

/// The `422` for a create with neither `name` nor `generateName`.
pub fn name_required(rt: &ResourceType) -> ApiError {
    let err = FieldError::required("metadata.name", "name or generateName is required");
    ApiError::invalid_fields(&rt.kind, &rt.group, "", &[err])
}

/// Kinds whose strategy refuses an update without `metadata.resourceVersion`
/// (`AllowUnconditionalUpdate() == false`): custom resources, CRDs and Leases.
pub fn check_unconditional_update(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let conditional = rt.custom
        || matches!(
            (rt.group.as_str(), rt.plural.as_str()),
            ("coordination.k8s.io", "leases")
                | ("apiextensions.k8s.io", "customresourcedefinitions")
        );
    let rv = obj
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !conditional || !rv.is_empty() {
        return Ok(());
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let err = FieldError::invalid(
        "metadata.resourceVersion",
        "0".into(),
        "must be specified for an update",
    );
    // The registry names the resource, not the kind, in this one.
    Err(ApiError::invalid_fields(
        &rt.plural,
        &rt.group,
        name,
        &[err],
    ))
}

fn decode_error(rt_kind: &str, version: &str, detail: String) -> ApiError {
    ApiError::bad_request(format!(
        "{rt_kind} in version \"{version}\" cannot be handled as a {rt_kind}: {detail}"
    ))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `metadata` round-tripped through `metav1.ObjectMeta`, as upstream's decoding does for
/// every object: unknown fields go, `omitempty` fields that are empty go, a field of the
/// wrong type is a decode error.
fn normalize_metadata(obj: &mut Value, rt: &ResourceType) -> Result<(), ApiError> {
    let Value::Object(map) = obj else {
        return Ok(());
    };
    normalize_metadata_map(map, &rt.kind)
        .map_err(|MetaError(detail)| decode_error(&rt.kind, &rt.version, detail))
}

/// Why `metadata` does not decode, in Go's words.
pub struct MetaError(String);

impl From<MetaError> for ApiError {
    fn from(err: MetaError) -> Self {
        ApiError::bad_request(err.0)
    }
}

const META_STRINGS: [&str; 6] = [
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
];

/// See [`normalize_metadata`]; `kind` names the Go type in messages.
pub fn normalize_metadata_map(map: &mut Map<String, Value>, kind: &str) -> Result<(), MetaError> {
    let Some(meta) = map.get_mut("metadata") else {
        return Ok(());
    };
    let meta = match meta {
        Value::Null => {
            map.remove("metadata");
            return Ok(());
        }
        Value::Object(meta) => meta,
        other => {
            return Err(MetaError(format!(
                "json: cannot unmarshal {} into Go struct field {kind}.metadata of type v1.ObjectMeta",
                json_kind(other)
            )));
        }
    };
    let wrong = |field: &str, value: &Value, go_type: &str| {
        MetaError(format!(
            "json: cannot unmarshal {} into Go struct field ObjectMeta.metadata.{field} of type {go_type}",
            json_kind(value)
        ))
    };
    let mut out = Map::new();
    for (field, value) in std::mem::take(meta) {
        if value.is_null() {
            continue;
        }
        let keep = match field.as_str() {
            f if META_STRINGS.contains(&f) => {
                let text = value.as_str().ok_or_else(|| wrong(f, &value, "string"))?;
                !text.is_empty()
            }
            "generation" | "deletionGracePeriodSeconds" => {
                if value.as_i64().is_none() {
                    return Err(wrong(&field, &value, "int64"));
                }
                field != "generation" || value.as_i64() != Some(0)
            }
            "creationTimestamp" | "deletionTimestamp" => {
                let text = value
                    .as_str()
                    .ok_or_else(|| wrong(&field, &value, "v1.Time"))?;
                if !formats::is_date_time(text) {
                    return Err(MetaError(format!(
                        "parsing time {} as \"2006-01-02T15:04:05Z07:00\": cannot parse {} as \"2006\"",
                        render::quote(text),
                        render::quote(text)
                    )));
                }
                true
            }
            "labels" | "annotations" => {
                let entries = value
                    .as_object()
                    .ok_or_else(|| wrong(&field, &value, "map[string]string"))?;
                if let Some((_, bad)) = entries.iter().find(|(_, v)| !v.is_string() && !v.is_null())
                {
                    return Err(wrong(&field, bad, "string"));
                }
                !entries.is_empty()
            }
            "finalizers" => {
                let list = value
                    .as_array()
                    .ok_or_else(|| wrong(&field, &value, "[]string"))?;
                if let Some(bad) = list.iter().find(|v| !v.is_string()) {
                    return Err(wrong(&field, bad, "string"));
                }
                !list.is_empty()
            }
            "ownerReferences" | "managedFields" => {
                let item = match field.as_str() {
                    "ownerReferences" => "v1.OwnerReference",
                    _ => "v1.ManagedFieldsEntry",
                };
                let list = value
                    .as_array()
                    .ok_or_else(|| wrong(&field, &value, &format!("[]{item}")))?;
                if let Some(bad) = list.iter().find(|v| !v.is_object()) {
                    return Err(wrong(&field, bad, item));
                }
                !list.is_empty()
            }
            _ => false,
        };
        if !keep {
            continue;
        }
        let value = match (field.as_str(), value) {
            ("ownerReferences", Value::Array(list)) => Value::Array(
                list.into_iter()
                    .map(|r| {
                        let mut r = r;
                        if let Value::Object(fields) = &mut r {
                            fields.retain(|k, v| {
                                matches!(k.as_str(), "apiVersion" | "kind" | "name" | "uid")
                                    || (matches!(k.as_str(), "controller" | "blockOwnerDeletion")
                                        && !v.is_null())
                            });
                        }
                        r
                    })
                    .collect(),
            ),
            ("labels" | "annotations", Value::Object(mut entries)) => {
                // A null value decodes to the empty string.
                for v in entries.values_mut().filter(|v| v.is_null()) {
                    *v = Value::String(String::new());
                }
                Value::Object(entries)
            }
            (_, value) => value,
        };
        out.insert(field, value);
    }
    *meta = out;
    Ok(())
}

/// The served version of a CRD, and in it the schema and subresources.
fn crd_version<'a>(crd: &'a Value, version: &str) -> Option<&'a Value> {
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array)?;
    versions
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(version))
}

fn custom_resource(
    adm: &Admission,
    obj: &mut Value,
    errs: &mut Vec<FieldError>,
) -> Result<(), ApiError> {
    let rt = adm.rt;
    let version = adm.crd.and_then(|crd| crd_version(crd, &rt.version));
    let root = version.and_then(|v| v.pointer("/schema/openAPIV3Schema"));
    if let Some(root) = root {
        schema::prune(obj, root);
        schema::prune_nulls(obj, Some(root));
        schema::coerce_embedded(root, obj, true)?;
        schema::default(obj, root);
    }
    names::validate_object_meta(
        obj,
        rt.namespaced,
        NameRule::Subdomain,
        adm.old.is_some(),
        errs,
    );
    let Some(root) = root else {
        return Ok(());
    };
    let status_write = adm.subresource == Some("status");
    if status_write {
        if let (Some(status), Some(status_schema)) = (
            obj.get("status"),
            schema::props(root).and_then(|p| p.get("status")),
        ) {
            let old_status = schema::old_field(root, adm.old, "status");
            let mut check = SchemaCheck::new("status");
            check.node(status_schema, status, old_status, &mut Vec::new());
            errs.extend(check.errors);
        }
    } else {
        let mut check = SchemaCheck::new("");
        check.node(root, obj, adm.old, &mut Vec::new());
        errs.extend(check.errors);
    }
    if let Some(scale) = version.and_then(|v| v.pointer("/subresources/scale")) {
        scale_paths(scale, obj, !status_write, errs);
    }
    schema::embedded_resources(root, obj, &mut Vec::new(), true, errs);
    let mut list_errs = Vec::new();
    schema::list_sets_and_maps(root, obj, &mut Vec::new(), &mut list_errs);
    if !list_errs.is_empty() {
        // Ratcheting: an object that already broke these rules may keep doing so.
        let mut old_errs = Vec::new();
        if let Some(old) = adm.old {
            schema::list_sets_and_maps(root, old, &mut Vec::new(), &mut old_errs);
        }
        if adm.old.is_none() || old_errs.is_empty() {
            errs.extend(list_errs);
        }
    }
    let blocking = errs.iter().any(|e| {
        matches!(
            e.kind,
            FieldErrorType::NotSupported
                | FieldErrorType::Required
                | FieldErrorType::TooLong
                | FieldErrorType::TooMany
                | FieldErrorType::TypeInvalid
        )
    });
    if blocking {
        errs.push(FieldError::invalid(
            "<nil>",
            render::quote("null"),
            "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
        ));
    } else {
        errs.extend(cel::validate(root, obj, adm.old));
    }
    Ok(())
}

/// Go's name for the type of a decoded JSON value, as `%T` prints it.
fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.as_i64().is_some() => "int64",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn go_plain(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        other => render::go_value(other),
    }
}

/// `ValidateScaleSpec` and `ValidateScaleStatus`: the replica counts the scale
/// subresource reads must be non-negative int32s, the selector a string.
fn scale_paths(scale: &Value, obj: &Value, spec: bool, errs: &mut Vec<FieldError>) {
    let lookup = |path: &str| -> (String, Option<&Value>) {
        let trimmed = path.trim_start_matches('.');
        let mut at = Some(obj);
        for part in trimmed.split('.') {
            at = at.and_then(Value::as_object).and_then(|m| m.get(part));
        }
        (format!(".{trimmed}"), at)
    };
    let mut replicas = |key: &str| {
        let Some(path) = scale.get(key).and_then(Value::as_str) else {
            return;
        };
        let (json_path, found) = lookup(path);
        match found {
            None => {}
            Some(Value::Number(n)) if n.as_i64().is_some() => {
                let n = n.as_i64().unwrap_or_default();
                if n < 0 {
                    errs.push(FieldError::invalid(
                        path,
                        n.to_string(),
                        "should be a non-negative integer",
                    ));
                } else if n > i64::from(i32::MAX) {
                    errs.push(FieldError::invalid(
                        path,
                        n.to_string(),
                        format!("should be less than or equal to {}", i32::MAX),
                    ));
                }
            }
            Some(other) => errs.push(FieldError::invalid(
                path,
                "0".into(),
                format!(
                    "{json_path} accessor error: {} is of the type {}, expected int64",
                    go_plain(other),
                    go_type(other)
                ),
            )),
        }
    };
    if spec {
        replicas("specReplicasPath");
    }
    replicas("statusReplicasPath");
    if let Some(path) = scale.get("labelSelectorPath").and_then(Value::as_str) {
        let (json_path, found) = lookup(path);
        if let Some(other) = found.filter(|v| !v.is_string()) {
            errs.push(FieldError::invalid(
                path,
                render::quote(""),
                format!(
                    "{json_path} accessor error: {} is of the type {}, expected string",
                    go_plain(other),
                    go_type(other)
                ),
            ));
        }
    }
}
