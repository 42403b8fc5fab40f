//! Lease-based leader election (coordination.k8s.io/v1), so that of several replicas exactly
//! one reconciles. The holder renews every `RETRY`; others take over once a lease has not been
//! renewed for `LEASE_DURATION`. A leader that cannot renew in time stops itself: it must never
//! act while another replica may believe it is the leader.

use crate::Error;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use std::time::Duration;

pub const LEASE_DURATION: Duration = Duration::from_secs(15);
pub const RETRY: Duration = Duration::from_secs(2);

pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
}

/// Outcome of one attempt to acquire or renew.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    Leading,
    /// Someone else holds a valid lease.
    Following(String),
}

impl LeaderElector {
    pub fn new(api: Api<Lease>, name: &str, identity: &str) -> Self {
        Self {
            api,
            name: name.to_owned(),
            identity: identity.to_owned(),
        }
    }

    /// One acquire-or-renew step. A 409 (someone else wrote first) is a lost race, not an error.
    pub async fn try_acquire(&self) -> Result<Attempt, Error> {
        let now = jiff::Timestamp::now();
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, 0, now)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Leading),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Following(String::new())),
                Err(e) => Err(e.into()),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let duration = spec.lease_duration_seconds.map_or(LEASE_DURATION, |s| {
            Duration::from_secs(u64::try_from(s).unwrap_or(0))
        });
        let renewed = spec.renew_time.as_ref().map(|t| t.0);
        let expired = renewed.is_none_or(|t| {
            now.duration_since(t) > jiff::SignedDuration::try_from(duration).unwrap_or_default()
        });
        if holder != self.identity && !holder.is_empty() && !expired {
            return Ok(Attempt::Following(holder));
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(holder != self.identity);
        let acquired = if holder == self.identity {
            spec.acquire_time.map_or(now, |t| t.0)
        } else {
            now
        };
        let mut updated = lease;
        updated.spec = Some(self.spec(now, transitions, acquired));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(Attempt::Leading),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Following(holder)),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives the lease up on shutdown so a standby takes over at once instead of after
    /// `LEASE_DURATION`.
    pub async fn release(&self) -> Result<(), Error> {
        if let Some(mut lease) = self.api.get_opt(&self.name).await?
            && lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref())
                == Some(self.identity.as_str())
        {
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
                spec.renew_time = None;
            }
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await?;
        }
        Ok(())
    }

    fn spec(&self, now: jiff::Timestamp, transitions: i32, acquired: jiff::Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: i32::try_from(LEASE_DURATION.as_secs()).ok(),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Waits until this replica leads, reporting each time who leads instead.
    pub async fn acquire(&self, mut on_follow: impl FnMut(&str)) -> Result<(), Error> {
        loop {
            match self.try_acquire().await {
                Ok(Attempt::Leading) => return Ok(()),
                Ok(Attempt::Following(holder)) => on_follow(&holder),
                Err(error) => tracing::warn!(%error, "leader election attempt failed"),
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Renews until renewal fails for longer than the renew deadline; then returns the error.
    pub async fn hold(&self) -> Error {
        let deadline = LEASE_DURATION.saturating_sub(RETRY * 2);
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(RETRY).await;
            match self.try_acquire().await {
                Ok(Attempt::Leading) => last_renewed = tokio::time::Instant::now(),
                Ok(Attempt::Following(holder)) => {
                    return Error::LeaderElection(format!("lease taken over by {holder}"));
                }
                Err(error) if last_renewed.elapsed() > deadline => {
                    return Error::LeaderElection(format!("could not renew the lease: {error}"));
                }
                Err(error) => tracing::warn!(%error, "lease renewal failed; retrying"),
            }
        }
    }
}
