//! Reads Kubernetes manifests (YAML or JSON, multi-document, `kind: List`) from files and
//! directories for `sovra plan`. Every problem names the file and document it is in.
//!
//! What the API server would refuse is refused here too: a document that is not a Kubernetes
//! object, an object that breaks its CRD's OpenAPI schema or CEL rules, and the same object
//! twice. Input is bounded before it is parsed: files larger than [`MAX_FILE_BYTES`], and
//! nesting deeper than [`MAX_NESTING`], are refused at once.

use crate::Error;
use crate::crd::openapi;
use crate::crd::{SensitivityClass, SovereignCluster, SovereignWorkload};
use k8s_openapi::api::core::v1::Node;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// The largest file `plan` reads (a Kubernetes object is at most 1.5 MiB in etcd).
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// The most `plan` reads from all files together.
pub const MAX_TOTAL_BYTES: u64 = 64 * 1024 * 1024;
/// The deepest nesting of collections `plan` parses; Kubernetes objects stay far below it.
pub const MAX_NESTING: usize = 64;
/// Violations listed per object; the rest are counted.
const MAX_VIOLATIONS: usize = 20;

/// The objects `sovra plan` reads; other kinds are skipped.
#[derive(Debug, Default)]
pub struct Manifests {
    pub classes: Vec<SensitivityClass>,
    pub clusters: Vec<SovereignCluster>,
    pub workloads: Vec<SovereignWorkload>,
    pub nodes: Vec<Node>,
    /// Where each object was read, by kind and namespace/name.
    origins: BTreeMap<(&'static str, String), Origin>,
}

/// Where a document (or an item of a `kind: List`) was read.
#[derive(Clone, Debug)]
struct Origin {
    path: PathBuf,
    document: usize,
    item: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} document {}", self.path.display(), self.document)?;
        match self.item {
            Some(item) => write!(f, " items[{item}]"),
            None => Ok(()),
        }
    }
}

impl Origin {
    fn error(&self, message: impl fmt::Display) -> Error {
        Error::InvalidManifest {
            path: self.path.clone(),
            document: self.document,
            message: match self.item {
                Some(item) => format!("items[{item}]: {message}"),
                None => message.to_string(),
            },
        }
    }
}

/// Loads every manifest under `paths`. Returns what could be read and one error per bad
/// document, so a CI run reports all problems at once. Input without any manifest, or without
/// a SovereignWorkload to plan, is an error too: a wrong path must not pass a CI job.
pub fn load(paths: &[PathBuf]) -> (Manifests, Vec<Error>) {
    let mut manifests = Manifests::default();
    let mut problems = Vec::new();
    let files = expand(paths, &mut problems);
    let mut budget = MAX_TOTAL_BYTES;
    for file in &files {
        match read_bounded(file, MAX_FILE_BYTES.min(budget)) {
            Ok(text) => {
                budget = budget.saturating_sub(u64::try_from(text.len()).unwrap_or(u64::MAX));
                manifests.read_str(file, &text, &mut problems);
            }
            Err(error) => problems.push(error),
        }
    }
    let named = || {
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if problems.is_empty() && files.is_empty() {
        problems.push(Error::NoManifests(format!(
            "no *.yaml, *.yml or *.json file in {}",
            named()
        )));
    } else if problems.is_empty() && manifests.workloads.is_empty() {
        problems.push(Error::NoManifests(format!(
            "no SovereignWorkload in {} ({} file(s) read)",
            named(),
            files.len()
        )));
    }
    (manifests, problems)
}

/// The file's text, refused when it is larger than `limit` bytes or not UTF-8.
fn read_bounded(path: &Path, limit: u64) -> Result<String, Error> {
    let failed = |source| Error::ReadFile {
        path: path.to_owned(),
        source,
    };
    let too_large = || {
        failed(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "larger than {} MiB, the most sovra plan reads ({} MiB from one file, {} MiB in all)",
                limit / (1024 * 1024),
                MAX_FILE_BYTES / (1024 * 1024),
                MAX_TOTAL_BYTES / (1024 * 1024)
            ),
        ))
    };
    let file = std::fs::File::open(path).map_err(failed)?;
    if file
        .metadata()
        .is_ok_and(|m| m.is_file() && m.len() > limit)
    {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|_| {
        failed(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8 text",
        ))
    })
}

