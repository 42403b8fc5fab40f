//! Structural schemas of custom resources: pruning, null pruning, defaulting and the
//! OpenAPI value checks, ported from upstream's
//! `apiextensions-apiserver/pkg/apiserver/schema/{pruning,defaulting,listtype,objectmeta}`
//! and kube-openapi's `validate` package (the messages are kube-openapi's, e.g.
//! `spec.replicas in body should be greater than or equal to 0`).
//!
//! Updates ratchet like upstream's `CRDValidationRatcheting` (GA, always on since 1.33):
//! errors found in a part of the object that is unchanged from the stored object are
//! dropped. "Unchanged" is upstream's `CorrelatedObject.CachedDeepEqual`: a map field is
//! correlated to the old one only if it has a schema, a list item only through
//! `x-kubernetes-list-type: map` keys, and other lists compare as a whole.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::render::{self, quote};
use crate::error::{ApiError, FieldError, FieldErrorType};

/// One step of a path through an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Field(String),
    /// A key of an `additionalProperties` map.
    Key(String),
    Index(usize),
}

/// A path as upstream's `field.Path` prints it: `spec.labels[key]`, `spec.items[0]`.
pub fn field_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Field(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            Seg::Key(key) => out.push_str(&format!("[{key}]")),
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A path as kube-openapi names it in messages: map keys are dotted, `spec.labels.key`.
fn openapi_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Field(name) | Seg::Key(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

pub fn props(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

pub fn items(schema: &Value) -> Option<&Value> {
    schema.get("items").filter(|i| i.is_object())
}

/// The `additionalProperties` schema (`additionalProperties: true` has none).
pub fn additional(schema: &Value) -> Option<&Value> {
    schema.get("additionalProperties").filter(|a| a.is_object())
}

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool) == Some(true)
}

pub fn preserves_unknown(schema: &Value) -> bool {
    flag(schema, "x-kubernetes-preserve-unknown-fields")
}

pub fn embedded(schema: &Value) -> bool {
    flag(schema, "x-kubernetes-embedded-resource")
}

pub fn int_or_string(schema: &Value) -> bool {
    flag(schema, "x-kubernetes-int-or-string")
}

fn nullable(schema: &Value) -> bool {
    flag(schema, "nullable")
}

pub fn list_type(schema: &Value) -> &str {
    schema
        .get("x-kubernetes-list-type")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn list_map_keys(schema: &Value) -> Vec<&str> {
    let keys = schema
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array);
    keys.into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// The schema of a map's field: its property, else the `additionalProperties` schema.
pub fn child_schema<'a>(schema: &'a Value, key: &str) -> Option<&'a Value> {
    props(schema)
        .and_then(|p| p.get(key))
        .or_else(|| additional(schema))
}

const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// `pruning.Prune`: drops fields the schema does not declare, unless
/// `x-kubernetes-preserve-unknown-fields` applies; `apiVersion`, `kind` and `metadata`
/// stay at the root and in embedded resources.
pub fn prune(value: &mut Value, schema: &Value) {
    prune_node(value, Some(schema), true);
}

fn prune_node(value: &mut Value, schema: Option<&Value>, resource_root: bool) {
    if let Some(schema) = schema.filter(|s| preserves_unknown(s)) {
        skip_prune(value, schema, resource_root);
        return;
    }
    let keeps_meta = |s: Option<&Value>| resource_root || s.is_some_and(embedded);
    match value {
        Value::Object(map) => {
            let Some(schema) = schema else {
                map.clear();
                return;
            };
            let keep_meta = keeps_meta(Some(schema));
            map.retain(|k, _| {
                (keep_meta && META_FIELDS.contains(&k.as_str()))
                    || props(schema).is_some_and(|p| p.contains_key(k))
                    || additional(schema).is_some()
                    || schema.get("additionalProperties") == Some(&Value::Bool(true))
            });
            for (k, v) in map.iter_mut() {
                if keep_meta && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                match props(schema).and_then(|p| p.get(k)) {
                    Some(prop) => prune_node(v, Some(prop), false),
                    None => prune_node(v, additional(schema), false),
                }
            }
        }
        Value::Array(list) => {
            let item_schema = schema.and_then(items);
            for v in list {
                prune_node(v, item_schema, false);
            }
        }
        _ => {}
    }
}

