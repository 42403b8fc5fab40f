//! The static cost check kube-apiserver applies to a CustomResourceDefinition's
//! `x-kubernetes-validations` rules before it accepts the CRD, reproduced so that the test
//! server rejects (422, the same causes) what a real API server rejects.
//!
//! Three upstream pieces are ported, each named where it is implemented:
//!
//! * the CEL type and size bounds of every schema node: `SchemaDeclType` and its
//!   `estimateMax*` helpers in `k8s.io/apiserver/pkg/cel/common/schemas.go`, the `DeclType`
//!   constructors in `k8s.io/apiserver/pkg/cel/types.go`, the limits in
//!   `k8s.io/apiserver/pkg/cel/limits.go` and `k8s.io/apiserver/pkg/apis/cel/config.go`;
//! * the estimate of one expression: the cel-go static estimator (`checker/cost.go`, the
//!   version vendored by Kubernetes) over the size estimator of
//!   `k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel/compilation.go` and the library
//!   costs of `k8s.io/apiserver/pkg/cel/library/cost.go`, with the base environment's
//!   `PresenceTestHasCost(false)` (`k8s.io/apiserver/pkg/cel/environment/base.go`);
//! * the CRD walk: `ValidateCustomResourceDefinitionOpenAPISchema`,
//!   `validateCustomResourceDefinitionValidation`, `getExpressionCost` and
//!   `getCostErrorMessage` in `k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation/validation.go`
//!   and the cardinality and total tracking of `CELSchemaContext`/`TotalCost` in
//!   `.../validation/cel_validation.go`.
//!
//! Where kube-apiserver v1.32 (the server these numbers were checked against) and newer
//! releases differ, v1.32 is followed; see [`schema_decl`].
//!
//! The estimator only models a subset of CEL (the operators, macros, `has()`, `size()`, the
//! string functions `contains`/`startsWith`/`endsWith`/`matches`/`lowerAscii`/`upperAscii`/
//! `trim`, and scalar conversions). Anything else is reported as [`CostErrorKind::Unsupported`]
//! naming the construct: the check fails closed rather than guessing a cost.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::rc::Rc;

use cel::common::ast::{CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr, LiteralValue};
use cel::common::ast::{ListExpr, MapExpr, SelectExpr, operators};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::ApiError;

/// Largest estimated cost of one expression (times its cardinality): `StaticEstimatedCostLimit`
/// in `apiextensions/validation/validation.go`.
pub const STATIC_ESTIMATED_COST_LIMIT: u64 = 10_000_000;
/// Largest estimated total of all rules of one OpenAPIv3 schema: `StaticEstimatedCRDCostLimit`
/// in `apiextensions/validation/validation.go`.
pub const STATIC_ESTIMATED_CRD_COST_LIMIT: u64 = 100_000_000;
/// Runtime cost limit of one evaluation (`PerCallLimit`, `k8s.io/apiserver/pkg/apis/cel/config.go`).
/// Not used by the static check; here for reference.
pub const PER_CALL_LIMIT: u64 = 1_000_000;
/// Runtime cost budget of all rules for one object (`RuntimeCELCostBudget`, same file).
/// Not used by the static check; here for reference.
pub const RUNTIME_CEL_COST_BUDGET: u64 = 10_000_000;
/// The largest request the estimate assumes (`MaxRequestSizeBytes`, 3 MiB, same file).
pub const MAX_REQUEST_SIZE_BYTES: i64 = 3 * 1024 * 1024;

// Serialized sizes, `k8s.io/apiserver/pkg/cel/limits.go`.
const MIN_STRING_SIZE: i64 = 2;
const MIN_BOOL_SIZE: i64 = 4;
const MIN_NUMBER_SIZE: i64 = 1;
const MIN_DURATION_SIZE_JSON: i64 = 3;
const MAX_DURATION_SIZE_JSON: i64 = 32;
const JSON_DATE_SIZE: i64 = 12;
const MIN_DATETIME_SIZE_JSON: i64 = 21;
const MAX_DATETIME_SIZE_JSON: i64 = 32;

// cel-go `common/cost.go`.
const SELECT_AND_IDENT_COST: u64 = 1;
const CONST_COST: u64 = 0;
const LIST_CREATE_BASE_COST: u64 = 10;
const MAP_CREATE_BASE_COST: u64 = 30;
const STRING_TRAVERSAL_COST_FACTOR: f64 = 0.1;
const REGEX_STRING_LENGTH_COST_FACTOR: f64 = 0.25;
/// `cel.CostEstimatorOptions(checker.PresenceTestHasCost(false))` in the Kubernetes base
/// environment: `has()` itself is free, only its operand is charged.
const PRESENCE_TEST_COST: u64 = 0;
/// cel-go `parser.AccumulatorName` and `parser.HiddenAccumulatorName`.
const ACCUMULATOR_NAMES: [&str; 2] = ["@result", "__result__"];
const CRD_GROUP: &str = "apiextensions.k8s.io";

// ---------------------------------------------------------------------------------------------
// Public API

/// One estimated expression, as the API server accounts for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleCost {
    /// Field path as the API server words it, e.g.
    /// `spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule`.
    pub path: String,
    /// The expression.
    pub rule: String,
    pub kind: ExpressionKind,
    /// cel-go's estimated maximum cost of one evaluation (`CompilationResult.MaxCost`).
    pub per_call_cost: u64,
    /// How many times the rule can run for one object.
    pub cardinality: Cardinality,
    /// What is compared with [`STATIC_ESTIMATED_COST_LIMIT`] and added to the schema total:
    /// `per_call_cost` times the cardinality, saturating (`getExpressionCost`).
    pub cost: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ExpressionKind {
    Rule,
    MessageExpression,
}

/// The factor a rule's cost is multiplied by: how often its schema node can occur in one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Cardinality {
    /// Every enclosing list and map is bounded: the product of their `maxItems` /
    /// `maxProperties` (1 outside lists and maps). `CELSchemaContext.MaxCardinality`.
    Bounded(u64),
    /// Some enclosing list or map is unbounded: as many copies of the node's smallest
    /// serialization as fit in a request, `MaxRequestSizeBytes / (minSerializedSize + 1)`
    /// (`maxCardinality` in `schema/cel/compilation.go`).
    Estimated(u64),
    /// `messageExpression` costs are not multiplied upstream.
    NotApplied,
}

impl Cardinality {
    pub fn factor(&self) -> u64 {
        match self {
            Cardinality::Bounded(n) | Cardinality::Estimated(n) => *n,
            Cardinality::NotApplied => 1,
        }
    }
}

/// The rules of one OpenAPIv3 schema of a CRD. The API server validates each schema on its
/// own and applies [`STATIC_ESTIMATED_CRD_COST_LIMIT`] to each total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaCost {
    /// `spec.validation.openAPIV3Schema` when every version has the same schema (the API
    /// server's internal version keeps one top-level schema then), otherwise
    /// `spec.versions[i].schema.openAPIV3Schema`.
    pub path: String,
    /// In the order the API server visits them (children before their parent).
    pub rules: Vec<RuleCost>,
    /// Saturating sum of the rules' costs (`TotalCost.Total`).
    pub total: u64,
    /// Up to four rules costing at least 1% of the CRD limit, most expensive first
    /// (`TotalCost.MostExpensive`): named when the total is over the limit.
    #[serde(skip)]
    most_expensive: Vec<(String, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrdCost {
    pub name: String,
    pub schemas: Vec<SchemaCost>,
}

impl CrdCost {
    pub fn rules(&self) -> impl Iterator<Item = &RuleCost> {
        self.schemas.iter().flat_map(|s| s.rules.iter())
    }

    /// The largest schema total: what [`STATIC_ESTIMATED_CRD_COST_LIMIT`] is compared with.
    pub fn total(&self) -> u64 {
        self.schemas.iter().map(|s| s.total).max().unwrap_or(0)
    }
}

/// A `details.causes[]` entry of a `Status`, as the API server builds it from a field error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    /// `FieldValueForbidden`, or `FieldValueInvalid` for a rule that cannot be estimated.
    pub reason: String,
    /// E.g. `Forbidden: estimated rule cost exceeds budget by factor of 4.6x (...)`.
    pub message: String,
    pub field: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CostErrorKind {
    /// The schema is not one the API server would compile rules against.
    Schema,
    /// The expression does not parse.
    Parse,
    /// The expression does not type-check (the API server rejects it too).
    Compile,
    /// The expression uses a construct this estimator does not model.
    Unsupported,
}

/// A rule that could not be estimated. The check fails closed on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostError {
    pub path: String,
    pub rule: String,
    pub kind: CostErrorKind,
    pub detail: String,
}

impl fmt::Display for CostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            CostErrorKind::Schema => "schema not supported",
            CostErrorKind::Parse => "rule does not parse",
            CostErrorKind::Compile => "rule does not compile",
            CostErrorKind::Unsupported => "not modelled by the cost estimator",
        };
        write!(
            f,
            "{}: {kind}: {} (rule {:?})",
            self.path, self.detail, self.rule
        )
    }
}

impl std::error::Error for CostError {}

/// Estimates every `x-kubernetes-validations` rule (and `messageExpression`) of every schema
/// of a CRD given as JSON, the way kube-apiserver does when the CRD is written.
pub fn estimate_crd(crd: &Value) -> Result<CrdCost, CostError> {
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut schemas = Vec::new();
    for (path, schema) in crd_schemas(crd) {
        let mut cost = SchemaCost {
            path: path.clone(),
            rules: Vec::new(),
            total: 0,
            most_expensive: Vec::new(),
        };
        let root = Context {
            schema,
            max_cardinality: Some(1),
            resource_root: true,
        };
        walk(&root, &path, &mut cost)?;
        schemas.push(cost);
    }
    Ok(CrdCost { name, schemas })
}

/// The causes kube-apiserver gives for the cost of this CRD's rules, in its order: per schema,
/// every expression over [`STATIC_ESTIMATED_COST_LIMIT`]; then, when the schema total is over
/// [`STATIC_ESTIMATED_CRD_COST_LIMIT`], the largest contributors and the total. Empty when the
/// CRD is within budget. A rule that cannot be estimated yields one `FieldValueInvalid` cause
/// (fail closed).
pub fn budget_violations(crd: &Value) -> Vec<Cause> {
    let estimate = match estimate_crd(crd) {
        Ok(estimate) => estimate,
        Err(err) => {
            return vec![Cause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: {:?}: test-apiserver cannot estimate the cost of this rule: {}",
                    err.rule, err.detail
                ),
                field: err.path,
            }];
        }
    };
    let forbidden = |field: &str, detail: String| Cause {
        reason: "FieldValueForbidden".into(),
        message: format!("Forbidden: {detail}"),
        field: field.to_string(),
    };
    let mut causes = Vec::new();
    for schema in &estimate.schemas {
        for rule in &schema.rules {
            if rule.cost > STATIC_ESTIMATED_COST_LIMIT {
                let name = match rule.kind {
                    ExpressionKind::Rule => "estimated rule cost",
                    ExpressionKind::MessageExpression => "estimated messageExpression cost",
                };
                let detail = cost_error_message(name, rule.cost, STATIC_ESTIMATED_COST_LIMIT);
                causes.push(forbidden(&rule.path, detail));
            }
        }
        if schema.total > STATIC_ESTIMATED_CRD_COST_LIMIT {
            for (path, _) in &schema.most_expensive {
                let detail = "contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema";
                causes.push(forbidden(path, detail.to_string()));
            }
            let detail = cost_error_message(
                "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema",
                schema.total,
                STATIC_ESTIMATED_CRD_COST_LIMIT,
            );
            causes.push(forbidden(&schema.path, detail));
        }
    }
    causes
}

