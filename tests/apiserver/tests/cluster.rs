//! Whole-server behaviour: lifecycle, faults, access log, events, leases, CRDs, discovery.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Pod};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, EvictParams, GroupVersionKind, ListParams,
    Patch, PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, watcher};
use kube::{Client, Discovery, ResourceExt};
use serde_json::{Value, json};
use test_apiserver::{RequestMatcher, RequestRecord, ResourceRef, TestApiServer};

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

fn api_code(err: kube::Error) -> u16 {
    match err {
        kube::Error::Api(status) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_stopped_server_refuses_connections_and_keeps_its_data_across_restart() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let mut events = watcher(cms.clone(), watcher::Config::default()).boxed();
    cms.create(&PostParams::default(), &config_map("kept"))
        .await
        .unwrap();

    server.stop().await;
    let refused = cms.get("kept").await.unwrap_err();
    assert!(
        !matches!(refused, kube::Error::Api(_)),
        "expected a connection error, got {refused:?}"
    );

    server.restart().await;
    assert_eq!(cms.get("kept").await.unwrap().data.unwrap()["k"], "v");
    cms.create(&PostParams::default(), &config_map("after-restart"))
        .await
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.next().await {
            if let Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) = event
                && cm.name_any() == "after-restart"
            {
                return true;
            }
        }
        false
    });
    assert!(
        seen.await.unwrap(),
        "the watcher reconnects after a restart"
    );
}

#[tokio::test]
async fn fail_next_fails_matching_requests_the_given_number_of_times() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    cms.create(&PostParams::default(), &config_map("a"))
        .await
        .unwrap();
    server
        .faults()
        .fail_next(RequestMatcher::verb("get").resource("configmaps"), 500, 1);
    match cms.get("a").await.unwrap_err() {
        kube::Error::Api(status) => assert_eq!(
            (status.code, status.reason.as_str()),
            (500, "InternalError")
        ),
        other => panic!("unexpected {other:?}"),
    }
    cms.get("a").await.unwrap();

    server
        .faults()
        .fail_next(RequestMatcher::verb("patch").name("a"), 409, 1);
    // data.k belongs to the creator: like a real server, only a forced apply may change it.
    let apply = Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "w"}}));
    let forced = PatchParams::apply("sovra").force();
    assert_eq!(
        api_code(cms.patch("a", &forced, &apply).await.unwrap_err()),
        409
    );
    cms.patch("a", &forced, &apply).await.unwrap();

    // 503 is retried by kube's default client: one failure is invisible to the caller.
    server
        .faults()
        .fail_next(RequestMatcher::any().resource("configmaps"), 503, 1);
    cms.get("a").await.unwrap();
    assert_eq!(
        server.requests().iter().filter(|r| r.status == 503).count(),
        1
    );
}

#[tokio::test]
async fn forbidden_slow_and_token_protected_servers_behave_like_real_ones() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    server
        .faults()
        .forbid(RequestMatcher::verb("list").resource("configmaps"));
    assert_eq!(
        api_code(cms.list(&ListParams::default()).await.unwrap_err()),
        403
    );
    server.faults().clear();

    server
        .faults()
        .delay(RequestMatcher::verb("list"), Duration::from_millis(300));
    let started = Instant::now();
    cms.list(&ListParams::default()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    server.faults().clear();

    server.faults().require_token(Some("s3cret".into()));
    assert_eq!(
        api_code(cms.list(&ListParams::default()).await.unwrap_err()),
        401
    );
    let with_token: Api<ConfigMap> = Api::default_namespaced(server.client());
    with_token.list(&ListParams::default()).await.unwrap();

    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig_yaml()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let from_kubeconfig: Api<ConfigMap> =
        Api::default_namespaced(Client::try_from(config).unwrap());
    from_kubeconfig.list(&ListParams::default()).await.unwrap();
}