fn skip_prune(value: &mut Value, schema: &Value, resource_root: bool) {
    let keep_meta = resource_root || embedded(schema);
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if keep_meta && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                if let Some(prop) = props(schema).and_then(|p| p.get(k)) {
                    prune_node(v, Some(prop), false);
                } else if let Some(additional) = additional(schema) {
                    prune_node(v, Some(additional), false);
                }
            }
        }
        Value::Array(list) => {
            if let Some(item_schema) = items(schema) {
                for v in list {
                    skip_prune(v, item_schema, false);
                }
            }
        }
        _ => {}
    }
}

/// `PruneNonNullableNullsWithoutDefaults`: a `null` for a field that is neither nullable
/// nor defaulted is dropped, as decoding into a Go struct would.
pub fn prune_nulls(value: &mut Value, schema: Option<&Value>) {
    match value {
        Value::Object(map) => {
            map.retain(|k, v| {
                let field_schema = schema.and_then(|s| child_schema(s, k));
                !(v.is_null()
                    && field_schema.is_some_and(|s| !nullable(s) && s.get("default").is_none()))
            });
            for (k, v) in map.iter_mut() {
                prune_nulls(v, schema.and_then(|s| child_schema(s, k)));
            }
        }
        Value::Array(list) => {
            for v in list {
                prune_nulls(v, schema.and_then(items));
            }
        }
        _ => {}
    }
}

fn non_nullable_null(value: &Value, schema: &Value) -> bool {
    value.is_null() && !nullable(schema)
}

/// `defaulting.Default`: missing fields (and non-nullable nulls) with a `default` get it,
/// at every level, defaults included.
pub fn default(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(map) => {
            for (k, prop) in props(schema).into_iter().flatten() {
                let Some(default) = prop.get("default") else {
                    continue;
                };
                if map.get(k).is_none_or(|v| non_nullable_null(v, prop)) {
                    map.insert(k.clone(), default.clone());
                }
            }
            for (k, v) in map.iter_mut() {
                if let Some(prop) = props(schema).and_then(|p| p.get(k)) {
                    default(v, prop);
                } else if let Some(additional) = additional(schema) {
                    if let (true, Some(d)) =
                        (non_nullable_null(v, additional), additional.get("default"))
                    {
                        *v = d.clone();
                    }
                    default(v, additional);
                }
            }
        }
        Value::Array(list) => {
            if let Some(item_schema) = items(schema) {
                for v in list {
                    if let (true, Some(d)) = (
                        non_nullable_null(v, item_schema),
                        item_schema.get("default"),
                    ) {
                        *v = d.clone();
                    }
                    default(v, item_schema);
                }
            }
        }
        _ => {}
    }
}

/// The old item a map-list item correlates to: the one with the same key fields.
pub fn map_list_old<'a>(schema: &Value, old: &'a [Value], item: &Value) -> Option<&'a Value> {
    let keys = list_map_keys(schema);
    if keys.is_empty() {
        return None;
    }
    let key_of =
        |v: &Value| -> Vec<Option<Value>> { keys.iter().map(|k| v.get(k).cloned()).collect() };
    let wanted = key_of(item);
    old.iter().find(|o| o.is_object() && key_of(o) == wanted)
}

