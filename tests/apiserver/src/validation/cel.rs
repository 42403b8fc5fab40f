//! `x-kubernetes-validations`: CEL rules at every schema node, evaluated like upstream's
//! `apiextensions-apiserver/pkg/apiserver/schema/cel/validation.go`.
//!
//! Expressions are compiled and run by the `cel` crate with the Kubernetes function
//! libraries from `kube-cel`, but the walk is our own, because `kube_cel::Validator`
//! differs from upstream where it matters here:
//! * it correlates `oldSelf` of list items by index; upstream only by the keys of
//!   `x-kubernetes-list-type: map` lists (items of other lists have no `oldSelf`, so
//!   their transition rules do not run);
//! * with `optionalOldSelf: true` it binds `oldSelf` to `null`; upstream binds an
//!   optional (`optional.none()` on create, `optional.of(old)` on update);
//! * it escapes every `_` in field names to `__`; upstream only `__`
//!   (to `__underscores__`), plus `.`, `-`, `/` and CEL keywords;
//! * it reports `fieldPath` and messages in its own format, and has no ratcheting.
//!
//! Not modelled: the cost budget, and the static type checks upstream does when a CRD is
//! written (a rule that would not compile there is reported here when it runs).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use kube_cel::KubeCelExt;
use kube_cel::cel::objects::{Key, Map as CelMap, OptionalValue};
use kube_cel::cel::{Context, Program, Value as Cel};
use serde_json::Value;

use super::render::{self, quote};
use super::schema::{self, Seg, field_path};
use crate::error::{FieldError, FieldErrorType};

thread_local! {
    static BASE: Context<'static> = {
        let mut ctx = Context::default();
        ctx.register_all();
        ctx
    };
    static PROGRAMS: RefCell<HashMap<String, Rc<Result<Program, String>>>> = RefCell::new(HashMap::new());
}

fn compiled(source: &str) -> Rc<Result<Program, String>> {
    PROGRAMS.with(|cache| {
        cache
            .borrow_mut()
            .entry(source.to_string())
            .or_insert_with(|| Rc::new(Program::compile(source).map_err(|e| e.to_string())))
            .clone()
    })
}

/// Runs `source` with the given variables.
fn run(source: &str, vars: &[(&str, Cel)]) -> Result<Cel, String> {
    let program = compiled(source);
    let program = program.as_ref().as_ref().map_err(Clone::clone)?;
    BASE.with(|base| {
        let mut scope = base.new_inner_scope();
        for (name, value) in vars {
            scope.add_variable_from_value(*name, value.clone());
        }
        program.execute(&scope).map_err(|e| e.to_string())
    })
}

const RESERVED: [&str; 21] = [
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// Upstream's `cel.Escape`: the CEL name of a field, or `None` if it has none (such
/// fields are invisible to rules).
pub fn escape(ident: &str) -> Option<String> {
    if ident.is_empty() || ident.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    if RESERVED.contains(&ident) {
        return Some(format!("__{ident}__"));
    }
    let mut out = String::with_capacity(ident.len());
    let mut rest = ident;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("__") {
            out.push_str("__underscores__");
            rest = after;
            continue;
        }
        match c {
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c if c.is_ascii_alphanumeric() || c == '_' => out.push(c),
            _ => return None,
        }
        rest = rest.get(c.len_utf8()..).unwrap_or_default();
    }
    Some(out)
}

fn cel_string(s: &str) -> Cel {
    Cel::String(Arc::new(s.to_string()))
}

