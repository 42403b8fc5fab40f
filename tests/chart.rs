//! Install artefacts: the Helm chart (`charts/sovra`), the kustomize install (`deploy/`) and the
//! copies of the generated CRDs, checked with the real `helm` and `kubectl` binaries.
//!
//! Tests that need a binary look for it in `<repo>/.tools/bin` first, then on `PATH`, and skip
//! (with a `SKIP:` line on stderr) when it is absent.
//!
//! Why manifests are checked against Kubernetes 1.33 by round-tripping them through
//! `k8s-openapi` (feature `v1_33`) instead of a validator: there is no cluster here, `kubectl
//! create --dry-run=client` still needs discovery from an API server, and kubeconform-style
//! tools need downloaded schemas. The `k8s-openapi` types are generated from the 1.33 OpenAPI
//! document, so deserializing a rendered document into its type and serializing it back is a
//! schema check: a misspelled or misplaced field is dropped (the round trip differs), a wrong
//! type or a missing required field fails to deserialize, and `apiVersion`/`kind` must match.
//! It does not check enum values or formats; the tests below check the values that matter.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::any::TypeId;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, PodTemplateSpec, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::{NamespaceResourceScope, Resource};
use kube::core::cel::{AdmissionRequest, VapEvaluator, VapExpression};
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sovra::crd::SensitivityClass;

const RELEASE: &str = "sovra";
const NAMESPACE: &str = "sovra-system";
const KUBE_VERSION: &str = "1.33.0";
const OPERATOR_USER: &str = "system:serviceaccount:sovra-system:sovra";
const GARBAGE_COLLECTOR: &str = "system:serviceaccount:kube-system:generic-garbage-collector";

// ---------------------------------------------------------------------------------------------
// Tools and rendering

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart_dir() -> PathBuf {
    repo().join("charts/sovra")
}

/// `<repo>/.tools/bin/<name>`, else the first `<name>` on `PATH`.
fn find_tool(name: &str) -> Option<PathBuf> {
    let local = repo().join(".tools/bin").join(name);
    if local.is_file() {
        return Some(local);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The tool's path, or return from the test with a `SKIP:` line.
macro_rules! require_tool {
    ($name:literal) => {
        match find_tool($name) {
            Some(path) => path,
            None => {
                eprintln!(concat!("SKIP: ", $name, " not found; run make tools"));
                return;
            }
        }
    };
}

/// Runs a command; `Ok(stdout)` on success, `Err(stderr)` otherwise.
fn run(tool: &Path, args: &[String]) -> Result<String, String> {
    let output = Command::new(tool)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.display()));
    let stdout = String::from_utf8(output.stdout).expect("utf-8 stdout");
    let stderr = String::from_utf8(output.stderr).expect("utf-8 stderr");
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{stderr}{stdout}"))
    }
}

/// A way to render the chart: a values file under `tests/chart/` (or none) plus `--set`s.
#[derive(Clone, Copy, Debug)]
struct Values<'a> {
    file: Option<&'a str>,
    set: &'a [&'a str],
}

const DEFAULTS: Values<'static> = Values {
    file: None,
    set: &[],
};
const HARDENED: Values<'static> = Values {
    file: Some("values-hardened.yaml"),
    set: &[],
};
const MINIMAL: Values<'static> = Values {
    file: Some("values-minimal.yaml"),
    set: &[],
};
/// The explicit opt-out of a durable audit trail: both values, as the schema requires.
const EPHEMERAL: Values<'static> = Values {
    file: None,
    set: &[
        "auditLog.persistence.enabled=false",
        "auditLog.ephemeralLostOnRestart=true",
    ],
};

impl Values<'_> {
    fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(file) = self.file {
            args.push("--values".to_owned());
            args.push(
                repo()
                    .join("tests/chart")
                    .join(file)
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        for set in self.set {
            args.push("--set".to_owned());
            args.push((*set).to_owned());
        }
        args
    }
}

/// Every `tests/chart/values-*.yaml`, plus the defaults and the ephemeral audit trail opt-out
/// (the only rendering with a Deployment).
fn all_values() -> Vec<Values<'static>> {
    let mut files: Vec<String> = std::fs::read_dir(repo().join("tests/chart"))
        .expect("tests/chart exists")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("values-") && name.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 2,
        "expected non-default values files in tests/chart"
    );
    let mut all = vec![DEFAULTS, EPHEMERAL];
    all.extend(files.into_iter().map(|file| Values {
        file: Some(Box::leak(file.into_boxed_str())),
        set: &[],
    }));
    all
}

/// `helm template` output (with the CRDs) as text, or helm's error.
fn helm_template_text(helm: &Path, values: Values<'_>, extra: &[&str]) -> Result<String, String> {
    let mut args: Vec<String> = [
        "template",
        RELEASE,
        &chart_dir().to_string_lossy(),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.extend(values.args());
    run(helm, &args)
}

/// The chart's NOTES.txt as `helm install --dry-run=client` prints it (no cluster is contacted).
fn helm_notes(helm: &Path, values: Values<'_>) -> String {
    let mut args: Vec<String> = [
        "install",
        RELEASE,
        &chart_dir().to_string_lossy(),
        "--namespace",
        NAMESPACE,
        "--dry-run=client",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(values.args());
    let output = run(helm, &args)
        .unwrap_or_else(|e| panic!("helm install --dry-run=client {values:?} failed:\n{e}"));
    let (_, notes) = output
        .split_once("\nNOTES:\n")
        .unwrap_or_else(|| panic!("no NOTES in helm's output:\n{output}"));
    notes.to_owned()
}

/// The rendered documents, CRDs included.
fn render(helm: &Path, values: Values<'_>) -> Vec<Value> {
    let text = helm_template_text(helm, values, &["--include-crds"])
        .unwrap_or_else(|e| panic!("helm template {values:?} failed:\n{e}"));
    parse_documents(&text)
}

fn kustomize(kubectl: &Path) -> Vec<Value> {
    let text = run(
        kubectl,
        &[
            "kustomize".to_owned(),
            repo().join("deploy").to_string_lossy().into_owned(),
        ],
    )
    .unwrap_or_else(|e| panic!("kubectl kustomize deploy/ failed:\n{e}"));
    parse_documents(&text)
}

fn parse_documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|document| Value::deserialize(document).expect("rendered YAML parses"))
        .filter(|document| !document.is_null())
        .collect()
}

fn kind_of(doc: &Value) -> &str {
    doc["kind"].as_str().expect("every document has a kind")
}

fn name_of(doc: &Value) -> &str {
    doc["metadata"]["name"]
        .as_str()
        .expect("every document has a name")
}

/// (kind, name) of every document, sorted.
fn inventory(docs: &[Value]) -> BTreeSet<(String, String)> {
    docs.iter()
        .map(|doc| (kind_of(doc).to_owned(), name_of(doc).to_owned()))
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|doc| kind_of(doc) == kind && name_of(doc) == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {:?}", inventory(docs)))
}

fn all_of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|doc| kind_of(doc) == kind).collect()
}

fn typed<K: DeserializeOwned>(doc: &Value) -> K {
    serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{e}: {doc:#}"))
}

/// The operator's pod template, from its Deployment or (with persistence) StatefulSet.
fn operator_pod(docs: &[Value]) -> PodTemplateSpec {
    let workloads: Vec<&Value> = docs
        .iter()
        .filter(|doc| matches!(kind_of(doc), "Deployment" | "StatefulSet"))
        .collect();
    assert_eq!(workloads.len(), 1, "exactly one operator workload");
    typed(&workloads[0]["spec"]["template"])
}

/// Where two JSON values first differ, as a path; `None` when equal.
fn first_difference(expected: &Value, actual: &Value, path: &str) -> Option<String> {
    match (expected, actual) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter()
                .find_map(|key| match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => first_difference(x, y, &format!("{path}.{key}")),
                    (x, y) => Some(format!("{path}.{key}: {x:?} != {y:?}")),
                })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, &format!("{path}[{i}]"))),
        // YAML writers differ on `64` versus `64.0`; the API server does not.
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => None,
        (a, b) if a == b => None,
        (a, b) => Some(format!("{path}: {a} != {b}")),
    }
}

