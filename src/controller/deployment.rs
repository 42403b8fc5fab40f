//! The child Deployment of a placement (pure). Sovra owns the placement-relevant fields through
//! server-side apply: replicas, the selector, its labels and the node affinity and toleration
//! that pin pods to the chosen sovereign pools.

use super::applied_digest::with_digest;
use crate::Error;
use crate::crd::SovereignWorkload;
use crate::policy::{DEDICATED_TAINT_KEY, SOVEREIGN_NODE_LABEL, Target};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    PodTemplateSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;

/// Field manager of every write Sovra makes.
pub const FIELD_MANAGER: &str = "sovra";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "sovra";
pub const WORKLOAD_LABEL: &str = "sovra.dev/workload";
pub const SENSITIVITY_LABEL: &str = "sovra.dev/sensitivity";
pub const CLUSTER_LABEL: &str = "sovra.dev/cluster";

/// Label selector matching every child Sovra manages.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")
}

/// Whether a Deployment found under a child's name is Sovra's child of `workload`: it carries
/// the labels Sovra gives every child. Anything else (a hand-made Deployment, another tool's) is
/// never touched.
pub fn is_sovra_child(found: &Deployment, workload: &str) -> bool {
    let labels = found.labels();
    labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY_VALUE)
        && labels.get(WORKLOAD_LABEL).map(String::as_str) == Some(workload)
}

/// Who a Deployment that is not Sovra's belongs to, as far as its metadata says: its owners and
/// the field managers that wrote it.
pub fn foreign_owner(found: &Deployment) -> String {
    let owners: Vec<String> = found
        .owner_references()
        .iter()
        .map(|o| format!("{} {}", o.kind, o.name))
        .collect();
    let mut managers: Vec<&str> = found
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.as_deref())
        .filter(|m| *m != FIELD_MANAGER)
        .collect();
    managers.sort_unstable();
    managers.dedup();
    let mut parts = Vec::new();
    if !owners.is_empty() {
        parts.push(format!("owned by {}", owners.join(", ")));
    }
    if !managers.is_empty() {
        parts.push(format!("written by {}", managers.join(", ")));
    }
    if parts.is_empty() {
        parts.push(format!("it has no {WORKLOAD_LABEL} label"));
    }
    parts.join("; ")
}

/// Rejects pod templates that could escape placement. `spec.nodeName` bypasses the scheduler
/// and so the node affinity: a template that sets it could run anywhere.
pub fn check_template(workload: &SovereignWorkload) -> Result<(), Error> {
    check_pod_template(workload, &template_of(workload)?)
}

/// The workload's pod template, read from the compact form the cache keeps.
fn template_of(workload: &SovereignWorkload) -> Result<PodTemplateSpec, Error> {
    workload.spec.template.spec().map_err(|e| Error::Serialize {
        what: "spec.template",
        message: e.to_string(),
    })
}

fn check_pod_template(
    workload: &SovereignWorkload,
    template: &PodTemplateSpec,
) -> Result<(), Error> {
    let spec = template.spec.as_ref();
    let invalid = |message: &str| Error::InvalidSpec {
        kind: "SovereignWorkload",
        name: workload.name_any(),
        message: message.to_owned(),
    };
    if spec.is_none() {
        return Err(invalid("spec.template.spec is required"));
    }
    if spec.and_then(|s| s.node_name.as_ref()).is_some() {
        return Err(invalid(
            "spec.template.spec.nodeName bypasses scheduling and so sovereign placement; remove it",
        ));
    }
    if spec.is_some_and(|s| s.containers.is_empty()) {
        return Err(invalid("spec.template.spec.containers must not be empty"));
    }
    Ok(())
}

/// The Deployment for `target`, owned by the workload (`owner: true` on the hub, where owner
/// references work; member clusters find children by label instead), carrying its digest
/// ([`with_digest`]).
pub fn desired_deployment(
    workload: &SovereignWorkload,
    target: &Target,
    pool_label: &str,
    owner: bool,
) -> Result<Deployment, Error> {
    let mut template = template_of(workload)?;
    check_pod_template(workload, &template)?;
    let name = workload.name_any();
    let class = workload.spec.sensitivity.clone();
    let selector = BTreeMap::from([(WORKLOAD_LABEL.to_owned(), name.clone())]);
    let mut labels = selector.clone();
    labels.insert(MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned());
    labels.insert(SENSITIVITY_LABEL.to_owned(), class.clone());
    labels.insert(CLUSTER_LABEL.to_owned(), target.cluster.clone());

    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    let pod_labels = meta.labels.get_or_insert_with(BTreeMap::new);
    pod_labels.insert(WORKLOAD_LABEL.to_owned(), name.clone());
    pod_labels.insert(SENSITIVITY_LABEL.to_owned(), class.clone());
    let spec = template
        .spec
        .as_mut()
        .ok_or(Error::MissingField("spec.template.spec"))?;
    pin_to_pools(
        spec.affinity.get_or_insert_with(Affinity::default),
        target,
        pool_label,
    );
    if let Some(dedicated) = &target.dedicated_to {
        let toleration = Toleration {
            key: Some(DEDICATED_TAINT_KEY.to_owned()),
            operator: Some("Equal".to_owned()),
            value: Some(dedicated.clone()),
            effect: Some("NoSchedule".to_owned()),
            ..Toleration::default()
        };
        let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
        if !tolerations.contains(&toleration) {
            tolerations.push(toleration);
        }
    }

    Ok(with_digest(Deployment {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: workload.namespace(),
            labels: Some(labels),
            owner_references: if owner {
                workload.controller_owner_ref(&()).map(|r| vec![r])
            } else {
                None
            },
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(target.replicas),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            template,
            ..DeploymentSpec::default()
        }),
        status: None,
    }))
}