/// The CEL value of a JSON value, typed by its schema as upstream's `UnstructuredToVal`.
pub fn to_cel(value: &Value, schema: Option<&Value>, resource_root: bool) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Cel::Int(i),
            None => Cel::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => {
            let format = schema
                .filter(|s| !schema::int_or_string(s))
                .and_then(|s| s.get("format"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let converted = match format {
                "date-time" => run("timestamp(s)", &[("s", cel_string(s))]).ok(),
                "date" => run("timestamp(s + 'T00:00:00Z')", &[("s", cel_string(s))]).ok(),
                "duration" => run("duration(s)", &[("s", cel_string(s))]).ok(),
                "byte" => super::formats::decode_base64(s).map(|b| Cel::Bytes(Arc::new(b))),
                _ => None,
            };
            converted.unwrap_or_else(|| cel_string(s))
        }
        Value::Array(list) => {
            let item_schema = schema.and_then(schema::items);
            let embedded = item_schema.is_some_and(schema::embedded);
            Cel::List(Arc::new(
                list.iter()
                    .map(|v| to_cel(v, item_schema, embedded))
                    .collect(),
            ))
        }
        Value::Object(map) => {
            let is_map = schema.is_some_and(|s| {
                s.get("additionalProperties")
                    .is_some_and(|a| a != &Value::Bool(false))
                    && schema::props(s).is_none()
            });
            let mut out = HashMap::with_capacity(map.len());
            for (k, v) in map {
                let child = schema.and_then(|s| schema::child_schema(s, k));
                let converted = if resource_root && k == "metadata" {
                    // Rules see only metadata.name and metadata.generateName.
                    let mut meta = serde_json::Map::new();
                    for field in ["name", "generateName"] {
                        if let Some(value) = v.get(field) {
                            meta.insert(field.to_string(), value.clone());
                        }
                    }
                    to_cel(&Value::Object(meta), None, false)
                } else {
                    to_cel(v, child, child.is_some_and(schema::embedded))
                };
                let key = if is_map { Some(k.clone()) } else { escape(k) };
                if let Some(key) = key {
                    out.insert(Key::String(Arc::new(key)), converted);
                }
            }
            Cel::Map(CelMap { map: Arc::new(out) })
        }
    }
}

/// A schema node's type as upstream names it in rule errors (`"object"`).
fn schema_type(schema: &Value) -> String {
    let t = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    quote(t)
}

/// A rule's `fieldPath` (`.a.b`, `['x.y']`) appended to `path`, upstream's
/// `ValidFieldPath` + `Child`.
fn rule_field_path(node: &Value, field_path_text: &str, path: &[Seg]) -> Option<String> {
    let mut out: Vec<Seg> = path.to_vec();
    let mut schema = node;
    let mut rest = field_path_text;
    while !rest.is_empty() {
        let name;
        if let Some(after) = rest.strip_prefix("['") {
            let end = after.find("']")?;
            name = after.get(..end)?.replace("\\'", "'");
            rest = after.get(end + 2..)?;
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            name = after.get(..end)?.to_string();
            rest = after.get(end..)?;
        } else {
            return None;
        }
        if let Some(prop) = schema::props(schema).and_then(|p| p.get(&name)) {
            out.push(Seg::Field(name));
            schema = prop;
        } else if let Some(additional) = schema::additional(schema) {
            out.push(Seg::Key(name));
            schema = additional;
        } else {
            return None;
        }
    }
    Some(field_path(&out))
}

/// The nearest correlated node above: what an uncorrelated node's errors ratchet on.
#[derive(Clone, Copy)]
struct Correlated<'a> {
    schema: &'a Value,
    new: &'a Value,
    old: &'a Value,
}

impl Correlated<'_> {
    fn unchanged(&self) -> bool {
        schema::correlated_equal(self.schema, self.new, self.old)
    }
}

/// Evaluates every rule in `schema` against `new` (with `old` on updates).
pub fn validate(root_schema: &Value, new: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    node(
        root_schema,
        new,
        old,
        None,
        true,
        &mut Vec::new(),
        &mut errs,
    );
    errs
}

