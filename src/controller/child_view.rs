//! A child Deployment as the caches keep it: its name, namespace and generation, the three
//! labels Sovra reads (managed-by, workload, cluster), the digest of what Sovra applied, its
//! replicas, and of its status the ready replicas and whether it stalled.
//!
//! The caches hold one per workload and member, so a child is kept small. A k8s-openapi
//! `Deployment` lays out its whole pod template in place, several KiB even when emptied, and an
//! `ObjectMeta` alone is some 400 bytes before its label and annotation maps (a `BTreeMap`
//! allocates a node of about 540 bytes for its first entry). The watch reads a
//! [`ChildObject`] (the pod template is never deserialized) and the caches keep the
//! [`ChildView`] made of it, which gives a `Deployment` with the kept fields when one is looked
//! up.

use super::applied_digest::DIGEST_ANNOTATION;
use super::cache_view::{ViewKey, lookup_by_name};
use super::deployment::{CLUSTER_LABEL, MANAGED_BY_LABEL, WORKLOAD_LABEL};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use std::collections::BTreeMap;

/// What the caches keep of a child Deployment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChildView {
    name: Box<str>,
    namespace: Box<str>,
    generation: Option<i64>,
    managed_by: Option<Box<str>>,
    workload: Option<Box<str>>,
    cluster: Option<Box<str>>,
    digest: Option<Box<str>>,
    replicas: Option<i32>,
    ready_replicas: Option<i32>,
    /// The Deployment reports `Progressing=False` (e.g. ProgressDeadlineExceeded).
    stalled: bool,
}

/// A child Deployment as the watch reads it (a Deployment's resource: `apps/v1`
/// `deployments`): the whole metadata, and of the spec only the replicas.
#[derive(Clone, Debug, Default, Deserialize, kube::Resource)]
#[resource(inherit = Deployment)]
pub struct ChildObject {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<ChildSpec>,
    #[serde(default)]
    status: Option<DeploymentStatus>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct ChildSpec {
    #[serde(default)]
    replicas: Option<i32>,
}

impl ChildView {
    fn kept(
        metadata: &ObjectMeta,
        replicas: Option<i32>,
        status: Option<&DeploymentStatus>,
    ) -> Self {
        let label = |key: &str| {
            let labels = metadata.labels.as_ref()?;
            labels.get(key).map(|value| value.as_str().into())
        };
        let annotations = metadata.annotations.as_ref();
        Self {
            name: metadata.name.as_deref().unwrap_or_default().into(),
            namespace: metadata.namespace.as_deref().unwrap_or_default().into(),
            generation: metadata.generation,
            managed_by: label(MANAGED_BY_LABEL),
            workload: label(WORKLOAD_LABEL),
            cluster: label(CLUSTER_LABEL),
            digest: annotations
                .and_then(|a| a.get(DIGEST_ANNOTATION))
                .map(|digest| digest.as_str().into()),
            replicas,
            ready_replicas: status.and_then(|s| s.ready_replicas),
            stalled: stalled(status),
        }
    }

    /// The workload the child is labelled as belonging to.
    pub fn workload(&self) -> Option<&str> {
        self.workload.as_deref()
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The child as a `Deployment` with what the cache kept (no pod template, and of the status
    /// conditions only a stalled `Progressing`).
    pub fn deployment(&self) -> Deployment {
        let labels: BTreeMap<String, String> = [
            (MANAGED_BY_LABEL, &self.managed_by),
            (WORKLOAD_LABEL, &self.workload),
            (CLUSTER_LABEL, &self.cluster),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key.to_owned(), value.as_deref()?.to_owned())))
        .collect();
        let annotations = self
            .digest
            .as_deref()
            .map(|digest| BTreeMap::from([(DIGEST_ANNOTATION.to_owned(), digest.to_owned())]));
        let stalled = self.stalled.then(|| {
            vec![DeploymentCondition {
                type_: "Progressing".into(),
                status: "False".into(),
                ..DeploymentCondition::default()
            }]
        });
        Deployment {
            metadata: ObjectMeta {
                name: Some(self.name.to_string()),
                namespace: Some(self.namespace.to_string()),
                generation: self.generation,
                labels: (!labels.is_empty()).then_some(labels),
                annotations,
                ..ObjectMeta::default()
            },
            spec: Some(DeploymentSpec {
                replicas: self.replicas,
                ..DeploymentSpec::default()
            }),
            status: (self.ready_replicas.is_some() || stalled.is_some()).then(|| {
                DeploymentStatus {
                    ready_replicas: self.ready_replicas,
                    conditions: stalled,
                    ..DeploymentStatus::default()
                }
            }),
        }
    }
}

impl From<ChildObject> for ChildView {
    fn from(object: ChildObject) -> Self {
        let replicas = object.spec.and_then(|s| s.replicas);
        Self::kept(&object.metadata, replicas, object.status.as_ref())
    }
}

impl From<&Deployment> for ChildView {
    fn from(deployment: &Deployment) -> Self {
        let replicas = deployment.spec.as_ref().and_then(|s| s.replicas);
        Self::kept(&deployment.metadata, replicas, deployment.status.as_ref())
    }
}

/// Whether a Deployment's status reports `Progressing=False` (e.g. ProgressDeadlineExceeded):
/// it stopped rolling out.
pub fn stalled(status: Option<&DeploymentStatus>) -> bool {
    status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Progressing" && c.status == "False")
        })
}

