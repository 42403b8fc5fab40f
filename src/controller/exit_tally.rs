//! The exit-readiness gauges: `sovra_workloads_stranded{class}` and
//! `sovra_provider_placements{provider,class}`. Each workload's last standing is kept, so a
//! change moves the gauges by exactly that workload, whatever order reconciles run in.

use super::metrics::{Metrics, labels};
use super::spare_capacity::ShedSpare;
use crate::sync::lock;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Where a placed workload stands: its class, the providers it runs on, whether it is stranded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Standing {
    pub class: String,
    pub providers: Vec<String>,
    pub stranded: bool,
}

/// Each workload's standing, shared: a fleet has few distinct standings (a class and a set of
/// providers), so each is kept once however many workloads stand there.
#[derive(Default)]
pub struct ExitTally {
    tally: Mutex<Tally>,
}

#[derive(Default)]
struct Tally {
    standings: HashMap<String, Arc<Standing>>,
    distinct: HashSet<Arc<Standing>>,
}

impl ExitTally {
    /// Records the standing of workload `uid` (`None`: not placed, or gone) and moves the
    /// gauges by the difference.
    pub fn set(&self, metrics: &Metrics, uid: &str, standing: Option<Standing>) {
        let mut tally = lock(&self.tally);
        let Tally {
            standings,
            distinct,
        } = &mut *tally;
        if standings.get(uid).map(|s| &**s) == standing.as_ref() {
            return;
        }
        let before = match standing {
            Some(standing) => {
                let shared = match distinct.get(&standing) {
                    Some(shared) => shared.clone(),
                    None => {
                        let shared = Arc::new(standing);
                        distinct.insert(shared.clone());
                        shared
                    }
                };
                count(metrics, &shared, 1);
                standings.insert(uid.to_owned(), shared)
            }
            None => standings.remove(uid),
        };
        if let Some(before) = before {
            count(metrics, &before, -1);
            // Held by `distinct` alone: no workload stands there any more.
            if Arc::strong_count(&before) == 2 {
                distinct.remove(&*before);
            }
        }
        standings.shed_spare();
    }

    #[cfg(test)]
    fn distinct(&self) -> usize {
        lock(&self.tally).distinct.len()
    }
}

fn count(metrics: &Metrics, standing: &Standing, by: i64) {
    if standing.stranded {
        metrics
            .workloads_stranded
            .get_or_create(&labels(&[("class", &standing.class)]))
            .inc_by(by);
    }
    for provider in &standing.providers {
        metrics
            .provider_placements
            .get_or_create(&labels(&[
                ("provider", provider),
                ("class", &standing.class),
            ]))
            .inc_by(by);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standing(providers: &[&str], stranded: bool) -> Option<Standing> {
        Some(Standing {
            class: "secret".into(),
            providers: providers.iter().map(|p| (*p).to_owned()).collect(),
            stranded,
        })
    }

    #[test]
    fn gauges_follow_each_workloads_latest_standing_and_drop_it_when_gone() {
        let metrics = Metrics::default();
        let tally = ExitTally::default();
        tally.set(&metrics, "a", standing(&["Alpha"], true));
        tally.set(&metrics, "a", standing(&["Alpha"], true));
        tally.set(&metrics, "b", standing(&["Alpha", "Beta"], false));
        let text = metrics.render();
        assert!(
            text.contains(r#"sovra_workloads_stranded{class="secret"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"sovra_provider_placements{provider="Alpha",class="secret"} 2"#),
            "{text}"
        );
        tally.set(&metrics, "a", standing(&["Beta"], false));
        tally.set(&metrics, "b", None);
        let text = metrics.render();
        assert!(
            text.contains(r#"sovra_workloads_stranded{class="secret"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"sovra_provider_placements{provider="Alpha",class="secret"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"sovra_provider_placements{provider="Beta",class="secret"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn workloads_that_stand_alike_share_one_standing_which_goes_with_the_last_of_them() {
        let metrics = Metrics::default();
        let tally = ExitTally::default();
        for uid in ["a", "b", "c"] {
            tally.set(&metrics, uid, standing(&["Alpha"], false));
        }
        tally.set(&metrics, "d", standing(&["Beta"], true));
        assert_eq!(tally.distinct(), 2, "two standings for four workloads");
        tally.set(&metrics, "d", standing(&["Alpha"], false));
        assert_eq!(tally.distinct(), 1, "nobody stands on Beta any more");
        for uid in ["a", "b", "c", "d"] {
            tally.set(&metrics, uid, None);
        }
        assert_eq!(tally.distinct(), 0);
        let text = metrics.render();
        assert!(
            text.contains(r#"sovra_provider_placements{provider="Alpha",class="secret"} 0"#),
            "{text}"
        );
    }
}