/// The hook for CRD writes: `422 Invalid` with the causes of [`budget_violations`], worded
/// like `apierrors.NewInvalid` (`<kind>.<group> "<name>" is invalid: <aggregate>`).
pub(crate) fn reject_over_budget(crd: &Value) -> Result<(), ApiError> {
    let causes = budget_violations(crd);
    if causes.is_empty() {
        return Ok(());
    }
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // field.ErrorList.ToAggregate drops duplicate messages; one error is printed bare.
    let mut errors: Vec<String> = Vec::new();
    for cause in &causes {
        let error = format!("{}: {}", cause.field, cause.message);
        if !errors.contains(&error) {
            errors.push(error);
        }
    }
    let aggregate = match errors.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    let message = format!("CustomResourceDefinition.{CRD_GROUP} {name:?} is invalid: {aggregate}");
    Err(ApiError::invalid(message).with_details(json!({
        "name": name,
        "group": CRD_GROUP,
        "kind": "CustomResourceDefinition",
        "causes": causes,
    })))
}

/// `getCostErrorMessage` (apiextensions/validation/validation.go).
fn cost_error_message(name: &str, cost: u64, limit: u64) -> String {
    let factor = cost as f64 / limit as f64;
    let factor = if factor > 100.0 {
        "more than 100x".to_string()
    } else if factor < 1.5 {
        format!("{factor:.6}x") // Go's %f
    } else {
        format!("{factor:.1}x")
    };
    format!(
        "{name} exceeds budget by factor of {factor} (try simplifying the rule, or adding maxItems, \
         maxProperties, and maxLength where arrays, maps, and strings are declared)"
    )
}

// ---------------------------------------------------------------------------------------------
// The CRD walk

/// The schemas the API server validates. A v1 CRD whose versions all carry the same schema is
/// converted to the internal version with one top-level `spec.validation` (that is why the
/// real server's paths start with `spec.validation.openAPIV3Schema` for single-version CRDs).
fn crd_schemas(crd: &Value) -> Vec<(String, &Value)> {
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let schemas: Vec<Option<&Value>> = versions
        .iter()
        .map(|v| v.pointer("/schema/openAPIV3Schema"))
        .collect();
    if let Some(Some(first)) = schemas.first()
        && schemas.iter().all(|s| *s == Some(*first))
    {
        return vec![("spec.validation.openAPIV3Schema".to_string(), *first)];
    }
    schemas
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| Some((format!("spec.versions[{i}].schema.openAPIV3Schema"), s?)))
        .collect()
}

/// `CELSchemaContext`, reduced to what the cost needs.
struct Context<'a> {
    schema: &'a Value,
    /// `MaxCardinality`: `None` once any enclosing list or map is unbounded.
    max_cardinality: Option<u64>,
    /// The root of the CRD schema or of an embedded resource: `apiVersion`, `kind` and
    /// `metadata.name`/`generateName` are visible to rules there.
    resource_root: bool,
}

impl<'a> Context<'a> {
    /// `childContext`: the parent's cardinality times the factor the parent multiplies its
    /// children by (`extractMaxElements`).
    fn child(&self, schema: &'a Value) -> Context<'a> {
        let max_cardinality = match (self.max_cardinality, max_elements(self.schema)) {
            (Some(cardinality), Some(factor)) => Some(cardinality.saturating_mul(factor)),
            _ => None,
        };
        Context {
            schema,
            max_cardinality,
            resource_root: flag(schema, "x-kubernetes-embedded-resource"),
        }
    }
}

/// `extractMaxElements`: how many children an occurrence of `schema` can have.
fn max_elements(schema: &Value) -> Option<u64> {
    let non_negative = |v: i64| u64::try_from(v.max(0)).unwrap_or(0);
    match schema.get("type").and_then(Value::as_str) {
        Some("object") if schema.get("additionalProperties").is_some() => {
            integer(schema, "maxProperties").map(non_negative)
        }
        Some("array") => integer(schema, "maxItems").map(non_negative),
        _ => Some(1),
    }
}

/// `ValidateCustomResourceDefinitionOpenAPISchema`, the parts that reach the cost check:
/// children first (additionalProperties, properties, items), then the node's own rules.
/// `not`/`allOf`/`anyOf`/`oneOf` are walked upstream without a CEL context, so rules there are
/// never estimated; they are not walked here either.
fn walk(ctx: &Context<'_>, path: &str, out: &mut SchemaCost) -> Result<(), CostError> {
    let schema = ctx.schema;
    if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        walk(
            &ctx.child(additional),
            &format!("{path}.additionalProperties"),
            out,
        )?;
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        let mut names: Vec<&String> = properties.keys().collect();
        names.sort();
        for name in names {
            if let Some(property) = properties.get(name) {
                walk(
                    &ctx.child(property),
                    &format!("{path}.properties[{name}]"),
                    out,
                )?;
            }
        }
    }
    match schema.get("items") {
        Some(items) if items.is_object() => {
            walk(&ctx.child(items), &format!("{path}.items"), out)?;
        }
        Some(Value::Array(items)) => {
            for (i, items) in items.iter().enumerate() {
                walk(&ctx.child(items), &format!("{path}.items[{i}]"), out)?;
            }
        }
        _ => {}
    }
    let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    else {
        return Ok(());
    };
    if rules.is_empty() {
        return Ok(());
    }
    let rules_path = format!("{path}.x-kubernetes-validations");
    let decl = schema_decl(schema, ctx.resource_root).ok_or_else(|| CostError {
        path: rules_path.clone(),
        rule: String::new(),
        kind: CostErrorKind::Schema,
        detail: "unable to convert structural schema to CEL declarations".into(),
    })?;
    let cardinality = match ctx.max_cardinality {
        Some(n) => Cardinality::Bounded(n),
        None => Cardinality::Estimated(max_cardinality(decl.min_size)),
    };
    for (i, rule) in rules.iter().enumerate() {
        let text = rule.get("rule").and_then(Value::as_str).unwrap_or_default();
        let rule_path = format!("{rules_path}[{i}].rule");
        let fail = |fail: Fail, path: &str, text: &str| CostError {
            path: path.to_string(),
            rule: text.to_string(),
            kind: fail.kind,
            detail: fail.detail,
        };
        if text.trim().is_empty() {
            return Err(fail(
                Fail::schema("rule is not specified"),
                &rule_path,
                text,
            ));
        }
        let optional_old_self = flag(rule, "optionalOldSelf");
        let per_call = estimate_expression(&decl, text, optional_old_self, Output::Bool)
            .map_err(|f| fail(f, &rule_path, text))?;
        let cost = multiply_with_overflow_guard(per_call, cardinality.factor());
        out.observe(RuleCost {
            path: rule_path,
            rule: text.to_string(),
            kind: ExpressionKind::Rule,
            per_call_cost: per_call,
            cardinality,
            cost,
        });
        let message = rule
            .get("messageExpression")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !message.trim().is_empty() {
            let message_path = format!("{rules_path}[{i}].messageExpression");
            let per_call = estimate_expression(&decl, message, optional_old_self, Output::String)
                .map_err(|f| fail(f, &message_path, message))?;
            out.observe(RuleCost {
                path: message_path,
                rule: message.to_string(),
                kind: ExpressionKind::MessageExpression,
                per_call_cost: per_call,
                cardinality: Cardinality::NotApplied,
                cost: per_call,
            });
        }
    }
    Ok(())
}

impl SchemaCost {
    /// `TotalCost.ObserveExpressionCost`.
    fn observe(&mut self, rule: RuleCost) {
        self.total = self.total.saturating_add(rule.cost);
        if rule.cost >= STATIC_ESTIMATED_CRD_COST_LIMIT / 100 {
            self.most_expensive.push((rule.path.clone(), rule.cost));
            self.most_expensive.sort_by_key(|r| std::cmp::Reverse(r.1));
            self.most_expensive.truncate(4);
        }
        self.rules.push(rule);
    }
}

/// `multiplyWithOverflowGuard` (apiextensions/validation/validation.go).
fn multiply_with_overflow_guard(base: u64, cardinality: u64) -> u64 {
    base.saturating_mul(cardinality)
}

/// `maxCardinality` (schema/cel/compilation.go): how many values of `min_size` bytes (plus a
/// comma) fit in one request.
fn max_cardinality(min_size: i64) -> u64 {
    u64::try_from(MAX_REQUEST_SIZE_BYTES / (min_size + 1)).unwrap_or(0)
}

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool) == Some(true)
}

fn integer(schema: &Value, name: &str) -> Option<i64> {
    let value = schema.get(name)?;
    value.as_i64().or_else(|| value.as_f64().map(|f| f as i64))
}

// ---------------------------------------------------------------------------------------------
// Schema types and size bounds

/// A CEL declaration of a schema node with its size bounds (`apiservercel.DeclType`).
#[derive(Debug)]
struct Decl {
    kind: DeclKind,
    /// Upper bound of `size()`: items, properties, or characters. 0 for other scalars.
    max_elements: i64,
    /// Smallest JSON serialization in bytes (`MinSerializedSize`).
    min_size: i64,
}

#[derive(Debug)]
enum DeclKind {
    /// Escaped CEL field names to their declarations.
    Object(BTreeMap<String, Rc<Decl>>),
    List(Rc<Decl>),
    Map(Rc<Decl>, Rc<Decl>),
    Scalar(Scalar),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    Bool,
    Int,
    Double,
    String,
    Bytes,
    Duration,
    Timestamp,
    Dyn,
}

fn scalar(scalar: Scalar, min_size: i64, max_elements: i64) -> Rc<Decl> {
    Rc::new(Decl {
        kind: DeclKind::Scalar(scalar),
        max_elements,
        min_size,
    })
}

