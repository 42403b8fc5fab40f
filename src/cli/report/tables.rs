//! The page's tables: decisions (time, action, object, class, clusters, pools, reasons) and
//! exit readiness. Every cell is escaped.

use super::escape::escape;
use super::lang::Words;
use super::model::{Decision, ExitLine};
use std::fmt::Write as _;

/// Decisions oldest first; those at or after a break in the chain are marked.
pub fn decision_table(decisions: &[Decision], w: &Words) -> String {
    let mut out = String::from("<table><thead><tr>");
    for heading in [
        "#", w.time, w.action, w.object, w.class, w.clusters, w.pools, w.reasons,
    ] {
        let _ = write!(out, "<th>{}</th>", escape(heading));
    }
    out.push_str("</tr></thead><tbody>");
    for d in decisions {
        let class = if d.untrusted {
            " class=\"untrusted\""
        } else {
            ""
        };
        let mark = if d.untrusted { " ⚠" } else { "" };
        let _ = write!(
            out,
            "<tr{class}><td>{}{mark}</td><td class=\"time\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            d.seq,
            escape(&short_time(&d.time)),
            escape(w.action_name(d.action)),
            escape(&d.object),
            escape(d.class.as_deref().unwrap_or("-")),
            escape(&or_dash(&d.clusters.join(", "))),
            escape(&or_dash(&d.pools.join(", "))),
            text_list(&d.reasons),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// Workloads with the clusters they run on and how many alternatives they have.
pub fn exit_table(lines: &[ExitLine], w: &Words) -> String {
    if lines.is_empty() {
        return format!("<p>{}</p>", escape(w.none));
    }
    let mut out = format!(
        "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        escape(w.object),
        escape(w.class),
        escape(w.clusters),
        escape(w.alternatives)
    );
    for line in lines {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&line.workload),
            escape(&line.class),
            escape(&line.clusters.join(", ")),
            line.alternatives
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// A `<ul>` of the items, or `-` when there are none.
pub fn text_list(items: &[String]) -> String {
    if items.is_empty() {
        return "-".to_owned();
    }
    let mut out = String::from("<ul>");
    for item in items {
        let _ = write!(out, "<li>{}</li>", escape(item));
    }
    out.push_str("</ul>");
    out
}

/// `2026-03-02T09:10:00.000000Z` as `2026-03-02 09:10:00Z`: the trail's microseconds are in
/// the JSON form; people read seconds.
pub fn short_time(rfc3339: &str) -> String {
    match (rfc3339.get(..10), rfc3339.get(11..19)) {
        (Some(date), Some(time)) if rfc3339.ends_with('Z') => format!("{date} {time}Z"),
        _ => rfc3339.to_owned(),
    }
}

fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_to_the_second_and_anything_else_as_it_is() {
        assert_eq!(
            short_time("2026-03-02T09:10:00.000000Z"),
            "2026-03-02 09:10:00Z"
        );
        assert_eq!(short_time("2026-03-02T09:10:00Z"), "2026-03-02 09:10:00Z");
        assert_eq!(short_time("yesterday"), "yesterday");
        assert_eq!(
            short_time("2026-03-02T09:10:00+01:00"),
            "2026-03-02T09:10:00+01:00"
        );
    }
}
