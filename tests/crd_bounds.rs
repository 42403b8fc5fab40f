//! Every array, string and map in Sovra's CRD schemas has a size bound. kube-apiserver
//! estimates the cost of CEL rules from these bounds and rejects a CRD that could exceed its
//! budget (as it did with two of ours), so a new unbounded field must fail the build.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::Value;

/// Paths (as `crd/version.field.field[]{}`) of fields without a bound, found by walking the
/// schema the way `shared/tools/crd-bounds.py` does: arrays need `maxItems`, strings
/// `maxLength` or `enum`, maps (`additionalProperties`) `maxProperties`.
fn unbounded(schema: &Value, path: &str, out: &mut Vec<String>) {
    let Some(node) = schema.as_object() else {
        return;
    };
    let kind = node.get("type").and_then(Value::as_str);
    if kind == Some("array") && !node.contains_key("maxItems") {
        out.push(format!("{path}: array without maxItems"));
    }
    if kind == Some("string") && !node.contains_key("maxLength") && !node.contains_key("enum") {
        out.push(format!("{path}: string without maxLength or enum"));
    }
    let extra = node.get("additionalProperties").filter(|e| e.is_object());
    if kind == Some("object") && extra.is_some() && !node.contains_key("maxProperties") {
        out.push(format!("{path}: map without maxProperties"));
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (name, sub) in properties {
            unbounded(sub, &format!("{path}.{name}"), out);
        }
    }
    if let Some(items) = node.get("items") {
        unbounded(items, &format!("{path}[]"), out);
    }
    if let Some(extra) = extra {
        unbounded(extra, &format!("{path}{{}}"), out);
    }
}

fn generated_schemas() -> Vec<(String, Value)> {
    sovra::crd::all()
        .into_iter()
        .flat_map(|crd| {
            let name = crd.metadata.name.clone().unwrap();
            crd.spec.versions.into_iter().map(move |v| {
                let schema = v.schema.unwrap().open_api_v3_schema.unwrap();
                (
                    format!("{name}/{}", v.name),
                    serde_json::to_value(schema).unwrap(),
                )
            })
        })
        .collect()
}

#[test]
fn every_array_string_and_map_in_the_generated_crds_is_bounded() {
    let mut found = Vec::new();
    for (name, schema) in generated_schemas() {
        unbounded(&schema, &name, &mut found);
    }
    assert!(
        found.is_empty(),
        "unbounded fields (kube-apiserver would over-estimate CEL costs):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_finds_the_unbounded_fields_of_the_crds_a_real_server_rejected() {
    // Proves the walk itself works: the CRDs kube-apiserver v1.32 refused have such fields.
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/crds-before-bounds");
    let mut found = Vec::new();
    for file in [
        "sensitivityclasses.sovra.dev.yaml",
        "sovereignworkloads.sovra.dev.yaml",
    ] {
        let crd: Value =
            serde_norway::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        unbounded(schema, file, &mut found);
    }
    assert!(
        found
            .iter()
            .any(|f| f.contains("spec.location.countries: array without maxItems")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.contains("spec.placement.requiredCountries: array without maxItems")),
        "{found:?}"
    );
}

#[test]
fn country_codes_are_two_upper_case_letters_at_most_two_long() {
    for (name, schema) in generated_schemas() {
        let mut codes = Vec::new();
        collect_country_fields(&schema, &name, &mut codes);
        for (path, node) in codes {
            assert_eq!(node["maxLength"], 2, "{path}");
            assert_eq!(node["pattern"], "^[A-Z]{2}$", "{path}");
        }
    }
}

fn collect_country_fields<'a>(schema: &'a Value, path: &str, out: &mut Vec<(String, &'a Value)>) {
    if schema.get("pattern").and_then(Value::as_str) == Some("^[A-Z]{2}$") {
        out.push((path.to_owned(), schema));
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in properties {
            collect_country_fields(sub, &format!("{path}.{name}"), out);
        }
    }
    if let Some(items) = schema.get("items") {
        collect_country_fields(items, &format!("{path}[]"), out);
    }
}
