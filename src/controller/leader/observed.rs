//! The Lease as this replica last saw it, and when (on its own monotonic clock) it saw the
//! election record change: expiry is judged from that moment, never from the Lease's
//! `renewTime`, which another machine's clock wrote.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use std::time::Duration;
use tokio::time::Instant;

/// The Lease as this replica last read or wrote it, and when it saw its record change.
#[derive(Clone, Debug)]
pub(super) struct Observed {
    /// Its spec is the election record; its resourceVersion the precondition of our next write.
    pub lease: Lease,
    /// When this replica first saw this record, on its own monotonic clock.
    pub at: Instant,
}

impl Observed {
    pub(super) fn record(&self) -> LeaseSpec {
        self.lease.spec.clone().unwrap_or_default()
    }

    pub(super) fn holder(&self) -> String {
        self.lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default()
    }

    /// client-go `isLeaseValid`: the record's own duration, counted from when it was observed.
    pub(super) fn valid_at(&self, now: Instant) -> bool {
        let seconds = self
            .lease
            .spec
            .as_ref()
            .and_then(|s| s.lease_duration_seconds)
            .unwrap_or(0);
        let duration = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
        self.at
            .checked_add(duration)
            .is_some_and(|until| until > now)
    }

    /// Takes `lease` in: the observation time moves only when the record changed (a new
    /// holder, a renewal); any other change (labels, annotations) only refreshes the
    /// resourceVersion to write against.
    pub(super) fn see(previous: Option<&Observed>, lease: Lease, now: Instant) -> Observed {
        match previous {
            Some(previous) if previous.lease.spec == lease.spec => Observed {
                lease,
                at: previous.at,
            },
            _ => Observed { lease, at: now },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use kube::api::ObjectMeta;

    fn lease(holder: &str, renewed: jiff::Timestamp) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.to_owned()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(renewed)),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn a_record_is_judged_by_when_it_was_observed_not_by_its_renew_time() {
        let start = Instant::now();
        let an_hour_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
        let seen = Observed::see(None, lease("other", an_hour_ago), start);
        assert!(
            seen.valid_at(start + Duration::from_secs(14)),
            "a renewTime an hour in the past says nothing about this replica's clock"
        );
        assert!(!seen.valid_at(start + Duration::from_secs(15)));
    }

    #[test]
    fn only_a_changed_record_restarts_the_observation() {
        let start = Instant::now();
        let renewed = jiff::Timestamp::now();
        let first = Observed::see(None, lease("other", renewed), start);
        let mut relabelled = lease("other", renewed);
        relabelled.metadata.labels = Some([("a".to_owned(), "b".to_owned())].into());
        relabelled.metadata.resource_version = Some("7".to_owned());
        let later = start + Duration::from_secs(10);
        let same = Observed::see(Some(&first), relabelled, later);
        assert_eq!(same.at, start, "metadata changes are not renewals");
        assert_eq!(same.lease.metadata.resource_version.as_deref(), Some("7"));
        assert!(!same.valid_at(start + Duration::from_secs(16)));

        let renewal = lease("other", renewed + jiff::SignedDuration::from_secs(2));
        let changed = Observed::see(Some(&same), renewal, later);
        assert_eq!(changed.at, later);
        assert!(changed.valid_at(start + Duration::from_secs(16)));
    }

    #[test]
    fn a_record_without_a_duration_is_expired_at_once() {
        let start = Instant::now();
        let mut released = lease("", jiff::Timestamp::now());
        if let Some(spec) = released.spec.as_mut() {
            spec.lease_duration_seconds = None;
        }
        assert!(!Observed::see(None, released, start).valid_at(start));
    }
}
