//! The `sovra` command line: `run` (operator), `crd`, `plan`, `audit`.

pub mod manifests;
pub mod plan;

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
    /// Decide placements offline from manifests; exits 1 when any workload is refused.
    Plan {
        /// Files or directories with SensitivityClasses, SovereignClusters, Nodes and SovereignWorkloads.
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: plan::OutputFormat,
        /// Also list compliant candidates, not only rejected ones.
        #[arg(long)]
        explain: bool,
        #[arg(long, default_value = crate::policy::DEFAULT_NODE_POOL_LABEL)]
        node_pool_label: String,
    },
    /// Check or read the hash-chained audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain; exits 1 and names the first broken line when it is broken.
    Verify { file: PathBuf },
    /// Print the trail as a table, optionally filtered.
    Show {
        file: PathBuf,
        /// `namespace/name` or `name` of a workload.
        #[arg(long)]
        workload: Option<String>,
        #[arg(long)]
        class: Option<String>,
    },
}

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
        Command::Plan {
            files,
            output,
            explain,
            node_pool_label,
        } => {
            let report = plan::plan(&files, output, explain, &node_pool_label);
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
        Command::Audit(AuditCommand::Verify { file }) => {
            let report = crate::audit::verify_file(&file)?;
            emit(&format!("{report}\n"));
            Ok(if report.is_intact() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Audit(AuditCommand::Show {
            file,
            workload,
            class,
        }) => {
            let filter = crate::audit::ShowFilter {
                workload,
                class,
                ..Default::default()
            };
            emit(&crate::audit::show_file(&file, &filter)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            crate::controller::run(args.into()).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
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
fn emit(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}
