//! Lease-based leader election (coordination.k8s.io/v1), so that of several replicas exactly
//! one reconciles. Modelled on client-go's `tools/leaderelection`:
//!
//! * Expiry is judged on this replica's own monotonic clock, never by comparing the Lease's
//!   `renewTime` (written by another machine's clock) with the local one: a replica remembers
//!   the last Lease record it observed and the [`Instant`] it saw that record change. A holder
//!   that keeps changing the record keeps the lease, however wrong its clock; a record nobody
//!   changed for `leaseDurationSeconds` (of that record) is expired.
//! * The holder renews every [`RETRY`] in a background task that starts the moment the Lease is
//!   acquired (see [`Term`]), whatever the caller is doing: cache sync, audit verification and
//!   member probes run under a lease that is kept alive. Each renewal first tries an optimistic
//!   update of the Lease it wrote last, then falls back to reading it.
//! * Renewal that does not succeed within [`RENEW_DEADLINE`] of the last success, or a Lease
//!   held by someone else, ends the term: [`Term::lost`] resolves and the caller must stop
//!   acting at once. `RENEW_DEADLINE` < `LEASE_DURATION`, so a replica stops before any other
//!   replica can see the lease as expired.
//! * On shutdown the holder gives the lease up ([`Term::release`]), so a standby takes over at
//!   once instead of after `LEASE_DURATION`.

mod observed;

use crate::Error;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use observed::Observed;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long a record nobody changed stays valid (written into the Lease).
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How long the holder keeps trying to renew before it gives up leading.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// Time between attempts to acquire or renew.
pub const RETRY: Duration = Duration::from_secs(2);

/// The election's durations; client-go's `LeaseDuration`, `RenewDeadline`, `RetryPeriod`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_duration: LEASE_DURATION,
            renew_deadline: RENEW_DEADLINE,
            retry: RETRY,
        }
    }
}

pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    observed: Mutex<Option<Observed>>,
}

/// Outcome of one attempt to acquire or renew.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    Leading,
    /// Someone else holds a lease that is valid by this replica's observation.
    Following(String),
    /// Someone else wrote the Lease between our read and our write (409): read it again.
    Conflict,
}

