//! What the policy report writer (`report_writer`) knows and has to do: the namespaces marked
//! since it last ran (a workload reconciled, a drift violation came or went), whether the report
//! CRD is installed, and a digest of the report last written in each namespace, so that a
//! report that did not change is not sent again.

use super::policy_report::{Detection, report_api};
use super::settings::PolicyReports as Kind;
use crate::sync::lock;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::Api;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// What the report writer knows and has to do.
pub struct PolicyReports {
    pub kind: Kind,
    /// How often a missing CRD is looked for again.
    pub recheck: Duration,
    dirty: Mutex<BTreeSet<String>>,
    wake: Notify,
    detection: Mutex<(Detection, Option<Instant>)>,
    /// Per namespace, a digest of the report last written or found (`None`: there is none).
    written: Mutex<HashMap<String, Option<u64>>>,
    /// Namespaces whose report name is taken by someone else's report, already said.
    foreign: Mutex<BTreeSet<String>>,
}

impl PolicyReports {
    pub fn new(kind: Kind, recheck: Duration) -> Self {
        Self {
            kind,
            recheck,
            dirty: Mutex::default(),
            wake: Notify::new(),
            detection: Mutex::default(),
            written: Mutex::default(),
            foreign: Mutex::default(),
        }
    }

    /// The report of `namespace` may have changed.
    pub fn mark(&self, namespace: &str) {
        if self.kind == Kind::None {
            return;
        }
        lock(&self.dirty).insert(namespace.to_owned());
        self.wake.notify_one();
    }

    /// Whether the report CRD was found at the last look.
    pub fn detection(&self) -> Detection {
        lock(&self.detection).0
    }

    pub fn set_detection(&self, detection: Detection) {
        if detection == Detection::Missing {
            // Reports go with their CRD: once it is back, every report is written anew.
            lock(&self.written).clear();
            lock(&self.foreign).clear();
        }
        *lock(&self.detection) = (detection, Some(Instant::now()));
    }

    /// Whether the CRD should be looked for now: never looked, the look failed, or it was
    /// missing `recheck` ago.
    pub fn due(&self, now: Instant) -> bool {
        match *lock(&self.detection) {
            (Detection::Installed, _) => false,
            (Detection::Missing, Some(at)) => now.duration_since(at) >= self.recheck,
            _ => true,
        }
    }

    /// Looks for the report CRD (Established). A failed look leaves what was known.
    pub async fn detect(&self, client: &Client) -> Detection {
        let Some(api) = report_api(self.kind) else {
            return Detection::Unknown;
        };
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let detection = match crds.get_opt(api.crd).await {
            Ok(Some(crd)) if established(&crd) => Detection::Installed,
            Ok(_) => Detection::Missing,
            Err(error) => {
                tracing::warn!(%error, crd = api.crd, "cannot look for the report CRD");
                let known = self.detection();
                *lock(&self.detection) = (known, None);
                return known;
            }
        };
        if detection != self.detection() {
            match detection {
                Detection::Installed => tracing::info!(crd = api.crd, "writing policy reports"),
                _ => tracing::warn!(crd = api.crd, "CRD not installed: no policy reports"),
            }
        }
        self.set_detection(detection);
        detection
    }

    /// The namespaces marked since the last take.
    pub fn take_dirty(&self) -> BTreeSet<String> {
        std::mem::take(&mut *lock(&self.dirty))
    }

    /// Whether a namespace is marked and waiting.
    pub fn pending(&self) -> bool {
        !lock(&self.dirty).is_empty()
    }

    /// Waits for the next mark (or returns at once when one came since the last wait).
    pub async fn marked(&self) {
        self.wake.notified().await;
    }

    /// Marks `namespace` again after a failed write, without waking the writer.
    pub fn retry(&self, namespace: String) {
        lock(&self.dirty).insert(namespace);
    }

    /// Whether `digest` (`None`: no report) is what was last written to `namespace`.
    pub fn is_current(&self, namespace: &str, digest: Option<u64>) -> bool {
        lock(&self.written).get(namespace) == Some(&digest)
    }

    pub fn written(&self, namespace: &str, digest: Option<u64>) {
        lock(&self.written).insert(namespace.to_owned(), digest);
    }

    /// Notes that `namespace`'s report name is taken by a report that is not Sovra's; true the
    /// first time, so it is said once.
    pub fn conflict(&self, namespace: &str) -> bool {
        lock(&self.foreign).insert(namespace.to_owned())
    }

    /// The report name in `namespace` is free of a foreign report (again).
    pub fn no_conflict(&self, namespace: &str) {
        lock(&self.foreign).remove(namespace);
    }
}

fn established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_crd_is_looked_for_again_after_the_recheck_interval() {
        let reports = PolicyReports::new(Kind::OpenReports, Duration::from_secs(15));
        let start = Instant::now();
        assert!(reports.due(start), "never looked");
        reports.set_detection(Detection::Missing);
        assert!(!reports.due(Instant::now()));
        assert!(reports.due(Instant::now() + Duration::from_secs(15)));
        reports.set_detection(Detection::Installed);
        assert!(
            !reports.due(Instant::now() + Duration::from_secs(3600)),
            "a write that finds it gone says so"
        );
    }

    #[test]
    fn what_was_written_is_forgotten_when_the_crd_goes() {
        let reports = PolicyReports::new(Kind::OpenReports, Duration::from_secs(15));
        reports.set_detection(Detection::Installed);
        reports.written("ministry-fin", Some(7));
        assert!(reports.is_current("ministry-fin", Some(7)));
        reports.set_detection(Detection::Missing);
        assert!(!reports.is_current("ministry-fin", Some(7)));
    }

    #[test]
    fn marks_are_collected_until_taken_and_none_are_kept_when_reports_are_off() {
        let reports = PolicyReports::new(Kind::OpenReports, Duration::from_secs(15));
        reports.mark("b");
        reports.mark("a");
        reports.mark("a");
        assert_eq!(
            reports.take_dirty().into_iter().collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(reports.take_dirty().is_empty());
        let off = PolicyReports::new(Kind::None, Duration::from_secs(15));
        off.mark("a");
        assert!(off.take_dirty().is_empty());
    }
}
