//! Text helpers shared by `sovra plan`'s outputs: aligned columns, how a workload and a
//! placement are named, and a decision's reasons.

use crate::crd::{Placement, SovereignWorkload};
use crate::policy::{Decision, Outcome};
use std::fmt::Write as _;

/// `namespace/name` of a workload.
pub fn workload_name(w: &SovereignWorkload) -> String {
    format!(
        "{}/{}",
        w.metadata.namespace.as_deref().unwrap_or("default"),
        w.metadata.name.as_deref().unwrap_or("<unnamed>")
    )
}

/// `cluster [pool,pool] xN; ...`, or `-` for nothing placed.
pub fn placements_text(placements: &[Placement]) -> String {
    if placements.is_empty() {
        return "-".to_owned();
    }
    placements
        .iter()
        .map(|p| format!("{} [{}] x{}", p.cluster, p.node_pools.join(","), p.replicas))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Left-aligned columns two spaces apart, header first; trailing blanks trimmed.
pub fn columns<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let mut s = String::new();
        for (cell, width) in cells.iter().zip(widths) {
            let _ = write!(s, "{cell:<width$}  ");
        }
        s.trim_end().to_owned()
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}", line(header));
    for row in rows {
        let _ = writeln!(out, "{}", line(row.each_ref().map(String::as_str)));
    }
    out
}

/// Why a decision is what it is, indented under its workload: a refusal's reasons when no
/// candidate was judged, what `audit` let through, and the verdict on every cluster and pool
/// (the compliant ones only with `explain`).
pub fn decision_details(out: &mut String, d: &Decision, explain: bool) {
    if let Outcome::Refused(reasons) = &d.outcome
        && d.verdicts.is_empty()
    {
        for reason in reasons {
            let _ = writeln!(out, "    - {reason}");
        }
    }
    for v in d.audit_violations() {
        let _ = writeln!(out, "  audit only, enforce would refuse: {v}");
    }
    for verdict in d.verdicts.iter() {
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

/// `12,345`: thousands separated, as the HHI is usually written.
pub fn thousands(n: u32) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let rows = [["a-long-one".to_owned(), "x".to_owned()]];
        assert_eq!(columns(["A", "B"], &rows), "A           B\na-long-one  x\n");
    }

    #[test]
    fn thousands_are_separated_by_commas() {
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (2500, "2,500"),
            (10_000, "10,000"),
        ] {
            assert_eq!(thousands(n), text);
        }
    }

    #[test]
    fn nothing_placed_reads_as_a_dash() {
        assert_eq!(placements_text(&[]), "-");
        let p = Placement {
            cluster: "c".into(),
            country: "NL".into(),
            node_pools: vec!["a".into(), "b".into()],
            replicas: 2,
            ready_replicas: 0,
        };
        assert_eq!(placements_text(&[p.clone(), p]), "c [a,b] x2; c [a,b] x2");
    }
}
