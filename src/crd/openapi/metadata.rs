//! Object metadata is not described by a CRD's schema, yet the API server refuses a bad name
//! or namespace all the same: its rules, in its words, live here.

use super::json_type::type_name;
use super::quoting::shown_str;
use serde_json::Value;

/// `metadata.name` must be set and a DNS subdomain; `metadata.namespace`, when the kind is
/// namespaced and one is given, a DNS label.
pub fn validate_metadata(metadata: Option<&Value>, namespaced: bool) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(metadata) = metadata.filter(|m| !m.is_null()) else {
        return vec!["metadata.name: Required value: name or generateName is required".to_owned()];
    };
    let Some(metadata) = metadata.as_object() else {
        let actual = type_name(metadata);
        return vec![format!(
            "metadata: Invalid value: \"{actual}\": metadata in body must be of type object: \"{actual}\""
        )];
    };
    match metadata.get("name") {
        None | Some(Value::Null) => {
            errors.push("metadata.name: Required value: name or generateName is required".into());
        }
        Some(Value::String(name)) => {
            if let Some(why) = dns_subdomain(name) {
                errors.push(format!(
                    "metadata.name: Invalid value: {}: {why}",
                    shown_str(name)
                ));
            }
        }
        Some(other) => errors.push(format!(
            "metadata.name: Invalid value: \"{0}\": metadata.name in body must be of type string: \"{0}\"",
            type_name(other)
        )),
    }
    match metadata.get("namespace") {
        None | Some(Value::Null) => {}
        Some(Value::String(namespace)) if namespaced => {
            if let Some(why) = dns_label(namespace) {
                errors.push(format!(
                    "metadata.namespace: Invalid value: {}: {why}",
                    shown_str(namespace)
                ));
            }
        }
        Some(Value::String(_)) => {}
        Some(other) => errors.push(format!(
            "metadata.namespace: Invalid value: \"{0}\": metadata.namespace in body must be of type string: \"{0}\"",
            type_name(other)
        )),
    }
    errors
}

/// Why `name` is not an RFC 1123 subdomain (the API server's wording), if it is not.
fn dns_subdomain(name: &str) -> Option<String> {
    if name.len() > 253 {
        return Some("must be no more than 253 characters".to_owned());
    }
    let label_ok = |label: &str| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
            && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    };
    if name.split('.').all(label_ok) {
        None
    } else {
        Some("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_owned())
    }
}

/// Why `name` is not an RFC 1123 label (the API server's wording), if it is not.
fn dns_label(name: &str) -> Option<String> {
    if name.len() > 63 {
        return Some("must be no more than 63 characters".to_owned());
    }
    let bytes = name.as_bytes();
    let ok = bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if ok {
        None
    } else {
        Some("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_owned())
    }
}