/// Every field of `part` is in `whole` with the same value (`whole` may add defaults).
fn contained_in(part: &Value, whole: &Value, path: &str) -> Option<String> {
    match (part, whole) {
        (Value::Object(a), Value::Object(b)) => a.iter().find_map(|(key, x)| match b.get(key) {
            Some(y) => contained_in(x, y, &format!("{path}.{key}")),
            None => Some(format!("{path}.{key} is lost")),
        }),
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| contained_in(x, y, &format!("{path}[{i}]"))),
        (a, b) if a == b => None,
        (a, b) => Some(format!("{path}: {a} became {b}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Schema checks

/// Deserializes `doc` into the Kubernetes 1.33 type `K` and back; the round trip must be
/// lossless, and the document must carry a namespace exactly when `K` is namespaced.
fn round_trip<K>(doc: &Value) -> Result<(), String>
where
    K: Resource + Serialize + DeserializeOwned + 'static,
{
    let object: K = serde_json::from_value(doc.clone())
        .map_err(|e| format!("does not deserialize as {}: {e}", K::KIND))?;
    let back = serde_json::to_value(&object).map_err(|e| e.to_string())?;
    if let Some(difference) = first_difference(doc, &back, "") {
        return Err(format!(
            "not a valid {}: {difference} (unknown field or wrong shape)",
            K::KIND
        ));
    }
    let namespaced = TypeId::of::<K::Scope>() == TypeId::of::<NamespaceResourceScope>();
    let namespace = doc["metadata"]["namespace"].as_str();
    match (namespaced, namespace) {
        (true, Some(NAMESPACE)) | (false, None) => Ok(()),
        (true, other) => Err(format!("namespaced, but metadata.namespace is {other:?}")),
        (false, Some(ns)) => Err(format!("cluster-scoped, but has namespace {ns}")),
    }
}

/// Checks one rendered document against its schema; `Err` says why it is invalid.
fn check_schema(doc: &Value) -> Result<(), String> {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    match (api_version, kind_of(doc)) {
        ("v1", "Namespace") => round_trip::<Namespace>(doc),
        ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(doc),
        ("v1", "Service") => round_trip::<Service>(doc),
        ("apps/v1", "Deployment") => round_trip::<Deployment>(doc),
        ("apps/v1", "StatefulSet") => round_trip::<StatefulSet>(doc),
        ("v1", "Secret") => round_trip::<k8s_openapi::api::core::v1::Secret>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trip::<ClusterRole>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            round_trip::<ClusterRoleBinding>(doc)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<Role>(doc),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<RoleBinding>(doc),
        ("policy/v1", "PodDisruptionBudget") => round_trip::<PodDisruptionBudget>(doc),
        ("networking.k8s.io/v1", "NetworkPolicy") => round_trip::<NetworkPolicy>(doc),
        ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy") => {
            round_trip::<ValidatingAdmissionPolicy>(doc)
        }
        ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding") => {
            round_trip::<ValidatingAdmissionPolicyBinding>(doc)
        }
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            round_trip::<CustomResourceDefinition>(doc)
        }
        // Sovra's own kind: its Rust type is the CRD's source. Serde fills in defaults, so the
        // document must be contained in the round trip rather than equal to it; the CRD's CEL
        // rules must pass too.
        ("sovra.dev/v1alpha1", "SensitivityClass") => {
            let class: SensitivityClass = serde_json::from_value(doc.clone())
                .map_err(|e| format!("does not deserialize as SensitivityClass: {e}"))?;
            let back = serde_json::to_value(&class).map_err(|e| e.to_string())?;
            if let Some(lost) = contained_in(doc, &back, "") {
                return Err(format!("not a valid SensitivityClass: {lost}"));
            }
            let violations = sovra::crd::validate_cel("SensitivityClass", doc);
            if !violations.is_empty() {
                return Err(format!("violates the CRD's rules: {violations:?}"));
            }
            if doc["metadata"].get("namespace").is_some() {
                return Err("SensitivityClass is cluster-scoped".to_owned());
            }
            Ok(())
        }
        // The Prometheus Operator's types are not available here: apiVersion and kind only,
        // plus the endpoint that must name the Service's port.
        ("monitoring.coreos.com/v1", "ServiceMonitor") => {
            if doc["spec"]["endpoints"][0]["port"] == "http" {
                Ok(())
            } else {
                Err("ServiceMonitor must scrape the port named http".to_owned())
            }
        }
        (api_version, kind) => Err(format!(
            "no schema check for {api_version} {kind}: add it to check_schema"
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Pod Security "restricted"

/// Checks every control of the Pod Security Standard "restricted" (Kubernetes 1.33), plus the
/// operator's own hardening, on a pod template. Returns every violation.
fn restricted_violations(template: &PodTemplateSpec) -> Vec<String> {
    let mut violations = Vec::new();
    let mut fail = |message: String| violations.push(message);
    let spec = template.spec.as_ref().expect("pod template has a spec");

    // Baseline: host namespaces, host ports, privileged, capabilities, host paths, sysctls.
    for (field, value) in [
        ("hostNetwork", spec.host_network),
        ("hostPID", spec.host_pid),
        ("hostIPC", spec.host_ipc),
    ] {
        if value == Some(true) {
            fail(format!("{field} is true"));
        }
    }
    // Restricted: only these volume types.
    let allowed_volumes = [
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    for volume in spec.volumes.iter().flatten() {
        let fields = serde_json::to_value(volume).unwrap();
        for key in fields.as_object().unwrap().keys() {
            if key != "name" && !allowed_volumes.contains(&key.as_str()) {
                fail(format!("volume {} uses {key}", volume.name));
            }
        }
    }

    let pod = spec
        .security_context
        .clone()
        .expect("pod securityContext is set");
    if pod.run_as_non_root != Some(true) {
        fail("pod securityContext.runAsNonRoot is not true".to_owned());
    }
    if pod.run_as_user != Some(65532) {
        fail(format!(
            "pod securityContext.runAsUser is {:?}, not 65532",
            pod.run_as_user
        ));
    }
    let pod_seccomp = pod.seccomp_profile.as_ref().map(|p| p.type_.as_str());
    if pod_seccomp != Some("RuntimeDefault") {
        fail(format!(
            "pod seccompProfile is {pod_seccomp:?}, not RuntimeDefault"
        ));
    }
    if pod.sysctls.as_ref().is_some_and(|s| !s.is_empty()) {
        fail("pod sets sysctls".to_owned());
    }
    if pod
        .app_armor_profile
        .as_ref()
        .is_some_and(|p| p.type_ == "Unconfined")
    {
        fail("pod AppArmor profile is Unconfined".to_owned());
    }
    if pod.se_linux_options.is_some() {
        fail("pod sets seLinuxOptions".to_owned());
    }
    if spec.automount_service_account_token != Some(true) {
        fail("automountServiceAccountToken is not true: the operator needs the API".to_owned());
    }

    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for container in containers {
        let name = &container.name;
        for port in container.ports.iter().flatten() {
            if port.host_port.is_some_and(|p| p != 0) {
                fail(format!("container {name} uses hostPort"));
            }
        }
        let Some(sc) = container.security_context.as_ref() else {
            fail(format!("container {name} has no securityContext"));
            continue;
        };
        if sc.privileged == Some(true) {
            fail(format!("container {name} is privileged"));
        }
        if sc.allow_privilege_escalation != Some(false) {
            fail(format!(
                "container {name}: allowPrivilegeEscalation is not false"
            ));
        }
        if sc.read_only_root_filesystem != Some(true) {
            fail(format!(
                "container {name}: readOnlyRootFilesystem is not true"
            ));
        }
        if sc.run_as_non_root == Some(false) {
            fail(format!("container {name}: runAsNonRoot is false"));
        }
        if sc.run_as_user.or(pod.run_as_user) != Some(65532) {
            fail(format!("container {name}: does not run as 65532"));
        }
        let seccomp = sc
            .seccomp_profile
            .as_ref()
            .map(|p| p.type_.as_str())
            .or(pod_seccomp);
        if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
            fail(format!("container {name}: seccompProfile is {seccomp:?}"));
        }
        let capabilities = sc.capabilities.clone().unwrap_or_default();
        if !capabilities
            .drop
            .iter()
            .flatten()
            .any(|capability| capability == "ALL")
        {
            fail(format!("container {name}: capabilities do not drop ALL"));
        }
        if capabilities
            .add
            .iter()
            .flatten()
            .any(|capability| capability != "NET_BIND_SERVICE")
        {
            fail(format!("container {name}: adds capabilities"));
        }
        if sc.proc_mount.as_deref().is_some_and(|m| m != "Default") {
            fail(format!("container {name}: procMount is not Default"));
        }
        if sc
            .app_armor_profile
            .as_ref()
            .is_some_and(|p| p.type_ == "Unconfined")
        {
            fail(format!("container {name}: AppArmor profile is Unconfined"));
        }
        if sc.se_linux_options.is_some() {
            fail(format!("container {name}: sets seLinuxOptions"));
        }
    }
    violations
}

// ---------------------------------------------------------------------------------------------
// RBAC

type RuleTriples = BTreeSet<(String, String, String)>;

/// (group, resource, verb) of every rule; panics on shapes that are hard to audit.
fn rendered_triples(rules: &[k8s_openapi::api::rbac::v1::PolicyRule]) -> RuleTriples {
    let mut triples = BTreeSet::new();
    for rule in rules {
        let groups = rule.api_groups.clone().unwrap_or_default();
        let resources = rule.resources.clone().unwrap_or_default();
        assert_eq!(groups.len(), 1, "one API group per rule: {rule:?}");
        assert_eq!(resources.len(), 1, "one resource per rule: {rule:?}");
        // resourceNames narrow a rule to named objects (tests/rbac.rs checks the operator
        // asks for no other); every named rule must name at least one.
        assert!(
            rule.non_resource_urls.is_none(),
            "no nonResourceURLs: {rule:?}"
        );
        assert!(
            rule.resource_names.as_ref().is_none_or(|n| !n.is_empty()),
            "resourceNames, when given, name something: {rule:?}"
        );
        for verb in &rule.verbs {
            assert_ne!(verb, "*", "no wildcard verbs: {rule:?}");
            assert!(
                triples.insert((groups[0].clone(), resources[0].clone(), verb.clone())),
                "duplicate grant {verb} on {}: {rule:?}",
                resources[0]
            );
        }
    }
    triples
}

/// Every rule in a rendered template is preceded by a comment saying why it is there.
fn assert_rules_commented(text: &str, what: &str) {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut rules = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("- apiGroups:") {
            rules += 1;
            let previous = i.checked_sub(1).map(|j| lines[j]).unwrap_or_default();
            assert!(
                previous.starts_with('#'),
                "{what}: rule without a comment before it: {line}"
            );
        }
    }
    assert!(rules > 0, "{what}: no rules found");
}

// ---------------------------------------------------------------------------------------------
// Admission policies

/// Evaluates a rendered ValidatingAdmissionPolicy the way the API server does for one request
/// (objectSelector matchLabels, matchConditions, variables, validations) with kube's CEL
/// evaluator; true when the request is admitted.
fn admits(
    policy: &Value,
    operation: &str,
    username: &str,
    object: Option<Value>,
    old_object: Option<Value>,
) -> bool {
    let spec = &policy["spec"];
    let selector = spec["matchConstraints"]["objectSelector"]["matchLabels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let matches_selector = |o: &Option<Value>| {
        o.as_ref().is_some_and(|o| {
            selector
                .iter()
                .all(|(key, value)| &o["metadata"]["labels"][key] == value)
        })
    };
    if !selector.is_empty() && !matches_selector(&object) && !matches_selector(&old_object) {
        return true;
    }

    // The evaluator has no `variables`: inline each one, in declaration order.
    let mut variables: Vec<(String, String)> = Vec::new();
    for variable in spec["variables"].as_array().into_iter().flatten() {
        let expression = inline(variable["expression"].as_str().unwrap(), &variables);
        variables.push((
            format!("variables.{}", variable["name"].as_str().unwrap()),
            expression,
        ));
    }
    // kube-cel's schema-less evaluator escapes every object key like a declared field name
    // (`sovra.dev/x` becomes `sovra__dot__dev__slash__x`), whereas the API server leaves the
    // keys of maps such as labels alone; quote label keys in the expressions the same way.
    let escapes: Vec<(String, String)> = [&object, &old_object]
        .into_iter()
        .flatten()
        .filter_map(|o| o["metadata"]["labels"].as_object())
        .flat_map(|labels| labels.keys())
        .map(|key| (format!("'{key}'"), format!("'{}'", escape_cel_field(key))))
        .collect();
    let prepare = |text: &str| {
        escapes
            .iter()
            .fold(inline(text, &variables), |text, (key, escaped)| {
                text.replace(key, escaped)
            })
    };
    let expressions = |key: &str| -> Vec<VapExpression> {
        spec[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| VapExpression {
                expression: prepare(e["expression"].as_str().unwrap()),
                message: None,
                message_expression: e["messageExpression"].as_str().map(prepare),
            })
            .collect()
    };

    let mut builder = VapEvaluator::builder()
        .object(object.unwrap_or(Value::Null))
        .request(AdmissionRequest {
            operation: operation.to_owned(),
            username: username.to_owned(),
            ..Default::default()
        });
    if let Some(old) = old_object {
        builder = builder.old_object(old);
    }
    let evaluator = builder.build();

    for condition in evaluator.evaluate(&expressions("matchConditions")) {
        assert!(
            condition.passed
                || condition
                    .message
                    .as_deref()
                    .is_some_and(|m| m.contains("evaluated to false")),
            "matchCondition did not evaluate: {condition:?}"
        );
        if !condition.passed {
            return true;
        }
    }
    evaluator
        .evaluate(&expressions("validations"))
        .iter()
        .all(|result| {
            // A failed validation carries its messageExpression's text; the evaluator's own
            // wording means the expression or its message did not evaluate.
            let message = result.message.as_deref().unwrap_or_default();
            assert!(
                result.passed
                    || !(message.starts_with("evaluation error")
                        || message.contains("non-boolean")
                        || message.starts_with("validation expression")),
                "validation or its messageExpression did not evaluate: {result:?}"
            );
            result.passed
        })
}

/// Kubernetes' CEL escaping of a field name (`__`, `.`, `-`, `/`).
fn escape_cel_field(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '_' => "__".to_owned(),
            '.' => "__dot__".to_owned(),
            '-' => "__dash__".to_owned(),
            '/' => "__slash__".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

fn inline(expression: &str, variables: &[(String, String)]) -> String {
    variables
        .iter()
        .fold(expression.to_owned(), |text, (name, value)| {
            text.replace(name, &format!("({value})"))
        })
}

fn sensitive_pod(terms: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "tax", "labels": {"sovra.dev/sensitivity": "confidential"}},
        "spec": {
            "containers": [{"name": "app", "image": "app"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": terms
            }}}
        }
    })
}

