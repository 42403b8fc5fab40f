//! CRUD semantics through the real kube client: selectors, optimistic
//! concurrency, status subresources, finalizers, garbage collection, eviction.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use test_apiserver::{ResourceRef, TestApiServer};

fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

fn config_map(name: &str, labels: Value) -> ConfigMap {
    from_json(json!({"metadata": {"name": name, "labels": labels}, "data": {"k": name}}))
}

fn deployment(name: &str) -> Deployment {
    from_json(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
        },
        "status": {"replicas": 7}
    }))
}

fn api_code(err: kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(status) => (status.code, status.reason),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn names(api: &Api<ConfigMap>, params: &ListParams) -> Vec<String> {
    api.list(params)
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.name_any())
        .collect()
}

#[tokio::test]
async fn created_objects_can_be_read_and_listed_by_label_and_field_selectors() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let pp = PostParams::default();
    cms.create(
        &pp,
        &config_map("a", json!({"app": "web", "tier": "front"})),
    )
    .await
    .unwrap();
    cms.create(&pp, &config_map("b", json!({"app": "db"})))
        .await
        .unwrap();
    cms.create(&pp, &config_map("c", json!({}))).await.unwrap();

    let a = cms.get("a").await.unwrap();
    assert_eq!(a.data.unwrap()["k"], "a");
    assert!(a.metadata.uid.is_some() && a.metadata.creation_timestamp.is_some());
    assert_eq!(a.metadata.namespace.as_deref(), Some("default"));

    let labels = |s: &str| ListParams::default().labels(s);
    assert_eq!(names(&cms, &labels("app=web")).await, ["a"]);
    assert_eq!(names(&cms, &labels("app in (web,db)")).await, ["a", "b"]);
    assert_eq!(names(&cms, &labels("!app")).await, ["c"]);
    assert_eq!(names(&cms, &labels("app!=web")).await, ["b", "c"]);
    assert_eq!(names(&cms, &labels("app,tier==front")).await, ["a"]);
    assert_eq!(
        names(&cms, &ListParams::default().fields("metadata.name=b")).await,
        ["b"]
    );
    assert_eq!(
        api_code(cms.list(&labels("app in (web")).await.unwrap_err()).0,
        400
    );

    let list = cms.list(&ListParams::default()).await.unwrap();
    let list_rv: u64 = list.metadata.resource_version.unwrap().parse().unwrap();
    assert!(
        list.items
            .iter()
            .all(|i| i.resource_version().unwrap().parse::<u64>().unwrap() <= list_rv)
    );
    // The metadata-only API gets full objects, which kube reads as PartialObjectMeta.
    assert_eq!(
        cms.get_metadata("a")
            .await
            .unwrap()
            .metadata
            .name
            .as_deref(),
        Some("a")
    );
    assert_eq!(
        cms.list_metadata(&labels("app")).await.unwrap().items.len(),
        2
    );
    let everywhere: Api<ConfigMap> = Api::all(server.client());
    assert_eq!(
        everywhere
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );

    let nodes: Api<Node> = Api::all(server.client());
    nodes
        .create(
            &pp,
            &from_json(json!({"metadata": {"name": "n1", "labels": {"pool": "eu"}}})),
        )
        .await
        .unwrap();
    let listed = nodes
        .list(&ListParams::default().labels("pool=eu"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].metadata.namespace, None);
}

#[tokio::test]
async fn writes_bump_resource_version_and_spec_changes_bump_generation() {
    let server = TestApiServer::start().await;
    let deploys: Api<Deployment> = Api::default_namespaced(server.client());
    let created = deploys
        .create(&PostParams::default(), &deployment("web"))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let patched = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.generation, Some(2));
    assert!(patched.resource_version() > created.resource_version());
    let relabelled = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(relabelled.metadata.generation, Some(2));
    let same = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        same.resource_version(),
        relabelled.resource_version(),
        "a no-op write is not a write"
    );
}

