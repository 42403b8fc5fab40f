//! Writes are validated like kube-apiserver validates them: custom resources against their
//! CRD's schema (types, bounds, patterns, enums, required fields, list types, CEL rules,
//! pruning and defaulting, ratcheting), built-in kinds by their upstream rules, and every
//! object's metadata, with upstream's `422 Invalid` status, message and causes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![recursion_limit = "256"]

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind, Status};
use serde_json::{Value, json};
use test_apiserver::{ResourceRef, TestApiServer};

const NS: &str = "ministry-fin";

/// Sovra's generated CRDs, as shipped in `crds/`.
fn sovra_crds() -> Vec<Value> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crds");
    let mut crds = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        crds.push(serde_norway::from_str(&text).unwrap());
    }
    crds
}

async fn sovra_server() -> TestApiServer {
    let server = TestApiServer::start().await;
    for crd in sovra_crds() {
        server.put(crd).unwrap();
    }
    server
        .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
        .unwrap();
    server
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    let gvk = GroupVersionKind::gvk(group, version, kind);
    ApiResource::from_gvk_with_plural(&gvk, plural)
}

fn workloads(server: &TestApiServer) -> Api<DynamicObject> {
    let ar = resource(
        "sovra.dev",
        "v1alpha1",
        "SovereignWorkload",
        "sovereignworkloads",
    );
    Api::namespaced_with(server.client(), NS, &ar)
}

fn workload_ref() -> ResourceRef {
    ResourceRef::new("sovra.dev", "v1alpha1", "sovereignworkloads")
}

fn workload(name: &str, spec_extra: Value) -> Value {
    let mut obj = json!({
        "apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignWorkload",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "sensitivity": "internal", "replicas": 2,
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}}
        }
    });
    for (k, v) in spec_extra.as_object().unwrap() {
        obj["spec"][k] = v.clone();
    }
    obj
}

fn dynamic(value: Value) -> DynamicObject {
    serde_json::from_value(value).unwrap()
}

fn status_of(err: kube::Error) -> Box<Status> {
    match err {
        kube::Error::Api(status) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// `(reason, field)` of every cause.
fn causes(status: &Status) -> Vec<(String, String)> {
    let details = status.details.as_ref().expect("details");
    details
        .causes
        .iter()
        .map(|c| (c.reason.clone(), c.field.clone()))
        .collect()
}

fn cause_message<'a>(status: &'a Status, field: &str) -> &'a str {
    let details = status.details.as_ref().unwrap();
    let cause = details.causes.iter().find(|c| c.field == field);
    &cause
        .unwrap_or_else(|| panic!("no cause for {field} in {status:?}"))
        .message
}

async fn create_err(server: &TestApiServer, obj: Value) -> Box<Status> {
    let err = workloads(server)
        .create(&PostParams::default(), &dynamic(obj))
        .await
        .expect_err("the server accepted an invalid object");
    status_of(err)
}

#[tokio::test]
async fn a_workload_with_negative_replicas_is_invalid_with_upstreams_message_and_causes() {
    let server = sovra_server().await;
    let status = create_err(&server, workload("w", json!({"replicas": -1}))).await;
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        status.message,
        "SovereignWorkload.sovra.dev \"w\" is invalid: [spec.replicas: Invalid value: -1: \
         spec.replicas in body should be greater than or equal to 0, .spec.replicas: Invalid value: -1: \
         should be a non-negative integer]"
    );
    let details = status.details.as_ref().unwrap();
    assert_eq!(
        (
            details.name.as_str(),
            details.group.as_str(),
            details.kind.as_str()
        ),
        ("w", "sovra.dev", "SovereignWorkload")
    );
    assert_eq!(
        causes(&status)[0],
        ("FieldValueInvalid".into(), "spec.replicas".into())
    );
    assert_eq!(
        cause_message(&status, "spec.replicas"),
        "Invalid value: -1: spec.replicas in body should be greater than or equal to 0"
    );
}

