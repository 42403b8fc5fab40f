//! The CEL rules in the generated CRDs reject bad specs as the API server would. Evaluated
//! client-side with kube's CEL validator on the generated schema (the same rules `sovra plan`
//! applies to its input).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::{Value, json};

fn schema(kind: &str) -> Value {
    let crd = sovra::crd::all()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

fn validate(kind: &str, object: &Value, old: Option<&Value>) -> Result<(), String> {
    kube::core::cel::Validator::new()
        .validate(&schema(kind), object, old)
        .map_err(|e| e.to_string())
}

fn workload(class: &str, placement: Value) -> Value {
    json!({
        "apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignWorkload",
        "metadata": {"name": "w", "namespace": "ns"},
        "spec": {"sensitivity": class, "replicas": 1, "placement": placement,
                 "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}
    })
}

fn cluster(connection: Value) -> Value {
    json!({
        "apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignCluster", "metadata": {"name": "c"},
        "spec": {"country": "NL", "operatedBy": "government", "connection": connection,
                 "provider": {"name": "p", "headquartersCountry": "NL", "extraterritorialExposure": false}}
    })
}

#[test]
fn changing_the_sensitivity_of_an_existing_workload_is_rejected() {
    let old = workload("secret", json!({}));
    let new = workload("public", json!({}));
    let err = validate("SovereignWorkload", &new, Some(&old)).unwrap_err();
    assert!(err.contains("sensitivity is immutable"), "{err}");
    assert!(validate("SovereignWorkload", &old, Some(&old)).is_ok());
}

#[test]
fn preferred_countries_outside_the_required_ones_are_rejected() {
    let bad = workload(
        "internal",
        json!({"requiredCountries": ["NL"], "preferredCountries": ["DE"]}),
    );
    assert!(
        validate("SovereignWorkload", &bad, None)
            .unwrap_err()
            .contains("subset")
    );
    let good = workload(
        "internal",
        json!({"requiredCountries": ["NL", "DE"], "preferredCountries": ["DE"]}),
    );
    assert!(validate("SovereignWorkload", &good, None).is_ok());
}

#[test]
fn a_cluster_needs_exactly_one_connection() {
    assert!(validate("SovereignCluster", &cluster(json!({"local": true})), None).is_ok());
    assert!(
        validate(
            "SovereignCluster",
            &cluster(json!({"kubeconfigSecretRef": {"name": "s"}})),
            None
        )
        .is_ok()
    );
    let both = cluster(json!({"local": true, "kubeconfigSecretRef": {"name": "s"}}));
    assert!(
        validate("SovereignCluster", &both, None)
            .unwrap_err()
            .contains("exactly one")
    );
    assert!(validate("SovereignCluster", &cluster(json!({})), None).is_err());
}

#[test]
fn a_class_can_never_allow_third_countries_or_non_eu_country_codes() {
    let class = |location: Value| {
        json!({"apiVersion": "sovra.dev/v1alpha1", "kind": "SensitivityClass", "metadata": {"name": "x"},
               "spec": {"location": location}})
    };
    let err = validate(
        "SensitivityClass",
        &class(json!({"jurisdictions": ["EU", "ThirdCountry"]})),
        None,
    )
    .unwrap_err();
    assert!(err.contains("third countries"), "{err}");
    let err = validate(
        "SensitivityClass",
        &class(json!({"countries": ["NL", "US"]})),
        None,
    )
    .unwrap_err();
    assert!(err.contains("EU/EEA"), "{err}");
    assert!(
        validate(
            "SensitivityClass",
            &class(json!({"countries": ["NL", "NO"]})),
            None
        )
        .is_ok()
    );
}

#[test]
fn the_schema_carries_enums_and_country_patterns_for_the_api_server() {
    let text = serde_json::to_string(&schema("SovereignCluster")).unwrap();
    assert!(text.contains("^[A-Z]{2}$"));
    assert!(text.contains("\"SecNumCloud\""));
    assert!(text.contains("\"third-country-provider\""));
}
