//! Validation of the built-in kinds Sovra writes, ported from upstream's
//! `pkg/apis/{apps,core,coordination}/validation` and the registries' strategies:
//! object names per kind, Deployments (selector, template, replicas, strategy, the
//! immutable selector, status counters), Pods (containers), ConfigMaps and Secrets (keys),
//! Events (both APIs) and Leases. Only these checks run: a built-in's other fields are not
//! type-checked (upstream decodes into Go structs and would reject wrong types with 400).

use serde_json::Value;

use super::names::{self, NameRule};
use super::render;
use crate::error::{FieldError, FieldErrorType};
use crate::registry::ResourceType;

/// How `rt`'s names are validated; `None` for kinds upstream does not run
/// `ValidateObjectMeta` on (core/v1 Events, kept lax for old clients).
pub fn name_rule(rt: &ResourceType) -> Option<NameRule> {
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "events") => None,
        ("", "namespaces") => Some(NameRule::Label),
        ("", "services") => Some(NameRule::Dns1035),
        ("rbac.authorization.k8s.io", _) => Some(NameRule::PathSegment),
        _ => Some(NameRule::Subdomain),
    }
}

/// The checks of `rt`'s strategy. `old` is the stored object on updates; `status` is set
/// for `/status` writes (and for direct store writes, which carry a status).
pub fn validate(
    rt: &ResourceType,
    obj: &Value,
    old: Option<&Value>,
    main: bool,
    status: bool,
    errs: &mut Vec<FieldError>,
) {
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("apps", "deployments") => {
            if main {
                deployment_spec(obj, errs);
                if let Some(old) = old
                    && obj.pointer("/spec/selector") != old.pointer("/spec/selector")
                {
                    errs.push(FieldError::invalid(
                        "spec.selector",
                        render::label_selector(obj.pointer("/spec/selector")),
                        "field is immutable",
                    ));
                }
            }
            if status {
                deployment_status(obj, errs);
            }
        }
        ("", "pods") if main && old.is_none() => pod_spec(obj.get("spec"), "spec", errs),
        ("", "configmaps") => config_map_keys(obj, errs),
        ("", "secrets") => {
            let keys = data_keys(obj, "data");
            for key in &keys {
                for msg in names::config_map_key(key) {
                    errs.push(FieldError::invalid("data", render::quote(key), msg));
                }
            }
        }
        ("", "events") => legacy_event(obj, &V1_FIELDS, errs),
        ("events.k8s.io", "events") => event(obj, old, errs),
        ("coordination.k8s.io", "leases") => lease_spec(obj, errs),
        _ => {}
    }
}

fn int(obj: &Value, pointer: &str) -> Option<i64> {
    obj.pointer(pointer).and_then(Value::as_i64)
}

fn text<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn non_negative(obj: &Value, pointer: &str, field: &str, errs: &mut Vec<FieldError>) {
    if let Some(v) = int(obj, pointer)
        && v < 0
    {
        errs.push(FieldError::invalid(
            field,
            v.to_string(),
            "must be greater than or equal to 0",
        ));
    }
}

