//! The `sovra` command line: `run` (operator), `crd`, `plan`, `audit`, `report`.

pub mod audit;
pub mod concentration;
pub mod live;
pub mod manifests;
pub mod plan;
pub mod report;
pub mod table;
pub mod whatif;
pub mod world;

use crate::Error;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "sovra",
    version,
    about = "Places workloads only onto EU clusters and sovereign node pools that satisfy their sensitivity class"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// `RunArgs` is by far the largest; the command is parsed once per process.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator (in-cluster config, or KUBECONFIG).
    Run(RunArgs),
    /// Print the CustomResourceDefinitions as YAML, or write them to a directory.
    Crd {
        /// Write one file per CRD into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Decide placements offline from manifests (or from a hub, with --live); exits 1 when
    /// any workload is refused, 2 on input problems.
    Plan(PlanArgs),
    /// Check or read the hash-chained audit trail; make checkpoint signing keys.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Write the auditors' report of the audit trail: self-contained HTML or JSON. Exits 1
    /// when the chain does not verify (the report is written all the same).
    Report(report::ReportArgs),
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Files or directories with SensitivityClasses, SovereignClusters, Nodes and
    /// SovereignWorkloads. With --live: overrides laid over what the hub holds (the same kind,
    /// namespace and name replaces, anything else is added).
    #[arg(short = 'f', long = "filename", required_unless_present = "live", num_args = 1..)]
    pub files: Vec<PathBuf>,
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: plan::OutputFormat,
    /// Also list compliant candidates, not only rejected ones.
    #[arg(long)]
    pub explain: bool,
    #[arg(long, default_value = crate::policy::DEFAULT_NODE_POOL_LABEL)]
    pub node_pool_label: String,
    /// What if these were gone or no longer compliant: `provider=NAME` (clusters whose
    /// provider or parent has that name), `cluster=NAME` or `country=XX`. Repeatable. Shows
    /// what each workload would keep, where it would move or why it would be refused.
    #[arg(long, value_name = "KIND=VALUE", value_parser = whatif::parse_without)]
    pub without: Vec<whatif::Without>,
    /// Read SensitivityClasses, SovereignClusters (with the node pools their status reports)
    /// and SovereignWorkloads from a running hub, read-only (list requests only), and show
    /// what differs from the placements in their status.
    #[arg(long)]
    pub live: bool,
    /// Kubeconfig of the hub for --live (default: KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, requires = "live")]
    pub kubeconfig: Option<PathBuf>,
    /// Context of the kubeconfig for --live (default: its current context).
    #[arg(long, requires = "live")]
    pub context: Option<String>,
    /// Per class: the share of placed replicas per provider, the Herfindahl-Hirschman index
    /// of those shares, and the workloads that depend on a single provider.
    #[arg(long)]
    pub concentration: bool,
}

impl PlanArgs {
    fn options(&self) -> plan::PlanOptions {
        plan::PlanOptions {
            output: self.output,
            explain: self.explain,
            without: self.without.clone(),
            concentration: self.concentration,
            pool_label: self.node_pool_label.clone(),
        }
    }
}

/// How long `plan --live` waits for the hub's answers.
const LIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

pub use audit::AuditCommand;

