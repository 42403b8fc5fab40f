//! What was published about objects that keep failing, so each distinct failure is published
//! once, and the publishing tasks of a term, so a replica that stopped leading writes nothing.

use super::spare_capacity::ShedSpare;
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::task::JoinSet;

/// The consecutive failure of one object that is published.
pub const REPORT_AFTER: u32 = 3;

/// What was published about each failing object (the failures themselves are counted by
/// [`super::Backoff`]); and the publishing tasks, aborted with the term (when this is dropped)
/// so a replica that stopped leading writes nothing more.
#[derive(Default)]
pub struct ErrorReports {
    published: Mutex<HashMap<String, String>>,
    tasks: Mutex<JoinSet<()>>,
}

impl ErrorReports {
    /// The object's `consecutive`th failure in a row, with `text`; true when it is to be
    /// published: the [`REPORT_AFTER`]th one or later, with a text not published yet.
    pub fn failed(&self, key: &str, consecutive: u32, text: &str) -> bool {
        if consecutive < REPORT_AFTER {
            return false;
        }
        let mut published = lock(&self.published);
        if published.get(key).map(String::as_str) == Some(text) {
            return false;
        }
        published.insert(key.to_owned(), text.to_owned());
        true
    }

    /// Forgets what was published about the object (on success, with its backoff).
    pub fn succeeded(&self, key: &str) {
        let mut published = lock(&self.published);
        published.remove(key);
        published.shed_spare();
    }

    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = lock(&self.tasks);
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// Stops every publication still in flight.
    pub fn abort_all(&self) {
        lock(&self.tasks).abort_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::Backoff;

    #[test]
    fn the_third_consecutive_failure_is_published_once_per_text_and_success_forgets() {
        let backoff = Backoff::default();
        let reports = ErrorReports::default();
        let fail = |key: &str, text: &str| {
            backoff.next_delay(key);
            reports.failed(key, backoff.failures(key), text)
        };
        let published: Vec<bool> = (0..5).map(|_| fail("a", "boom")).collect();
        assert_eq!(published, [false, false, true, false, false]);
        assert!(fail("a", "another text"), "a new text is news");
        assert!(!fail("b", "boom"), "other objects count on their own");
        backoff.reset("a");
        reports.succeeded("a");
        assert!(!fail("a", "boom"));
        assert!(!fail("a", "boom"));
        assert!(fail("a", "boom"), "counted from one again");
    }
}