/// Files named directly, plus `*.yaml`, `*.yml` and `*.json` found recursively in directories,
/// in sorted order so output does not depend on the file system. A file or directory reached
/// twice (named twice, or through a symbolic link) is read once.
fn expand(paths: &[PathBuf], problems: &mut Vec<Error>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut seen = BTreeSet::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut files, &mut seen, problems);
        } else if first_visit(path, &mut seen) {
            files.push(path.clone());
        }
    }
    files
}

fn first_visit(path: &Path, seen: &mut BTreeSet<PathBuf>) -> bool {
    seen.insert(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()))
}

fn walk(
    dir: &Path,
    files: &mut Vec<PathBuf>,
    seen: &mut BTreeSet<PathBuf>,
    problems: &mut Vec<Error>,
) {
    if !first_visit(dir, seen) {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(source) => {
            problems.push(Error::ReadFile {
                path: dir.to_owned(),
                source,
            });
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            walk(&path, files, seen, problems);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) && first_visit(&path, seen)
        {
            files.push(path);
        }
    }
}

impl Manifests {
    /// Reads the documents of one file's text, as `sovra plan` does; `path` only names it in
    /// errors. Never panics, whatever the text.
    pub fn read_str(&mut self, path: &Path, text: &str, problems: &mut Vec<Error>) {
        if let Some(deep) = too_deep(text) {
            let origin = Origin {
                path: path.to_owned(),
                document: deep.document,
                item: None,
            };
            problems.push(origin.error(format!(
                "line {}: collections nested more than {MAX_NESTING} levels deep; not a Kubernetes object",
                deep.line
            )));
            return;
        }
        for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
            let origin = Origin {
                path: path.to_owned(),
                document: index + 1,
                item: None,
            };
            match Json::deserialize(document) {
                Ok(Json(Value::Null)) => {}
                Ok(Json(value)) => self.add_document(value, &origin, problems),
                Err(e) => {
                    problems.push(origin.error(format!("not valid YAML: {e}")));
                    // The YAML stream cannot be resynchronised after a syntax error.
                    return;
                }
            }
        }
    }

    fn add_document(&mut self, value: Value, origin: &Origin, problems: &mut Vec<Error>) {
        let (api_version, kind) = match identify(&value) {
            Ok(found) => found,
            Err(message) => return problems.push(origin.error(message)),
        };
        if (api_version.as_str(), kind.as_str()) != ("v1", "List") {
            if let Err(message) = self.add(value, origin) {
                problems.push(origin.error(message));
            }
            return;
        }
        let items = match value.get("items") {
            None | Some(Value::Null) => return,
            Some(Value::Array(items)) => items,
            Some(other) => {
                return problems.push(origin.error(format!(
                    "a List's items must be a list, not {}",
                    describe(other)
                )));
            }
        };
        for (index, item) in items.iter().enumerate() {
            let origin = Origin {
                item: Some(index),
                ..origin.clone()
            };
            let added = match identify(item) {
                Ok((_, kind)) if kind == "List" => Err("a List inside a List".to_owned()),
                Ok(_) => self.add(item.clone(), &origin),
                Err(message) => Err(message),
            };
            if let Err(message) = added {
                problems.push(origin.error(message));
            }
        }
    }

    fn add(&mut self, value: Value, origin: &Origin) -> Result<(), String> {
        let (api_version, kind) = identify(&value)?;
        match kind.as_str() {
            "Node" if ours(&api_version, "Node", "v1")? => {
                let node: Node = parse("Node", value)?;
                self.remember("Node", None, node.metadata.name.as_deref(), origin)?;
                self.nodes.push(node);
            }
            "SensitivityClass" | "SovereignCluster" | "SovereignWorkload"
                if ours(&api_version, &kind, "sovra.dev/v1alpha1")? =>
            {
                self.add_sovra(&kind, value, origin)?;
            }
            // Other kinds (Deployments, ConfigMaps, ...), or other groups' kinds of the same
            // name, are not Sovra's to plan.
            _ => {}
        }
        Ok(())
    }

    fn add_sovra(&mut self, kind: &str, value: Value, origin: &Origin) -> Result<(), String> {
        match kind {
            "SensitivityClass" => {
                let class: SensitivityClass = parse(kind, value)?;
                self.remember(
                    "SensitivityClass",
                    None,
                    class.metadata.name.as_deref(),
                    origin,
                )?;
                self.classes.push(class);
            }
            "SovereignCluster" => {
                let cluster: SovereignCluster = parse(kind, value)?;
                self.remember(
                    "SovereignCluster",
                    None,
                    cluster.metadata.name.as_deref(),
                    origin,
                )?;
                self.clusters.push(cluster);
            }
            _ => {
                let mut workload: SovereignWorkload = parse(kind, value)?;
                let namespace = workload
                    .metadata
                    .namespace
                    .get_or_insert_with(|| "default".to_owned())
                    .clone();
                self.remember(
                    "SovereignWorkload",
                    Some(&namespace),
                    workload.metadata.name.as_deref(),
                    origin,
                )?;
                self.workloads.push(workload);
            }
        }
        Ok(())
    }

    /// Records where the object was read; the same kind, namespace and name twice is an error
    /// naming both places.
    fn remember(
        &mut self,
        kind: &'static str,
        namespace: Option<&str>,
        name: Option<&str>,
        origin: &Origin,
    ) -> Result<(), String> {
        let name = match namespace {
            Some(namespace) => format!("{namespace}/{}", name.unwrap_or_default()),
            None => name.unwrap_or_default().to_owned(),
        };
        let shown = shortened(&name);
        match self.origins.get(&(kind, name.clone())) {
            Some(first) => Err(format!(
                "{kind} {shown} is defined twice: first in {first}, again in {origin}"
            )),
            None => {
                self.origins.insert((kind, name), origin.clone());
                Ok(())
            }
        }
    }
}

