//! `sovra plan` on bad input, run as a newcomer runs it: the real binary, a folder of
//! manifests, the exit code and what it prints.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `sovra plan -f <args>` in the repository root.
fn plan(args: &[&Path]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sovra"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("plan")
        .arg("-f");
    command.args(args);
    match command.output() {
        Ok(output) => output,
        Err(error) => unreachable!("cannot run sovra: {error}"),
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn temp_dir() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => unreachable!("no temp dir: {error}"),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    if let Err(error) = std::fs::write(&path, text) {
        unreachable!("cannot write {}: {error}", path.display());
    }
    path
}

/// The shipped examples, copied into a fresh folder, plus `extra` as `extra.yaml`.
fn examples_with(extra: &str) -> tempfile::TempDir {
    let dir = temp_dir();
    for name in [
        "clusters.yaml",
        "nodes.yaml",
        "sensitivityclasses.yaml",
        "workloads.yaml",
    ] {
        let from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name);
        if let Err(error) = std::fs::copy(&from, dir.path().join(name)) {
            unreachable!("cannot copy {}: {error}", from.display());
        }
    }
    write(dir.path(), "extra.yaml", extra);
    dir
}

/// Asserts exit code 2, no decision table, and every one of `expected` on stderr.
fn assert_refused_input(output: &Output, expected: &[&str]) {
    let errors = stderr(output);
    assert_eq!(output.status.code(), Some(2), "{errors}");
    assert!(stdout(output).is_empty(), "{}", stdout(output));
    for text in expected {
        assert!(errors.contains(text), "expected {text:?} in:\n{errors}");
    }
}

fn workload(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: sovra.dev/v1alpha1\nkind: SovereignWorkload\nmetadata: {{name: {name}, namespace: ministry-fin}}\nspec:\n{spec}"
    )
}

const TEMPLATE: &str =
    "  template: {spec: {containers: [{name: app, image: registry.example.nl/app:1}]}}\n";

#[test]
fn the_shipped_examples_exit_1_with_one_refusal() {
    let output = plan(&[Path::new("examples/")]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("1 workload(s) refused"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        stdout(&output).matches(" Refused ").count(),
        1,
        "{}",
        stdout(&output)
    );
    // The refusal block leads with the deciding constraint and the nearest candidate.
    assert!(
        stdout(&output).contains(
            "\n  refused: country and provider headquarters together rule out every candidate: "
        ) && stdout(&output).contains(
            "; nearest: hexacloud-brussels/hx-confidential, which meets every requirement but country ("
        ),
        "{}",
        stdout(&output)
    );
}

#[test]
fn an_empty_folder_exits_2_instead_of_passing_with_an_empty_table() {
    let dir = temp_dir();
    write(dir.path(), "README.md", "# not a manifest\n");
    assert_refused_input(
        &plan(&[dir.path()]),
        &["no manifests to plan: no *.yaml, *.yml or *.json file in"],
    );
}

#[test]
fn files_without_any_sovereign_workload_exit_2() {
    let dir = temp_dir();
    let only_comments = write(dir.path(), "empty.yaml", "# nothing here\n---\n");
    let deployment = write(
        dir.path(),
        "deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
    );
    assert_refused_input(
        &plan(&[&only_comments, &deployment]),
        &[
            "no manifests to plan: no SovereignWorkload in",
            "(2 file(s) read)",
        ],
    );
}

#[test]
/// The bound is checked before parsing (the message comes from that check, not from the
/// parser), so the parser never recurses 100,000 levels deep. How fast is for benchmarks, not
/// for a test on a loaded machine.
fn deeply_nested_brackets_are_refused_at_once() {
    for text in [
        "[".repeat(100_000),
        "- ".repeat(100_000),
        "{a: ".repeat(100_000),
    ] {
        let dir = examples_with(&text);
        let output = plan(&[dir.path()]);
        assert_refused_input(
            &output,
            &["extra.yaml: document 1: line 1: collections nested more than 64 levels deep"],
        );
    }
}

#[test]
fn a_file_larger_than_the_bound_is_refused_without_parsing_it() {
    let dir = examples_with("");
    let padding = format!("# {}\n", "x".repeat(1023));
    write(dir.path(), "huge.yaml", &padding.repeat(9 * 1024));
    let output = plan(&[dir.path()]);
    assert_refused_input(&output, &["huge.yaml: larger than 8 MiB"]);
}

#[test]
fn the_same_workload_twice_is_an_error_naming_both_places() {
    let dir = examples_with(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\n---\n{}",
        workload(
            "case-management",
            &format!("  sensitivity: internal\n{TEMPLATE}")
        )
        .replace("ministry-fin", "ministry-bzk")
    ));
    let output = plan(&[dir.path()]);
    let workloads = dir.path().join("workloads.yaml");
    let extra = dir.path().join("extra.yaml");
    assert_refused_input(
        &output,
        &[&format!(
            "{}: document 2: SovereignWorkload ministry-bzk/case-management is defined twice: first in {} document 2, again in {} document 2",
            workloads.display(),
            extra.display(),
            workloads.display()
        )],
    );
}

