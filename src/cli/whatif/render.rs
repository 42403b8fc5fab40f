//! How `sovra plan` shows a what-if: a row per workload (kept, moved, refused, newly placed,
//! with where it ran and where it would run), why each refusal, and a summary per class; and
//! the same as JSON fields.

use super::{Change, ClassSummary, WhatIf, Without, summarize};
use crate::cli::table::{columns, decision_details, placements_text, workload_name};
use crate::crd::Placement;
use crate::policy::{Reason, placement_record};
use serde::Serialize;
use std::fmt::Write as _;

/// What the other world is, for the heading and JSON.
#[derive(Clone, Copy, Debug)]
pub struct Scenario<'a> {
    pub without: &'a [Without],
    /// Clusters `without` took away.
    pub removed: &'a [String],
    /// What `-f` overrides changed (live), one line each.
    pub overrides: &'a [String],
    /// Compared with the hub's `status.placements` (live) rather than with the plan.
    pub live: bool,
    /// The clusters left: what the workloads were decided again in.
    pub remaining: &'a [crate::policy::ClusterFacts],
}

impl Scenario<'_> {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.without.is_empty() {
            let without: Vec<String> = self.without.iter().map(ToString::to_string).collect();
            parts.push(format!(
                "without {}, taking away {}",
                without.join(", "),
                self.removed.join(", ")
            ));
        }
        if !self.overrides.is_empty() {
            parts.push(format!("with {}", self.overrides.join("; ")));
        }
        if parts.is_empty() {
            parts.push("as the hub is now".to_owned());
        }
        parts.join(", ")
    }
}

/// The what-if as text. Live, only the workloads that change are listed.
pub fn text(items: &[WhatIf<'_>], scenario: &Scenario<'_>, explain: bool) -> String {
    let mut out = String::new();
    let baseline = if scenario.live {
        "the placements in their status on the hub"
    } else {
        "where the plan without the removal places them"
    };
    let _ = writeln!(
        out,
        "What if: {}. Each workload is decided again, starting from {baseline}.\n",
        scenario.describe()
    );
    // Live, the table is the difference: what keeps its placement or stays refused is counted.
    let differs = |i: &&WhatIf<'_>| {
        matches!(
            i.change,
            Change::Moved | Change::Refused | Change::NewlyPlaced
        )
    };
    let shown: Vec<&WhatIf<'_>> = items
        .iter()
        .filter(|i| !scenario.live || explain || differs(i))
        .collect();
    let rows: Vec<[String; 5]> = shown
        .iter()
        .map(|i| {
            [
                workload_name(i.workload),
                i.workload.spec.sensitivity.clone(),
                i.change.label().to_owned(),
                match &i.exit {
                    Some(exit) if exit.stranded() => "stranded".to_owned(),
                    Some(_) => "ready".to_owned(),
                    None => "-".to_owned(),
                },
                where_text(i),
            ]
        })
        .collect();
    if rows.is_empty() {
        let _ = writeln!(out, "No workload would move, be refused or newly fit.");
    } else {
        let header = [
            "WORKLOAD",
            "CLASS",
            "CHANGE",
            "EXIT",
            "WHERE (before -> after)",
        ];
        out.push_str(&columns(header, &rows));
    }
    if shown.len() < items.len() {
        let count = |change| items.iter().filter(|i| i.change == change).count();
        let _ = writeln!(
            out,
            "Not listed: {} workload(s) keep their placement, {} stay refused (--explain lists them).",
            count(Change::Kept),
            count(Change::StillRefused)
        );
    }
    for item in shown.iter().filter(|i| i.refused()) {
        refusal(&mut out, item, scenario, explain);
    }
    out.push_str(&summary_text(items, scenario));
    out
}

fn after(item: &WhatIf<'_>) -> Vec<Placement> {
    item.decision
        .targets()
        .iter()
        .map(|t| placement_record(t, 0))
        .collect()
}

fn where_text(item: &WhatIf<'_>) -> String {
    let (before, after) = (placements_text(&item.before), placements_text(&after(item)));
    match item.change {
        Change::Kept => after,
        Change::StillRefused => before,
        Change::Moved | Change::Refused | Change::NewlyPlaced => format!("{before} -> {after}"),
    }
}

