//! The operator: kube-rs controllers, the IO edge around the pure policy.
//!
//! [`run_with_client`]: serve health, wait for the CRDs to be Established, then (with leader
//! election) campaign for the Lease; as leader, start fresh caches, build the context and run
//! the workload, cluster and drift controllers until SIGTERM/SIGINT. A lost lease (renewal
//! failed past the renew deadline, or someone else holds it) aborts the controllers at once
//! and the replica campaigns again, in the same process; each term starts from nothing
//! (caches, audit trail handle, context). A standby only campaigns: it starts its caches once
//! it leads, because a term's caches are fresh anyway.

mod applied_digest;
mod backoff;
mod cache_view;
mod caches;
mod checkpoint_policy;
mod checkpoints;
mod child_view;
mod children;
mod cluster;
mod cluster_status;
mod context;
pub mod deployment;
mod drain;
mod drift;
mod error_reports;
mod event_recorder;
mod exit_status;
mod exit_tally;
mod fleet;
mod http;
mod intake;
mod invalid;
mod kubeconfig;
mod lanes;
mod leader;
mod member_health;
mod memory;
mod metrics;
mod node_view;
mod own_writes;
mod policy_report;
mod policy_reports;
mod pool_status;
mod process;
mod reconciler;
mod report;
mod report_writer;
mod settings;
mod spare_capacity;
mod startup;
pub mod status;
#[cfg(test)]
mod tests;
mod transition;
mod violations;
mod witness;
mod workload;
mod world;

pub use backoff::Backoff;
pub use checkpoints::{CHECKPOINT_CONFIG_MAP, CHECKPOINT_KEY_SUFFIX};
pub use cluster_status::{Link, cluster_status, sovereignty_lost};
pub use exit_status::CONDITION_EXIT_READY;
pub use kubeconfig::{check_kubeconfig, client_from_kubeconfig};
pub use leader::{Attempt, LeaderElector, Observation, Term, Timing};
pub use member_health::ConnectionFault;
pub use metrics::Metrics;
pub use pool_status::pools_from_status;
pub use settings::{LogFormat, PolicyReports, Settings};
pub use workload::FINALIZER;

use crate::Error;
use crate::audit::AuditTrail;
use crate::crd::{SovereignCluster, SovereignWorkload, SovereignWorkloadStatus};
use context::Context;
use event_recorder::EventRecorder;
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt, TryStreamExt};
use http::{Health, Phase};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::watcher;
use startup::Caches;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Runs the operator with the ambient configuration (in-cluster, or KUBECONFIG) until SIGTERM
/// or SIGINT.
pub async fn run(settings: Settings) -> Result<(), Error> {
    process::init_tracing(settings.log_format);
    let client = Client::try_default().await?;
    run_with_client(client, settings, process::shutdown_signal()).await
}

/// Runs the operator against `client` until `shutdown` completes. Integration tests call this
/// with a client for the in-process test API server. Returns only on shutdown, or on an error
/// no new term can fix (the HTTP address cannot be bound, the audit trail fails verification);
/// an unreachable API server or a lost lease never ends it.
pub async fn run_with_client(
    client: Client,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let metrics = Metrics::default();
    let health = Health::new(metrics.clone());
    let _http = http::serve(settings.http_addr, health.clone()).await?;
    let operator = Operator {
        terms: AtomicUsize::new(0),
        shutdown: shutdown.boxed().shared(),
        client,
        settings,
        metrics,
        health,
    };
    startup::wait_for_crds(&operator.client, operator.shutdown.clone()).await?;
    if operator.settings.leader_election {
        operator.lead_until_shutdown().await
    } else {
        operator.term().await
    }
}

/// What every term of this process shares: the client, the settings, the metrics registry,
/// the readiness served on `/readyz`, and the shutdown signal.
struct Operator {
    client: Client,
    settings: Settings,
    metrics: Metrics,
    health: Health,
    shutdown: Shared<BoxFuture<'static, ()>>,
    /// Terms started so far.
    terms: AtomicUsize,
}