/// Upstream's `CorrelatedObject.CachedDeepEqual`: is this node unchanged, in the sense
/// ratcheting uses?
pub fn correlated_equal(schema: &Value, new: &Value, old: &Value) -> bool {
    match (new, old) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Array(n), Value::Array(o)) => {
            if n.len() != o.len() {
                return false;
            }
            match items(schema) {
                Some(item_schema) if list_type(schema) == "map" => n.iter().all(|item| {
                    map_list_old(schema, o, item)
                        .is_some_and(|old_item| correlated_equal(item_schema, item, old_item))
                }),
                _ => n == o,
            }
        }
        (Value::Object(n), Value::Object(o)) => {
            n.len() == o.len()
                && n.iter()
                    .all(|(k, v)| match (o.get(k), child_schema(schema, k)) {
                        (Some(old_v), Some(child)) => correlated_equal(child, v, old_v),
                        _ => false,
                    })
        }
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => false,
        _ => new == old,
    }
}

/// The correlated old value of a map's field, as `CorrelatedObject.Key`.
pub fn old_field<'a>(schema: &Value, old: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    child_schema(schema, key)?;
    old?.as_object()?.get(key)
}

/// The correlated old value of a list item, as `CorrelatedObject.Index`: only map lists
/// correlate their items.
pub fn old_item<'a>(schema: &Value, old: Option<&'a Value>, item: &Value) -> Option<&'a Value> {
    if list_type(schema) != "map" {
        return None;
    }
    map_list_old(schema, old?.as_array()?, item)
}

/// The JSON type kube-openapi sees for a decoded value.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.as_i64().is_some() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `swag.IsFloat64AJSONInteger`.
fn float_is_json_integer(f: f64) -> bool {
    const MAX: f64 = 9_007_199_254_740_992.0; // 2^53
    f.is_finite() && f.fract() == 0.0 && (-MAX..=MAX).contains(&f)
}

fn types_of(schema: &Value) -> Vec<&str> {
    if int_or_string(schema) {
        return vec!["integer", "string"];
    }
    schema
        .get("type")
        .and_then(Value::as_str)
        .into_iter()
        .collect()
}

fn enum_matches(value: &Value, allowed: &Value) -> bool {
    match (value, allowed) {
        // Go compares a decoded null with nothing: even `enum: [null]` does not match.
        (Value::Null, _) => false,
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => value == allowed,
    }
}

static PATTERNS: LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, Result<Regex, String>>>,
> = LazyLock::new(Default::default);

/// A schema `pattern`, compiled once. Go's RE2 syntax and the `regex` crate agree on what
/// CRD patterns use (no look-around, no backreferences in either).
fn pattern_matches(pattern: &str, text: &str) -> Result<bool, String> {
    let mut cache = PATTERNS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let compiled = cache
        .entry(pattern.to_string())
        .or_insert_with(|| Regex::new(pattern).map_err(|e| e.to_string()));
    compiled
        .as_ref()
        .map(|re| re.is_match(text))
        .map_err(Clone::clone)
}

/// kube-openapi's value validation, with upstream's ratcheting.
pub struct SchemaCheck {
    /// `status` when only the status is validated (the status subresource); field paths
    /// are then `status.<name>` while messages name the field relative to the status.
    prefix: &'static str,
    pub errors: Vec<FieldError>,
}

impl SchemaCheck {
    pub fn new(prefix: &'static str) -> Self {
        SchemaCheck {
            prefix,
            errors: Vec::new(),
        }
    }

    fn field(&self, name: &str) -> String {
        let name = name.trim_start_matches('.');
        match (self.prefix.is_empty(), name.is_empty()) {
            (true, true) => "<nil>".to_string(),
            (true, false) => name.to_string(),
            (false, true) => self.prefix.to_string(),
            (false, false) => format!("{}.{name}", self.prefix),
        }
    }

    fn push(&mut self, kind: FieldErrorType, name: &str, value: Option<String>, detail: String) {
        let field = self.field(name);
        self.errors
            .push(FieldError::new(kind, field, value, detail));
    }

    /// Validates `value` at `path` against `schema`; `old` is the correlated old value on
    /// updates.
    pub fn node(
        &mut self,
        schema: &Value,
        value: &Value,
        old: Option<&Value>,
        path: &mut Vec<Seg>,
    ) {
        let start = self.errors.len();
        self.check(schema, value, old, path);
        if self.errors.len() > start
            && let Some(old) = old
            && correlated_equal(schema, value, old)
        {
            self.errors.truncate(start);
        }
    }