/// `ValidateLabelSelector` (strict, as Deployments use it).
fn label_selector(selector: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let labels: Vec<(String, String)> = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    names::validate_labels(&labels, &format!("{path}.matchLabels"), errs);
    let expressions = selector.get("matchExpressions").and_then(Value::as_array);
    for (i, e) in expressions.into_iter().flatten().enumerate() {
        let at = format!("{path}.matchExpressions[{i}]");
        let operator = e
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        match operator {
            "In" | "NotIn" if values == 0 => errs.push(FieldError::required(
                format!("{at}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if values > 0 => errs.push(FieldError::forbidden(
                format!("{at}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::invalid(
                format!("{at}.operator"),
                render::quote(other),
                "not a valid selector operator",
            )),
        }
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        for msg in names::qualified_name(key) {
            errs.push(FieldError::invalid(
                format!("{at}.key"),
                render::quote(key),
                msg,
            ));
        }
    }
}

/// Whether a label selector selects `labels` (`matchLabels` and `matchExpressions`).
fn selects(selector: &Value, labels: Option<&Value>) -> bool {
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let match_labels = selector.get("matchLabels").and_then(Value::as_object);
    let labels_ok = match_labels
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str());
    let expressions = selector.get("matchExpressions").and_then(Value::as_array);
    let expressions_ok = expressions.into_iter().flatten().all(|e| {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        match e.get("operator").and_then(Value::as_str) {
            Some("In") => label(key).is_some_and(|v| values.contains(&v)),
            Some("NotIn") => label(key).is_none_or(|v| !values.contains(&v)),
            Some("Exists") => label(key).is_some(),
            Some("DoesNotExist") => label(key).is_none(),
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

fn deployment_spec(obj: &Value, errs: &mut Vec<FieldError>) {
    non_negative(obj, "/spec/replicas", "spec.replicas", errs);
    let selector = obj.pointer("/spec/selector").filter(|s| !s.is_null());
    match selector {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(selector) => {
            label_selector(selector, "spec.selector", errs);
            let count = |f: &str| {
                selector
                    .get(f)
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len())
                    + selector
                        .get(f)
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len)
            };
            if count("matchLabels") + count("matchExpressions") == 0 {
                errs.push(FieldError::invalid(
                    "spec.selector",
                    render::label_selector(Some(selector)),
                    "empty selector is invalid for deployment",
                ));
            }
        }
    }
    let template_labels = obj.pointer("/spec/template/metadata/labels");
    if let Some(selector) = selector
        && !selector_is_empty(selector)
        && !selects(selector, template_labels)
    {
        errs.push(FieldError::invalid(
            "spec.template.metadata.labels",
            render::string_map(template_labels),
            "`selector` does not match template `labels`",
        ));
    }
    pod_template(obj.pointer("/spec/template"), "spec.template", errs);
    if let Some(policy) = obj
        .pointer("/spec/template/spec/restartPolicy")
        .and_then(Value::as_str)
        && policy != "Always"
    {
        errs.push(FieldError::new(
            FieldErrorType::NotSupported,
            "spec.template.spec.restartPolicy",
            Some(render::quote(policy)),
            "supported values: \"Always\"",
        ));
    }
    match obj.pointer("/spec/strategy/type").and_then(Value::as_str) {
        None | Some("RollingUpdate") => {}
        Some("Recreate") => {
            if obj
                .pointer("/spec/strategy/rollingUpdate")
                .is_some_and(|r| !r.is_null())
            {
                errs.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        Some(other) => errs.push(FieldError::new(
            FieldErrorType::NotSupported,
            "spec.strategy",
            Some(render::quote(other)),
            "supported values: \"Recreate\", \"RollingUpdate\"",
        )),
    }
    non_negative(obj, "/spec/minReadySeconds", "spec.minReadySeconds", errs);
    non_negative(
        obj,
        "/spec/revisionHistoryLimit",
        "spec.revisionHistoryLimit",
        errs,
    );
    if let Some(deadline) = int(obj, "/spec/progressDeadlineSeconds") {
        non_negative(
            obj,
            "/spec/progressDeadlineSeconds",
            "spec.progressDeadlineSeconds",
            errs,
        );
        if deadline <= int(obj, "/spec/minReadySeconds").unwrap_or(0) {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                deadline.to_string(),
                "must be greater than minReadySeconds",
            ));
        }
    }
}

fn selector_is_empty(selector: &Value) -> bool {
    let labels = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .map_or(0, |m| m.len());
    let exprs = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    labels + exprs == 0
}

/// `ValidateDeploymentStatus`.
fn deployment_status(obj: &Value, errs: &mut Vec<FieldError>) {
    let Some(status) = obj.get("status").filter(|s| s.is_object()) else {
        return;
    };
    for field in [
        "observedGeneration",
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
        "unavailableReplicas",
        "collisionCount",
    ] {
        non_negative(
            status,
            &format!("/{field}"),
            &format!("status.{field}"),
            errs,
        );
    }
    let get = |f: &str| status.get(f).and_then(Value::as_i64).unwrap_or(0);
    let msg = "cannot be greater than status.replicas";
    for field in ["updatedReplicas", "readyReplicas", "availableReplicas"] {
        if get(field) > get("replicas") {
            errs.push(FieldError::invalid(
                format!("status.{field}"),
                get(field).to_string(),
                msg,
            ));
        }
    }
    if get("availableReplicas") > get("readyReplicas") {
        errs.push(FieldError::invalid(
            "status.availableReplicas",
            get("availableReplicas").to_string(),
            "cannot be greater than readyReplicas",
        ));
    }
}

/// `ValidatePodTemplateSpec`: labels, annotations and the pod spec.
fn pod_template(template: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    let Some(template) = template.filter(|t| !t.is_null()) else {
        errs.push(FieldError::required(format!("{path}.spec.containers"), ""));
        return;
    };
    let pairs = |f: &str| -> Vec<(String, String)> {
        template
            .pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect()
    };
    names::validate_labels(&pairs("labels"), &format!("{path}.labels"), errs);
    names::validate_annotations(&pairs("annotations"), &format!("{path}.annotations"), errs);
    pod_spec(template.get("spec"), &format!("{path}.spec"), errs);
}

/// The part of `ValidatePodSpec` about containers: at least one, each with a DNS-label
/// name that is unique and an image.
fn pod_spec(spec: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    let mut seen: Vec<String> = Vec::new();
    for (list, field) in [
        (
            spec.and_then(|s| s.get("initContainers"))
                .and_then(Value::as_array),
            "initContainers",
        ),
        (containers, "containers"),
    ] {
        for (i, container) in list.into_iter().flatten().enumerate() {
            let at = format!("{path}.{field}[{i}]");
            let name = container
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if name.is_empty() {
                errs.push(FieldError::required(format!("{at}.name"), ""));
            } else {
                for msg in names::dns1123_label(name) {
                    errs.push(FieldError::invalid(
                        format!("{at}.name"),
                        render::quote(name),
                        msg,
                    ));
                }
            }
            if seen.iter().any(|s| s == name) {
                errs.push(FieldError::new(
                    FieldErrorType::Duplicate,
                    format!("{at}.name"),
                    Some(render::quote(name)),
                    "",
                ));
            } else {
                seen.push(name.to_string());
            }
            if container
                .get("image")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                errs.push(FieldError::required(format!("{at}.image"), ""));
            }
        }
    }
    if containers.is_none_or(Vec::is_empty) {
        errs.push(FieldError::required(format!("{path}.containers"), ""));
    }
    if let Some(policy) = spec
        .and_then(|s| s.get("restartPolicy"))
        .and_then(Value::as_str)
        && !["Always", "OnFailure", "Never"].contains(&policy)
    {
        errs.push(FieldError::new(
            FieldErrorType::NotSupported,
            format!("{path}.restartPolicy"),
            Some(render::quote(policy)),
            "supported values: \"Always\", \"OnFailure\", \"Never\"",
        ));
    }
}

fn data_keys(obj: &Value, field: &str) -> Vec<String> {
    obj.get(field)
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// `ValidateConfigMap`: valid keys, none in both `data` and `binaryData`, at most 1 MiB.
fn config_map_keys(obj: &Value, errs: &mut Vec<FieldError>) {
    let data = data_keys(obj, "data");
    let binary = data_keys(obj, "binaryData");
    for key in &data {
        for msg in names::config_map_key(key) {
            errs.push(FieldError::invalid("data", render::quote(key), msg));
        }
    }
    for key in &binary {
        for msg in names::config_map_key(key) {
            errs.push(FieldError::invalid("binaryData", render::quote(key), msg));
        }
        if data.contains(key) {
            errs.push(FieldError::invalid(
                "binaryData",
                render::quote(key),
                "duplicate of key present in data",
            ));
        }
    }
    let size = |field: &str| -> usize {
        obj.get(field)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum()
    };
    const MAX: usize = 1024 * 1024;
    if size("data") + size("binaryData") > MAX {
        errs.push(FieldError::new(
            FieldErrorType::TooLong,
            "[]",
            None,
            format!("may not be more than {MAX} bytes"),
        ));
    }
}

/// The field names of an Event in the API it was written through. Upstream validates the
/// internal type, so errors name the internal fields (`involvedObject`, `message`) even
/// for `events.k8s.io/v1` (whose JSON calls them `regarding`, `note`).
struct EventFields {
    regarding: &'static str,
    controller: &'static str,
    note: &'static str,
    source: &'static str,
    first: &'static str,
    last: &'static str,
    count: &'static str,
}

const V1_FIELDS: EventFields = EventFields {
    regarding: "involvedObject",
    controller: "reportingComponent",
    note: "message",
    source: "source",
    first: "firstTimestamp",
    last: "lastTimestamp",
    count: "count",
};

const EVENTS_V1_FIELDS: EventFields = EventFields {
    regarding: "regarding",
    controller: "reportingController",
    note: "note",
    source: "deprecatedSource",
    first: "deprecatedFirstTimestamp",
    last: "deprecatedLastTimestamp",
    count: "deprecatedCount",
};

fn is_set(obj: &Value, field: &str) -> bool {
    match obj.get(field) {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::Object(m)) => m
            .values()
            .any(|v| v.as_str().is_some_and(|s| !s.is_empty())),
        Some(_) => true,
    }
}

/// `legacyValidateEvent`, which both Event APIs run.
fn legacy_event(obj: &Value, f: &EventFields, errs: &mut Vec<FieldError>) {
    let namespace = text(obj, "/metadata/namespace");
    let regarding_ns = obj
        .get(f.regarding)
        .and_then(|r| r.get("namespace"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mismatch = || {
        FieldError::invalid(
            "involvedObject.namespace",
            render::quote(regarding_ns),
            "does not match event.namespace",
        )
    };
    if !is_set(obj, "eventTime") {
        if regarding_ns.is_empty() {
            if !namespace.is_empty() && namespace != "default" {
                errs.push(mismatch());
            }
        } else if namespace != regarding_ns {
            errs.push(mismatch());
        }
    } else {
        if regarding_ns.is_empty() && namespace != "default" && namespace != "kube-system" {
            errs.push(mismatch());
        }
        let controller = text(obj, &format!("/{}", f.controller));
        if controller.is_empty() {
            errs.push(FieldError::required("reportingController", ""));
        }
        for msg in names::qualified_name(controller) {
            errs.push(FieldError::invalid(
                "reportingController",
                render::quote(controller),
                msg,
            ));
        }
        for (field, internal, limit) in [
            ("reportingInstance", "reportingInstance", 128),
            ("action", "action", 128),
            ("reason", "reason", 128),
        ] {
            let value = text(obj, &format!("/{field}"));
            if value.is_empty() {
                errs.push(FieldError::required(internal, ""));
            }
            if value.len() > limit {
                errs.push(FieldError::invalid(
                    internal,
                    render::quote(""),
                    format!("can have at most {limit} characters"),
                ));
            }
        }
        if text(obj, &format!("/{}", f.note)).len() > 1024 {
            errs.push(FieldError::invalid(
                "message",
                render::quote(""),
                "can have at most 1024 characters",
            ));
        }
    }
    for msg in names::dns1123_subdomain(namespace) {
        errs.push(FieldError::invalid(
            "namespace",
            render::quote(namespace),
            msg,
        ));
    }
}

fn event_series(obj: &Value, errs: &mut Vec<FieldError>) {
    let Some(series) = obj.get("series").filter(|s| !s.is_null()) else {
        return;
    };
    if series.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
        errs.push(FieldError::invalid(
            "series.count",
            render::quote(""),
            "should be at least 2",
        ));
    }
    if !is_set(series, "lastObservedTime") {
        errs.push(FieldError::required("series.lastObservedTime", ""));
    }
}

/// `ValidateEventCreate` / `ValidateEventUpdate` for `events.k8s.io/v1`.
fn event(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let f = &EVENTS_V1_FIELDS;
    legacy_event(obj, f, errs);
    let Some(old) = old else {
        event_series(obj, errs);
        if !is_set(obj, "eventTime") {
            errs.push(FieldError::required("eventTime", ""));
        }
        let event_type = text(obj, "/type");
        if event_type != "Normal" && event_type != "Warning" {
            errs.push(FieldError::invalid(
                "type",
                render::quote(""),
                format!("has invalid value: {event_type}"),
            ));
        }
        for (field, internal) in [
            (f.first, "firstTimestamp"),
            (f.last, "lastTimestamp"),
            (f.count, "count"),
            (f.source, "source"),
        ] {
            if is_set(obj, field) {
                errs.push(FieldError::invalid(
                    internal,
                    render::quote(""),
                    "needs to be unset",
                ));
            }
        }
        return;
    };
    if obj.get("series") != old.get("series") {
        event_series(obj, errs);
    }
    for (field, internal) in [
        (f.regarding, "involvedObject"),
        ("reason", "reason"),
        (f.note, "message"),
        (f.source, "source"),
        (f.first, "firstTimestamp"),
        (f.last, "lastTimestamp"),
        (f.count, "count"),
        ("type", "type"),
        ("eventTime", "eventTime"),
        ("action", "action"),
        ("related", "related"),
        ("reportingController", "reportingController"),
        ("reportingInstance", "reportingInstance"),
    ] {
        let new_value = obj.get(field).filter(|v| !v.is_null());
        let old_value = old.get(field).filter(|v| !v.is_null());
        if new_value != old_value {
            errs.push(FieldError::invalid(
                internal,
                render::go_value(new_value.unwrap_or(&Value::Null)),
                "field is immutable",
            ));
        }
    }
}

/// `ValidateLeaseSpec`.
fn lease_spec(obj: &Value, errs: &mut Vec<FieldError>) {
    if let Some(d) = int(obj, "/spec/leaseDurationSeconds")
        && d <= 0
    {
        errs.push(FieldError::invalid(
            "spec.leaseDurationSeconds",
            d.to_string(),
            "must be greater than 0",
        ));
    }
    non_negative(obj, "/spec/leaseTransitions", "spec.leaseTransitions", errs);
    let strategy = text(obj, "/spec/strategy");
    if obj.pointer("/spec/strategy").is_some_and(|s| !s.is_null())
        && strategy != "OldestEmulationVersion"
    {
        errs.push(FieldError::new(
            FieldErrorType::NotSupported,
            "spec.strategy",
            Some(render::quote(strategy)),
            "supported values: \"OldestEmulationVersion\"",
        ));
    }
    if !text(obj, "/spec/preferredHolder").is_empty() && strategy.is_empty() {
        errs.push(FieldError::forbidden(
            "spec.preferredHolder",
            "may only be specified if `strategy` is defined",
        ));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use serde_json::json;

    #[test]
    fn a_selector_selects_by_labels_and_expressions() {
        let labels = json!({"app": "web", "tier": "fe"});
        assert!(selects(
            &json!({"matchLabels": {"app": "web"}}),
            Some(&labels)
        ));
        assert!(!selects(
            &json!({"matchLabels": {"app": "db"}}),
            Some(&labels)
        ));
        let expr =
            json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe"]}]});
        assert!(selects(&expr, Some(&labels)));
    }

    #[test]
    fn a_deployment_needs_a_selector_matching_its_template_and_containers() {
        let mut errs = Vec::new();
        let d = json!({"spec": {"replicas": -1, "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "b"}}, "spec": {}}}});
        deployment_spec(&d, &mut errs);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.replicas",
                "spec.template.metadata.labels",
                "spec.template.spec.containers"
            ]
        );
    }
}
