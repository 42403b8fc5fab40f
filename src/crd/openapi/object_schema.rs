//! One kind's schema as `sovra plan` holds it: built once from Sovra's own CRDs, with what the
//! API server does to an object of the kind on create, so checking many objects never
//! regenerates a CRD or recompiles its CEL rules per object.

use super::defaults::apply_defaults;
use super::metadata::validate_metadata;
use super::path::Path;
use super::walk::Walk;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::Value;
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
