//! The operator's settings: a plain struct the controller owns. The command line (or a test)
//! builds it; nothing in the controller knows where the values came from.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespace the operator runs in: kubeconfig Secrets and the leader Lease live here.
    pub namespace: String,
    /// Address for /metrics, /healthz and /readyz.
    pub http_addr: SocketAddr,
    /// Node label that names a node's pool.
    pub node_pool_label: String,
    /// Elect a leader through a Lease so only one replica reconciles.
    pub leader_election: bool,
    pub lease_name: String,
    /// This replica's identity in the Lease, in Events and in audit records.
    pub identity: String,
    /// Append-only, hash-chained audit trail file.
    pub audit_log: Option<PathBuf>,
    /// Also print each audit record on stdout, for log pipelines.
    pub audit_stdout: bool,
    /// Ed25519 private key (PKCS#8 PEM) that signs checkpoints; `None`: no checkpoints.
    pub audit_signing_key: Option<PathBuf>,
    /// The checkpoints' origin; `None`: derived from the hub's kube-system Namespace UID.
    pub audit_origin: Option<String>,
    /// A checkpoint after this many records (0: only by time and on shutdown).
    pub checkpoint_every_records: u64,
    /// A checkpoint this often when there are new records.
    pub checkpoint_interval: Duration,
    /// Where every checkpoint is POSTed (a witness or a relay to one).
    pub checkpoint_witness_url: Option<String>,
    /// Bound on each POST to the witness.
    pub checkpoint_witness_timeout: Duration,
    /// Objects reconciled at once, per controller.
    pub concurrency: u16,
    /// How often member clusters are probed.
    pub member_probe_interval: Duration,
    /// Bound on each probe of, and each call to, a member cluster.
    pub member_timeout: Duration,
    /// How long a deleted workload waits for an unreachable member before it is released.
    pub member_cleanup_timeout: Duration,
    pub log_format: LogFormat,
    /// Where the per-namespace policy report goes.
    pub policy_reports: PolicyReports,
}

/// Which policy-report API Sovra writes one report per namespace to (`docs/policy-reports.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PolicyReports {
    /// `openreports.io/v1alpha1` `Report`, read by Kyverno, Kubewarden and Policy Reporter.
    #[default]
    OpenReports,
    /// `wgpolicyk8s.io/v1alpha2` `PolicyReport`, for older dashboards.
    WgPolicyK8s,
    /// No reports.
    None,
}

/// How the process logs: lines for people, or JSON for log pipelines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}