fn node<'a>(
    schema: &'a Value,
    value: &'a Value,
    old: Option<&'a Value>,
    parent: Option<Correlated<'a>>,
    resource_root: bool,
    path: &mut Vec<Seg>,
    errs: &mut Vec<FieldError>,
) {
    // Rules only see non-null values; nullable fields are checked from their parent.
    if value.is_null() {
        return;
    }
    let current = old.map(|old| Correlated {
        schema,
        new: value,
        old,
    });
    let ratchet_on = current.or(parent);
    rules(
        schema,
        schema,
        value,
        old,
        ratchet_on,
        resource_root,
        path,
        errs,
    );
    for branch in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        // Upstream does not ratchet allOf rules on the node itself, only on its parent.
        rules(
            branch,
            schema,
            value,
            old,
            parent,
            resource_root,
            path,
            errs,
        );
    }
    let child_parent = current.or(parent);
    match value {
        Value::Array(list) => {
            if let Some(item_schema) = schema::items(schema) {
                for (i, item) in list.iter().enumerate() {
                    let old_item = schema::old_item(schema, old, item);
                    path.push(Seg::Index(i));
                    let embedded = schema::embedded(item_schema);
                    node(
                        item_schema,
                        item,
                        old_item,
                        child_parent,
                        embedded,
                        path,
                        errs,
                    );
                    path.pop();
                }
            }
        }
        Value::Object(map) => {
            let correlatable = matches!(
                schema.get("x-kubernetes-map-type").and_then(Value::as_str),
                None | Some("granular" | "atomic")
            );
            let old_of = |k: &str| {
                if correlatable {
                    schema::old_field(schema, old, k)
                } else {
                    None
                }
            };
            if let Some(additional) = schema::additional(schema) {
                for (k, v) in map {
                    path.push(Seg::Key(k.clone()));
                    let embedded = schema::embedded(additional);
                    node(additional, v, old_of(k), child_parent, embedded, path, errs);
                    path.pop();
                }
            }
            for (k, v) in map {
                if let Some(prop) = schema::props(schema).and_then(|p| p.get(k)) {
                    path.push(Seg::Field(k.clone()));
                    node(
                        prop,
                        v,
                        old_of(k),
                        child_parent,
                        schema::embedded(prop),
                        path,
                        errs,
                    );
                    path.pop();
                }
            }
        }
        _ => {}
    }
}