/// Why a workload is refused in the other world: what decided it, and (when it was placed
/// before, or with `explain`) the verdict on every cluster and pool left.
fn refusal(out: &mut String, item: &WhatIf<'_>, scenario: &Scenario<'_>, explain: bool) {
    let d = &item.decision;
    // The same summary as the plan's refusal block, the Event and the condition.
    let why = crate::policy::refusal_summary(d, scenario.remaining, &item.workload.spec.placement)
        .map_or_else(String::new, |summary| format!(": {summary}"));
    let _ = writeln!(
        out,
        "\n{} ({}): {}{why}",
        workload_name(item.workload),
        item.workload.spec.sensitivity,
        item.change.label(),
    );
    if item.change == Change::StillRefused && !explain {
        return;
    }
    if let crate::policy::Outcome::Refused(reasons) = &d.outcome {
        // Reasons about the fleet as a whole are not on any one candidate's verdict.
        let deciding = d.deciding_reason();
        for reason in reasons
            .iter()
            .filter(|r| fleet_wide(r) && Some(*r) != deciding)
        {
            let _ = writeln!(out, "    {reason}");
        }
    }
    if !d.verdicts.is_empty() {
        decision_details(out, d, explain);
    }
}

fn fleet_wide(reason: &Reason) -> bool {
    matches!(
        reason,
        Reason::NotEnoughClusters { .. } | Reason::NotEnoughProviders { .. } | Reason::NoClusters
    )
}

fn summary_text(items: &[WhatIf<'_>], scenario: &Scenario<'_>) -> String {
    let mut out = String::new();
    let summaries = summarize(items);
    let _ = writeln!(out, "\nWhat-if by class:");
    let rows: Vec<[String; 7]> = summaries
        .iter()
        .map(|s| {
            [
                if s.class == "*" {
                    "(all)".to_owned()
                } else {
                    s.class.clone()
                },
                s.workloads.to_string(),
                s.kept.to_string(),
                s.moved.to_string(),
                s.newly_placed.to_string(),
                match (s.refused, s.newly_refused) {
                    (0, _) => "0".to_owned(),
                    (all, newly) => format!("{all} ({newly} newly)"),
                },
                s.stranded.to_string(),
            ]
        })
        .collect();
    let header = [
        "CLASS",
        "WORKLOADS",
        "KEPT",
        "MOVED",
        "NEWLY PLACED",
        "REFUSED",
        "STRANDED",
    ];
    out.push_str(&columns(header, &rows));
    if let Some(total) = summaries.last() {
        let _ = writeln!(
            out,
            "\nWhat-if summary ({}): {} moved, {} refused ({} placed before), {} stranded, {} newly placed, {} kept, of {} workload(s). Stranded: placed on a single provider, and no compliant cluster of another provider could take it.",
            scenario.describe(),
            total.moved,
            total.refused,
            total.newly_refused,
            total.stranded,
            total.newly_placed,
            total.kept,
            total.workloads,
        );
    }
    out
}

/// A workload's what-if, in `-o json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeJson {
    /// `kept`, `moved`, `refused`, `still refused` or `newly placed`.
    kind: &'static str,
    /// Where it ran before (the placements after are the workload's `placements`).
    before: Vec<Placement>,
}

/// Exit readiness in the other world, in `-o json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitJson {
    stranded: bool,
    providers: Vec<String>,
    alternatives: Vec<AlternativeJson>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AlternativeJson {
    cluster: String,
    provider: String,
}

/// The scenario and its summary, in `-o json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WhatIfJson {
    /// What "before" is: `plan` (offline) or `status` (live).
    baseline: &'static str,
    without: Vec<String>,
    removed_clusters: Vec<String>,
    overrides: Vec<String>,
    /// Per class, the last one (`class: "*"`) the total.
    summary: Vec<ClassSummary>,
}

pub fn change_json(item: &WhatIf<'_>) -> ChangeJson {
    ChangeJson {
        kind: item.change.label(),
        before: item.before.clone(),
    }
}

pub fn exit_json(item: &WhatIf<'_>) -> Option<ExitJson> {
    item.exit.as_ref().map(|exit| ExitJson {
        stranded: exit.stranded(),
        providers: exit.providers.clone(),
        alternatives: exit
            .alternatives
            .iter()
            .map(|a| AlternativeJson {
                cluster: a.cluster.clone(),
                provider: a.provider.clone(),
            })
            .collect(),
    })
}

pub fn what_if_json(items: &[WhatIf<'_>], scenario: &Scenario<'_>) -> WhatIfJson {
    WhatIfJson {
        baseline: if scenario.live { "status" } else { "plan" },
        without: scenario.without.iter().map(ToString::to_string).collect(),
        removed_clusters: scenario.removed.to_vec(),
        overrides: scenario.overrides.to_vec(),
        summary: summarize(items),
    }
}
