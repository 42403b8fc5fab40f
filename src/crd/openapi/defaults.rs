//! Pruning and defaulting come before validation, as on the API server: a null that is pruned
//! or a default that is filled in must not be reported as a violation.

use super::json_type::integral_i64;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;

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
