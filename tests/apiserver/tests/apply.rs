//! Server-side apply through kube's `Patch::Apply`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use test_apiserver::TestApiServer;

fn cm(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": data})
}

fn status_code(err: kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(status) => (status.code, status.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn apply_creates_then_merges_and_removes_fields_the_manager_dropped() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let sovra = PatchParams::apply("sovra");

    let created = cms
        .patch(
            "cfg",
            &sovra,
            &Patch::Apply(cm(json!({"a": "1", "b": "2"}))),
        )
        .await
        .unwrap();
    assert_eq!(created.data.unwrap().len(), 2);
    let managers = created.metadata.managed_fields.unwrap();
    assert_eq!(managers[0].manager.as_deref(), Some("sovra"));
    assert_eq!(managers[0].operation.as_deref(), Some("Apply"));

    // Another writer adds a key the applier never owned; it survives the next apply.
    cms.patch(
        "cfg",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"foreign": "x"}})),
    )
    .await
    .unwrap();
    let applied = cms
        .patch("cfg", &sovra, &Patch::Apply(cm(json!({"a": "10"}))))
        .await
        .unwrap();
    let data = applied.data.unwrap();
    assert_eq!(data.get("a").map(String::as_str), Some("10"));
    assert!(
        !data.contains_key("b"),
        "b was applied before and is dropped now"
    );
    assert_eq!(data.get("foreign").map(String::as_str), Some("x"));
}

#[tokio::test]
async fn apply_conflicts_with_another_manager_unless_forced() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    cms.patch(
        "cfg",
        &PatchParams::apply("alice"),
        &Patch::Apply(cm(json!({"shared": "a"}))),
    )
    .await
    .unwrap();

    let bob = PatchParams::apply("bob");
    let err = cms
        .patch("cfg", &bob, &Patch::Apply(cm(json!({"shared": "b"}))))
        .await
        .unwrap_err();
    let (code, message) = status_code(err);
    assert_eq!(code, 409);
    assert!(
        message.contains("alice") && message.contains(".data.shared"),
        "{message}"
    );

    // Agreeing on the value is not a conflict.
    cms.patch("cfg", &bob, &Patch::Apply(cm(json!({"shared": "a"}))))
        .await
        .unwrap();
    let forced = cms
        .patch(
            "cfg",
            &bob.force(),
            &Patch::Apply(cm(json!({"shared": "b"}))),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["shared"], "b");
}

#[tokio::test]
async fn apply_requires_a_field_manager_and_accepts_yaml_and_the_status_subresource() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    });
    // Upstream validates PatchOptions first: 422 Invalid, not 400.
    let unmanaged = deploys
        .patch("web", &PatchParams::default(), &Patch::Apply(&deployment))
        .await;
    let (code, message) = status_code(unmanaged.unwrap_err());
    assert_eq!(code, 422);
    assert_eq!(
        message,
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );

    deploys
        .patch(
            "web",
            &PatchParams::apply("sovra"),
            &Patch::Apply(&deployment),
        )
        .await
        .unwrap();
    let status = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "status": {"replicas": 3}});
    let after = deploys
        .patch_status("web", &PatchParams::apply("sovra"), &Patch::Apply(&status))
        .await
        .unwrap();
    assert_eq!(after.status.unwrap().replicas, Some(3));
    assert_eq!(after.metadata.generation, Some(1));

    // kubectl sends YAML.
    let yaml =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 5\n";
    let request = hyper::Request::patch(
        "/apis/apps/v1/namespaces/default/deployments/web?fieldManager=kubectl",
    )
    .header("content-type", "application/apply-patch+yaml")
    .body(yaml.as_bytes().to_vec())
    .unwrap();
    let response: Deployment = client.request(request).await.unwrap();
    assert_eq!(response.spec.unwrap().replicas, Some(5));
    assert_eq!(response.status.unwrap().replicas, Some(3));

    // A user agent is no substitute for fieldManager on apply.
    let anonymous = hyper::Request::patch("/apis/apps/v1/namespaces/default/deployments/web")
        .header("content-type", "application/apply-patch+yaml")
        .header("user-agent", "kubectl/v1.33.1")
        .body(yaml.as_bytes().to_vec())
        .unwrap();
    match client.request::<Deployment>(anonymous).await.unwrap_err() {
        kube::Error::Api(status) => assert_eq!(status.code, 422),
        other => panic!("expected 422, got {other:?}"),
    }
}