/// Whether an object of `kind` with `api_version` is the one `plan` reads (`expected`), or an
/// object of another API group that happens to use the same kind name (false). Another version
/// of the expected group, or a version without a group, is a mistake.
fn ours(api_version: &str, kind: &str, expected: &str) -> Result<bool, String> {
    let group = |v: &str| v.rsplit_once('/').map(|(group, _)| group.to_owned());
    if api_version == expected {
        return Ok(true);
    }
    match group(api_version) {
        Some(other) if Some(&other) != group(expected).as_ref() => Ok(false),
        _ => Err(format!(
            "{kind} has apiVersion {}; sovra plan reads {kind} {expected}",
            shortened(api_version)
        )),
    }
}

/// At most 100 characters of a name taken from the input, for messages.
fn shortened(text: &str) -> String {
    if text.chars().count() <= 100 {
        text.to_owned()
    } else {
        format!("{}...", text.chars().take(100).collect::<String>())
    }
}

/// `apiVersion` and `kind` of a document that is a Kubernetes object.
fn identify(value: &Value) -> Result<(String, String), String> {
    let Some(object) = value.as_object() else {
        return Err(format!(
            "not a Kubernetes object: a document must be a mapping with apiVersion and kind, this one is {}",
            describe(value)
        ));
    };
    let field = |name: &str| match object.get(name) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
        Some(other) if !other.is_null() => Err(format!(
            "not a Kubernetes object: {name} must be a string, not {}",
            describe(other)
        )),
        _ => Err(format!("not a Kubernetes object: it has no {name}")),
    };
    Ok((field("apiVersion")?, field("kind")?))
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Deserializes one object after checking it as the API server would: its CRD's OpenAPI
/// schema (after pruning nulls and applying defaults), then the CEL rules. Nodes are only
/// checked for a name.
fn parse<T: serde::de::DeserializeOwned>(kind: &str, mut value: Value) -> Result<T, String> {
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map_or_else(|| "<unnamed>".to_owned(), shortened);
    let failed = |violations: Vec<String>| {
        let more = violations.len().saturating_sub(MAX_VIOLATIONS);
        let mut listed: Vec<String> = violations.into_iter().take(MAX_VIOLATIONS).collect();
        if more > 0 {
            listed.push(format!("and {more} more"));
        }
        format!("{kind} {name}: {}", listed.join("; "))
    };
    let violations = match openapi::for_kind(kind) {
        Some(schema) => {
            schema.apply_defaults(&mut value);
            let violations = schema.validate(&value);
            if violations.is_empty() {
                schema.validate_cel(&value)
            } else {
                violations
            }
        }
        None => openapi::validate_metadata(value.get("metadata"), false),
    };
    if !violations.is_empty() {
        return Err(failed(violations));
    }
    serde_json::from_value(value).map_err(|e| format!("{kind} {name}: {e}"))
}