#[tokio::test]
async fn the_access_log_records_kubernetes_verbs_and_attributes() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    server.clear_requests();

    let created = cms
        .create(&PostParams::default(), &config_map("a"))
        .await
        .unwrap();
    cms.get("a").await.unwrap();
    cms.list(&ListParams::default()).await.unwrap();
    cms.replace("a", &PostParams::default(), &created)
        .await
        .unwrap();
    cms.patch("a", &PatchParams::default(), &Patch::Merge(json!({})))
        .await
        .unwrap();
    let apply = Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}}));
    cms.patch("a", &PatchParams::apply("sovra"), &apply)
        .await
        .unwrap();
    cms.delete("a", &DeleteParams::default()).await.unwrap();
    cms.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    drop(
        cms.watch(&kube::api::WatchParams::default().timeout(1), "0")
            .await
            .unwrap(),
    );
    let pods: Api<Pod> = Api::default_namespaced(client);
    server
        .put(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}}),
        )
        .unwrap();
    pods.evict("p", &EvictParams::default()).await.unwrap();
    let missing = Api::<ConfigMap>::namespaced(pods.clone().into_client(), "default")
        .get("missing")
        .await;
    assert!(missing.is_err());

    // "verb resource[/subresource] [patch type] [field manager] status"
    let describe = |r: RequestRecord| {
        let resource = [Some(r.resource), r.subresource]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>();
        let extras = [r.patch_type, r.field_manager]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>();
        format!(
            "{} {} {} {}",
            r.verb,
            resource.join("/"),
            extras.join(" "),
            r.status
        )
    };
    let seen: Vec<String> = server.requests().into_iter().map(describe).collect();
    assert_eq!(
        seen,
        [
            "create configmaps  201",
            "get configmaps  200",
            "list configmaps  200",
            "update configmaps  200",
            "patch configmaps merge 200",
            "patch configmaps apply sovra 200",
            "delete configmaps  200",
            "deletecollection configmaps  200",
            "watch configmaps  200",
            "create pods/eviction  201",
            "get configmaps  404",
        ]
    );
    let eviction = &server.requests()[9];
    assert_eq!(
        (eviction.resource.as_str(), eviction.name.as_deref()),
        ("pods", Some("p"))
    );
    assert_eq!(eviction.namespace.as_deref(), Some("default"));
}

#[tokio::test]
async fn publishing_an_event_twice_makes_one_event_with_a_series_of_two() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "sovra".into(),
            instance: None,
        },
    );
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: Some("a".into()),
        namespace: Some("default".into()),
        ..ObjectReference::default()
    };
    let event = Event {
        type_: EventType::Normal,
        reason: "Placed".into(),
        note: Some("placed on member-1".into()),
        action: "Place".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();
    let events: Api<K8sEvent> = Api::default_namespaced(client);
    let listed = events.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].series.as_ref().unwrap().count, 2);
    assert_eq!(listed[0].reason.as_deref(), Some("Placed"));
}

#[tokio::test]
async fn a_lease_is_acquired_once_and_a_conflicting_update_gets_409() {
    let server = TestApiServer::start().await;
    let leases: Api<Lease> = Api::namespaced(server.client(), "kube-system");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "sovra-leader"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}
    }))
    .unwrap();
    let held = leases.create(&PostParams::default(), &lease).await.unwrap();
    assert_eq!(
        api_code(
            leases
                .create(&PostParams::default(), &lease)
                .await
                .unwrap_err()
        ),
        409
    );

    let mut takeover = held.clone();
    takeover.spec.as_mut().unwrap().holder_identity = Some("b".into());
    leases
        .replace("sovra-leader", &PostParams::default(), &takeover)
        .await
        .unwrap();
    let mut late = held;
    late.spec.as_mut().unwrap().holder_identity = Some("c".into());
    assert_eq!(
        api_code(
            leases
                .replace("sovra-leader", &PostParams::default(), &late)
                .await
                .unwrap_err()
        ),
        409
    );
    let current = leases.get("sovra-leader").await.unwrap();
    assert_eq!(current.spec.unwrap().holder_identity.as_deref(), Some("b"));
}

fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}}
            }]
        }
    })
}

