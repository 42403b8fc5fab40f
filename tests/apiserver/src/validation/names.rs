//! Name, label, annotation and metadata rules, ported from upstream's
//! `apimachinery/pkg/util/validation` (`IsDNS1123Subdomain`, `IsQualifiedName`, …) and
//! `apimachinery/pkg/api/validation` (`ValidateObjectMetaAccessor`, `NameIsDNSSubdomain`,
//! `maskTrailingDash`, `ValidateOwnerReferences`, …). Messages are upstream's, word for word.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::render;
use crate::error::{FieldError, FieldErrorType};

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const CONFIG_MAP_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_MAP_KEY_MSG: &str =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
/// `TotalAnnotationSizeLimitB`.
const ANNOTATIONS_LIMIT: usize = 256 * 1024;

fn anchored(fmt: &str) -> Option<Regex> {
    Regex::new(&format!("^(?:{fmt})$")).ok()
}

fn is_match(re: &LazyLock<Option<Regex>>, value: &str) -> bool {
    re.as_ref().is_some_and(|re| re.is_match(value))
}

static DNS1123_LABEL: LazyLock<Option<Regex>> = LazyLock::new(|| anchored(DNS1123_LABEL_FMT));
static DNS1123_SUBDOMAIN: LazyLock<Option<Regex>> =
    LazyLock::new(|| anchored(&format!("{DNS1123_LABEL_FMT}(\\.{DNS1123_LABEL_FMT})*")));
static DNS1035_LABEL: LazyLock<Option<Regex>> = LazyLock::new(|| anchored(DNS1035_LABEL_FMT));
static QUALIFIED_NAME: LazyLock<Option<Regex>> = LazyLock::new(|| anchored(QUALIFIED_NAME_FMT));
static LABEL_VALUE: LazyLock<Option<Regex>> = LazyLock::new(|| anchored(LABEL_VALUE_FMT));
static CONFIG_MAP_KEY: LazyLock<Option<Regex>> = LazyLock::new(|| anchored(CONFIG_MAP_KEY_FMT));

/// Upstream's `RegexError`: the message, the examples and the regex.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{example}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

pub fn dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !is_match(&DNS1123_LABEL, value) {
        if is_match(&DNS1123_SUBDOMAIN, value) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_MSG,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

pub fn dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !is_match(&DNS1123_SUBDOMAIN, value) {
        let fmt = format!("{DNS1123_LABEL_FMT}(\\.{DNS1123_LABEL_FMT})*");
        errs.push(regex_error(DNS1123_SUBDOMAIN_MSG, &fmt, &["example.com"]));
    }
    errs
}

