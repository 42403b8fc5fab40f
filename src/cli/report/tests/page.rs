use super::*;
use crate::cli::report::checkpoint::{CheckpointAt, Unchecked};
use crate::cli::report::html::{checkpoint, render};
use crate::cli::report::lang::{Lang, words};

fn page(report: &Report, lang: Lang) -> String {
    render(report, words(lang))
}

/// The page's text without its tags, for looking up figures as a reader sees them.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

fn scenario() -> Report {
    let trail = Trail::new()
        .placed("fin/tax", "confidential", "rijkscloud-nl")
        .placed("bzk/case", "internal", "rijkscloud-nl,stackit-de")
        .refused(
            "fin/partner",
            "confidential",
            &["hyperscaler-frankfurt: provider is exposed"],
        )
        .violation("fin/tax-7f9", "confidential");
    report(
        &trail,
        Options {
            chain: intact(4),
            facts: facts(),
            facts_source: FactsSource::File,
            ..Options::default()
        },
    )
}

#[test]
fn the_page_shows_the_key_figures_as_a_reader_sees_them() {
    let text = text(&page(&scenario(), Lang::En));
    for figure in [
        "Placed: 2",
        "Refused: 1",
        "Violation: 1",
        "Workloads placed: 2",
        "Placements: 3",
        "Chain intact",
    ] {
        assert!(text.contains(figure), "no {figure:?} in {text}");
    }
    assert!(text.contains("No checkpoint in the trail."));
    assert!(text.contains("hyperscaler-frankfurt: provider is exposed"));
}

#[test]
fn the_page_is_self_contained_no_script_no_external_reference() {
    let html = page(&scenario(), Lang::En);
    let lower = html.to_ascii_lowercase();
    for forbidden in [
        "<script",
        "<link",
        "<img",
        "<iframe",
        "@import",
        "url(",
        "src=",
        "href=",
        "http://",
        "https://",
        "@font-face",
    ] {
        // The SVG namespace is a name, not a reference: nothing is fetched from it.
        let found = lower
            .replace("xmlns=\"http://www.w3.org/2000/svg\"", "")
            .contains(forbidden);
        assert!(!found, "the page contains {forbidden:?}");
    }
    assert!(html.contains(
        "Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\""
    ));
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg"));
}

#[test]
fn strings_from_the_trail_are_escaped_everywhere_they_appear() {
    let hostile = "<script>alert(1)</script>";
    let trail = Trail::new()
        .placed(&format!("fin/{hostile}"), hostile, hostile)
        .refused("fin/x", "\"class'", &[hostile]);
    let html = page(&report(&trail, Options::default()), Lang::En);
    assert!(!html.to_ascii_lowercase().contains("<script"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains("\"class'"));
}

#[test]
fn dutch_headings_replace_the_english_ones() {
    let html = page(&scenario(), Lang::Nl);
    let text = text(&html);
    assert!(html.contains("<html lang=\"nl\">"));
    for heading in [
        "Sovra plaatsingsrapport",
        "Controle van de keten",
        "Weigeringen en hun redenen",
        "Besluiten per workload",
        "Geplaatst: 2",
        "Geweigerd: 1",
    ] {
        assert!(text.contains(heading), "no {heading:?}");
    }
    assert!(!text.contains("Refusals and their reasons"));
}

#[test]
fn a_broken_chain_is_shown_as_broken_with_its_untrusted_decisions() {
    let trail = Trail::new()
        .placed("fin/a", "public", "rijkscloud-nl")
        .placed("fin/b", "public", "rijkscloud-nl");
    let html = page(
        &report(
            &trail,
            Options {
                chain: broken_at(2),
                ..Options::default()
            },
        ),
        Lang::En,
    );
    let text = text(&html);
    assert!(
        text.contains("Chain BROKEN — line 2: prev hash does not match line 2"),
        "{text}"
    );
    assert!(text.contains("(cannot be trusted): 1"));
    assert_eq!(html.matches("class=\"untrusted\"").count(), 1);
}

#[test]
fn without_facts_or_live_the_page_says_what_is_missing() {
    let trail = Trail::new().placed("fin/a", "public", "rijkscloud-nl");
    let text = text(&page(&report(&trail, Options::default()), Lang::En));
    assert!(text.contains("pass --clusters FILE"));
    assert!(text.contains("run with --live"));
}

fn at() -> CheckpointAt {
    CheckpointAt {
        line: 12,
        seq: Some(12),
        time: Some("2026-03-04T00:00:00.000000Z".into()),
    }
}

#[test]
fn every_checkpoint_status_has_its_own_wording() {
    let w = words(Lang::En);
    let shown = |status: CheckpointStatus| text(&checkpoint(&status, w));
    assert_eq!(shown(CheckpointStatus::None), "No checkpoint in the trail.");
    assert!(
        shown(CheckpointStatus::Unverified {
            at: at(),
            why: Unchecked::NoKey
        })
        .contains("no key was given (--key). (line 12, seq 12, 2026-03-04T00:00:00.000000Z)")
    );
    assert!(
        shown(CheckpointStatus::Unverified {
            at: at(),
            why: Unchecked::NotSupported
        })
        .contains("cannot check")
    );
    let valid = shown(CheckpointStatus::Valid {
        at: at(),
        size: 12,
        head: "cd34".into(),
        key_name: "sovra.example/trail".into(),
    });
    assert!(
        valid.starts_with("Signature valid: sovra.example/trail — 12, cd34"),
        "{valid}"
    );
    let invalid = shown(CheckpointStatus::Invalid {
        at: at(),
        problem: "<bad> signature".into(),
    });
    assert!(
        invalid.starts_with("Checkpoint INVALID: &lt;bad&gt; signature"),
        "{invalid}"
    );
}

#[test]
fn skipped_lines_of_unknown_actions_are_named_on_the_page() {
    let mut trail = Trail::new().placed("fin/a", "public", "rijkscloud-nl");
    trail.read.unknown_actions.insert("Quarantined".into(), 2);
    let text = text(&page(&report(&trail, Options::default()), Lang::En));
    assert!(
        text.contains("Lines skippedunknown action Quarantined: 2"),
        "{text}"
    );
}
