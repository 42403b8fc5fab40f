//! The harness behind `tests/real_server.rs`: the real etcd and kube-apiserver binaries of the
//! controller-runtime envtest convention (`$KUBEBUILDER_ASSETS/{kube-apiserver,etcd,kubectl}`),
//! certificates made at test time with rcgen, kubeconfigs, real `kubectl` and `helm`, and a hub
//! with Sovra's CRDs and Helm chart installed and the operator running under the chart's RBAC.
//!
//! Every process is killed and reaped, and every temp dir removed, when its owner is dropped,
//! during a panic too (the tail of each process's output is printed then).

pub mod apiserver;
pub mod certs;
pub mod etcd;
pub mod hub;
pub mod process;

use process::{executable, on_path, say};
use std::path::PathBuf;
use std::time::Duration;

/// Where to look when a real-server test skips or cannot start.
pub const SEE_README: &str = "see README \"Real-server tests\"";

/// Every wait on a real server is bounded by this and fails naming what it waited for.
pub const WAIT: Duration = Duration::from_secs(60);

/// The binaries a control plane needs.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub kube_apiserver: PathBuf,
    pub etcd: PathBuf,
    pub kubectl: PathBuf,
    pub helm: PathBuf,
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn assets_dir() -> Option<PathBuf> {
    std::env::var_os("KUBEBUILDER_ASSETS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Reports a skipped test on one line, straight to stderr (visible under `cargo test`).
pub fn skip(test: &str, why: &str) {
    say(&format!("{test}: skipped: {why}; {SEE_README}"));
}

/// The binaries for a kube-apiserver test, or `None` (with a skip line) when
/// `KUBEBUILDER_ASSETS` is not set. A set variable that does not lead to the binaries fails the
/// test: whoever set it wants the suite to run.
pub fn binaries(test: &str) -> Option<Binaries> {
    let Some(dir) = assets_dir() else {
        skip(test, "KUBEBUILDER_ASSETS is not set");
        return None;
    };
    let kube_apiserver = dir.join("kube-apiserver");
    assert!(
        executable(&kube_apiserver),
        "KUBEBUILDER_ASSETS={} holds no executable kube-apiserver; {SEE_README}",
        dir.display()
    );
    let etcd = etcd_binary().unwrap_or_else(|| {
        panic!(
            "no etcd: neither {}/etcd nor etcd on PATH (Debian: apt-get install etcd-server); {SEE_README}",
            dir.display()
        )
    });
    let kubectl = [dir.join("kubectl"), repo().join(".tools/bin/kubectl")]
        .into_iter()
        .find(|p| executable(p))
        .or_else(|| on_path("kubectl"))
        .unwrap_or_else(|| {
            panic!("no kubectl in KUBEBUILDER_ASSETS, .tools/bin or PATH: run `make tools`")
        });
    let helm = Some(repo().join(".tools/bin/helm"))
        .filter(|p| executable(p))
        .or_else(|| on_path("helm"))
        .unwrap_or_else(|| {
            panic!("no helm in .tools/bin or PATH: run `make tools` (installs helm 4)")
        });
    Some(Binaries {
        kube_apiserver,
        etcd,
        kubectl,
        helm,
    })
}

/// etcd from `$KUBEBUILDER_ASSETS` if it is there, else `etcd` on `PATH` (Debian's
/// `etcd-server` package installs `/usr/bin/etcd`).
pub fn etcd_binary() -> Option<PathBuf> {
    assets_dir()
        .map(|dir| dir.join("etcd"))
        .filter(|p| executable(p))
        .or_else(|| on_path("etcd"))
}

static CONTROL_PLANES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Control-plane tests take turns: a kube-apiserver wants most of a small machine while it
/// starts, and scenario waits are timed. (No poisoning: a failed test does not block the next.)
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    CONTROL_PLANES.lock().await
}