pub fn dns1035_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !is_match(&DNS1035_LABEL, value) {
        errs.push(regex_error(
            DNS1035_LABEL_MSG,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// `IsQualifiedName`: label keys, annotation keys, finalizers.
pub fn qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !is_match(&QUALIFIED_NAME, name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

pub fn label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !is_match(&LABEL_VALUE, value) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// `IsConfigMapKey`: keys of ConfigMap and Secret data.
pub fn config_map_key(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !is_match(&CONFIG_MAP_KEY, value) {
        errs.push(regex_error(
            CONFIG_MAP_KEY_MSG,
            CONFIG_MAP_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    if value == "." {
        errs.push("must not be '.'".to_string());
    } else if value == ".." {
        errs.push("must not be '..'".to_string());
    } else if value.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

/// How a kind's object names are validated (upstream's `ValidateNameFunc`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// `NameIsDNSSubdomain`, most kinds.
    Subdomain,
    /// `NameIsDNSLabel`: Namespaces.
    Label,
    /// `NameIsDNS1035Label`: Services.
    Dns1035,
    /// `path.ValidatePathSegmentName`: RBAC objects, embedded resources.
    PathSegment,
}

/// `maskTrailingDash`, bug for bug: a generateName's trailing dash is replaced, and the
/// character before it dropped, before the name rule is applied.
fn mask_trailing_dash(name: &str) -> String {
    match name.strip_suffix('-') {
        Some(_) if name.len() >= 2 => {
            let mut cut = name.len() - 2;
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            format!("{}a", name.get(..cut).unwrap_or_default())
        }
        Some(_) => "a".to_string(),
        None => name.to_string(),
    }
}

pub fn check_name(rule: NameRule, name: &str, prefix: bool) -> Vec<String> {
    if rule == NameRule::PathSegment {
        return path_segment_name(name, prefix);
    }
    let name = if prefix {
        mask_trailing_dash(name)
    } else {
        name.to_string()
    };
    match rule {
        NameRule::Subdomain => dns1123_subdomain(&name),
        NameRule::Label => dns1123_label(&name),
        NameRule::Dns1035 => dns1035_label(&name),
        NameRule::PathSegment => Vec::new(),
    }
}

/// `path.IsValidPathSegmentName` (and its prefix variant).
pub fn path_segment_name(name: &str, prefix: bool) -> Vec<String> {
    let mut errs = Vec::new();
    if !prefix && (name == "." || name == "..") {
        errs.push(format!("may not be '{name}'"));
        return errs;
    }
    for bad in ["/", "%"] {
        if name.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

fn meta_str<'a>(meta: &'a Map<String, Value>, field: &str) -> &'a str {
    meta.get(field).and_then(Value::as_str).unwrap_or_default()
}

fn string_map(meta: &Map<String, Value>, field: &str) -> Vec<(String, String)> {
    let map = meta.get(field).and_then(Value::as_object);
    map.into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

/// `ValidateLabels` at `path` (e.g. `metadata.labels`).
pub fn validate_labels(labels: &[(String, String)], path: &str, errs: &mut Vec<FieldError>) {
    for (key, value) in labels {
        for msg in qualified_name(key) {
            errs.push(FieldError::invalid(path, render::quote(key), msg));
        }
        for msg in label_value(value) {
            errs.push(FieldError::invalid(path, render::quote(value), msg));
        }
    }
}

/// `ValidateAnnotations` at `path`.
pub fn validate_annotations(
    annotations: &[(String, String)],
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    for (key, _) in annotations {
        for msg in qualified_name(&key.to_lowercase()) {
            errs.push(FieldError::invalid(path, render::quote(key), msg));
        }
    }
    let size: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > ANNOTATIONS_LIMIT {
        errs.push(FieldError::new(
            FieldErrorType::TooLong,
            path,
            None,
            format!("may not be more than {ANNOTATIONS_LIMIT} bytes"),
        ));
    }
}

fn validate_owner_references(meta: &Map<String, Value>, errs: &mut Vec<FieldError>) {
    let path = "metadata.ownerReferences";
    let refs = meta.get("ownerReferences").and_then(Value::as_array);
    let mut first_controller: Option<String> = None;
    for owner in refs.into_iter().flatten() {
        let text = |f: &str| owner.get(f).and_then(Value::as_str).unwrap_or_default();
        let api_version = text("apiVersion");
        let version = api_version.rsplit('/').next().unwrap_or_default();
        if version.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.apiVersion"),
                render::quote(api_version),
                "version must not be empty",
            ));
        }
        for (field, what) in [("kind", "kind"), ("name", "name"), ("uid", "uid")] {
            if text(field).is_empty() {
                errs.push(FieldError::invalid(
                    format!("{path}.{field}"),
                    render::quote(""),
                    format!("{what} must not be empty"),
                ));
            }
        }
        if version == "v1" && !api_version.contains('/') && text("kind") == "Event" {
            errs.push(FieldError::invalid(
                path,
                render::go_value(owner),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if owner.get("controller") == Some(&Value::Bool(true)) {
            let current = format!("{}/{}", text("kind"), text("name"));
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    path,
                    render::go_value(meta.get("ownerReferences").unwrap_or(&Value::Null)),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"
                    ),
                )),
                None => first_controller = Some(current),
            }
        }
    }
}

fn validate_finalizers(meta: &Map<String, Value>, errs: &mut Vec<FieldError>) {
    let path = "metadata.finalizers";
    let finalizers: Vec<&str> = meta
        .get("finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for finalizer in &finalizers {
        for msg in qualified_name(finalizer) {
            errs.push(FieldError::invalid(path, render::quote(finalizer), msg));
        }
    }
    if finalizers.contains(&"orphan") && finalizers.contains(&"foregroundDeletion") {
        let listed: Vec<Value> = finalizers.iter().map(|f| Value::from(*f)).collect();
        errs.push(FieldError::invalid(
            path,
            render::go_value(&Value::Array(listed)),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
}

/// `ValidateObjectMetaAccessor` (create) or the label/annotation/owner part of
/// `ValidateObjectMetaAccessorUpdate` (update; the store keeps name, namespace, uid,
/// timestamps and generation as they were, so their immutability cannot be violated).
pub fn validate_object_meta(
    obj: &Value,
    namespaced: bool,
    rule: NameRule,
    update: bool,
    errs: &mut Vec<FieldError>,
) {
    let empty = Map::new();
    let meta = obj
        .get("metadata")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if !update {
        let generate_name = meta_str(meta, "generateName");
        if !generate_name.is_empty() {
            for msg in check_name(rule, generate_name, true) {
                errs.push(FieldError::invalid(
                    "metadata.generateName",
                    render::quote(generate_name),
                    msg,
                ));
            }
        }
        let name = meta_str(meta, "name");
        if name.is_empty() {
            errs.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        } else {
            for msg in check_name(rule, name, false) {
                errs.push(FieldError::invalid(
                    "metadata.name",
                    render::quote(name),
                    msg,
                ));
            }
        }
        let namespace = meta_str(meta, "namespace");
        if namespaced {
            if namespace.is_empty() {
                errs.push(FieldError::required("metadata.namespace", ""));
            } else {
                for msg in dns1123_label(namespace) {
                    errs.push(FieldError::invalid(
                        "metadata.namespace",
                        render::quote(namespace),
                        msg,
                    ));
                }
            }
        } else if !namespace.is_empty() {
            errs.push(FieldError::forbidden(
                "metadata.namespace",
                "not allowed on this type",
            ));
        }
        if let Some(generation) = meta.get("generation").and_then(Value::as_i64)
            && generation < 0
        {
            errs.push(FieldError::invalid(
                "metadata.generation",
                generation.to_string(),
                "must be greater than or equal to 0",
            ));
        }
    }
    validate_labels(&string_map(meta, "labels"), "metadata.labels", errs);
    validate_annotations(
        &string_map(meta, "annotations"),
        "metadata.annotations",
        errs,
    );
    validate_owner_references(meta, errs);
    if !update {
        validate_finalizers(meta, errs);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn subdomains_labels_and_qualified_names_follow_upstream() {
        assert!(dns1123_subdomain("a.b-c").is_empty());
        assert_eq!(dns1123_subdomain("Bad_Name").len(), 1);
        assert_eq!(dns1123_label("a.b"), vec!["must not contain dots"]);
        assert!(dns1123_label(&"a".repeat(64))[0].contains("no more than 63"));
        assert!(qualified_name("example.com/My_Name.1").is_empty());
        assert!(qualified_name("a/b/c")[0].starts_with("a qualified name"));
        assert!(qualified_name("/x")[0].starts_with("prefix part must be non-empty"));
        assert!(label_value("").is_empty());
        assert!(!label_value("-x").is_empty());
        assert_eq!(
            regex_error("m", "f", &["a", "b"]),
            "m (e.g. 'a',  or 'b', regex used for validation is 'f')"
        );
    }

    #[test]
    fn a_generate_name_may_end_in_a_dash() {
        assert!(check_name(NameRule::Subdomain, "web-", true).is_empty());
        assert!(!check_name(NameRule::Subdomain, "web-", false).is_empty());
        assert_eq!(mask_trailing_dash("ab-"), "aa");
    }
}
