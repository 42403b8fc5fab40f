//! `sovra plan`: decide placements offline from manifests, print the decisions with their
//! reasons, and fail (exit 1) when any workload is refused, for use in CI pipelines.

use super::manifests::{self, Manifests};
use crate::Error;
use crate::crd::{SensitivityClassSpec, SovereignWorkload};
use crate::policy::{
    ClusterFacts, Decision, NodeFacts, Outcome, Reachability, cluster_facts, decide_for_workload,
    decision_record, node_pools, placement_record, refusal_summary,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Annotation on a Node in plan input naming the SovereignCluster it belongs to. Nodes without
/// it belong to the cluster with `connection.local: true` (the hub).
pub const NODE_CLUSTER_ANNOTATION: &str = "sovra.dev/cluster";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// What `plan` concluded. With problems in the input nothing is decided (`rendered` is empty).
#[derive(Debug)]
pub struct PlanReport {
    pub rendered: String,
    pub refused: usize,
    pub problems: Vec<Error>,
}

/// One workload's decision, as printed by `-o json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlannedWorkload {
    namespace: String,
    name: String,
    class: String,
    outcome: &'static str,
    placements: Vec<crate::crd::Placement>,
    decision: crate::crd::PlacementDecision,
}

pub fn plan(
    files: &[PathBuf],
    output: OutputFormat,
    explain: bool,
    pool_label: &str,
) -> PlanReport {
    let (manifests, problems) = manifests::load(files);
    if !problems.is_empty() {
        // Decisions on part of the input are not the ones the cluster would make.
        return PlanReport {
            rendered: String::new(),
            refused: 0,
            problems,
        };
    }
    let clusters = clusters_with_nodes(&manifests, pool_label);
    let classes: BTreeMap<String, SensitivityClassSpec> = manifests
        .classes
        .iter()
        .map(|c| (c.metadata.name.clone().unwrap_or_default(), c.spec.clone()))
        .collect();

    let mut workloads: Vec<&SovereignWorkload> = manifests.workloads.iter().collect();
    workloads.sort_by_key(|w| (w.metadata.namespace.clone(), w.metadata.name.clone()));
    let decisions: Vec<(&SovereignWorkload, Decision)> = workloads
        .into_iter()
        .map(|w| (w, decide_for_workload(w, &classes, &clusters)))
        .collect();
    let refused = decisions
        .iter()
        .filter(|(_, d)| matches!(d.outcome, Outcome::Refused(_)))
        .count();
    let rendered = match output {
        OutputFormat::Table => render_table(&manifests, &clusters, &decisions, explain),
        OutputFormat::Json => render_json(&decisions),
    };
    PlanReport {
        rendered,
        refused,
        problems,
    }
}

fn clusters_with_nodes(manifests: &Manifests, pool_label: &str) -> Vec<ClusterFacts> {
    let local = manifests
        .clusters
        .iter()
        .find(|c| c.spec.connection.local)
        .and_then(|c| c.metadata.name.clone());
    manifests
        .clusters
        .iter()
        .map(|cluster| {
            let name = cluster.metadata.name.as_deref();
            let nodes: Vec<NodeFacts> = manifests
                .nodes
                .iter()
                .filter(|node| {
                    let owner = node
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(NODE_CLUSTER_ANNOTATION))
                        .map(String::as_str)
                        .or(local.as_deref());
                    owner == name
                })
                .map(NodeFacts::from_node)
                .collect();
            // Offline there is nobody to ask: plan assumes every cluster is reachable.
            cluster_facts(
                cluster,
                node_pools(&nodes, pool_label),
                Reachability::Reachable,
            )
        })
        .collect()
}

fn workload_name(w: &SovereignWorkload) -> String {
    format!(
        "{}/{}",
        w.metadata.namespace.as_deref().unwrap_or("default"),
        w.metadata.name.as_deref().unwrap_or("<unnamed>")
    )
}

fn render_table(
    manifests: &Manifests,
    clusters: &[ClusterFacts],
    decisions: &[(&SovereignWorkload, Decision)],
    explain: bool,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Read {} SensitivityClasses, {} SovereignClusters, {} Nodes, {} SovereignWorkloads.\n",
        manifests.classes.len(),
        manifests.clusters.len(),
        manifests.nodes.len(),
        manifests.workloads.len()
    );
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
                    targets
                        .iter()
                        .map(|t| format!("{} [{}] x{}", t.cluster, t.pools.join(","), t.replicas))
                        .collect::<Vec<_>>()
                        .join("; "),
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
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut s = String::new();
        for (cell, width) in cells.iter().zip(widths) {
            let _ = write!(s, "{cell:<width$}  ");
        }
        s.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(header));
    for row in &rows {
        let _ = writeln!(out, "{}", line(row.each_ref().map(String::as_str)));
    }

    for (w, d) in decisions {
        let refused = matches!(d.outcome, Outcome::Refused(_));
        let violations = d.audit_violations();
        if !(explain || refused || !violations.is_empty()) {
            continue;
        }
        let _ = writeln!(out, "\n{} ({}):", workload_name(w), w.spec.sensitivity);
        if let Outcome::Refused(reasons) = &d.outcome {
            if let Some(summary) = refusal_summary(d, clusters, &w.spec.placement) {
                let _ = writeln!(out, "  refused: {summary}");
            }
            let _ = writeln!(
                out,
                "  no cluster and node pool satisfies the class. Reasons:"
            );
            if d.verdicts.is_empty() {
                for reason in reasons {
                    let _ = writeln!(out, "    - {reason}");
                }
            }
        }
        for v in violations {
            let _ = writeln!(out, "  audit only, enforce would refuse: {v}");
        }
        for verdict in &d.verdicts {
            let subject = match &verdict.pool {
                Some(pool) => format!("{}/{}", verdict.cluster, pool),
                None => verdict.cluster.clone(),
            };
            if verdict.reasons.is_empty() {
                if explain {
                    let _ = writeln!(out, "    {subject}: compliant");
                }
            } else {
                for reason in &verdict.reasons {
                    let _ = writeln!(out, "    {subject}: {reason}");
                }
            }
        }
    }
    out
}

fn render_json(decisions: &[(&SovereignWorkload, Decision)]) -> String {
    let planned: Vec<PlannedWorkload> = decisions
        .iter()
        .map(|(w, d)| PlannedWorkload {
            namespace: w.metadata.namespace.clone().unwrap_or_default(),
            name: w.metadata.name.clone().unwrap_or_default(),
            class: w.spec.sensitivity.clone(),
            outcome: match d.outcome {
                Outcome::Placed(_) => "Placed",
                Outcome::Refused(_) => "Refused",
            },
            placements: d.targets().iter().map(|t| placement_record(t, 0)).collect(),
            decision: decision_record(d),
        })
        .collect();
    serde_json::to_string_pretty(&planned).unwrap_or_default() + "\n"
}
