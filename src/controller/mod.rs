//! The operator: kube-rs controllers, the IO edge around the pure policy.
//!
//! Start-up: serve health, wait for the CRDs to be Established, sync the caches (classes,
//! clusters, nodes), then (as leader, when leader election is on) run the workload and
//! cluster controllers until SIGTERM/SIGINT or lost leadership.

mod cluster;
mod context;
pub mod deployment;
mod drift;
mod fleet;
mod http;
mod kubeconfig;
mod leader;
mod metrics;
pub mod status;
mod workload;
mod world;

pub use cluster::{Link, cluster_status, sovereignty_lost};
pub use context::Backoff;
pub use fleet::ConnectionFault;
pub use kubeconfig::{check_kubeconfig, client_from_kubeconfig};
pub use leader::{Attempt, LeaderElector};
pub use metrics::Metrics;
pub use workload::FINALIZER;

use crate::Error;
use crate::audit::AuditTrail;
use crate::cli::RunArgs;
use crate::crd::{SensitivityClass, SovereignCluster, SovereignWorkload};
use context::Context;
use futures::{FutureExt, StreamExt, future::BoxFuture};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs the operator with the ambient configuration (in-cluster, or KUBECONFIG) until SIGTERM
/// or SIGINT.
pub async fn run(args: RunArgs) -> Result<(), Error> {
    init_tracing(&args.log_format);
    let client = Client::try_default().await?;
    run_with_client(client, args, shutdown_signal()).await
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // A second initialisation (tests) is harmless: keep the first subscriber.
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c().map(|_| ());
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

/// Runs the operator against `client` until `shutdown` completes. Integration tests call this
/// with a client for the in-process test API server.
pub async fn run_with_client(
    client: Client,
    args: RunArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let metrics = Metrics::default();
    let health = http::Health::new(metrics.clone());
    let _http = http::serve(args.http_addr, health.clone()).await?;
    let shutdown = shutdown.boxed().shared();

    wait_for_crds(&client, shutdown.clone()).await?;
    let hub_version = client.apiserver_version().await.ok().map(|v| v.git_version);

    // Caches of everything a decision reads. Nodes are stripped to labels and taints.
    let (classes, class_events) = cache(Api::<DeserializeGuard<SensitivityClass>>::all(
        client.clone(),
    ));
    let (clusters, cluster_events) = cache(Api::<DeserializeGuard<SovereignCluster>>::all(
        client.clone(),
    ));
    let (nodes, node_events) = fleet::watch_nodes(&client);
    let node_events = node_events.map(|_| ()).boxed();
    let (fleet_world_tx, fleet_world_rx) = tokio::sync::mpsc::unbounded_channel();
    let (workload_tx, workload_rx) = tokio::sync::mpsc::unbounded_channel();
    let (cluster_tx, cluster_rx) = tokio::sync::mpsc::unbounded_channel();
    let signals = fleet::Signals {
        world: fleet_world_tx,
        workload: workload_tx,
        cluster: cluster_tx,
    };
    let fleet = fleet::Fleet::new(
        signals.clone(),
        args.member_timeout,
        args.member_probe_interval,
    );
    let world = world::World::new(
        classes.clone(),
        clusters.clone(),
        nodes.clone(),
        args.node_pool_label.clone(),
        fleet.clone(),
    );

    // Wake every workload (and cluster) only when the placement-relevant world changed.
    let (world_tx, world_rx) = tokio::sync::broadcast::channel::<()>(16);
    let watch_world = {
        let world = world.clone();
        async move {
            let mut events = futures::stream::select_all([
                class_events,
                cluster_events,
                node_events,
                receiver_stream(fleet_world_rx),
            ]);
            let mut last = None;
            while events.next().await.is_some() {
                world.invalidate();
                world.fleet.retain(&world.cluster_names());
                let fingerprint = world.fingerprint();
                if last != Some(fingerprint) {
                    last = Some(fingerprint);
                    let _ = world_tx.send(());
                }
            }
        }
    };
    let watch_world = tokio::spawn(watch_world);

    let synced = futures::future::try_join3(
        classes.wait_until_ready(),
        clusters.wait_until_ready(),
        nodes.wait_until_ready(),
    );
    tokio::select! {
        result = synced => { result.map_err(|e| Error::CacheSync(e.to_string()))?; }
        () = shutdown.clone() => { watch_world.abort(); return Ok(()); }
    }

    let elector = args.leader_election.then(|| {
        LeaderElector::new(
            Api::<Lease>::namespaced(client.clone(), &args.namespace),
            &args.lease_name,
            &args.identity,
        )
    });
    if let Some(elector) = &elector {
        // A standby is ready too: its caches are synced and it knows who leads.
        let health = health.clone();
        let acquired = elector.acquire(move |holder| {
            health.set_ready(true);
            tracing::info!(%holder, "standing by; another replica leads");
        });
        tokio::select! {
            result = acquired => result?,
            () = shutdown.clone() => { watch_world.abort(); return Ok(()); }
        }
        tracing::info!(identity = %args.identity, "acquired leadership");
    }
    health.set_ready(true);

    let audit = AuditTrail::open(
        args.audit_log.clone(),
        format!("sovra/{}", args.identity),
        args.audit_stdout,
    )
    .await?;
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "sovra".into(),
            instance: Some(args.identity.clone()),
        },
    );
    // The hub's children, cached like every member's; a change wakes the child's workload.
    let (hub_children, _, hub_children_events) = fleet::watch_children(&client, &signals, None);
    let hub_children_task = tokio::spawn(hub_children_events);
    tokio::select! {
        result = hub_children.wait_until_ready() => {
            result.map_err(|e| Error::CacheSync(e.to_string()))?;
        }
        () = shutdown.clone() => {
            watch_world.abort();
            hub_children_task.abort();
            return Ok(());
        }
    }

    // Probe every member once before deciding anything: a member not probed yet counts as
    // unreachable, and deciding then would fail workloads over for no reason.
    let probes = clusters
        .state()
        .into_iter()
        .filter_map(|guard| guard.0.as_ref().ok().cloned())
        .map(|c| {
            let fleet = fleet.clone();
            let client = client.clone();
            let namespace = args.namespace.clone();
            async move {
                if let Some(secret) = &c.spec.connection.kubeconfig_secret_ref {
                    fleet
                        .probe(&c.name_any(), secret, &client, &namespace)
                        .await;
                    fleet.wait_for_caches(&c.name_any()).await;
                }
            }
        });
    futures::future::join_all(probes).await;
    world.invalidate();

    // Built before the context, which needs its cache of workloads.
    let workload_controller = Controller::new(
        Api::<DeserializeGuard<SovereignWorkload>>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    );
    let ctx = Arc::new(Context {
        workloads: workload_controller.store(),
        client: client.clone(),
        namespace: args.namespace.clone(),
        probe_interval: args.member_probe_interval,
        world,
        recorder,
        audit,
        metrics,
        backoff: Backoff::default(),
        hub_version,
        hub_children,
        applied: context::Applied::default(),
        cluster_statuses: Default::default(),
        released: Default::default(),
    });

    let world_changes = |rx: tokio::sync::broadcast::Receiver<()>| {
        futures::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(()) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Some(((), rx)),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
            }
        })
    };
    let config = controller::Config::default()
        .concurrency(args.concurrency)
        .debounce(Duration::from_millis(200));
    let workloads = workload_controller
        .with_config(config.clone())
        .reconcile_all_on(world_changes(world_rx.resubscribe()))
        .reconcile_on(receiver_stream(workload_rx))
        .graceful_shutdown_on(shutdown.clone())
        .run(
            instrumented(workload::reconcile, "workload"),
            error_policy,
            ctx.clone(),
        )
        .for_each(|_| futures::future::ready(()));
    let drift = drift::controller(
        client.clone(),
        ctx.clone(),
        config.clone(),
        shutdown.clone(),
    );
    let clusters_controller = Controller::new(
        Api::<DeserializeGuard<SovereignCluster>>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .with_config(config)
    .reconcile_all_on(world_changes(world_rx))
    .reconcile_on(receiver_stream(cluster_rx))
    .graceful_shutdown_on(shutdown.clone())
    .run(
        instrumented(cluster::reconcile, "cluster"),
        error_policy,
        ctx.clone(),
    )
    .for_each(|_| futures::future::ready(()));

    let controllers = futures::future::join3(workloads, clusters_controller, drift);
    let result = match &elector {
        Some(elector) => tokio::select! {
            _ = controllers => Ok(()),
            error = elector.hold() => Err(error),
        },
        None => {
            controllers.await;
            Ok(())
        }
    };
    if let Some(elector) = &elector
        && result.is_ok()
        && let Err(error) = elector.release().await
    {
        tracing::warn!(%error, "could not release the leader lease");
    }
    watch_world.abort();
    hub_children_task.abort();
    result
}

