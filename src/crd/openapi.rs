//! Client-side OpenAPI v3 schema checks of custom resources, as the API server makes them:
//! null fields pruned and defaults applied first ([`apply_defaults`]), then every value checked
//! against its schema ([`validate`]) with the API server's field paths and messages, e.g.
//! `spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0`.
//!
//! Pure and bounded: recursion follows the schema (which is finite), never the value alone, so
//! any value is safe to check. [`for_kind`] gives the schema of one of Sovra's own kinds.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::OnceLock;

/// The schema of one served version of a custom resource, and what the API server does with an
/// object of that kind on create.
#[derive(Debug)]
pub struct ObjectSchema {
    pub kind: String,
    pub namespaced: bool,
    /// With a status subresource, the API server drops `status` on create, so it is not
    /// checked: `schema` then leaves `status` free-form.
    pub status_subresource: bool,
    pub schema: JSONSchemaProps,
    /// The schema's CEL rules, compiled on first use.
    cel: OnceLock<kube::core::cel::CompiledSchema>,
}

/// The schema of Sovra's custom resource `kind` (from [`crate::crd::all`], built once).
pub fn for_kind(kind: &str) -> Option<&'static ObjectSchema> {
    static SCHEMAS: OnceLock<Vec<ObjectSchema>> = OnceLock::new();
    SCHEMAS
        .get_or_init(|| {
            crate::crd::all()
                .into_iter()
                .filter_map(|crd| {
                    let version = crd.spec.versions.into_iter().next()?;
                    let status_subresource = version
                        .subresources
                        .as_ref()
                        .is_some_and(|s| s.status.is_some());
                    let mut schema = version.schema?.open_api_v3_schema?;
                    if status_subresource && let Some(properties) = &mut schema.properties {
                        properties.insert(
                            "status".to_owned(),
                            JSONSchemaProps {
                                x_kubernetes_preserve_unknown_fields: Some(true),
                                ..JSONSchemaProps::default()
                            },
                        );
                    }
                    Some(ObjectSchema {
                        kind: crd.spec.names.kind,
                        namespaced: crd.spec.scope == "Namespaced",
                        status_subresource,
                        schema,
                        cel: OnceLock::new(),
                    })
                })
                .collect()
        })
        .iter()
        .find(|s| s.kind == kind)
}

impl ObjectSchema {
    /// Prunes nulls and applies defaults, as the API server does before it validates.
    pub fn apply_defaults(&self, object: &mut Value) {
        apply_defaults(&self.schema, object);
    }

    /// Every violation of the object (metadata name and namespace, then the schema), one
    /// message each, in the API server's words.
    pub fn validate(&self, object: &Value) -> Vec<String> {
        let mut errors = validate_metadata(object.get("metadata"), self.namespaced);
        Walk {
            errors: &mut errors,
        }
        .check(&self.schema, object, &Path::Root);
        errors
    }

    /// Every failed CEL rule (`x-kubernetes-validations`) of the object, as the API server
    /// runs them on create (no `oldSelf`, so transition rules do not apply). The rules are
    /// compiled once, not per object.
    pub fn validate_cel(&self, object: &Value) -> Vec<String> {
        thread_local! {
            static VALIDATOR: kube::core::cel::Validator = kube::core::cel::Validator::new();
        }
        let compiled = self.cel.get_or_init(|| {
            let schema = serde_json::to_value(&self.schema).unwrap_or_default();
            kube::core::cel::compile_schema(&schema)
        });
        VALIDATOR.with(
            |validator| match validator.validate_compiled(compiled, object, None) {
                Ok(()) => Vec::new(),
                Err(errors) => errors.into_vec().iter().map(ToString::to_string).collect(),
            },
        )
    }
}