#[tokio::test]
async fn types_enums_patterns_and_required_fields_are_checked() {
    let server = sovra_server().await;
    let mut obj = workload(
        "w",
        json!({"replicas": "two", "placement": {"requiredCountries": ["de"]}}),
    );
    obj["spec"].as_object_mut().unwrap().remove("sensitivity");
    let status = create_err(&server, obj).await;
    let found = causes(&status);
    assert!(
        found.contains(&("FieldValueRequired".into(), "spec.sensitivity".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("FieldValueTypeInvalid".into(), "spec.replicas".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&(
            "FieldValueInvalid".into(),
            "spec.placement.requiredCountries[0]".into()
        )),
        "{found:?}"
    );
    assert_eq!(
        cause_message(&status, "spec.placement.requiredCountries[0]"),
        "Invalid value: \"de\": spec.placement.requiredCountries[0] in body should match '^[A-Z]{2}$'"
    );
    // With such errors upstream does not run the CEL rules, and says so.
    assert!(
        status
            .message
            .contains("some validation rules were not checked"),
        "{}",
        status.message
    );

    let clusters = Api::<DynamicObject>::all_with(
        server.client(),
        &resource(
            "sovra.dev",
            "v1alpha1",
            "SovereignCluster",
            "sovereignclusters",
        ),
    );
    let cluster = json!({"apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignCluster",
        "metadata": {"name": "c"},
        "spec": {"country": "NL", "operatedBy": "the-neighbours", "connection": {"local": true},
                 "provider": {"name": "p", "headquartersCountry": "NL", "extraterritorialExposure": false}}});
    let err = clusters
        .create(&PostParams::default(), &dynamic(cluster))
        .await
        .unwrap_err();
    let status = status_of(err);
    assert_eq!(
        cause_message(&status, "spec.operatedBy"),
        "Unsupported value: \"the-neighbours\": supported values: \"government\", \"eu-provider\", \"third-country-provider\""
    );
}

#[tokio::test]
async fn a_cel_rule_that_fails_names_its_message_and_field() {
    let server = sovra_server().await;
    let placement =
        json!({"placement": {"requiredCountries": ["DE"], "preferredCountries": ["NL"]}});
    let status = create_err(&server, workload("w", placement)).await;
    assert_eq!(
        causes(&status),
        [(
            "FieldValueInvalid".to_string(),
            "spec.placement".to_string()
        )]
    );
    assert_eq!(
        status.message,
        "SovereignWorkload.sovra.dev \"w\" is invalid: spec.placement: Invalid value: \
         preferredCountries must be a subset of requiredCountries"
    );
}

#[tokio::test]
async fn changing_the_immutable_sensitivity_is_refused_by_its_transition_rule_on_every_write_path()
{
    let server = sovra_server().await;
    let api = workloads(&server);
    let created = api
        .create(&PostParams::default(), &dynamic(workload("w", json!({}))))
        .await
        .unwrap();
    let expected = "SovereignWorkload.sovra.dev \"w\" is invalid: spec.sensitivity: Invalid value: \
                    \"secret\": sensitivity is immutable; create a new SovereignWorkload to change class";

    let mut replaced = created.clone();
    replaced.data["spec"]["sensitivity"] = json!("secret");
    let err = api
        .replace("w", &PostParams::default(), &replaced)
        .await
        .unwrap_err();
    assert_eq!(status_of(err).message, expected);

    let merge = Patch::Merge(json!({"spec": {"sensitivity": "secret"}}));
    let err = api
        .patch("w", &PatchParams::default(), &merge)
        .await
        .unwrap_err();
    assert_eq!(status_of(err).message, expected);

    let json_patch: json_patch::Patch = serde_json::from_value(
        json!([{"op": "replace", "path": "/spec/sensitivity", "value": "secret"}]),
    )
    .unwrap();
    let err = api
        .patch("w", &PatchParams::default(), &Patch::<()>::Json(json_patch))
        .await
        .unwrap_err();
    assert_eq!(status_of(err).message, expected);

    let apply = Patch::Apply(workload("w", json!({"sensitivity": "secret"})));
    let err = api
        .patch("w", &PatchParams::apply("tests").force(), &apply)
        .await
        .unwrap_err();
    assert_eq!(status_of(err).message, expected);

    // The unchanged value passes: a transition rule only compares.
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn every_write_path_refuses_an_invalid_workload() {
    let server = sovra_server().await;
    let api = workloads(&server);
    let bad = workload("w", json!({"replicas": -1}));

    let apply = Patch::Apply(bad.clone());
    let err = api
        .patch("w", &PatchParams::apply("tests"), &apply)
        .await
        .unwrap_err();
    assert_eq!(status_of(err).code, 422, "an apply that creates");

    api.create(&PostParams::default(), &dynamic(workload("w", json!({}))))
        .await
        .unwrap();
    let strategic = Patch::Strategic(json!({"spec": {"replicas": -1}}));
    let err = api
        .patch("w", &PatchParams::default(), &strategic)
        .await
        .unwrap_err();
    assert_eq!(status_of(err).code, 422, "a strategic merge patch");

    let err = server.put(bad.clone()).unwrap_err();
    assert_eq!(err.code, 422, "TestApiServer::put validates too");
    assert!(err.message.contains("spec.replicas"), "{}", err.message);
}

#[tokio::test]
async fn an_update_without_a_resource_version_is_refused_for_custom_resources_and_leases() {
    let server = sovra_server().await;
    let api = workloads(&server);
    api.create(&PostParams::default(), &dynamic(workload("w", json!({}))))
        .await
        .unwrap();
    let err = api
        .replace(
            "w",
            &PostParams::default(),
            &dynamic(workload("w", json!({}))),
        )
        .await
        .unwrap_err();
    let status = status_of(err);
    assert_eq!(
        status.message,
        "sovereignworkloads.sovra.dev \"w\" is invalid: metadata.resourceVersion: Invalid value: 0: \
         must be specified for an update"
    );

    let leases: Api<Lease> = Api::default_namespaced(server.client());
    let lease: Lease =
        serde_json::from_value(json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}}))
            .unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let err = leases
        .replace("l", &PostParams::default(), &lease)
        .await
        .unwrap_err();
    assert_eq!(status_of(err).code, 422);
    // ConfigMaps allow it, like upstream.
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"a": "1"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.replace("c", &PostParams::default(), &cm).await.unwrap();
}