#[tokio::test]
async fn a_crd_becomes_established_and_its_resources_are_served_with_status() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(widget_crd()).unwrap();
    let created = crds.create(&PostParams::default(), &crd).await.unwrap();
    let conditions = created.status.unwrap().conditions.unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "NamesAccepted" && c.status == "True")
    );

    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::default_namespaced_with(client.clone(), &resource);
    let widget: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}
    }))
    .unwrap();
    widgets
        .create(&PostParams::default(), &widget)
        .await
        .unwrap();
    let status = Patch::Merge(json!({"status": {"ready": true}}));
    widgets
        .patch_status("w", &PatchParams::default(), &status)
        .await
        .unwrap();
    let fetched = widgets.get("w").await.unwrap();
    assert_eq!(fetched.data["status"]["ready"], true);
    assert_eq!(fetched.data["spec"]["size"], 1);

    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    assert!(
        discovery
            .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"))
            .is_some()
    );
    assert!(
        discovery
            .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
            .is_some()
    );
    assert!(
        client
            .apiserver_version()
            .await
            .unwrap()
            .git_version
            .starts_with("v1.33")
    );

    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        server
            .list(&ResourceRef::new("example.com", "v1", "widgets"), None)
            .is_empty()
    );
    assert_eq!(api_code(widgets.get("w").await.unwrap_err()), 404);

    // The direct store path registers CRDs too.
    server.put(widget_crd()).unwrap();
    widgets
        .create(&PostParams::default(), &widget)
        .await
        .unwrap();
}

#[tokio::test]
async fn malformed_requests_get_status_errors_and_never_take_the_server_down() {
    let server = TestApiServer::start().await;
    let client = server.client();
    server
        .put(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}))
        .unwrap();
    let cms = "/api/v1/namespaces/default/configmaps";
    let json_type = "application/json";
    let cases = [
        ("POST", cms.to_string(), json_type, "{", 400),
        ("POST", cms.to_string(), json_type, "[]", 400),
        (
            "POST",
            cms.to_string(),
            json_type,
            r#"{"metadata": {"name": "a/b"}}"#,
            422,
        ),
        (
            "POST",
            cms.to_string(),
            json_type,
            r#"{"metadata": {}}"#,
            422,
        ),
        ("GET", "/apis/nope/v1/things".into(), json_type, "", 404),
        ("GET", "/api/v1/configmaps/x".into(), json_type, "", 404),
        ("GET", "/no/such/path".into(), json_type, "", 404),
        (
            "GET",
            format!("{cms}?labelSelector=a%20in%20(b"),
            json_type,
            "",
            400,
        ),
        (
            "GET",
            format!("{cms}?fieldSelector=spec.nodeName%3Dn"),
            json_type,
            "",
            400,
        ),
        (
            "GET",
            format!("{cms}?watch=true&resourceVersion=abc"),
            json_type,
            "",
            400,
        ),
        (
            "PUT",
            format!("{cms}/x"),
            json_type,
            r#"{"metadata": {"name": "y"}}"#,
            400,
        ),
        ("PATCH", format!("{cms}/x"), "text/plain", "{}", 415),
        (
            "PATCH",
            format!("{cms}/x"),
            "application/merge-patch+json",
            "null",
            400,
        ),
        (
            "PATCH",
            format!("{cms}/x"),
            "application/json-patch+json",
            r#"[{"op": "replace", "path": "/metadata", "value": 1}]"#,
            400,
        ),
        (
            "PATCH",
            format!("{cms}/x?fieldManager=m"),
            "application/apply-patch+yaml",
            ": : :\n-",
            400,
        ),
        (
            "PATCH",
            format!("{cms}/x?fieldManager=m"),
            "application/apply-patch+yaml",
            r#"{"kind": 1}"#,
            400,
        ),
        ("DELETE", format!("{cms}/x"), json_type, "not json", 400),
        ("POST", format!("{cms}/x/eviction"), json_type, "{}", 404),
    ];
    for (method, path, content_type, body, expected) in cases {
        let request = hyper::Request::builder()
            .method(method)
            .uri(&path)
            .header("content-type", content_type)
            .body(body.as_bytes().to_vec())
            .unwrap();
        let code = api_code(client.request::<Value>(request).await.unwrap_err());
        assert_eq!(code, expected, "{method} {path} {body}");
    }
    assert!(
        server
            .get(&ResourceRef::of::<ConfigMap>(), None, "x")
            .is_some()
    );
}