/// Removes `null` object fields whose schema is not `nullable` and sets `default`s of missing
/// fields, recursively; integral floats where an integer is expected become integers.
pub fn apply_defaults(schema: &JSONSchemaProps, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(properties) = &schema.properties {
                map.retain(|key, field| {
                    !(field.is_null()
                        && properties
                            .get(key)
                            .is_some_and(|s| s.nullable != Some(true)))
                });
                for (key, property) in properties {
                    if !map.contains_key(key)
                        && let Some(default) = &property.default
                    {
                        map.insert(key.clone(), default.0.clone());
                    }
                }
                for (key, field) in map.iter_mut() {
                    if let Some(property) = properties.get(key) {
                        apply_defaults(property, field);
                    }
                }
            } else if let Some(JSONSchemaPropsOrBool::Schema(values)) =
                &schema.additional_properties
            {
                map.retain(|_, field| !(field.is_null() && values.nullable != Some(true)));
                for field in map.values_mut() {
                    apply_defaults(values, field);
                }
            }
        }
        Value::Array(items) => {
            if let Some(JSONSchemaPropsOrArray::Schema(item)) = &schema.items {
                for element in items {
                    apply_defaults(item, element);
                }
            }
        }
        Value::Number(number) if schema.type_.as_deref() == Some("integer") => {
            if let Some(integral) = number.as_f64().and_then(integral_i64) {
                *value = Value::from(integral);
            }
        }
        _ => {}
    }
}

/// Every violation of `value` against `schema`, with `value` at the root of an object.
pub fn validate(schema: &JSONSchemaProps, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    Walk {
        errors: &mut errors,
    }
    .check(schema, value, &Path::Root);
    errors
}

/// A field path as the API server prints it: `spec.placement.requiredCountries[0]`.
enum Path<'a> {
    Root,
    Field(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Root => Ok(()),
            Self::Field(Self::Root, name) => f.write_str(name),
            Self::Field(parent, name) => write!(f, "{parent}.{name}"),
            Self::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

impl Path<'_> {
    fn is_root(&self) -> bool {
        matches!(self, Self::Root)
    }
}

/// Fields every object has, whatever its schema lists.
const OBJECT_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

struct Walk<'e> {
    errors: &'e mut Vec<String>,
}

