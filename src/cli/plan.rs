//! `sovra plan`: decide placements offline from manifests, print the decisions with their
//! reasons, and fail (exit 1) when any workload is refused, for use in CI pipelines.
//!
//! With `--without` it decides twice, with and without the clusters taken away, and shows
//! what that changes; with `--live` it reads a hub instead of manifests (`-f` files are then
//! overrides) and shows what differs from the placements recorded there; `--concentration`
//! adds how each class's placements are shared over providers.

pub use super::world::NODE_CLUSTER_ANNOTATION;

use super::concentration::{self, ClassConcentration};
use super::live::LiveInputs;
use super::live::overlay::overlay;
use super::manifests::{self, Manifests};
use super::table::{columns, decision_details, placements_text, workload_name};
use super::whatif::render::{self as what_if_render, ChangeJson, ExitJson, Scenario, WhatIfJson};
use super::whatif::{self, WhatIf, Without};
use super::world::World;
use crate::Error;
use crate::crd::{Placement, SovereignWorkload};
use crate::policy::{
    Candidates, ClusterFacts, Decision, Outcome, decide_for_workload, decision_record,
    placement_record, refusal_summary,
};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// How `sovra plan` decides and what it prints.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    pub output: OutputFormat,
    /// Also list compliant candidates, not only rejected ones.
    pub explain: bool,
    /// Decide as if the clusters these match were gone.
    pub without: Vec<Without>,
    /// Add the per-class provider concentration.
    pub concentration: bool,
    pub pool_label: String,
}

impl PlanOptions {
    /// Plain options: a table, no what-if, the default pool label.
    pub fn new(output: OutputFormat) -> Self {
        Self {
            output,
            explain: false,
            without: Vec::new(),
            concentration: false,
            pool_label: crate::policy::DEFAULT_NODE_POOL_LABEL.to_owned(),
        }
    }
}

/// What `plan` concluded. With problems in the input nothing is decided (`rendered` is empty).
#[derive(Debug)]
pub struct PlanReport {
    pub rendered: String,
    /// Workloads refused (in the what-if world, when there is one).
    pub refused: usize,
    pub problems: Vec<Error>,
    /// Said on stderr, but no reason not to plan (hub objects that do not match their schema).
    pub warnings: Vec<String>,
}

impl PlanReport {
    fn failed(problems: Vec<Error>) -> Self {
        Self {
            rendered: String::new(),
            refused: 0,
            problems,
            warnings: Vec::new(),
        }
    }
}

/// One workload's decision, as printed by `-o json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlannedWorkload {
    namespace: String,
    name: String,
    class: String,
    outcome: &'static str,
    placements: Vec<Placement>,
    decision: crate::crd::PlacementDecision,
    /// With `--without` or `--live`: what changed, against where it ran before.
    #[serde(skip_serializing_if = "Option::is_none")]
    change: Option<ChangeJson>,
    /// With `--without` or `--live`: exit readiness in the world decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    exit: Option<ExitJson>,
}

/// `-o json` with `--without`, `--live` or `--concentration` (otherwise the list of workloads).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanDocument {
    workloads: Vec<PlannedWorkload>,
    #[serde(skip_serializing_if = "Option::is_none")]
    what_if: Option<WhatIfJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    concentration: Option<Vec<ClassConcentration>>,
}

/// Plans the manifests in `files`.
pub fn plan(files: &[PathBuf], options: &PlanOptions) -> PlanReport {
    let (manifests, problems) = manifests::load(files);
    if !problems.is_empty() {
        // Decisions on part of the input are not the ones the cluster would make.
        return PlanReport::failed(problems);
    }
    let world = World::offline(&manifests, &options.pool_label);
    let header = format!(
        "Read {} SensitivityClasses, {} SovereignClusters, {} Nodes, {} SovereignWorkloads.\n\n",
        manifests.classes.len(),
        manifests.clusters.len(),
        manifests.nodes.len(),
        manifests.workloads.len()
    );
    let candidates = Candidates::new(world.clusters.clone());
    let decisions: Vec<(&SovereignWorkload, Decision)> = world
        .workloads
        .iter()
        .map(|w| (w, decide_for_workload(w, &world.classes, &candidates)))
        .collect();
    if options.without.is_empty() {
        return plain(&world.clusters, &decisions, header, options);
    }
    let before = decisions
        .iter()
        .map(|(w, d)| {
            (
                *w,
                d.targets().iter().map(|t| placement_record(t, 0)).collect(),
            )
        })
        .collect();
    compare(&world, before, header, &[], false, options)
}

/// Plans what the hub holds, with the manifests in `overrides` laid over it, against the
/// placements the hub recorded.
pub fn plan_live(hub: LiveInputs, overrides: &[PathBuf], options: &PlanOptions) -> PlanReport {
    let (manifests, problems) = if overrides.is_empty() {
        (Manifests::default(), Vec::new())
    } else {
        manifests::load_objects(overrides)
    };
    if !problems.is_empty() {
        return PlanReport::failed(problems);
    }
    let warnings = hub.skipped.clone();
    let header = format!(
        "Read from the hub: {} SensitivityClasses, {} SovereignClusters, {} SovereignWorkloads.\n\n",
        hub.classes.len(),
        hub.clusters.len(),
        hub.workloads.len()
    );
    let overlaid = overlay(hub, &manifests, &options.pool_label);
    let before = overlaid
        .world
        .workloads
        .iter()
        .map(|w| {
            let placed = w.status.as_ref().map(|s| s.placements.clone());
            (w, placed.unwrap_or_default())
        })
        .collect();
    let mut report = compare(
        &overlaid.world,
        before,
        header,
        &overlaid.overrides,
        true,
        options,
    );
    report.warnings = warnings;
    report
}