impl Operator {
    /// Campaign, lead one term, and campaign again whenever the lease is lost, until shutdown.
    /// Shutdown lets in-flight reconciles finish, then gives the lease up.
    async fn lead_until_shutdown(&self) -> Result<(), Error> {
        let elector = Arc::new(LeaderElector::new(
            Api::<Lease>::namespaced(self.client.clone(), &self.settings.namespace),
            &self.settings.lease_name,
            &self.settings.identity,
        ));
        self.health
            .set(Phase::Campaigning("no Lease observed yet".to_owned()));
        loop {
            let health = self.health.clone();
            let mut leader = None::<String>;
            let campaign = elector.campaign(move |seen| match seen {
                Observation::Following(holder) => {
                    if leader.as_deref() != Some(holder) {
                        tracing::info!(%holder, "standing by; another replica leads");
                        leader = Some(holder.to_owned());
                    }
                    health.set(Phase::Standby(holder.to_owned()));
                }
                Observation::Unknown(error) => {
                    leader = None;
                    health.set(Phase::Campaigning(error.to_string()));
                }
            });
            let mut term = tokio::select! {
                term = campaign => term,
                () = self.shutdown.clone() => return Ok(()),
            };
            tracing::info!(identity = %self.settings.identity, "acquired leadership");
            // Everything the term started is dropped (aborted) before the handler runs.
            let ended = tokio::select! {
                ended = self.term() => ended,
                lost = term.lost() => {
                    tracing::error!(error = %lost, "lost leadership: stopped reconciling; campaigning again");
                    self.health.set(Phase::Campaigning(format!("lost the lease: {lost}")));
                    continue;
                }
            };
            self.health
                .set(Phase::Campaigning("shutting down".to_owned()));
            if let Err(error) = term.release().await {
                tracing::warn!(%error, "could not release the leader lease");
            }
            return ended;
        }
    }

    /// One term: the audit trail re-opened and re-verified (with a signing key: checked
    /// against its published checkpoint, and a checkpoint of what an earlier term left
    /// uncovered); fresh caches, synced; members probed; a new context; then the controllers,
    /// until shutdown, with checkpoints on a timer and one on shutdown. Dropping the future
    /// aborts all of it. Ok once shutdown completed.
    async fn term(&self) -> Result<(), Error> {
        self.health.set(Phase::Starting);
        let earlier_terms = self.terms.fetch_add(1, Ordering::SeqCst);
        let policy = checkpoint_policy::policy(&self.client, &self.settings).await?;
        let key = policy.as_ref().map(|p| p.key.clone());
        let audit = self.open_audit_trail(earlier_terms > 0, policy).await?;
        let (client, settings) = (&self.client, &self.settings);
        let publisher =
            checkpoints::Publisher::start(client, settings, &self.metrics, &audit, key.as_ref())
                .await?;
        let hub_version = self
            .client
            .apiserver_version()
            .await
            .ok()
            .map(|v| v.git_version);
        let caches = Caches::start(&self.client, &self.settings);
        tokio::select! {
            synced = caches.synced() => synced?,
            () = self.shutdown.clone() => return Ok(()),
        }
        tokio::select! {
            () = caches.probe_members(&self.client, &self.settings.namespace) => {}
            () = self.shutdown.clone() => return Ok(()),
        }
        // Built before the context, which needs its cache of workloads.
        let (lanes, tickets) = lanes::Lanes::new(self.settings.concurrency);
        let (store, watch) = caches::watch_workloads(&self.client, lanes.clone());
        // Triggered on tickets alone: the watch, like every other source, asks the lanes.
        let workloads = Controller::for_stream(
            futures::stream::pending::<Result<DeserializeGuard<SovereignWorkload>, watcher::Error>>(
            ),
            store,
        );
        let ctx = Arc::new(self.context(&caches, audit.clone(), workloads.store(), hub_version));
        let _stop_publishing = StopPublishing(ctx.clone());
        // Before the hub's first status, which says whether reports can be written.
        ctx.reports.detect(&self.client).await;
        self.health.set(Phase::Reconciling);
        let controllers =
            self.run_controllers(ctx, caches, (workloads, watch.boxed()), (lanes, tickets));
        match &publisher {
            Some(publisher) => {
                let interval = self.settings.checkpoint_interval;
                publisher.run_alongside(&audit, interval, controllers).await;
            }
            None => controllers.await,
        }
        Ok(())
    }