impl Walk<'_> {
    fn push(&mut self, message: String) {
        self.errors.push(message);
    }

    fn check(&mut self, schema: &JSONSchemaProps, value: &Value, path: &Path<'_>) {
        if value.is_null() && schema.nullable == Some(true) {
            return;
        }
        if !self.check_type(schema, value, path) {
            return;
        }
        if let Some(allowed) = &schema.enum_
            && !allowed.iter().any(|a| a.0 == *value)
        {
            let supported: Vec<String> = allowed.iter().map(|a| shown(&a.0)).collect();
            self.push(format!(
                "{path}: Unsupported value: {}: supported values: {}",
                shown(value),
                supported.join(", ")
            ));
        }
        match value {
            Value::String(text) => self.check_string(schema, text, path),
            Value::Number(number) => self.check_number(schema, number, path),
            Value::Array(items) => self.check_array(schema, items, path),
            Value::Object(map) => self.check_object(schema, map, path),
            Value::Null | Value::Bool(_) => {}
        }
        for sub in schema.all_of.iter().flatten() {
            self.check(sub, value, path);
        }
        if let Some(any_of) = &schema.any_of
            && !any_of.is_empty()
            && !any_of
                .iter()
                .any(|sub| validate_at(sub, value, path).is_empty())
        {
            self.push(format!(
                "{path}: Invalid value: {}: {path} in body must match at least one schema in anyOf",
                shown(value)
            ));
        }
        if let Some(one_of) = &schema.one_of
            && !one_of.is_empty()
            && one_of
                .iter()
                .filter(|sub| validate_at(sub, value, path).is_empty())
                .count()
                != 1
        {
            self.push(format!(
                "{path}: Invalid value: {}: {path} in body must match exactly one schema in oneOf",
                shown(value)
            ));
        }
        if let Some(not) = &schema.not
            && validate_at(not, value, path).is_empty()
        {
            self.push(format!(
                "{path}: Invalid value: {}: {path} in body must not validate the schema (not)",
                shown(value)
            ));
        }
    }

    /// False (after reporting it) when the value is not of the schema's type.
    fn check_type(&mut self, schema: &JSONSchemaProps, value: &Value, path: &Path<'_>) -> bool {
        let actual = type_name(value);
        let expected = if schema.x_kubernetes_int_or_string == Some(true) {
            if matches!(actual, "integer" | "string") {
                return true;
            }
            "integer-or-string"
        } else {
            let Some(expected) = schema.type_.as_deref() else {
                // No type (a free-form field): any value.
                return true;
            };
            let matches = match expected {
                "number" => matches!(actual, "integer" | "number"),
                "integer" => {
                    actual == "integer"
                        || value.as_f64().and_then(integral_i64).is_some() && actual == "number"
                }
                other => other == actual,
            };
            if matches {
                return true;
            }
            expected
        };
        self.push(format!(
            "{path}: Invalid value: \"{actual}\": {path} in body must be of type {expected}: \"{actual}\""
        ));
        false
    }

    fn check_string(&mut self, schema: &JSONSchemaProps, text: &str, path: &Path<'_>) {
        let length = text.chars().count();
        if let Some(max) = schema.max_length
            && exceeds(length, max)
        {
            self.push(format!(
                "{path}: Too long: may not be more than {max} bytes"
            ));
        }
        if let Some(min) = schema.min_length
            && below(length, min)
        {
            self.push(format!(
                "{path}: Invalid value: {}: {path} in body should be at least {min} chars long",
                shown_str(text)
            ));
        }
        if let Some(pattern) = &schema.pattern
            && let Ok(regex) = regex::Regex::new(pattern)
            && !regex.is_match(text)
        {
            self.push(format!(
                "{path}: Invalid value: {}: {path} in body should match '{pattern}'",
                shown_str(text)
            ));
        }
        if schema.format.as_deref() == Some("date-time") && text.parse::<jiff::Timestamp>().is_err()
        {
            self.push(format!(
                "{path}: Invalid value: {}: {path} in body must be of type date-time: {}",
                shown_str(text),
                shown_str(text)
            ));
        }
    }

    fn check_number(
        &mut self,
        schema: &JSONSchemaProps,
        number: &serde_json::Number,
        path: &Path<'_>,
    ) {
        let shown = number.to_string();
        let value = number.as_f64().unwrap_or(f64::NAN);
        let range = match schema.format.as_deref() {
            Some("int32") => Some((f64::from(i32::MIN), f64::from(i32::MAX))),
            Some("int64") => Some((i64::MIN as f64, i64::MAX as f64)),
            _ => None,
        };
        let minimum = schema.minimum.into_iter().chain(range.map(|r| r.0));
        let maximum = schema.maximum.into_iter().chain(range.map(|r| r.1));
        // Only the tightest bound is reported, as one message.
        if let Some(min) = minimum.fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b)))) {
            let exclusive = schema.exclusive_minimum == Some(true) && Some(min) == schema.minimum;
            if value < min || exclusive && value <= min {
                let relation = if exclusive {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                self.push(format!(
                    "{path}: Invalid value: {shown}: {path} in body should be {relation} {min}"
                ));
            }
        }
        if let Some(max) = maximum.fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.min(b)))) {
            let exclusive = schema.exclusive_maximum == Some(true) && Some(max) == schema.maximum;
            if value > max || exclusive && value >= max {
                let relation = if exclusive {
                    "less than"
                } else {
                    "less than or equal to"
                };
                self.push(format!(
                    "{path}: Invalid value: {shown}: {path} in body should be {relation} {max}"
                ));
            }
        }
        if let Some(divisor) = schema.multiple_of
            && divisor > 0.0
            && (value / divisor).fract() != 0.0
        {
            self.push(format!(
                "{path}: Invalid value: {shown}: {path} in body should be a multiple of {divisor}"
            ));
        }
    }

    fn check_array(&mut self, schema: &JSONSchemaProps, items: &[Value], path: &Path<'_>) {
        if let Some(max) = schema.max_items
            && exceeds(items.len(), max)
        {
            self.push(format!(
                "{path}: Too many: {}: must have at most {max} items",
                items.len()
            ));
        }
        if let Some(min) = schema.min_items
            && below(items.len(), min)
        {
            self.push(format!(
                "{path}: Invalid value: {}: {path} in body should have at least {min} items",
                items.len()
            ));
        }
        if let Some(JSONSchemaPropsOrArray::Schema(item)) = &schema.items {
            for (index, element) in items.iter().enumerate() {
                self.check(item, element, &Path::Index(path, index));
            }
        }
        let keys = schema
            .x_kubernetes_list_map_keys
            .as_deref()
            .unwrap_or_default();
        let unique = match schema.x_kubernetes_list_type.as_deref() {
            Some("set") => Some(None),
            Some("map") => Some(Some(keys)),
            _ if schema.unique_items == Some(true) => Some(None),
            _ => None,
        };
        if let Some(keys) = unique {
            let mut seen = HashSet::new();
            for (index, item) in items.iter().enumerate() {
                let identity = match keys {
                    None => item.clone(),
                    Some(keys) => Value::Object(
                        keys.iter()
                            .filter_map(|k| item.get(k).map(|v| (k.clone(), v.clone())))
                            .collect(),
                    ),
                };
                if !seen.insert(identity.to_string()) {
                    self.push(format!(
                        "{}: Duplicate value: {}",
                        Path::Index(path, index),
                        shown(&identity)
                    ));
                }
            }
        }
    }

    fn check_object(
        &mut self,
        schema: &JSONSchemaProps,
        map: &serde_json::Map<String, Value>,
        path: &Path<'_>,
    ) {
        if let Some(max) = schema.max_properties
            && exceeds(map.len(), max)
        {
            self.push(format!(
                "{path}: Too many: {}: must have at most {max} items",
                map.len()
            ));
        }
        if let Some(min) = schema.min_properties
            && below(map.len(), min)
        {
            self.push(format!(
                "{path}: Invalid value: {}: {path} in body should have at least {min} properties",
                map.len()
            ));
        }
        // A null field that may not be null is pruned by the API server: as good as absent.
        let present = |key: &str| {
            map.get(key).is_some_and(|v| {
                !v.is_null()
                    || schema
                        .properties
                        .as_ref()
                        .and_then(|p| p.get(key))
                        .is_some_and(|s| s.nullable == Some(true))
            })
        };
        for required in schema.required.iter().flatten() {
            if !present(required) {
                self.push(format!("{}: Required value", Path::Field(path, required)));
            }
        }
        let values = match &schema.additional_properties {
            Some(JSONSchemaPropsOrBool::Schema(values)) => Some(values.as_ref()),
            _ => None,
        };
        let open = schema.x_kubernetes_preserve_unknown_fields == Some(true)
            || matches!(
                schema.additional_properties,
                Some(JSONSchemaPropsOrBool::Bool(true))
            )
            || schema.properties.is_none() && values.is_none();
        for (key, field) in map {
            let property = schema.properties.as_ref().and_then(|p| p.get(key));
            let field_path = Path::Field(path, key);
            match (property, values) {
                (Some(property), _) => {
                    if present(key) {
                        self.check(property, field, &field_path);
                    }
                }
                (None, Some(values)) => {
                    if !(field.is_null() && values.nullable != Some(true)) {
                        self.check(values, field, &field_path);
                    }
                }
                (None, None) => {
                    if !(open || path.is_root() && OBJECT_FIELDS.contains(&key.as_str())) {
                        self.push(format!("unknown field \"{field_path}\""));
                    }
                }
            }
        }
    }
}