/// A document as JSON, as the API server reads it. Unlike `serde_json::Value`'s own
/// deserializer, a number JSON cannot hold (`.nan`, `.inf`) is an error, not a silent `null`
/// (which would then be pruned and defaulted: `replicas: .nan` would become 1 replica), and so
/// is a key given twice in one mapping (`kubectl` refuses both). Keys are read as text, as the
/// API server's YAML reader does.
struct Json(Value);

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor).map(Json)
    }
}

struct JsonVisitor;

impl<'de> serde::de::Visitor<'de> for JsonVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value JSON can hold")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_i128<E: serde::de::Error>(self, value: i128) -> Result<Value, E> {
        i64::try_from(value)
            .map(Value::from)
            .map_err(|_| E::custom(format!("{value} is out of range for a number")))
    }

    fn visit_u128<E: serde::de::Error>(self, value: u128) -> Result<Value, E> {
        u64::try_from(value)
            .map(Value::from)
            .map_err(|_| E::custom(format!("{value} is out of range for a number")))
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(value)
            .map(Value::Number)
            .ok_or_else(|| {
                E::custom(format!(
                    "{value} is not a number JSON can hold (no NaN or infinity in Kubernetes objects)"
                ))
            })
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Json::deserialize(deserializer).map(|json| json.0)
    }

    fn visit_newtype_struct<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Value, D::Error> {
        Json::deserialize(deserializer).map(|json| json.0)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Json(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some((key, Json(value))) = map.next_entry::<String, Json>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "mapping key {:?} is given twice",
                    shortened(&key)
                )));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Where the text nests collections deeper than [`MAX_NESTING`].
#[derive(Debug, PartialEq, Eq)]
struct Deep {
    line: usize,
    document: usize,
}