/// Settings of the operator process. Every flag can also be set from the environment.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Namespace the operator runs in: kubeconfig Secrets and the leader Lease live here.
    #[arg(long, env = "SOVRA_NAMESPACE", default_value = "sovra-system")]
    pub namespace: String,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, env = "SOVRA_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Node label that names a node's pool.
    #[arg(long, env = "SOVRA_NODE_POOL_LABEL", default_value = crate::policy::DEFAULT_NODE_POOL_LABEL)]
    pub node_pool_label: String,
    /// Elect a leader through a Lease so only one replica reconciles. A replica that cannot
    /// renew its lease stops reconciling and campaigns again (it never exits for it); `false`
    /// runs without a Lease.
    #[arg(long, env = "SOVRA_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    #[arg(long, env = "SOVRA_LEASE_NAME", default_value = "sovra-leader")]
    pub lease_name: String,
    /// This replica's identity in the Lease (the chart sets the pod name).
    #[arg(long, env = "POD_NAME", default_value = "sovra")]
    pub identity: String,
    /// Append-only, hash-chained audit trail file (also written to stdout).
    #[arg(long, env = "SOVRA_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,
    /// Also print each audit record on stdout, for log pipelines.
    #[arg(long, env = "SOVRA_AUDIT_STDOUT", default_value_t = true, action = clap::ArgAction::Set)]
    pub audit_stdout: bool,
    /// Ed25519 private key (PKCS#8 PEM) that signs audit checkpoints; without it the trail
    /// has no checkpoints. `sovra audit keygen` makes one.
    #[arg(long, env = "SOVRA_AUDIT_SIGNING_KEY")]
    pub audit_signing_key: Option<PathBuf>,
    /// The checkpoints' origin; default `sovra.dev/<UID of the hub's kube-system
    /// Namespace>/<identity>`, or `sovra.dev/<namespace>/<identity>` when that cannot be read.
    #[arg(long, env = "SOVRA_AUDIT_ORIGIN")]
    pub audit_origin: Option<String>,
    /// A signed checkpoint after this many audit records (0: by time and on shutdown only).
    #[arg(long, env = "SOVRA_CHECKPOINT_EVERY_RECORDS", default_value_t = 100)]
    pub checkpoint_every_records: u64,
    /// A signed checkpoint this often when there are new records, e.g. `10m`.
    #[arg(long, env = "SOVRA_CHECKPOINT_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub checkpoint_interval: std::time::Duration,
    /// POST every checkpoint (text/plain, the signed note) to this witness or relay URL.
    #[arg(long, env = "SOVRA_CHECKPOINT_WITNESS_URL")]
    pub checkpoint_witness_url: Option<String>,
    /// Bound on each POST to the witness, e.g. `10s`.
    #[arg(long, env = "SOVRA_CHECKPOINT_WITNESS_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub checkpoint_witness_timeout: std::time::Duration,
    /// Workloads reconciled at once.
    #[arg(long, env = "SOVRA_CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,
    /// How often member clusters are probed (`/version` and a Node list), e.g. `15s`.
    #[arg(long, env = "SOVRA_MEMBER_PROBE_INTERVAL", default_value = "15s", value_parser = parse_duration)]
    pub member_probe_interval: std::time::Duration,
    /// Bound on each probe of, and each call to, a member cluster, e.g. `10s`.
    #[arg(long, env = "SOVRA_MEMBER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub member_timeout: std::time::Duration,
    /// How long a deleted workload waits for a member that cannot be reached before it is
    /// released anyway (its children there are removed when the member answers again), e.g. `10m`.
    #[arg(long, env = "SOVRA_MEMBER_CLEANUP_TIMEOUT", default_value = "10m", value_parser = parse_duration)]
    pub member_cleanup_timeout: std::time::Duration,
    /// Log format: text or json.
    #[arg(long, env = "SOVRA_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// One policy report per namespace: `openreports` (openreports.io Report), `wgpolicyk8s`
    /// (wgpolicyk8s.io/v1alpha2 PolicyReport, for older dashboards) or `none`.
    #[arg(
        long,
        env = "SOVRA_POLICY_REPORTS",
        value_enum,
        default_value = "openreports"
    )]
    pub policy_reports: PolicyReportsArg,
}

/// `--policy-reports`: which report API, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyReportsArg {
    Openreports,
    Wgpolicyk8s,
    None,
}

