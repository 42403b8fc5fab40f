//! Which files `plan` reads for the paths it is given: the choice and the order must not depend
//! on the file system, and a file reached twice must not make its objects duplicates.

use crate::Error;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Files named directly, plus `*.yaml`, `*.yml` and `*.json` found recursively in directories,
/// in sorted order so output does not depend on the file system. A file or directory reached
/// twice (named twice, or through a symbolic link) is read once.
pub(super) fn expand(paths: &[PathBuf], problems: &mut Vec<Error>) -> Vec<PathBuf> {
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
