//! Operations on values walked with a [`Schema`], after structured-merge-diff's
//! `typed` package: the field set of a value, merging an applied
//! configuration into a live object, comparing two objects, removing a set
//! of fields, and validating list keys.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::{Map, Value};

use super::fieldpath::{Path, PathElement, Set, path_string};
use super::schema::{DEDUCED_MAP, ListKind, ListSchema, MapSchema, Schema};

/// What a value is walked as.
enum Atom<'a> {
    /// Scalars, atomic lists and maps, and values whose shape does not fit the schema.
    Leaf,
    List(&'a ListSchema),
    Map(&'a MapSchema),
}

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Object,
    Array,
    Scalar,
}

fn shape(value: Option<&Value>) -> Option<Shape> {
    match value? {
        Value::Null => None,
        Value::Object(_) => Some(Shape::Object),
        Value::Array(_) => Some(Shape::Array),
        _ => Some(Shape::Scalar),
    }
}

/// Upstream's `deduceAtom` + `handleAtom` for one or two values. Absent and
/// null values take the schema's own shape; two values of different shapes
/// are a leaf (the right one replaces the left).
fn atom<'a>(schema: &'a Schema, lhs: Option<&Value>, rhs: Option<&Value>) -> Atom<'a> {
    let shape = match (shape(lhs), shape(rhs)) {
        (Some(l), Some(r)) if l != r => return Atom::Leaf,
        (l, r) => r.or(l),
    };
    match (schema, shape) {
        (Schema::Deduced, None | Some(Shape::Object)) => Atom::Map(&DEDUCED_MAP),
        (Schema::List(list), None | Some(Shape::Array)) if list.kind != ListKind::Atomic => {
            Atom::List(list)
        }
        (Schema::Map(map), None | Some(Shape::Object)) if !map.atomic => Atom::Map(map),
        _ => Atom::Leaf,
    }
}

/// The path element of a list item (upstream's `listItemToPathElement`).
fn item_element(list: &ListSchema, item: &Value) -> Result<PathElement, String> {
    match &list.kind {
        ListKind::Map(keys) => {
            let object = match item {
                Value::Null => {
                    return Err("associative list with keys may not have a null element".into());
                }
                Value::Object(object) => object,
                _ => {
                    return Err("associative list with keys may not have non-map elements".into());
                }
            };
            let defaults = match &list.items {
                Schema::Map(map) => Some(&map.defaults),
                _ => None,
            };
            let mut fields = Vec::new();
            for key in keys {
                let value = object
                    .get(key)
                    .or_else(|| defaults.and_then(|d| d.get(key)))
                    .ok_or_else(|| {
                        format!(
                            "associative list with keys has an element that omits key field {key:?} (and doesn't have default value)"
                        )
                    })?;
                fields.push((key.clone(), value.clone()));
            }
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(PathElement::Key(fields))
        }
        ListKind::Set => match item {
            Value::Object(_) => {
                Err("associative list without keys has an element that's a map type".into())
            }
            Value::Array(_) => Err("not supported: associative list with lists as elements".into()),
            Value::Null => {
                Err("associative list without keys has an element that's an explicit null".into())
            }
            _ => Ok(PathElement::Value(item.clone())),
        },
        ListKind::Atomic => Err("invalid indexing of non-associative list".into()),
    }
}

fn empty_or_absent(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Object(map)) => map.is_empty(),
        Some(Value::Array(items)) => items.is_empty(),
        Some(_) => false,
    }
}

// ---------------------------------------------------------------------------
// Validation

/// The list-key errors of a value, as `path: message` (upstream rejects these
/// when converting an object to a typed value). Duplicate keys are allowed
/// in live objects (created by other means), not in applied configurations.
pub fn validate(value: &Value, schema: &Schema, allow_duplicates: bool) -> Vec<String> {
    let mut errors = Vec::new();
    validate_at(
        value,
        schema,
        allow_duplicates,
        &mut Vec::new(),
        &mut errors,
    );
    errors
}

