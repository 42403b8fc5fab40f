//! Arrays and objects: sizes, uniqueness of list items, required and unknown fields, and the
//! descent into items and fields, which is where the walk recurses.

use super::{Walk, below, exceeds};
use crate::crd::openapi::path::Path;
use crate::crd::openapi::quoting::shown;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;
use std::collections::HashSet;

/// Fields every object has, whatever its schema lists.
const OBJECT_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

impl Walk<'_> {
    pub(super) fn check_array(
        &mut self,
        schema: &JSONSchemaProps,
        items: &[Value],
        path: &Path<'_>,
    ) {
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

    pub(super) fn check_object(
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
