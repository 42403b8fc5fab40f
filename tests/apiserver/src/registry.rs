//! The resource types the server serves: a table of built-ins plus whatever
//! CustomResourceDefinitions register at runtime.

use serde_json::Value;

use crate::error::ApiError;

/// Everything the server needs to know about one `group/version/plural`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    /// Has a `/status` subresource (status is then isolated from main-resource writes).
    pub status: bool,
    /// Has the pods `/eviction` subresource.
    pub eviction: bool,
    pub short_names: Vec<String>,
    /// Registered by a CRD rather than built in.
    pub custom: bool,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `configmaps` or `deployments.apps`, the way upstream names a resource in messages.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Field selector labels beyond `metadata.name` / `metadata.namespace`
    /// (the real server rejects any other label with 400).
    #[rustfmt::skip]
    pub fn extra_field_labels(&self) -> &'static [&'static str] {
        match (self.group.as_str(), self.plural.as_str()) {
            ("", "pods") => &["spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                "spec.serviceAccountName", "status.phase", "status.podIP", "status.nominatedNodeName"],
            ("", "events") => &["involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.fieldPath", "reason",
                "reportingComponent", "type"],
            ("events.k8s.io", "events") => &["regarding.kind", "regarding.namespace", "regarding.name",
                "regarding.uid", "reason", "type"],
            ("", "secrets") => &["type"],
            ("", "nodes") => &["spec.unschedulable"],
            ("", "namespaces") => &["status.phase"],
            _ => &[],
        }
    }
}

/// Built-in kinds: (group, version, plural, kind, namespaced, subresources, shortNames).
/// Adding a kind is one line here.
type Builtin = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    &'static [&'static str],
);

#[rustfmt::skip]
const BUILTINS: &[Builtin] = &[
    ("", "v1", "namespaces", "Namespace", false, &["status"], &["ns"]),
    ("", "v1", "nodes", "Node", false, &["status"], &["no"]),
    ("", "v1", "pods", "Pod", true, &["status", "eviction"], &["po"]),
    ("", "v1", "secrets", "Secret", true, &[], &[]),
    ("", "v1", "configmaps", "ConfigMap", true, &[], &["cm"]),
    ("", "v1", "services", "Service", true, &["status"], &["svc"]),
    ("", "v1", "serviceaccounts", "ServiceAccount", true, &[], &["sa"]),
    ("", "v1", "events", "Event", true, &[], &["ev"]),
    ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true, &["status"], &["pvc"]),
    ("apps", "v1", "deployments", "Deployment", true, &["status"], &["deploy"]),
    ("apps", "v1", "replicasets", "ReplicaSet", true, &["status"], &["rs"]),
    ("apps", "v1", "statefulsets", "StatefulSet", true, &["status"], &["sts"]),
    ("apps", "v1", "daemonsets", "DaemonSet", true, &["status"], &["ds"]),
    ("events.k8s.io", "v1", "events", "Event", true, &[], &[]),
    ("coordination.k8s.io", "v1", "leases", "Lease", true, &[], &[]),
    ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, &["status"], &["pdb"]),
    ("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", false, &["status"], &["crd", "crds"]),
    ("rbac.authorization.k8s.io", "v1", "roles", "Role", true, &[], &[]),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, &[], &[]),
    ("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, &[], &[]),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false, &[], &[]),
    ("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies", "ValidatingAdmissionPolicy", false, &["status"], &[]),
    ("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding", false, &[], &[]),
    ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true, &[], &["netpol"]),
];

pub const CRD_GROUP: &str = "apiextensions.k8s.io";
pub const CRD_PLURAL: &str = "customresourcedefinitions";

#[derive(Debug, Clone)]
pub struct Registry {
    types: Vec<ResourceType>,
}

impl Registry {
    pub fn builtin() -> Self {
        let types = BUILTINS
            .iter()
            .map(
                |&(group, version, plural, kind, namespaced, subresources, short_names)| {
                    ResourceType {
                        group: group.into(),
                        version: version.into(),
                        plural: plural.into(),
                        singular: kind.to_lowercase(),
                        kind: kind.into(),
                        namespaced,
                        status: subresources.contains(&"status"),
                        eviction: subresources.contains(&"eviction"),
                        short_names: short_names.iter().map(|s| s.to_string()).collect(),
                        custom: false,
                    }
                },
            )
            .collect();
        Registry { types }
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        let (group, version) = split_api_version(api_version);
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
    }

    pub fn all(&self) -> &[ResourceType] {
        &self.types
    }

    /// Groups with their versions in registration order (a CRD's in spec order);
    /// discovery presents the first as the preferred version.
    pub fn group_versions(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in &self.types {
            match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) if !versions.contains(&t.version) => {
                    versions.push(t.version.clone())
                }
                Some(_) => {}
                None => groups.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        groups
    }

    /// Registers (or re-registers) the resource a CRD defines. Validates just
    /// enough that a broken CRD is rejected with 422 instead of serving garbage.
    pub fn register_crd(&mut self, crd: &Value) -> Result<(), ApiError> {
        let spec = crd
            .get("spec")
            .ok_or_else(|| ApiError::invalid("spec: Required value"))?;
        let text = |v: Option<&Value>, field: &str| {
            v.and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| ApiError::invalid(format!("{field}: Required value")))
        };
        let group = text(spec.get("group"), "spec.group")?;
        let names = spec.get("names");
        let plural = text(names.and_then(|n| n.get("plural")), "spec.names.plural")?;
        let kind = text(names.and_then(|n| n.get("kind")), "spec.names.kind")?;
        let singular =
            text(names.and_then(|n| n.get("singular")), "").unwrap_or_else(|_| kind.to_lowercase());
        let short_names: Vec<String> = names
            .and_then(|n| n.get("shortNames"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let expected_name = format!("{plural}.{group}");
        if crd.pointer("/metadata/name").and_then(Value::as_str) != Some(expected_name.as_str()) {
            return Err(ApiError::invalid(format!(
                "metadata.name: Invalid value: must be spec.names.plural+\".\"+spec.group ({expected_name})"
            )));
        }
        let namespaced = match spec.get("scope").and_then(Value::as_str) {
            Some("Namespaced") => true,
            Some("Cluster") => false,
            _ => {
                return Err(ApiError::invalid(
                    "spec.scope: Unsupported value: must be Namespaced or Cluster",
                ));
            }
        };
        if self
            .types
            .iter()
            .any(|t| !t.custom && t.group == group && t.plural == plural)
        {
            return Err(ApiError::invalid(format!(
                "{plural}.{group} is a built-in resource"
            )));
        }
        let mut registered = Vec::new();
        for version in spec
            .get("versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if version.get("served").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            registered.push(ResourceType {
                group: group.clone(),
                version: text(version.get("name"), "spec.versions[].name")?,
                plural: plural.clone(),
                singular: singular.clone(),
                kind: kind.clone(),
                namespaced,
                status: version.pointer("/subresources/status").is_some(),
                eviction: false,
                short_names: short_names.clone(),
                custom: true,
            });
        }
        if registered.is_empty() {
            return Err(ApiError::invalid(
                "spec.versions: Required value: must have at least one served version",
            ));
        }
        crate::cel_cost::reject_over_budget(crd)?;
        self.unregister_crd(&group, &plural);
        self.types.extend(registered);
        Ok(())
    }

    pub fn unregister_crd(&mut self, group: &str, plural: &str) {
        self.types
            .retain(|t| !(t.custom && t.group == group && t.plural == plural));
    }
}

pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}