/// `SchemaDeclType` (k8s.io/apiserver/pkg/cel/common/schemas.go), on the JSON of a structural
/// schema. `None` when the node is not visible to CEL (no type, or items/values not visible).
///
/// As in v1.32, an `x-kubernetes-int-or-string` node is bounded by the request size even when
/// it has a `maxLength` (kubernetes#132837 changed that in v1.34).
fn schema_decl(s: &Value, resource_root: bool) -> Option<Rc<Decl>> {
    if flag(s, "x-kubernetes-int-or-string") {
        return Some(scalar(Scalar::Dyn, 1, MAX_REQUEST_SIZE_BYTES - 2));
    }
    let with_meta;
    let s = if resource_root {
        with_meta = with_type_and_object_meta(s);
        &with_meta
    } else {
        s
    };
    let embedded = |v: &Value| flag(v, "x-kubernetes-embedded-resource");
    match s.get("type").and_then(Value::as_str) {
        Some("array") => {
            let items = s.get("items").filter(|i| i.is_object())?;
            let item = schema_decl(items, embedded(items))?;
            let max_items = match integer(s, "maxItems") {
                Some(max) => max.max(0),
                None => estimate_max_array_items_from_min_size(item.min_size),
            };
            Some(Rc::new(Decl {
                kind: DeclKind::List(item),
                max_elements: max_items,
                min_size: 2, // []
            }))
        }
        Some("object") => {
            if let Some(additional) = s.get("additionalProperties").filter(|a| a.is_object()) {
                let value = schema_decl(additional, embedded(additional))?;
                let max_properties = match integer(s, "maxProperties") {
                    Some(max) => max.max(0),
                    None => estimate_max_additional_properties_from_min_size(value.min_size),
                };
                // apiservercel.StringType: min size 2, MaxElements 0.
                let key = scalar(Scalar::String, MIN_STRING_SIZE, 0);
                return Some(Rc::new(Decl {
                    kind: DeclKind::Map(key, value),
                    max_elements: max_properties,
                    min_size: 2, // {}
                }));
            }
            let required: HashSet<&str> = s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let mut fields = BTreeMap::new();
            let mut min_size = 2; // {}
            for (name, property) in s
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let Some(field) = schema_decl(property, embedded(property)) else {
                    continue;
                };
                // Required properties without a default (defaults are filled in server-side).
                let defaulted = property.get("default").is_some_and(|d| !d.is_null());
                if required.contains(name.as_str()) && !defaulted {
                    min_size += name.len() as i64 + field.min_size + 4;
                }
                if let Some(escaped) = escape(name) {
                    fields.insert(escaped, field);
                }
            }
            Some(Rc::new(Decl {
                kind: DeclKind::Object(fields),
                max_elements: 0,
                min_size,
            }))
        }
        Some("string") => {
            let max_length = integer(s, "maxLength");
            let per_request = MAX_REQUEST_SIZE_BYTES - 2; // minus the quotes
            Some(match s.get("format").and_then(Value::as_str) {
                Some("byte") => scalar(
                    Scalar::Bytes,
                    MIN_STRING_SIZE,
                    max_length.map_or(per_request, |m| m.max(0)),
                ),
                Some("duration") => scalar(
                    Scalar::Duration,
                    MIN_DURATION_SIZE_JSON,
                    MAX_DURATION_SIZE_JSON,
                ),
                Some("date") => scalar(Scalar::Timestamp, JSON_DATE_SIZE, JSON_DATE_SIZE),
                Some("date-time") => scalar(
                    Scalar::Timestamp,
                    MIN_DATETIME_SIZE_JSON,
                    MAX_DATETIME_SIZE_JSON,
                ),
                _ => {
                    let enum_values = s.get("enum").and_then(Value::as_array);
                    let max = match (max_length, enum_values) {
                        // maxLength counts code points, the estimate bytes (up to 4 each).
                        (Some(max), _) => max.max(0).saturating_mul(4),
                        (None, Some(values)) if !values.is_empty() => {
                            estimate_max_string_enum_length(values)
                        }
                        _ => per_request,
                    };
                    scalar(Scalar::String, MIN_STRING_SIZE, max)
                }
            })
        }
        Some("boolean") => Some(scalar(Scalar::Bool, MIN_BOOL_SIZE, 0)),
        Some("number") => Some(scalar(Scalar::Double, MIN_NUMBER_SIZE, 0)),
        Some("integer") => Some(scalar(Scalar::Int, MIN_NUMBER_SIZE, 0)),
        _ => None,
    }
}

/// `WithTypeAndObjectMeta` (apiextensions schema): a resource root always exposes
/// `kind`, `apiVersion` and `metadata.name`/`metadata.generateName` as strings.
fn with_type_and_object_meta(s: &Value) -> Value {
    let is_type = |v: Option<&Value>, t: &str| {
        v.and_then(|v| v.get("type")).and_then(Value::as_str) == Some(t)
    };
    let props = s.get("properties");
    let meta_props = props.and_then(|p| p.pointer("/metadata/properties"));
    if is_type(props.and_then(|p| p.get("kind")), "string")
        && is_type(props.and_then(|p| p.get("apiVersion")), "string")
        && is_type(props.and_then(|p| p.get("metadata")), "object")
        && is_type(meta_props.and_then(|p| p.get("name")), "string")
        && is_type(meta_props.and_then(|p| p.get("generateName")), "string")
    {
        return s.clone();
    }
    let mut result = s.clone();
    if let Some(map) = result.as_object_mut() {
        let props = map.entry("properties").or_insert_with(|| json!({}));
        if let Some(props) = props.as_object_mut() {
            props.insert("kind".into(), json!({"type": "string"}));
            props.insert("apiVersion".into(), json!({"type": "string"}));
            props.insert(
                "metadata".into(),
                json!({"type": "object", "properties": {
                    "name": {"type": "string"}, "generateName": {"type": "string"}}}),
            );
        }
    }
    result
}

/// `estimateMaxArrayItemsFromMinSize`: items of `min_size` bytes plus a comma, within `[]`.
fn estimate_max_array_items_from_min_size(min_size: i64) -> i64 {
    (MAX_REQUEST_SIZE_BYTES - 2) / (min_size + 1)
}

/// `estimateMaxAdditionalPropertiesFromMinSize`: a value of `min_size` bytes plus a key of at
/// least `""`, a colon and a comma, within `{}`.
fn estimate_max_additional_properties_from_min_size(min_size: i64) -> i64 {
    (MAX_REQUEST_SIZE_BYTES - 2) / (min_size + 6)
}

/// `estimateMaxStringEnumLength`: the longest enum value, in bytes.
fn estimate_max_string_enum_length(values: &[Value]) -> i64 {
    values
        .iter()
        .filter_map(Value::as_str)
        .map(|v| v.len() as i64)
        .max()
        .unwrap_or(0)
}

/// `Escape` (k8s.io/apiserver/pkg/cel/escaping.go): the CEL field name of a property, or
/// `None` when the property is not accessible from CEL.
fn escape(ident: &str) -> Option<String> {
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
    let first = ident.chars().next()?;
    if first.is_ascii_digit() {
        return None;
    }
    if RESERVED.contains(&ident) {
        return Some(format!("__{ident}__"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/');
    if !ident.chars().all(allowed) {
        return None;
    }
    let mut escaped = String::with_capacity(ident.len());
    let mut chars = ident.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '_' if chars.peek() == Some(&'_') => {
                chars.next();
                escaped.push_str("__underscores__");
            }
            '.' => escaped.push_str("__dot__"),
            '-' => escaped.push_str("__dash__"),
            '/' => escaped.push_str("__slash__"),
            c => escaped.push(c),
        }
    }
    Some(escaped)
}

// ---------------------------------------------------------------------------------------------
// Estimates

/// cel-go's `SizeEstimate`/`CostEstimate`: an inclusive range with saturating arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Estimate {
    min: u64,
    max: u64,
}

impl Estimate {
    const UNKNOWN: Estimate = Estimate {
        min: 0,
        max: u64::MAX,
    };

    const fn fixed(v: u64) -> Estimate {
        Estimate { min: v, max: v }
    }

    fn add(self, other: Estimate) -> Estimate {
        Estimate {
            min: self.min.saturating_add(other.min),
            max: self.max.saturating_add(other.max),
        }
    }

    /// `Multiply`, `MultiplyByCost`.
    fn multiply(self, other: Estimate) -> Estimate {
        Estimate {
            min: self.min.saturating_mul(other.min),
            max: self.max.saturating_mul(other.max),
        }
    }

    /// `MultiplyByCostFactor`: rounded up.
    fn factor(self, factor: f64) -> Estimate {
        Estimate {
            min: multiply_by_cost_factor(self.min, factor),
            max: multiply_by_cost_factor(self.max, factor),
        }
    }

    fn union(self, other: Estimate) -> Estimate {
        Estimate {
            min: self.min.min(other.min),
            max: self.max.max(other.max),
        }
    }
}

/// cel-go `multiplyByCostFactor`: `ceil(x * y)`, saturating at `u64::MAX`.
fn multiply_by_cost_factor(x: u64, y: f64) -> u64 {
    let x = x as f64;
    if x > 0.0 && y > 0.0 && x > u64::MAX as f64 / y {
        return u64::MAX;
    }
    let ceil = (x * y).ceil();
    if ceil >= 18_446_744_073_709_551_616.0 {
        return u64::MAX;
    }
    ceil as u64
}

// ---------------------------------------------------------------------------------------------
// Type checking (the subset of cel-go's checker the estimator needs)

/// Why an expression cannot be estimated.
#[derive(Debug)]
struct Fail {
    kind: CostErrorKind,
    detail: String,
}

impl Fail {
    fn compile(detail: impl Into<String>) -> Fail {
        Fail {
            kind: CostErrorKind::Compile,
            detail: detail.into(),
        }
    }

    fn unsupported(detail: impl Into<String>) -> Fail {
        Fail {
            kind: CostErrorKind::Unsupported,
            detail: detail.into(),
        }
    }

    fn schema(detail: impl Into<String>) -> Fail {
        Fail {
            kind: CostErrorKind::Schema,
            detail: detail.into(),
        }
    }
}

#[derive(Debug, Clone)]
enum Ty {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Duration,
    Timestamp,
    Null,
    Dyn,
    List(Box<Ty>),
    Map(Box<Ty>, Box<Ty>),
    /// A schema object (cel-go `StructKind`).
    Object(Rc<Decl>),
}

impl Ty {
    fn of(decl: &Rc<Decl>) -> Ty {
        match &decl.kind {
            DeclKind::Object(_) => Ty::Object(decl.clone()),
            DeclKind::List(item) => Ty::List(Box::new(Ty::of(item))),
            DeclKind::Map(key, value) => Ty::Map(Box::new(Ty::of(key)), Box::new(Ty::of(value))),
            DeclKind::Scalar(s) => match s {
                Scalar::Bool => Ty::Bool,
                Scalar::Int => Ty::Int,
                Scalar::Double => Ty::Double,
                Scalar::String => Ty::String,
                Scalar::Bytes => Ty::Bytes,
                Scalar::Duration => Ty::Duration,
                Scalar::Timestamp => Ty::Timestamp,
                Scalar::Dyn => Ty::Dyn,
            },
        }
    }

