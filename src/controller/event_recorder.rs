//! Publishes Kubernetes Events (events.k8s.io/v1) as kube-runtime's `Recorder` does, folding a
//! repeat into a series, but remembering far less.
//!
//! kube's `Recorder` keeps every Event it published, whole, for six minutes, and sweeps them only
//! when it publishes again: after a start-up of 10,000 placements that is well over 10,000
//! Events held in memory. This keeps, per repeatable Event, only a digest of what makes it the
//! same Event (type, action, reason, reporter, regarding, related) with its object's name and
//! the series' count, and sweeps at most once a minute. The Events it writes are the Recorder's:
//! the same name scheme, fields and series patch; a repeat keeps the first note.

use super::spare_capacity::ShedSpare;
use crate::sync::lock;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use serde_json::json;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

/// How long a published Event can still become a series, as kube's `Recorder`.
const SERIES_WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_mins(6);
/// How often the remembered Events are swept.
const SWEEP_EVERY: jiff::SignedDuration = jiff::SignedDuration::from_mins(1);

#[derive(Clone)]
pub struct EventRecorder {
    client: Client,
    reporter: Reporter,
    published: Arc<Mutex<Published>>,
}

#[derive(Default)]
struct Published {
    /// Digest of an Event's identity → what a repeat needs.
    events: HashMap<u64, Series>,
    swept: Option<jiff::Timestamp>,
}

struct Series {
    name: String,
    count: i32,
    last: jiff::Timestamp,
}

impl EventRecorder {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            published: Arc::default(),
        }
    }

    /// Publishes `event` about `regarding`, in its namespace (`default` for cluster-scoped
    /// objects): a new Event, or, when the same one was published within six minutes, the
    /// next count of its series.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = jiff::Timestamp::now();
        let identity = self.identity(event, regarding);
        let repeat = {
            let mut published = lock(&self.published);
            published.sweep(now);
            published
                .events
                .get(&identity)
                .map(|s| (s.name.clone(), s.count + 1))
        };
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let (name, count) = match repeat {
            Some((name, count)) => {
                let series =
                    json!({"series": {"count": count, "lastObservedTime": MicroTime(now)}});
                events
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&series))
                    .await?;
                (name, count)
            }
            None => {
                let created = self.new_event(event, regarding, now);
                let name = created.metadata.name.clone().unwrap_or_default();
                events.create(&PostParams::default(), &created).await?;
                (name, 1)
            }
        };
        let series = Series {
            name,
            count,
            last: now,
        };
        lock(&self.published).events.insert(identity, series);
        Ok(())
    }

    /// What makes two Events the same, as kube's `Recorder` keys them (the note is not part).
    fn identity(&self, event: &Event, regarding: &ObjectReference) -> u64 {
        let reference = |r: &ObjectReference| {
            (
                r.api_version.clone(),
                r.kind.clone(),
                r.namespace.clone(),
                r.name.clone(),
                r.uid.clone(),
                r.field_path.clone(),
                r.resource_version.clone(),
            )
        };
        let mut hasher = DefaultHasher::new();
        (event.type_ == EventType::Warning).hash(&mut hasher);
        event.action.hash(&mut hasher);
        event.reason.hash(&mut hasher);
        self.reporter.controller.hash(&mut hasher);
        self.reporter.instance.hash(&mut hasher);
        reference(regarding).hash(&mut hasher);
        event.secondary.as_ref().map(reference).hash(&mut hasher);
        hasher.finish()
    }

    fn new_event(
        &self,
        event: &Event,
        regarding: &ObjectReference,
        now: jiff::Timestamp,
    ) -> K8sEvent {
        let controller = &self.reporter.controller;
        K8sEvent {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            note: event.note.clone(),
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_ref().unwrap_or(controller),
                    now.as_nanosecond()
                )),
                ..ObjectMeta::default()
            },
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| controller.clone()),
            ),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            related: event.secondary.clone(),
            ..K8sEvent::default()
        }
    }
}

impl Published {
    /// Forgets Events that can no longer become a series, at most once a minute.
    fn sweep(&mut self, now: jiff::Timestamp) {
        if self.swept.is_some_and(|at| at + SWEEP_EVERY > now) {
            return;
        }
        self.swept = Some(now);
        self.events.retain(|_, s| s.last + SERIES_WINDOW > now);
        // The start-up's Events, swept six minutes on, leave a table sized for all of them.
        self.events.shed_spare();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_older_than_the_series_window_are_swept_at_most_once_a_minute() {
        let start = jiff::Timestamp::UNIX_EPOCH;
        let mut published = Published::default();
        let series = |name: &str, last| Series {
            name: name.to_owned(),
            count: 1,
            last,
        };
        published.sweep(start);
        published.events.insert(1, series("old", start));
        published.events.insert(
            2,
            series("recent", start + jiff::SignedDuration::from_mins(5)),
        );
        let later = start + jiff::SignedDuration::from_secs(6 * 60 + 30);
        published.sweep(start + jiff::SignedDuration::from_secs(30));
        assert_eq!(published.events.len(), 2, "swept a minute ago: not again");
        published.sweep(later);
        let left: Vec<&str> = published.events.values().map(|s| s.name.as_str()).collect();
        assert_eq!(left, ["recent"]);
    }
}