#[tokio::test]
async fn unknown_fields_are_pruned_and_defaults_applied() {
    let server = sovra_server().await;
    let mut obj = workload(
        "w",
        json!({"bogus": true, "template": {"anything": {"goes": 1}}}),
    );
    obj["spec"].as_object_mut().unwrap().remove("replicas");
    obj["topLevelJunk"] = json!("x");
    obj["metadata"]["notAField"] = json!("y");
    let created = workloads(&server)
        .create(&PostParams::default(), &dynamic(obj))
        .await
        .unwrap();
    let stored = server.get(&workload_ref(), Some(NS), "w").unwrap();
    assert!(stored["spec"].get("bogus").is_none(), "pruned: {stored}");
    assert!(stored.get("topLevelJunk").is_none());
    assert!(stored["metadata"].get("notAField").is_none());
    // x-kubernetes-preserve-unknown-fields keeps the template as it is.
    assert_eq!(stored["spec"]["template"], json!({"anything": {"goes": 1}}));
    // Defaults: replicas, and placement with its own defaulted fields.
    assert_eq!(stored["spec"]["replicas"], 1);
    assert_eq!(
        stored["spec"]["placement"],
        json!({"clusters": 1, "failover": false})
    );
    assert_eq!(
        created.data["spec"], stored["spec"],
        "the response is what was stored"
    );
}