    /// Opens (and so verifies) the audit trail. After an earlier term its handle may still be
    /// closing (an append in flight holds the file's lock for a moment), so then a failure is
    /// retried briefly before it counts.
    async fn open_audit_trail(
        &self,
        after_a_term: bool,
        checkpoints: Option<crate::audit::CheckpointPolicy>,
    ) -> Result<AuditTrail, Error> {
        let patience = if after_a_term {
            Duration::from_secs(5)
        } else {
            Duration::ZERO
        };
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match AuditTrail::open_signed(
                self.settings.audit_log.clone(),
                format!("sovra/{}", self.settings.identity),
                self.settings.audit_stdout,
                checkpoints.clone(),
            )
            .await
            {
                Ok(audit) => return Ok(audit),
                Err(error) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(%error, "audit trail not opened yet; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn context(
        &self,
        caches: &Caches,
        audit: AuditTrail,
        workloads: kube::runtime::reflector::Store<DeserializeGuard<SovereignWorkload>>,
        hub_version: Option<String>,
    ) -> Context {
        let recorder = EventRecorder::new(
            self.client.clone(),
            Reporter {
                controller: "sovra".into(),
                instance: Some(self.settings.identity.clone()),
            },
        );
        Context {
            workloads,
            client: self.client.clone(),
            namespace: self.settings.namespace.clone(),
            probe_interval: self.settings.member_probe_interval,
            cleanup_timeout: self.settings.member_cleanup_timeout,
            world: caches.world.clone(),
            fleet: caches.fleet.clone(),
            recorder,
            audit,
            metrics: self.metrics.clone(),
            backoff: Backoff::default(),
            errors: error_reports::ErrorReports::default(),
            hub_version,
            hub_children: caches.hub_children.clone(),
            applied: memory::Applied::default(),
            memory: memory::Memory::default(),
            reports: policy_reports::PolicyReports::new(
                self.settings.policy_reports,
                self.settings.member_probe_interval,
            ),
        }
    }

    /// Runs the workload, cluster and drift controllers and the policy report writer until
    /// shutdown has let them finish.
    async fn run_controllers(
        &self,
        ctx: Arc<Context>,
        caches: Caches,
        (workloads, watch): (
            Controller<DeserializeGuard<SovereignWorkload>>,
            WorkloadWatch,
        ),
        (lanes, tickets): (lanes::Lanes, lanes::Tickets),
    ) {
        let Caches {
            world_changes,
            workload_wakes,
            cluster_wakes,
            cluster_wake,
            ..
        } = caches;
        let changes = |rx: tokio::sync::broadcast::Receiver<()>| {
            futures::stream::unfold(rx, |mut rx| async move {
                match rx.recv().await {
                    Ok(()) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        Some(((), rx))
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
                }
            })
        };
        let config = controller::Config::default()
            .concurrency(self.settings.concurrency)
            .debounce(Duration::from_millis(200));
        // What Sovra wrote is forgotten once the cache shows it, read by a reconcile or not.
        let settled = ctx.clone();
        let watch = watch.inspect_ok(move |guard| {
            if let Ok(workload) = &guard.0 {
                settled.memory.workload_statuses.settle(
                    workload.metadata.uid.as_deref().unwrap_or_default(),
                    || {
                        workload
                            .status
                            .clone()
                            .map(SovereignWorkloadStatus::compacted)
                    },
                );
            }
        });
        // Every source of workload reconciles asks the lanes, which trigger kube-runtime with
        // tickets. Unbounded and without debounce there: the limit is kept by the lanes, which
        // run live changes before the backlog (kube-runtime would serve its backlog in hash
        // order), and a debounce would leave a ticket's permit idle.
        let echoes = ctx.clone();
        let intake = intake::run(
            lanes.clone(),
            ctx.workloads.clone(),
            intake::Sources {
                watch,
                echo: move |workload: &DeserializeGuard<SovereignWorkload>| {
                    echoes.memory.own_writes.is_echo(workload)
                },
                wakes: workload_wakes,
                world: changes(world_changes.resubscribe()),
            },
            self.shutdown.clone(),
        );
        let workloads = workloads
            .with_config(config.clone().concurrency(0).debounce(Duration::ZERO))
            .reconcile_on(receiver_stream(tickets))
            .graceful_shutdown_on(self.shutdown.clone())
            .run(
                lanes::gated(
                    lanes,
                    ctx.workloads.clone(),
                    reconciler::instrumented(workload::reconcile, "workload"),
                ),
                reconciler::error_policy,
                ctx.clone(),
            )
            .for_each(|_| futures::future::ready(()));
        let reports = report_writer::run(ctx.clone(), cluster_wake, self.shutdown.clone());
        let drift = drift::controller(
            self.client.clone(),
            ctx.clone(),
            config.clone(),
            self.shutdown.clone(),
        );
        let clusters = Controller::new(
            Api::<DeserializeGuard<SovereignCluster>>::all(self.client.clone()),
            watcher::Config::default().any_semantic(),
        )
        .with_config(config)
        .reconcile_all_on(changes(world_changes))
        .reconcile_on(receiver_stream(cluster_wakes))
        .graceful_shutdown_on(self.shutdown.clone())
        .run(
            reconciler::instrumented(cluster::reconcile, "cluster"),
            reconciler::error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()));
        futures::future::join5(intake, workloads, clusters, drift, reports).await;
    }
}

/// The workload watch's applied objects, which the intake feeds into the lanes.
type WorkloadWatch = futures::stream::BoxStream<
    'static,
    Result<DeserializeGuard<SovereignWorkload>, watcher::Error>,
>;

/// Aborts the publication of reconcile errors still in flight when a term ends, however it
/// ends: a replica that stopped leading writes nothing more.
struct StopPublishing(Arc<Context>);

impl Drop for StopPublishing {
    fn drop(&mut self) {
        self.0.errors.abort_all();
    }
}

/// The messages of a channel as a stream.
pub(super) fn receiver_stream<T: Send + 'static>(
    rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> futures::stream::BoxStream<'static, T> {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}
