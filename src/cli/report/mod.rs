//! `sovra report`: the auditors' view of the audit trail, as one self-contained HTML page
//! (inline CSS and SVG, no script, nothing fetched) or as JSON.
//!
//! Reading (`trail.rs`, `checkpoint.rs`, `facts.rs`, `live.rs`) → figures (`build.rs` into
//! `model.rs`, pure) → output (`html.rs` with `tables.rs`, `svg.rs`, `escape.rs` and the
//! words of `lang.rs`; JSON is the model serialized).
//!
//! Without `--clusters` or `--live` the report has no country or provider for a cluster:
//! those two breakdowns count every placement as unknown and say so. Exit readiness is
//! not in the trail: only `--live` shows stranded and exit-ready workloads.

pub mod build;
pub mod checkpoint;
pub mod escape;
pub mod facts;
pub mod html;
pub mod lang;
pub mod live;
pub mod model;
mod svg;
mod tables;
#[cfg(test)]
mod tests;
pub mod trail;

use super::manifests;
use crate::Error;
use build::Inputs;
use checkpoint::{PublicKey, checkpoint_status};
use clap::Args;
use facts::{ClusterFacts, FactsSource, LiveState, cluster_facts};
use jiff::Timestamp;
use lang::{Lang, words};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The hash-chained audit trail (`sovra run --audit-log`).
    #[arg(long)]
    pub audit_log: PathBuf,
    /// Public key file for the trail's signed checkpoints (their status in the report).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Also read the hub (KUBECONFIG or in-cluster; list only): stranded and exit-ready
    /// workloads, placements now by provider, and the clusters' country and provider.
    #[arg(long)]
    pub live: bool,
    /// SovereignCluster manifests (files or directories): the country and provider of the
    /// clusters the trail names.
    #[arg(long, num_args = 1..)]
    pub clusters: Vec<PathBuf>,
    /// Count decisions from this time on (RFC 3339, inclusive); default: the trail's start.
    #[arg(long)]
    pub since: Option<Timestamp>,
    /// Count decisions up to this time (RFC 3339, inclusive); placements are as of then.
    #[arg(long)]
    pub until: Option<Timestamp>,
    /// Language of the HTML page's headings.
    #[arg(long, value_enum, default_value = "en")]
    pub lang: Lang,
    /// A file (HTML; JSON when its name ends in `.json`), `json` for JSON on stdout, or
    /// `html` or `-` for HTML on stdout. A file named `json` is `./json`.
    #[arg(short, long, default_value = "html")]
    pub output: String,
}

/// Where the report goes and in which form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Stdout(Form),
    File(PathBuf, Form),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    Html,
    Json,
}

impl Output {
    pub fn parse(text: &str) -> Self {
        match text {
            "json" => Self::Stdout(Form::Json),
            "html" | "-" => Self::Stdout(Form::Html),
            path => {
                let is_json = Path::new(path)
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("json"));
                let form = if is_json { Form::Json } else { Form::Html };
                Self::File(PathBuf::from(path), form)
            }
        }
    }
}

/// What `sovra report` produced: the rendered text, where it goes, and whether the trail
/// held up (intact chain, no invalid checkpoint).
#[derive(Debug)]
pub struct Rendered {
    pub text: String,
    pub output: Output,
    pub trustworthy: bool,
}

/// Reads everything and renders the report. Problems in the input (`--clusters` manifests,
/// a period that ends before it starts) are `Err(messages)`; IO failures are `Error`s.
pub async fn report(args: &ReportArgs) -> Result<Result<Rendered, Vec<String>>, Error> {
    if let (Some(since), Some(until)) = (args.since, args.until)
        && since > until
    {
        return Ok(Err(vec![format!(
            "--since {since} is after --until {until}"
        )]));
    }
    let (file_facts, problems) = if args.clusters.is_empty() {
        (ClusterFacts::new(), Vec::new())
    } else {
        let (found, problems) = manifests::load_objects(&args.clusters);
        (cluster_facts(&found.clusters), problems)
    };
    if !problems.is_empty() {
        return Ok(Err(problems.iter().map(ToString::to_string).collect()));
    }
    let bytes = std::fs::read(&args.audit_log).map_err(|source| Error::ReadFile {
        path: args.audit_log.clone(),
        source,
    })?;
    let chain = crate::audit::verify_file(&args.audit_log)?;
    let trail = trail::read(&bytes);
    let key = match &args.key {
        None => None,
        Some(path) => Some(PublicKey {
            path: path.clone(),
            text: std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
                path: path.clone(),
                source,
            })?,
        }),
    };
    let live = if args.live {
        let config = kube::Config::infer()
            .await
            .map_err(kube::Error::InferConfig)?;
        Some(live::read(kube::Client::try_from(config)?).await?)
    } else {
        None
    };
    let (facts, facts_source) = merge_facts(file_facts, !args.clusters.is_empty(), live.as_ref());
    let checkpoint = checkpoint_status(trail.checkpoints.last(), key.as_ref(), &chain);
    let report = build::build(&Inputs {
        audit_log: args.audit_log.display().to_string(),
        trail: &trail,
        chain: &chain,
        checkpoint,
        since: args.since,
        until: args.until,
        facts: &facts,
        facts_source,
        live: live.as_ref(),
    });
    let output = Output::parse(&args.output);
    let form = match &output {
        Output::Stdout(form) | Output::File(_, form) => *form,
    };
    let text = match form {
        Form::Json => {
            let mut json = serde_json::to_string_pretty(&report).map_err(|e| Error::Serialize {
                what: "report",
                message: e.to_string(),
            })?;
            json.push('\n');
            json
        }
        Form::Html => html::render(&report, words(args.lang)),
    };
    let trustworthy = report.chain.intact
        && !matches!(
            report.checkpoint,
            checkpoint::CheckpointStatus::Invalid { .. }
        );
    Ok(Ok(Rendered {
        text,
        output,
        trustworthy,
    }))
}

/// The clusters' facts from the manifests, then the hub's over them.
fn merge_facts(
    mut facts: ClusterFacts,
    from_file: bool,
    live: Option<&LiveState>,
) -> (ClusterFacts, FactsSource) {
    let source = match (from_file, live.is_some()) {
        (false, false) => FactsSource::None,
        (true, false) => FactsSource::File,
        (false, true) => FactsSource::Live,
        (true, true) => FactsSource::FileAndLive,
    };
    if let Some(live) = live {
        facts.extend(live.clusters.clone());
    }
    (facts, source)
}

/// `sovra report`: writes the report; exits 1 when the chain is broken or a checkpoint is
/// invalid (the report is written all the same), 2 on bad input.
pub async fn execute(args: &ReportArgs) -> Result<ExitCode, Error> {
    let rendered = match report(args).await? {
        Ok(rendered) => rendered,
        Err(problems) => {
            for problem in &problems {
                eprintln!("error: {problem}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    match &rendered.output {
        Output::Stdout(_) => to_stdout(&rendered.text),
        Output::File(path, _) => {
            std::fs::write(path, &rendered.text).map_err(|source| Error::WriteFile {
                path: path.clone(),
                source,
            })?;
            eprintln!("report written to {}", path.display());
        }
    }
    Ok(if rendered.trustworthy {
        ExitCode::SUCCESS
    } else {
        eprintln!("the audit trail did not verify: see the report's chain section");
        ExitCode::from(1)
    })
}

/// Writes to stdout without `print!`'s panic on a closed pipe (`sovra report -o json | head`).
fn to_stdout(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}
