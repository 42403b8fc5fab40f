//! Inputs the fuzz targets (fuzz/fuzz_targets/) once crashed or hung on, fed to the same
//! library functions: each must now give a result, quickly. One file per input under
//! tests/fixtures/fuzz/<target>/.

use std::path::{Path, PathBuf};

/// The committed inputs of one fuzz target.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz")
        .join(target);
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(error) => unreachable!("cannot read {}: {error}", dir.display()),
    };
    paths.sort();
    paths
        .into_iter()
        .filter(|p| p.extension().is_none_or(|e| e != "md"))
        .map(|path| match std::fs::read(&path) {
            Ok(bytes) => (path, bytes),
            Err(error) => unreachable!("cannot read {}: {error}", path.display()),
        })
        .collect()
}

/// Runs `check` on every input of `target`.
fn each_input(target: &str, check: impl Fn(&Path, &[u8])) {
    for (path, bytes) in inputs(target) {
        check(&path, &bytes);
    }
}

#[test]
fn kubeconfig_inputs_are_accepted_or_refused_without_a_panic() {
    each_input("kubeconfig", |_, bytes| {
        if let Ok(text) = std::str::from_utf8(bytes) {
            let _ = sovra::controller::check_kubeconfig(text);
        }
    });
}

/// Found by the kubeconfig target (its first run, 2026-12): a server URL whose path holds `@`
/// characters. The target then asserted "no `@` anywhere in an accepted server"; the library
/// was right to accept it, since kube connects to the host before the path
/// (`member.example:64`), so the target's check was narrowed to the authority.
#[test]
fn an_at_sign_in_the_server_path_is_not_userinfo() {
    let Some((_, bytes)) = inputs("kubeconfig")
        .into_iter()
        .find(|(path, _)| path.ends_with("at-sign-in-server-path"))
    else {
        unreachable!("the fixture is missing");
    };
    let text = String::from_utf8_lossy(&bytes);
    let accepted = sovra::controller::check_kubeconfig(&text);
    let Ok(kubeconfig) = accepted else {
        unreachable!("refused: {accepted:?}");
    };
    let servers: Vec<&str> = kubeconfig
        .clusters
        .iter()
        .filter_map(|c| c.cluster.as_ref()?.server.as_deref())
        .collect();
    assert_eq!(servers.len(), 1, "{servers:?}");
    assert!(
        servers
            .iter()
            .all(|s| s.starts_with("https://member.example:64/")),
        "{servers:?}"
    );
    // The same `@`s after a user name in the authority are refused.
    let with_userinfo = text.replace("https://member.example:64/", "https://u@member.example:64/");
    assert!(sovra::controller::check_kubeconfig(&with_userinfo).is_err());
}