fn sovereign_term() -> Value {
    json!({"matchExpressions": [
        {"key": "sovra.dev/node-pool", "operator": "In", "values": ["dedicated-a"]},
        {"key": "node-restriction.kubernetes.io/sovra-sovereign", "operator": "In", "values": ["true"]}
    ]})
}

fn managed_deployment(managed_by: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "tax", "namespace": "ministry-fin",
                     "labels": {"app.kubernetes.io/managed-by": managed_by}},
        "spec": {}
    })
}

/// Normalizes a document for the kustomize/Helm comparison: Helm's own bookkeeping (the
/// `helm.sh/chart` and `app.kubernetes.io/managed-by` labels, `helm.sh/*` annotations) is not
/// part of the install.
fn without_helm_bookkeeping(doc: &Value) -> Value {
    const HELM_LABELS: [&str; 2] = ["helm.sh/chart", "app.kubernetes.io/managed-by"];
    let mut doc = doc.clone();
    let metadata = doc["metadata"].as_object_mut().unwrap();
    if let Some(Value::Object(labels)) = metadata.get_mut("labels") {
        labels.retain(|key, _| !HELM_LABELS.contains(&key.as_str()));
    }
    if let Some(Value::Object(annotations)) = metadata.get_mut("annotations") {
        annotations.retain(|key, _| !key.starts_with("helm.sh/"));
    }
    metadata.retain(|key, value| {
        !(matches!(key.as_str(), "labels" | "annotations")
            && value.as_object().is_some_and(serde_json::Map::is_empty))
    });
    doc
}

