//! The structure server-side apply merges by: which fields are structs,
//! which maps and lists are granular or atomic, and how list items are
//! identified. Custom resources take it from their CRD's
//! `openAPIV3Schema` (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
//! `x-kubernetes-map-type`, `x-kubernetes-preserve-unknown-fields`); built-in
//! kinds from a table of the upstream list types and struct types
//! (`+listType`, `+listMapKey`, `+structType=atomic`, `+mapType=atomic`, and
//! `patchStrategy=merge` + `patchMergeKey` where no list type is given) of
//! the fields Sovra and its tests touch. Anything else is "deduced" like
//! upstream's `__untyped_deduced_`: maps granular, lists atomic.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use super::fieldpath::PathElement;

/// How the items of a list relate (upstream's `ElementRelationship` plus keys).
#[derive(Debug, Clone, PartialEq)]
pub enum ListKind {
    /// Replaced as a whole.
    Atomic,
    /// Scalars merged by value.
    Set,
    /// Objects merged by these key fields.
    Map(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListSchema {
    pub kind: ListKind,
    pub items: Schema,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MapSchema {
    /// Named fields (a struct); other keys are map entries typed by `rest`.
    pub fields: BTreeMap<String, Schema>,
    pub rest: Schema,
    /// `x-kubernetes-map-type: atomic` / `+structType=atomic`: replaced as a whole.
    pub atomic: bool,
    /// Field defaults, used for missing list-map keys (e.g. a port's `protocol: TCP`).
    pub defaults: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub enum Schema {
    /// Anything, structure taken from the value: maps granular, lists atomic.
    #[default]
    Deduced,
    /// Anything, always as a whole.
    Atomic,
    Scalar,
    List(Box<ListSchema>),
    Map(Box<MapSchema>),
}

/// The map a deduced object is walked as.
pub static DEDUCED_MAP: MapSchema = MapSchema {
    fields: BTreeMap::new(),
    rest: Schema::Deduced,
    atomic: false,
    defaults: BTreeMap::new(),
};
static DEDUCED: Schema = Schema::Deduced;
static ATOMIC: Schema = Schema::Atomic;

impl Schema {
    pub fn is_named_field(&self, name: &str) -> bool {
        matches!(self, Schema::Map(m) if m.fields.contains_key(name))
    }

    /// The schema of the child `pe` selects.
    pub fn child(&self, pe: &PathElement) -> &Schema {
        match (self, pe) {
            (Schema::Map(m), PathElement::Field(name)) => m.field(name),
            (Schema::Deduced, PathElement::Field(_)) => &DEDUCED,
            (Schema::List(l), PathElement::Key(_) | PathElement::Value(_)) => &l.items,
            _ => &ATOMIC,
        }
    }
}

impl MapSchema {
    pub fn field(&self, name: &str) -> &Schema {
        self.fields.get(name).unwrap_or(&self.rest)
    }
}

// ---------------------------------------------------------------------------
// Custom resources

/// The schema of a custom resource version from its `openAPIV3Schema`, with
/// `metadata` typed as ObjectMeta like the apiextensions server does.
pub fn from_crd(open_api_v3_schema: Option<&Value>) -> Schema {
    let mut root = match open_api_v3_schema.map(convert) {
        Some(Schema::Map(map)) => *map,
        _ => MapSchema {
            fields: BTreeMap::new(),
            rest: Schema::Deduced,
            atomic: false,
            defaults: BTreeMap::new(),
        },
    };
    add_resource_fields(&mut root);
    Schema::Map(Box::new(root))
}

fn add_resource_fields(map: &mut MapSchema) {
    map.fields.insert("apiVersion".into(), Schema::Scalar);
    map.fields.insert("kind".into(), Schema::Scalar);
    map.fields.insert("metadata".into(), object_meta());
}

fn flag(props: &Value, name: &str) -> bool {
    props.get(name).and_then(Value::as_bool) == Some(true)
}

/// One `JSONSchemaProps` node, the way kube-openapi's `schemaconv` converts it.
fn convert(props: &Value) -> Schema {
    if flag(props, "x-kubernetes-int-or-string") {
        return Schema::Scalar;
    }
    let preserve_unknown = flag(props, "x-kubernetes-preserve-unknown-fields");
    match props.get("type").and_then(Value::as_str) {
        Some("object") => {
            let properties = props.get("properties").and_then(Value::as_object);
            let fields = properties
                .into_iter()
                .flatten()
                .map(|(name, p)| (name.clone(), convert(p)))
                .collect();
            let defaults = properties
                .into_iter()
                .flatten()
                .filter_map(|(name, p)| Some((name.clone(), p.get("default")?.clone())))
                .collect();
            let rest = match props.get("additionalProperties") {
                Some(additional) if additional.is_object() => convert(additional),
                _ if preserve_unknown => Schema::Deduced,
                _ => Schema::Deduced,
            };
            let mut map = MapSchema {
                fields,
                rest,
                atomic: props.get("x-kubernetes-map-type").and_then(Value::as_str)
                    == Some("atomic"),
                defaults,
            };
            if flag(props, "x-kubernetes-embedded-resource") {
                add_resource_fields(&mut map);
            }
            Schema::Map(Box::new(map))
        }
        Some("array") => {
            let items = props.get("items").map(convert).unwrap_or_default();
            let kind = match props.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => ListKind::Set,
                Some("map") => ListKind::Map(
                    props
                        .get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect(),
                ),
                // Lists without a list type are atomic in structural schemas.
                _ => ListKind::Atomic,
            };
            Schema::List(Box::new(ListSchema { kind, items }))
        }
        Some(_) => Schema::Scalar,
        None => Schema::Deduced,
    }
}

// ---------------------------------------------------------------------------
// Built-in kinds

fn strukt(fields: Vec<(&str, Schema)>) -> Schema {
    Schema::Map(Box::new(MapSchema {
        fields: fields
            .into_iter()
            .map(|(name, s)| (name.to_string(), s))
            .collect(),
        rest: Schema::Deduced,
        atomic: false,
        defaults: BTreeMap::new(),
    }))
}

/// A struct without fields of interest: named where it appears, deduced inside.
fn any_struct() -> Schema {
    strukt(Vec::new())
}

/// `+structType=atomic` / `+mapType=atomic`.
fn atomic_struct() -> Schema {
    Schema::Map(Box::new(MapSchema {
        fields: BTreeMap::new(),
        rest: Schema::Deduced,
        atomic: true,
        defaults: BTreeMap::new(),
    }))
}

/// A granular `map[string]T`.
fn map_of(items: Schema) -> Schema {
    Schema::Map(Box::new(MapSchema {
        fields: BTreeMap::new(),
        rest: items,
        atomic: false,
        defaults: BTreeMap::new(),
    }))
}

fn atomic_list() -> Schema {
    Schema::List(Box::new(ListSchema {
        kind: ListKind::Atomic,
        items: Schema::Atomic,
    }))
}

fn set() -> Schema {
    Schema::List(Box::new(ListSchema {
        kind: ListKind::Set,
        items: Schema::Scalar,
    }))
}

fn list_map(keys: &[&str], items: Schema) -> Schema {
    Schema::List(Box::new(ListSchema {
        kind: ListKind::Map(keys.iter().map(|k| k.to_string()).collect()),
        items,
    }))
}

fn with_default(schema: Schema, field: &str, default: Value) -> Schema {
    match schema {
        Schema::Map(mut map) => {
            map.defaults.insert(field.into(), default);
            Schema::Map(map)
        }
        other => other,
    }
}

/// `metav1.ObjectMeta`.
pub fn object_meta() -> Schema {
    strukt(vec![
        ("labels", map_of(Schema::Scalar)),
        ("annotations", map_of(Schema::Scalar)),
        // +listType=set
        ("finalizers", set()),
        // +listType=map +listMapKey=uid; OwnerReference is +structType=atomic
        ("ownerReferences", list_map(&["uid"], atomic_struct())),
        ("managedFields", atomic_list()),
    ])
}

fn conditions() -> Schema {
    // patchStrategy=merge, patchMergeKey=type (+listType=map +listMapKey=type)
    list_map(&["type"], any_struct())
}

fn probe() -> Schema {
    strukt(vec![
        ("exec", strukt(vec![("command", atomic_list())])),
        ("httpGet", strukt(vec![("httpHeaders", atomic_list())])),
        ("tcpSocket", any_struct()),
        ("grpc", any_struct()),
    ])
}

fn lifecycle_handler() -> Schema {
    strukt(vec![
        ("exec", strukt(vec![("command", atomic_list())])),
        ("httpGet", strukt(vec![("httpHeaders", atomic_list())])),
        ("tcpSocket", any_struct()),
        ("sleep", any_struct()),
    ])
}

fn resources() -> Schema {
    strukt(vec![
        ("limits", map_of(Schema::Scalar)),
        ("requests", map_of(Schema::Scalar)),
        ("claims", list_map(&["name"], any_struct())),
    ])
}

fn container() -> Schema {
    let env_source = strukt(vec![
        ("configMapKeyRef", atomic_struct()),
        ("secretKeyRef", atomic_struct()),
        ("fieldRef", atomic_struct()),
        ("resourceFieldRef", atomic_struct()),
    ]);
    let port = with_default(any_struct(), "protocol", Value::String("TCP".into()));
    strukt(vec![
        ("command", atomic_list()),
        ("args", atomic_list()),
        // +listType=map +listMapKey=containerPort +listMapKey=protocol
        ("ports", list_map(&["containerPort", "protocol"], port)),
        ("envFrom", atomic_list()),
        (
            "env",
            list_map(&["name"], strukt(vec![("valueFrom", env_source)])),
        ),
        ("resources", resources()),
        ("resizePolicy", atomic_list()),
        ("volumeMounts", list_map(&["mountPath"], any_struct())),
        ("volumeDevices", list_map(&["devicePath"], any_struct())),
        ("livenessProbe", probe()),
        ("readinessProbe", probe()),
        ("startupProbe", probe()),
        (
            "lifecycle",
            strukt(vec![
                ("postStart", lifecycle_handler()),
                ("preStop", lifecycle_handler()),
            ]),
        ),
        (
            "securityContext",
            strukt(vec![
                (
                    "capabilities",
                    strukt(vec![("add", atomic_list()), ("drop", atomic_list())]),
                ),
                ("seLinuxOptions", any_struct()),
                ("windowsOptions", any_struct()),
                ("seccompProfile", any_struct()),
                ("appArmorProfile", any_struct()),
            ]),
        ),
    ])
}

fn affinity_terms() -> Schema {
    strukt(vec![
        (
            "requiredDuringSchedulingIgnoredDuringExecution",
            atomic_list(),
        ),
        (
            "preferredDuringSchedulingIgnoredDuringExecution",
            atomic_list(),
        ),
    ])
}

fn pod_spec() -> Schema {
    strukt(vec![
        ("volumes", list_map(&["name"], any_struct())),
        ("initContainers", list_map(&["name"], container())),
        ("containers", list_map(&["name"], container())),
        ("ephemeralContainers", list_map(&["name"], container())),
        // +mapType=atomic
        ("nodeSelector", atomic_struct()),
        (
            "securityContext",
            strukt(vec![
                ("supplementalGroups", atomic_list()),
                ("sysctls", atomic_list()),
                ("seLinuxOptions", any_struct()),
                ("windowsOptions", any_struct()),
                ("seccompProfile", any_struct()),
                ("appArmorProfile", any_struct()),
            ]),
        ),
        // LocalObjectReference is +structType=atomic
        ("imagePullSecrets", list_map(&["name"], atomic_struct())),
        (
            "affinity",
            strukt(vec![
                (
                    "nodeAffinity",
                    strukt(vec![
                        // NodeSelector is +structType=atomic
                        (
                            "requiredDuringSchedulingIgnoredDuringExecution",
                            atomic_struct(),
                        ),
                        (
                            "preferredDuringSchedulingIgnoredDuringExecution",
                            atomic_list(),
                        ),
                    ]),
                ),
                ("podAffinity", affinity_terms()),
                ("podAntiAffinity", affinity_terms()),
            ]),
        ),
        // +listType=atomic
        ("tolerations", atomic_list()),
        ("hostAliases", list_map(&["ip"], any_struct())),
        (
            "dnsConfig",
            strukt(vec![
                ("nameservers", atomic_list()),
                ("searches", atomic_list()),
                ("options", atomic_list()),
            ]),
        ),
        ("readinessGates", atomic_list()),
        ("overhead", map_of(Schema::Scalar)),
        (
            "topologySpreadConstraints",
            list_map(
                &["topologyKey", "whenUnsatisfiable"],
                strukt(vec![
                    ("labelSelector", atomic_struct()),
                    ("matchLabelKeys", atomic_list()),
                ]),
            ),
        ),
        ("os", any_struct()),
        ("schedulingGates", list_map(&["name"], any_struct())),
        ("resourceClaims", list_map(&["name"], any_struct())),
        ("resources", resources()),
    ])
}

fn pod_template() -> Schema {
    strukt(vec![("metadata", object_meta()), ("spec", pod_spec())])
}

fn workload(extra_spec: Vec<(&str, Schema)>) -> (Schema, Schema) {
    let mut spec = vec![
        // LabelSelector is +structType=atomic
        ("selector", atomic_struct()),
        ("template", pod_template()),
    ];
    spec.extend(extra_spec);
    (strukt(spec), strukt(vec![("conditions", conditions())]))
}

fn root(fields: Vec<(&str, Schema)>) -> Schema {
    let mut all = vec![
        ("apiVersion", Schema::Scalar),
        ("kind", Schema::Scalar),
        ("metadata", object_meta()),
    ];
    all.extend(fields);
    strukt(all)
}

fn builtin_schema(group: &str, kind: &str) -> Schema {
    let spec_status = |spec: Schema, status: Schema| root(vec![("spec", spec), ("status", status)]);
    match (group, kind) {
        ("apps", "Deployment") => {
            let rolling = strukt(vec![("rollingUpdate", any_struct())]);
            let (spec, status) = workload(vec![("strategy", rolling)]);
            spec_status(spec, status)
        }
        ("apps", "ReplicaSet") => {
            let (spec, status) = workload(Vec::new());
            spec_status(spec, status)
        }
        ("apps", "StatefulSet") => {
            let (spec, status) = workload(vec![
                ("volumeClaimTemplates", atomic_list()),
                (
                    "updateStrategy",
                    strukt(vec![("rollingUpdate", any_struct())]),
                ),
                ("persistentVolumeClaimRetentionPolicy", any_struct()),
                ("ordinals", any_struct()),
            ]);
            spec_status(spec, status)
        }
        ("apps", "DaemonSet") => {
            let (spec, status) = workload(vec![(
                "updateStrategy",
                strukt(vec![("rollingUpdate", any_struct())]),
            )]);
            spec_status(spec, status)
        }
        ("", "Pod") => spec_status(
            pod_spec(),
            strukt(vec![
                ("conditions", conditions()),
                ("podIPs", list_map(&["ip"], any_struct())),
                ("hostIPs", list_map(&["ip"], any_struct())),
                ("containerStatuses", atomic_list()),
                ("initContainerStatuses", atomic_list()),
                ("ephemeralContainerStatuses", atomic_list()),
                ("resourceClaimStatuses", list_map(&["name"], any_struct())),
            ]),
        ),
        ("", "Node") => spec_status(
            strukt(vec![
                ("podCIDRs", set()),
                ("taints", atomic_list()),
                ("configSource", any_struct()),
            ]),
            strukt(vec![
                ("conditions", conditions()),
                ("addresses", list_map(&["type"], any_struct())),
                ("capacity", map_of(Schema::Scalar)),
                ("allocatable", map_of(Schema::Scalar)),
                ("daemonEndpoints", any_struct()),
                ("nodeInfo", any_struct()),
                ("images", atomic_list()),
                ("volumesInUse", atomic_list()),
                ("volumesAttached", atomic_list()),
                ("runtimeHandlers", atomic_list()),
                ("config", any_struct()),
                ("features", any_struct()),
            ]),
        ),
        ("", "Namespace") => spec_status(
            strukt(vec![("finalizers", atomic_list())]),
            strukt(vec![("conditions", conditions())]),
        ),
        ("", "Service") => {
            let port = with_default(any_struct(), "protocol", Value::String("TCP".into()));
            spec_status(
                strukt(vec![
                    // +listType=map +listMapKey=port +listMapKey=protocol
                    ("ports", list_map(&["port", "protocol"], port)),
                    ("selector", atomic_struct()),
                    ("clusterIPs", atomic_list()),
                    ("externalIPs", atomic_list()),
                    ("ipFamilies", atomic_list()),
                    ("loadBalancerSourceRanges", atomic_list()),
                    (
                        "sessionAffinityConfig",
                        strukt(vec![("clientIP", any_struct())]),
                    ),
                ]),
                strukt(vec![
                    ("loadBalancer", strukt(vec![("ingress", atomic_list())])),
                    ("conditions", conditions()),
                ]),
            )
        }
        ("", "ConfigMap") => root(vec![
            ("data", map_of(Schema::Scalar)),
            ("binaryData", map_of(Schema::Scalar)),
        ]),
        ("", "Secret") => root(vec![
            ("data", map_of(Schema::Scalar)),
            ("stringData", map_of(Schema::Scalar)),
        ]),
        ("", "ServiceAccount") => root(vec![
            ("secrets", list_map(&["name"], any_struct())),
            ("imagePullSecrets", atomic_list()),
        ]),
        ("", "PersistentVolumeClaim") => spec_status(
            strukt(vec![
                ("accessModes", atomic_list()),
                ("selector", atomic_struct()),
                ("resources", resources()),
                ("dataSource", atomic_struct()),
                ("dataSourceRef", any_struct()),
            ]),
            strukt(vec![
                ("accessModes", atomic_list()),
                ("capacity", map_of(Schema::Scalar)),
                ("conditions", conditions()),
            ]),
        ),
        ("", "Event") => root(vec![
            // ObjectReference is +structType=atomic
            ("involvedObject", atomic_struct()),
            ("related", atomic_struct()),
            ("source", any_struct()),
            ("series", any_struct()),
        ]),
        ("events.k8s.io", "Event") => root(vec![
            ("regarding", atomic_struct()),
            ("related", atomic_struct()),
            ("series", any_struct()),
            ("deprecatedSource", any_struct()),
        ]),
        ("coordination.k8s.io", "Lease") => root(vec![("spec", any_struct())]),
        ("policy", "PodDisruptionBudget") => spec_status(
            strukt(vec![("selector", atomic_struct())]),
            strukt(vec![
                ("conditions", conditions()),
                ("disruptedPods", map_of(Schema::Scalar)),
            ]),
        ),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => spec_status(
            strukt(vec![
                (
                    "names",
                    strukt(vec![
                        ("shortNames", atomic_list()),
                        ("categories", atomic_list()),
                    ]),
                ),
                ("versions", atomic_list()),
                ("conversion", any_struct()),
            ]),
            strukt(vec![
                ("conditions", conditions()),
                ("acceptedNames", any_struct()),
                ("storedVersions", atomic_list()),
            ]),
        ),
        ("rbac.authorization.k8s.io", "Role") => root(vec![("rules", atomic_list())]),
        ("rbac.authorization.k8s.io", "ClusterRole") => root(vec![
            ("rules", atomic_list()),
            (
                "aggregationRule",
                strukt(vec![("clusterRoleSelectors", atomic_list())]),
            ),
        ]),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => root(vec![
            ("subjects", atomic_list()),
            ("roleRef", atomic_struct()),
        ]),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => spec_status(
            strukt(vec![
                ("paramKind", any_struct()),
                ("matchConstraints", any_struct()),
                ("validations", atomic_list()),
                ("auditAnnotations", atomic_list()),
                ("matchConditions", list_map(&["name"], any_struct())),
                ("variables", list_map(&["name"], any_struct())),
            ]),
            strukt(vec![
                ("conditions", conditions()),
                ("typeChecking", any_struct()),
            ]),
        ),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => root(vec![(
            "spec",
            strukt(vec![
                ("validationActions", set()),
                ("paramRef", any_struct()),
                ("matchResources", any_struct()),
            ]),
        )]),
        ("networking.k8s.io", "NetworkPolicy") => root(vec![(
            "spec",
            strukt(vec![
                ("podSelector", atomic_struct()),
                ("ingress", atomic_list()),
                ("egress", atomic_list()),
                ("policyTypes", atomic_list()),
            ]),
        )]),
        _ => root(Vec::new()),
    }
}

/// The schema of a built-in kind (cached: the table never changes).
pub fn builtin(group: &str, kind: &str) -> Arc<Schema> {
    type Cache = std::sync::Mutex<BTreeMap<(String, String), Arc<Schema>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    cache
        .entry((group.to_string(), kind.to_string()))
        .or_insert_with(|| Arc::new(builtin_schema(group, kind)))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn crd_list_types_and_map_types_become_the_schema() {
        let schema = from_crd(Some(&json!({
            "type": "object",
            "properties": {
                "status": {"type": "object", "properties": {
                    "conditions": {"type": "array", "x-kubernetes-list-type": "map",
                                   "x-kubernetes-list-map-keys": ["type"],
                                   "items": {"type": "object", "properties": {"type": {"type": "string"}}}},
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "plain": {"type": "array", "items": {"type": "string"}},
                    "whole": {"type": "object", "x-kubernetes-map-type": "atomic"}
                }}
            }
        })));
        let status = schema.child(&PathElement::Field("status".into()));
        let kind = |name: &str| match status.child(&PathElement::Field(name.into())) {
            Schema::List(list) => Some(list.kind.clone()),
            _ => None,
        };
        assert_eq!(kind("conditions"), Some(ListKind::Map(vec!["type".into()])));
        assert_eq!(kind("tags"), Some(ListKind::Set));
        assert_eq!(kind("plain"), Some(ListKind::Atomic));
        assert!(matches!(
            status.child(&PathElement::Field("whole".into())),
            Schema::Map(m) if m.atomic
        ));
        assert!(schema.is_named_field("metadata"));
    }
}