#[tokio::test]
async fn a_status_write_changes_only_status_and_a_main_write_never_status() {
    let server = sovra_server().await;
    let api = workloads(&server);
    api.create(&PostParams::default(), &dynamic(workload("w", json!({}))))
        .await
        .unwrap();

    let status_patch = Patch::Merge(json!({
        "spec": {"replicas": 9},
        "metadata": {"labels": {"sneaky": "yes"}},
        "status": {"phase": "Placed", "replicas": 2}
    }));
    api.patch_status("w", &PatchParams::default(), &status_patch)
        .await
        .unwrap();
    let stored = server.get(&workload_ref(), Some(NS), "w").unwrap();
    assert_eq!(
        stored["spec"]["replicas"], 2,
        "spec is not written through /status"
    );
    assert!(stored["metadata"].get("labels").is_none());
    assert_eq!(stored["status"]["phase"], "Placed");
    assert_eq!(
        stored["status"]["readyReplicas"], 0,
        "status defaults apply too"
    );

    let main_patch = Patch::Merge(json!({"spec": {"replicas": 3}, "status": {"phase": "Refused"}}));
    api.patch("w", &PatchParams::default(), &main_patch)
        .await
        .unwrap();
    let stored = server.get(&workload_ref(), Some(NS), "w").unwrap();
    assert_eq!(stored["spec"]["replicas"], 3);
    assert_eq!(
        stored["status"]["phase"], "Placed",
        "status is not written through the main resource"
    );

    let err = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Bogus"}})),
        )
        .await
        .unwrap_err();
    let status = status_of(err);
    assert_eq!(
        causes(&status)[0],
        (
            "FieldValueNotSupported".to_string(),
            "status.phase".to_string()
        )
    );
    let err = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::<()>::Json(
                serde_json::from_value(
                    json!([{"op": "add", "path": "/status/selector", "value": null}]),
                )
                .unwrap(),
            ),
        )
        .await
        .unwrap_err();
    // The scale subresource reads status.selector as a string, even when it is null.
    assert_eq!(causes(&status_of(err))[0].1, ".status.selector");
}

#[tokio::test]
async fn an_invalid_value_already_stored_may_stay_while_other_fields_change() {
    let server = sovra_server().await;
    let mut stale = workload("w", json!({}));
    stale["spec"]["placement"] = json!({"clusters": 99});
    server.put_unvalidated(stale).unwrap();
    let api = workloads(&server);
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 5}})),
    )
    .await
    .unwrap();
    let err = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"placement": {"clusters": 98}}})),
        )
        .await
        .unwrap_err();
    assert_eq!(causes(&status_of(err))[0].1, "spec.placement.clusters");
}

#[tokio::test]
async fn put_unvalidated_stores_what_the_schema_rejects() {
    let server = sovra_server().await;
    let broken = workload("w", json!({"replicas": "many", "bogus": 1}));
    assert_eq!(server.put(broken.clone()).unwrap_err().code, 422);
    server.put_unvalidated(broken).unwrap();
    let stored = server.get(&workload_ref(), Some(NS), "w").unwrap();
    assert_eq!(stored["spec"]["replicas"], "many");
    assert_eq!(stored["spec"]["bogus"], 1);
}

#[tokio::test]
async fn duplicate_set_items_are_refused() {
    let server = sovra_server().await;
    let placement = json!({"placement": {"requiredCountries": ["DE", "NL", "DE"]}});
    let status = create_err(&server, workload("w", placement)).await;
    assert_eq!(
        causes(&status),
        [(
            "FieldValueDuplicate".to_string(),
            "spec.placement.requiredCountries[2]".to_string()
        )]
    );
    assert_eq!(
        cause_message(&status, "spec.placement.requiredCountries[2]"),
        "Duplicate value: \"DE\""
    );
}

#[tokio::test]
async fn a_too_long_string_is_refused() {
    let server = sovra_server().await;
    let long = "x".repeat(254);
    let status = create_err(&server, workload("w", json!({"sensitivity": long}))).await;
    assert_eq!(
        causes(&status)[0],
        (
            "FieldValueTooLong".to_string(),
            "spec.sensitivity".to_string()
        )
    );
    assert_eq!(
        cause_message(&status, "spec.sensitivity"),
        "Too long: may not be more than 253 bytes"
    );
}

