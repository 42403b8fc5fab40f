//! Server-side apply and field ownership like kube-apiserver: lists merge by
//! their list type, managedFields record Apply and Update managers, conflicts
//! name their fields, and appliers drop only what nobody else owns.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::Status;
use serde_json::{Value, json};
use test_apiserver::TestApiServer;

/// A CRD from Sovra's `crds/` directory, as `kubectl apply -f` would send it.
fn sovra_crd(file: &str) -> Value {
    let path = format!("{}/../../crds/{file}", env!("CARGO_MANIFEST_DIR"));
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn workloads_resource() -> ApiResource {
    ApiResource {
        group: "sovra.dev".into(),
        version: "v1alpha1".into(),
        api_version: "sovra.dev/v1alpha1".into(),
        kind: "SovereignWorkload".into(),
        plural: "sovereignworkloads".into(),
    }
}

/// A server with Sovra's SovereignWorkload CRD and one workload, `tax`.
async fn server_with_a_workload() -> (TestApiServer, Api<DynamicObject>) {
    let server = TestApiServer::start().await;
    server
        .put(sovra_crd("sovereignworkloads.sovra.dev.yaml"))
        .unwrap();
    server
        .put(json!({
            "apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignWorkload",
            "metadata": {"name": "tax", "namespace": "default"},
            "spec": {"sensitivity": "internal",
                     "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}}}
        }))
        .unwrap();
    let api = Api::namespaced_with(server.client(), "default", &workloads_resource());
    (server, api)
}

fn condition(type_: &str, status: &str, message: &str) -> Value {
    json!({"type": type_, "status": status, "reason": "Test", "message": message,
           "lastTransitionTime": "2025-01-01T00:00:00Z"})
}

fn workload_status(conditions: Vec<Value>) -> Value {
    json!({"apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignWorkload",
           "metadata": {"name": "tax"}, "status": {"conditions": conditions}})
}

fn workload_spec(spec: Value) -> Value {
    json!({"apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignWorkload",
           "metadata": {"name": "tax"}, "spec": spec})
}

fn as_json(object: &impl serde::Serialize) -> Value {
    serde_json::to_value(object).unwrap()
}

fn condition_types(object: &DynamicObject) -> Vec<String> {
    let conditions = object.data["status"]["conditions"].as_array().cloned();
    conditions
        .unwrap_or_default()
        .iter()
        .map(|c| c["type"].as_str().unwrap().to_string())
        .collect()
}

/// The managedFields entry of `manager` with `operation`.
fn entry(object: &Value, manager: &str, operation: &str) -> Option<Value> {
    let entries = object["metadata"]["managedFields"].as_array()?;
    let found = entries
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation);
    found.cloned()
}

fn api_status(err: kube::Error) -> Status {
    match err {
        kube::Error::Api(status) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn config_map(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": data})
}

fn deployment(replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    }))
    .unwrap()
}

fn replicas_only(replicas: i32) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
           "spec": {"replicas": replicas}})
}