#[tokio::test]
async fn replacing_with_a_stale_resource_version_is_a_conflict() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let original = cms
        .create(&PostParams::default(), &config_map("a", json!({})))
        .await
        .unwrap();
    let mut fresh = original.clone();
    fresh.data = Some([("k".to_string(), "v2".to_string())].into());
    cms.replace("a", &PostParams::default(), &fresh)
        .await
        .unwrap();

    let mut stale = original;
    stale.data = Some([("k".to_string(), "v3".to_string())].into());
    let (code, reason) = api_code(
        cms.replace("a", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));

    stale.metadata.resource_version = None; // unconditional replace
    cms.replace("a", &PostParams::default(), &stale)
        .await
        .unwrap();
    assert_eq!(cms.get("a").await.unwrap().data.unwrap()["k"], "v3");
    let precondition =
        Patch::Merge(json!({"metadata": {"resourceVersion": "1"}, "data": {"k": "v4"}}));
    assert_eq!(
        api_code(
            cms.patch("a", &PatchParams::default(), &precondition)
                .await
                .unwrap_err()
        )
        .0,
        409
    );
}

#[tokio::test]
async fn creating_duplicates_missing_namespaces_and_reading_missing_objects_fail_like_kubernetes() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    cms.create(&PostParams::default(), &config_map("a", json!({})))
        .await
        .unwrap();
    let dup = cms
        .create(&PostParams::default(), &config_map("a", json!({})))
        .await
        .unwrap_err();
    assert_eq!(api_code(dup), (409, "AlreadyExists".to_string()));
    let elsewhere: Api<ConfigMap> = Api::namespaced(server.client(), "nowhere");
    let missing_ns = elsewhere
        .create(&PostParams::default(), &config_map("a", json!({})))
        .await
        .unwrap_err();
    assert_eq!(api_code(missing_ns).0, 404);
    assert_eq!(
        api_code(cms.get("nope").await.unwrap_err()),
        (404, "NotFound".to_string())
    );
    assert!(cms.get_opt("nope").await.unwrap().is_none());
    let patch_missing = cms
        .patch("nope", &PatchParams::default(), &Patch::Merge(json!({})))
        .await;
    assert_eq!(api_code(patch_missing.unwrap_err()).0, 404);

    let generated: ConfigMap = from_json(json!({"metadata": {"generateName": "gen-"}}));
    let one = cms
        .create(&PostParams::default(), &generated)
        .await
        .unwrap()
        .name_any();
    let two = cms
        .create(&PostParams::default(), &generated)
        .await
        .unwrap()
        .name_any();
    assert!(one.starts_with("gen-") && one.len() == 9 && one != two);
}

#[tokio::test]
async fn status_subresource_isolates_status_from_spec_writes() {
    let server = TestApiServer::start().await;
    let deploys: Api<Deployment> = Api::default_namespaced(server.client());
    let created = deploys
        .create(&PostParams::default(), &deployment("web"))
        .await
        .unwrap();
    assert!(created.status.is_none(), "status is dropped on create");

    let status = Patch::Merge(json!({"status": {"replicas": 2}, "spec": {"replicas": 9}}));
    let after_status = deploys
        .patch_status("web", &PatchParams::default(), &status)
        .await
        .unwrap();
    assert_eq!(after_status.status.as_ref().unwrap().replicas, Some(2));
    assert_eq!(
        after_status.spec.as_ref().unwrap().replicas,
        Some(1),
        "status writes ignore spec"
    );
    assert_eq!(after_status.metadata.generation, Some(1));

    let main = Patch::Merge(json!({"status": {"replicas": 5}, "spec": {"replicas": 4}}));
    let after_main = deploys
        .patch("web", &PatchParams::default(), &main)
        .await
        .unwrap();
    assert_eq!(
        after_main.status.unwrap().replicas,
        Some(2),
        "main writes ignore status"
    );
    assert_eq!(after_main.spec.unwrap().replicas, Some(4));

    let mut replaced = deploys.get("web").await.unwrap();
    replaced.status.as_mut().unwrap().replicas = Some(3);
    let replaced = deploys
        .replace_status("web", &PostParams::default(), &replaced)
        .await;
    assert_eq!(replaced.unwrap().status.unwrap().replicas, Some(3));
}

