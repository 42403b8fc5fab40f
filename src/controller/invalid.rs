//! Objects that do not match their schema: a SovereignWorkload that does not deserialize is
//! reported on the object (an Event and a status condition, once per distinct problem) and
//! nothing else is touched; one being deleted is let go, since nothing can be cleaned up for it.

use super::context::Context;
use super::deployment::FIELD_MANAGER;
use super::status::{self, truncate};
use crate::Error;
use crate::crd::SovereignWorkload;
use crate::sync::lock;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use kube::core::{DynamicObject, ObjectMeta, error_boundary::InvalidObject};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use serde_json::json;
use std::hash::{Hash, Hasher};

/// A workload that does not deserialize: report it on the object (Event and status condition),
/// touch nothing else, and let it go (remove `finalizer`) if it is being deleted.
pub(super) async fn reconcile_invalid(
    invalid: &InvalidObject,
    finalizer: &str,
    ctx: &Context,
) -> Result<Action, Error> {
    let meta: &ObjectMeta = &invalid.metadata;
    let name = meta.name.clone().unwrap_or_default();
    let namespace = meta.namespace.clone().unwrap_or_default();
    tracing::warn!(%namespace, %name, error = %invalid.error, "SovereignWorkload does not match the schema");
    let api: Api<SovereignWorkload> = Api::namespaced(ctx.client.clone(), &namespace);
    if meta.deletion_timestamp.is_some() {
        release_finalizer(&api, meta, finalizer).await?;
        return Ok(Action::await_change());
    }
    // serde's "at line 1 column 345" says where in the JSON the API server sent, which moves
    // whenever any other field changes: it is no part of the problem.
    let error = invalid.error.to_string();
    let error = error.split(" at line ").next().unwrap_or(&error);
    let message = truncate(
        &format!("spec does not match the SovereignWorkload schema: {error}"),
        1024,
    );
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(SovereignWorkload::api_version(&()).into_owned()),
        kind: Some(SovereignWorkload::kind(&()).into_owned()),
        name: Some(name.clone()),
        namespace: Some(namespace.clone()),
        uid: meta.uid.clone(),
        ..Default::default()
    };
    // Published once per distinct problem: a resync or a relist of the same broken object
    // sends nothing, and nothing is read back to find out.
    let uid = meta.uid.clone().unwrap_or_default();
    let problem = {
        let mut hasher = std::hash::DefaultHasher::new();
        message.hash(&mut hasher);
        hasher.finish()
    };
    if lock(&ctx.memory.invalid).get(&uid) == Some(&problem) {
        return Ok(Action::await_change());
    }
    let raw: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        &namespace,
        &kube::core::ApiResource::erase::<SovereignWorkload>(&()),
    );
    let now = Time(jiff::Timestamp::now());
    let condition = |type_: &str| {
        json!({"type": type_, "status": "False", "reason": "InvalidSpec", "message": message,
               "lastTransitionTime": now, "observedGeneration": meta.generation})
    };
    let body = json!({
        "apiVersion": SovereignWorkload::api_version(&()),
        "kind": SovereignWorkload::kind(&()),
        "status": {"phase": "Refused", "conditions": [condition(status::CONDITION_PLACED), condition(status::CONDITION_READY)]},
    });
    raw.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    // After the status write: a retry after a failed write publishes the problem once.
    let event = Event {
        type_: EventType::Warning,
        reason: "InvalidSpec".to_owned(),
        note: Some(message.clone()),
        action: "Validate".to_owned(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &reference).await {
        tracing::warn!(%error, "could not publish event");
    }
    lock(&ctx.memory.invalid).insert(uid, problem);
    Ok(Action::await_change())
}

/// Removes Sovra's `finalizer` from an object that is being deleted but cannot be reconciled
/// (it does not match the schema): nothing can be cleaned up for it, and it must not hang.
pub(super) async fn release_finalizer<K>(
    api: &Api<K>,
    meta: &kube::core::ObjectMeta,
    finalizer: &str,
) -> Result<(), Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let finalizers: Vec<&String> = meta
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != finalizer)
        .collect();
    if finalizers.len() == meta.finalizers.as_ref().map_or(0, Vec::len) {
        return Ok(());
    }
    let patch = serde_json::json!({"metadata": {"finalizers": finalizers, "resourceVersion": meta.resource_version}});
    api.patch_metadata(
        meta.name.as_deref().unwrap_or_default(),
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}
