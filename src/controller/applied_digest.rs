//! Whether a child, as a cache holds it, is already what Sovra would apply: so that a restarted
//! operator, which remembers nothing of its earlier applies, sends no write for a child that
//! needs none.
//!
//! Every child carries the digest of the Deployment Sovra applied ([`DIGEST_ANNOTATION`]). A
//! cached child is current when it holds every field of the desired Deployment with the same
//! value, the digest among them. The digest says Sovra's last apply was exactly this desired
//! Deployment, so no field Sovra set earlier is left to remove; the values say nobody changed
//! one since. Anything else (a field the server normalised, a container someone added, a child
//! of an older Sovra without the digest) counts as not current and is applied again: a needless
//! write is the safe mistake here, a skipped one is not.

use crate::audit::line_hash;
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::Value;

/// Annotation on every child: SHA-256 of the desired Deployment without this annotation.
pub const DIGEST_ANNOTATION: &str = "sovra.dev/applied-digest";

/// Sets [`DIGEST_ANNOTATION`] on `desired` to the digest of the rest of it.
pub fn with_digest(mut desired: Deployment) -> Deployment {
    if let Some(annotations) = desired.metadata.annotations.as_mut() {
        annotations.remove(DIGEST_ANNOTATION);
    }
    let digest = line_hash(&serde_json::to_vec(&desired).unwrap_or_default());
    desired
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(DIGEST_ANNOTATION.to_owned(), digest);
    desired
}

/// Whether `cached` carries the digest `desired` carries: the cheap first check, which the
/// caches (which drop the rest of a child's annotations) can answer.
pub fn same_digest(cached: &Deployment, desired: &Deployment) -> bool {
    digest(desired).is_some() && digest(cached) == digest(desired)
}

fn digest(deployment: &Deployment) -> Option<&str> {
    let annotations = deployment.metadata.annotations.as_ref()?;
    annotations.get(DIGEST_ANNOTATION).map(String::as_str)
}

/// True when `cached` holds every field of `desired` (which carries its digest) unchanged.
pub fn holds(cached: &Deployment, desired: &Deployment) -> bool {
    let carries_digest = digest(desired).is_some();
    match (serde_json::to_value(cached), serde_json::to_value(desired)) {
        (Ok(cached), Ok(desired)) => carries_digest && contains(&cached, &desired),
        _ => false,
    }
}

/// Whether `actual` holds every field of `wanted` with the same value: objects may have more
/// fields (the server's defaults, status), lists must match element by element.
fn contains(actual: &Value, wanted: &Value) -> bool {
    match (actual, wanted) {
        (Value::Object(actual), Value::Object(wanted)) => wanted
            .iter()
            .all(|(key, value)| actual.get(key).is_some_and(|found| contains(found, value))),
        (Value::Array(actual), Value::Array(wanted)) => {
            actual.len() == wanted.len() && actual.iter().zip(wanted).all(|(a, w)| contains(a, w))
        }
        (actual, wanted) => actual == wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(value: Value) -> Deployment {
        serde_json::from_value(value).unwrap_or_default()
    }

    fn desired() -> Deployment {
        with_digest(deployment(json!({
            "metadata": {"name": "w", "labels": {"sovra.dev/workload": "w"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"sovra.dev/workload": "w"}},
                     "template": {"spec": {"containers": [{"name": "app", "image": "a:1"}]}}}
        })))
    }

    /// The child as the server returns it: defaults filled in, status and bookkeeping added.
    fn served(desired: &Deployment) -> Value {
        let mut served = serde_json::to_value(desired).unwrap_or_default();
        served["metadata"]["resourceVersion"] = json!("7");
        served["metadata"]["generation"] = json!(1);
        served["spec"]["revisionHistoryLimit"] = json!(10);
        served["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] =
            json!("IfNotPresent");
        served["status"] = json!({"readyReplicas": 2});
        served
    }

    #[test]
    fn a_child_the_server_defaulted_still_holds_what_sovra_applied() {
        let desired = desired();
        assert!(holds(&deployment(served(&desired)), &desired));
    }

    #[test]
    fn a_child_someone_changed_does_not_hold_what_sovra_applies() {
        let desired = desired();
        let mut scaled = served(&desired);
        scaled["spec"]["replicas"] = json!(5);
        assert!(!holds(&deployment(scaled), &desired));
        let mut sidecar = served(&desired);
        if let Some(containers) = sidecar["spec"]["template"]["spec"]["containers"].as_array_mut() {
            containers.push(json!({"name": "sidecar", "image": "b:1"}));
        }
        assert!(!holds(&deployment(sidecar), &desired));
    }

    #[test]
    fn a_child_applied_from_another_desired_deployment_does_not_hold_this_one() {
        // What Sovra applied before set a field the desired Deployment no longer has (here a
        // label); the values alone cannot tell, the digest does.
        let mut before = desired();
        before
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("old".into(), "x".into());
        let before = with_digest(before);
        let desired = desired();
        assert!(!holds(&deployment(served(&before)), &desired));
        let mut without_digest = served(&desired);
        if let Some(metadata) = without_digest["metadata"].as_object_mut() {
            metadata.remove("annotations");
        }
        assert!(!holds(&deployment(without_digest), &desired));
    }

    #[test]
    fn the_digest_depends_on_the_desired_deployment_only() {
        assert_eq!(with_digest(desired()), with_digest(with_digest(desired())));
        let mut other = desired();
        if let Some(spec) = other.spec.as_mut() {
            spec.replicas = Some(3);
        }
        assert_ne!(
            with_digest(other).metadata.annotations,
            desired().metadata.annotations
        );
    }
}