#[tokio::test]
async fn finalizers_hold_deletion_until_they_are_removed() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let held: ConfigMap =
        from_json(json!({"metadata": {"name": "held", "finalizers": ["sovra.io/cleanup"]}}));
    cms.create(&PostParams::default(), &held).await.unwrap();

    let deleted = cms.delete("held", &DeleteParams::default()).await.unwrap();
    let marked = deleted
        .left()
        .expect("a pending deletion returns the object");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert!(
        cms.get("held")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );

    let add = Patch::Merge(json!({"metadata": {"finalizers": ["sovra.io/cleanup", "other"]}}));
    assert_eq!(
        api_code(
            cms.patch("held", &PatchParams::default(), &add)
                .await
                .unwrap_err()
        )
        .0,
        422
    );

    let clear = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    cms.patch("held", &PatchParams::default(), &clear)
        .await
        .unwrap();
    assert!(cms.get_opt("held").await.unwrap().is_none());

    cms.create(&PostParams::default(), &config_map("plain", json!({})))
        .await
        .unwrap();
    assert!(
        cms.delete("plain", &DeleteParams::default())
            .await
            .unwrap()
            .is_right()
    );
    assert!(cms.get_opt("plain").await.unwrap().is_none());
}

fn owned_by(name: &str, owner: &ConfigMap) -> ConfigMap {
    from_json(json!({"metadata": {"name": name, "ownerReferences": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": owner.name_any(), "uid": owner.uid().unwrap()
    }]}}))
}

#[tokio::test]
async fn deleting_an_owner_garbage_collects_dependents_unless_orphaned() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let pp = PostParams::default();
    let owner = cms
        .create(&pp, &config_map("owner", json!({})))
        .await
        .unwrap();
    let child = cms.create(&pp, &owned_by("child", &owner)).await.unwrap();
    cms.create(&pp, &owned_by("grandchild", &child))
        .await
        .unwrap();
    let mut held = owned_by("held-child", &owner);
    held.metadata.finalizers = Some(vec!["x/y".into()]);
    cms.create(&pp, &held).await.unwrap();

    cms.delete("owner", &DeleteParams::default()).await.unwrap();
    assert!(cms.get_opt("child").await.unwrap().is_none());
    assert!(cms.get_opt("grandchild").await.unwrap().is_none());
    assert!(
        cms.get("held-child")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );

    let owner = cms
        .create(&pp, &config_map("owner2", json!({})))
        .await
        .unwrap();
    cms.create(&pp, &owned_by("orphan", &owner)).await.unwrap();
    cms.delete("owner2", &DeleteParams::orphan()).await.unwrap();
    let orphan = cms.get("orphan").await.unwrap();
    assert!(
        orphan.owner_references().is_empty(),
        "orphaning removes the dangling owner reference"
    );
}

#[tokio::test]
async fn deleting_a_namespace_deletes_everything_in_it() {
    let server = TestApiServer::start().await;
    let namespaces: Api<Namespace> = Api::all(server.client());
    namespaces
        .create(
            &PostParams::default(),
            &from_json(json!({"metadata": {"name": "team"}})),
        )
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "team");
    cms.create(&PostParams::default(), &config_map("a", json!({})))
        .await
        .unwrap();
    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();
    assert!(namespaces.get_opt("team").await.unwrap().is_none());
    assert!(
        server
            .list(&ResourceRef::of::<ConfigMap>(), Some("team"))
            .is_empty()
    );
    assert_eq!(
        server
            .get(&ResourceRef::new("", "v1", "namespaces"), None, "default")
            .unwrap()["status"]["phase"],
        "Active"
    );
}

#[tokio::test]
async fn eviction_is_refused_with_429_while_a_disruption_budget_allows_no_disruption() {
    let server = TestApiServer::start().await;
    // kube retries 429 by default for minutes; eviction callers see it at once without retries.
    let mut config = server.config();
    config.default_retry = false;
    let client = Client::try_from(config).unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    for name in ["p1", "p2"] {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "nginx"}]}, "status": {"phase": "Running"}});
        server.put(pod).unwrap();
    }
    server
        .put(json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
                    "spec": {"selector": {"matchLabels": {"app": "web"}}, "minAvailable": 1},
                    "status": {"disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2}}))
        .unwrap();

    pods.evict("p1", &EvictParams::default()).await.unwrap();
    assert!(pods.get_opt("p1").await.unwrap().is_none());
    let pdbs: Api<PodDisruptionBudget> = Api::default_namespaced(client);
    assert_eq!(
        pdbs.get("web")
            .await
            .unwrap()
            .status
            .unwrap()
            .disruptions_allowed,
        0
    );

    let refused = pods.evict("p2", &EvictParams::default()).await.unwrap_err();
    assert_eq!(api_code(refused), (429, "TooManyRequests".to_string()));
    assert!(pods.get_opt("p2").await.unwrap().is_some());
}
