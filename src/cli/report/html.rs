//! The self-contained HTML page: inline CSS, inline SVG charts, no script, no external
//! reference (a Content-Security-Policy of `default-src 'none'` makes the browser refuse any
//! that slipped in). Every string from the trail or the cluster is escaped.

use super::checkpoint::{CheckpointAt, CheckpointStatus, Unchecked};
use super::escape::escape;
use super::lang::Words;
use super::model::{Breakdown, Report};
use super::svg;
use super::tables::{decision_table, exit_table, short_time, text_list};
use crate::audit::AuditAction;
use std::fmt::Write as _;

const STYLE: &str = "\
body{font-family:'DejaVu Sans',Arial,sans-serif;margin:0 auto;max-width:1200px;padding:24px 32px;color:#1b2430;background:#fff;font-size:14px;line-height:1.45}\
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;border-bottom:2px solid #154273;padding-bottom:4px;margin:28px 0 12px;color:#154273}\
h3{font-size:15px;margin:18px 0 6px}header p{margin:2px 0;color:#4a5563}\
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:10px 0}dl.meta dt{font-weight:bold}dl.meta dd{margin:0;word-break:break-all}\
ul.figures{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}\
ul.figures li{border:1px solid #c9d3df;border-radius:6px;padding:8px 14px;background:#f3f6fa;font-size:15px}\
ul.figures li strong{font-size:20px;color:#154273}\
.ok{border-left:6px solid #2e7d32;background:#edf7ee;padding:8px 12px}\
.bad{border-left:6px solid #c62828;background:#fdecea;padding:8px 12px}\
.note{border-left:6px solid #9aa5b1;background:#f5f7f9;padding:8px 12px}\
code{font-family:'DejaVu Sans Mono',monospace;font-size:12px;word-break:break-all}\
table{border-collapse:collapse;width:100%;margin:6px 0 12px;font-size:13px}\
th,td{border:1px solid #d5dce4;padding:4px 6px;text-align:left;vertical-align:top}th{background:#e8eef5}\
tr.untrusted td{background:#fdecea}td.time{white-space:nowrap}td ul{margin:0;padding-left:16px}\
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:4px 24px}\
svg.chart{max-width:100%;height:auto}svg .label{font-size:12px;fill:#1b2430}svg .count{font-size:12px;fill:#4a5563}\
svg .bar{fill:#154273}svg .bar.violation{fill:#c62828}svg .bar.lost{fill:#ef8f00}svg .axis{stroke:#9aa5b1}\
footer{margin-top:32px;color:#6b7785;font-size:12px}";

/// The whole page.
pub fn render(report: &Report, w: &Words) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        w.code,
        escape(w.title)
    );
    header(&mut page, report, w);
    summary(&mut page, report, w);
    chain(&mut page, report, w);
    placements(&mut page, report, w);
    refusals(&mut page, report, w);
    violations(&mut page, report, w);
    exit(&mut page, report, w);
    workloads(&mut page, report, w);
    let _ = write!(
        page,
        "<footer>{}</footer>\n</body></html>\n",
        escape(w.generated_by)
    );
    page
}

fn header(page: &mut String, r: &Report, w: &Words) {
    let period = match (&r.period.since, &r.period.until) {
        (None, None) => w.whole_trail.to_owned(),
        (since, until) => format!(
            "{} – {}",
            since.as_deref().map_or("…".to_owned(), short_time),
            until.as_deref().map_or("…".to_owned(), short_time)
        ),
    };
    let span = match (&r.period.first, &r.period.last) {
        (Some(first), Some(last)) => format!("{} – {}", short_time(first), short_time(last)),
        _ => w.none.to_owned(),
    };
    let _ = writeln!(
        page,
        "<header><h1>{}</h1><p>{}</p><dl class=\"meta\"><dt>{}</dt><dd><code>{}</code></dd>\
         <dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd></dl></header>",
        escape(w.title),
        escape(w.subtitle),
        escape(w.trail),
        escape(&r.audit_log),
        escape(w.period),
        escape(&period),
        escape(w.first_last),
        escape(&span),
    );
}

/// `<li>Name: <strong>n</strong></li>` for each figure.
fn figures(page: &mut String, items: &[(&str, usize)]) {
    page.push_str("<ul class=\"figures\">");
    for (name, n) in items {
        let _ = write!(page, "<li>{}: <strong>{n}</strong></li>", escape(name));
    }
    page.push_str("</ul>\n");
}

