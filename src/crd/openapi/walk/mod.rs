//! The walk of a value along its schema that collects every violation, one message each, in
//! the API server's words. Recursion follows the schema, never the value alone, so it ends for
//! any value. What applies to strings and numbers, and to arrays and objects, is in the
//! submodules; the type, `enum` and the combinators (`allOf`, `anyOf`, `oneOf`, `not`) apply to
//! every value and are here.

mod collections;
mod scalars;

use super::json_type::{integral_i64, type_name};
use super::path::Path;
use super::quoting::shown;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::Value;

/// Every violation of `value` against `schema`, with `value` at the root of an object.
pub fn validate(schema: &JSONSchemaProps, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    Walk {
        errors: &mut errors,
    }
    .check(schema, value, &Path::Root);
    errors
}

pub(super) struct Walk<'e> {
    pub(super) errors: &'e mut Vec<String>,
}

impl Walk<'_> {
    fn push(&mut self, message: String) {
        self.errors.push(message);
    }

    pub(super) fn check(&mut self, schema: &JSONSchemaProps, value: &Value, path: &Path<'_>) {
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
}

fn validate_at(schema: &JSONSchemaProps, value: &Value, path: &Path<'_>) -> Vec<String> {
    let mut errors = Vec::new();
    Walk {
        errors: &mut errors,
    }
    .check(schema, value, path);
    errors
}

fn exceeds(count: usize, max: i64) -> bool {
    i64::try_from(count).map_or(true, |count| count > max)
}

fn below(count: usize, min: i64) -> bool {
    i64::try_from(count).is_ok_and(|count| count < min)
}