// =============================================================================================
// Tests

#[test]
fn chart_lints_strictly_with_default_and_every_example_values_file() {
    let helm = require_tool!("helm");
    for values in all_values() {
        let mut args = vec![
            "lint".to_owned(),
            "--strict".to_owned(),
            "--kube-version".to_owned(),
            KUBE_VERSION.to_owned(),
            "--namespace".to_owned(),
            NAMESPACE.to_owned(),
            chart_dir().to_string_lossy().into_owned(),
        ];
        args.extend(values.args());
        if let Err(e) = run(&helm, &args) {
            panic!("helm lint --strict {values:?} failed:\n{e}");
        }
    }
}

#[test]
fn chart_renders_the_objects_each_values_file_asks_for() {
    let helm = require_tool!("helm");
    let set = |items: &[(&str, &str)]| -> BTreeSet<(String, String)> {
        items
            .iter()
            .map(|(k, n)| ((*k).to_owned(), (*n).to_owned()))
            .collect()
    };
    let crds_and_classes = [
        ("CustomResourceDefinition", "sensitivityclasses.sovra.dev"),
        ("CustomResourceDefinition", "sovereignclusters.sovra.dev"),
        ("CustomResourceDefinition", "sovereignworkloads.sovra.dev"),
        ("SensitivityClass", "public"),
        ("SensitivityClass", "internal"),
        ("SensitivityClass", "confidential"),
        ("SensitivityClass", "secret"),
    ];
    let core = [
        ("ServiceAccount", "sovra"),
        ("ClusterRole", "sovra"),
        ("ClusterRoleBinding", "sovra"),
        ("Role", "sovra"),
        ("RoleBinding", "sovra"),
        ("Service", "sovra"),
    ];

    // On unless viewerRole.enabled is false (values-minimal.yaml).
    let viewer = [("ClusterRole", "sovra-viewer")];

    let mut defaults = set(&core);
    defaults.extend(set(&crds_and_classes));
    defaults.extend(set(&viewer));
    defaults.extend(set(&[
        ("StatefulSet", "sovra"),
        ("PodDisruptionBudget", "sovra"),
        ("NetworkPolicy", "sovra"),
        ("Secret", "sovra-audit-signing-key"),
    ]));
    assert_eq!(inventory(&render(&helm, DEFAULTS)), defaults);

    let mut ephemeral = defaults.clone();
    ephemeral.remove(&("StatefulSet".to_owned(), "sovra".to_owned()));
    ephemeral.insert(("Deployment".to_owned(), "sovra".to_owned()));
    assert_eq!(inventory(&render(&helm, EPHEMERAL)), ephemeral);

    let mut hardened = set(&core);
    hardened.extend(set(&crds_and_classes));
    hardened.extend(set(&viewer));
    hardened.extend(set(&[
        ("Namespace", NAMESPACE),
        ("StatefulSet", "sovra"),
        ("PodDisruptionBudget", "sovra"),
        ("NetworkPolicy", "sovra"),
        ("ServiceMonitor", "sovra"),
        ("ValidatingAdmissionPolicy", "sovra-sovereign-pods"),
        ("ValidatingAdmissionPolicy", "sovra-managed-deployments"),
        ("ValidatingAdmissionPolicyBinding", "sovra-sovereign-pods"),
        (
            "ValidatingAdmissionPolicyBinding",
            "sovra-managed-deployments",
        ),
    ]));
    let hardened_docs = render(&helm, HARDENED);
    assert_eq!(inventory(&hardened_docs), hardened);
    let statefulset: StatefulSet = typed(find(&hardened_docs, "StatefulSet", "sovra"));
    let spec = statefulset.spec.unwrap();
    let claim = &spec.volume_claim_templates.unwrap()[0];
    let claim_spec = claim.spec.as_ref().unwrap();
    assert_eq!(claim.metadata.name.as_deref(), Some("audit"));
    assert_eq!(
        claim_spec.storage_class_name.as_deref(),
        Some("encrypted-rwo")
    );
    assert_eq!(
        claim_spec
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap()["storage"]
            .0,
        "5Gi"
    );
    let retention = spec.persistent_volume_claim_retention_policy.unwrap();
    assert_eq!(retention.when_deleted.as_deref(), Some("Retain"));
    assert_eq!(retention.when_scaled.as_deref(), Some("Retain"));
    let namespace = find(&hardened_docs, "Namespace", NAMESPACE);
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    assert_eq!(
        namespace["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );

    let mut minimal = set(&core);
    minimal.extend(set(&crds_and_classes[..3]));
    minimal.extend(set(&[
        ("StatefulSet", "sovra"),
        ("ValidatingAdmissionPolicy", "sovra-sovereign-pods"),
        ("ValidatingAdmissionPolicy", "sovra-managed-deployments"),
        ("ValidatingAdmissionPolicyBinding", "sovra-sovereign-pods"),
        (
            "ValidatingAdmissionPolicyBinding",
            "sovra-managed-deployments",
        ),
    ]));
    let minimal_docs = render(&helm, MINIMAL);
    assert_eq!(inventory(&minimal_docs), minimal);
    for binding in all_of_kind(&minimal_docs, "ValidatingAdmissionPolicyBinding") {
        assert_eq!(
            binding["spec"]["validationActions"],
            json!(["Warn", "Audit"])
        );
    }
}

/// Walks the default values next to the schema: every key has a schema, and every level the
/// chart defines (a schema with `properties`) forbids unknown keys.
fn undescribed_values(values: &Value, schema: &Value, path: &str, problems: &mut Vec<String>) {
    let Value::Object(values) = values else {
        return;
    };
    let Some(properties) = schema["properties"].as_object() else {
        // A free-form map (labels, selectors, affinity): Kubernetes validates its content.
        return;
    };
    if schema["additionalProperties"] != json!(false) {
        problems.push(format!("{path}: additionalProperties is not false"));
    }
    for (key, value) in values {
        match properties.get(key) {
            Some(property) => {
                undescribed_values(value, property, &format!("{path}.{key}"), problems)
            }
            None => problems.push(format!("{path}.{key} has no schema")),
        }
    }
}

#[test]
fn values_schema_describes_every_default_value() {
    let chart = chart_dir();
    let values: Value =
        serde_norway::from_str(&std::fs::read_to_string(chart.join("values.yaml")).unwrap())
            .unwrap();
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(chart.join("values.schema.json")).unwrap())
            .unwrap();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    let mut problems = Vec::new();
    undescribed_values(&values, &schema, "", &mut problems);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn values_schema_rejects_misspelled_keys_and_wrong_types() {
    let helm = require_tool!("helm");
    let rejected = [
        (
            Values {
                file: Some("invalid-typo.yaml"),
                set: &[],
            },
            "additional properties 'apiServerCIDR' not allowed",
        ),
        (
            Values {
                file: Some("invalid-type.yaml"),
                set: &[],
            },
            "want boolean",
        ),
        (
            Values {
                file: None,
                set: &["imagee.tag=1.0"],
            },
            "additional properties 'imagee' not allowed",
        ),
        (
            Values {
                file: None,
                set: &["replicaCount=two"],
            },
            "want integer",
        ),
        (
            Values {
                file: None,
                set: &["networkPolicy.apiServerCIDRs={10.0.0.1}"],
            },
            "apiServerCIDRs",
        ),
        (
            Values {
                file: None,
                set: &["admissionPolicy.validationActions={Deny,Warn}"],
            },
            "validationActions",
        ),
        (
            Values {
                file: None,
                set: &["operator.logFormat=yaml"],
            },
            "logFormat",
        ),
        // Not a schema rule but a template guard: two reconciling replicas would fight.
        (
            Values {
                file: None,
                set: &["leaderElection.enabled=false"],
            },
            "requires leaderElection.enabled",
        ),
    ];
    for (values, expected) in rejected {
        match helm_template_text(&helm, values, &[]) {
            Ok(_) => panic!("{values:?} was accepted"),
            Err(e) => assert!(
                e.contains(expected),
                "{values:?} rejected for another reason (wanted {expected:?}):\n{e}"
            ),
        }
    }
}

#[test]
fn every_rendered_manifest_round_trips_through_kubernetes_1_33_types() {
    let helm = require_tool!("helm");
    let mut checked = BTreeSet::new();
    for values in all_values() {
        for doc in render(&helm, values) {
            if let Err(problem) = check_schema(&doc) {
                panic!("{values:?}: {} {}: {problem}", kind_of(&doc), name_of(&doc));
            }
            checked.insert(kind_of(&doc).to_owned());
        }
    }
    // The checker itself catches what it should.
    let mut typo = render(&helm, DEFAULTS)
        .into_iter()
        .find(|doc| kind_of(doc) == "StatefulSet")
        .unwrap();
    typo["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = json!({});
    assert!(check_schema(&typo).unwrap_err().contains("securityContxt"));
    typo["spec"]["replicas"] = json!("two");
    assert!(check_schema(&typo).is_err());
    assert!(checked.len() >= 15, "kinds checked: {checked:?}");
}

#[test]
fn operator_pod_meets_pod_security_restricted_with_every_values_file() {
    let helm = require_tool!("helm");
    for values in all_values() {
        let pod = operator_pod(&render(&helm, values));
        let violations = restricted_violations(&pod);
        assert!(violations.is_empty(), "{values:?}: {violations:#?}");
    }
    // The check is not vacuous.
    let mut pod = operator_pod(&render(&helm, DEFAULTS));
    let spec = pod.spec.as_mut().unwrap();
    spec.host_network = Some(true);
    spec.containers[0]
        .security_context
        .as_mut()
        .unwrap()
        .allow_privilege_escalation = Some(true);
    assert_eq!(restricted_violations(&pod).len(), 2);
}

#[test]
fn operator_pod_runs_two_leader_elected_replicas_with_a_private_audit_volume_each() {
    let helm = require_tool!("helm");
    let docs = render(&helm, DEFAULTS);
    let statefulset: StatefulSet = typed(find(&docs, "StatefulSet", "sovra"));
    assert_eq!(statefulset.spec.as_ref().unwrap().replicas, Some(2));
    let pod = operator_pod(&docs);
    let spec = pod.spec.unwrap();
    let container = &spec.containers[0];
    assert_eq!(container.args.as_deref(), Some(&["run".to_owned()][..]));

    let env: BTreeMap<&str, &k8s_openapi::api::core::v1::EnvVar> = container
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e))
        .collect();
    let field_ref = |name: &str| {
        env[name]
            .value_from
            .as_ref()
            .and_then(|v| v.field_ref.as_ref())
            .map(|f| f.field_path.clone())
    };
    assert_eq!(field_ref("POD_NAME").as_deref(), Some("metadata.name"));
    assert_eq!(
        field_ref("SOVRA_NAMESPACE").as_deref(),
        Some("metadata.namespace")
    );
    let value = |name: &str| env[name].value.clone().unwrap_or_default();
    assert_eq!(value("SOVRA_LEADER_ELECTION"), "true");
    assert_eq!(value("SOVRA_LEASE_NAME"), "sovra-leader");
    assert_eq!(value("SOVRA_HTTP_ADDR"), "0.0.0.0:8080");
    assert_eq!(value("SOVRA_AUDIT_LOG"), "/var/lib/sovra/audit/audit.jsonl");
    assert_eq!(value("SOVRA_NODE_POOL_LABEL"), "sovra.dev/node-pool");
    assert_eq!(
        value("MIMALLOC_ALLOW_THP"),
        "0",
        "no transparent huge pages, which would keep the heap's sparse pages resident"
    );
    assert_eq!(
        (
            value("MIMALLOC_PURGE_DELAY"),
            value("MIMALLOC_PAGE_FULL_RETAIN")
        ),
        ("0".to_owned(), "0".to_owned()),
        "freed pages go back at once, also when the operator is idle"
    );

    let port = &container.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.container_port),
        (Some("http"), 8080)
    );
    let probe_path = |probe: &Option<k8s_openapi::api::core::v1::Probe>| {
        let get = probe.as_ref().unwrap().http_get.clone().unwrap();
        assert_eq!(
            get.port,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("http".into())
        );
        get.path.unwrap()
    };
    assert_eq!(probe_path(&container.liveness_probe), "/healthz");
    assert_eq!(probe_path(&container.readiness_probe), "/readyz");
    let resources = container.resources.as_ref().unwrap();
    assert!(resources.requests.is_some() && resources.limits.is_some());

    // The only writable path is the audit directory, on a volume private to the replica: its
    // own claim by default, its own emptyDir with the ephemeral opt-out. The checkpoint
    // signing key is the one other volume, a Secret mounted read-only.
    let mounts = container.volume_mounts.as_ref().unwrap();
    let mount = &mounts[0];
    assert_eq!(mount.mount_path, "/var/lib/sovra/audit");
    assert!(
        mounts[1..].iter().all(|m| m.read_only == Some(true)),
        "{mounts:?}"
    );
    let volumes = spec.volumes.clone().unwrap_or_default();
    assert!(
        volumes.iter().all(|v| v.name != mount.name),
        "the claim template provides it"
    );
    let key = volumes
        .iter()
        .find(|v| v.name == "audit-signing-key")
        .and_then(|v| v.secret.as_ref())
        .expect("the signing key is a Secret volume");
    assert_eq!(key.secret_name.as_deref(), Some("sovra-audit-signing-key"));
    assert_eq!(key.default_mode, Some(0o440));
    let claim = &statefulset.spec.unwrap().volume_claim_templates.unwrap()[0];
    assert_eq!(claim.metadata.name.as_deref(), Some(mount.name.as_str()));
    let ephemeral = operator_pod(&render(&helm, EPHEMERAL)).spec.unwrap();
    let volume = &ephemeral.volumes.as_ref().unwrap()[0];
    assert_eq!(volume.name, mount.name);
    assert!(volume.empty_dir.is_some());

    let anti_affinity = spec.affinity.unwrap().pod_anti_affinity.unwrap();
    let preferred = &anti_affinity
        .preferred_during_scheduling_ignored_during_execution
        .unwrap()[0];
    assert_eq!(
        preferred.pod_affinity_term.topology_key,
        "kubernetes.io/hostname"
    );

    // With a named StorageClass too, each replica has its own claim and no emptyDir.
    let hardened = render(&helm, HARDENED);
    let pod = operator_pod(&hardened).spec.unwrap();
    assert!(
        pod.volumes.iter().flatten().all(|v| v.empty_dir.is_none()),
        "claims replace the emptyDir"
    );
    assert_eq!(
        pod.topology_spread_constraints.unwrap()[0]
            .label_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()["app.kubernetes.io/name"],
        "sovra"
    );
    let pdb: PodDisruptionBudget = typed(find(&docs, "PodDisruptionBudget", "sovra"));
    assert_eq!(
        pdb.spec.unwrap().min_available,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
}