/// A small CRD of our own, for rules Sovra's CRDs do not use.
fn gadget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "tags": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 5}},
                        "size": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 10, "exclusiveMaximum": true},
                        "ratio": {"type": "number", "multipleOf": 0.5},
                        "when": {"type": "string", "format": "date-time"},
                        "port": {"x-kubernetes-int-or-string": true},
                        "labels": {"type": "object", "additionalProperties": {"type": "string", "minLength": 1}, "maxProperties": 2},
                        "ports": {"type": "array", "maxItems": 4, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                            "items": {"type": "object", "required": ["name"], "properties": {
                                "name": {"type": "string"},
                                "number": {"type": "integer", "x-kubernetes-validations": [
                                    {"rule": "self == oldSelf", "message": "a port's number is fixed", "reason": "FieldValueForbidden"}
                                ]}
                            }}},
                        "mode": {"type": "string", "nullable": true},
                        "label": {"type": "string", "maxLength": 10, "x-kubernetes-validations": [
                            {"rule": "self != 'bad'", "messageExpression": "'the label ' + self + ' is not allowed'"}
                        ]},
                        "embedded": {"type": "object", "x-kubernetes-embedded-resource": true,
                                     "x-kubernetes-preserve-unknown-fields": true}
                    },
                    "x-kubernetes-validations": [
                        {"rule": "!has(self.size) || self.size <= 5 || has(self.mode)",
                         "message": "big gadgets need a mode", "fieldPath": ".mode", "reason": "FieldValueRequired"}
                    ]}
                }}}
            }]
        }
    })
}

fn gadgets(server: &TestApiServer) -> Api<DynamicObject> {
    let ar = resource("example.com", "v1", "Gadget", "gadgets");
    Api::namespaced_with(server.client(), NS, &ar)
}

fn gadget(spec: Value) -> DynamicObject {
    dynamic(
        json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": spec}),
    )
}

async fn gadget_server() -> TestApiServer {
    let server = TestApiServer::start().await;
    server.put(gadget_crd()).unwrap();
    server
        .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
        .unwrap();
    server
}

async fn gadget_causes(server: &TestApiServer, spec: Value) -> Vec<(String, String)> {
    let err = gadgets(server)
        .create(&PostParams::default(), &gadget(spec.clone()))
        .await
        .unwrap_err();
    causes(&status_of(err))
}

#[tokio::test]
async fn bounds_formats_and_counts_of_a_hand_written_crd_are_enforced() {
    let server = gadget_server().await;
    let cases = [
        (
            json!({"tags": ["a", "b", "c"]}),
            "FieldValueTooMany",
            "spec.tags",
        ),
        (
            json!({"tags": ["toolong"]}),
            "FieldValueTooLong",
            "spec.tags[0]",
        ),
        (json!({"size": 10}), "FieldValueInvalid", "spec.size"),
        (json!({"size": 0}), "FieldValueInvalid", "spec.size"),
        (json!({"ratio": 0.7}), "FieldValueInvalid", "spec.ratio"),
        (
            json!({"when": "last tuesday"}),
            "FieldValueTypeInvalid",
            "spec.when",
        ),
        (json!({"port": true}), "FieldValueTypeInvalid", "spec.port"),
        (
            json!({"labels": {"a": ""}}),
            "FieldValueInvalid",
            "spec.labels.a",
        ),
        (
            json!({"labels": {"a": "1", "b": "2", "c": "3"}}),
            "FieldValueTooMany",
            "spec.labels",
        ),
        (
            json!({"ports": [{"name": "http"}, {"name": "http"}]}),
            "FieldValueDuplicate",
            "spec.ports[1]",
        ),
        (
            json!({"ports": [{"number": 1}]}),
            "FieldValueRequired",
            "spec.ports[0].name",
        ),
        (
            json!({"embedded": {"kind": "Thing"}}),
            "FieldValueRequired",
            "spec.embedded.apiVersion",
        ),
        (json!({"size": 7}), "FieldValueRequired", "spec.mode"),
    ];
    for (spec, reason, field) in cases {
        let found = gadget_causes(&server, spec.clone()).await;
        assert!(
            found.contains(&(reason.to_string(), field.to_string())),
            "{spec}: expected {reason} at {field}, got {found:?}"
        );
    }
    // Valid values of the same fields.
    gadgets(&server)
        .create(
            &PostParams::default(),
            &gadget(json!({"tags": ["a", "b"], "size": 9, "mode": null, "ratio": 1.5,
                "when": "2025-01-02T03:04:05Z", "port": "http", "labels": {"a": "1"},
                "embedded": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "junk": 1}}})),
        )
        .await
        .unwrap();
    let stored = server
        .get(
            &ResourceRef::new("example.com", "v1", "gadgets"),
            Some(NS),
            "g",
        )
        .unwrap();
    assert_eq!(
        stored["spec"]["embedded"]["metadata"],
        json!({"name": "x"}),
        "embedded metadata is ObjectMeta"
    );
}

