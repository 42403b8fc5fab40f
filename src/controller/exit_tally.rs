//! The exit-readiness gauges: `sovra_workloads_stranded{class}` and
//! `sovra_provider_placements{provider,class}`. Each workload's last standing is kept, so a
//! change moves the gauges by exactly that workload, whatever order reconciles run in.

use super::metrics::{Metrics, labels};
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::Mutex;

/// Where a placed workload stands: its class, the providers it runs on, whether it is stranded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standing {
    pub class: String,
    pub providers: Vec<String>,
    pub stranded: bool,
}

#[derive(Default)]
pub struct ExitTally {
    standings: Mutex<HashMap<String, Standing>>,
}

impl ExitTally {
    /// Records the standing of workload `uid` (`None`: not placed, or gone) and moves the
    /// gauges by the difference.
    pub fn set(&self, metrics: &Metrics, uid: &str, standing: Option<Standing>) {
        let mut standings = lock(&self.standings);
        let before = match &standing {
            Some(standing) => standings.insert(uid.to_owned(), standing.clone()),
            None => standings.remove(uid),
        };
        if before == standing {
            return;
        }
        if let Some(before) = before {
            count(metrics, &before, -1);
        }
        if let Some(now) = standing {
            count(metrics, &now, 1);
        }
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
}