/// The plan without a what-if: a decision table, as always.
fn plain(
    clusters: &[ClusterFacts],
    decisions: &[(&SovereignWorkload, Decision)],
    header: String,
    options: &PlanOptions,
) -> PlanReport {
    let refused = decisions
        .iter()
        .filter(|(_, d)| matches!(d.outcome, Outcome::Refused(_)))
        .count();
    let concentration = options.concentration.then(|| {
        let pairs: Vec<(&SovereignWorkload, &Decision)> =
            decisions.iter().map(|(w, d)| (*w, d)).collect();
        concentration::concentration(&pairs, clusters)
    });
    let rendered = match options.output {
        OutputFormat::Table => {
            let mut out = header + &render_table(clusters, decisions, options.explain);
            out.extend(concentration.as_deref().map(concentration::text));
            out
        }
        OutputFormat::Json => {
            let workloads = decisions.iter().map(|(w, d)| planned(w, d, None)).collect();
            render_json(workloads, None, concentration)
        }
    };
    PlanReport {
        rendered,
        refused,
        problems: Vec::new(),
        warnings: Vec::new(),
    }
}

/// The what-if: every workload decided again in the world without the `--without` clusters,
/// from its `before` placements, and what changes.
fn compare(
    world: &World,
    before: Vec<(&SovereignWorkload, Vec<Placement>)>,
    header: String,
    overrides: &[String],
    live: bool,
    options: &PlanOptions,
) -> PlanReport {
    let removal = match whatif::remove(&world.clusters, &options.without) {
        Ok(removal) => removal,
        Err(problems) => {
            return PlanReport::failed(problems.into_iter().map(Error::Usage).collect());
        }
    };
    let items = whatif::what_if(before, &world.classes, &removal.remaining);
    let scenario = Scenario {
        without: &options.without,
        removed: &removal.removed,
        overrides,
        live,
        remaining: &removal.remaining,
    };
    let concentration = options.concentration.then(|| {
        let pairs: Vec<(&SovereignWorkload, &Decision)> =
            items.iter().map(|i| (i.workload, &i.decision)).collect();
        concentration::concentration(&pairs, &removal.remaining)
    });
    let rendered = match options.output {
        OutputFormat::Table => {
            let mut out = header + &what_if_render::text(&items, &scenario, options.explain);
            out.extend(concentration.as_deref().map(concentration::text));
            out
        }
        OutputFormat::Json => {
            let workloads = items
                .iter()
                .map(|i| planned(i.workload, &i.decision, Some(i)))
                .collect();
            let what_if = what_if_render::what_if_json(&items, &scenario);
            render_json(workloads, Some(what_if), concentration)
        }
    };
    PlanReport {
        rendered,
        refused: items.iter().filter(|i| i.refused()).count(),
        problems: Vec::new(),
        warnings: Vec::new(),
    }
}

fn render_table(
    clusters: &[ClusterFacts],
    decisions: &[(&SovereignWorkload, Decision)],
    explain: bool,
) -> String {
    let rows: Vec<[String; 5]> = decisions
        .iter()
        .map(|(w, d)| {
            let (outcome, placement) = match &d.outcome {
                Outcome::Placed(targets) => (
                    if d.audit_violations().is_empty() {
                        "Placed"
                    } else {
                        "Placed(audit)"
                    },
                    placements_text(
                        &targets
                            .iter()
                            .map(|t| placement_record(t, 0))
                            .collect::<Vec<_>>(),
                    ),
                ),
                Outcome::Refused(_) => ("Refused", "-".to_owned()),
            };
            [
                workload_name(w),
                w.spec.sensitivity.clone(),
                d.enforcement.to_string(),
                outcome.to_owned(),
                placement,
            ]
        })
        .collect();
    let header = [
        "WORKLOAD",
        "CLASS",
        "ENFORCEMENT",
        "DECISION",
        "PLACEMENT (cluster [pools] x replicas)",
    ];
    let mut out = columns(header, &rows);

    for (w, d) in decisions {
        let refused = matches!(d.outcome, Outcome::Refused(_));
        if !(explain || refused || !d.audit_violations().is_empty()) {
            continue;
        }
        let _ = writeln!(out, "\n{} ({}):", workload_name(w), w.spec.sensitivity);
        if refused {
            if let Some(summary) = refusal_summary(d, clusters, &w.spec.placement) {
                let _ = writeln!(out, "  refused: {summary}");
            }
            let _ = writeln!(
                out,
                "  no cluster and node pool satisfies the class. Reasons:"
            );
        }
        decision_details(&mut out, d, explain);
    }
    out
}

fn planned(w: &SovereignWorkload, d: &Decision, what_if: Option<&WhatIf<'_>>) -> PlannedWorkload {
    PlannedWorkload {
        namespace: w.metadata.namespace.clone().unwrap_or_default(),
        name: w.metadata.name.clone().unwrap_or_default(),
        class: w.spec.sensitivity.clone(),
        outcome: match d.outcome {
            Outcome::Placed(_) => "Placed",
            Outcome::Refused(_) => "Refused",
        },
        placements: d.targets().iter().map(|t| placement_record(t, 0)).collect(),
        decision: decision_record(d),
        change: what_if.map(what_if_render::change_json),
        exit: what_if.and_then(what_if_render::exit_json),
    }
}

fn render_json(
    workloads: Vec<PlannedWorkload>,
    what_if: Option<WhatIfJson>,
    concentration: Option<Vec<ClassConcentration>>,
) -> String {
    let text = if what_if.is_none() && concentration.is_none() {
        serde_json::to_string_pretty(&workloads)
    } else {
        serde_json::to_string_pretty(&PlanDocument {
            workloads,
            what_if,
            concentration,
        })
    };
    text.unwrap_or_default() + "\n"
}