fn summary(page: &mut String, r: &Report, w: &Words) {
    let _ = write!(
        page,
        "<section id=\"summary\"><h2>{}</h2><p>{}: {}</p>",
        escape(w.summary),
        escape(w.decisions_in_period),
        r.decisions.total
    );
    let items: Vec<(&str, usize)> = AuditAction::ALL
        .iter()
        .map(|a| (w.action_name(*a), r.decisions.get(*a)))
        .collect();
    figures(page, &items);
    page.push_str("</section>\n");
}

fn chain(page: &mut String, r: &Report, w: &Words) {
    let _ = write!(page, "<section id=\"chain\"><h2>{}</h2>", escape(w.chain));
    let c = &r.chain;
    if c.intact {
        let _ = write!(
            page,
            "<div class=\"ok\"><strong>{}</strong> — {}: {}</div>",
            escape(w.chain_intact),
            escape(w.verified_records),
            c.verified_records
        );
    } else {
        let _ = write!(
            page,
            "<div class=\"bad\"><strong>{}</strong> — line {}: {}<br>{}: {}<br>{}: {}</div>",
            escape(w.chain_broken),
            c.broken_at_line.unwrap_or_default(),
            escape(c.problem.as_deref().unwrap_or_default()),
            escape(w.verified_records),
            c.verified_records,
            escape(w.untrusted),
            c.untrusted_decisions
        );
    }
    let head = c.head.as_deref().unwrap_or("-");
    let _ = write!(
        page,
        "<dl class=\"meta\"><dt>{}</dt><dd><code>{}</code></dd><dt>{}</dt><dd>{}</dd>",
        escape(w.head),
        escape(head),
        escape(w.checkpoint),
        checkpoint(&r.checkpoint, w)
    );
    let mut skipped: Vec<String> = r
        .lines
        .unknown_actions
        .iter()
        .map(|u| {
            format!(
                "{} {}: {}",
                escape(w.unknown_action),
                escape(&u.name),
                u.count
            )
        })
        .collect();
    if r.lines.unreadable > 0 {
        skipped.push(format!("{}: {}", escape(w.unreadable), r.lines.unreadable));
    }
    if !skipped.is_empty() {
        let _ = write!(
            page,
            "<dt>{}</dt><dd>{}</dd>",
            escape(w.skipped_lines),
            skipped.join("; ")
        );
    }
    page.push_str("</dl></section>\n");
}

/// The checkpoint's status, as HTML (escaped).
pub fn checkpoint(status: &CheckpointStatus, w: &Words) -> String {
    let at = |at: &CheckpointAt| {
        format!(
            " (line {}, seq {}, {})",
            at.line,
            at.seq.map_or("-".to_owned(), |s| s.to_string()),
            escape(at.time.as_deref().unwrap_or("-"))
        )
    };
    match status {
        CheckpointStatus::None => escape(w.no_checkpoint),
        CheckpointStatus::Unverified { at: place, why } => {
            let text = match why {
                Unchecked::NoKey => w.checkpoint_unverified_no_key,
                Unchecked::NotSupported => w.checkpoint_unverified_unsupported,
            };
            format!("{}{}", escape(text), at(place))
        }
        CheckpointStatus::Valid {
            at: place,
            size,
            head,
            key_name,
        } => format!(
            "<span class=\"ok\">{}</span>: {} — {size}, <code>{}</code>{}",
            escape(w.checkpoint_valid),
            escape(key_name),
            escape(head),
            at(place)
        ),
        CheckpointStatus::Invalid { at: place, problem } => format!(
            "<span class=\"bad\">{}</span>: {}{}",
            escape(w.checkpoint_invalid),
            escape(problem),
            at(place)
        ),
    }
}

/// A chart of a breakdown, with its unknown share as a bar of its own.
fn chart(page: &mut String, heading: &str, b: &Breakdown, w: &Words) {
    let mut rows: Vec<(String, usize)> =
        b.counts.iter().map(|c| (c.name.clone(), c.count)).collect();
    if b.unknown > 0 {
        rows.push((format!("({})", w.unknown), b.unknown));
    }
    let _ = write!(page, "<div><h3>{}</h3>", escape(heading));
    if rows.is_empty() {
        let _ = write!(page, "<p>{}</p>", escape(w.none));
    } else {
        page.push_str(&svg::bars(heading, &rows));
    }
    page.push_str("</div>");
}