#[tokio::test]
async fn two_appliers_of_a_conditions_list_keyed_by_type_keep_each_others_conditions() {
    let (_server, api) = server_with_a_workload().await;
    let alice = PatchParams::apply("alice");
    let bob = PatchParams::apply("bob");

    let placed = workload_status(vec![condition("Placed", "True", "placed")]);
    api.patch_status("tax", &alice, &Patch::Apply(&placed))
        .await
        .unwrap();
    let ready = workload_status(vec![condition("Ready", "False", "waiting")]);
    let both = api
        .patch_status("tax", &bob, &Patch::Apply(&ready))
        .await
        .unwrap();
    assert_eq!(condition_types(&both), ["Placed", "Ready"]);

    // Alice changes her condition: Bob's is untouched, and nobody conflicts.
    let replaced = workload_status(vec![condition("Placed", "False", "moved")]);
    let after = api
        .patch_status("tax", &alice, &Patch::Apply(&replaced))
        .await
        .unwrap();
    let conditions = after.data["status"]["conditions"].clone();
    assert_eq!(conditions[0]["type"], "Placed");
    assert_eq!(conditions[0]["message"], "moved");
    assert_eq!(conditions[1]["type"], "Ready");
    assert_eq!(conditions[1]["message"], "waiting");

    // Each owns its element, through the status subresource.
    let object = as_json(&after);
    let bobs = entry(&object, "bob", "Apply").unwrap();
    assert_eq!(bobs["subresource"], "status");
    assert_eq!(bobs["fieldsType"], "FieldsV1");
    let owned = &bobs["fieldsV1"]["f:status"]["f:conditions"];
    let keys: Vec<&String> = owned.as_object().unwrap().keys().collect();
    assert_eq!(keys, [r#"k:{"type":"Ready"}"#]);
    assert_eq!(owned[r#"k:{"type":"Ready"}"#]["."], json!({}));
    assert_eq!(owned[r#"k:{"type":"Ready"}"#]["f:message"], json!({}));

    // Changing a field inside Bob's element is a conflict for Alice.
    let takeover = workload_status(vec![condition("Ready", "True", "mine")]);
    let err = api
        .patch_status("tax", &alice, &Patch::Apply(&takeover))
        .await
        .unwrap_err();
    let status = api_status(err);
    assert_eq!(status.code, 409);
    let fields: Vec<String> = status
        .details
        .unwrap()
        .causes
        .into_iter()
        .map(|c| c.field)
        .collect();
    assert!(
        fields.contains(&r#".status.conditions[type="Ready"].message"#.to_string()),
        "{fields:?}"
    );
}

#[tokio::test]
async fn a_set_list_merges_the_values_of_two_appliers_and_each_removes_only_its_own() {
    let (_server, api) = server_with_a_workload().await;
    let countries = |list: Value| {
        workload_spec(json!({"sensitivity": "internal",
                              "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}},
                              "placement": {"requiredCountries": list}}))
    };
    let alice = PatchParams::apply("alice");
    let bob = PatchParams::apply("bob");
    api.patch("tax", &alice, &Patch::Apply(countries(json!(["DE"]))))
        .await
        .unwrap();
    let merged = api
        .patch("tax", &bob, &Patch::Apply(countries(json!(["FR", "DE"]))))
        .await
        .unwrap();
    assert_eq!(
        merged.data["spec"]["placement"]["requiredCountries"],
        json!(["FR", "DE"])
    );
    let object = as_json(&merged);
    let set = &entry(&object, "bob", "Apply").unwrap()["fieldsV1"]["f:spec"]["f:placement"]["f:requiredCountries"];
    assert_eq!(*set, json!({r#"v:"DE""#: {}, r#"v:"FR""#: {}}));

    // Alice stops applying DE; Bob still applies it, so it stays. Bob drops FR: it goes.
    let alice_without = workload_spec(json!({"sensitivity": "internal",
        "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}}}));
    api.patch("tax", &alice, &Patch::Apply(&alice_without))
        .await
        .unwrap();
    let after = api
        .patch("tax", &bob, &Patch::Apply(countries(json!(["DE"]))))
        .await
        .unwrap();
    assert_eq!(
        after.data["spec"]["placement"]["requiredCountries"],
        json!(["DE"])
    );
}

#[tokio::test]
async fn an_apply_changing_a_field_an_update_owns_gets_409_with_the_conflicting_field() {
    let server = TestApiServer::start().await;
    let deploys: Api<Deployment> = Api::default_namespaced(server.client());
    let kubectl = PostParams {
        field_manager: Some("kubectl-client-side-apply".into()),
        ..PostParams::default()
    };
    deploys.create(&kubectl, &deployment(1)).await.unwrap();

    let sovra = PatchParams::apply("sovra");
    let err = deploys
        .patch("web", &sovra, &Patch::Apply(replicas_only(3)))
        .await
        .unwrap_err();
    let status = api_status(err);
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.message,
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
    );
    let causes = status.details.unwrap().causes;
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].reason, "FieldManagerConflict");
    assert_eq!(causes[0].field, ".spec.replicas");
    assert_eq!(
        causes[0].message,
        r#"conflict with "kubectl-client-side-apply" using apps/v1"#
    );
    let unchanged = deploys.get("web").await.unwrap();
    assert_eq!(unchanged.spec.unwrap().replicas, Some(1));

    // Applying the value the other manager set is shared ownership, not a conflict.
    let shared = deploys
        .patch("web", &sovra, &Patch::Apply(replicas_only(1)))
        .await
        .unwrap();
    let object = as_json(&shared);
    for (manager, operation) in [("sovra", "Apply"), ("kubectl-client-side-apply", "Update")] {
        let fields = &entry(&object, manager, operation).unwrap()["fieldsV1"];
        assert_eq!(fields["f:spec"]["f:replicas"], json!({}), "{manager}");
    }
}

#[tokio::test]
async fn a_forced_apply_takes_the_field_over_and_a_later_update_takes_it_back() {
    let server = TestApiServer::start().await;
    let deploys: Api<Deployment> = Api::default_namespaced(server.client());
    let kubectl = PostParams {
        field_manager: Some("kubectl-client-side-apply".into()),
        ..PostParams::default()
    };
    deploys.create(&kubectl, &deployment(1)).await.unwrap();

    let forced = deploys
        .patch(
            "web",
            &PatchParams::apply("sovra").force(),
            &Patch::Apply(replicas_only(3)),
        )
        .await
        .unwrap();
    assert_eq!(forced.spec.as_ref().unwrap().replicas, Some(3));
    let object = as_json(&forced);
    let sovra = entry(&object, "sovra", "Apply").unwrap();
    assert_eq!(sovra["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
    let kubectl_fields =
        &entry(&object, "kubectl-client-side-apply", "Update").unwrap()["fieldsV1"];
    assert!(kubectl_fields["f:spec"].get("f:replicas").is_none());
    assert!(kubectl_fields["f:spec"].get("f:template").is_some());

    // An update never conflicts: it takes the field from the applier...
    let edit = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..PatchParams::default()
    };
    deploys
        .patch(
            "web",
            &edit,
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    // ...so the applier's next unforced change of it is the conflict.
    let err = deploys
        .patch(
            "web",
            &PatchParams::apply("sovra"),
            &Patch::Apply(replicas_only(3)),
        )
        .await
        .unwrap_err();
    let status = api_status(err);
    assert_eq!(status.code, 409);
    assert!(
        status.message.contains(r#""kubectl-edit" using apps/v1"#),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn an_applier_that_stops_applying_a_field_removes_it_unless_another_manager_owns_it() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let alice = PatchParams::apply("alice");
    let bob = PatchParams::apply("bob");
    cms.patch(
        "cfg",
        &alice,
        &Patch::Apply(config_map(json!({"only-alice": "1", "both": "2"}))),
    )
    .await
    .unwrap();
    cms.patch("cfg", &bob, &Patch::Apply(config_map(json!({"both": "2"}))))
        .await
        .unwrap();

    let after = cms
        .patch("cfg", &alice, &Patch::Apply(config_map(json!({}))))
        .await
        .unwrap();
    let data = after.data.clone().unwrap();
    assert!(!data.contains_key("only-alice"), "{data:?}");
    assert_eq!(data["both"], "2", "Bob still owns it");
    let object = as_json(&after);
    // Alice applied an empty `data`: she owns the map itself, none of its keys.
    let alices = entry(&object, "alice", "Apply").unwrap();
    assert_eq!(alices["fieldsV1"], json!({"f:data": {}}));
    let bobs = entry(&object, "bob", "Apply").unwrap();
    assert_eq!(bobs["fieldsV1"], json!({"f:data": {"f:both": {}}}));

    // In a map list it works per element: Bob co-owns Ready, so only Placed goes.
    let (_server, api) = server_with_a_workload().await;
    let both = vec![
        condition("Placed", "True", "placed"),
        condition("Ready", "True", "ready"),
    ];
    api.patch_status("tax", &alice, &Patch::Apply(workload_status(both)))
        .await
        .unwrap();
    let ready = vec![condition("Ready", "True", "ready")];
    api.patch_status("tax", &bob, &Patch::Apply(workload_status(ready)))
        .await
        .unwrap();
    let after = api
        .patch_status("tax", &alice, &Patch::Apply(workload_status(Vec::new())))
        .await
        .unwrap();
    assert_eq!(condition_types(&after), ["Ready"]);
    let after = api
        .patch_status("tax", &bob, &Patch::Apply(workload_status(Vec::new())))
        .await
        .unwrap();
    assert!(condition_types(&after).is_empty(), "{:?}", after.data);
}

#[tokio::test]
async fn managed_fields_record_an_update_for_a_merge_patch_and_a_put_and_an_apply_for_apply() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());

    // An apply to a missing object creates it (201).
    let create =
        hyper::Request::patch("/api/v1/namespaces/default/configmaps/cfg?fieldManager=sovra")
            .header("content-type", "application/apply-patch+yaml")
            .body(
                b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: '1'\n"
                    .to_vec(),
            )
            .unwrap();
    let created: Value = client.request(create).await.unwrap();
    assert_eq!(created["data"]["a"], "1");
    assert_eq!(
        server
            .requests()
            .last()
            .map(|r| (r.patch_type.clone(), r.status)),
        Some((Some("apply".into()), 201))
    );

    let patcher = PatchParams {
        field_manager: Some("patcher".into()),
        ..PatchParams::default()
    };
    cms.patch(
        "cfg",
        &patcher,
        &Patch::Merge(json!({"data": {"x": "merged"}})),
    )
    .await
    .unwrap();
    let mut current = cms.get("cfg").await.unwrap();
    current
        .data
        .as_mut()
        .unwrap()
        .insert("y".into(), "put".into());
    let putter = PostParams {
        field_manager: Some("putter".into()),
        ..PostParams::default()
    };
    let replaced = cms.replace("cfg", &putter, &current).await.unwrap();

    let object = as_json(&replaced);
    let entries = object["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{entries:?}");
    let describe = |e: &Value| {
        (
            e["manager"].as_str().unwrap().to_string(),
            e["operation"].as_str().unwrap().to_string(),
            e["apiVersion"].as_str().unwrap().to_string(),
            e["fieldsType"].as_str().unwrap().to_string(),
            e["fieldsV1"].clone(),
        )
    };
    let owned = |key: &str| json!({"f:data": {format!("f:{key}"): {}}});
    assert_eq!(
        describe(&entries[0]),
        (
            "sovra".into(),
            "Apply".into(),
            "v1".into(),
            "FieldsV1".into(),
            owned("a")
        )
    );
    let updates: Vec<_> = entries[1..].iter().map(describe).collect();
    assert!(updates.contains(&(
        "patcher".into(),
        "Update".into(),
        "v1".into(),
        "FieldsV1".into(),
        owned("x")
    )));
    assert!(updates.contains(&(
        "putter".into(),
        "Update".into(),
        "v1".into(),
        "FieldsV1".into(),
        owned("y")
    )));
    for e in entries {
        let time = e["time"].as_str().unwrap();
        assert!(time.ends_with('Z') && time.len() == 20, "{time}");
        assert!(e.get("subresource").is_none());
    }

    // Without a fieldManager the Update is recorded for the user agent's product.
    let anonymous = hyper::Request::patch("/api/v1/namespaces/default/configmaps/cfg")
        .header("content-type", "application/merge-patch+json")
        .header("user-agent", "kubectl/v1.33.1 (linux/amd64) kubernetes/abc")
        .body(br#"{"data": {"z": "1"}}"#.to_vec())
        .unwrap();
    let patched: Value = client.request(anonymous).await.unwrap();
    assert!(entry(&patched, "kubectl", "Update").is_some(), "{patched}");
}