#[test]
/// Which verbs are granted is derived from the operator's real API calls in tests/rbac.rs;
/// this checks the rules' shape (one group and resource each, no wildcards) and bindings.
fn operator_rbac_rules_are_auditable_and_bound_to_its_service_account() {
    let helm = require_tool!("helm");
    let docs = render(&helm, DEFAULTS);

    let cluster_role: ClusterRole = typed(find(&docs, "ClusterRole", "sovra"));
    assert!(!rendered_triples(&cluster_role.rules.unwrap()).is_empty());
    let role: Role = typed(find(&docs, "Role", "sovra"));
    assert_eq!(role.metadata.namespace.as_deref(), Some(NAMESPACE));
    assert!(!rendered_triples(&role.rules.unwrap()).is_empty());

    let subject = |subjects: Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        let subjects = subjects.unwrap();
        assert_eq!(subjects.len(), 1);
        let s = &subjects[0];
        format!(
            "{}:{}:{}",
            s.kind,
            s.namespace.clone().unwrap_or_default(),
            s.name
        )
    };
    let binding: ClusterRoleBinding = typed(find(&docs, "ClusterRoleBinding", "sovra"));
    assert_eq!(
        (
            binding.role_ref.kind.as_str(),
            binding.role_ref.name.as_str()
        ),
        ("ClusterRole", "sovra")
    );
    assert_eq!(
        subject(binding.subjects),
        "ServiceAccount:sovra-system:sovra"
    );
    let binding: RoleBinding = typed(find(&docs, "RoleBinding", "sovra"));
    assert_eq!(
        (
            binding.role_ref.kind.as_str(),
            binding.role_ref.name.as_str()
        ),
        ("Role", "sovra")
    );
    assert_eq!(
        subject(binding.subjects),
        "ServiceAccount:sovra-system:sovra"
    );
    let pod = operator_pod(&docs);
    assert_eq!(
        pod.spec.unwrap().service_account_name.as_deref(),
        Some("sovra")
    );

    for template in [
        "templates/clusterrole.yaml",
        "templates/role.yaml",
        "templates/viewerrole.yaml",
    ] {
        let text = helm_template_text(&helm, DEFAULTS, &["--show-only", template]).unwrap();
        assert_rules_commented(&text, template);
    }
}