    /// cel-go `isScalar`: types whose size is 1.
    fn is_scalar(&self) -> bool {
        matches!(
            self,
            Ty::Bool | Ty::Double | Ty::Duration | Ty::Int | Ty::Timestamp | Ty::Uint
        )
    }

    fn is_numeric(&self) -> bool {
        matches!(self, Ty::Int | Ty::Uint | Ty::Double)
    }

    fn is_bool(&self) -> bool {
        matches!(self, Ty::Bool | Ty::Dyn)
    }

    fn is_dyn(&self) -> bool {
        matches!(self, Ty::Dyn)
    }

    /// An empty literal's element type, refined by later use.
    fn is_unrefined(&self) -> bool {
        match self {
            Ty::List(e) => e.is_dyn(),
            Ty::Map(k, v) => k.is_dyn() && v.is_dyn(),
            _ => false,
        }
    }

    fn same_kind(&self, other: &Ty) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }

    fn name(&self) -> String {
        match self {
            Ty::Bool => "bool".into(),
            Ty::Int => "int".into(),
            Ty::Uint => "uint".into(),
            Ty::Double => "double".into(),
            Ty::String => "string".into(),
            Ty::Bytes => "bytes".into(),
            Ty::Duration => "google.protobuf.Duration".into(),
            Ty::Timestamp => "google.protobuf.Timestamp".into(),
            Ty::Null => "null_type".into(),
            Ty::Dyn => "dyn".into(),
            Ty::List(e) => format!("list({})", e.name()),
            Ty::Map(k, v) => format!("map({}, {})", k.name(), v.name()),
            Ty::Object(_) => "object".into(),
        }
    }
}

/// The overload cel-go's checker resolves a call to, as far as its cost is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overload {
    LogicalAnd,
    LogicalOr,
    Conditional,
    Equals,
    /// `less_string`, `greater_equals_bytes`, ...: cost proportional to the shorter operand.
    CompareSized,
    AddString,
    AddBytes,
    AddList,
    InList,
    IndexList,
    IndexMap,
    StartsWith,
    EndsWith,
    Contains,
    Matches,
    StringToBytes,
    BytesToString,
    /// `lowerAscii`, `upperAscii`, `trim`: priced by the Kubernetes library (library/cost.go).
    StringTraversal,
    /// Everything cel-go prices as `1 + arguments`: `!_`, `@not_strictly_false`, arithmetic,
    /// scalar comparisons, `in` on maps, `size`, conversions.
    Constant,
}

/// What a compiled expression must evaluate to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Bool,
    String,
}

/// Parses, type-checks and estimates one expression against the declaration of its node:
/// `compileRule` + `env.EstimateCost` with the Kubernetes size estimator. Returns `MaxCost`.
fn estimate_expression(
    decl: &Rc<Decl>,
    text: &str,
    optional_old_self: bool,
    output: Output,
) -> Result<u64, Fail> {
    let expr = cel::parser::Parser::new().parse(text).map_err(|e| Fail {
        kind: CostErrorKind::Parse,
        detail: e.to_string(),
    })?;
    let mut ids = HashSet::new();
    if !unique_ids(&expr, &mut ids) {
        return Err(Fail::unsupported("an AST with repeated expression ids"));
    }
    let mut checker = Checker {
        root: Ty::of(decl),
        optional_old_self,
        scopes: HashMap::new(),
        types: HashMap::new(),
        overloads: HashMap::new(),
    };
    let ty = checker.check(&expr)?;
    match (output, &ty) {
        (Output::Bool, Ty::Bool) | (Output::String, Ty::String) => {}
        (Output::Bool, _) => return Err(Fail::compile("cel expression must evaluate to a bool")),
        (Output::String, _) => {
            return Err(Fail::compile("messageExpression must evaluate to a string"));
        }
    }
    let mut coster = Coster {
        root: decl,
        types: &checker.types,
        overloads: &checker.overloads,
        paths: HashMap::new(),
        locals: HashMap::new(),
        sizes: HashMap::new(),
        entry_sizes: HashMap::new(),
    };
    Ok(coster.cost(&expr)?.max)
}

fn unique_ids(e: &IdedExpr, seen: &mut HashSet<u64>) -> bool {
    if !seen.insert(e.id) {
        return false;
    }
    match &e.expr {
        Expr::Call(call) => {
            call.target.iter().all(|t| unique_ids(t, seen))
                && call.args.iter().all(|a| unique_ids(a, seen))
        }
        Expr::Select(sel) => unique_ids(&sel.operand, seen),
        Expr::List(list) => list.elements.iter().all(|x| unique_ids(x, seen)),
        Expr::Map(map) => map.entries.iter().all(|entry| match &entry.expr {
            EntryExpr::MapEntry(m) => unique_ids(&m.key, seen) && unique_ids(&m.value, seen),
            EntryExpr::StructField(f) => unique_ids(&f.value, seen),
        }),
        Expr::Comprehension(c) => [
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ]
        .into_iter()
        .all(|x| unique_ids(x, seen)),
        Expr::Struct(_) | Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => true,
    }
}

struct Checker {
    root: Ty,
    optional_old_self: bool,
    scopes: HashMap<String, Vec<Ty>>,
    types: HashMap<u64, Ty>,
    overloads: HashMap<u64, Overload>,
}

impl Checker {
    fn check(&mut self, e: &IdedExpr) -> Result<Ty, Fail> {
        let ty = match &e.expr {
            Expr::Literal(literal) => match literal {
                LiteralValue::Boolean(_) => Ty::Bool,
                LiteralValue::Bytes(_) => Ty::Bytes,
                LiteralValue::Double(_) => Ty::Double,
                LiteralValue::Int(_) => Ty::Int,
                LiteralValue::Null => Ty::Null,
                LiteralValue::String(_) => Ty::String,
                LiteralValue::UInt(_) => Ty::Uint,
            },
            Expr::Ident(name) => self.ident(name)?,
            Expr::Select(sel) => self.select(sel)?,
            Expr::Call(call) => {
                let (overload, ty) = self.call(call)?;
                self.overloads.insert(e.id, overload);
                ty
            }
            Expr::List(list) => self.list(list)?,
            Expr::Map(map) => self.map(map)?,
            Expr::Comprehension(c) => self.comprehension(c)?,
            Expr::Struct(s) => {
                return Err(Fail::unsupported(format!(
                    "message construction {}{{...}}",
                    s.type_name
                )));
            }
            Expr::Unspecified => return Err(Fail::compile("unspecified expression")),
        };
        self.types.insert(e.id, ty.clone());
        Ok(ty)
    }

    fn ident(&self, name: &str) -> Result<Ty, Fail> {
        if let Some(ty) = self.scopes.get(name).and_then(|s| s.last()) {
            return Ok(ty.clone());
        }
        match name {
            "self" => Ok(self.root.clone()),
            "oldSelf" if self.optional_old_self => Err(Fail::unsupported(
                "oldSelf with optionalOldSelf: true (an optional type)",
            )),
            "oldSelf" => Ok(self.root.clone()),
            "bool" | "int" | "uint" | "double" | "string" | "bytes" | "list" | "map"
            | "null_type" | "type" | "dyn" => {
                Err(Fail::unsupported(format!("the type value '{name}'")))
            }
            _ => Err(Fail::compile(format!("undeclared reference to '{name}'"))),
        }
    }

    fn select(&mut self, sel: &SelectExpr) -> Result<Ty, Fail> {
        let operand = self.check(&sel.operand)?;
        let field = match &operand {
            Ty::Object(decl) => match &decl.kind {
                DeclKind::Object(fields) => fields.get(&sel.field).map(Ty::of),
                _ => None,
            }
            .ok_or_else(|| Fail::compile(format!("undefined field '{}'", sel.field)))?,
            Ty::Map(_, value) => (**value).clone(),
            Ty::Dyn => Ty::Dyn,
            other => {
                return Err(Fail::compile(format!(
                    "type '{}' does not support field selection",
                    other.name()
                )));
            }
        };
        Ok(if sel.test { Ty::Bool } else { field })
    }

    fn list(&mut self, list: &ListExpr) -> Result<Ty, Fail> {
        if !list.optional_indices.is_empty() {
            return Err(Fail::unsupported("optional list elements"));
        }
        let mut element = None;
        for e in &list.elements {
            let ty = self.check(e)?;
            element.get_or_insert(ty);
        }
        Ok(Ty::List(Box::new(element.unwrap_or(Ty::Dyn))))
    }

    fn map(&mut self, map: &MapExpr) -> Result<Ty, Fail> {
        let mut first = None;
        for entry in &map.entries {
            match &entry.expr {
                EntryExpr::MapEntry(m) if !m.optional => {
                    let key = self.check(&m.key)?;
                    let value = self.check(&m.value)?;
                    first.get_or_insert((key, value));
                }
                EntryExpr::MapEntry(_) => return Err(Fail::unsupported("optional map entries")),
                EntryExpr::StructField(_) => {
                    return Err(Fail::unsupported("struct fields in a map literal"));
                }
            }
        }
        let (key, value) = first.unwrap_or((Ty::Dyn, Ty::Dyn));
        Ok(Ty::Map(Box::new(key), Box::new(value)))
    }

    fn push(&mut self, name: &str, ty: Ty) {
        self.scopes.entry(name.to_string()).or_default().push(ty);
    }

    fn pop(&mut self, name: &str) {
        if let Some(stack) = self.scopes.get_mut(name) {
            stack.pop();
        }
    }

    fn comprehension(&mut self, c: &ComprehensionExpr) -> Result<Ty, Fail> {
        if c.iter_var2.is_some() {
            return Err(Fail::unsupported("two-variable comprehensions"));
        }
        let range = self.check(&c.iter_range)?;
        let item = match range {
            Ty::List(item) => *item,
            Ty::Map(key, _) => *key,
            Ty::Dyn => Ty::Dyn,
            other => {
                return Err(Fail::compile(format!(
                    "expression of type '{}' cannot be range of a comprehension",
                    other.name()
                )));
            }
        };
        let mut accu = self.check(&c.accu_init)?;
        // Twice when the accumulator starts as an empty literal: the step refines its type.
        for refine in [true, false] {
            self.push(&c.accu_var, accu.clone());
            self.push(&c.iter_var, item.clone());
            let checked = self
                .check(&c.loop_cond)
                .and_then(|_| self.check(&c.loop_step));
            self.pop(&c.iter_var);
            let step = match checked {
                Ok(step) => step,
                Err(err) => {
                    self.pop(&c.accu_var);
                    return Err(err);
                }
            };
            if refine && accu.is_unrefined() && !step.is_unrefined() && step.same_kind(&accu) {
                self.pop(&c.accu_var);
                accu = step;
                continue;
            }
            let result = self.check(&c.result);
            self.pop(&c.accu_var);
            return result;
        }
        Err(Fail::unsupported("comprehension"))
    }