fn validate_at(schema: &JSONSchemaProps, value: &Value, path: &Path<'_>) -> Vec<String> {
    let mut errors = Vec::new();
    Walk {
        errors: &mut errors,
    }
    .check(schema, value, path);
    errors
}

/// `metadata.name` must be set and a DNS subdomain; `metadata.namespace`, when the kind is
/// namespaced and one is given, a DNS label.
pub fn validate_metadata(metadata: Option<&Value>, namespaced: bool) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(metadata) = metadata.filter(|m| !m.is_null()) else {
        return vec!["metadata.name: Required value: name or generateName is required".to_owned()];
    };
    let Some(metadata) = metadata.as_object() else {
        let actual = type_name(metadata);
        return vec![format!(
            "metadata: Invalid value: \"{actual}\": metadata in body must be of type object: \"{actual}\""
        )];
    };
    match metadata.get("name") {
        None | Some(Value::Null) => {
            errors.push("metadata.name: Required value: name or generateName is required".into());
        }
        Some(Value::String(name)) => {
            if let Some(why) = dns_subdomain(name) {
                errors.push(format!(
                    "metadata.name: Invalid value: {}: {why}",
                    shown_str(name)
                ));
            }
        }
        Some(other) => errors.push(format!(
            "metadata.name: Invalid value: \"{0}\": metadata.name in body must be of type string: \"{0}\"",
            type_name(other)
        )),
    }
    match metadata.get("namespace") {
        None | Some(Value::Null) => {}
        Some(Value::String(namespace)) if namespaced => {
            if let Some(why) = dns_label(namespace) {
                errors.push(format!(
                    "metadata.namespace: Invalid value: {}: {why}",
                    shown_str(namespace)
                ));
            }
        }
        Some(Value::String(_)) => {}
        Some(other) => errors.push(format!(
            "metadata.namespace: Invalid value: \"{0}\": metadata.namespace in body must be of type string: \"{0}\"",
            type_name(other)
        )),
    }
    errors
}