    fn check(&mut self, schema: &Value, value: &Value, old: Option<&Value>, path: &mut Vec<Seg>) {
        let name = openapi_path(path);
        let types = types_of(schema);
        let actual = json_type(value);
        if value.is_null() {
            if !types.is_empty() && !nullable(schema) {
                self.push(
                    FieldErrorType::TypeInvalid,
                    &name,
                    Some(quote("null")),
                    format!(
                        "{name} in body must be of type {}: \"null\"",
                        types.join(",")
                    ),
                );
            }
            self.check_enum(schema, value, &name);
            return;
        }
        let float_int = actual == "number"
            && types.contains(&"integer")
            && value.as_f64().is_some_and(float_is_json_integer);
        let int_float = actual == "integer" && types.contains(&"number");
        if !types.is_empty() && !types.contains(&actual) && !float_int && !int_float {
            self.push(
                FieldErrorType::TypeInvalid,
                &name,
                Some(quote(actual)),
                format!(
                    "{name} in body must be of type {}: {}",
                    types.join(","),
                    quote(actual)
                ),
            );
            self.check_enum(schema, value, &name);
            return;
        }
        self.check_combinators(schema, value, old, path, &name);
        match value {
            Value::String(text) => {
                self.check_string(schema, text, &name);
                self.check_format(schema, text, &name);
            }
            Value::Number(_) => self.check_number(schema, value, &name),
            Value::Array(list) => self.check_array(schema, list, old, path, &name),
            _ => {}
        }
        self.check_enum(schema, value, &name);
        if let Value::Object(map) = value {
            self.check_object(schema, map, old, path, &name);
        }
    }