impl From<RunArgs> for crate::controller::Settings {
    fn from(args: RunArgs) -> Self {
        Self {
            namespace: args.namespace,
            http_addr: args.http_addr,
            node_pool_label: args.node_pool_label,
            leader_election: args.leader_election,
            lease_name: args.lease_name,
            identity: args.identity,
            audit_log: args.audit_log,
            audit_stdout: args.audit_stdout,
            audit_signing_key: args.audit_signing_key,
            audit_origin: args.audit_origin,
            checkpoint_every_records: args.checkpoint_every_records,
            checkpoint_interval: args.checkpoint_interval,
            checkpoint_witness_url: args.checkpoint_witness_url,
            checkpoint_witness_timeout: args.checkpoint_witness_timeout,
            concurrency: args.concurrency,
            member_probe_interval: args.member_probe_interval,
            member_timeout: args.member_timeout,
            member_cleanup_timeout: args.member_cleanup_timeout,
            log_format: if args.log_format == "json" {
                crate::controller::LogFormat::Json
            } else {
                crate::controller::LogFormat::Text
            },
            policy_reports: match args.policy_reports {
                PolicyReportsArg::Openreports => crate::controller::PolicyReports::OpenReports,
                PolicyReportsArg::Wgpolicyk8s => crate::controller::PolicyReports::WgPolicyK8s,
                PolicyReportsArg::None => crate::controller::PolicyReports::None,
            },
        }
    }
}

/// `250ms`, `15s`, `2m`: a number and a unit.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit (ms, s or m)"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number"))?;
    match unit {
        "ms" => Ok(std::time::Duration::from_millis(n)),
        "s" => Ok(std::time::Duration::from_secs(n)),
        "m" => Ok(std::time::Duration::from_secs(n.saturating_mul(60))),
        _ => Err(format!("{text:?}: unit must be ms, s or m")),
    }
}

/// Runs a command. Errors that are the user's input (bad manifests) are printed and turned
/// into exit codes here; the binary edge handles the rest.
pub async fn execute(cli: Cli) -> Result<ExitCode, Error> {
    match cli.command {
        Command::Crd { out_dir } => write_crds(out_dir),
        Command::Plan(args) => {
            let report = if args.live {
                match read_hub(&args).await {
                    Ok(hub) => plan::plan_live(hub, &args.files, &args.options()),
                    Err(error) => plan::PlanReport {
                        rendered: String::new(),
                        refused: 0,
                        problems: vec![error],
                        warnings: Vec::new(),
                    },
                }
            } else {
                plan::plan(&args.files, &args.options())
            };
            for warning in &report.warnings {
                eprintln!("warning: {warning}");
            }
            if !report.problems.is_empty() {
                // Decisions on part of the input would not be the ones the cluster makes.
                for problem in &report.problems {
                    eprintln!("error: {problem}");
                }
                eprintln!(
                    "{} problem(s) in the input; nothing planned",
                    report.problems.len()
                );
                return Ok(ExitCode::from(2));
            }
            emit(&report.rendered);
            Ok(if report.refused > 0 {
                eprintln!("{} workload(s) refused", report.refused);
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Audit(command) => audit::execute(command),
        Command::Report(args) => report::execute(&args).await,
        Command::Run(args) => {
            crate::controller::run(args.into()).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What the hub of `plan --live` holds, read within [`LIVE_TIMEOUT`].
async fn read_hub(args: &PlanArgs) -> Result<live::LiveInputs, Error> {
    let read = async {
        let client = live::hub_client(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
        live::live_inputs(client).await
    };
    tokio::time::timeout(LIVE_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Hub(format!(
                "no answer within {}s",
                LIVE_TIMEOUT.as_secs()
            )))
        })
}

fn write_crds(out_dir: Option<PathBuf>) -> Result<ExitCode, Error> {
    for crd in crate::crd::all() {
        let yaml = crate::crd::to_yaml(&crd)?;
        match &out_dir {
            Some(dir) => {
                let path = dir.join(crate::crd::file_name(&crd));
                std::fs::write(&path, yaml).map_err(|source| Error::WriteFile { path, source })?;
            }
            None => emit(&format!("---\n{yaml}")),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes to stdout without `print!`'s panic on a closed pipe (`sovra plan ... | head`).
pub(crate) fn emit(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}
