//! How a member cluster's connection stands: what its last probe found, and why a member
//! cannot be used. The world, the fleet and the kubeconfig check all speak in these terms.

/// Why a member cannot be used. Each has a stable code (condition reason, metric label) and a
/// stable sentence for decisions, so a changing error text does not re-decide every workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionFault {
    /// The Secret or its key does not exist.
    KubeconfigMissing,
    /// The Secret exists but the kubeconfig cannot be used.
    KubeconfigInvalid,
    /// The operator may not read the Secret.
    SecretUnreadable,
    /// The API server does not answer (refused, timed out, 5xx).
    ServerUnreachable,
    /// The API server answers but rejects the credentials (401) or their rights (403).
    CredentialsRejected,
}

impl ConnectionFault {
    pub fn code(self) -> &'static str {
        match self {
            Self::KubeconfigMissing => "KubeconfigMissing",
            Self::KubeconfigInvalid => "KubeconfigInvalid",
            Self::SecretUnreadable => "SecretUnreadable",
            Self::ServerUnreachable => "ServerUnreachable",
            Self::CredentialsRejected => "CredentialsRejected",
        }
    }

    /// What a placement decision records: stable, without the changing error detail.
    pub fn summary(self) -> &'static str {
        match self {
            Self::KubeconfigMissing => "its kubeconfig Secret is missing",
            Self::KubeconfigInvalid => "its kubeconfig cannot be used",
            Self::SecretUnreadable => "its kubeconfig Secret cannot be read",
            Self::ServerUnreachable => "its API server does not answer",
            Self::CredentialsRejected => "its API server rejects Sovra's credentials",
        }
    }
}

/// What the last probe of a member found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Not probed yet (just created, or the operator just started).
    Connecting,
    Reachable {
        version: String,
    },
    Unreachable {
        why: ConnectionFault,
        message: String,
    },
}
