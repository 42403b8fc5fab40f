use super::*;
use crate::cli::report::facts::{LivePlacement, LiveWorkload};
use crate::cli::report::model::Bucket;

#[test]
fn decisions_are_counted_per_action_over_the_whole_trail_by_default() {
    let trail = Trail::new()
        .placed("fin/tax", "confidential", "rijkscloud-nl")
        .refused("fin/partner", "confidential", &["no dedicated pool"])
        .violation("fin/tax-7f9", "confidential")
        .lost("stackit-de")
        .moved("fin/tax", "confidential", "stackit-de")
        .released("fin/tax", "confidential");
    let r = report(&trail, Options::default());
    let d = &r.decisions;
    assert_eq!(
        (
            d.total,
            d.placed,
            d.refused,
            d.violation,
            d.sovereignty_lost,
            d.moved,
            d.released
        ),
        (6, 1, 1, 1, 1, 1, 1)
    );
    assert_eq!(r.lines.in_period, 6);
    assert_eq!(
        r.period.first.as_deref(),
        Some("2026-03-02T00:00:00.000000Z")
    );
    assert_eq!(
        r.period.last.as_deref(),
        Some("2026-03-02T05:00:00.000000Z")
    );
}

#[test]
fn placements_are_replayed_to_the_last_decision_of_each_workload() {
    let trail = Trail::new()
        .placed("fin/tax", "confidential", "rijkscloud-nl")
        .placed("bzk/case", "internal", "rijkscloud-nl,stackit-de")
        .placed("ezk/open", "public", "stackit-de")
        .refused("fin/partner", "confidential", &["no dedicated pool"])
        .moved("fin/tax", "confidential", "stackit-de")
        .released("ezk/open", "public");
    let r = report(&trail, Options::default());
    let p = &r.placements;
    assert_eq!((p.workloads, p.total), (2, 3));
    assert_eq!(p.by_class.get("internal"), 2);
    assert_eq!(p.by_class.get("confidential"), 1);
    assert_eq!(p.by_class.get("public"), 0);
    assert_eq!(p.by_namespace.get("bzk"), 2);
    assert_eq!(p.by_cluster.get("stackit-de"), 2);
    assert_eq!(p.by_cluster.get("rijkscloud-nl"), 1);
    for breakdown in [&p.by_class, &p.by_namespace, &p.by_cluster, &p.by_country] {
        assert_eq!(breakdown.total(), p.total);
    }
}

#[test]
fn without_cluster_facts_every_placement_has_an_unknown_country_and_provider() {
    let trail = Trail::new().placed("bzk/case", "internal", "rijkscloud-nl,stackit-de");
    let r = report(&trail, Options::default());
    let p = &r.placements;
    assert_eq!(p.facts, FactsSource::None);
    assert!(p.by_country.counts.is_empty());
    assert_eq!((p.by_country.unknown, p.by_provider.unknown), (2, 2));
    assert_eq!(p.clusters_without_facts, ["rijkscloud-nl", "stackit-de"]);
}

#[test]
fn with_cluster_facts_placements_count_per_country_and_provider() {
    let trail = Trail::new()
        .placed("bzk/case", "internal", "rijkscloud-nl,stackit-de")
        .placed("fin/tax", "confidential", "rijkscloud-nl")
        .placed("ezk/open", "public", "hyperscaler-frankfurt");
    let options = Options {
        facts: facts(),
        facts_source: FactsSource::File,
        ..Options::default()
    };
    let p = report(&trail, options).placements;
    assert_eq!(p.by_country.get("NL"), 2);
    assert_eq!(p.by_country.get("DE"), 1);
    assert_eq!(p.by_country.unknown, 1);
    assert_eq!(p.by_provider.get("Rijkscloud"), 2);
    assert_eq!(p.by_provider.counts[0].name, "Rijkscloud", "most first");
    assert_eq!(p.clusters_without_facts, ["hyperscaler-frankfurt"]);
}