/// Why `name` is not an RFC 1123 subdomain (the API server's wording), if it is not.
fn dns_subdomain(name: &str) -> Option<String> {
    if name.len() > 253 {
        return Some("must be no more than 253 characters".to_owned());
    }
    let label_ok = |label: &str| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
            && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    };
    if name.split('.').all(label_ok) {
        None
    } else {
        Some("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_owned())
    }
}

/// Why `name` is not an RFC 1123 label (the API server's wording), if it is not.
fn dns_label(name: &str) -> Option<String> {
    if name.len() > 63 {
        return Some("must be no more than 63 characters".to_owned());
    }
    let bytes = name.as_bytes();
    let ok = bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if ok {
        None
    } else {
        Some("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_owned())
    }
}

fn type_name(value: &Value) -> &'static str {
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
fn integral_i64(value: f64) -> Option<i64> {
    let in_range = value >= i64::MIN as f64 && value < i64::MAX as f64;
    (value.fract() == 0.0 && in_range).then_some(value as i64)
}

fn exceeds(count: usize, max: i64) -> bool {
    i64::try_from(count).map_or(true, |count| count > max)
}

fn below(count: usize, min: i64) -> bool {
    i64::try_from(count).is_ok_and(|count| count < min)
}

/// Values as the API server quotes them, cut short so a huge value does not make a huge error.
fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => shown_str(text),
        other => truncated(other.to_string()),
    }
}