#[allow(clippy::too_many_arguments)]
fn rules(
    rules_schema: &Value,
    node_schema: &Value,
    value: &Value,
    old: Option<&Value>,
    ratchet_on: Option<Correlated<'_>>,
    resource_root: bool,
    path: &[Seg],
    errs: &mut Vec<FieldError>,
) {
    let Some(list) = rules_schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    else {
        return;
    };
    let here = field_path(path);
    let type_name = schema_type(node_schema);
    let mut self_value: Option<Cel> = None;
    let mut old_value: Option<Option<Cel>> = None;
    for rule in list {
        let text = |f: &str| rule.get(f).and_then(Value::as_str).unwrap_or_default();
        let source = text("rule");
        if source.trim().is_empty() {
            continue;
        }
        let message = text("message").trim().to_string();
        let error_string = if message.is_empty() {
            source.trim().to_string()
        } else {
            message.clone()
        };
        let program = compiled(source);
        let program = match program.as_ref() {
            Ok(program) => program,
            Err(err) => {
                let detail = format!("rule compile error: {err}");
                errs.push(FieldError::invalid(here.clone(), type_name.clone(), detail));
                continue;
            }
        };
        let transition = program.references().has_variable("oldSelf");
        let optional_old_self = rule.get("optionalOldSelf").and_then(Value::as_bool) == Some(true);
        if transition && old.is_none() && !optional_old_self {
            continue;
        }
        let self_cel = self_value
            .get_or_insert_with(|| to_cel(value, Some(node_schema), resource_root))
            .clone();
        let old_cel = old_value
            .get_or_insert_with(|| old.map(|o| to_cel(o, Some(node_schema), resource_root)))
            .clone();
        let mut vars = vec![("self", self_cel)];
        let plain_old = old_cel.clone();
        match (optional_old_self, old_cel) {
            (true, Some(old)) => {
                vars.push(("oldSelf", Cel::Opaque(Arc::new(OptionalValue::of(old)))))
            }
            (true, None) => vars.push(("oldSelf", Cel::Opaque(Arc::new(OptionalValue::none())))),
            (false, Some(old)) => vars.push(("oldSelf", old)),
            (false, None) => {}
        }
        let result = BASE.with(|base| {
            let mut scope = base.new_inner_scope();
            for (name, value) in &vars {
                scope.add_variable_from_value(*name, value.clone());
            }
            program.execute(&scope).map_err(|e| e.to_string())
        });
        match result {
            Ok(Cel::Bool(true)) => continue,
            Ok(Cel::Bool(false)) => {}
            Ok(other) => {
                let detail = format!(
                    "rule did not evaluate to a bool ({:?}) evaluating rule: {error_string}",
                    other.type_of()
                );
                errs.push(FieldError::invalid(here.clone(), type_name.clone(), detail));
                continue;
            }
            Err(err) => {
                let detail = if err.starts_with("No such overload")
                    || err.contains("no such overload")
                {
                    format!(
                        "'{err}': call arguments did not match a supported operator, function or macro signature for rule: {error_string}"
                    )
                } else {
                    format!("{err} evaluating rule: {error_string}")
                };
                errs.push(FieldError::invalid(here.clone(), type_name.clone(), detail));
                continue;
            }
        }
        let field = match rule
            .get("fieldPath")
            .and_then(Value::as_str)
            .filter(|f| !f.is_empty())
        {
            Some(fp) => rule_field_path(node_schema, fp, path).unwrap_or_else(|| here.clone()),
            None => here.clone(),
        };
        let mut detail = String::new();
        let message_expression = text("messageExpression");
        if !message_expression.is_empty() {
            let mut message_vars = vec![(
                "self",
                vars.first().map(|(_, v)| v.clone()).unwrap_or(Cel::Null),
            )];
            if let Some(old) = plain_old {
                message_vars.push(("oldSelf", old));
            }
            if let Ok(Cel::String(s)) = run(message_expression, &message_vars) {
                let trimmed = s.trim();
                if !trimmed.is_empty() && !trimmed.contains('\n') && trimmed.len() <= 5 * 1024 {
                    detail = trimmed.to_string();
                }
            }
        }
        if detail.is_empty() {
            detail = if message.is_empty() {
                format!("failed rule: {}", source.trim())
            } else {
                message
            };
        }
        let shown = match node_schema.get("type").and_then(Value::as_str) {
            Some("object" | "array") => None,
            _ => Some(render::go_value(value)),
        };
        let err = match rule.get("reason").and_then(Value::as_str) {
            Some("FieldValueForbidden") => FieldError::forbidden(field, detail),
            Some("FieldValueRequired") => FieldError::required(field, detail),
            Some("FieldValueDuplicate") => {
                FieldError::new(FieldErrorType::Duplicate, field, shown, "")
            }
            _ => FieldError::new(FieldErrorType::Invalid, field, shown, detail),
        };
        // Failures of rules without oldSelf ratchet: an unchanged value that breaks a
        // rule added later is let through.
        if !transition && ratchet_on.is_some_and(|c| c.unchanged()) {
            continue;
        }
        errs.push(err);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use serde_json::json;

    #[test]
    fn escaping_follows_upstream() {
        assert_eq!(escape("my_field").as_deref(), Some("my_field"));
        assert_eq!(escape("a__b").as_deref(), Some("a__underscores__b"));
        assert_eq!(
            escape("x-y.z/w").as_deref(),
            Some("x__dash__y__dot__z__slash__w")
        );
        assert_eq!(escape("namespace").as_deref(), Some("__namespace__"));
        assert_eq!(escape("1abc"), None);
        assert_eq!(escape("a b"), None);
    }

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "items": {"type": "array", "items": {"type": "object", "properties": {
                "v": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "immutable"}]}
            }}},
            "keyed": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k"],
                "items": {"type": "object", "properties": {
                    "k": {"type": "string"},
                    "v": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "immutable"}]}
                }}},
            "count": {"type": "integer", "x-kubernetes-validations": [
                {"rule": "!oldSelf.hasValue() || self >= oldSelf.value()", "optionalOldSelf": true, "message": "no decrease"},
                {"rule": "self < 10", "messageExpression": "'too big: ' + string(self)", "fieldPath": ""}
            ]}
        }})
    }

    #[test]
    fn transition_rules_only_correlate_map_list_items() {
        let old = json!({"items": [{"v": "a"}], "keyed": [{"k": "x", "v": "a"}]});
        let new = json!({"items": [{"v": "b"}], "keyed": [{"k": "x", "v": "b"}]});
        let errs = validate(&schema(), &new, Some(&old));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(
            errs[0].to_string(),
            "keyed[0].v: Invalid value: \"b\": immutable"
        );
    }

    #[test]
    fn optional_old_self_rules_run_on_create_and_message_expressions_are_used() {
        assert!(validate(&schema(), &json!({"count": 3}), None).is_empty());
        let errs = validate(&schema(), &json!({"count": 2}), Some(&json!({"count": 3})));
        assert_eq!(errs[0].detail, "no decrease");
        let errs = validate(&schema(), &json!({"count": 12}), None);
        assert_eq!(errs[0].detail, "too big: 12");
    }
}