    fn call(&mut self, call: &CallExpr) -> Result<(Overload, Ty), Fail> {
        // Name what is not modelled before looking at the arguments (whose variables a
        // macro we do not expand, like `cel.bind` or two-variable `all`, would declare).
        if let Some(target) = &call.target
            && let Expr::Ident(namespace) = &target.expr
            && self.scopes.get(namespace).is_none_or(|s| s.is_empty())
            && namespace != "self"
            && namespace != "oldSelf"
        {
            return Err(Fail::unsupported(format!(
                "the function '{namespace}.{}'",
                call.func_name
            )));
        }
        if !KNOWN_FUNCTIONS.contains(&call.func_name.as_str()) {
            let form = if call.target.is_some() {
                "member function"
            } else {
                "function"
            };
            return Err(Fail::unsupported(format!(
                "the {form} '{}'",
                call.func_name
            )));
        }
        let target = match &call.target {
            Some(t) => Some(self.check(t)?),
            None => None,
        };
        let mut args = Vec::with_capacity(call.args.len());
        for arg in &call.args {
            args.push(self.check(arg)?);
        }
        resolve(&call.func_name, target.as_ref(), &args)
    }
}

/// The operators and functions [`resolve`] knows.
const KNOWN_FUNCTIONS: [&str; 33] = [
    operators::LOGICAL_NOT,
    operators::NOT_STRICTLY_FALSE,
    operators::LOGICAL_AND,
    operators::LOGICAL_OR,
    operators::CONDITIONAL,
    operators::EQUALS,
    operators::NOT_EQUALS,
    operators::LESS,
    operators::LESS_EQUALS,
    operators::GREATER,
    operators::GREATER_EQUALS,
    operators::ADD,
    operators::SUBSTRACT,
    operators::MULTIPLY,
    operators::DIVIDE,
    operators::MODULO,
    operators::NEGATE,
    operators::INDEX,
    operators::IN,
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "lowerAscii",
    "upperAscii",
    "trim",
    "string",
    "bytes",
    "int",
    "uint",
    "double",
    "dyn",
];

/// Overload resolution for the modelled functions, with the result type.
fn resolve(name: &str, target: Option<&Ty>, args: &[Ty]) -> Result<(Overload, Ty), Fail> {
    use Overload as O;
    let dyn_operand = target.is_some_and(Ty::is_dyn) || args.iter().any(Ty::is_dyn);
    let no_overload = || {
        let types: Vec<String> = target.into_iter().chain(args).map(Ty::name).collect();
        if dyn_operand {
            Fail::unsupported(format!(
                "'{name}' with a dyn operand (several overloads) ({})",
                types.join(", ")
            ))
        } else {
            Fail::compile(format!(
                "found no matching overload for '{name}' applied to '({})'",
                types.join(", ")
            ))
        }
    };
    let resolved = match (name, target, args) {
        (operators::LOGICAL_NOT | operators::NOT_STRICTLY_FALSE, None, [a]) if a.is_bool() => {
            (O::Constant, Ty::Bool)
        }
        (operators::LOGICAL_AND, None, [a, b]) if a.is_bool() && b.is_bool() => {
            (O::LogicalAnd, Ty::Bool)
        }
        (operators::LOGICAL_OR, None, [a, b]) if a.is_bool() && b.is_bool() => {
            (O::LogicalOr, Ty::Bool)
        }
        (operators::CONDITIONAL, None, [c, t, f]) if c.is_bool() => {
            let ty = if t.is_dyn() || t.is_unrefined() { f } else { t };
            (O::Conditional, ty.clone())
        }
        (operators::EQUALS | operators::NOT_EQUALS, None, [_, _]) => (O::Equals, Ty::Bool),
        (
            operators::LESS
            | operators::LESS_EQUALS
            | operators::GREATER
            | operators::GREATER_EQUALS,
            None,
            [a, b],
        ) => match (a, b) {
            (Ty::String, Ty::String) | (Ty::Bytes, Ty::Bytes) => (O::CompareSized, Ty::Bool),
            (a, b) if a.is_numeric() && b.is_numeric() => (O::Constant, Ty::Bool),
            (Ty::Bool, Ty::Bool)
            | (Ty::Timestamp, Ty::Timestamp)
            | (Ty::Duration, Ty::Duration) => (O::Constant, Ty::Bool),
            _ => return Err(no_overload()),
        },
        (operators::ADD, None, [a, b]) => match (a, b) {
            (Ty::String, Ty::String) => (O::AddString, Ty::String),
            (Ty::Bytes, Ty::Bytes) => (O::AddBytes, Ty::Bytes),
            (Ty::List(x), Ty::List(y)) => {
                let item = if x.is_dyn() { y } else { x };
                (O::AddList, Ty::List(item.clone()))
            }
            (Ty::Int, Ty::Int) | (Ty::Uint, Ty::Uint) | (Ty::Double, Ty::Double) => {
                (O::Constant, a.clone())
            }
            (Ty::Duration, Ty::Duration) => (O::Constant, Ty::Duration),
            (Ty::Timestamp, Ty::Duration) | (Ty::Duration, Ty::Timestamp) => {
                (O::Constant, Ty::Timestamp)
            }
            _ => return Err(no_overload()),
        },
        (operators::SUBSTRACT, None, [a, b]) => match (a, b) {
            (Ty::Int, Ty::Int) | (Ty::Uint, Ty::Uint) | (Ty::Double, Ty::Double) => {
                (O::Constant, a.clone())
            }
            (Ty::Timestamp, Ty::Timestamp) | (Ty::Duration, Ty::Duration) => {
                (O::Constant, Ty::Duration)
            }
            (Ty::Timestamp, Ty::Duration) => (O::Constant, Ty::Timestamp),
            _ => return Err(no_overload()),
        },
        (operators::MULTIPLY | operators::DIVIDE, None, [a, b])
            if a.same_kind(b) && a.is_numeric() =>
        {
            (O::Constant, a.clone())
        }
        (operators::MODULO, None, [a, b]) if a.same_kind(b) && matches!(a, Ty::Int | Ty::Uint) => {
            (O::Constant, a.clone())
        }
        (operators::NEGATE, None, [a]) if matches!(a, Ty::Int | Ty::Double) => {
            (O::Constant, a.clone())
        }
        (operators::INDEX, None, [Ty::List(item), Ty::Int]) => (O::IndexList, (**item).clone()),
        (operators::INDEX, None, [Ty::Map(_, value), key]) if !key.is_dyn() => {
            (O::IndexMap, (**value).clone())
        }
        (operators::IN, None, [_, Ty::List(_)]) => (O::InList, Ty::Bool),
        (operators::IN, None, [_, Ty::Map(..)]) => (O::Constant, Ty::Bool),
        // Every size overload costs 1 + its argument, so a dyn operand is fine here.
        ("size", None, [a]) | ("size", Some(a), [])
            if matches!(
                a,
                Ty::String | Ty::Bytes | Ty::List(_) | Ty::Map(..) | Ty::Dyn
            ) =>
        {
            (O::Constant, Ty::Int)
        }
        ("contains", Some(Ty::String), [Ty::String]) => (O::Contains, Ty::Bool),
        ("startsWith", Some(Ty::String), [Ty::String]) => (O::StartsWith, Ty::Bool),
        ("endsWith", Some(Ty::String), [Ty::String]) => (O::EndsWith, Ty::Bool),
        ("matches", Some(Ty::String), [Ty::String]) => (O::Matches, Ty::Bool),
        ("lowerAscii" | "upperAscii" | "trim", Some(Ty::String), []) => {
            (O::StringTraversal, Ty::String)
        }
        ("string", None, [Ty::Bytes]) => (O::BytesToString, Ty::String),
        (
            "string",
            None,
            [
                Ty::String
                | Ty::Int
                | Ty::Uint
                | Ty::Double
                | Ty::Bool
                | Ty::Timestamp
                | Ty::Duration,
            ],
        ) => (O::Constant, Ty::String),
        ("bytes", None, [Ty::String]) => (O::StringToBytes, Ty::Bytes),
        ("bytes", None, [Ty::Bytes]) => (O::Constant, Ty::Bytes),
        ("int", None, [Ty::Int | Ty::Uint | Ty::Double | Ty::String | Ty::Timestamp]) => {
            (O::Constant, Ty::Int)
        }
        ("uint", None, [Ty::Int | Ty::Uint | Ty::Double | Ty::String]) => (O::Constant, Ty::Uint),
        ("double", None, [Ty::Int | Ty::Uint | Ty::Double | Ty::String]) => {
            (O::Constant, Ty::Double)
        }
        ("matches", None, _) => {
            return Err(Fail::unsupported(
                "the global form matches(string, string) (use string.matches(regex))",
            ));
        }
        (
            operators::LOGICAL_NOT
            | operators::NOT_STRICTLY_FALSE
            | operators::LOGICAL_AND
            | operators::LOGICAL_OR
            | operators::CONDITIONAL
            | operators::EQUALS
            | operators::NOT_EQUALS
            | operators::LESS
            | operators::LESS_EQUALS
            | operators::GREATER
            | operators::GREATER_EQUALS
            | operators::ADD
            | operators::SUBSTRACT
            | operators::MULTIPLY
            | operators::DIVIDE
            | operators::MODULO
            | operators::NEGATE
            | operators::INDEX
            | operators::IN
            | "size"
            | "contains"
            | "startsWith"
            | "endsWith"
            | "matches"
            | "lowerAscii"
            | "upperAscii"
            | "trim"
            | "string"
            | "bytes"
            | "int"
            | "uint"
            | "double",
            _,
            _,
        ) => return Err(no_overload()),
        ("dyn", None, [_]) => return Err(Fail::unsupported("dyn()")),
        _ => {
            let form = if target.is_some() {
                "member function"
            } else {
                "function"
            };
            return Err(Fail::unsupported(format!("the {form} '{name}'")));
        }
    };
    Ok(resolved)
}

// ---------------------------------------------------------------------------------------------
// The cel-go static cost estimator (checker/cost.go), over the Kubernetes size estimator

/// cel-go `entrySizeEstimate`: sizes of the keys/indices and values of a literal container.
#[derive(Debug, Clone, Copy)]
struct EntrySize {
    list: bool,
    key: Estimate,
    value: Estimate,
}

impl EntrySize {
    fn union(self, other: EntrySize) -> EntrySize {
        EntrySize {
            list: self.list,
            key: self.key.union(other.key),
            value: self.value.union(other.value),
        }
    }
}

/// cel-go `localVar`.
#[derive(Debug, Clone)]
struct LocalVar {
    path: Vec<String>,
    size: Option<Estimate>,
    entry: Option<EntrySize>,
}

/// cel-go `AstNode` (`astNode`): an argument or target as the function estimators see it.
struct Node {
    path: Vec<String>,
    derived: Option<Estimate>,
}

struct CallEstimate {
    cost: Estimate,
    result_size: Option<Estimate>,
}