#[tokio::test]
async fn transition_rules_correlate_map_list_items_by_key_and_message_expressions_are_used() {
    let server = gadget_server().await;
    let api = gadgets(&server);
    api.create(
        &PostParams::default(),
        &gadget(json!({"ports": [{"name": "http", "number": 80}], "label": "fine"})),
    )
    .await
    .unwrap();
    // The same port moved to another index is the same item; a new one has no oldSelf.
    let reordered = json!({"spec": {"ports": [{"name": "https", "number": 443}, {"name": "http", "number": 80}]}});
    api.patch("g", &PatchParams::default(), &Patch::Merge(reordered))
        .await
        .unwrap();
    let changed = json!({"spec": {"ports": [{"name": "https", "number": 443}, {"name": "http", "number": 8080}]}});
    let err = api
        .patch("g", &PatchParams::default(), &Patch::Merge(changed))
        .await
        .unwrap_err();
    let status = status_of(err);
    assert_eq!(
        causes(&status),
        [(
            "FieldValueForbidden".to_string(),
            "spec.ports[1].number".to_string()
        )]
    );
    assert_eq!(
        cause_message(&status, "spec.ports[1].number"),
        "Forbidden: a port's number is fixed"
    );

    let err = api
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"label": "bad"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        cause_message(&status_of(err), "spec.label"),
        "Invalid value: \"bad\": the label bad is not allowed"
    );
}

fn deployment(name: &str, app: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}},
                         "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn a_deployments_selector_is_required_must_match_its_template_and_is_immutable() {
    let server = TestApiServer::start().await;
    let api: Api<Deployment> = Api::default_namespaced(server.client());
    api.create(&PostParams::default(), &deployment("web", "web"))
        .await
        .unwrap();

    let patch = Patch::Merge(json!({"spec": {"selector": {"matchLabels": {"app": "db"}},
        "template": {"metadata": {"labels": {"app": "db"}}}}}));
    let err = api
        .patch("web", &PatchParams::default(), &patch)
        .await
        .unwrap_err();
    let status = status_of(err);
    assert_eq!(
        status.message,
        "Deployment.apps \"web\" is invalid: spec.selector: Invalid value: \
         v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"db\"}, \
         MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
    );

    let mut mismatched = deployment("other", "web");
    mismatched
        .spec
        .as_mut()
        .unwrap()
        .template
        .metadata
        .as_mut()
        .unwrap()
        .labels = Some([("app".to_string(), "db".to_string())].into());
    let err = api
        .create(&PostParams::default(), &mismatched)
        .await
        .unwrap_err();
    let status = status_of(err);
    assert_eq!(
        cause_message(&status, "spec.template.metadata.labels"),
        "Invalid value: map[string]string{\"app\":\"db\"}: `selector` does not match template `labels`"
    );

    let no_selector = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "bare", "namespace": "default"},
        "spec": {"replicas": -1, "template": {"spec": {"containers": []}}}});
    let err = server.put(no_selector).unwrap_err();
    let fields: Vec<String> = err.details.unwrap()["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        fields,
        [
            "spec.replicas",
            "spec.selector",
            "spec.template.spec.containers"
        ]
    );
}

