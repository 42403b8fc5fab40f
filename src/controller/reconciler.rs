//! What every controller's reconciler is wrapped in: metrics, per-object backoff, and making
//! repeated failures visible on the object itself.
//!
//! A failing object is retried with exponential backoff ([`super::Backoff`]). From the
//! [`REPORT_AFTER`]th consecutive failure on, the failure is published once: a Warning Event
//! `ReconcileError` with the error's text and, on a SovereignWorkload, the condition
//! `Ready=False` reason `ReconcileError`. It is published again only when the text changes; a
//! success forgets it (and the next successful reconcile writes the normal `Ready` condition).

use super::context::Context;
use super::deployment::FIELD_MANAGER;
use super::event_recorder::EventRecorder;
use super::metrics;
use super::status::{CONDITION_READY, truncate};
use crate::Error;
use crate::crd::{SovereignWorkload, SovereignWorkloadStatus};
use futures::{FutureExt, future::BoxFuture};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::ApiResource;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource};
use serde_json::{Value, json};
use std::sync::{Arc, Weak};
use std::time::Instant;

/// Event reason and condition reason of a published failure.
pub const REASON: &str = "ReconcileError";

/// Wraps a reconciler with metrics (count, duration, in-flight), and on success resets the
/// object's backoff and what was published about its failures.
/// `C` is the controller's state; every one of them carries the shared [`Context`].
pub(crate) fn instrumented<K, C, F, Fut>(
    reconcile: F,
    name: &'static str,
) -> impl Fn(Arc<K>, Arc<C>) -> BoxFuture<'static, Result<Action, Error>>
where
    K: Send + Sync + 'static + Resource<DynamicType = ()>,
    C: AsRef<Context> + Send + Sync + 'static,
    F: Fn(Arc<K>, Arc<C>) -> Fut + Copy + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
{
    move |object: Arc<K>, state: Arc<C>| {
        async move {
            let ctx = state.as_ref().as_ref();
            let label = metrics::labels(&[("controller", name)]);
            let key = object_key(object.as_ref());
            ctx.metrics.reconciliations.get_or_create(&label).inc();
            ctx.metrics.reconciles_in_flight.get_or_create(&label).inc();
            let started = Instant::now();
            let result = reconcile(object, state.clone()).await;
            let ctx = state.as_ref().as_ref();
            ctx.metrics
                .reconcile_duration
                .get_or_create(&label)
                .observe(started.elapsed().as_secs_f64());
            ctx.metrics.reconciles_in_flight.get_or_create(&label).dec();
            if result.is_ok() {
                ctx.backoff.reset(&key);
                ctx.errors.succeeded(&key);
            }
            result
        }
        .boxed()
    }
}

fn object_key<K: Resource<DynamicType = ()>>(object: &K) -> String {
    ObjectRef::from_obj(object).to_string()
}

/// Per-object exponential backoff for every controller, counted by kind and error (the
/// variant of the error, looking through the finalizer wrapper); a repeated failure is
/// published in the background (this must return at once).
pub(crate) fn error_policy<K, C>(object: Arc<K>, error: &Error, state: Arc<C>) -> Action
where
    K: Resource<DynamicType = ()>,
    C: AsRef<Context> + Send + Sync + 'static,
{
    let ctx = state.as_ref().as_ref();
    let key = object_key(object.as_ref());
    let delay = ctx.backoff.next_delay(&key);
    tracing::warn!(object = %key, %error, retry_in = ?delay, "reconcile failed");
    ctx.metrics
        .reconcile_errors
        .get_or_create(&metrics::labels(&[
            ("kind", K::kind(&()).as_ref()),
            ("error", error.metric_label()),
        ]))
        .inc();
    let text = truncate(&error.reported(), 1024);
    if ctx.errors.failed(&key, ctx.backoff.failures(&key), &text) {
        let reference = object.object_ref(&());
        let workload = (K::kind(&()) == SovereignWorkload::kind(&())
            && K::group(&()) == SovereignWorkload::group(&()))
        .then(|| {
            (
                reference.namespace.clone().unwrap_or_default(),
                reference.name.clone().unwrap_or_default(),
            )
        });
        let publish = publish(
            ctx.client.clone(),
            ctx.recorder.clone(),
            reference,
            workload,
            text,
            Arc::downgrade(&state),
        );
        ctx.errors.spawn(publish);
    }
    Action::requeue(delay)
}