/// cel-go `coster`.
struct Coster<'a> {
    /// The declaration of the rule's node: `self` (`sizeEstimator.root`).
    root: &'a Rc<Decl>,
    types: &'a HashMap<u64, Ty>,
    overloads: &'a HashMap<u64, Overload>,
    paths: HashMap<u64, Vec<String>>,
    locals: HashMap<String, Vec<LocalVar>>,
    sizes: HashMap<u64, Estimate>,
    entry_sizes: HashMap<u64, EntrySize>,
}

impl Coster<'_> {
    fn ty(&self, e: &IdedExpr) -> Result<&Ty, Fail> {
        self.types
            .get(&e.id)
            .ok_or_else(|| Fail::unsupported("an expression the checker did not type"))
    }

    fn cost(&mut self, e: &IdedExpr) -> Result<Estimate, Fail> {
        Ok(match &e.expr {
            Expr::Literal(_) => Estimate::fixed(CONST_COST),
            Expr::Ident(name) => {
                // costIdent: iteration and local variables carry the path of what they range over.
                let path = match self.local(name) {
                    Some(v) => v.path.clone(),
                    None => vec![name.clone()],
                };
                self.paths.insert(e.id, path);
                Estimate::fixed(SELECT_AND_IDENT_COST)
            }
            Expr::Select(sel) => {
                // costSelect.
                if sel.test {
                    return Ok(Estimate::fixed(PRESENCE_TEST_COST).add(self.cost(&sel.operand)?));
                }
                let mut sum = self.cost(&sel.operand)?;
                if matches!(self.ty(&sel.operand)?, Ty::Map(..) | Ty::Object(_)) {
                    sum = sum.add(Estimate::fixed(SELECT_AND_IDENT_COST));
                }
                let mut path = self.path(&sel.operand);
                path.push(sel.field.clone());
                self.paths.insert(e.id, path);
                sum
            }
            Expr::Call(call) => self.call(e, call)?,
            Expr::List(list) => {
                // costCreateList.
                let mut sum = Estimate::fixed(0);
                let mut item = Estimate {
                    min: if list.elements.is_empty() {
                        0
                    } else {
                        u64::MAX
                    },
                    max: 0,
                };
                for element in &list.elements {
                    sum = sum.add(self.cost(element)?);
                    item = item.union(self.size_or_unknown(element));
                }
                self.entry_sizes.insert(
                    e.id,
                    EntrySize {
                        list: true,
                        key: Estimate::fixed(1),
                        value: item,
                    },
                );
                sum.add(Estimate::fixed(LIST_CREATE_BASE_COST))
            }
            Expr::Map(map) => {
                // costCreateMap.
                let mut sum = Estimate::fixed(0);
                let empty_min = if map.entries.is_empty() { 0 } else { u64::MAX };
                let mut key = Estimate {
                    min: empty_min,
                    max: 0,
                };
                let mut value = key;
                for entry in &map.entries {
                    let EntryExpr::MapEntry(m) = &entry.expr else {
                        return Err(Fail::unsupported("struct fields in a map literal"));
                    };
                    sum = sum.add(self.cost(&m.key)?).add(self.cost(&m.value)?);
                    key = key.union(self.size_or_unknown(&m.key));
                    value = value.union(self.size_or_unknown(&m.value));
                }
                self.entry_sizes.insert(
                    e.id,
                    EntrySize {
                        list: false,
                        key,
                        value,
                    },
                );
                sum.add(Estimate::fixed(MAP_CREATE_BASE_COST))
            }
            Expr::Comprehension(c) => self.comprehension(e, c)?,
            Expr::Struct(_) => return Err(Fail::unsupported("message construction")),
            Expr::Unspecified => Estimate::fixed(0),
        })
    }

    /// costComprehension (cel.bind is not parsed by the `cel` crate, so no costBind).
    fn comprehension(&mut self, e: &IdedExpr, c: &ComprehensionExpr) -> Result<Estimate, Fail> {
        let mut sum = self.cost(&c.iter_range)?.add(self.cost(&c.accu_init)?);
        // pushLocalVar(accuVar, accuInit)
        let accu = LocalVar {
            path: self.path(&c.accu_init),
            entry: self.entry_size(&c.accu_init),
            size: self.compute_size(&c.accu_init),
        };
        self.push_local(&c.accu_var, accu);
        // pushIterSingle(iterVar, iterRange)
        let entry = self.entry_size(&c.iter_range);
        let list = match entry {
            Some(entry) => entry.list,
            None => matches!(self.ty(&c.iter_range)?, Ty::List(_)),
        };
        let (size, subpath) = if list {
            (entry.map(|e| e.value), "@items")
        } else {
            (entry.map(|e| e.key), "@keys")
        };
        let mut path = self.path(&c.iter_range);
        path.push(subpath.to_string());
        self.push_local(
            &c.iter_var,
            LocalVar {
                path,
                size,
                entry: None,
            },
        );
        let loop_cost = self.cost(&c.loop_cond)?;
        let step_cost = self.cost(&c.loop_step)?;
        self.pop_local(&c.iter_var);
        sum = sum.add(self.cost(&c.result)?);
        self.pop_local(&c.accu_var);
        let range = self.size_or_unknown(&c.iter_range);
        sum = sum.add(range.multiply(step_cost.add(loop_cost)));
        match &c.accu_init.expr {
            Expr::Literal(_) => {
                if let Some(size) = self.compute_size(&c.accu_init) {
                    self.sizes.insert(e.id, size);
                }
            }
            Expr::List(_) | Expr::Map(_) => {
                self.sizes.insert(e.id, range);
                if let Some(step) = self.entry_size(&c.loop_step) {
                    self.entry_sizes.insert(e.id, step);
                }
            }
            _ => {}
        }
        Ok(sum)
    }

    /// costCall.
    fn call(&mut self, e: &IdedExpr, call: &CallExpr) -> Result<Estimate, Fail> {
        let mut arg_costs = Vec::with_capacity(call.args.len());
        let mut args = Vec::with_capacity(call.args.len());
        for arg in &call.args {
            arg_costs.push(self.cost(arg)?);
            args.push(self.node(arg));
        }
        let overload = *self
            .overloads
            .get(&e.id)
            .ok_or_else(|| Fail::unsupported(format!("the call '{}'", call.func_name)))?;
        let mut sum = Estimate::fixed(0);
        let target = match &call.target {
            Some(target) => {
                sum = sum.add(self.cost(target)?);
                Some(self.node(target))
            }
            None => None,
        };
        let estimate = self.function_cost(e, call, overload, target.as_ref(), &args, &arg_costs);
        let mut result_size = estimate.result_size;
        match overload {
            Overload::IndexList | Overload::IndexMap => {
                if let Some(first) = call.args.first() {
                    result_size = self.entry_size(first).map(|s| s.value);
                    let step = if overload == Overload::IndexList {
                        "@items"
                    } else {
                        "@values"
                    };
                    let mut path = self.path(first);
                    path.push(step.to_string());
                    self.paths.insert(e.id, path);
                }
            }
            _ => {}
        }
        if result_size.is_none() {
            result_size = self.compute_size(e);
        }
        if let Some(size) = result_size {
            self.sizes.insert(e.id, size);
        }
        Ok(sum.add(estimate.cost))
    }

    /// functionCost, after the Kubernetes library estimator (library/cost.go, EstimateCallCost)
    /// had its say: of the modelled functions it only prices lowerAscii/upperAscii/trim.
    fn function_cost(
        &mut self,
        e: &IdedExpr,
        call: &CallExpr,
        overload: Overload,
        target: Option<&Node>,
        args: &[Node],
        arg_costs: &[Estimate],
    ) -> CallEstimate {
        let arg_sum = arg_costs
            .iter()
            .fold(Estimate::fixed(0), |sum, c| sum.add(*c));
        let size = |n: Option<&Node>| n.and_then(|n| n.derived).unwrap_or(Estimate::UNKNOWN);
        let plain = |cost: Estimate| CallEstimate {
            cost,
            result_size: None,
        };
        let traversal = STRING_TRAVERSAL_COST_FACTOR;
        match overload {
            Overload::StringTraversal => {
                // The library's sizeEstimate: computed size, else the schema, else unknown.
                let sz = target
                    .and_then(|t| t.derived.or_else(|| self.estimate_size(&t.path)))
                    .unwrap_or(Estimate::UNKNOWN);
                CallEstimate {
                    cost: sz.factor(traversal).add(arg_sum),
                    result_size: Some(sz),
                }
            }
            Overload::StringToBytes => {
                let sz = size(args.first());
                CallEstimate {
                    cost: sz.factor(traversal).add(arg_sum),
                    // Go's `sz.Max * 4` wraps around.
                    result_size: Some(Estimate {
                        min: sz.min,
                        max: sz.max.wrapping_mul(4),
                    }),
                }
            }
            Overload::BytesToString => {
                let sz = size(args.first());
                CallEstimate {
                    cost: sz.factor(traversal).add(arg_sum),
                    result_size: Some(Estimate {
                        min: sz.min / 4,
                        max: sz.max,
                    }),
                }
            }
            Overload::StartsWith | Overload::EndsWith => {
                plain(size(args.first()).factor(traversal).add(arg_sum))
            }
            Overload::InList => plain(size(args.get(1)).factor(1.0).add(arg_sum)),
            Overload::Matches => {
                let text = size(target).add(Estimate::fixed(1)).factor(traversal);
                let regex = size(args.first()).factor(REGEX_STRING_LENGTH_COST_FACTOR);
                plain(text.multiply(regex).add(arg_sum))
            }
            Overload::Contains => {
                let text = size(target).factor(traversal);
                let sub = size(args.first()).factor(traversal);
                plain(text.multiply(sub).add(arg_sum))
            }
            Overload::LogicalAnd | Overload::LogicalOr => {
                let lhs = arg_costs.first().copied().unwrap_or(Estimate::fixed(0));
                let rhs = arg_costs.get(1).copied().unwrap_or(Estimate::fixed(0));
                plain(Estimate {
                    min: lhs.min,
                    max: lhs.add(rhs).max,
                })
            }
            Overload::Conditional => {
                let result = size(args.get(1)).union(size(args.get(2)));
                let entries = call
                    .args
                    .get(1)
                    .and_then(|a| self.entry_size(a))
                    .zip(call.args.get(2).and_then(|a| self.entry_size(a)));
                if let Some((t, f)) = entries {
                    self.entry_sizes.insert(e.id, t.union(f));
                }
                let cost = |i: usize| arg_costs.get(i).copied().unwrap_or(Estimate::fixed(0));
                CallEstimate {
                    cost: cost(0).add(cost(1).union(cost(2))),
                    result_size: Some(result),
                }
            }
            Overload::AddString | Overload::AddBytes | Overload::AddList => {
                let result = size(args.first()).add(size(args.get(1)));
                let entries = call
                    .args
                    .first()
                    .and_then(|a| self.entry_size(a))
                    .zip(call.args.get(1).and_then(|a| self.entry_size(a)));
                if let Some((l, r)) = entries {
                    self.entry_sizes.insert(e.id, l.union(r));
                }
                let cost = if overload == Overload::AddList {
                    Estimate::fixed(1).add(arg_sum)
                } else {
                    result.factor(traversal).add(arg_sum)
                };
                CallEstimate {
                    cost,
                    result_size: Some(result),
                }
            }
            Overload::Equals | Overload::CompareSized => {
                let smallest = size(args.first()).max.min(size(args.get(1)).max);
                let min = u64::from(smallest > 0);
                plain(
                    Estimate { min, max: smallest }
                        .factor(traversal)
                        .add(arg_sum),
                )
            }
            Overload::IndexList | Overload::IndexMap | Overload::Constant => {
                plain(Estimate::fixed(1).add(arg_sum))
            }
        }
    }

    /// newAstNode: paths rooted at an accumulator are not given to estimators.
    fn node(&mut self, e: &IdedExpr) -> Node {
        let mut path = self.path(e);
        if path
            .first()
            .is_some_and(|p| ACCUMULATOR_NAMES.contains(&p.as_str()))
        {
            path.clear();
        }
        Node {
            path,
            derived: self.compute_size(e),
        }
    }

    fn local(&self, name: &str) -> Option<&LocalVar> {
        self.locals.get(name).and_then(|s| s.last())
    }

    fn push_local(&mut self, name: &str, var: LocalVar) {
        self.locals.entry(name.to_string()).or_default().push(var);
    }

    fn pop_local(&mut self, name: &str) {
        if let Some(stack) = self.locals.get_mut(name) {
            stack.pop();
        }
    }

    /// getPath.
    fn path(&self, e: &IdedExpr) -> Vec<String> {
        if let Expr::Ident(name) = &e.expr
            && let Some(v) = self.local(name)
        {
            return v.path.clone();
        }
        self.paths.get(&e.id).cloned().unwrap_or_default()
    }

    fn size_or_unknown(&mut self, e: &IdedExpr) -> Estimate {
        self.compute_size(e).unwrap_or(Estimate::UNKNOWN)
    }

    /// computeSize: a size already computed, a literal's size, the schema's bound for the
    /// expression's path, 1 for scalars, or what a local variable was bound to.
    fn compute_size(&mut self, e: &IdedExpr) -> Option<Estimate> {
        if let Some(size) = self.sizes.get(&e.id) {
            return Some(*size);
        }
        if let Some(size) = literal_size(e) {
            return Some(size);
        }
        let path = self.path(e);
        if let Some(size) = self.estimate_size(&path) {
            self.sizes.insert(e.id, size);
            return Some(size);
        }
        if self.types.get(&e.id).is_some_and(Ty::is_scalar) {
            return Some(Estimate::fixed(1));
        }
        if let Expr::Ident(name) = &e.expr {
            return self.local(name).and_then(|v| v.size);
        }
        None
    }

    /// computeEntrySize.
    fn entry_size(&self, e: &IdedExpr) -> Option<EntrySize> {
        if let Some(entry) = self.entry_sizes.get(&e.id) {
            return Some(*entry);
        }
        if let Expr::Ident(name) = &e.expr {
            return self.local(name).and_then(|v| v.entry);
        }
        None
    }

    /// The Kubernetes `sizeEstimator.EstimateSize` (schema/cel/compilation.go): walks the path
    /// from the rule's node (its first element, the variable, is skipped whatever it is) and
    /// returns `[0, MaxElements]` of the declaration reached.
    fn estimate_size(&self, path: &[String]) -> Option<Estimate> {
        let (_, rest) = path.split_first()?;
        let mut node = self.root;
        for name in rest {
            node = match (&node.kind, name.as_str()) {
                (DeclKind::List(item), "@items" | "@values") => item,
                (DeclKind::Map(_, value), "@items" | "@values") => value,
                (DeclKind::Map(key, _), "@keys") => key,
                (_, "@items" | "@values" | "@keys") => return None,
                (DeclKind::Object(fields), field) => fields.get(field)?,
                _ => return None,
            };
        }
        Some(Estimate {
            min: 0,
            max: u64::try_from(node.max_elements).unwrap_or(0),
        })
    }
}

