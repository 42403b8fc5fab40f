//! Tests of a whole check as `sovra plan` makes it (schema of a kind, defaults, then
//! validation), so they sit beside the module rather than beside one of its parts.

use super::*;
use serde_json::{Value, json};

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
        errors.contains(&"spec.sensitivity: Too long: may not be more than 253 bytes".to_owned()),
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
        errors.iter().any(|e| e
            .starts_with("spec.enforcement: Unsupported value: \"sometimes\": supported values: ")),
        "{errors:#?}"
    );
}

#[test]
fn unknown_fields_are_reported_and_the_pod_template_is_free_form() {
    let object =
        workload(json!({"sensitivity": "internal", "replica": 3, "template": {"anything": [1]}}));
    assert_eq!(
        errors_of("SovereignWorkload", object),
        ["unknown field \"spec.replica\""]
    );
}

#[test]
fn nulls_are_pruned_and_defaults_applied_before_validation() {
    let mut object = workload(json!({"sensitivity": "internal", "replicas": null, "template": {}}));
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
        errors.iter().any(|e| e
            .starts_with("metadata.namespace: Invalid value: \"Fin\": a lowercase RFC 1123 label")),
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
