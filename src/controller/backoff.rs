//! Per-object exponential backoff, on tokio's clock so tests can advance it.

use super::spare_capacity::ShedSpare;
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
// Tokio's clock, so tests can advance it.
use tokio::time::Instant;

/// Per-object exponential backoff: a failing object is retried after 1 s, 2 s, 4 s ... up to
/// 5 minutes, without slowing down any other object. Reset on the first success.
///
/// An object that keeps failing asks for its next delay at least every `Backoff::MAX`; an
/// entry untouched for twice that belongs to an object that went away (deleted while failing),
/// and is dropped, so the map stays bounded by the objects failing now.
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Backoff {
    const BASE: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(300);

    pub fn next_delay(&self, key: &str) -> Duration {
        let now = Instant::now();
        let mut failures = lock(&self.failures);
        failures.retain(|_, (_, touched)| now.duration_since(*touched) <= Self::MAX * 2);
        let (n, touched) = failures.entry(key.to_owned()).or_insert((0, now));
        *touched = now;
        let delay = Self::BASE
            .saturating_mul(2u32.saturating_pow(*n))
            .min(Self::MAX);
        *n = n.saturating_add(1);
        delay
    }

    /// Consecutive failures of `key` so far.
    pub fn failures(&self, key: &str) -> u32 {
        lock(&self.failures).get(key).map_or(0, |(n, _)| *n)
    }

    pub fn reset(&self, key: &str) {
        let mut failures = lock(&self.failures);
        failures.remove(key);
        failures.shed_spare();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn backoff_entries_of_objects_that_stopped_failing_long_ago_are_dropped() {
        let backoff = Backoff::default();
        backoff.next_delay("deleted-while-failing");
        backoff.next_delay("still-failing");
        tokio::time::advance(Backoff::MAX).await;
        backoff.next_delay("still-failing");
        tokio::time::advance(Backoff::MAX + Duration::from_secs(1)).await;
        backoff.next_delay("still-failing");
        assert_eq!(backoff.failures("deleted-while-failing"), 0, "expired");
        assert_eq!(
            backoff.failures("still-failing"),
            3,
            "kept while it keeps failing"
        );
    }

    #[test]
    fn backoff_doubles_per_object_caps_at_five_minutes_and_resets_on_success() {
        let backoff = Backoff::default();
        let delays: Vec<u64> = (0..12).map(|_| backoff.next_delay("a").as_secs()).collect();
        assert_eq!(&delays[..4], &[1, 2, 4, 8]);
        assert_eq!(delays[11], 300);
        assert_eq!(
            backoff.next_delay("b").as_secs(),
            1,
            "other objects are not slowed down"
        );
        backoff.reset("a");
        assert_eq!(backoff.next_delay("a").as_secs(), 1);
    }
}