/// What a campaigning replica learned in one attempt.
#[derive(Debug)]
pub enum Observation<'a> {
    /// Another replica holds a valid lease.
    Following(&'a str),
    /// The Lease could not be read or written: who leads is unknown.
    Unknown(&'a Error),
}

impl LeaderElector {
    pub fn new(api: Api<Lease>, name: &str, identity: &str) -> Self {
        Self::with_timing(api, name, identity, Timing::default())
    }

    pub fn with_timing(api: Api<Lease>, name: &str, identity: &str, timing: Timing) -> Self {
        Self {
            api,
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing,
            observed: Mutex::new(None),
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn observed(&self) -> Option<Observed> {
        crate::sync::lock(&self.observed).clone()
    }

    /// Records a Lease just read (`written: false`) or just written by us (`written: true`,
    /// which always counts as a change: we just renewed it).
    fn observe(&self, lease: Lease, written: bool) -> Observed {
        let now = Instant::now();
        let mut observed = crate::sync::lock(&self.observed);
        let next = if written {
            Observed { lease, at: now }
        } else {
            Observed::see(observed.as_ref(), lease, now)
        };
        *observed = Some(next.clone());
        next
    }

    /// The record this replica writes: `previous`'s acquire time and transitions when it holds
    /// the lease already, a new acquisition otherwise.
    fn record(&self, previous: Option<&LeaseSpec>) -> LeaseSpec {
        let now = MicroTime(jiff::Timestamp::now());
        let ours = previous.is_some_and(|p| p.holder_identity.as_deref() == Some(&self.identity));
        let (acquired, transitions) = match previous {
            Some(p) if ours => (
                p.acquire_time.clone().unwrap_or_else(|| now.clone()),
                p.lease_transitions.unwrap_or(0),
            ),
            Some(p) => (
                now.clone(),
                p.lease_transitions.unwrap_or(0).saturating_add(1),
            ),
            None => (now.clone(), 0),
        };
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: i32::try_from(self.timing.lease_duration.as_secs()).ok(),
            acquire_time: Some(acquired),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// One acquire-or-renew step (client-go `tryAcquireOrRenew`).
    pub async fn try_acquire_or_renew(&self) -> Result<Attempt, Error> {
        // 1. Fast path: the holder updates the Lease it wrote last, assuming nobody else did.
        if let Some(observed) = self.observed()
            && observed.holder() == self.identity
            && observed.valid_at(Instant::now())
        {
            let mut lease = observed.lease.clone();
            lease.spec = Some(self.record(lease.spec.as_ref()));
            match self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
            {
                Ok(written) => {
                    self.observe(written, true);
                    return Ok(Attempt::Leading);
                }
                Err(error) => {
                    tracing::debug!(%error, "optimistic lease renewal failed; reading the Lease");
                }
            }
        }

        // 2. Read the Lease, or create it.
        let Some(current) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.record(None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(written) => {
                    self.observe(written, true);
                    Ok(Attempt::Leading)
                }
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Conflict),
                Err(e) => Err(e.into()),
            };
        };

        // 3. Judge the record by when this replica saw it change.
        let observed = self.observe(current, false);
        let holder = observed.holder();
        if !holder.is_empty() && holder != self.identity && observed.valid_at(Instant::now()) {
            return Ok(Attempt::Following(holder));
        }

        // 4. Ours, free, or expired: write our record against the version just read.
        let mut lease = observed.lease.clone();
        lease.spec = Some(self.record(Some(&observed.record())));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                self.observe(written, true);
                Ok(Attempt::Leading)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    /// Campaigns until this replica leads, reporting what each failed attempt learned; then
    /// returns the [`Term`], whose background renewal has already started. Each attempt is
    /// bounded by the renew deadline, so a hanging API server does not hang the campaign.
    pub async fn campaign(self: &Arc<Self>, mut report: impl FnMut(Observation<'_>)) -> Term {
        loop {
            let started = Instant::now();
            let attempt =
                tokio::time::timeout(self.timing.renew_deadline, self.try_acquire_or_renew())
                    .await
                    .unwrap_or_else(|_| {
                        Err(Error::LeaderElection(format!(
                            "no answer within {} s",
                            self.timing.renew_deadline.as_secs()
                        )))
                    });
            match attempt {
                Ok(Attempt::Leading) => return Term::start(self.clone(), started),
                Ok(Attempt::Following(holder)) => report(Observation::Following(&holder)),
                Ok(Attempt::Conflict) => {}
                Err(error) => {
                    tracing::warn!(%error, "leader election attempt failed");
                    report(Observation::Unknown(&error));
                }
            }
            tokio::time::sleep(self.timing.retry).await;
        }
    }

    /// Renews until renewal fails for the renew deadline (counted from the start of the last
    /// successful renewal) or someone else holds the lease; returns why leading ended.
    async fn renew(self: Arc<Self>, mut renewed: Instant) -> Error {
        let timing = self.timing;
        loop {
            tokio::time::sleep(timing.retry).await;
            let deadline = renewed + timing.renew_deadline;
            let mut last_error = String::from("no answer");
            loop {
                let started = Instant::now();
                match tokio::time::timeout_at(deadline, self.try_acquire_or_renew()).await {
                    Ok(Ok(Attempt::Leading)) => {
                        renewed = started;
                        break;
                    }
                    Ok(Ok(Attempt::Following(holder))) => {
                        return Error::LeaderElection(format!("{holder} holds the lease now"));
                    }
                    Ok(Ok(Attempt::Conflict)) => {
                        last_error = "the Lease was written by someone else".to_owned();
                        tracing::warn!("lease renewal lost a write race; reading the Lease again");
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "lease renewal failed; retrying");
                        last_error = error.to_string();
                    }
                    Err(_) => {}
                }
                if Instant::now() + timing.retry >= deadline {
                    tokio::time::sleep_until(deadline).await;
                    return Error::LeaderElection(format!(
                        "could not renew the lease within {} s: {last_error}",
                        timing.renew_deadline.as_secs()
                    ));
                }
                tokio::time::sleep(timing.retry).await;
            }
        }
    }

    /// Gives the lease up if this replica holds it (client-go `release`): no holder, a
    /// one-second duration, so any replica may take it at once.
    pub async fn release(&self) -> Result<(), Error> {
        let release = async {
            let Some(mut lease) = self.api.get_opt(&self.name).await? else {
                return Ok(());
            };
            let holder = lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref());
            if holder != Some(self.identity.as_str()) {
                return Ok(());
            }
            let now = MicroTime(jiff::Timestamp::now());
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
                spec.lease_duration_seconds = Some(1);
                spec.acquire_time = Some(now.clone());
                spec.renew_time = Some(now);
            }
            let written = self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await?;
            self.observe(written, true);
            Ok(())
        };
        tokio::time::timeout(self.timing.renew_deadline, release)
            .await
            .unwrap_or_else(|_| {
                Err(Error::LeaderElection(
                    "no answer while releasing the lease".to_owned(),
                ))
            })
    }
}

/// One term as leader: the lease is renewed in the background from the moment it was
/// acquired until the term is lost, released or dropped (dropping stops renewal without
/// giving the lease up).
pub struct Term {
    elector: Arc<LeaderElector>,
    renewal: Option<JoinHandle<Error>>,
}

impl Term {
    fn start(elector: Arc<LeaderElector>, renewed: Instant) -> Self {
        let renewal = tokio::spawn(elector.clone().renew(renewed));
        Self {
            elector,
            renewal: Some(renewal),
        }
    }

    /// Resolves when the lease is lost, with the reason. Cancel-safe: use it in `select!`.
    pub async fn lost(&mut self) -> Error {
        let Some(renewal) = self.renewal.as_mut() else {
            return std::future::pending().await;
        };
        let result = renewal.await;
        self.renewal = None;
        result.unwrap_or_else(|e| Error::LeaderElection(format!("lease renewal stopped: {e}")))
    }

    /// Stops renewing and gives the lease up (client-go `ReleaseOnCancel`). Call only once
    /// nothing guarded by the lease runs any more.
    pub async fn release(mut self) -> Result<(), Error> {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
            let _ = renewal.await;
        }
        self.elector.release().await
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        if let Some(renewal) = &self.renewal {
            renewal.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_renew_deadline_ends_a_term_before_anyone_can_see_the_lease_expire() {
        let timing = Timing::default();
        assert!(timing.renew_deadline < timing.lease_duration);
        assert!(timing.retry * 2 < timing.renew_deadline);
    }
}
