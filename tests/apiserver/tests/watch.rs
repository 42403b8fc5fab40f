//! Watches: kube::runtime::watcher, cut streams, 410 Gone, bookmarks, selectors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher::{self, Event, watcher};
use serde_json::json;
use test_apiserver::{ServerOptions, TestApiServer};

fn config_map(name: &str, app: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": app}}})).unwrap()
}

/// The next watcher event that satisfies `wanted`, skipping errors (a cut
/// stream surfaces as one) and everything else.
async fn next_matching<S, F>(stream: &mut S, mut wanted: F) -> Event<ConfigMap>
where
    S: Stream<Item = Result<Event<ConfigMap>, watcher::Error>> + Unpin,
    F: FnMut(&Event<ConfigMap>) -> bool,
{
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.next().await {
                Some(Ok(event)) if wanted(&event) => return event,
                Some(_) => {}
                None => panic!("watcher ended"),
            }
        }
    })
    .await
    .expect("timed out waiting for a watch event")
}

fn is_apply(name: &'static str) -> impl FnMut(&Event<ConfigMap>) -> bool {
    move |e| matches!(e, Event::Apply(o) | Event::InitApply(o) if o.name_any() == name)
}

#[tokio::test]
async fn watcher_sees_added_modified_and_deleted() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    cms.create(&PostParams::default(), &config_map("before", "web"))
        .await
        .unwrap();
    let mut events = watcher(cms.clone(), watcher::Config::default()).boxed();
    next_matching(&mut events, is_apply("before")).await;
    next_matching(&mut events, |e| matches!(e, Event::InitDone)).await;

    cms.create(&PostParams::default(), &config_map("a", "web"))
        .await
        .unwrap();
    next_matching(&mut events, is_apply("a")).await;
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "1"}})),
    )
    .await
    .unwrap();
    next_matching(
        &mut events,
        |e| matches!(e, Event::Apply(o) if o.data.is_some()),
    )
    .await;
    cms.delete("a", &DeleteParams::default()).await.unwrap();
    next_matching(
        &mut events,
        |e| matches!(e, Event::Delete(o) if o.name_any() == "a"),
    )
    .await;
}

#[tokio::test]
async fn watcher_recovers_after_cut_watches_and_relists_after_compaction() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let mut events = watcher(cms.clone(), watcher::Config::default()).boxed();
    next_matching(&mut events, |e| matches!(e, Event::InitDone)).await;

    server.cut_watches();
    cms.create(&PostParams::default(), &config_map("after-cut", "web"))
        .await
        .unwrap();
    next_matching(&mut events, is_apply("after-cut")).await;

    let lists_before = server
        .requests()
        .iter()
        .filter(|r| r.verb == "list")
        .count();
    server.compact();
    server.cut_watches();
    cms.create(&PostParams::default(), &config_map("after-compact", "web"))
        .await
        .unwrap();
    next_matching(&mut events, is_apply("after-compact")).await;
    let lists_after = server
        .requests()
        .iter()
        .filter(|r| r.verb == "list")
        .count();
    assert!(lists_after > lists_before, "410 Gone must force a relist");
}

#[tokio::test]
async fn a_watch_from_a_compacted_resource_version_gets_410_gone() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let created = cms
        .create(&PostParams::default(), &config_map("a", "web"))
        .await
        .unwrap();
    server.compact();
    let mut stream = cms
        .watch(
            &WatchParams::default(),
            &created.resource_version().unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    match stream.next().await {
        Some(Ok(WatchEvent::Error(status))) => assert_eq!(status.code, 410),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    assert!(
        stream.next().await.is_none(),
        "the stream ends after the error"
    );
}

#[tokio::test]
async fn watches_replay_history_send_bookmarks_and_end_at_their_timeout() {
    let options = ServerOptions {
        bookmark_interval: Duration::from_millis(50),
        ..ServerOptions::default()
    };
    let server = TestApiServer::start_with(options).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let first = cms
        .create(&PostParams::default(), &config_map("a", "web"))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &config_map("b", "web"))
        .await
        .unwrap();

    let params = WatchParams::default().timeout(1);
    let events: Vec<_> = cms
        .watch(&params, &first.resource_version().unwrap())
        .await
        .unwrap()
        .collect()
        .await;
    match &events[0] {
        Ok(WatchEvent::Added(cm)) => {
            assert_eq!(cm.name_any(), "b", "only changes after the given version")
        }
        other => panic!("expected ADDED b, got {other:?}"),
    }
    let bookmark_rv = events.iter().find_map(|e| match e {
        Ok(WatchEvent::Bookmark(b)) => Some(b.metadata.resource_version.clone()),
        _ => None,
    });
    assert_eq!(bookmark_rv, Some(server.resource_version().to_string()));
}

#[tokio::test]
async fn a_selector_watch_sees_objects_that_stop_matching_as_deleted() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let config = watcher::Config::default().labels("app=web");
    let mut events = watcher(cms.clone(), config).boxed();
    next_matching(&mut events, |e| matches!(e, Event::InitDone)).await;
    cms.create(&PostParams::default(), &config_map("a", "web"))
        .await
        .unwrap();
    next_matching(&mut events, is_apply("a")).await;
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}})),
    )
    .await
    .unwrap();
    next_matching(
        &mut events,
        |e| matches!(e, Event::Delete(o) if o.name_any() == "a"),
    )
    .await;
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})),
    )
    .await
    .unwrap();
    next_matching(&mut events, is_apply("a")).await;
}

#[tokio::test]
async fn streaming_lists_end_their_initial_events_with_a_bookmark() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    cms.create(&PostParams::default(), &config_map("a", "web"))
        .await
        .unwrap();
    let mut events = watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
    next_matching(&mut events, is_apply("a")).await;
    next_matching(&mut events, |e| matches!(e, Event::InitDone)).await;
    cms.create(&PostParams::default(), &config_map("b", "web"))
        .await
        .unwrap();
    next_matching(&mut events, is_apply("b")).await;
}