#[test]
fn a_period_counts_only_its_decisions_but_placements_are_as_of_its_end() {
    let trail = Trail::new()
        .placed("fin/tax", "confidential", "rijkscloud-nl") // 00:00
        .refused("fin/partner", "confidential", &["x"]) // 01:00
        .refused("fin/partner", "confidential", &["x"]) // 02:00
        .released("fin/tax", "confidential"); // 03:00
    let options = Options {
        since: Some("2026-03-02T01:00:00Z"),
        until: Some("2026-03-02T02:30:00Z"),
        ..Options::default()
    };
    let r = report(&trail, options);
    assert_eq!(
        (r.decisions.total, r.decisions.refused, r.decisions.placed),
        (2, 2, 0)
    );
    assert_eq!(
        r.placements.workloads, 1,
        "tax runs until its release at 03:00"
    );
    assert_eq!(
        r.period.since.as_deref(),
        Some("2026-03-02T01:00:00.000000Z")
    );
    assert_eq!(r.workloads.len(), 1);
    assert_eq!(r.workloads[0].workload, "fin/partner");
}

#[test]
fn refusals_are_counted_per_reason_once_per_refusal() {
    let trail = Trail::new()
        .refused(
            "fin/partner",
            "confidential",
            &["a: no pool", "b: exposed", "a: no pool"],
        )
        .refused("fin/partner", "confidential", &["a: no pool"])
        .refused("def/intel", "secret", &["b: exposed"]);
    let f = report(&trail, Options::default()).refusals;
    assert_eq!((f.total, f.workloads), (3, 2));
    let reasons: Vec<(&str, usize)> = f
        .by_reason
        .iter()
        .map(|c| (c.name.as_str(), c.count))
        .collect();
    assert_eq!(reasons, [("a: no pool", 2), ("b: exposed", 2)]);
    assert_eq!(f.by_class.get("confidential"), 2);
    assert_eq!(f.list.len(), 3);
}

#[test]
fn violations_over_time_have_a_bucket_for_every_day_empty_ones_too() {
    let trail = Trail::new()
        .violation("fin/tax-1", "confidential") // day 1
        .at_hour(48)
        .lost("stackit-de") // day 3
        .violation("fin/tax-2", "confidential");
    let v = report(&trail, Options::default()).violations;
    assert_eq!((v.total, v.sovereignty_lost), (2, 1));
    assert_eq!(v.bucket, Bucket::Day);
    let days: Vec<(&str, usize, usize)> = v
        .over_time
        .iter()
        .map(|b| (b.label.as_str(), b.violations, b.sovereignty_lost))
        .collect();
    assert_eq!(
        days,
        [
            ("2026-03-02", 1, 0),
            ("2026-03-03", 0, 0),
            ("2026-03-04", 1, 1)
        ]
    );
}

#[test]
fn a_long_period_is_bucketed_by_month() {
    let trail = Trail::new()
        .violation("fin/a", "public")
        .at_hour(24 * 100)
        .violation("fin/b", "public");
    let v = report(&trail, Options::default()).violations;
    assert_eq!(v.bucket, Bucket::Month);
    let labels: Vec<&str> = v.over_time.iter().map(|b| b.label.as_str()).collect();
    assert_eq!(labels, ["2026-03", "2026-04", "2026-05", "2026-06"]);
}

#[test]
fn each_workload_has_its_decisions_and_where_it_runs_at_the_end() {
    let trail = Trail::new()
        .placed("fin/tax", "confidential", "rijkscloud-nl")
        .violation("fin/tax-7f9", "confidential")
        .moved("fin/tax", "confidential", "stackit-de")
        .refused("fin/partner", "confidential", &["x"]);
    let workloads = report(&trail, Options::default()).workloads;
    let names: Vec<&str> = workloads.iter().map(|w| w.workload.as_str()).collect();
    assert_eq!(names, ["fin/partner", "fin/tax"], "pods are not workloads");
    let tax = &workloads[1];
    assert_eq!(tax.current, ["stackit-de"]);
    assert_eq!(tax.class.as_deref(), Some("confidential"));
    let actions: Vec<AuditAction> = tax.decisions.iter().map(|d| d.action).collect();
    assert_eq!(actions, [AuditAction::Placed, AuditAction::Moved]);
    assert!(workloads[0].current.is_empty());
}

