//! Field paths and sets of them, as structured-merge-diff's `fieldpath`
//! package has them: path elements (`.name`, `[key=value]`, `[=value]`,
//! `[index]`), sets organised as a tree of members and children, and the
//! `FieldsV1` encoding (`f:`, `k:`, `v:`, `i:`, `.`) of `managedFields`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

use super::schema::Schema;

/// One step from a value to a child (upstream's `fieldpath.PathElement`).
#[derive(Debug, Clone)]
pub enum PathElement {
    /// A field of a map or struct.
    Field(String),
    /// The item of a `map` list with these key fields, sorted by name.
    Key(Vec<(String, Value)>),
    /// The item of a `set` list with this value.
    Value(Value),
    /// An item of a list by position (not produced for the lists modelled here).
    Index(usize),
}

pub type Path = Vec<PathElement>;

impl PathElement {
    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// The `FieldsV1` key of this element, e.g. `f:spec` or `k:{"type":"Ready"}`.
    fn serialize(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(fields) => {
                let map: Map<String, Value> = fields.iter().cloned().collect();
                format!("k:{}", Value::Object(map))
            }
            PathElement::Value(value) => format!("v:{value}"),
            PathElement::Index(index) => format!("i:{index}"),
        }
    }

    /// Parses a `FieldsV1` key; `Ok(None)` for element types this version does not know.
    fn deserialize(key: &str) -> Result<Option<PathElement>, String> {
        let Some((kind, rest)) = key.split_once(':') else {
            return Err(format!("missing colon: {key}"));
        };
        let json = |text: &str| {
            serde_json::from_str::<Value>(text).map_err(|e| format!("parsing {key:?}: {e}"))
        };
        Ok(Some(match kind {
            "f" => PathElement::Field(rest.to_string()),
            "v" => PathElement::Value(json(rest)?),
            "k" => match json(rest)? {
                Value::Object(map) => PathElement::Key(map.into_iter().collect()),
                _ => return Err(format!("key element {key:?} is not an object")),
            },
            "i" => PathElement::Index(rest.parse().map_err(|e| format!("parsing {key:?}: {e}"))?),
            _ => return Ok(None),
        }))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Upstream's order: field names < keys < values < indexes.
impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => compare_field_lists(a, b),
            (PathElement::Value(a), PathElement::Value(b)) => compare_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

fn compare_field_lists(a: &[(String, Value)], b: &[(String, Value)]) -> Ordering {
    for ((an, av), (bn, bv)) in a.iter().zip(b) {
        let order = an.cmp(bn).then_with(|| compare_values(av, bv));
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// structured-merge-diff's `value.Compare`: numbers < strings < booleans <
/// lists < maps < null.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => {
                let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                x.partial_cmp(&y).unwrap_or(Ordering::Equal)
            }
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (x, y) in x.iter().zip(y) {
                let order = compare_values(x, y);
                if order != Ordering::Equal {
                    return order;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            for ((xk, xv), (yk, yv)) in x.iter().zip(y) {
                let order = xk.cmp(yk).then_with(|| compare_values(xv, yv));
                if order != Ordering::Equal {
                    return order;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Null, Value::Null) => Ordering::Equal,
        _ => rank(a).cmp(&rank(b)),
    }
}

/// `value.ToString`: strings quoted, everything else as JSON.
fn value_to_string(value: &Value) -> String {
    value.to_string()
}

impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(name, value)| format!("{name}={}", value_to_string(value)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(value) => write!(f, "[={}]", value_to_string(value)),
            PathElement::Index(index) => write!(f, "[{index}]"),
        }
    }
}

/// A path the way conflicts name it, e.g. `.spec.template.spec.containers[name="app"].image`.
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// A set of field paths (upstream's `fieldpath.Set`): `members` are the
/// paths ending here, `children` the subsets below an element.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Set {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, Set>,
}

