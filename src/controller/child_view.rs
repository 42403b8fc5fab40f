//! A child Deployment as the caches keep it: its metadata (without managed fields, and of its
//! annotations only the digest of what Sovra applied), its replicas and its status.
//!
//! A k8s-openapi `Deployment` lays out its whole pod template in place, several KiB even when
//! emptied, and the caches hold one per workload and member. This reads only the kept fields
//! from the watch (the template is never deserialized) and gives a `Deployment` with them when
//! one is looked up.

use super::applied_digest::DIGEST_ANNOTATION;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::Deserialize;
use std::borrow::Cow;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(from = "RawChild")]
pub struct ChildView {
    pub metadata: ObjectMeta,
    pub replicas: Option<i32>,
    pub status: Option<DeploymentStatus>,
}

#[derive(Deserialize)]
struct RawChild {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<RawSpec>,
    #[serde(default)]
    status: Option<DeploymentStatus>,
}

#[derive(Deserialize)]
struct RawSpec {
    #[serde(default)]
    replicas: Option<i32>,
}

impl From<RawChild> for ChildView {
    fn from(raw: RawChild) -> Self {
        Self::kept(raw.metadata, raw.spec.and_then(|s| s.replicas), raw.status)
    }
}

impl From<&Deployment> for ChildView {
    fn from(deployment: &Deployment) -> Self {
        Self::kept(
            deployment.metadata.clone(),
            deployment.spec.as_ref().and_then(|s| s.replicas),
            deployment.status.clone(),
        )
    }
}

impl ChildView {
    fn kept(
        mut metadata: ObjectMeta,
        replicas: Option<i32>,
        status: Option<DeploymentStatus>,
    ) -> Self {
        metadata.managed_fields = None;
        if let Some(annotations) = metadata.annotations.as_mut() {
            annotations.retain(|key, _| key == DIGEST_ANNOTATION);
        }
        Self {
            metadata,
            replicas,
            status,
        }
    }

    /// The child as a `Deployment` with what the cache kept (no pod template).
    pub fn deployment(&self) -> Deployment {
        Deployment {
            metadata: self.metadata.clone(),
            spec: Some(DeploymentSpec {
                replicas: self.replicas,
                ..DeploymentSpec::default()
            }),
            status: self.status.clone(),
        }
    }
}

impl Resource for ChildView {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Deployment::kind(&())
    }
    fn group(_: &()) -> Cow<'_, str> {
        Deployment::group(&())
    }
    fn version(_: &()) -> Cow<'_, str> {
        Deployment::version(&())
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Deployment::plural(&())
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_child_keeps_its_labels_digest_generation_replicas_and_status_and_nothing_else() {
        let child: ChildView = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "tax", "namespace": "fin", "generation": 3,
                "labels": {"sovra.dev/workload": "tax"},
                "annotations": {DIGEST_ANNOTATION: "abc", "deployment.kubernetes.io/revision": "2"},
                "managedFields": [{"manager": "sovra", "operation": "Apply"}],
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"sovra.dev/workload": "tax"}},
                "template": {"spec": {"containers": [{"name": "app", "image": "i"}]}},
            },
            "status": {"readyReplicas": 1},
        }))
        .expect("a Deployment reads as a child");
        let deployment = child.deployment();
        assert_eq!(deployment.metadata.generation, Some(3));
        assert_eq!(
            deployment.metadata.annotations,
            Some([(DIGEST_ANNOTATION.to_owned(), "abc".to_owned())].into())
        );
        assert_eq!(deployment.metadata.managed_fields, None);
        assert_eq!(deployment.spec.as_ref().and_then(|s| s.replicas), Some(2));
        assert_eq!(
            deployment.spec.and_then(|s| s.template.spec),
            None,
            "the pod template is not kept"
        );
        assert_eq!(deployment.status.and_then(|s| s.ready_replicas), Some(1));
    }
}