/// A scan of the text for nesting, before the YAML parser sees it: the parser reads a whole
/// document before it refuses one nested too deep, which takes seconds to minutes for a
/// document of brackets. Counts flow collections (`[`, `{`) outside quoted scalars, comments
/// and block scalars, and block sequences and complex keys opened on one line (`- - -`).
fn too_deep(text: &str) -> Option<Deep> {
    let mut flow = 0usize;
    let mut quote: Option<u8> = None;
    let mut block_scalar: Option<usize> = None;
    let mut document = 1;
    let mut content = false;
    for (number, line) in text.split('\n').enumerate() {
        let bytes = line.as_bytes();
        let indent = bytes.iter().take_while(|b| **b == b' ').count();
        if let Some(parent) = block_scalar {
            if line.trim().is_empty() || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        let mut rest = bytes;
        if quote.is_none() && flow == 0 {
            let marker = |m: &[u8]| {
                bytes.starts_with(m) && bytes.get(3).is_none_or(|b| b.is_ascii_whitespace())
            };
            if marker(b"---") {
                if content {
                    document += 1;
                    content = false;
                }
                rest = bytes.get(3..).unwrap_or_default();
            } else if marker(b"...") {
                continue;
            }
            // Block sequence entries and complex keys opened on one line: `- - - x`.
            let mut opened = 0;
            let mut tokens = rest.get(indent.min(rest.len())..).unwrap_or_default();
            while let [b'-' | b'?', b' ' | b'\t', tail @ ..] = tokens {
                opened += 1;
                tokens = tail;
                while let [b' ' | b'\t', tail @ ..] = tokens {
                    tokens = tail;
                }
            }
            if opened > MAX_NESTING {
                return Some(Deep {
                    line: number + 1,
                    document,
                });
            }
        }
        // Whether a quote or bracket here starts a node, and whether the text is inside a
        // plain scalar (in block context, where brackets and quotes are only text).
        let mut at_start = true;
        let mut plain = false;
        let mut previous: u8 = b' ';
        let mut index = 0;
        while let Some(&byte) = rest.get(index) {
            index += 1;
            if let Some(open) = quote {
                if open == b'"' && byte == b'\\' {
                    index += 1;
                } else if byte == open {
                    if open == b'\'' && rest.get(index) == Some(&b'\'') {
                        index += 1;
                    } else {
                        quote = None;
                        at_start = false;
                    }
                }
                previous = byte;
                continue;
            }
            if byte.is_ascii_whitespace() {
                previous = byte;
                continue;
            }
            if byte == b'#' && previous.is_ascii_whitespace() {
                break;
            }
            content = true;
            previous = byte;
            let blank_after = rest.get(index).is_none_or(u8::is_ascii_whitespace);
            if flow == 0 && plain {
                if byte == b':' && blank_after {
                    plain = false;
                    at_start = true;
                }
                continue;
            }
            match byte {
                b'"' | b'\'' if at_start => {
                    quote = Some(byte);
                }
                b'[' | b'{' if at_start || flow > 0 => {
                    flow += 1;
                    if flow > MAX_NESTING {
                        return Some(Deep {
                            line: number + 1,
                            document,
                        });
                    }
                    at_start = true;
                }
                b']' | b'}' if flow > 0 => {
                    flow -= 1;
                    at_start = false;
                }
                b',' if flow > 0 => at_start = true,
                b':' if blank_after || flow > 0 => at_start = true,
                b'-' | b'?' if blank_after => at_start = true,
                b'|' | b'>' if flow == 0 && at_start => {
                    block_scalar = Some(indent);
                    break;
                }
                // An anchor or a tag comes before the node it names.
                b'&' | b'!' if at_start => {
                    while rest.get(index).is_some_and(|b| {
                        !(b.is_ascii_whitespace() || (flow > 0 && b",[]{}".contains(b)))
                    }) {
                        index += 1;
                    }
                }
                _ => {
                    plain = flow == 0;
                    at_start = false;
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_collections_deeper_than_the_bound_are_found_before_parsing() {
        assert_eq!(
            too_deep(&"[".repeat(100_000)),
            Some(Deep {
                line: 1,
                document: 1
            })
        );
        assert_eq!(
            too_deep(&format!("a: 1\n---\nb: {}", "{a: ".repeat(65))),
            Some(Deep {
                line: 3,
                document: 2
            })
        );
        assert!(too_deep(&"- ".repeat(100_000)).is_some());
        for prefix in [
            "a: &anchor ",
            "a: !!seq ",
            "- ",
            "--- ",
            "a:\n  b: ",
            "[x, ",
        ] {
            let text = format!("{prefix}{}", "[".repeat(65));
            assert!(too_deep(&text).is_some(), "{text}");
        }
    }

    #[test]
    fn brackets_in_scalars_comments_and_block_scalars_are_not_nesting() {
        let text = format!(
            "a: '{0}'\nb: \"{0}\"\nc: x{0}\n# {0}\nd: |\n  {0}\n  {0}\ne: [don't, {{f: g}}]\n",
            "[".repeat(100)
        );
        assert_eq!(too_deep(&text), None);
        let nested = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert_eq!(too_deep(&nested), None);
    }

    #[test]
    fn an_escaped_quote_does_not_end_a_quoted_scalar() {
        let text = format!("a: \"\\\" {0}\"\nb: 'it''s {0}'\n", "[".repeat(100));
        assert_eq!(too_deep(&text), None);
    }
}