fn validate_at(
    value: &Value,
    schema: &Schema,
    allow_duplicates: bool,
    path: &mut Path,
    errors: &mut Vec<String>,
) {
    match atom(schema, Some(value), None) {
        Atom::Leaf => {}
        Atom::Map(map) => {
            for (key, child) in value.as_object().into_iter().flatten() {
                path.push(PathElement::Field(key.clone()));
                validate_at(child, map.field(key), allow_duplicates, path, errors);
                path.pop();
            }
        }
        Atom::List(list) => {
            let mut seen = Vec::new();
            for (index, item) in value.as_array().into_iter().flatten().enumerate() {
                match item_element(list, item) {
                    Err(message) => {
                        errors.push(format!("{}: element {index}: {message}", path_string(path)));
                    }
                    Ok(pe) if seen.contains(&pe) => {
                        if !allow_duplicates {
                            errors.push(format!(
                                "{}: duplicate entries for key {pe}",
                                path_string(path)
                            ));
                        }
                    }
                    Ok(pe) => {
                        path.push(pe.clone());
                        validate_at(item, &list.items, allow_duplicates, path, errors);
                        path.pop();
                        seen.push(pe);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Field sets

/// The fields a value sets (upstream's `ToFieldSet`): leaves, list items,
/// map entries that are not named struct fields, and empty or null fields.
pub fn to_field_set(value: &Value, schema: &Schema) -> Set {
    let mut set = Set::default();
    field_set_at(value, schema, &mut Vec::new(), &mut set);
    set
}

fn field_set_at(value: &Value, schema: &Schema, path: &mut Path, set: &mut Set) {
    match atom(schema, Some(value), None) {
        Atom::Leaf => set.insert(path),
        Atom::List(list) => {
            let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
            let elements: Vec<Option<PathElement>> =
                items.iter().map(|i| item_element(list, i).ok()).collect();
            let mut duplicates = Vec::new();
            for (i, pe) in elements.iter().enumerate() {
                if let Some(pe) = pe
                    && elements.iter().take(i).any(|p| p.as_ref() == Some(pe))
                    && !duplicates.contains(pe)
                {
                    duplicates.push(pe.clone());
                    path.push(pe.clone());
                    set.insert(path);
                    path.pop();
                }
            }
            for (item, pe) in items.iter().zip(elements) {
                let Some(pe) = pe.filter(|pe| !duplicates.contains(pe)) else {
                    continue;
                };
                path.push(pe);
                field_set_at(item, &list.items, path, set);
                set.insert(path);
                path.pop();
            }
        }
        Atom::Map(map) => {
            for (key, child) in value.as_object().into_iter().flatten() {
                path.push(PathElement::Field(key.clone()));
                field_set_at(child, map.field(key), path, set);
                let empty = child.is_null() || child.as_object().is_some_and(Map::is_empty);
                if empty || !map.fields.contains_key(key) {
                    set.insert(path);
                }
                path.pop();
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Merge

/// Merges `rhs` (an applied configuration) into `lhs` (the live object):
/// granular maps by key, `map` lists by their keys and `set` lists by value
/// (keeping the applied order for shared items), everything else replaced
/// by the applied value (upstream's `TypedValue.Merge`).
pub fn merge(lhs: Option<&Value>, rhs: Option<&Value>, schema: &Schema) -> Option<Value> {
    let keep_rhs = || rhs.or(lhs).cloned();
    match atom(schema, lhs, rhs) {
        Atom::Leaf => keep_rhs(),
        _ if empty_or_absent(lhs) && empty_or_absent(rhs) => keep_rhs(),
        Atom::Map(map) => {
            let (l, r) = (
                lhs.and_then(Value::as_object),
                rhs.and_then(Value::as_object),
            );
            let mut out = Map::new();
            let keys = l.into_iter().chain(r).flat_map(|m| m.keys());
            for key in keys {
                if out.contains_key(key) {
                    continue;
                }
                let child = merge(
                    l.and_then(|m| m.get(key)),
                    r.and_then(|m| m.get(key)),
                    map.field(key),
                );
                if let Some(child) = child {
                    out.insert(key.clone(), child);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Atom::List(list) => {
            let empty = Vec::new();
            let l = lhs.and_then(Value::as_array).unwrap_or(&empty);
            let r = rhs.and_then(Value::as_array).unwrap_or(&empty);
            let out = merge_list(list, l, r);
            (!out.is_empty()).then_some(Value::Array(out))
        }
    }
}

/// Elements and their values; a duplicated lhs element maps to null (it is
/// not merged with the applied value, upstream's `indexListPathElements`).
type Indexed<'a> = (
    Vec<(PathElement, &'a Value)>,
    BTreeMap<PathElement, &'a Value>,
);

static NULL: Value = Value::Null;

fn index_items<'a>(list: &ListSchema, items: &'a [Value]) -> Indexed<'a> {
    let mut elements = Vec::new();
    let mut observed: BTreeMap<PathElement, &Value> = BTreeMap::new();
    for item in items {
        let Ok(pe) = item_element(list, item) else {
            continue;
        };
        match observed.get_mut(&pe) {
            Some(slot) => *slot = &NULL,
            None => {
                observed.insert(pe.clone(), item);
            }
        }
        elements.push((pe, item));
    }
    (elements, observed)
}

/// Upstream's `mergingWalker.visitListItems`, step for step.
fn merge_list(list: &ListSchema, lhs: &[Value], rhs: &[Value]) -> Vec<Value> {
    let (rhs_pes, observed_rhs) = index_items(list, rhs);
    let (lhs_pes, observed_lhs) = index_items(list, lhs);
    let mut shared: VecDeque<&PathElement> = rhs_pes
        .iter()
        .map(|(pe, _)| pe)
        .filter(|pe| observed_lhs.contains_key(pe))
        .collect();
    let mut next_shared = shared.pop_front();
    let mut merged_rhs = BTreeSet::new();
    let mut out = Vec::new();
    let (mut li, mut ri) = (0, 0);
    while li < lhs_pes.len() || ri < rhs_pes.len() {
        if let (Some((lpe, _)), Some((rpe, _))) = (lhs_pes.get(li), rhs_pes.get(ri)) {
            if lpe == rpe {
                merged_rhs.insert(lpe.clone());
                let (l, r) = (observed_lhs.get(lpe), observed_rhs.get(lpe));
                out.extend(merge(l.copied(), r.copied(), &list.items));
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if observed_rhs.contains_key(lpe) && next_shared.is_some_and(|n| n != lpe) {
                // A shared item, but not the one wanted in this round.
                li += 1;
                continue;
            }
        }
        if let Some((lpe, item)) = lhs_pes.get(li) {
            if !observed_rhs.contains_key(lpe) {
                out.extend(merge(Some(item), None, &list.items));
                li += 1;
                continue;
            } else if merged_rhs.contains(lpe) {
                li += 1;
            }
        }
        if let Some((rpe, _)) = rhs_pes.get(ri) {
            merged_rhs.insert(rpe.clone());
            let (l, r) = (observed_lhs.get(rpe), observed_rhs.get(rpe));
            out.extend(merge(l.copied(), r.copied(), &list.items));
            ri += 1;
            if next_shared == Some(rpe) {
                next_shared = shared.pop_front();
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Compare

/// The fields `rhs` added, modified and removed relative to `lhs`.
#[derive(Debug, Default)]
pub struct Comparison {
    pub added: Set,
    pub modified: Set,
    pub removed: Set,
}

/// Upstream's `TypedValue.Compare`: leaves compare by value; an added or
/// removed map or list is reported itself as well as its leaves.
pub fn compare(lhs: &Value, rhs: &Value, schema: &Schema) -> Comparison {
    let mut out = Comparison::default();
    compare_at(Some(lhs), Some(rhs), schema, &mut Vec::new(), &mut out);
    out
}

fn compare_leaf(lhs: Option<&Value>, rhs: Option<&Value>, path: &Path, out: &mut Comparison) {
    match (lhs, rhs) {
        (None, None) => {}
        (None, Some(_)) => out.added.insert(path),
        (Some(_), None) => out.removed.insert(path),
        (Some(l), Some(r)) if l != r => out.modified.insert(path),
        _ => {}
    }
}

fn compare_at(
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    schema: &Schema,
    path: &mut Path,
    out: &mut Comparison,
) {
    let leaf = match atom(schema, lhs, rhs) {
        Atom::Leaf => true,
        _ if empty_or_absent(lhs) && empty_or_absent(rhs) => true,
        Atom::Map(map) => {
            let (l, r) = (
                lhs.and_then(Value::as_object),
                rhs.and_then(Value::as_object),
            );
            let mut done = BTreeSet::new();
            for key in l.into_iter().chain(r).flat_map(|m| m.keys()) {
                if !done.insert(key) {
                    continue;
                }
                path.push(PathElement::Field(key.clone()));
                compare_at(
                    l.and_then(|m| m.get(key)),
                    r.and_then(|m| m.get(key)),
                    map.field(key),
                    path,
                    out,
                );
                path.pop();
            }
            false
        }
        Atom::List(list) => {
            compare_list(list, lhs, rhs, path, out);
            false
        }
    };
    if leaf {
        compare_leaf(lhs, rhs, path, out);
    } else if lhs.is_none() {
        out.added.insert(path);
    } else if rhs.is_none() {
        out.removed.insert(path);
    }
}

fn compare_list(
    list: &ListSchema,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    path: &mut Path,
    out: &mut Comparison,
) {
    let empty = Vec::new();
    let l = lhs.and_then(Value::as_array).unwrap_or(&empty);
    let r = rhs.and_then(Value::as_array).unwrap_or(&empty);
    let mut all: Vec<PathElement> = Vec::new();
    let mut values: BTreeMap<PathElement, (Vec<&Value>, Vec<&Value>)> = BTreeMap::new();
    for item in l {
        if let Ok(pe) = item_element(list, item) {
            let entry = values.entry(pe.clone()).or_default();
            if entry.0.is_empty() {
                all.push(pe);
            }
            entry.0.push(item);
        }
    }
    for item in r {
        if let Ok(pe) = item_element(list, item) {
            let entry = values.entry(pe.clone()).or_default();
            if entry.0.is_empty() && entry.1.is_empty() {
                all.push(pe);
            }
            entry.1.push(item);
        }
    }
    for pe in all {
        let Some((ls, rs)) = values.get(&pe) else {
            continue;
        };
        path.push(pe);
        match (ls.len(), rs.len()) {
            (0..=1, 0..=1) => compare_at(
                ls.first().copied(),
                rs.first().copied(),
                &list.items,
                path,
                out,
            ),
            (2.., 2..) => {
                if ls != rs {
                    out.modified.insert(path);
                }
            }
            (2.., _) => {
                if let Some(r) = rs.first() {
                    compare_at(None, Some(r), &list.items, path, out);
                }
                out.removed.insert(path);
            }
            (_, _) => {
                if let Some(l) = ls.first() {
                    compare_at(Some(l), None, &list.items, path, out);
                }
                out.added.insert(path);
            }
        }
        path.pop();
    }
}

// ---------------------------------------------------------------------------
// Remove

/// `value` without the fields in `set` (upstream's `RemoveItems`): a member
/// goes with everything below it; maps and lists left empty become null.
pub fn remove_items(value: &Value, set: &Set, schema: &Schema) -> Value {
    remove_at(value, set, schema).unwrap_or(Value::Null)
}

fn remove_at(value: &Value, set: &Set, schema: &Schema) -> Option<Value> {
    match atom(schema, Some(value), None) {
        Atom::Leaf => match value {
            Value::Object(_) | Value::Array(_) => None,
            scalar => Some(scalar.clone()),
        },
        Atom::Map(map) => {
            let object = value.as_object().filter(|m| !m.is_empty())?;
            let mut out = Map::new();
            for (key, child) in object {
                let pe = PathElement::Field(key.clone());
                if set.has(std::slice::from_ref(&pe)) {
                    continue;
                }
                let kept = match set.with_prefix(&pe) {
                    Some(subset) => remove_items(child, subset, map.field(key)),
                    None => child.clone(),
                };
                out.insert(key.clone(), kept);
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Atom::List(list) => {
            let items = value.as_array().filter(|l| !l.is_empty())?;
            let mut out = Vec::new();
            for item in items {
                let Ok(pe) = item_element(list, item) else {
                    out.push(item.clone());
                    continue;
                };
                if set.has(std::slice::from_ref(&pe)) {
                    continue;
                }
                out.push(match set.with_prefix(&pe) {
                    Some(subset) => remove_items(item, subset, &list.items),
                    None => item.clone(),
                });
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn keyed_by_name() -> Schema {
        Schema::List(Box::new(ListSchema {
            kind: ListKind::Map(vec!["name".into()]),
            items: Schema::Deduced,
        }))
    }

    #[test]
    fn map_lists_merge_by_key_in_the_applied_order_keeping_live_only_items_in_place() {
        let live = json!([{"name": "a", "x": 1}, {"name": "live-only"}, {"name": "b", "x": 2}]);
        let applied = json!([{"name": "b", "x": 3}, {"name": "a", "y": 4}, {"name": "new"}]);
        let merged = merge(Some(&live), Some(&applied), &keyed_by_name()).unwrap();
        assert_eq!(
            merged,
            json!([{"name": "live-only"}, {"name": "b", "x": 3}, {"name": "a", "x": 1, "y": 4},
                   {"name": "new"}])
        );
    }

    #[test]
    fn applied_duplicates_and_missing_keys_are_typing_errors() {
        let applied = json!({"items": [{"name": "a"}, {"name": "a"}, {"other": 1}]});
        let schema = Schema::Map(Box::new(MapSchema {
            fields: BTreeMap::from([("items".to_string(), keyed_by_name())]),
            rest: Schema::Deduced,
            atomic: false,
            defaults: BTreeMap::new(),
        }));
        assert_eq!(
            validate(&applied, &schema, false),
            [
                ".items: duplicate entries for key [name=\"a\"]",
                ".items: element 2: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)"
            ]
        );
        assert_eq!(validate(&applied, &schema, true).len(), 1);
    }
}
