//! The one error type of the library. Each variant names what failed; `metric_label` gives a
//! stable, low-cardinality label for metrics and Event reasons.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),

    #[error("could not serialize {what}: {message}")]
    Serialize { what: &'static str, message: String },

    #[error("could not read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("could not write {path}: {source}")]
    WriteFile {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{path}: document {document}: {message}")]
    InvalidManifest {
        path: PathBuf,
        document: usize,
        message: String,
    },

    #[error("{kind} {name} has an invalid spec: {message}")]
    InvalidSpec {
        kind: &'static str,
        name: String,
        message: String,
    },

    #[error("object has no {0}")]
    MissingField(&'static str),

    #[error("audit trail {path}: {message}")]
    Audit { path: PathBuf, message: String },

    #[error("member cluster {cluster}: {message}")]
    MemberCluster { cluster: String, message: String },

    #[error("CRD {0} is not established")]
    CrdNotEstablished(String),

    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),

    #[error("leader election: {0}")]
    LeaderElection(String),

    #[error("cache did not sync: {0}")]
    CacheSync(String),

    #[error("HTTP server: {0}")]
    HttpServer(std::io::Error),
}

impl Error {
    /// Stable label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::Serialize { .. } => "serialize",
            Self::ReadFile { .. } => "read_file",
            Self::WriteFile { .. } => "write_file",
            Self::InvalidManifest { .. } => "invalid_manifest",
            Self::InvalidSpec { .. } => "invalid_spec",
            Self::MissingField(_) => "missing_field",
            Self::Audit { .. } => "audit",
            Self::MemberCluster { .. } => "member_cluster",
            Self::CrdNotEstablished(_) => "crd_not_established",
            Self::Finalizer(_) => "finalizer",
            Self::LeaderElection(_) => "leader_election",
            Self::CacheSync(_) => "cache_sync",
            Self::HttpServer(_) => "http_server",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