/// A cache of every `K`, and the watch events that keep it fed (the caller drives them).
fn cache<K>(api: Api<K>) -> (reflector::Store<K>, futures::stream::BoxStream<'static, ()>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let events = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .map(|_| ())
        .boxed();
    (store, events)
}

/// The messages of a channel as a stream.
fn receiver_stream<T: Send + 'static>(
    rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> futures::stream::BoxStream<'static, T> {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}

/// Wraps a reconciler with metrics (count, duration, in-flight) and backoff reset on success.
/// `C` is the controller's state; every one of them carries the shared [`Context`].
pub(crate) fn instrumented<K, C, F, Fut>(
    reconcile: F,
    name: &'static str,
) -> impl Fn(Arc<K>, Arc<C>) -> BoxFuture<'static, Result<Action, Error>>
where
    K: Send + Sync + 'static + Resource<DynamicType = ()>,
    C: AsRef<Context> + Send + Sync + 'static,
    F: Fn(Arc<K>, Arc<C>) -> Fut + Copy + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
{
    move |object: Arc<K>, state: Arc<C>| {
        async move {
            let ctx = state.as_ref().as_ref();
            let label = metrics::labels(&[("controller", name)]);
            let key = object_key(object.as_ref());
            ctx.metrics.reconciliations.get_or_create(&label).inc();
            ctx.metrics.reconciles_in_flight.get_or_create(&label).inc();
            let started = Instant::now();
            let result = reconcile(object, state.clone()).await;
            let ctx = state.as_ref().as_ref();
            ctx.metrics
                .reconcile_duration
                .get_or_create(&label)
                .observe(started.elapsed().as_secs_f64());
            ctx.metrics.reconciles_in_flight.get_or_create(&label).dec();
            if result.is_ok() {
                ctx.backoff.reset(&key);
            }
            result
        }
        .boxed()
    }
}