// The caches find a child by name and namespace. Its UID and resource version are not kept
// (nothing reads them from a cached child), so its cache key holds neither.
lookup_by_name!(ChildView, Deployment);

impl ViewKey for ChildView {
    fn view_name(&self) -> &str {
        &self.name
    }

    fn view_namespace(&self) -> Option<&str> {
        Some(&self.namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(deployment: serde_json::Value) -> ChildView {
        let object: ChildObject = serde_json::from_value(deployment).expect("a Deployment reads");
        object.into()
    }

    #[test]
    fn a_child_keeps_the_labels_sovra_reads_its_digest_generation_replicas_and_readiness() {
        let child = read(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "tax", "namespace": "fin", "generation": 3, "uid": "u-1",
                "resourceVersion": "42",
                "labels": {
                    "sovra.dev/workload": "tax", "sovra.dev/cluster": "bund-de-1",
                    "app.kubernetes.io/managed-by": "sovra", "team": "fiscal",
                },
                "annotations": {DIGEST_ANNOTATION: "abc", "deployment.kubernetes.io/revision": "2"},
                "managedFields": [{"manager": "sovra", "operation": "Apply"}],
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"sovra.dev/workload": "tax"}},
                "template": {"spec": {"containers": [{"name": "app", "image": "i"}]}},
            },
            "status": {"readyReplicas": 1, "conditions": [
                {"type": "Available", "status": "True", "message": "has minimum availability"},
            ]},
        }));
        assert_eq!((child.workload(), child.namespace()), (Some("tax"), "fin"));
        let deployment = child.deployment();
        assert_eq!(deployment.metadata.name.as_deref(), Some("tax"));
        assert_eq!(deployment.metadata.namespace.as_deref(), Some("fin"));
        assert_eq!(deployment.metadata.generation, Some(3));
        assert_eq!(
            deployment.metadata.labels,
            Some(BTreeMap::from([
                (
                    "app.kubernetes.io/managed-by".to_owned(),
                    "sovra".to_owned()
                ),
                ("sovra.dev/cluster".to_owned(), "bund-de-1".to_owned()),
                ("sovra.dev/workload".to_owned(), "tax".to_owned()),
            ])),
            "the labels Sovra reads, and no others"
        );
        assert_eq!(
            deployment.metadata.annotations,
            Some([(DIGEST_ANNOTATION.to_owned(), "abc".to_owned())].into())
        );
        assert_eq!(deployment.metadata.managed_fields, None);
        assert_eq!(
            deployment.metadata.uid, None,
            "a cached child's UID is not kept"
        );
        assert_eq!(deployment.spec.as_ref().and_then(|s| s.replicas), Some(2));
        assert_eq!(
            deployment.spec.and_then(|s| s.template.spec),
            None,
            "the pod template is not kept"
        );
        let status = deployment.status.expect("a status");
        assert_eq!(status.ready_replicas, Some(1));
        assert_eq!(
            status.conditions, None,
            "only a stalled Progressing is kept"
        );
    }

    #[test]
    fn a_stalled_child_keeps_its_progressing_false_condition() {
        let child = read(json!({
            "metadata": {"name": "tax", "namespace": "fin"},
            "status": {"conditions": [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"},
            ]},
        }));
        let conditions = child.deployment().status.and_then(|s| s.conditions);
        let stalled = conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Progressing" && c.status == "False");
        assert!(stalled, "{conditions:?}");
    }

    #[test]
    fn a_child_without_labels_annotations_or_status_reads_as_none_of_them() {
        let deployment =
            read(json!({"metadata": {"name": "tax", "namespace": "fin"}})).deployment();
        assert_eq!(deployment.metadata.labels, None);
        assert_eq!(deployment.metadata.annotations, None);
        assert_eq!(deployment.status, None);
    }

    #[test]
    fn a_child_read_from_a_deployment_is_the_one_read_from_the_watch() {
        let deployment = read(json!({
            "metadata": {"name": "tax", "namespace": "fin", "generation": 2,
                "labels": {"sovra.dev/workload": "tax"},
                "annotations": {DIGEST_ANNOTATION: "abc"}},
            "spec": {"replicas": 3},
            "status": {"readyReplicas": 3},
        }))
        .deployment();
        let again = ChildView::from(&deployment);
        assert_eq!(again.deployment(), deployment);
    }
}