fn placements(page: &mut String, r: &Report, w: &Words) {
    let p = &r.placements;
    let _ = write!(
        page,
        "<section id=\"placements\"><h2>{}</h2><p>{}</p>",
        escape(w.placements),
        escape(w.placements_note)
    );
    figures(
        page,
        &[
            (w.workloads_placed, p.workloads),
            (w.placements_total, p.total),
        ],
    );
    if p.facts == super::facts::FactsSource::None {
        let _ = write!(page, "<p class=\"note\">{}</p>", escape(w.no_facts));
    } else if !p.clusters_without_facts.is_empty() {
        let _ = write!(
            page,
            "<p class=\"note\">{}: {}</p>",
            escape(w.without_facts),
            escape(&p.clusters_without_facts.join(", "))
        );
    }
    page.push_str("<div class=\"grid\">");
    chart(page, w.by_class, &p.by_class, w);
    chart(page, w.by_namespace, &p.by_namespace, w);
    chart(page, w.by_country, &p.by_country, w);
    chart(page, w.by_provider, &p.by_provider, w);
    chart(page, w.by_cluster, &p.by_cluster, w);
    page.push_str("</div></section>\n");
}

fn refusals(page: &mut String, r: &Report, w: &Words) {
    let f = &r.refusals;
    let _ = write!(
        page,
        "<section id=\"refusals\"><h2>{}</h2>",
        escape(w.refusals)
    );
    figures(
        page,
        &[
            (w.action_name(AuditAction::Refused), f.total),
            (w.refused_workloads, f.workloads),
        ],
    );
    if !f.by_reason.is_empty() {
        let _ = write!(page, "<h3>{}</h3><table>", escape(w.reasons));
        for reason in &f.by_reason {
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td></tr>",
                escape(&reason.name),
                reason.count
            );
        }
        page.push_str("</table>");
        page.push_str(&decision_table(&f.list, w));
    }
    page.push_str("</section>\n");
}

fn violations(page: &mut String, r: &Report, w: &Words) {
    let v = &r.violations;
    let lost = w.action_name(AuditAction::SovereigntyLost);
    let _ = write!(
        page,
        "<section id=\"violations\"><h2>{}</h2>",
        escape(w.violations)
    );
    figures(
        page,
        &[
            (w.action_name(AuditAction::Violation), v.total),
            (lost, v.sovereignty_lost),
        ],
    );
    let _ = write!(page, "<h3>{}</h3>", escape(w.violations_over_time));
    page.push_str(&svg::over_time(
        w.violations_over_time,
        &v.over_time,
        [w.action_name(AuditAction::Violation), lost],
    ));
    if !v.list.is_empty() {
        page.push_str(&decision_table(&v.list, w));
    }
    page.push_str("</section>\n");
}

fn exit(page: &mut String, r: &Report, w: &Words) {
    let _ = write!(page, "<section id=\"exit\"><h2>{}</h2>", escape(w.exit));
    let Some(live) = &r.live else {
        let _ = writeln!(
            page,
            "<p class=\"note\">{}</p></section>",
            escape(w.exit_needs_live)
        );
        return;
    };
    figures(
        page,
        &[
            (w.live_workloads, live.workloads),
            (w.placements_total, live.placements),
            (w.stranded, live.stranded.len()),
            (w.exit_ready, live.exit_ready.len()),
        ],
    );
    if live.invalid_objects > 0 {
        let _ = write!(
            page,
            "<p class=\"bad\">{}: {}</p>",
            escape(w.invalid_objects),
            live.invalid_objects
        );
    }
    page.push_str("<div class=\"grid\">");
    chart(page, w.live_by_provider, &live.by_provider, w);
    chart(page, w.by_country, &live.by_country, w);
    page.push_str("</div>");
    let _ = write!(page, "<h3>{}</h3>", escape(w.stranded));
    page.push_str(&exit_table(&live.stranded, w));
    let _ = write!(page, "<h3>{}</h3>", escape(w.exit_ready));
    page.push_str(&exit_table(&live.exit_ready, w));
    if !live.exit_unknown.is_empty() {
        let _ = write!(page, "<h3>{}</h3>", escape(w.exit_unknown));
        page.push_str(&text_list(&live.exit_unknown));
    }
    page.push_str("</section>\n");
}

fn workloads(page: &mut String, r: &Report, w: &Words) {
    let _ = write!(
        page,
        "<section id=\"workloads\"><h2>{}</h2>",
        escape(w.workloads)
    );
    if r.workloads.is_empty() {
        let _ = write!(page, "<p>{}</p>", escape(w.none));
    }
    for history in &r.workloads {
        let runs = if history.current.is_empty() {
            w.runs_nowhere.to_owned()
        } else {
            format!("{} {}", w.runs_on, history.current.join(", "))
        };
        let _ = write!(
            page,
            "<h3>{} ({}) — {}</h3>",
            escape(&history.workload),
            escape(history.class.as_deref().unwrap_or("-")),
            escape(&runs)
        );
        page.push_str(&decision_table(&history.decisions, w));
    }
    page.push_str("</section>\n");
}