#[tokio::test]
async fn bad_names_labels_and_annotations_are_refused() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let cm =
        |meta: Value| -> ConfigMap { serde_json::from_value(json!({"metadata": meta})).unwrap() };

    let err = cms
        .create(&PostParams::default(), &cm(json!({"name": "Bad_Name"})))
        .await
        .unwrap_err();
    let status = status_of(err);
    assert!(
        status.message.starts_with(
            "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
        ),
        "{}",
        status.message
    );

    let namespaces: Api<Namespace> = Api::all(server.client());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "a.b"}})).unwrap();
    let err = namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_err();
    assert_eq!(
        status_of(err).message,
        "Namespace \"a.b\" is invalid: metadata.name: Invalid value: \"a.b\": must not contain dots"
    );

    let long_value = "v".repeat(64);
    let labelled = cm(json!({"name": "l", "labels": {"ok/key": long_value, "bad key": "x"}}));
    let err = cms
        .create(&PostParams::default(), &labelled)
        .await
        .unwrap_err();
    let status = status_of(err);
    let messages: Vec<&str> = status
        .details
        .as_ref()
        .unwrap()
        .causes
        .iter()
        .map(|c| c.message.as_str())
        .collect();
    assert_eq!(causes(&status).len(), 2, "{messages:?}");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("must be no more than 63 characters")),
        "{messages:?}"
    );

    let annotated = cm(json!({"name": "a", "annotations": {"-x": "1"}}));
    let err = cms
        .create(&PostParams::default(), &annotated)
        .await
        .unwrap_err();
    assert_eq!(causes(&status_of(err))[0].1, "metadata.annotations");

    // generateName may end in a dash; the generated name is validated too.
    let generated = cms
        .create(&PostParams::default(), &cm(json!({"generateName": "web-"})))
        .await
        .unwrap();
    assert!(generated.metadata.name.unwrap().starts_with("web-"));
    let err = cms
        .create(&PostParams::default(), &cm(json!({"generateName": "Web-"})))
        .await
        .unwrap_err();
    assert_eq!(causes(&status_of(err))[0].1, "metadata.generateName");

    let err = cms
        .create(&PostParams::default(), &cm(json!({})))
        .await
        .unwrap_err();
    assert_eq!(
        status_of(err).message,
        "ConfigMap \"\" is invalid: metadata.name: Required value: name or generateName is required"
    );
}

#[tokio::test]
async fn events_and_leases_need_the_fields_upstream_requires() {
    let server = TestApiServer::start().await;
    let events = ResourceRef::new("events.k8s.io", "v1", "events");
    let event = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "e", "namespace": "default"},
        "eventTime": "2025-01-01T00:00:00.000000Z", "type": "Sideways",
        "regarding": {"kind": "Pod", "name": "p", "namespace": "default"}});
    let err = server.put(event).unwrap_err();
    let fields: Vec<String> = err.details.unwrap()["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap().to_string())
        .collect();
    // An empty reportingController is both required and not a qualified name, like upstream.
    let mut fields = fields;
    fields.dedup();
    assert_eq!(
        fields,
        [
            "reportingController",
            "reportingInstance",
            "action",
            "reason",
            "type"
        ]
    );
    assert!(server.get(&events, Some("default"), "e").is_none());

    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "l", "namespace": "default"}, "spec": {"leaseDurationSeconds": 0}});
    let err = server.put(lease).unwrap_err();
    assert_eq!(
        err.message,
        "Lease.coordination.k8s.io \"l\" is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"
    );
}

#[tokio::test]
async fn badly_typed_metadata_is_a_bad_request() {
    let server = TestApiServer::start().await;
    let err = server
        .put(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": 1}}}))
        .unwrap_err();
    assert_eq!(err.code, 400, "{}", err.message);
    assert!(
        err.message.contains("cannot unmarshal number"),
        "{}",
        err.message
    );
}