/// Publishes one failure: the Event, and on a workload the `Ready` condition. `state` is
/// only looked at (not kept alive) to remember the status written.
async fn publish<C: AsRef<Context>>(
    client: Client,
    recorder: EventRecorder,
    reference: ObjectReference,
    workload: Option<(String, String)>,
    text: String,
    state: Weak<C>,
) {
    let event = Event {
        type_: EventType::Warning,
        reason: REASON.to_owned(),
        note: Some(text.clone()),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(error) = recorder.publish(&event, &reference).await {
        tracing::warn!(%error, reason = REASON, "could not publish event");
    }
    let Some((namespace, name)) = workload else {
        return;
    };
    match report_on_workload(&client, &namespace, &name, &text).await {
        Ok(Some(written)) => {
            // The workload controller decides from the status Sovra wrote last until its cache
            // shows it: this is now that status.
            let uid = reference.uid.unwrap_or_default();
            if let Some(state) = state.upgrade() {
                let statuses = &state.as_ref().as_ref().memory.workload_statuses;
                match serde_json::from_value::<SovereignWorkloadStatus>(written) {
                    Ok(status) => statuses.remember(&uid, status.compacted()),
                    Err(_) => statuses.forget(&uid),
                }
            }
        }
        Ok(None) => {}
        Err(error) => {
            tracing::warn!(%error, %namespace, %name, "could not report the reconcile error in status");
        }
    }
}

/// Sets `Ready=False` reason `ReconcileError` on the workload, leaving the rest of the status
/// as Sovra wrote it. Server-side apply with Sovra's field manager owns the whole status, so
/// the whole status is applied again with only that condition replaced. Nothing is written
/// when the condition already says this. Returns the status written.
async fn report_on_workload(
    client: &Client,
    namespace: &str,
    name: &str,
    text: &str,
) -> Result<Option<Value>, Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::erase::<SovereignWorkload>(&()),
    );
    let Some(current) = api.get_opt(name).await? else {
        return Ok(None);
    };
    let Some(status) = reported_status(&current, text, jiff::Timestamp::now()) else {
        return Ok(None);
    };
    let body = json!({
        "apiVersion": SovereignWorkload::api_version(&()),
        "kind": SovereignWorkload::kind(&()),
        "status": &status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(Some(status))
}

/// The workload's status with `Ready=False` reason `ReconcileError` and `text`; `None` when
/// it says exactly that already. `lastTransitionTime` moves only when `Ready` was not `False`.
fn reported_status(workload: &DynamicObject, text: &str, now: jiff::Timestamp) -> Option<Value> {
    let mut status = workload
        .data
        .get("status")
        .filter(|s| s.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    let conditions: Vec<Value> = status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let previous = conditions.iter().find(|c| c["type"] == CONDITION_READY);
    if previous
        .is_some_and(|c| c["status"] == "False" && c["reason"] == REASON && c["message"] == text)
    {
        return None;
    }
    let since = previous
        .filter(|c| c["status"] == "False")
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(Time(now)));
    let mut ready = json!({
        "type": CONDITION_READY, "status": "False", "reason": REASON,
        "message": text, "lastTransitionTime": since,
    });
    if let (Some(generation), Some(fields)) = (workload.metadata.generation, ready.as_object_mut())
    {
        fields.insert("observedGeneration".to_owned(), json!(generation));
    }
    let mut replaced: Vec<Value> = conditions
        .into_iter()
        .filter(|c| c["type"] != CONDITION_READY)
        .collect();
    replaced.push(ready);
    if let Some(object) = status.as_object_mut() {
        object.insert("conditions".to_owned(), Value::Array(replaced));
    }
    Some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(status: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "sovra.dev/v1alpha1", "kind": "SovereignWorkload",
            "metadata": {"name": "w", "namespace": "n", "generation": 2},
            "status": status,
        }))
        .unwrap_or_else(|_| DynamicObject::new("w", &ApiResource::erase::<SovereignWorkload>(&())))
    }

    #[test]
    fn the_ready_condition_is_replaced_and_everything_else_kept() {
        let now = jiff::Timestamp::UNIX_EPOCH;
        let before = workload(json!({"phase": "Placed", "conditions": [
            {"type": "Placed", "status": "True", "reason": "Placed", "message": "", "lastTransitionTime": "2020-01-01T00:00:00Z"},
            {"type": "Ready", "status": "False", "reason": "Progressing", "message": "0/1", "lastTransitionTime": "2021-01-01T00:00:00Z"},
        ]}));
        let status = reported_status(&before, "boom", now);
        let status = status.as_ref();
        assert_eq!(status.map(|s| &s["phase"]), Some(&json!("Placed")));
        let conditions = status
            .and_then(|s| s["conditions"].as_array())
            .cloned()
            .unwrap_or_default();
        assert_eq!(conditions.len(), 2);
        let ready = conditions.iter().find(|c| c["type"] == "Ready");
        assert_eq!(ready.map(|c| &c["reason"]), Some(&json!(REASON)));
        assert_eq!(ready.map(|c| &c["message"]), Some(&json!("boom")));
        assert_eq!(
            ready.map(|c| &c["lastTransitionTime"]),
            Some(&json!("2021-01-01T00:00:00Z")),
            "Ready was False already: its transition time stays"
        );
        assert_eq!(ready.map(|c| &c["observedGeneration"]), Some(&json!(2)));
    }

    #[test]
    fn the_same_report_is_not_written_twice_and_a_new_one_moves_no_transition_time() {
        let now = jiff::Timestamp::UNIX_EPOCH;
        let reported = workload(json!({"conditions": [
            {"type": "Ready", "status": "False", "reason": REASON, "message": "boom", "lastTransitionTime": "2021-01-01T00:00:00Z"},
        ]}));
        assert_eq!(reported_status(&reported, "boom", now), None);
        let changed = reported_status(&reported, "bang", now);
        assert_eq!(
            changed
                .as_ref()
                .map(|s| &s["conditions"][0]["lastTransitionTime"]),
            Some(&json!("2021-01-01T00:00:00Z"))
        );
        let was_ready = workload(json!({"conditions": [
            {"type": "Ready", "status": "True", "reason": "Ready", "message": "", "lastTransitionTime": "2021-01-01T00:00:00Z"},
        ]}));
        let flipped = reported_status(&was_ready, "boom", now);
        assert_eq!(
            flipped
                .as_ref()
                .map(|s| &s["conditions"][0]["lastTransitionTime"]),
            Some(&json!(Time(now)))
        );
        let without_status = reported_status(&workload(Value::Null), "boom", now);
        assert_eq!(
            without_status
                .as_ref()
                .map(|s| &s["conditions"][0]["reason"]),
            Some(&json!(REASON))
        );
    }
}
