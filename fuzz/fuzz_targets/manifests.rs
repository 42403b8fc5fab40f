//! Manifest text as `sovra plan` reads it: YAML or JSON, multi-document, `kind: List`, checked
//! against the CRDs' schemas and CEL rules. Any text must give objects or errors, never a
//! panic, a hang or a stack overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sovra::cli::manifests::Manifests;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut manifests = Manifests::default();
    let mut problems = Vec::new();
    manifests.read_str(Path::new("fuzz.yaml"), &text, &mut problems);
    for problem in &problems {
        let _ = problem.to_string();
    }
});
