//! Hand-written schema fragments where the derived one is not what the API server needs.

use super::bounds;
use schemars::{Schema, SchemaGenerator, json_schema};

/// `metav1.Condition` list as a map keyed by `type`, so server-side apply merges conditions
/// by type instead of replacing the whole list.
pub fn conditions(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "maxItems": bounds::CONDITIONS,
        // The bounds of metav1.Condition's own schema (message 32768, reason 1024, type 316).
        "items": {
            "type": "object",
            "properties": {
                "lastTransitionTime": { "format": "date-time", "type": "string", "maxLength": 64 },
                "message": { "type": "string", "maxLength": 32768 },
                "observedGeneration": { "type": "integer", "format": "int64", "minimum": 0 },
                "reason": { "type": "string", "maxLength": 1024 },
                "status": { "type": "string", "enum": ["True", "False", "Unknown"] },
                "type": { "type": "string", "maxLength": 316 }
            },
            "required": ["lastTransitionTime", "message", "reason", "status", "type"]
        }
    })
}

/// The pod template is kept schema-less in the CRD on purpose: the full PodTemplateSpec schema
/// makes the CRD larger than the 256 KiB `last-applied-configuration` annotation that a plain
/// `kubectl apply -f crds/` writes. The template is still validated twice: by the controller
/// (it must deserialize into a PodTemplateSpec, else `InvalidSpec`) and by the API server when
/// the Deployment built from it is applied.
pub fn pod_template(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "description": "A PodTemplateSpec, as in a Deployment (metadata and spec).",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// ISO 3166-1 alpha-2 country code.
pub fn country(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": "^[A-Z]{2}$",
        "maxLength": bounds::COUNTRY_CODE,
        "description": "ISO 3166-1 alpha-2 country code, upper case (e.g. NL)."
    })
}

/// A list of ISO 3166-1 alpha-2 country codes without duplicates.
pub fn countries(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "x-kubernetes-list-type": "set",
        "maxItems": bounds::COUNTRIES,
        "items": { "type": "string", "pattern": "^[A-Z]{2}$", "maxLength": bounds::COUNTRY_CODE },
        "description": "ISO 3166-1 alpha-2 country codes, upper case."
    })
}