#[test]
fn the_same_class_twice_in_one_list_names_both_items() {
    let cluster = "{apiVersion: sovra.dev/v1alpha1, kind: SensitivityClass, metadata: {name: extra}, spec: {}}";
    let dir = examples_with(&format!(
        "apiVersion: v1\nkind: List\nitems: [{cluster}, {cluster}]\n"
    ));
    assert_refused_input(
        &plan(&[dir.path()]),
        &[
            "document 1: items[1]: SensitivityClass extra is defined twice: first in",
            "extra.yaml document 1 items[0], again in",
        ],
    );
}

#[test]
fn documents_that_are_not_kubernetes_objects_are_errors() {
    for (text, expected) in [
        (
            "just a string\n",
            "not a Kubernetes object: a document must be a mapping with apiVersion and kind, this one is a string",
        ),
        ("42\n", "this one is a number"),
        ("- apiVersion: v1\n  kind: Node\n", "this one is a list"),
        (
            "metadata: {name: x}\nspec: {}\n",
            "not a Kubernetes object: it has no apiVersion",
        ),
        (
            "apiVersion: v1\nmetadata: {name: x}\n",
            "not a Kubernetes object: it has no kind",
        ),
        (
            "apiVersion: v1\nkind: [Node]\n",
            "kind must be a string, not a list",
        ),
        (
            "apiVersion: v1\nkind: List\nitems: [7]\n",
            "document 1: items[0]: not a Kubernetes object",
        ),
        (
            "apiVersion: v1\nkind: List\nitems: {a: 1}\n",
            "a List's items must be a list, not a mapping",
        ),
        (
            "apiVersion: v1alpha1\nkind: SovereignWorkload\nmetadata: {name: x}\n",
            "SovereignWorkload has apiVersion v1alpha1; sovra plan reads SovereignWorkload sovra.dev/v1alpha1",
        ),
        (
            "apiVersion: sovra.dev/v1\nkind: SovereignCluster\nmetadata: {name: x}\n",
            "SovereignCluster has apiVersion sovra.dev/v1;",
        ),
        (
            "apiVersion: sovra.dev/v1alpha1\nkind: SensitivityClass\nspec: {}\n",
            "SensitivityClass <unnamed>: metadata.name: Required value: name or generateName is required",
        ),
    ] {
        let dir = examples_with(text);
        assert_refused_input(
            &plan(&[dir.path()]),
            &["extra.yaml: document 1: ", expected],
        );
    }
}

