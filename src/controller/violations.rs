//! Drift's current violations: each Pod found running outside its workload's placement, until
//! it goes or complies. The policy reports show them as fail results on the workload.
//!
//! Bounded: an entry lives only while its Pod is in violation and in the drift controller's
//! cache (a deleted Pod is forgotten from its watch event, one gone during a watch gap when the
//! cache is listed again), and never more than [`MAX_VIOLATIONS`] are held.

use crate::sync::lock;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// At most this many Pods in violation are held; more are reported (audit, Events) but do not
/// reach the policy reports until others are resolved.
pub const MAX_VIOLATIONS: usize = 10_000;

/// One Pod running outside what its workload allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub namespace: String,
    /// The workload the Pod's `sovra.dev/workload` label names.
    pub workload: String,
    /// Whether that workload exists (else the result is about the Pod).
    pub workload_found: bool,
    pub pod: String,
    pub node: String,
    pub pool: String,
    pub class: String,
    pub reasons: Vec<String>,
    /// When the violation was first found, in Unix seconds: kept while it lasts, so the
    /// report's timestamp does not move with every check.
    pub since: i64,
}

/// The current violations, by Pod UID.
#[derive(Default)]
pub struct Violations {
    by_pod: Mutex<BTreeMap<String, Violation>>,
}

impl Violations {
    /// Records that Pod `uid` is in `violation`, found at `now` (Unix seconds) unless it was
    /// found before. True when what is held changed.
    pub fn record(&self, uid: &str, mut violation: Violation, now: i64) -> bool {
        let mut by_pod = lock(&self.by_pod);
        match by_pod.get(uid) {
            Some(held) => {
                violation.since = held.since;
                if *held == violation {
                    return false;
                }
            }
            None if by_pod.len() >= MAX_VIOLATIONS => {
                tracing::warn!(
                    pod = %violation.pod,
                    namespace = %violation.namespace,
                    "too many pods in violation to show them all in the policy reports"
                );
                return false;
            }
            None => violation.since = now,
        }
        by_pod.insert(uid.to_owned(), violation);
        true
    }

    /// Forgets Pod `uid` (it went, or complies); the namespace it was in, if it was held.
    pub fn clear(&self, uid: &str) -> Option<String> {
        lock(&self.by_pod).remove(uid).map(|v| v.namespace)
    }

    /// Keeps the violations `live` says still exist; the namespaces of the ones dropped.
    pub fn retain(&self, live: impl Fn(&str, &Violation) -> bool) -> BTreeSet<String> {
        let mut dropped = BTreeSet::new();
        lock(&self.by_pod).retain(|uid, v| {
            let keep = live(uid, v);
            if !keep {
                dropped.insert(v.namespace.clone());
            }
            keep
        });
        dropped
    }

    /// The violations in `namespace`, by workload and Pod name.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Violation> {
        let mut found: Vec<Violation> = lock(&self.by_pod)
            .values()
            .filter(|v| v.namespace == namespace)
            .cloned()
            .collect();
        found.sort_by(|a, b| (&a.workload, &a.pod).cmp(&(&b.workload, &b.pod)));
        found
    }

    pub fn is_empty(&self) -> bool {
        lock(&self.by_pod).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violation(pod: &str) -> Violation {
        Violation {
            namespace: "ministry-fin".into(),
            workload: "tax".into(),
            workload_found: true,
            pod: pod.into(),
            node: "build-agents-0".into(),
            pool: "build-agents".into(),
            class: "confidential".into(),
            reasons: vec!["node build-agents-0 is not sovereign".into()],
            since: 0,
        }
    }

    #[test]
    fn a_violation_keeps_the_time_it_was_first_found_while_it_lasts() {
        let violations = Violations::default();
        assert!(violations.record("u1", violation("tax-rogue"), 100));
        assert!(
            !violations.record("u1", violation("tax-rogue"), 200),
            "the same violation again changes nothing"
        );
        let mut other = violation("tax-rogue");
        other
            .reasons
            .push("node pool build-agents is not placed".into());
        assert!(
            violations.record("u1", other, 300),
            "new reasons are a change"
        );
        assert_eq!(violations.in_namespace("ministry-fin")[0].since, 100);
    }

    #[test]
    fn a_violation_is_forgotten_when_its_pod_goes_or_complies() {
        let violations = Violations::default();
        violations.record("u1", violation("a"), 1);
        violations.record("u2", violation("b"), 1);
        assert_eq!(violations.clear("u1").as_deref(), Some("ministry-fin"));
        assert_eq!(violations.clear("u1"), None);
        let dropped = violations.retain(|uid, _| uid != "u2");
        assert_eq!(dropped.into_iter().collect::<Vec<_>>(), ["ministry-fin"]);
        assert!(violations.is_empty());
    }

    #[test]
    fn no_more_than_the_bound_is_held() {
        let violations = Violations::default();
        for i in 0..MAX_VIOLATIONS {
            violations.record(&i.to_string(), violation(&i.to_string()), 1);
        }
        assert!(!violations.record("one-more", violation("one-more"), 1));
        assert_eq!(
            violations.in_namespace("ministry-fin").len(),
            MAX_VIOLATIONS
        );
    }
}