    fn check_combinators(
        &mut self,
        schema: &Value,
        value: &Value,
        old: Option<&Value>,
        path: &mut Vec<Seg>,
        name: &str,
    ) {
        let branches = |key: &str| -> Vec<Value> {
            schema
                .get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        for branch in branches("allOf") {
            self.check(&branch, value, old, path);
        }
        let prefix = self.prefix;
        let passes = |branch: &Value, path: &mut Vec<Seg>| {
            let mut probe = SchemaCheck::new(prefix);
            probe.check(branch, value, None, path);
            probe.errors.is_empty()
        };
        let any_of = branches("anyOf");
        if !any_of.is_empty() && !any_of.iter().any(|b| passes(b, path)) {
            self.push(
                FieldErrorType::Invalid,
                name,
                Some(quote("")),
                format!("{name} must validate at least one schema (anyOf)"),
            );
        }
        let one_of = branches("oneOf");
        if !one_of.is_empty() && one_of.iter().filter(|b| passes(b, path)).count() != 1 {
            self.push(
                FieldErrorType::Invalid,
                name,
                Some(quote("")),
                format!("{name} must validate one and only one schema (oneOf)"),
            );
        }
        if let Some(not) = schema.get("not").filter(|n| n.is_object())
            && passes(not, path)
        {
            self.push(
                FieldErrorType::Invalid,
                name,
                Some(quote("")),
                format!("{name} must not validate the schema (not)"),
            );
        }
    }

    fn check_string(&mut self, schema: &Value, text: &str, name: &str) {
        let runes = text.chars().count() as u64;
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && runes > max
        {
            let detail = format!("may not be more than {max} bytes");
            self.push(FieldErrorType::TooLong, name, Some(quote(text)), detail);
            return;
        }
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && runes < min
        {
            let detail = format!("{name} in body should be at least {min} chars long");
            self.push(FieldErrorType::Invalid, name, Some(quote(text)), detail);
            return;
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            let detail = match pattern_matches(pattern, text) {
                Ok(true) => return,
                Ok(false) => format!("{name} in body should match '{pattern}'"),
                Err(err) => {
                    format!(
                        "{name} in body should match '{pattern}, but pattern is invalid: {err}'"
                    )
                }
            };
            self.push(FieldErrorType::Invalid, name, Some(quote(text)), detail);
        }
    }

    fn check_format(&mut self, schema: &Value, text: &str, name: &str) {
        let Some(format) = schema.get("format").and_then(Value::as_str) else {
            return;
        };
        if !super::formats::valid(format, text) {
            let detail = format!("{name} in body must be of type {format}: {}", quote(text));
            self.push(FieldErrorType::TypeInvalid, name, Some(quote(text)), detail);
        }
    }

    fn check_number(&mut self, schema: &Value, value: &Value, name: &str) {
        let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
        let exclusive = |key: &str| flag(schema, key);
        let int = value.as_i64();
        let float = value.as_f64().unwrap_or(f64::NAN);
        let shown = render::go_value(value);
        if let Some(factor) = bound("multipleOf") {
            let not_multiple = match int {
                Some(i) if factor >= 1.0 => {
                    let factor = factor as i64;
                    factor != 0 && i % factor != 0
                }
                _ => {
                    let mult = if factor < 1.0 {
                        1.0 / factor * float
                    } else {
                        float / factor
                    };
                    !float_is_json_integer(mult)
                }
            };
            if factor <= 0.0 {
                let detail = format!(
                    "factor MultipleOf declared for {name} must be positive: {}",
                    render::go_float(factor)
                );
                self.push(
                    FieldErrorType::Invalid,
                    name,
                    Some(render::go_float(factor)),
                    detail,
                );
            } else if not_multiple {
                let detail = format!(
                    "{name} in body should be a multiple of {}",
                    render::go_float(factor)
                );
                self.push(FieldErrorType::Invalid, name, Some(shown.clone()), detail);
            }
        }
        if let Some(min) = bound("minimum") {
            let excl = exclusive("exclusiveMinimum");
            let (below, shown_min) = match int {
                Some(i) => {
                    let min = min as i64;
                    (if excl { i <= min } else { i < min }, min.to_string())
                }
                None => (
                    if excl { float <= min } else { float < min },
                    render::go_float(min),
                ),
            };
            if below {
                let how = if excl {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                let detail = format!("{name} in body should be {how} {shown_min}");
                self.push(FieldErrorType::Invalid, name, Some(shown.clone()), detail);
            }
        }
        if let Some(max) = bound("maximum") {
            let excl = exclusive("exclusiveMaximum");
            let (above, shown_max) = match int {
                Some(i) => {
                    let max = max as i64;
                    (if excl { i >= max } else { i > max }, max.to_string())
                }
                None => (
                    if excl { float >= max } else { float > max },
                    render::go_float(max),
                ),
            };
            if above {
                let how = if excl {
                    "less than"
                } else {
                    "less than or equal to"
                };
                let detail = format!("{name} in body should be {how} {shown_max}");
                self.push(FieldErrorType::Invalid, name, Some(shown), detail);
            }
        }
    }

    fn check_array(
        &mut self,
        schema: &Value,
        list: &[Value],
        old: Option<&Value>,
        path: &mut Vec<Seg>,
        name: &str,
    ) {
        if let Some(item_schema) = items(schema) {
            for (i, item) in list.iter().enumerate() {
                path.push(Seg::Index(i));
                self.node(item_schema, item, old_item(schema, old, item), path);
                path.pop();
            }
        }
        let size = list.len() as u64;
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && size < min
        {
            let detail = format!("{name} in body should have at least {min} items");
            self.push(
                FieldErrorType::Invalid,
                name,
                Some(size.to_string()),
                detail,
            );
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && size > max
        {
            let detail = format!("must have at most {max} items");
            self.push(
                FieldErrorType::TooMany,
                name,
                Some(size.to_string()),
                detail,
            );
        }
    }

    fn check_enum(&mut self, schema: &Value, value: &Value, name: &str) {
        let Some(allowed) = schema
            .get("enum")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
        else {
            return;
        };
        if allowed.iter().any(|a| enum_matches(value, a)) {
            return;
        }
        let listed: Vec<String> = allowed
            .iter()
            .map(|a| match a {
                Value::String(s) => quote(s),
                other => quote(&other.to_string()),
            })
            .collect();
        let detail = format!("supported values: {}", listed.join(", "));
        self.push(
            FieldErrorType::NotSupported,
            name,
            Some(render::go_value(value)),
            detail,
        );
    }

    fn check_object(
        &mut self,
        schema: &Value,
        map: &Map<String, Value>,
        old: Option<&Value>,
        path: &mut Vec<Seg>,
        name: &str,
    ) {
        let count = map.len() as u64;
        if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
            && count < min
        {
            let detail = format!("{name} in body should have at least {min} properties");
            self.push(
                FieldErrorType::Invalid,
                name,
                Some(count.to_string()),
                detail,
            );
            return;
        }
        if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
            && count > max
        {
            let detail = format!("must have at most {max} items");
            self.push(
                FieldErrorType::TooMany,
                name,
                Some(count.to_string()),
                detail,
            );
            return;
        }
        let declared = props(schema);
        if let Some(additional) = additional(schema) {
            for (k, v) in map {
                if declared.is_some_and(|p| p.contains_key(k)) {
                    continue;
                }
                path.push(Seg::Key(k.clone()));
                self.node(additional, v, old_field(schema, old, k), path);
                path.pop();
            }
        }
        for (k, prop) in declared.into_iter().flatten() {
            if let Some(v) = map.get(k) {
                path.push(Seg::Field(k.clone()));
                self.node(prop, v, old_field(schema, old, k), path);
                path.pop();
            }
        }
        let required = schema.get("required").and_then(Value::as_array);
        for k in required.into_iter().flatten().filter_map(Value::as_str) {
            if !map.contains_key(k) {
                let field = self.field(&format!("{name}.{k}"));
                self.errors.push(FieldError::required(field, ""));
            }
        }
    }
}

/// `listtype.ValidateListSetsAndMaps`: set items and map-list keys must be unique.
pub fn list_sets_and_maps(
    schema: &Value,
    value: &Value,
    path: &mut Vec<Seg>,
    errs: &mut Vec<FieldError>,
) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let (seg, child) = match props(schema).and_then(|p| p.get(k)) {
                    Some(prop) => (Seg::Field(k.clone()), prop),
                    None => match additional(schema) {
                        Some(additional) => (Seg::Key(k.clone()), additional),
                        None => continue,
                    },
                };
                path.push(seg);
                list_sets_and_maps(child, v, path, errs);
                path.pop();
            }
        }
        Value::Array(list) => {
            match list_type(schema) {
                "set" => {
                    for i in first_duplicates(list) {
                        path.push(Seg::Index(i));
                        let value = list.get(i).map(render::go_value).unwrap_or_default();
                        errs.push(FieldError::new(
                            FieldErrorType::Duplicate,
                            field_path(path),
                            Some(value),
                            "",
                        ));
                        path.pop();
                    }
                }
                "map" => list_map_keys_unique(schema, list, path, errs),
                _ => {}
            }
            if let Some(item_schema) = items(schema) {
                for (i, item) in list.iter().enumerate() {
                    path.push(Seg::Index(i));
                    list_sets_and_maps(item_schema, item, path, errs);
                    path.pop();
                }
            }
        }
        _ => {}
    }
}