fn shown_str(text: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn workload(spec: Value) -> Value {
        json!({
            "apiVersion": "sovra.dev/v1alpha1",
            "kind": "SovereignWorkload",
            "metadata": {"name": "tax", "namespace": "fin"},
            "spec": spec,
        })
    }

    fn errors_of(kind: &str, mut object: Value) -> Vec<String> {
        let Some(schema) = for_kind(kind) else {
            unreachable!("no schema for {kind}");
        };
        schema.apply_defaults(&mut object);
        schema.validate(&object)
    }

    #[test]
    fn a_valid_workload_has_no_violations() {
        let object = workload(json!({"sensitivity": "internal", "replicas": 2, "template": {}}));
        assert_eq!(errors_of("SovereignWorkload", object), Vec::<String>::new());
    }

    #[test]
    fn a_negative_replica_count_is_reported_as_the_api_server_does() {
        let object = workload(json!({"sensitivity": "internal", "replicas": -1, "template": {}}));
        assert_eq!(
            errors_of("SovereignWorkload", object),
            [
                "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0"
            ]
        );
    }

    #[test]
    fn types_enums_patterns_bounds_and_required_fields_are_checked_with_field_paths() {
        let object = workload(json!({
            "replicas": "three",
            "template": {},
            "placement": {"clusters": 65, "requiredCountries": ["nl", "NL", "NL"]},
        }));
        let errors = errors_of("SovereignWorkload", object);
        for expected in [
            "spec.sensitivity: Required value",
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
            "spec.placement.clusters: Invalid value: 65: spec.placement.clusters in body should be less than or equal to 64",
            "spec.placement.requiredCountries[0]: Invalid value: \"nl\": spec.placement.requiredCountries[0] in body should match '^[A-Z]{2}$'",
            "spec.placement.requiredCountries[2]: Duplicate value: \"NL\"",
        ] {
            assert!(
                errors.iter().any(|e| e == expected),
                "{expected}\n{errors:#?}"
            );
        }
        assert_eq!(errors.len(), 5, "{errors:#?}");
    }

    #[test]
    fn too_long_strings_and_too_many_items_are_reported() {
        let countries: Vec<String> = (0..31)
            .map(|i| format!("{}{}", 'A', char::from(b'A' + (i % 26) as u8)))
            .collect();
        let object = workload(json!({
            "sensitivity": "x".repeat(254),
            "template": {},
            "placement": {"requiredCountries": countries},
        }));
        let errors = errors_of("SovereignWorkload", object);
        assert!(
            errors
                .contains(&"spec.sensitivity: Too long: may not be more than 253 bytes".to_owned()),
            "{errors:#?}"
        );
        assert!(
            errors.contains(
                &"spec.placement.requiredCountries: Too many: 31: must have at most 30 items"
                    .to_owned()
            ),
            "{errors:#?}"
        );
    }

    #[test]
    fn an_enum_value_outside_the_list_is_unsupported() {
        let object = json!({
            "apiVersion": "sovra.dev/v1alpha1",
            "kind": "SensitivityClass",
            "metadata": {"name": "x"},
            "spec": {"enforcement": "sometimes"},
        });
        let errors = errors_of("SensitivityClass", object);
        assert!(
            errors.iter().any(|e| e.starts_with(
                "spec.enforcement: Unsupported value: \"sometimes\": supported values: "
            )),
            "{errors:#?}"
        );
    }

    #[test]
    fn unknown_fields_are_reported_and_the_pod_template_is_free_form() {
        let object = workload(
            json!({"sensitivity": "internal", "replica": 3, "template": {"anything": [1]}}),
        );
        assert_eq!(
            errors_of("SovereignWorkload", object),
            ["unknown field \"spec.replica\""]
        );
    }

    #[test]
    fn nulls_are_pruned_and_defaults_applied_before_validation() {
        let mut object =
            workload(json!({"sensitivity": "internal", "replicas": null, "template": {}}));
        let Some(schema) = for_kind("SovereignWorkload") else {
            unreachable!()
        };
        schema.apply_defaults(&mut object);
        assert_eq!(object.pointer("/spec/replicas"), Some(&json!(1)));
        assert_eq!(object.pointer("/spec/placement/clusters"), Some(&json!(1)));
        assert!(schema.validate(&object).is_empty());
    }

    #[test]
    fn cel_rules_give_what_crd_validate_cel_gives_without_recompiling() {
        let object = workload(json!({
            "sensitivity": "internal",
            "template": {},
            "placement": {"requiredCountries": ["NL"], "preferredCountries": ["DE"]},
        }));
        let Some(schema) = for_kind("SovereignWorkload") else {
            unreachable!()
        };
        let expected = crate::crd::validate_cel("SovereignWorkload", &object);
        assert_eq!(expected.len(), 1, "{expected:?}");
        assert_eq!(schema.validate_cel(&object), expected);
        assert_eq!(schema.validate_cel(&object), expected);
    }

    #[test]
    fn a_missing_or_malformed_name_is_reported() {
        let mut object = workload(json!({"sensitivity": "internal", "template": {}}));
        if let Some(meta) = object.get_mut("metadata") {
            *meta = json!({"name": "Tax_Assessment", "namespace": "Fin"});
        }
        let errors = errors_of("SovereignWorkload", object);
        assert!(
            errors.iter().any(|e| e.starts_with(
                "metadata.name: Invalid value: \"Tax_Assessment\": a lowercase RFC 1123 subdomain"
            )),
            "{errors:#?}"
        );
        assert!(
            errors.iter().any(|e| e.starts_with(
                "metadata.namespace: Invalid value: \"Fin\": a lowercase RFC 1123 label"
            )),
            "{errors:#?}"
        );
        let nameless =
            json!({"apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignWorkload", "spec": {}});
        let errors = errors_of("SovereignWorkload", nameless);
        assert!(
            errors.contains(
                &"metadata.name: Required value: name or generateName is required".to_owned()
            ),
            "{errors:#?}"
        );
    }

    #[test]
    fn a_value_of_any_shape_is_checked_without_a_panic() {
        let Some(schema) = for_kind("SovereignCluster") else {
            unreachable!()
        };
        for mut value in [
            json!(null),
            json!(7),
            json!("x"),
            json!([[]]),
            json!({"spec": [1, {"a": null}]}),
            json!({"metadata": 3, "spec": {"country": 1e300}}),
        ] {
            schema.apply_defaults(&mut value);
            let _ = schema.validate(&value);
        }
    }
}
