//! Values in messages, written the way Go's `field.Error` prints them: numbers and
//! booleans with `%v`, strings with `%q`, `null` as `"null"`, and maps and lists with
//! `%#v` (`map[string]interface {}{"a":"b"}`), so messages read like a real API server's.

use serde_json::Value;

/// Go's `%q` of a string.
pub fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("\"{text}\""))
}

/// Go's `%v` of a float64: shortest form, integral values without a fraction.
pub fn go_float(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{f:.0}")
    } else if f.is_finite() && (f.abs() >= 1e21 || (f != 0.0 && f.abs() < 1e-4)) {
        let text = format!("{f:e}");
        // Rust writes 1e21, Go 1e+21.
        match text.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => text,
        }
    } else {
        format!("{f}")
    }
}

/// A JSON number as Go prints the int64 or float64 it decodes to.
pub fn number(n: &serde_json::Number) -> String {
    match n.as_i64() {
        Some(i) => i.to_string(),
        None => go_float(n.as_f64().unwrap_or(f64::NAN)),
    }
}

/// The bad value of a field error (`ErrorBody`'s rules).
pub fn go_value(value: &Value) -> String {
    match value {
        Value::Null => quote("null"),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number(n),
        Value::String(s) => quote(s),
        Value::Array(_) | Value::Object(_) => sharp_v(value),
    }
}

/// Go's `%#v` of a decoded JSON value.
pub fn sharp_v(value: &Value) -> String {
    match value {
        Value::Null => "interface {}(nil)".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number(n),
        Value::String(s) => quote(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(sharp_v).collect();
            format!("[]interface {{}}{{{}}}", inner.join(", "))
        }
        Value::Object(map) => {
            // Go's fmt prints map keys sorted.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        quote(k),
                        map.get(*k).map(sharp_v).unwrap_or_default()
                    )
                })
                .collect();
            format!("map[string]interface {{}}{{{}}}", inner.join(", "))
        }
    }
}

/// Go's `%#v` of a `map[string]string` (labels), as in "selector does not match" errors.
pub fn string_map(value: Option<&Value>) -> String {
    let map = value.and_then(Value::as_object);
    let mut pairs: Vec<(String, String)> = map
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    pairs.sort();
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}:{}", quote(k), quote(v)))
        .collect();
    format!("map[string]string{{{}}}", inner.join(", "))
}

/// A label selector as Go prints a `metav1.LabelSelector` with `%#v`.
pub fn label_selector(selector: Option<&Value>) -> String {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return "(*v1.LabelSelector)(nil)".to_string();
    };
    let labels = match selector.get("matchLabels") {
        Some(labels) if labels.is_object() => string_map(Some(labels)),
        _ => "map[string]string(nil)".to_string(),
    };
    let expressions = match selector.get("matchExpressions").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => {
            let inner: Vec<String> = list
                .iter()
                .map(|e| {
                    let text =
                        |f: &str| quote(e.get(f).and_then(Value::as_str).unwrap_or_default());
                    let values: Vec<String> = e
                        .get("values")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|v| quote(v.as_str().unwrap_or_default()))
                        .collect();
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:[]string{{{}}}}}",
                        text("key"),
                        text("operator"),
                        values.join(", ")
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", inner.join(", "))
        }
        _ => "[]v1.LabelSelectorRequirement(nil)".to_string(),
    };
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{expressions}}}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_printed_like_go() {
        assert_eq!(go_value(&json!(-1)), "-1");
        assert_eq!(go_value(&json!(1.5)), "1.5");
        assert_eq!(go_value(&json!(3.0)), "3");
        assert_eq!(go_value(&json!("DE")), "\"DE\"");
        assert_eq!(go_value(&json!(null)), "\"null\"");
        assert_eq!(
            go_value(&json!({"type": "Ready", "n": 1})),
            "map[string]interface {}{\"n\":1, \"type\":\"Ready\"}"
        );
        assert_eq!(
            label_selector(Some(&json!({"matchLabels": {"app": "web"}}))),
            "v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
        );
    }
}