/// The index of each value's second appearance (upstream reports only that one).
fn first_duplicates(list: &[Value]) -> Vec<usize> {
    let mut seen: Vec<(String, usize)> = Vec::new();
    let mut out = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let key = v.to_string();
        match seen.iter_mut().find(|(k, _)| *k == key) {
            Some((_, times)) => {
                *times += 1;
                if *times == 2 {
                    out.push(i);
                }
            }
            None => seen.push((key, 1)),
        }
    }
    out
}

fn list_map_keys_unique(
    schema: &Value,
    list: &[Value],
    path: &mut Vec<Seg>,
    errs: &mut Vec<FieldError>,
) {
    for (i, item) in list.iter().enumerate() {
        if !item.is_null() && !item.is_object() {
            path.push(Seg::Index(i));
            let message = "must be an object for an array of list-type map";
            errs.push(FieldError::invalid(
                field_path(path),
                render::go_value(item),
                message,
            ));
            path.pop();
            return;
        }
    }
    let keys = list_map_keys(schema);
    let key_of = |item: &Value| -> Value {
        let mut key = Map::new();
        for k in &keys {
            if let Some(v) = item.get(k) {
                key.insert((*k).to_string(), v.clone());
            }
        }
        Value::Object(key)
    };
    let key_values: Vec<Value> = list.iter().map(key_of).collect();
    for i in first_duplicates(&key_values) {
        path.push(Seg::Index(i));
        let value = key_values.get(i).map(render::go_value).unwrap_or_default();
        errs.push(FieldError::new(
            FieldErrorType::Duplicate,
            field_path(path),
            Some(value),
            "",
        ));
        path.pop();
    }
}

