//! Reads Kubernetes manifests (YAML or JSON, multi-document, `kind: List`) from files and
//! directories for `sovra plan`. Every problem names the file and document it is in.
//!
//! What the API server would refuse is refused here too: a document that is not a Kubernetes
//! object, an object that breaks its CRD's OpenAPI schema or CEL rules, and the same object
//! twice. Input is bounded before it is parsed: files larger than [`MAX_FILE_BYTES`], and
//! nesting deeper than [`MAX_NESTING`], are refused at once.

mod files;
mod identity;
mod json;
mod nesting;
mod origin;
mod size_bound;
mod validation;
mod wording;

pub use nesting::MAX_NESTING;
pub use size_bound::{MAX_FILE_BYTES, MAX_TOTAL_BYTES};

use crate::Error;
use crate::crd::{SensitivityClass, SovereignCluster, SovereignWorkload};
use files::expand;
use identity::{identify, ours};
use json::Json;
use k8s_openapi::api::core::v1::Node;
use nesting::too_deep;
use origin::Origin;
use serde::Deserialize;
use serde_json::Value;
use size_bound::read_bounded;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use validation::parse;
use wording::{describe, shortened};

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

/// Loads every manifest under `paths`. Returns what could be read and one error per bad
/// document, so a CI run reports all problems at once. Input without any manifest, or without
/// a SovereignWorkload to plan, is an error too: a wrong path must not pass a CI job.
pub fn load(paths: &[PathBuf]) -> (Manifests, Vec<Error>) {
    let (manifests, mut problems, files) = read_all(paths);
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

/// Loads every manifest under `paths` like [`load`], with the same bounds and checks, but
/// without requiring a SovereignWorkload: for `sovra report --clusters`, which only needs the
/// SovereignClusters, and the `-f` overrides of `sovra plan --live` (a tightened class, a new
/// cluster). Input without any manifest file is still an error.
pub fn load_objects(paths: &[PathBuf]) -> (Manifests, Vec<Error>) {
    let (manifests, mut problems, files) = read_all(paths);
    if problems.is_empty() && files.is_empty() {
        let named: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        problems.push(Error::NoManifests(format!(
            "no *.yaml, *.yml or *.json file in {}",
            named.join(", ")
        )));
    }
    (manifests, problems)
}

/// Reads every file under `paths` within the size budget; returns the files read too.
fn read_all(paths: &[PathBuf]) -> (Manifests, Vec<Error>, Vec<PathBuf>) {
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
    (manifests, problems, files)
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
