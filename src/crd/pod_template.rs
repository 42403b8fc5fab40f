//! A workload's pod template as the operator keeps it: compact JSON, read into a
//! `PodTemplateSpec` only when a Deployment is built from it.
//!
//! k8s-openapi's `PodTemplateSpec` is large even when nearly empty: every optional field of a
//! `PodSpec` and of each `Container` (probes, lifecycle, security context) is laid out in
//! place, several KiB for a one-container template. The operator caches every
//! SovereignWorkload, and reads the template only to check it and to build the child
//! Deployment, so the cache holds this instead.
//!
//! It reads exactly what a `PodTemplateSpec` reads (a template that is not one fails to
//! deserialize, as before) and writes the same JSON.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodTemplate {
    /// `serde_json` of a `PodTemplateSpec`.
    json: Box<str>,
}

impl PodTemplate {
    pub fn new(template: &PodTemplateSpec) -> Self {
        Self {
            json: serde_json::to_string(template)
                .unwrap_or_else(|_| "{}".to_owned())
                .into_boxed_str(),
        }
    }

    /// The template. It was a `PodTemplateSpec` when it was read, so it reads as one again.
    pub fn spec(&self) -> Result<PodTemplateSpec, serde_json::Error> {
        serde_json::from_str(&self.json)
    }
}

impl From<PodTemplateSpec> for PodTemplate {
    fn from(template: PodTemplateSpec) -> Self {
        Self::new(&template)
    }
}

impl<'de> Deserialize<'de> for PodTemplate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        PodTemplateSpec::deserialize(deserializer).map(|t| Self::new(&t))
    }
}

impl Serialize for PodTemplate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.spec()
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_template_reads_and_writes_as_a_pod_template_spec() {
        let written = json!({
            "metadata": {"labels": {"app": "tax"}},
            "spec": {"containers": [{"name": "app", "image": "registry.example.nl/tax:1"}]},
        });
        let template: PodTemplate = serde_json::from_value(written.clone()).expect("a template");
        assert_eq!(serde_json::to_value(&template).ok(), Some(written.clone()));
        let spec = template.spec().expect("reads again");
        assert_eq!(serde_json::to_value(&spec).ok(), Some(written));
        assert_eq!(PodTemplate::from(spec), template);
    }

    #[test]
    fn what_is_not_a_pod_template_spec_does_not_read() {
        let not_a_template = json!({"spec": {"containers": "app"}});
        assert!(serde_json::from_value::<PodTemplate>(not_a_template).is_err());
    }

    #[test]
    fn a_template_is_kept_in_far_less_than_a_pod_template_spec() {
        let template: PodTemplate = serde_json::from_value(json!({
            "spec": {"containers": [{"name": "app", "image": "registry.example.nl/tax:1"}]},
        }))
        .expect("a template");
        let spec = template.spec().expect("reads again");
        let containers = spec.spec.map(|s| s.containers).unwrap_or_default();
        let container = containers.first().map_or(0, std::mem::size_of_val);
        let kept = std::mem::size_of::<PodTemplate>() + template.json.len();
        assert!(
            kept * 10 < std::mem::size_of::<PodTemplateSpec>() + container,
            "{kept} bytes kept, a PodTemplateSpec with one container takes {}",
            std::mem::size_of::<PodTemplateSpec>() + container
        );
    }
}