/// `objectmeta.Validate` for `x-kubernetes-embedded-resource` objects below the root:
/// `apiVersion` and `kind` are required and their metadata must be valid.
pub fn embedded_resources(
    schema: &Value,
    value: &Value,
    path: &mut Vec<Seg>,
    root: bool,
    errs: &mut Vec<FieldError>,
) {
    match value {
        Value::Object(map) => {
            if !root && embedded(schema) {
                embedded_resource(map, path, errs);
            }
            for (k, v) in map {
                let (seg, child) = match props(schema).and_then(|p| p.get(k)) {
                    Some(prop) => (Seg::Field(k.clone()), prop),
                    None => match additional(schema) {
                        Some(additional) => (Seg::Key(k.clone()), additional),
                        None => continue,
                    },
                };
                path.push(seg);
                embedded_resources(child, v, path, false, errs);
                path.pop();
            }
        }
        Value::Array(list) => {
            if let Some(item_schema) = items(schema) {
                for (i, item) in list.iter().enumerate() {
                    path.push(Seg::Index(i));
                    embedded_resources(item_schema, item, path, false, errs);
                    path.pop();
                }
            }
        }
        _ => {}
    }
}

fn embedded_resource(map: &Map<String, Value>, path: &mut Vec<Seg>, errs: &mut Vec<FieldError>) {
    let at = |path: &mut Vec<Seg>, field: &str| {
        path.push(Seg::Field(field.to_string()));
        let out = field_path(path);
        path.pop();
        out
    };
    for field in ["apiVersion", "kind"] {
        match map.get(field) {
            None => errs.push(FieldError::required(at(path, field), "")),
            Some(Value::String(s)) if s.is_empty() => {
                errs.push(FieldError::required(at(path, field), ""))
            }
            Some(Value::String(s)) if field == "kind" => {
                let problems = super::names::dns1035_label(&s.to_lowercase());
                if !problems.is_empty() {
                    let detail = format!(
                        "may have mixed case, but should otherwise match: {}",
                        problems.join(",")
                    );
                    errs.push(FieldError::invalid(at(path, field), quote(s), detail));
                }
            }
            Some(Value::String(s)) => {
                if s.split('/').count() > 2 {
                    let detail = format!("unexpected GroupVersion string: {s}");
                    errs.push(FieldError::invalid(at(path, field), quote(s), detail));
                }
            }
            Some(other) => errs.push(FieldError::invalid(
                at(path, field),
                render::go_value(other),
                "must be a string",
            )),
        }
    }
    if let Some(meta) = map.get("metadata") {
        let mut fake = Value::Object(Map::new());
        if let Value::Object(obj) = &mut fake {
            obj.insert("metadata".into(), meta.clone());
            if let Some(Value::Object(m)) = obj.get_mut("metadata")
                && m.get("name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
            {
                m.insert("name".into(), Value::from("fakename"));
            }
        }
        let namespaced = meta
            .get("namespace")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let mut meta_errs = Vec::new();
        super::names::validate_object_meta(
            &fake,
            namespaced,
            super::names::NameRule::PathSegment,
            false,
            &mut meta_errs,
        );
        let prefix = at(path, "metadata");
        for mut err in meta_errs {
            err.field = err.field.replacen("metadata", &prefix, 1);
            errs.push(err);
        }
    }
}

/// Embedded resources' metadata goes through `ObjectMeta` like the root's: unknown fields
/// are dropped, badly typed ones rejected (upstream's `objectmeta.Coerce`).
pub fn coerce_embedded(schema: &Value, value: &mut Value, root: bool) -> Result<(), ApiError> {
    match value {
        Value::Object(map) => {
            if !root && embedded(schema) && map.get("metadata").is_some_and(|m| !m.is_null()) {
                super::normalize_metadata_map(map, "ObjectMeta")?;
            }
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let child = match props(schema).and_then(|p| p.get(&k)) {
                    Some(prop) => prop,
                    None => match additional(schema) {
                        Some(additional) => additional,
                        None => continue,
                    },
                };
                if let Some(v) = map.get_mut(&k) {
                    coerce_embedded(child, v, false)?;
                }
            }
        }
        Value::Array(list) => {
            if let Some(item_schema) = items(schema) {
                for item in list {
                    coerce_embedded(item_schema, item, false)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// The names of the fields a value and its schema share, for tests of pruning.
#[cfg(test)]
fn keys(value: &Value) -> std::collections::HashSet<String> {
    value
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string", "maxLength": 3},
                "replicas": {"type": "integer", "minimum": 0, "default": 1},
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }}
        }})
    }

    fn check(value: &Value, old: Option<&Value>) -> Vec<String> {
        let mut c = SchemaCheck::new("");
        c.node(&schema(), value, old, &mut Vec::new());
        c.errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn pruning_keeps_declared_preserved_and_meta_fields() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"}, "junk": 1,
            "spec": {"name": "a", "bogus": true, "labels": {"k": "v"}, "free": {"any": {"thing": 1}}}});
        prune(&mut obj, &schema());
        assert_eq!(
            keys(&obj),
            ["apiVersion", "kind", "metadata", "spec"]
                .map(String::from)
                .into()
        );
        assert_eq!(
            obj["spec"],
            json!({"name": "a", "labels": {"k": "v"}, "free": {"any": {"thing": 1}}})
        );
    }

    #[test]
    fn defaults_fill_missing_fields_and_non_nullable_nulls() {
        let mut obj = json!({"spec": {"name": "a", "replicas": null}});
        default(&mut obj, &schema());
        assert_eq!(obj["spec"]["replicas"], 1);
    }

    #[test]
    fn checks_report_upstream_messages() {
        let errs = check(&json!({"spec": {"name": "abcd", "replicas": -1}}), None);
        assert!(
            errs.contains(&"spec.name: Too long: may not be more than 3 bytes".to_string()),
            "{errs:?}"
        );
        assert!(errs.contains(&"spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0".to_string()), "{errs:?}");
        let errs = check(&json!({"spec": {"replicas": "x"}}), None);
        assert!(
            errs.contains(&"spec.name: Required value".to_string()),
            "{errs:?}"
        );
        assert!(errs.contains(&"spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"".to_string()), "{errs:?}");
    }

    #[test]
    fn unchanged_invalid_values_ratchet() {
        let old = json!({"spec": {"name": "abcd", "replicas": -1}});
        assert!(check(&old, Some(&old)).is_empty());
        let new = json!({"spec": {"name": "abcd", "replicas": -2}});
        assert_eq!(check(&new, Some(&old)).len(), 1);
    }

    #[test]
    fn set_duplicates_are_reported_at_their_second_appearance() {
        let mut errs = Vec::new();
        let obj = json!({"spec": {"tags": ["a", "b", "a", "a"]}});
        list_sets_and_maps(&schema(), &obj, &mut Vec::new(), &mut errs);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].to_string(), "spec.tags[2]: Duplicate value: \"a\"");
    }
}
