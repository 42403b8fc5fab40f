//! Client-side OpenAPI v3 schema checks of custom resources, as the API server makes them:
//! null fields pruned and defaults applied first ([`apply_defaults`]), then every value checked
//! against its schema ([`validate`]) with the API server's field paths and messages, e.g.
//! `spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0`.
//!
//! Pure and bounded: recursion follows the schema (which is finite), never the value alone, so
//! any value is safe to check. [`for_kind`] gives the schema of one of Sovra's own kinds.

mod defaults;
mod json_type;
mod metadata;
mod object_schema;
mod path;
mod quoting;
mod walk;

pub use defaults::apply_defaults;
pub use metadata::validate_metadata;
pub use object_schema::{ObjectSchema, for_kind};
pub use walk::validate;

#[cfg(test)]
mod tests;
