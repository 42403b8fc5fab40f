//! Sovra's own writes to workloads (its finalizer, their status), until the watch shows them.
//!
//! Every watch event of a workload asks for a reconcile, and a workload whose reconcile is
//! running is queued again. The event of Sovra's own write says nothing that reconcile did not
//! act on: the object is exactly what its write left. So the server's answer to each write
//! notes the resource version it carried, and the watch event with that version asks for no
//! reconcile. Anyone else's change, made before or after, has a version of its own and asks as
//! before. Without this every placement and every readiness change cost a second reconcile that
//! found nothing to do.
//!
//! The answer and the event race. When the cache already shows the answer's version the event
//! has come (or is on its way past the intake), so nothing is noted; a noted version the watch
//! never shows (a relist that only saw a later state) is dropped after [`KEPT_FOR`].

use super::spare_capacity::ShedSpare;
use crate::sync::lock;
use kube::ResourceExt;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a noted version waits for its event. An event follows its write within moments;
/// this only bounds what a missed one leaves behind.
pub const KEPT_FOR: Duration = Duration::from_secs(60);

/// The writes a reconcile makes to its workload in turn (the finalizer, the status), and room
/// for a retry's: older ones than these are dropped.
const PER_WORKLOAD: usize = 4;

/// Resource versions of Sovra's own writes, by workload UID, oldest first.
#[derive(Default)]
pub struct OwnWrites {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    versions: HashMap<String, Vec<(String, Instant)>>,
    swept: Option<Instant>,
}

impl OwnWrites {
    /// Notes the answer to a write of a workload (`written`, as the server answered), unless
    /// `cached_version` (the cache's version of that workload) shows its event came already.
    pub fn wrote(&self, written: &impl ResourceExt, cached_version: Option<&str>) {
        let (Some(uid), Some(version)) = (written.uid(), written.resource_version()) else {
            return;
        };
        if cached_version == Some(version.as_str()) {
            return;
        }
        let now = Instant::now();
        let mut state = lock(&self.state);
        state.sweep(now);
        let versions = state.versions.entry(uid).or_default();
        if versions.len() >= PER_WORKLOAD {
            versions.remove(0);
        }
        versions.push((version, now));
    }

    /// Whether the watched `object` is exactly what one of Sovra's own writes left. That note
    /// goes, and with it any older one (the watch shows a workload's versions in order).
    pub fn is_echo(&self, object: &impl ResourceExt) -> bool {
        let (Some(uid), Some(version)) = (
            object.meta().uid.as_deref(),
            object.meta().resource_version.as_deref(),
        ) else {
            return false;
        };
        let mut state = lock(&self.state);
        state.sweep(Instant::now());
        let Some(versions) = state.versions.get_mut(uid) else {
            return false;
        };
        let Some(at) = versions.iter().position(|(v, _)| v == version) else {
            return false;
        };
        versions.drain(..=at);
        if versions.is_empty() {
            state.versions.remove(uid);
            state.versions.shed_spare();
        }
        true
    }

    /// Drops the notes of workloads that are gone (`live` says which UIDs exist).
    pub fn retain(&self, live: impl Fn(&str) -> bool) {
        let mut state = lock(&self.state);
        state.versions.retain(|uid, _| live(uid));
        state.versions.shed_spare();
    }

    #[cfg(test)]
    fn noted(&self) -> usize {
        lock(&self.state).versions.values().map(Vec::len).sum()
    }
}

impl State {
    /// At most once per [`KEPT_FOR`], drops the notes older than that.
    fn sweep(&mut self, now: Instant) {
        if self
            .swept
            .is_some_and(|swept| now.duration_since(swept) < KEPT_FOR)
        {
            return;
        }
        self.swept = Some(now);
        self.versions.retain(|_, versions| {
            versions.retain(|(_, noted)| now.duration_since(*noted) < KEPT_FOR);
            !versions.is_empty()
        });
        self.versions.shed_spare();
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::objects::workload;
    use super::*;

    fn at(uid: &str, version: &str) -> crate::crd::SovereignWorkload {
        let mut w = workload("w", "internal");
        w.metadata.uid = Some(uid.into());
        w.metadata.resource_version = Some(version.into());
        w
    }

    #[test]
    fn the_event_of_sovras_own_write_is_an_echo_once_and_anyone_elses_is_not() {
        let own = OwnWrites::default();
        own.wrote(&at("u", "10"), Some("9"));
        assert!(!own.is_echo(&at("u", "9")), "the state before the write");
        assert!(!own.is_echo(&at("v", "10")), "another workload");
        assert!(own.is_echo(&at("u", "10")), "the write's own event");
        assert!(!own.is_echo(&at("u", "10")), "only once");
        assert_eq!(own.noted(), 0);
    }

    #[test]
    fn an_event_passes_over_older_own_writes_and_a_change_in_between_still_asks() {
        let own = OwnWrites::default();
        own.wrote(&at("u", "10"), None);
        own.wrote(&at("u", "12"), None);
        assert!(
            !own.is_echo(&at("u", "11")),
            "someone's edit between the two writes"
        );
        assert!(own.is_echo(&at("u", "12")));
        assert!(!own.is_echo(&at("u", "10")), "dropped with the later one");
        assert_eq!(own.noted(), 0);
    }

    #[test]
    fn a_write_whose_event_the_cache_shows_already_is_not_noted() {
        let own = OwnWrites::default();
        own.wrote(&at("u", "10"), Some("10"));
        assert_eq!(own.noted(), 0, "nothing waits for an event that came");
        assert!(!own.is_echo(&at("u", "10")));
    }

    #[test]
    fn a_workload_keeps_its_last_few_writes_and_gone_workloads_none() {
        let own = OwnWrites::default();
        for version in 1..=6 {
            own.wrote(&at("u", &version.to_string()), None);
        }
        own.wrote(&at("v", "1"), None);
        assert_eq!(own.noted(), PER_WORKLOAD + 1);
        assert!(!own.is_echo(&at("u", "2")), "the oldest went");
        own.retain(|uid| uid == "v");
        assert_eq!(own.noted(), 1);
    }

    #[test]
    fn a_write_whose_event_never_came_is_dropped_after_a_while() {
        let own = OwnWrites::default();
        own.wrote(&at("u", "10"), None);
        lock(&own.state).sweep(Instant::now() + KEPT_FOR / 2);
        assert_eq!(own.noted(), 1, "not yet");
        lock(&own.state).sweep(Instant::now() + KEPT_FOR + Duration::from_secs(1));
        assert_eq!(own.noted(), 0);
        assert!(!own.is_echo(&at("u", "10")));
    }
}