/// computeExprSize: sizes known from the expression itself.
fn literal_size(e: &IdedExpr) -> Option<Estimate> {
    let size = match &e.expr {
        Expr::Literal(LiteralValue::String(s)) => s.inner().chars().count(),
        Expr::Literal(LiteralValue::Bytes(b)) => b.inner().len(),
        Expr::Literal(_) => 1,
        Expr::List(list) => list.elements.len(),
        Expr::Map(map) => map.entries.len(),
        _ => return None,
    };
    Some(Estimate::fixed(size as u64))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// The per-call cost of `rule` on a node with `schema`, the way upstream's `schemaChecker`
    /// (schema/cel/compilation_test.go) calls `Compile(schema, SchemaDeclType(schema, false))`.
    fn cost(schema: Value, rule: &str) -> u64 {
        let decl = schema_decl(&schema, false).unwrap();
        estimate_expression(&decl, rule, false, Output::Bool).unwrap()
    }

    fn fail(schema: Value, rule: &str) -> Fail {
        let decl = schema_decl(&schema, false).unwrap();
        estimate_expression(&decl, rule, false, Output::Bool).unwrap_err()
    }

    fn array_of(item: Value, max_items: Option<i64>) -> Value {
        let mut schema = json!({"type": "array", "items": item});
        if let Some(max) = max_items {
            schema["maxItems"] = json!(max);
        }
        schema
    }

    fn map_of(value: Value, max_properties: Option<i64>) -> Value {
        let mut schema = json!({"type": "object", "additionalProperties": value});
        if let Some(max) = max_properties {
            schema["maxProperties"] = json!(max);
        }
        schema
    }

    fn string(max_length: Option<i64>) -> Value {
        let mut schema = json!({"type": "string"});
        if let Some(max) = max_length {
            schema["maxLength"] = json!(max);
        }
        schema
    }

    #[test]
    fn cost_factors_round_up_and_saturate() {
        // cel-go multiplyByCostFactor: ceil(x*y); 1012 * 0.1 = 101.2 -> 102.
        assert_eq!(multiply_by_cost_factor(1012, 0.1), 102);
        assert_eq!(multiply_by_cost_factor(3_145_726, 0.1), 314_573);
        assert_eq!(multiply_by_cost_factor(0, 0.1), 0);
        assert_eq!(multiply_by_cost_factor(u64::MAX, 1.0), u64::MAX);
        assert_eq!(Estimate::UNKNOWN.add(Estimate::fixed(1)).max, u64::MAX);
        assert_eq!(
            Estimate::fixed(1 << 40)
                .multiply(Estimate::fixed(1 << 40))
                .max,
            u64::MAX
        );
    }

    #[test]
    fn unbounded_sizes_come_from_the_request_size() {
        // schemas.go: estimateMaxArrayItemsFromMinSize = (3 MiB - 2) / (minSize + 1).
        assert_eq!(
            estimate_max_array_items_from_min_size(MIN_STRING_SIZE),
            1_048_575
        );
        assert_eq!(
            estimate_max_array_items_from_min_size(MIN_NUMBER_SIZE),
            1_572_863
        );
        // estimateMaxAdditionalPropertiesFromMinSize = (3 MiB - 2) / (minSize + 6).
        assert_eq!(estimate_max_additional_properties_from_min_size(2), 393_215);
        // compilation.go maxCardinality = 3 MiB / (minSize + 1).
        assert_eq!(max_cardinality(2), 1_048_576);
        let unbounded = schema_decl(&string(None), false).unwrap();
        assert_eq!(unbounded.max_elements, 3_145_726); // estimateMaxStringLengthPerRequest
        let bounded = schema_decl(&string(Some(253)), false).unwrap();
        assert_eq!(bounded.max_elements, 1012); // estimateMaxElementsFromMaxLength: 4 bytes a rune
        let enumerated = json!({"type": "string", "enum": ["EU", "EEA", "ThirdCountry"]});
        assert_eq!(schema_decl(&enumerated, false).unwrap().max_elements, 12);
        let list = schema_decl(&array_of(string(None), None), false).unwrap();
        assert_eq!(list.max_elements, 1_048_575);
        let list = schema_decl(&array_of(string(None), Some(-3)), false).unwrap();
        assert_eq!(list.max_elements, 0); // zeroIfNegative
    }

    #[test]
    fn an_object_is_at_least_its_braces_plus_required_undefaulted_properties() {
        // schemas.go: 2 + len(name) + minSize + 4 for every required property without default.
        let schema = json!({"type": "object", "required": ["required", "defaulted"],
            "properties": {"required": {"type": "string"}, "optional": {"type": "string"},
                           "defaulted": {"type": "integer", "default": 1}}});
        assert_eq!(schema_decl(&schema, false).unwrap().min_size, 2 + 8 + 2 + 4);
        let root = schema_decl(&schema, true).unwrap();
        let DeclKind::Object(fields) = &root.kind else {
            panic!("object")
        };
        for added in ["apiVersion", "kind", "metadata"] {
            assert!(fields.contains_key(added), "{added}");
        }
    }

    #[test]
    fn property_names_are_escaped_like_the_api_server() {
        // escaping.go Escape.
        assert_eq!(escape("namespace").as_deref(), Some("__namespace__"));
        assert_eq!(
            escape("a.b-c/d").as_deref(),
            Some("a__dot__b__dash__c__slash__d")
        );
        assert_eq!(escape("x__y").as_deref(), Some("x__underscores__y"));
        assert_eq!(escape("x___y").as_deref(), Some("x__underscores___y"));
        assert_eq!(escape("plain_name").as_deref(), Some("plain_name"));
        assert_eq!(escape("1st"), None);
        assert_eq!(escape("a b"), None);
        assert_eq!(escape(""), None);
    }

    // Expected numbers from upstream's TestCostEstimation (schema/cel/compilation_test.go):
    // the "calc" column without bounds, the "set" column with maxItems/maxLength/maxProperties.
    #[test]
    fn comprehensions_cost_their_range_times_condition_and_step() {
        for (item, unbounded, bound, bounded) in [
            (json!({"type": "number"}), 4_718_591, 10, 32),
            (json!({"type": "string"}), 3_145_727, 20, 62),
            (json!({"type": "boolean"}), 1_887_437, 5, 17),
            (
                json!({"x-kubernetes-int-or-string": true}),
                4_718_591,
                10,
                32,
            ),
            (
                json!({"type": "string", "format": "duration"}),
                2_359_295,
                5,
                17,
            ),
            (json!({"type": "string", "format": "date"}), 725_936, 15, 47),
            (
                json!({"type": "string", "format": "date-time"}),
                428_963,
                25,
                77,
            ),
            (
                array_of(json!({"type": "number"}), None),
                3_145_727,
                100,
                302,
            ),
        ] {
            let rule = "self.all(x, true)";
            assert_eq!(
                cost(array_of(item.clone(), None), rule),
                unbounded,
                "{item}"
            );
            assert_eq!(
                cost(array_of(item.clone(), Some(bound)), rule),
                bounded,
                "{item}"
            );
        }
        let object = json!({"type": "object", "required": ["required"],
            "properties": {"required": {"type": "string"}, "optional": {"type": "string"}}});
        assert_eq!(
            cost(array_of(object.clone(), None), "self.all(x, true)"),
            555_128
        );
        assert_eq!(cost(array_of(object, Some(50)), "self.all(x, true)"), 152);
        for (value, unbounded, bound, bounded) in [
            (json!({"type": "number"}), 1_348_169, 10, 32),
            (json!({"type": "string"}), 1_179_647, 3, 11),
            (json!({"type": "boolean"}), 943_718, 100, 302),
            (
                json!({"type": "string", "format": "duration"}),
                1_048_577,
                5,
                17,
            ),
            (json!({"type": "string", "format": "date"}), 524_288, 10, 32),
        ] {
            let rule = "self.all(x, true)";
            assert_eq!(
                cost(map_of(value.clone(), None), rule),
                unbounded,
                "{value}"
            );
            assert_eq!(
                cost(map_of(value.clone(), Some(bound)), rule),
                bounded,
                "{value}"
            );
        }
        let nested = array_of(json!({"type": "number"}), Some(10));
        assert_eq!(cost(nested.clone(), "self.all(x, self.all(y, true))"), 352);
        let triple = "self.all(x, self.all(y, self.all(z, true)))";
        assert_eq!(cost(nested, triple), 3552);
    }

    #[test]
    fn string_functions_cost_a_traversal_of_their_operands() {
        let rules = [
            ("self.contains('test')", 314_574, 10, 5),
            ("self.startsWith('test')", 2, 15, 2),
            ("self.endsWith('test')", 2, 30, 2),
            ("size(self + \"hello\") > size(\"hello\")", 314_578, 4, 7),
            ("self.matches(\"x\")", 314_574, 50, 22),
            ("\"\".matches(\"(((((((((())))))))))[0-9]\")", 7, 10, 7),
            ("self.matches(\"\")", 1, 100, 1),
            ("self.lowerAscii() == 'lower!'", 314_575, 10, 6),
            ("self == \"x\"", 2, 0, 1),
        ];
        for (rule, unbounded, max_length, bounded) in rules {
            assert_eq!(cost(string(None), rule), unbounded, "{rule}");
            assert_eq!(cost(string(Some(max_length)), rule), bounded, "{rule}");
        }
        let enumerated = json!({"type": "string", "enum": ["A", "B", "C", "LongValue"]});
        assert_eq!(cost(enumerated, "self.contains('A')"), 2);
        let bytes = |max: Option<i64>| {
            let mut s = json!({"type": "string", "format": "byte"});
            if let Some(max) = max {
                s["maxLength"] = json!(max);
            }
            s
        };
        assert_eq!(cost(bytes(None), "self == b\"x\""), 2);
        assert_eq!(cost(bytes(Some(0)), "self == b\"x\""), 1);
    }

    #[test]
    fn indexing_and_equality_use_the_sizes_of_the_schema() {
        let numbers = array_of(json!({"type": "number"}), None);
        assert_eq!(cost(numbers.clone(), "self[1] == 0.0"), 2);
        let strings = array_of(string(None), Some(8));
        assert_eq!(cost(strings, "self[1] == self[1]"), 314_577);
        assert_eq!(cost(numbers, "self.all(x, x == 0.0)"), 6_291_454);
        let int_or_strings = array_of(json!({"x-kubernetes-int-or-string": true}), None);
        assert_eq!(cost(int_or_strings, "self[0] == 5"), 3);
        let objects = array_of(json!({"type": "object", "properties": {}}), None);
        assert_eq!(cost(objects, "self[0] == null"), 2);
        let nested = array_of(array_of(json!({"type": "number"}), None), Some(51));
        assert_eq!(cost(nested, "self[0][0] == -1.0"), 3);
        let number_maps = array_of(map_of(json!({"type": "number"}), None), None);
        assert_eq!(
            cost(number_maps.clone(), "self.all(x, x.y == 25.2)"),
            6_291_452
        );
        assert_eq!(cost(number_maps, "self[0].x > 2.0"), 4);
        let times = map_of(json!({"type": "string", "format": "date-time"}), None);
        assert_eq!(cost(times, "self[\"a\"] == self[\"b\"]"), 8);
        let integers = map_of(json!({"type": "integer"}), None);
        assert_eq!(cost(integers, "oldSelf.size() == self.size()"), 5);
        // Map keys are apiservercel.StringType, whose MaxElements is 0.
        let values = |max: Option<i64>| map_of(string(max), max);
        let rule = "self.all(x, x.contains(self[x]))";
        assert_eq!(cost(values(None), rule), 2_752_507);
        assert_eq!(cost(values(Some(10)), rule), 72);
        let deep = |max: Option<i64>| {
            let mut object = json!({"type": "object", "required": ["required"],
                "properties": {"required": {"type": "string"}, "optional": {"type": "string"}}});
            if let Some(max) = max {
                object["maxProperties"] = json!(max);
            }
            array_of(map_of(object, max), max)
        };
        let rule = "self.all(x, x[\"y\"].required == \"z\")";
        assert_eq!(cost(deep(None), rule), 7_340_027);
        assert_eq!(cost(deep(Some(10)), rule), 72);
    }

    #[test]
    fn the_rules_of_the_rejected_crds_cost_what_the_api_server_reported() {
        // Derived by hand from checker/cost.go for the fixture rules (see tests/crd_cost.rs).
        // countries: 1 (self) + 1 (@result) + 1048575 * (2 (loop condition) + 42 (step)),
        // the step being 1 (@result) + [1 (c) + 10 (list literal) + 30 (in: list size)].
        let countries = array_of(json!({"type": "string", "pattern": "^[A-Z]{2}$"}), None);
        let rule = "self.all(c, c in ['AT','BE','BG','HR','CY','CZ','DK','EE','FI','FR','DE','GR',\
                    'HU','IE','IT','LV','LT','LU','MT','NL','PL','PT','RO','SK','SI','ES','SE',\
                    'IS','LI','NO'])";
        assert_eq!(cost(countries, rule), 46_137_302);
        // `self == oldSelf` on maxLength 253: 2 idents + ceil(1012 * 0.1).
        assert_eq!(cost(string(Some(253)), "self == oldSelf"), 104);
        // has() is free (PresenceTestHasCost(false)): 1 + (1 + 2) + 1 for the != itself.
        let connection = json!({"type": "object", "properties": {
            "local": {"type": "boolean"},
            "kubeconfigSecretRef": {"type": "object", "properties": {"name": {"type": "string"}}}}});
        let rule = "(has(self.local) && self.local) != has(self.kubeconfigSecretRef)";
        assert_eq!(cost(connection, rule), 5);
    }

    #[test]
    fn the_api_server_words_the_factor_like_go_does() {
        let message = cost_error_message("estimated rule cost", 46_137_302, 10_000_000);
        assert!(message.starts_with("estimated rule cost exceeds budget by factor of 4.6x (try"));
        let message = cost_error_message("estimated rule cost", 1_099_515_822_082, 10_000_000);
        assert!(message.contains("factor of more than 100x"));
        let message = cost_error_message("estimated rule cost", 12_000_000, 10_000_000);
        assert!(message.contains("factor of 1.200000x"), "{message}");
    }

    #[test]
    fn constructs_the_estimator_does_not_model_fail_closed() {
        let list = array_of(string(None), Some(3));
        for (rule, named) in [
            ("self.isSorted()", "isSorted"),
            ("self.all(i, v, true)", "all"),
            ("matches(self[0], 'x')", "matches"),
            ("cel.bind(x, self, x.size() > 0)", "bind"),
            ("type(self) == list", "type"),
        ] {
            let err = fail(list.clone(), rule);
            assert_eq!(err.kind, CostErrorKind::Unsupported, "{rule}: {err:?}");
            assert!(err.detail.contains(named), "{rule}: {}", err.detail);
        }
        let object = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let err = fail(object.clone(), "self.b == 'x'");
        assert_eq!(err.kind, CostErrorKind::Compile);
        assert_eq!(fail(object.clone(), "self.a").kind, CostErrorKind::Compile);
        assert_eq!(fail(object, "self.a ==").kind, CostErrorKind::Parse);
    }

    #[test]
    fn cardinality_multiplies_through_enclosing_lists_and_maps() {
        let rule = json!([{"rule": "self == oldSelf"}]);
        let crd = |max_items: Option<i64>| {
            let mut list = array_of(
                json!({"type": "object", "properties": {
                    "name": {"type": "string", "maxLength": 10, "x-kubernetes-validations": rule}}}),
                max_items,
            );
            list["x-kubernetes-list-type"] = json!("map");
            json!({"metadata": {"name": "things.example.com"}, "spec": {"versions": [
                {"name": "v1", "schema": {"openAPIV3Schema": {"type": "object",
                    "properties": {"spec": {"type": "object", "properties": {"items": list}}}}}}]}})
        };
        let bounded = estimate_crd(&crd(Some(5))).unwrap();
        let rule = bounded.rules().next().unwrap();
        assert_eq!(
            rule.path,
            "spec.validation.openAPIV3Schema.properties[spec].properties[items].items\
             .properties[name].x-kubernetes-validations[0].rule"
        );
        // 2 + ceil(40 * 0.1) = 6 per call, 5 items.
        assert_eq!(rule.per_call_cost, 6);
        assert_eq!(rule.cardinality, Cardinality::Bounded(5));
        assert_eq!(rule.cost, 30);
        let unbounded = estimate_crd(&crd(None)).unwrap();
        let rule = unbounded.rules().next().unwrap();
        // The string node: min serialized size 2, so 3 MiB / 3.
        assert_eq!(rule.cardinality, Cardinality::Estimated(1_048_576));
        assert_eq!(rule.cost, 6 * 1_048_576);
        assert_eq!(unbounded.total(), 6 * 1_048_576);
    }

    #[test]
    fn versions_with_different_schemas_are_estimated_apart() {
        let schema = |rule: &str| {
            json!({"openAPIV3Schema": {"type": "object", "properties": {
            "spec": {"type": "string", "x-kubernetes-validations": [{"rule": rule}]}}}})
        };
        let crd = json!({"metadata": {"name": "things.example.com"}, "spec": {"versions": [
            {"name": "v1", "schema": schema("self == 'a'")},
            {"name": "v2", "schema": schema("self.startsWith('b')")}]}});
        let paths: Vec<String> = estimate_crd(&crd)
            .unwrap()
            .rules()
            .map(|r| r.path.clone())
            .collect();
        assert_eq!(
            paths,
            [
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule",
                "spec.versions[1].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"
            ]
        );
    }
}