#[test]
/// `sovra plan --live` lists Sovra's three resources and nothing else (tests/plan_live.rs checks
/// its requests against this role); the role is read-only and the chart binds it to nobody.
fn viewer_role_reads_sovras_resources_only_and_is_bound_to_nobody() {
    let helm = require_tool!("helm");
    let docs = render(&helm, DEFAULTS);
    let viewer: ClusterRole = typed(find(&docs, "ClusterRole", "sovra-viewer"));
    let mut expected = RuleTriples::new();
    for resource in [
        "sensitivityclasses",
        "sovereignclusters",
        "sovereignworkloads",
    ] {
        for verb in ["get", "list", "watch"] {
            expected.insert(("sovra.dev".to_owned(), resource.to_owned(), verb.to_owned()));
        }
    }
    assert_eq!(rendered_triples(&viewer.rules.unwrap()), expected);
    for kind in ["ClusterRoleBinding", "RoleBinding"] {
        for binding in all_of_kind(&docs, kind) {
            assert_ne!(
                binding["roleRef"]["name"], "sovra-viewer",
                "the chart binds the viewer role to nobody: {binding}"
            );
        }
    }
    let off = render(
        &helm,
        Values {
            file: None,
            set: &["viewerRole.enabled=false"],
        },
    );
    assert!(
        !inventory(&off).contains(&("ClusterRole".to_owned(), "sovra-viewer".to_owned())),
        "viewerRole.enabled=false leaves it out"
    );
}