#[test]
fn objects_of_other_kinds_and_groups_are_skipped() {
    let dir = examples_with(
        "apiVersion: example.com/v1\nkind: SovereignWorkload\nmetadata: {name: x}\nspec: 7\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\ndata: {a: '[[['}\n",
    );
    let output = plan(&[dir.path()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
}

#[test]
fn a_negative_replica_count_is_reported_as_the_api_server_reports_it() {
    let dir = examples_with(&workload(
        "negative",
        &format!("  sensitivity: internal\n  replicas: -1\n{TEMPLATE}"),
    ));
    assert_refused_input(
        &plan(&[dir.path()]),
        &[
            "extra.yaml: document 1: SovereignWorkload negative: spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0",
        ],
    );
}

#[test]
fn schema_violations_are_reported_with_the_api_servers_field_paths() {
    let cases = [
        (
            workload("typed", &format!("  sensitivity: internal\n  replicas: three\n{TEMPLATE}")),
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
        ),
        (
            workload("unbounded", &format!("  sensitivity: internal\n  placement: {{clusters: 65}}\n{TEMPLATE}")),
            "spec.placement.clusters: Invalid value: 65: spec.placement.clusters in body should be less than or equal to 64",
        ),
        (
            workload("lower", &format!("  sensitivity: internal\n  placement: {{requiredCountries: [nl]}}\n{TEMPLATE}")),
            "spec.placement.requiredCountries[0]: Invalid value: \"nl\": spec.placement.requiredCountries[0] in body should match '^[A-Z]{2}$'",
        ),
        (
            workload("many", &format!("  sensitivity: internal\n  placement: {{requiredCountries: [{}]}}\n{TEMPLATE}", (b'A'..=b'Z').chain(b'A'..=b'E').map(|c| format!("A{}", c as char)).collect::<Vec<_>>().join(", "))),
            "spec.placement.requiredCountries: Too many: 31: must have at most 30 items",
        ),
        (
            workload("long", &format!("  sensitivity: {}\n{TEMPLATE}", "x".repeat(254))),
            "spec.sensitivity: Too long: may not be more than 253 bytes",
        ),
        (
            workload("classless", TEMPLATE),
            "SovereignWorkload classless: spec.sensitivity: Required value",
        ),
        (
            workload("typo", &format!("  sensitivity: internal\n  replica: 3\n{TEMPLATE}")),
            "unknown field \"spec.replica\"",
        ),
        (
            "apiVersion: sovra.dev/v1alpha1\nkind: SensitivityClass\nmetadata: {name: sometimes}\nspec: {enforcement: sometimes}\n".to_owned(),
            "spec.enforcement: Unsupported value: \"sometimes\": supported values: ",
        ),
        (
            workload("Upper_Case", &format!("  sensitivity: internal\n{TEMPLATE}")),
            "metadata.name: Invalid value: \"Upper_Case\": a lowercase RFC 1123 subdomain",
        ),
    ];
    for (text, expected) in cases {
        let dir = examples_with(&text);
        assert_refused_input(
            &plan(&[dir.path()]),
            &["extra.yaml: document 1: ", expected],
        );
    }
}

#[test]
fn cel_rules_still_apply_after_the_schema_passes() {
    let dir = examples_with(&workload(
        "preferring",
        &format!(
            "  sensitivity: internal\n  placement: {{requiredCountries: [NL], preferredCountries: [DE]}}\n{TEMPLATE}"
        ),
    ));
    assert_refused_input(
        &plan(&[dir.path()]),
        &["preferredCountries must be a subset of requiredCountries"],
    );
}

#[test]
fn null_fields_are_pruned_and_defaulted_like_the_api_server_does() {
    let dir = examples_with(&workload(
        "nulls",
        &format!("  sensitivity: internal\n  replicas: null\n  placement: null\n{TEMPLATE}"),
    ));
    let output = plan(&[dir.path()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("ministry-fin/nulls"),
        "{}",
        stdout(&output)
    );
}

#[cfg(unix)]
#[test]
fn a_symbolic_link_loop_in_the_folder_is_read_once() {
    let dir = examples_with("");
    if let Err(error) = std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")) {
        unreachable!("cannot link: {error}");
    }
    let output = plan(&[dir.path()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
}

#[test]
fn numbers_json_cannot_hold_and_keys_given_twice_are_refused_not_read_as_null_or_the_last() {
    for (line, expected) in [
        ("  replicas: .nan\n", "NaN is not a number JSON can hold"),
        ("  replicas: -.inf\n", "-inf is not a number JSON can hold"),
        (
            "  replicas: 99999999999999999999\n",
            "99999999999999999999 is out of range for a number",
        ),
        (
            "  sensitivity: secret\n",
            "mapping key \"sensitivity\" is given twice",
        ),
    ] {
        let dir = examples_with(&workload(
            "odd",
            &format!("  sensitivity: internal\n{line}{TEMPLATE}"),
        ));
        assert_refused_input(
            &plan(&[dir.path()]),
            &["extra.yaml: document 1: ", expected],
        );
    }
}
