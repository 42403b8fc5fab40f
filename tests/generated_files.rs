//! Files generated from the Rust types must match what is committed: `crds/` and its copies
//! in the Helm chart and the kustomization. Run `make crds` after changing `src/crd/`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

const COPIES: [&str; 3] = ["crds", "charts/sovra/crds", "deploy/crds"];

#[test]
fn committed_crds_and_their_copies_match_the_rust_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for crd in sovra::crd::all() {
        let expected = sovra::crd::to_yaml(&crd).unwrap();
        for dir in COPIES {
            let path = root.join(dir).join(sovra::crd::file_name(&crd));
            let committed = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}; run `make crds`", path.display()));
            assert!(
                committed == expected,
                "{} is out of date with src/crd/; run `make crds`",
                path.display()
            );
        }
    }
}

#[test]
fn every_crd_has_a_status_subresource_and_printer_columns() {
    for crd in sovra::crd::all() {
        let version = &crd.spec.versions[0];
        let name = crd.metadata.name.clone().unwrap();
        assert!(
            version
                .additional_printer_columns
                .as_ref()
                .is_some_and(|c| !c.is_empty()),
            "{name} has printer columns"
        );
        if name != "sensitivityclasses.sovra.dev" {
            assert!(
                version
                    .subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some(),
                "{name} has a status subresource"
            );
        }
    }
}

#[test]
fn shipped_default_classes_are_the_same_in_deploy_and_examples() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let deploy = std::fs::read_to_string(root.join("deploy/sensitivityclasses.yaml")).unwrap();
    let examples = std::fs::read_to_string(root.join("examples/sensitivityclasses.yaml")).unwrap();
    assert_eq!(deploy, examples);
}
