//! The one error type of the library. Each variant names what failed; `metric_label` gives a
//! stable, low-cardinality label for metrics and Event reasons.

use kube::runtime::finalizer::Error as FinalizerError;
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

    #[error("no manifests to plan: {0}")]
    NoManifests(String),

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

    #[error("audit signing key {path}: {message}")]
    SigningKey { path: PathBuf, message: String },

    #[error("member cluster {cluster}: {message}")]
    MemberCluster { cluster: String, message: String },

    /// A Deployment with the child's name exists but is not Sovra's: Sovra never touches it.
    #[error(
        "Deployment {namespace}/{name} on cluster {cluster} is not Sovra's ({owner}); Sovra does not overwrite it: remove or rename it, or rename the SovereignWorkload"
    )]
    ChildConflict {
        cluster: String,
        namespace: String,
        name: String,
        /// Who the Deployment belongs to, as far as its metadata says.
        owner: String,
    },

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

    /// A command line `sovra plan` cannot plan with, e.g. a `--without` that matches nothing.
    #[error("{0}")]
    Usage(String),

    /// `sovra plan --live` could not read the hub.
    #[error("cannot read the hub: {0}")]
    Hub(String),
}

impl Error {
    /// Stable label for metrics and logs: the variant that failed, looking through the
    /// finalizer wrapper (adding or removing the finalizer is an API call: `kube`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::Serialize { .. } => "serialize",
            Self::ReadFile { .. } => "read_file",
            Self::WriteFile { .. } => "write_file",
            Self::InvalidManifest { .. } => "invalid_manifest",
            Self::NoManifests(_) => "no_manifests",
            Self::InvalidSpec { .. } => "invalid_spec",
            Self::MissingField(_) => "missing_field",
            Self::Audit { .. } => "audit",
            Self::SigningKey { .. } => "signing_key",
            Self::MemberCluster { .. } => "member_cluster",
            Self::ChildConflict { .. } => "child_conflict",
            Self::CrdNotEstablished(_) => "crd_not_established",
            Self::Finalizer(error) => match error.as_ref() {
                FinalizerError::ApplyFailed(inner) | FinalizerError::CleanupFailed(inner) => {
                    inner.metric_label()
                }
                FinalizerError::AddFinalizer(_) | FinalizerError::RemoveFinalizer(_) => "kube",
                FinalizerError::UnnamedObject | FinalizerError::InvalidFinalizer => "finalizer",
            },
            Self::LeaderElection(_) => "leader_election",
            Self::CacheSync(_) => "cache_sync",
            Self::HttpServer(_) => "http_server",
            Self::Usage(_) => "usage",
            Self::Hub(_) => "hub",
        }
    }
}

impl Error {
    /// The text to show on the object (Event, condition): what failed, without the finalizer
    /// wrapper around a reconciler's own error.
    pub fn reported(&self) -> String {
        match self {
            Self::Finalizer(error) => match error.as_ref() {
                FinalizerError::ApplyFailed(inner) | FinalizerError::CleanupFailed(inner) => {
                    inner.reported()
                }
                other => other.to_string(),
            },
            other => other.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden() -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("deployments \"tax\" is forbidden", "Forbidden")
                .with_code(403)
                .boxed(),
        )
    }

    #[test]
    fn a_reconciler_error_inside_the_finalizer_is_labelled_by_its_own_variant() {
        let apply = Error::Finalizer(Box::new(FinalizerError::ApplyFailed(Error::Kube(
            forbidden(),
        ))));
        assert_eq!(apply.metric_label(), "kube");
        assert!(
            apply.reported().starts_with("Kubernetes API call failed"),
            "{}",
            apply.reported()
        );
        let cleanup = Error::Finalizer(Box::new(FinalizerError::CleanupFailed(
            Error::MemberCluster {
                cluster: "bund-de-1".into(),
                message: "unreachable".into(),
            },
        )));
        assert_eq!(cleanup.metric_label(), "member_cluster");
        assert_eq!(cleanup.reported(), "member cluster bund-de-1: unreachable");
    }

    #[test]
    fn adding_or_removing_the_finalizer_is_an_api_call() {
        let add = Error::Finalizer(Box::new(FinalizerError::AddFinalizer(forbidden())));
        let remove = Error::Finalizer(Box::new(FinalizerError::RemoveFinalizer(forbidden())));
        assert_eq!(add.metric_label(), "kube");
        assert_eq!(remove.metric_label(), "kube");
        assert!(add.reported().starts_with("failed to add finalizer"));
        let unnamed = Error::Finalizer(Box::new(FinalizerError::UnnamedObject));
        assert_eq!(unnamed.metric_label(), "finalizer");
        assert_eq!(Error::Kube(forbidden()).metric_label(), "kube");
    }
}