impl Set {
    #[cfg(test)]
    pub fn from_paths<'a>(paths: impl IntoIterator<Item = &'a [PathElement]>) -> Set {
        let mut set = Set::default();
        for path in paths {
            set.insert(path);
        }
        set
    }

    /// Adds `path` (not its parents). The empty path (the whole object) is never owned.
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(Set::is_empty)
    }

    /// The paths below `pe`, without it.
    pub fn with_prefix(&self, pe: &PathElement) -> Option<&Set> {
        self.children.get(pe).filter(|c| !c.is_empty())
    }

    pub fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, child) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    pub fn intersection(&self, other: &Set) -> Set {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, child)| {
                let both = child.intersection(other.children.get(pe)?);
                (!both.is_empty()).then(|| (pe.clone(), both))
            })
            .collect();
        Set { members, children }
    }

    /// Members of `self` not in `other`; a member of `other` does not remove
    /// `self`'s children below it (upstream's `Difference`).
    pub fn difference(&self, other: &Set) -> Set {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, child)| {
                let rest = match other.children.get(pe) {
                    Some(theirs) => child.difference(theirs),
                    None => child.clone(),
                };
                (!rest.is_empty()).then(|| (pe.clone(), rest))
            })
            .collect();
        Set { members, children }
    }

    /// Adds as members the named (struct) fields that have owned children,
    /// which sets usually leave implicit (upstream's `EnsureNamedFieldsAreMembers`).
    pub fn ensure_named_fields_are_members(&self, schema: &Schema) -> Set {
        let mut members = self.members.clone();
        let mut children = BTreeMap::new();
        for (pe, child) in &self.children {
            if let PathElement::Field(name) = pe
                && schema.is_named_field(name)
            {
                members.insert(pe.clone());
            }
            let child_schema = schema.child(pe);
            children.insert(
                pe.clone(),
                child.ensure_named_fields_are_members(child_schema),
            );
        }
        Set { members, children }
    }

    /// Every member path, members before children at each level (upstream's `Iterate`).
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        for member in &self.members {
            prefix.push(member.clone());
            out.push(prefix.clone());
            prefix.pop();
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The `fieldsV1` object of a managedFields entry.
    pub fn to_fields_v1(&self) -> Value {
        let mut out = Map::new();
        let children = self.children.iter().filter(|(_, c)| !c.is_empty());
        let mut keys: BTreeSet<&PathElement> = self.members.iter().collect();
        keys.extend(children.clone().map(|(pe, _)| pe));
        for pe in keys {
            let entry = match self.children.get(pe).filter(|c| !c.is_empty()) {
                Some(child) => {
                    let mut nested = match child.to_fields_v1() {
                        Value::Object(map) => map,
                        _ => Map::new(),
                    };
                    if self.members.contains(pe) {
                        nested.insert(".".into(), Value::Object(Map::new()));
                    }
                    Value::Object(nested)
                }
                None => Value::Object(Map::new()),
            };
            out.insert(pe.serialize(), entry);
        }
        Value::Object(out)
    }

    /// Parses a `fieldsV1` object; keys of unknown element types are skipped like upstream.
    pub fn from_fields_v1(fields: &Value) -> Result<Set, String> {
        Ok(read_fields(fields)?.0.unwrap_or_default())
    }
}

/// Returns the subset below `value` (None if it has no children) and whether
/// the path itself is a member (an empty object, or one with `"."`).
fn read_fields(value: &Value) -> Result<(Option<Set>, bool), String> {
    let Value::Object(map) = value else {
        return Err(format!("expected an object in fieldsV1, got {value}"));
    };
    let mut children: Option<Set> = None;
    let mut member = false;
    for (key, nested) in map {
        if key == "." {
            member = true;
            continue;
        }
        let Some(pe) = PathElement::deserialize(key)? else {
            continue;
        };
        let (grandchildren, child_member) = read_fields(nested)?;
        if child_member {
            children
                .get_or_insert_with(Set::default)
                .members
                .insert(pe.clone());
        }
        if let Some(grandchildren) = grandchildren {
            children
                .get_or_insert_with(Set::default)
                .children
                .insert(pe, grandchildren);
        }
    }
    if children.is_none() {
        member = true;
    }
    Ok((children, member))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn field(name: &str) -> PathElement {
        PathElement::Field(name.into())
    }

    #[test]
    fn fields_v1_round_trips_members_children_and_dots() {
        let fields = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}},
                       "f:finalizers": {"v:\"a\"": {}}}
        });
        let set = Set::from_fields_v1(&fields).unwrap();
        assert!(set.has(&[field("metadata"), field("labels")]));
        assert!(set.has(&[field("metadata"), field("labels"), field("app")]));
        assert!(!set.has(&[field("metadata")]));
        let item = PathElement::Key(vec![("name".into(), json!("c"))]);
        assert!(set.has(&[field("spec"), field("containers"), item.clone()]));
        assert_eq!(set.to_fields_v1(), fields);
        let path = [field("spec"), field("containers"), item, field("image")];
        assert_eq!(path_string(&path), ".spec.containers[name=\"c\"].image");
    }

    #[test]
    fn difference_keeps_the_children_of_a_removed_member() {
        let a = Set::from_paths([&[field("a"), field("b")][..], &[field("c")][..]]);
        let parent = Set::from_paths([&[field("a")][..], &[field("c")][..]]);
        assert_eq!(
            a.difference(&parent),
            Set::from_paths([&[field("a"), field("b")][..]])
        );
    }
}
