//! Watch streams: history replay or snapshot, then live changes, bookmarks,
//! selector-aware event translation, timeouts and abrupt cuts.

use std::time::Duration;

use hyper::body::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::registry::ResourceType;
use crate::selector::Selectors;
use crate::store::{Change, ChangeKind, Subscription, key, present};

/// What a watch stream should deliver.
pub struct WatchFilter {
    pub rt: ResourceType,
    pub namespace: Option<String>,
    pub selectors: Selectors,
    /// Events carry each object as a PartialObjectMetadata ([`crate::metadata_only`]).
    pub metadata_only: bool,
}

pub struct WatchSettings {
    pub bookmarks: bool,
    /// Send `k8s.io/initial-events-end` after the backlog (streaming lists).
    pub initial_events_end: bool,
    pub timeout: Option<Duration>,
    pub bookmark_interval: Duration,
}

/// The stream ended abruptly (`cut_watches`): the body must fail, not finish.
#[derive(Debug, thiserror::Error)]
#[error("watch stream cut by the test API server")]
pub struct WatchCut;

pub type WatchItem = Result<Bytes, WatchCut>;

impl WatchFilter {
    /// The event type this watcher sees for a change, if any: an object that
    /// stops matching the selectors is DELETED for this watcher, one that
    /// starts matching is ADDED.
    fn translate<'a>(&self, change: &'a Change) -> Option<(&'static str, &'a Value)> {
        if change.resource != key(&self.rt)
            || self
                .namespace
                .as_ref()
                .is_some_and(|ns| *ns != change.namespace)
        {
            return None;
        }
        let now = self.selectors.matches(&change.object);
        let before = change
            .previous
            .as_ref()
            .is_some_and(|p| self.selectors.matches(p));
        let kind = match change.kind {
            ChangeKind::Added if now => "ADDED",
            ChangeKind::Modified if now && before => "MODIFIED",
            ChangeKind::Modified if now => "ADDED",
            ChangeKind::Modified if before => "DELETED",
            ChangeKind::Deleted if now => "DELETED",
            _ => return None,
        };
        Some((kind, &change.object))
    }

    /// The newline-terminated watch event for a change, if this watcher sees it.
    fn event_line(&self, change: &Change) -> Option<Bytes> {
        let (event_type, object) = self.translate(change)?;
        let object = present(&self.rt, object.clone());
        Some(line(event_type, self.shaped(object)))
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_events_end && let Some(meta) = metadata.as_object_mut() {
            meta.insert(
                "annotations".into(),
                json!({"k8s.io/initial-events-end": "true"}),
            );
        }
        let object = json!({"apiVersion": self.rt.api_version(), "kind": self.rt.kind, "metadata": metadata});
        line("BOOKMARK", self.shaped(object))
    }

    fn shaped(&self, object: Value) -> Value {
        if self.metadata_only {
            crate::metadata_only::object(&object)
        } else {
            object
        }
    }
}

fn line(event_type: &str, object: Value) -> Bytes {
    let mut line = json!({"type": event_type, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// A stream consisting of one ERROR event (how a watch reports 410 Gone).
pub fn error_stream(status: Value) -> mpsc::Receiver<WatchItem> {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(Ok(line("ERROR", status)));
    rx
}

/// Spawns the task feeding one watch response body.
pub fn spawn(
    filter: WatchFilter,
    settings: WatchSettings,
    sub: Subscription,
) -> mpsc::Receiver<WatchItem> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(run(filter, settings, sub, tx));
    rx
}

async fn run(
    filter: WatchFilter,
    settings: WatchSettings,
    mut sub: Subscription,
    tx: mpsc::Sender<WatchItem>,
) {
    for line in sub
        .backlog
        .iter()
        .filter_map(|change| filter.event_line(change))
    {
        if tx.send(Ok(line)).await.is_err() {
            return;
        }
    }
    // The newest resourceVersion this watcher has fully processed: a safe bookmark.
    let mut seen_rv = sub.rv;
    if settings.initial_events_end && tx.send(Ok(filter.bookmark(seen_rv, true))).await.is_err() {
        return;
    }
    let deadline = async {
        match settings.timeout {
            Some(timeout) => tokio::time::sleep(timeout).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let interval = settings.bookmark_interval.max(Duration::from_millis(10));
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    loop {
        let item = tokio::select! {
            biased;
            () = tx.closed() => return,
            () = &mut deadline => return, // a clean end, as at timeoutSeconds upstream
            change = sub.live.recv() => match change {
                Some(change) => {
                    seen_rv = seen_rv.max(change.rv);
                    filter.event_line(&change).map(Ok)
                }
                // cut_watches() dropped our feed: fail the body rather than end it cleanly.
                None => Some(Err(WatchCut)),
            },
            _ = ticker.tick(), if settings.bookmarks => Some(Ok(filter.bookmark(seen_rv, false))),
        };
        if let Some(item) = item {
            let cut = item.is_err();
            if tx.send(item).await.is_err() || cut {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::registry::Registry;
    use crate::selector::LabelSelector;

    fn change(kind: ChangeKind, labels: Value, previous: Option<Value>) -> Change {
        Change {
            kind,
            resource: (String::new(), "configmaps".into()),
            namespace: "default".into(),
            rv: 7,
            object: json!({"metadata": {"name": "a", "labels": labels}}),
            previous: previous.map(|l| json!({"metadata": {"name": "a", "labels": l}})),
        }
    }

    #[test]
    fn objects_leaving_or_entering_a_selector_are_deleted_or_added_for_that_watcher() {
        let filter = WatchFilter {
            rt: Registry::builtin()
                .find("", "v1", "configmaps")
                .cloned()
                .unwrap(),
            namespace: Some("default".into()),
            selectors: Selectors {
                labels: LabelSelector::parse("app=web").unwrap(),
                ..Selectors::default()
            },
            metadata_only: false,
        };
        let web = json!({"app": "web"});
        let db = json!({"app": "db"});
        let kind = |c: Change| filter.translate(&c).map(|(t, _)| t);
        assert_eq!(
            kind(change(ChangeKind::Modified, db.clone(), Some(web.clone()))),
            Some("DELETED")
        );
        assert_eq!(
            kind(change(ChangeKind::Modified, web.clone(), Some(db.clone()))),
            Some("ADDED")
        );
        assert_eq!(
            kind(change(ChangeKind::Modified, web.clone(), Some(web.clone()))),
            Some("MODIFIED")
        );
        assert_eq!(
            kind(change(ChangeKind::Modified, db.clone(), Some(db.clone()))),
            None
        );
        assert_eq!(
            kind(change(ChangeKind::Deleted, web.clone(), Some(web))),
            Some("DELETED")
        );
        assert_eq!(kind(change(ChangeKind::Added, db, None)), None);
    }
}