/// Adds the sovereign-pool requirements to every required node selector term. Terms are ORed
/// by the scheduler, so a requirement added to only one term could be bypassed by another.
fn pin_to_pools(affinity: &mut Affinity, target: &Target, pool_label: &str) {
    let ours = [
        NodeSelectorRequirement {
            key: pool_label.to_owned(),
            operator: "In".to_owned(),
            values: Some(target.pools.clone()),
        },
        NodeSelectorRequirement {
            key: SOVEREIGN_NODE_LABEL.to_owned(),
            operator: "In".to_owned(),
            values: Some(vec!["true".to_owned()]),
        },
    ];
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    let required = node_affinity
        .required_during_scheduling_ignored_during_execution
        .get_or_insert_with(NodeSelector::default);
    if required.node_selector_terms.is_empty() {
        required
            .node_selector_terms
            .push(NodeSelectorTerm::default());
    }
    for term in &mut required.node_selector_terms {
        let expressions = term.match_expressions.get_or_insert_with(Vec::new);
        expressions.retain(|e| e.key != pool_label && e.key != SOVEREIGN_NODE_LABEL);
        expressions.extend(ours.iter().cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The required node-selector terms of a pod spec Sovra produced.
    fn required_terms(pod: &k8s_openapi::api::core::v1::PodSpec) -> Vec<NodeSelectorTerm> {
        pod.affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|n| {
                n.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|s| s.node_selector_terms.clone())
            .unwrap_or_default()
    }
    use crate::crd::SovereignWorkloadSpec;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    fn workload(spec: PodSpec) -> SovereignWorkload {
        let mut w = SovereignWorkload::new(
            "tax",
            SovereignWorkloadSpec {
                sensitivity: "confidential".into(),
                replicas: 3,
                template: PodTemplateSpec {
                    metadata: None,
                    spec: Some(spec),
                }
                .into(),
                placement: Default::default(),
            },
        );
        w.metadata.namespace = Some("fin".into());
        w.metadata.uid = Some("uid-1".into());
        w
    }

    fn container() -> PodSpec {
        PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("app:1".into()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }
    }

    fn target(dedicated: bool) -> Target {
        Target {
            cluster: "hub".into(),
            country: "NL".into(),
            pools: vec!["gov".into()],
            replicas: 3,
            dedicated_to: dedicated.then(|| "confidential".into()),
            violations: vec![],
            reachable: true,
        }
    }

    #[test]
    fn deployment_is_pinned_to_the_chosen_sovereign_pools_and_owned_by_the_workload() {
        let d = desired_deployment(
            &workload(container()),
            &target(true),
            "sovra.dev/node-pool",
            true,
        )
        .unwrap();
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(3));
        let pod = spec.template.spec.unwrap();
        let terms = required_terms(&pod);
        let keys: Vec<_> = terms[0]
            .match_expressions
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| e.key.as_str())
            .collect();
        assert_eq!(keys, ["sovra.dev/node-pool", SOVEREIGN_NODE_LABEL]);
        assert_eq!(
            pod.tolerations.unwrap()[0].value.as_deref(),
            Some("confidential")
        );
        assert_eq!(d.metadata.owner_references.unwrap()[0].name, "tax");
        assert_eq!(
            spec.template.metadata.unwrap().labels.unwrap()[SENSITIVITY_LABEL],
            "confidential"
        );
    }

    #[test]
    fn every_user_node_selector_term_gets_the_sovereign_requirements() {
        let mut spec = container();
        let term = |key: &str| NodeSelectorTerm {
            match_expressions: Some(vec![NodeSelectorRequirement {
                key: key.into(),
                operator: "Exists".into(),
                values: None,
            }]),
            ..NodeSelectorTerm::default()
        };
        spec.affinity = Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![term("gpu"), term(SOVEREIGN_NODE_LABEL)],
                }),
                ..NodeAffinity::default()
            }),
            ..Affinity::default()
        });
        let d = desired_deployment(&workload(spec), &target(false), "pool", false).unwrap();
        let pod = d.spec.unwrap().template.spec.unwrap();
        let terms = required_terms(&pod);
        assert_eq!(terms.len(), 2);
        for term in terms {
            let exprs = term.match_expressions.unwrap();
            let sovereign: Vec<_> = exprs
                .iter()
                .filter(|e| e.key == SOVEREIGN_NODE_LABEL)
                .collect();
            assert_eq!(
                sovereign.len(),
                1,
                "user's Exists on the sovereign label is replaced, not kept"
            );
            assert_eq!(sovereign[0].operator, "In");
            assert!(exprs.iter().any(|e| e.key == "pool"));
        }
        assert!(pod.tolerations.is_none());
        assert!(d.metadata.owner_references.is_none());
    }

    #[test]
    fn a_template_with_node_name_is_rejected_because_it_bypasses_the_scheduler() {
        let mut spec = container();
        spec.node_name = Some("us-node-1".into());
        let err = desired_deployment(&workload(spec), &target(false), "pool", true).unwrap_err();
        assert!(err.to_string().contains("nodeName"));
    }
}