#[test]
fn network_policy_admits_only_metrics_and_lets_out_only_api_servers_and_dns() {
    let helm = require_tool!("helm");
    let docs = render(&helm, HARDENED);
    let policy: NetworkPolicy = typed(find(&docs, "NetworkPolicy", "sovra"));
    let spec = policy.spec.unwrap();
    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Ingress".to_owned(), "Egress".to_owned()][..])
    );
    let ingress = spec.ingress.unwrap();
    assert_eq!(ingress.len(), 1);
    let ports: Vec<String> = ingress[0]
        .ports
        .iter()
        .flatten()
        .map(|p| format!("{:?}", p.port))
        .collect();
    assert_eq!(ports, [r#"Some(String("http"))"#]);
    let from = &ingress[0].from.as_ref().unwrap()[0];
    assert!(from.namespace_selector.is_some() && from.pod_selector.is_some());

    let egress = spec.egress.unwrap();
    assert_eq!(egress.len(), 3, "API servers, the checkpoint witness, DNS");
    let cidrs: Vec<String> = egress[0]
        .to
        .iter()
        .flatten()
        .map(|peer| peer.ip_block.as_ref().unwrap().cidr.clone())
        .collect();
    assert_eq!(cidrs, ["10.0.0.10/32", "10.0.0.11/32", "192.0.2.0/28"]);
    let api_ports: Vec<String> = egress[0]
        .ports
        .iter()
        .flatten()
        .map(|p| format!("{:?}/{:?}", p.port, p.protocol))
        .collect();
    assert_eq!(api_ports, [r#"Some(Int(6443))/Some("TCP")"#]);
    let witness = &egress[1];
    assert_eq!(
        witness.to.as_ref().unwrap()[0]
            .ip_block
            .as_ref()
            .unwrap()
            .cidr,
        "198.51.100.10/32"
    );
    assert_eq!(
        format!("{:?}", witness.ports.as_ref().unwrap()[0].port),
        "Some(Int(443))"
    );
    let defaults: NetworkPolicy = typed(find(&render(&helm, DEFAULTS), "NetworkPolicy", "sovra"));
    assert_eq!(
        defaults.spec.unwrap().egress.unwrap().len(),
        2,
        "no witness egress without a witness URL"
    );
    let dns: Vec<String> = egress[2]
        .ports
        .iter()
        .flatten()
        .map(|p| format!("{:?}/{:?}", p.port, p.protocol))
        .collect();
    assert_eq!(
        dns,
        [
            r#"Some(Int(53))/Some("UDP")"#,
            r#"Some(Int(53))/Some("TCP")"#
        ]
    );
    assert!(
        all_of_kind(&render(&helm, MINIMAL), "NetworkPolicy").is_empty(),
        "networkPolicy.enabled=false removes it"
    );
}

#[test]
fn admission_policies_require_sovereign_nodes_and_reserve_managed_deployments_to_the_operator() {
    let helm = require_tool!("helm");
    let docs = render(&helm, HARDENED);
    let pods = find(&docs, "ValidatingAdmissionPolicy", "sovra-sovereign-pods");
    let deployments = find(
        &docs,
        "ValidatingAdmissionPolicy",
        "sovra-managed-deployments",
    );
    for name in ["sovra-sovereign-pods", "sovra-managed-deployments"] {
        let binding = find(&docs, "ValidatingAdmissionPolicyBinding", name);
        assert_eq!(binding["spec"]["policyName"], name);
        assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
    }

    let user = "system:serviceaccount:ministry-fin:ci";
    let create_pod = |pod: Value| admits(pods, "CREATE", user, Some(pod), None);
    assert!(create_pod(sensitive_pod(json!([sovereign_term()]))));
    assert!(!create_pod(sensitive_pod(json!([]))), "no terms");
    assert!(
        !create_pod(sensitive_pod(json!([
            sovereign_term(),
            {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}
        ]))),
        "terms are ORed: one term without the requirement escapes it"
    );
    assert!(
        !create_pod(sensitive_pod(json!([{"matchExpressions": [
            {"key": "node-restriction.kubernetes.io/sovra-sovereign", "operator": "NotIn", "values": ["false"]}
        ]}]))),
        "only In [true] counts"
    );
    let mut bare = sensitive_pod(json!([]));
    bare["spec"].as_object_mut().unwrap().remove("affinity");
    assert!(!create_pod(bare.clone()), "no affinity at all");
    bare["metadata"]["labels"] = json!({"app": "web"});
    assert!(
        create_pod(bare),
        "pods without sovra.dev/sensitivity are not matched"
    );

    let managed = managed_deployment("sovra");
    for operation in ["CREATE", "UPDATE"] {
        assert!(admits(
            deployments,
            operation,
            OPERATOR_USER,
            Some(managed.clone()),
            Some(managed.clone())
        ));
        assert!(!admits(
            deployments,
            operation,
            user,
            Some(managed.clone()),
            Some(managed.clone())
        ));
    }
    assert!(admits(
        deployments,
        "DELETE",
        OPERATOR_USER,
        None,
        Some(managed.clone())
    ));
    assert!(admits(
        deployments,
        "DELETE",
        GARBAGE_COLLECTOR,
        None,
        Some(managed.clone())
    ));
    assert!(!admits(
        deployments,
        "DELETE",
        user,
        None,
        Some(managed.clone())
    ));
    assert!(
        !admits(
            deployments,
            "UPDATE",
            user,
            Some(managed_deployment("someone-else")),
            Some(managed)
        ),
        "removing the label does not escape the policy"
    );
    assert!(admits(
        deployments,
        "UPDATE",
        user,
        Some(managed_deployment("Helm")),
        Some(managed_deployment("Helm"))
    ));
}

#[test]
fn default_sensitivity_classes_render_the_shipped_file_and_survive_uninstall() {
    let helm = require_tool!("helm");
    let shipped = parse_documents(
        &std::fs::read_to_string(repo().join("deploy/sensitivityclasses.yaml")).unwrap(),
    );
    let docs = render(&helm, DEFAULTS);
    let rendered = all_of_kind(&docs, "SensitivityClass");
    assert_eq!(rendered.len(), shipped.len());
    for class in &shipped {
        let ours = find(&docs, "SensitivityClass", name_of(class));
        assert_eq!(ours["spec"], class["spec"], "{}", name_of(class));
        assert_eq!(
            ours["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
            "uninstall must not pull classes from under placed workloads"
        );
    }
}

#[test]
fn kustomize_install_matches_the_default_chart_rendering() {
    let helm = require_tool!("helm");
    let kubectl = require_tool!("kubectl");
    let kustomized = kustomize(&kubectl);
    let charted = render(&helm, DEFAULTS);

    // Kustomize owns its namespace; the chart only does with namespace.create. The checkpoint
    // signing key is the one object deploy/ leaves out: a key in a committed file would be
    // everyone's key, so kustomize users make theirs with `sovra audit keygen`.
    let mut expected = inventory(&charted);
    expected.insert(("Namespace".to_owned(), NAMESPACE.to_owned()));
    assert!(expected.remove(&("Secret".to_owned(), "sovra-audit-signing-key".to_owned())));
    assert_eq!(inventory(&kustomized), expected);

    for doc in &kustomized {
        let chart_doc = if kind_of(doc) == "Namespace" {
            let with_namespace = render(
                &helm,
                Values {
                    file: None,
                    set: &["namespace.create=true"],
                },
            );
            find(&with_namespace, "Namespace", NAMESPACE).clone()
        } else {
            find(&charted, kind_of(doc), name_of(doc)).clone()
        };
        let (ours, theirs) = (
            without_helm_bookkeeping(&chart_doc),
            without_helm_bookkeeping(doc),
        );
        if let Some(difference) = first_difference(&ours, &theirs, "") {
            panic!(
                "deploy/ {} {} differs from the chart at {difference}",
                kind_of(doc),
                name_of(doc)
            );
        }
    }
}

#[test]
fn crd_and_sensitivity_class_copies_are_identical_to_their_sources() {
    let root = repo();
    let generated: BTreeSet<String> = std::fs::read_dir(root.join("crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    assert_eq!(generated.len(), 3, "crds/ holds the three generated CRDs");
    for copy_dir in ["charts/sovra/crds", "deploy/crds"] {
        let copies: BTreeSet<String> = std::fs::read_dir(root.join(copy_dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(copies, generated, "{copy_dir} holds exactly the CRD copies");
        for name in &generated {
            assert!(
                std::fs::read(root.join("crds").join(name)).unwrap()
                    == std::fs::read(root.join(copy_dir).join(name)).unwrap(),
                "{copy_dir}/{name} differs from crds/{name}: cp crds/*.yaml {copy_dir}/"
            );
        }
    }
    assert!(
        std::fs::read(root.join("charts/sovra/files/sensitivityclasses.yaml")).unwrap()
            == std::fs::read(root.join("deploy/sensitivityclasses.yaml")).unwrap(),
        "charts/sovra/files/sensitivityclasses.yaml differs from deploy/sensitivityclasses.yaml"
    );
}

// ---------------------------------------------------------------------------------------------
// The audit trail: durable by default, ephemeral only when the values say it is lost

/// The operator container's `SOVRA_AUDIT_LOG` and the volume mounted at its directory.
fn audit_log_and_mount(pod: &PodTemplateSpec) -> (String, k8s_openapi::api::core::v1::VolumeMount) {
    let container = &pod.spec.as_ref().unwrap().containers[0];
    let file = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "SOVRA_AUDIT_LOG")
        .and_then(|e| e.value.clone())
        .expect("SOVRA_AUDIT_LOG is set");
    let mounts = container.volume_mounts.clone().unwrap_or_default();
    let mount = mounts
        .into_iter()
        .find(|m| {
            file.strip_prefix(m.mount_path.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
        })
        .unwrap_or_else(|| panic!("{file} is on no mounted volume"));
    (file, mount)
}

#[test]
fn default_chart_runs_a_statefulset_whose_audit_log_is_on_a_claim_per_replica() {
    let helm = require_tool!("helm");
    let docs = render(&helm, DEFAULTS);
    assert!(
        all_of_kind(&docs, "Deployment").is_empty(),
        "no emptyDir Deployment by default"
    );
    let statefulset: StatefulSet = typed(find(&docs, "StatefulSet", "sovra"));
    let spec = statefulset.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    assert_eq!(spec.service_name.as_deref(), Some("sovra"));
    find(&docs, "Service", "sovra");

    let (file, mount) = audit_log_and_mount(&spec.template);
    assert_eq!(file, "/var/lib/sovra/audit/audit.jsonl");
    assert!(
        spec.template
            .spec
            .as_ref()
            .unwrap()
            .volumes
            .iter()
            .flatten()
            .all(|v| v.name != mount.name),
        "no pod volume shadows the claim"
    );
    let claims = spec.volume_claim_templates.unwrap();
    assert_eq!(claims.len(), 1);
    let claim = &claims[0];
    assert_eq!(claim.metadata.name.as_deref(), Some(mount.name.as_str()));
    let claim_spec = claim.spec.as_ref().unwrap();
    assert_eq!(
        claim_spec.access_modes.as_deref(),
        Some(&["ReadWriteOnce".to_owned()][..])
    );
    assert_eq!(
        claim_spec.storage_class_name, None,
        "empty storageClass means the cluster's default"
    );
    assert_eq!(
        claim_spec
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap()["storage"]
            .0,
        "1Gi"
    );
    let labels = claim.metadata.labels.clone().unwrap();
    assert_eq!(labels["app.kubernetes.io/instance"], RELEASE);
    let retention = spec.persistent_volume_claim_retention_policy.unwrap();
    assert_eq!(retention.when_deleted.as_deref(), Some("Retain"));
    assert_eq!(retention.when_scaled.as_deref(), Some("Retain"));

    // A named StorageClass is used as given.
    let named = render(
        &helm,
        Values {
            file: None,
            set: &["auditLog.persistence.storageClass=gov-encrypted"],
        },
    );
    let statefulset: StatefulSet = typed(find(&named, "StatefulSet", "sovra"));
    let claim = &statefulset.spec.unwrap().volume_claim_templates.unwrap()[0];
    assert_eq!(
        claim.spec.as_ref().unwrap().storage_class_name.as_deref(),
        Some("gov-encrypted")
    );
}

#[test]
fn explicit_ephemeral_opt_out_renders_an_emptydir_deployment_and_notes_warn_the_trail_is_lost() {
    let helm = require_tool!("helm");
    let docs = render(&helm, EPHEMERAL);
    assert!(all_of_kind(&docs, "StatefulSet").is_empty());
    let deployment: Deployment = typed(find(&docs, "Deployment", "sovra"));
    let template = deployment.spec.unwrap().template;
    let (file, mount) = audit_log_and_mount(&template);
    assert_eq!(file, "/var/lib/sovra/audit/audit.jsonl");
    let volumes = template.spec.unwrap().volumes.unwrap();
    let volume = volumes.iter().find(|v| v.name == mount.name).unwrap();
    let empty_dir = volume.empty_dir.as_ref().expect("an emptyDir");
    assert_eq!(empty_dir.size_limit.as_ref().unwrap().0, "256Mi");

    let notes = helm_notes(&helm, EPHEMERAL);
    let warning = notes
        .find("WARNING: THE AUDIT TRAIL IS NOT DURABLE (auditLog.ephemeralLostOnRestart=true)")
        .unwrap_or_else(|| panic!("no warning in NOTES:\n{notes}"));
    assert!(
        warning < notes.find("1. Check that it works").unwrap(),
        "the warning comes first:\n{notes}"
    );
    for expected in [
        "DELETED whenever\n  its pod goes",
        "is\n  lost from the cluster",
        "Audit trail: EPHEMERAL",
        "--set auditLog.persistence.enabled=true --set auditLog.ephemeralLostOnRestart=false",
    ] {
        assert!(
            notes.contains(expected),
            "NOTES lack {expected:?}:\n{notes}"
        );
    }
    assert!(!notes.contains("DURABLE."), "{notes}");
}

#[test]
fn disabling_persistence_without_the_explicit_opt_out_is_rejected_by_the_values_schema() {
    let helm = require_tool!("helm");
    let schema_error = "values don't meet the specifications of the schema";
    let rejected: [(&[&str], &str); 4] = [
        // Persistence off, but nobody said the trail may be lost.
        (
            &["auditLog.persistence.enabled=false"],
            "at '/auditLog/ephemeralLostOnRestart': value must be true",
        ),
        (
            &[
                "auditLog.persistence.enabled=false",
                "auditLog.ephemeralLostOnRestart=false",
            ],
            "at '/auditLog/ephemeralLostOnRestart': value must be true",
        ),
        // The opt-out while persistence is on: which one is meant?
        (
            &["auditLog.ephemeralLostOnRestart=true"],
            "at '/auditLog/ephemeralLostOnRestart': value must be false",
        ),
        // Removing the switch does not fall back to an emptyDir.
        (
            &["auditLog.persistence.enabled=null"],
            "missing property 'enabled'",
        ),
    ];
    for (set, expected) in rejected {
        let values = Values { file: None, set };
        match helm_template_text(&helm, values, &[]) {
            Ok(_) => panic!("{set:?} was accepted"),
            Err(e) => assert!(
                e.contains(schema_error) && e.contains(expected),
                "{set:?} rejected for another reason (wanted {expected:?}):\n{e}"
            ),
        }
    }
    // Without the schema (--skip-schema-validation), the template refuses it too.
    let values = Values {
        file: None,
        set: &["auditLog.persistence.enabled=false"],
    };
    let e = helm_template_text(&helm, values, &["--skip-schema-validation"]).unwrap_err();
    assert!(
        e.contains("set auditLog.ephemeralLostOnRestart=true to accept losing it"),
        "{e}"
    );
    // Both values together are the accepted opt-out.
    helm_template_text(&helm, EPHEMERAL, &[]).unwrap();
}

#[test]
fn default_notes_say_the_audit_trail_is_durable_where_its_claims_are_and_how_to_verify_it() {
    let helm = require_tool!("helm");
    let notes = helm_notes(&helm, DEFAULTS);
    for expected in [
        "Audit trail: DURABLE.",
        "StorageClass <the cluster's default>",
        "pod sovra-0  ->  PersistentVolumeClaim audit-sovra-0",
        "pod sovra-1  ->  PersistentVolumeClaim audit-sovra-1",
        "kubectl get pvc -n sovra-system -l app.kubernetes.io/name=sovra,app.kubernetes.io/instance=sovra",
        "kubectl exec -n sovra-system sovra-0 -- /sovra audit verify /var/lib/sovra/audit/audit.jsonl",
        "kubectl exec -n sovra-system sovra-0 -- /sovra audit show /var/lib/sovra/audit/audit.jsonl",
        // A cluster without a default StorageClass: the pods stay Pending, and how to see why.
        "The pods start only once their claims are Bound. If they stay Pending:",
        "kubectl describe pvc audit-sovra-0 -n sovra-system",
        "kubectl get storageclass",
        "storageclass.kubernetes.io/is-default-class=true",
        // Signed checkpoints by default, where they are published and how to check a trail
        // against the copies kept outside.
        "Signed checkpoints: ON.",
        "in Secret sovra-audit-signing-key (created by the chart, kept on uninstall)",
        "kubectl get configmap sovra-audit-checkpoint -n sovra-system -o yaml",
        "kubectl get events -n sovra-system --field-selector reason=AuditCheckpoint",
        "--key '<the verifier key you kept>' --checkpoint - < checkpoints.yaml",
    ] {
        assert!(
            notes.contains(expected),
            "NOTES lack {expected:?}:\n{notes}"
        );
    }
    assert!(!notes.contains("NOT DURABLE"), "{notes}");
    assert!(!notes.contains("EPHEMERAL"), "{notes}");
    let unsigned = helm_notes(&helm, MINIMAL);
    assert!(unsigned.contains("Signed checkpoints: OFF"), "{unsigned}");
    let hardened = helm_notes(&helm, HARDENED);
    assert!(
        hardened.contains("in Secret sovra-checkpoint-key, and publishes")
            && hardened.contains("POSTed to https://witness.example.nl/sovra/add-checkpoint"),
        "{hardened}"
    );

    // A named class is named, and the advice about the default class is left out.
    let notes = helm_notes(
        &helm,
        Values {
            file: None,
            set: &[
                "auditLog.persistence.storageClass=gov-encrypted",
                "replicaCount=3",
            ],
        },
    );
    assert!(
        notes.contains("StorageClass gov-encrypted must exist"),
        "{notes}"
    );
    assert!(
        notes.contains("PersistentVolumeClaim audit-sovra-2"),
        "{notes}"
    );
    assert!(!notes.contains("is-default-class"), "{notes}");
}