fn object_key<K: Resource<DynamicType = ()>>(object: &K) -> String {
    ObjectRef::from_obj(object).to_string()
}

/// Per-object exponential backoff for every controller, counted by kind and error.
pub(crate) fn error_policy<K: Resource<DynamicType = ()>, C: AsRef<Context>>(
    object: Arc<K>,
    error: &Error,
    state: Arc<C>,
) -> Action {
    let ctx = state.as_ref().as_ref();
    let key = object_key(object.as_ref());
    let delay = ctx.backoff.next_delay(&key);
    tracing::warn!(object = %key, %error, retry_in = ?delay, "reconcile failed");
    ctx.metrics
        .reconcile_errors
        .get_or_create(&metrics::labels(&[
            ("kind", K::kind(&()).as_ref()),
            ("error", error.metric_label()),
        ]))
        .inc();
    Action::requeue(delay)
}

/// Removes Sovra's `finalizer` from an object that is being deleted but cannot be reconciled
/// (it does not match the schema): nothing can be cleaned up for it, and it must not hang.
pub(crate) async fn release_finalizer<K>(
    api: &Api<K>,
    meta: &kube::core::ObjectMeta,
    finalizer: &str,
) -> Result<(), Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let finalizers: Vec<&String> = meta
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != finalizer)
        .collect();
    if finalizers.len() == meta.finalizers.as_ref().map_or(0, Vec::len) {
        return Ok(());
    }
    let patch = serde_json::json!({"metadata": {"finalizers": finalizers, "resourceVersion": meta.resource_version}});
    api.patch_metadata(
        meta.name.as_deref().unwrap_or_default(),
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Start-up gate: Sovra's CRDs must be Established before watches start, otherwise the first
/// list fails and the watchers back off for no reason.
async fn wait_for_crds(
    client: &Client,
    shutdown: impl std::future::Future<Output = ()> + Clone,
) -> Result<(), Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crate::crd::all() {
        let name = crd.metadata.name.unwrap_or_default();
        loop {
            let established = match api.get_opt(&name).await {
                Ok(found) => found
                    .and_then(|c| c.status)
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True"),
                Err(error) => {
                    tracing::warn!(%error, crd = %name, "cannot read CRD");
                    false
                }
            };
            if established {
                break;
            }
            tracing::info!(crd = %name, "waiting for CRD to be established");
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
                () = shutdown.clone() => return Err(Error::CrdNotEstablished(name)),
            }
        }
    }
    Ok(())
}
