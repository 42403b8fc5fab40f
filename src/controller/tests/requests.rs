//! The requests the reconcilers send, as steps of a script for the fake API server, each with
//! the answer a real API server would give.

use super::fixtures::{Step, echo, not_found, ok, with_applied_status};
use super::objects::{NAMESPACE, json_of};
use crate::crd::{SovereignCluster, SovereignWorkload};
use http::{Method, StatusCode};
use kube::ResourceExt;
use serde_json::{Value, json};

pub fn workload_path(name: &str) -> String {
    format!("/apis/sovra.dev/v1alpha1/namespaces/{NAMESPACE}/sovereignworkloads/{name}")
}

pub fn child_path(name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}")
}

pub fn events_path(namespace: &str) -> String {
    format!("/apis/events.k8s.io/v1/namespaces/{namespace}/events")
}

/// kube's finalizer helper adds Sovra's finalizer (a JSON patch); the answer is the workload
/// with it.
pub fn add_finalizer(workload: &SovereignWorkload) -> Step {
    let mut answer = json_of(workload);
    answer["metadata"]["finalizers"] = json!([super::super::FINALIZER]);
    Step::new(
        Method::PATCH,
        workload_path(&workload.name_any()),
        ok(answer),
    )
}

/// kube's finalizer helper removes Sovra's finalizer once cleanup succeeded.
pub fn remove_finalizer(workload: &SovereignWorkload) -> Step {
    let mut answer = json_of(workload);
    answer["metadata"]["finalizers"] = json!([]);
    Step::new(
        Method::PATCH,
        workload_path(&workload.name_any()),
        ok(answer),
    )
}

/// The GET that makes sure no Deployment of someone else has the child's name.
pub fn get_child(name: &str, found: Option<Value>) -> Step {
    Step::new(Method::GET, child_path(name), move |request| match found {
        Some(found) => (StatusCode::OK, found),
        None => not_found(request),
    })
}

/// The server-side apply of a child; the answer is what was applied, at generation 1.
pub fn apply_child(name: &str) -> Step {
    Step::new(Method::PATCH, child_path(name), |request| {
        let mut applied = request.clone();
        applied["metadata"]["generation"] = json!(1);
        applied["metadata"]["uid"] = json!("uid-child");
        (StatusCode::OK, applied)
    })
}

pub fn delete_child(name: &str) -> Step {
    Step::new(
        Method::DELETE,
        child_path(name),
        ok(json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200})),
    )
}

/// An Event created by kube's `Recorder` (the first of its kind: a POST).
pub fn publish_event(namespace: &str) -> Step {
    Step::new(Method::POST, events_path(namespace), echo)
}

/// The server-side apply of a workload's status.
pub fn workload_status(workload: &SovereignWorkload) -> Step {
    let path = format!("{}/status", workload_path(&workload.name_any()));
    Step::new(Method::PATCH, path, with_applied_status(json_of(workload)))
}

/// The server-side apply of the status of a workload that does not deserialize.
pub fn invalid_workload_status(name: &str, object: Value) -> Step {
    let path = format!("{}/status", workload_path(name));
    Step::new(Method::PATCH, path, with_applied_status(object))
}

/// The server-side apply of a SovereignCluster's status (cluster-scoped).
pub fn cluster_status(cluster: &SovereignCluster) -> Step {
    let name = cluster.name_any();
    let path = format!("/apis/sovra.dev/v1alpha1/sovereignclusters/{name}/status");
    Step::new(Method::PATCH, path, with_applied_status(json_of(cluster)))
}
