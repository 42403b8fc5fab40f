//! Exit readiness in a workload's status (pure): `status.exit`, the `ExitReady` condition,
//! and which change of it deserves an Event. A stranded workload keeps running; this is an
//! early warning for the people who must be able to switch providers.

use super::status::condition;
use crate::crd::bounds;
use crate::crd::{ExitAlternative, ExitStatus, SovereignWorkloadStatus};
use crate::policy::ExitReadiness;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const CONDITION_EXIT_READY: &str = "ExitReady";

/// Adds exit readiness to the status of a placed workload (`exit`), or leaves a refused one
/// without (`None`: nothing runs, so there is nothing to exit from).
pub fn with_exit(
    status: &mut SovereignWorkloadStatus,
    exit: Option<&ExitReadiness>,
    previous: &[Condition],
    now: &Time,
) {
    let Some(exit) = exit else {
        status.exit = None;
        return;
    };
    let count = exit.alternatives.len();
    let listed = usize::try_from(bounds::LISTED_CANDIDATES).unwrap_or(usize::MAX);
    status.exit = Some(ExitStatus {
        alternatives: exit
            .alternatives
            .iter()
            .take(listed)
            .map(|a| ExitAlternative {
                cluster: a.cluster.clone(),
                provider: a.provider.clone(),
            })
            .collect(),
        alternative_count: i32::try_from(count).unwrap_or(i32::MAX),
        stranded: exit.stranded(),
    });
    let runs_on = exit.providers.join(", ");
    let (ready, reason, message) = if exit.stranded() {
        (
            false,
            "NoAlternative",
            format!(
                "no compliant cluster of another provider could host it; it depends on {runs_on}"
            ),
        )
    } else if count == 0 {
        (
            true,
            "SpreadOverProviders",
            format!(
                "it runs on {} providers ({runs_on}): losing any one leaves it running on the others; no further provider could host it",
                exit.providers.len()
            ),
        )
    } else {
        let names: Vec<String> = exit
            .alternatives
            .iter()
            .take(3)
            .map(|a| format!("{} ({})", a.cluster, a.provider))
            .collect();
        let more = count.saturating_sub(names.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        (
            true,
            "AlternativesExist",
            format!(
                "{count} compliant cluster(s) of providers other than {runs_on} could host it: {}{more}",
                names.join(", ")
            ),
        )
    };
    status.conditions.push(condition(
        previous,
        CONDITION_EXIT_READY,
        ready,
        reason,
        &message,
        status.observed_generation,
        now,
    ));
}

/// What changed in exit readiness between two statuses, for an Event once per change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitChange {
    /// Placed and stranded now, and was not stranded before (or not placed).
    Stranded,
    /// Was stranded, and has an alternative now.
    Recovered,
}

pub fn exit_change(
    before: Option<&SovereignWorkloadStatus>,
    after: &SovereignWorkloadStatus,
) -> Option<ExitChange> {
    let stranded = |s: Option<&SovereignWorkloadStatus>| s?.exit.as_ref().map(|e| e.stranded);
    match (stranded(before), stranded(Some(after))) {
        (Some(true), Some(true)) => None,
        (_, Some(true)) => Some(ExitChange::Stranded),
        (Some(true), Some(false)) => Some(ExitChange::Recovered),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Alternative;

    fn readiness(alternatives: &[(&str, &str)]) -> ExitReadiness {
        ExitReadiness {
            providers: vec!["Alpha".to_owned()],
            alternatives: alternatives
                .iter()
                .map(|(cluster, provider)| Alternative {
                    cluster: (*cluster).to_owned(),
                    provider: (*provider).to_owned(),
                })
                .collect(),
        }
    }

    fn status_with(exit: Option<&ExitReadiness>) -> SovereignWorkloadStatus {
        let mut status = SovereignWorkloadStatus::default();
        with_exit(&mut status, exit, &[], &Time(jiff::Timestamp::UNIX_EPOCH));
        status
    }

    #[test]
    fn a_workload_with_an_alternative_is_exit_ready_and_names_it() {
        let status = status_with(Some(&readiness(&[("b", "Beta")])));
        let exit = status
            .exit
            .as_ref()
            .map(|e| (e.alternative_count, e.stranded));
        assert_eq!(exit, Some((1, false)));
        let ready = &status.conditions[0];
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "AlternativesExist")
        );
        assert!(ready.message.contains("b (Beta)"), "{}", ready.message);
    }

    #[test]
    fn a_stranded_workload_says_what_it_depends_on() {
        let status = status_with(Some(&readiness(&[])));
        assert_eq!(status.exit.as_ref().map(|e| e.stranded), Some(true));
        let ready = &status.conditions[0];
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "NoAlternative")
        );
        assert!(ready.message.contains("depends on Alpha"));
    }

    #[test]
    fn a_workload_spread_over_two_providers_is_exit_ready_without_a_third() {
        let spread = ExitReadiness {
            providers: vec!["Alpha".to_owned(), "Beta".to_owned()],
            alternatives: Vec::new(),
        };
        let status = status_with(Some(&spread));
        assert_eq!(status.exit.as_ref().map(|e| e.stranded), Some(false));
        let ready = &status.conditions[0];
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "SpreadOverProviders")
        );
    }

    #[test]
    fn many_alternatives_are_counted_but_only_the_first_are_listed() {
        let many: Vec<(String, String)> = (0..40)
            .map(|i| (format!("c{i:02}"), format!("P{i}")))
            .collect();
        let pairs: Vec<(&str, &str)> = many.iter().map(|(c, p)| (c.as_str(), p.as_str())).collect();
        let status = status_with(Some(&readiness(&pairs)));
        let exit = status.exit.unwrap_or_default();
        assert_eq!(exit.alternative_count, 40);
        assert_eq!(exit.alternatives.len(), 16);
        assert!(status.conditions[0].message.contains("and 37 more"));
    }

    #[test]
    fn becoming_stranded_and_recovering_are_each_one_change_and_staying_is_none() {
        let stranded = status_with(Some(&readiness(&[])));
        let ready = status_with(Some(&readiness(&[("b", "Beta")])));
        let refused = status_with(None);
        assert_eq!(exit_change(None, &stranded), Some(ExitChange::Stranded));
        assert_eq!(
            exit_change(Some(&ready), &stranded),
            Some(ExitChange::Stranded)
        );
        assert_eq!(
            exit_change(Some(&refused), &stranded),
            Some(ExitChange::Stranded)
        );
        assert_eq!(exit_change(Some(&stranded), &stranded), None);
        assert_eq!(
            exit_change(Some(&stranded), &ready),
            Some(ExitChange::Recovered)
        );
        assert_eq!(exit_change(Some(&ready), &ready), None);
        assert_eq!(exit_change(None, &ready), None);
        assert_eq!(exit_change(Some(&stranded), &refused), None);
    }
}
