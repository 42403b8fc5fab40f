//! Inline SVG charts: horizontal bars for counts by name, grouped columns over time. No
//! script, no external reference; every label is escaped and has its full text in `<title>`.

use super::escape::{escape, shorten};
use super::model::TimeBucket;
use std::fmt::Write as _;

const LABEL_WIDTH: usize = 240;
const BAR_WIDTH: usize = 420;
const ROW: usize = 24;
const LABEL_CHARS: usize = 34;

/// One bar per `(label, count)`, longest first as given, scaled to the largest count.
/// `title` names the chart for screen readers.
pub fn bars(title: &str, rows: &[(String, usize)]) -> String {
    let max = rows.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let width = LABEL_WIDTH + BAR_WIDTH + 60;
    let height = rows.len() * ROW + 8;
    let mut svg = format!(
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{}">"#,
        escape(title)
    );
    for (i, (label, count)) in rows.iter().enumerate() {
        let y = i * ROW + 4;
        let bar = count * BAR_WIDTH / max;
        let _ = write!(
            svg,
            r##"<g><title>{full}: {count}</title><text x="{lx}" y="{ty}" text-anchor="end" class="label">{short}</text><rect x="{bx}" y="{y}" width="{bar}" height="{h}" rx="2" class="bar"/><text x="{cx}" y="{ty}" class="count">{count}</text></g>"##,
            full = escape(label),
            short = escape(&shorten(label, LABEL_CHARS)),
            lx = LABEL_WIDTH - 8,
            ty = y + 15,
            bx = LABEL_WIDTH,
            h = ROW - 6,
            cx = LABEL_WIDTH + bar + 6,
        );
    }
    svg.push_str("</svg>");
    svg
}

const PLOT_HEIGHT: usize = 160;
const SLOT_MIN: usize = 8;
const SLOT_MAX: usize = 120;
const COLUMN_MAX: usize = 28;
const PLOT_WIDTH: usize = 900;

/// Two columns per bucket (violations, sovereignty lost), with a label under every few
/// buckets so they never overlap. `legend` names the two series.
pub fn over_time(title: &str, buckets: &[TimeBucket], legend: [&str; 2]) -> String {
    let [first, second] = legend.map(escape);
    let max = buckets
        .iter()
        .map(|b| b.violations.max(b.sovereignty_lost))
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = (PLOT_WIDTH / buckets.len().max(1)).clamp(SLOT_MIN, SLOT_MAX);
    let plot_width = slot * buckets.len().max(1);
    let left = 40;
    let width = left + plot_width + 20;
    let height = PLOT_HEIGHT + 70;
    // A label needs about 80 pixels.
    let every = 80usize.div_ceil(slot).max(1);
    let mut svg = format!(
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{}">"#,
        escape(title)
    );
    let base = PLOT_HEIGHT + 10;
    let _ = write!(
        svg,
        r#"<line x1="{left}" y1="{base}" x2="{x2}" y2="{base}" class="axis"/><text x="{tx}" y="18" text-anchor="end" class="count">{max}</text><text x="{tx}" y="{base}" text-anchor="end" class="count">0</text>"#,
        x2 = left + plot_width,
        tx = left - 6,
    );
    let column = (slot.saturating_sub(2) / 2).clamp(2, COLUMN_MAX);
    for (i, bucket) in buckets.iter().enumerate() {
        // The two columns in the middle of their slot.
        let x = left + i * slot + slot.saturating_sub(2 * column) / 2;
        let pairs = [
            (bucket.violations, "bar violation"),
            (bucket.sovereignty_lost, "bar lost"),
        ];
        let _ = write!(
            svg,
            "<g><title>{}: {} {}, {} {}</title>",
            escape(&bucket.label),
            bucket.violations,
            first,
            bucket.sovereignty_lost,
            second
        );
        for (j, (count, class)) in pairs.into_iter().enumerate() {
            let h = count * PLOT_HEIGHT / max;
            let _ = write!(
                svg,
                r#"<rect x="{}" y="{}" width="{column}" height="{h}" class="{class}"/>"#,
                x + j * column,
                base - h,
            );
        }
        svg.push_str("</g>");
        if i % every == 0 || i + 1 == buckets.len() {
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="middle" class="label">{}</text>"#,
                x + column,
                base + 16,
                escape(&bucket.label)
            );
        }
    }
    let ly = base + 46;
    let _ = write!(
        svg,
        r#"<rect x="{left}" y="{}" width="12" height="12" class="bar violation"/><text x="{}" y="{ly}" class="label">{}</text><rect x="{}" y="{}" width="12" height="12" class="bar lost"/><text x="{}" y="{ly}" class="label">{}</text>"#,
        ly - 11,
        left + 18,
        first,
        left + 240,
        ly - 11,
        left + 258,
        second,
    );
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(label: &str, violations: usize, lost: usize) -> TimeBucket {
        TimeBucket {
            label: label.into(),
            violations,
            sovereignty_lost: lost,
        }
    }

    #[test]
    fn the_largest_count_gets_the_full_bar_and_the_others_their_share() {
        let svg = bars("t", &[("a".into(), 4), ("b".into(), 1)]);
        assert!(svg.contains(&format!(r#"width="{BAR_WIDTH}""#)), "{svg}");
        assert!(
            svg.contains(&format!(r#"width="{}""#, BAR_WIDTH / 4)),
            "{svg}"
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }

    #[test]
    fn chart_labels_are_escaped_and_long_ones_shortened_with_the_full_text_in_the_title() {
        let long = format!("<b>{}</b>", "x".repeat(60));
        let svg = bars("per <class>", &[(long.clone(), 1)]);
        assert!(!svg.contains("<b>"), "{svg}");
        assert!(svg.contains(&format!("<title>{}: 1</title>", escape(&long))));
        assert!(svg.contains(r#"aria-label="per &lt;class&gt;""#));
        assert!(svg.contains('…'));
    }

    #[test]
    fn an_empty_chart_is_still_well_formed() {
        assert!(bars("t", &[]).ends_with("</svg>"));
        assert!(over_time("t", &[], ["v", "l"]).ends_with("</svg>"));
    }

    #[test]
    fn every_bucket_has_two_columns_and_labels_do_not_crowd() {
        let buckets: Vec<TimeBucket> = (1..=60)
            .map(|d| bucket(&format!("d{d}"), d % 3, d % 2))
            .collect();
        let svg = over_time("t", &buckets, ["violations", "lost"]);
        assert_eq!(svg.matches("class=\"bar violation\"").count(), 61);
        assert_eq!(svg.matches("class=\"bar lost\"").count(), 61);
        let labels = svg.matches("text-anchor=\"middle\"").count();
        assert!(labels < 20 && labels > 2, "{labels} labels");
        assert!(svg.contains(">d1<") && svg.contains(">d60<"));
    }
}