#[test]
fn decisions_from_the_broken_line_on_are_marked_untrusted() {
    let trail = Trail::new()
        .placed("fin/a", "public", "rijkscloud-nl")
        .placed("fin/b", "public", "rijkscloud-nl")
        .placed("fin/c", "public", "rijkscloud-nl");
    let options = Options {
        chain: broken_at(2),
        ..Options::default()
    };
    let r = report(&trail, options);
    assert!(!r.chain.intact);
    assert_eq!(r.chain.broken_at_line, Some(2));
    assert_eq!(r.chain.untrusted_decisions, 2);
    let marks: Vec<bool> = r
        .workloads
        .iter()
        .map(|w| w.decisions[0].untrusted)
        .collect();
    assert_eq!(marks, [false, true, true]);
}

#[test]
fn skipped_lines_are_reported_by_action_name() {
    let mut trail = Trail::new().placed("fin/a", "public", "rijkscloud-nl");
    trail.read.unknown_actions.insert("Quarantined".into(), 2);
    trail.read.unreadable = 1;
    let r = report(&trail, Options::default());
    assert_eq!(r.lines.unknown_actions[0].name, "Quarantined");
    assert_eq!(r.lines.unknown_actions[0].count, 2);
    assert_eq!((r.lines.unreadable, r.decisions.total), (1, 1));
}

fn live_workload(
    name: &str,
    clusters: &[(&str, &str)],
    stranded: Option<bool>,
    ready: Option<bool>,
) -> LiveWorkload {
    LiveWorkload {
        namespace: "fin".into(),
        name: name.into(),
        class: "confidential".into(),
        placements: clusters
            .iter()
            .map(|(cluster, country)| LivePlacement {
                cluster: (*cluster).into(),
                country: (*country).into(),
            })
            .collect(),
        stranded,
        alternatives: stranded.map(|s| if s { 0 } else { 2 }),
        exit_ready: ready,
    }
}

#[test]
fn live_figures_list_stranded_and_exit_ready_workloads_and_placements_per_provider() {
    let live = LiveState {
        workloads: vec![
            live_workload("tax", &[("rijkscloud-nl", "NL")], Some(true), Some(false)),
            live_workload(
                "case",
                &[("rijkscloud-nl", "NL"), ("stackit-de", "DE")],
                Some(false),
                Some(true),
            ),
            live_workload("new", &[("stackit-de", "DE")], None, None),
            live_workload("refused", &[], None, None),
        ],
        clusters: facts(),
        invalid_objects: 1,
    };
    let options = Options {
        facts: facts(),
        facts_source: FactsSource::Live,
        live: Some(live),
        ..Options::default()
    };
    let live = report(&Trail::new(), options).live.unwrap();
    assert_eq!(
        (live.workloads, live.placements, live.invalid_objects),
        (4, 4, 1)
    );
    assert_eq!(live.stranded.len(), 1);
    assert_eq!(live.stranded[0].workload, "fin/tax");
    assert_eq!(live.exit_ready.len(), 1);
    assert_eq!(live.exit_ready[0].alternatives, 2);
    assert_eq!(live.exit_unknown, ["fin/new"]);
    assert_eq!(live.by_provider.get("Rijkscloud"), 2);
    assert_eq!(live.by_provider.get("Schwarz Digits"), 2);
    assert_eq!(live.by_country.get("DE"), 2);
}

#[test]
fn the_json_form_names_every_section_in_camel_case() {
    let trail = Trail::new().placed("fin/a", "public", "rijkscloud-nl");
    let json = serde_json::to_value(report(&trail, Options::default())).unwrap();
    for key in [
        "reportVersion",
        "auditLog",
        "period",
        "chain",
        "checkpoint",
        "lines",
        "decisions",
        "placements",
        "refusals",
        "violations",
        "live",
        "workloads",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    assert_eq!(json["decisions"]["placed"], 1);
    assert_eq!(json["decisions"]["sovereigntyLost"], 0);
    assert_eq!(
        json["placements"]["byCluster"]["counts"][0]["name"],
        "rijkscloud-nl"
    );
    assert_eq!(json["checkpoint"]["state"], "none");
    assert_eq!(json["workloads"][0]["decisions"][0]["action"], "Placed");
}
