//! The count a refusal falls short of (distinct clusters, say), when some candidates qualify:
//! how many were wanted, which qualify, and that nothing else exists when nothing does.

use super::{Candidate, Kind};
use crate::policy::decision::ClusterFacts;
use std::collections::BTreeSet;

/// The count shortfalls in words, and the clusters that qualify (not the nearest candidates).
/// A current placement on an unreachable cluster counts as found although it misses
/// reachability; such clusters make up the count when the qualifying ones fall short of it.
pub(super) fn said<'a>(
    shortfalls: &[(i32, i32, &str, Option<&[String]>)],
    candidates: &[Candidate<'a>],
    clusters: &[ClusterFacts],
) -> (BTreeSet<&'a str>, String) {
    let mut qualifying: BTreeSet<&str> = candidates
        .iter()
        .filter(|c| c.misses.is_empty())
        .map(|c| c.cluster)
        .collect();
    let mut names: Vec<String> = qualifying.iter().map(|c| (*c).to_owned()).collect();
    let found = shortfalls
        .iter()
        .filter(|s| s.3.is_none())
        .map(|s| usize::try_from(s.1).unwrap_or_default())
        .max()
        .unwrap_or_default();
    for candidate in candidates {
        let kept = candidate.kinds().into_iter().eq([Kind::Reachable]);
        if kept && qualifying.len() < found && qualifying.insert(candidate.cluster) {
            names.push(format!("{} (kept while unreachable)", candidate.cluster));
        }
    }
    let mut said: Vec<String> = shortfalls
        .iter()
        .map(|(wanted, found, counted, named)| {
            let verb = if *found == 1 { "qualifies" } else { "qualify" };
            let named = named.map_or_else(|| names.clone(), <[String]>::to_vec);
            format!(
                "{wanted} {counted} requested, {found} {verb}: {}",
                named.join(", ")
            )
        })
        .collect();
    let others = clusters
        .iter()
        .any(|c| !qualifying.contains(c.name.as_str()));
    if !others {
        said.push("there is no other SovereignCluster".to_owned());
    }
    (qualifying, said.join("; "))
}
