//! Reads Kubernetes manifests (YAML or JSON, multi-document, `kind: List`) from files and
//! directories for `sovra plan`. Every problem names the file and document it is in.

use crate::Error;
use crate::crd::{SensitivityClass, SovereignCluster, SovereignWorkload};
use k8s_openapi::api::core::v1::Node;
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The objects `sovra plan` reads; other kinds are skipped.
#[derive(Debug, Default)]
pub struct Manifests {
    pub classes: Vec<SensitivityClass>,
    pub clusters: Vec<SovereignCluster>,
    pub workloads: Vec<SovereignWorkload>,
    pub nodes: Vec<Node>,
}

/// Loads every manifest under `paths`. Returns what could be read and one error per bad
/// document, so a CI run reports all problems at once.
pub fn load(paths: &[PathBuf]) -> (Manifests, Vec<Error>) {
    let mut manifests = Manifests::default();
    let mut problems = Vec::new();
    for file in expand(paths, &mut problems) {
        match std::fs::read_to_string(&file) {
            Ok(text) => manifests.read_documents(&file, &text, &mut problems),
            Err(source) => problems.push(Error::ReadFile { path: file, source }),
        }
    }
    (manifests, problems)
}

/// Files named directly, plus `*.yaml`, `*.yml` and `*.json` found recursively in directories,
/// in sorted order so output does not depend on the file system.
fn expand(paths: &[PathBuf], problems: &mut Vec<Error>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut files, problems);
        } else {
            files.push(path.clone());
        }
    }
    files
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, problems: &mut Vec<Error>) {
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
            walk(&path, files, problems);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            files.push(path);
        }
    }
}

impl Manifests {
    fn read_documents(&mut self, path: &Path, text: &str, problems: &mut Vec<Error>) {
        for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
            let invalid = |message: String| Error::InvalidManifest {
                path: path.to_owned(),
                document: index + 1,
                message,
            };
            match Value::deserialize(document) {
                Ok(Value::Null) => {}
                Ok(value) => {
                    if let Err(message) = self.add(value) {
                        problems.push(invalid(message));
                    }
                }
                Err(e) => {
                    problems.push(invalid(format!("not valid YAML: {e}")));
                    // The YAML stream cannot be resynchronised after a syntax error.
                    return;
                }
            }
        }
    }

    fn add(&mut self, value: Value) -> Result<(), String> {
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match (api_version.as_str(), kind.as_str()) {
            ("v1", "List") => {
                let items = value
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let mut errors = Vec::new();
                for (i, item) in items.into_iter().enumerate() {
                    if let Err(e) = self.add(item) {
                        errors.push(format!("items[{i}]: {e}"));
                    }
                }
                if errors.is_empty() {
                    Ok(())
                } else {
                    Err(errors.join("; "))
                }
            }
            ("v1", "Node") => {
                self.nodes.push(parse(&kind, value)?);
                Ok(())
            }
            ("sovra.dev/v1alpha1", "SensitivityClass") => {
                self.classes.push(parse(&kind, value)?);
                Ok(())
            }
            ("sovra.dev/v1alpha1", "SovereignCluster") => {
                self.clusters.push(parse(&kind, value)?);
                Ok(())
            }
            ("sovra.dev/v1alpha1", "SovereignWorkload") => {
                let mut workload: SovereignWorkload = parse(&kind, value)?;
                if workload.metadata.namespace.is_none() {
                    workload.metadata.namespace = Some("default".to_owned());
                }
                self.workloads.push(workload);
                Ok(())
            }
            (_, _) => Ok(()),
        }
    }
}

/// Deserializes one object after checking the CRD's CEL rules, as the API server would.
fn parse<T: serde::de::DeserializeOwned>(kind: &str, value: Value) -> Result<T, String> {
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
        .to_owned();
    let violations = crate::crd::validate_cel(kind, &value);
    if !violations.is_empty() {
        return Err(format!("{kind} {name}: {}", violations.join("; ")));
    }
    serde_json::from_value(value).map_err(|e| format!("{kind} {name}: {e}"))
}
