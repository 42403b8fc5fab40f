//! Start-up gates of a term: Sovra's CRDs Established, then fresh caches of everything a
//! decision reads (classes, clusters, the hub's Nodes and Sovra's Deployments on the hub),
//! synced, and every member probed once. A term starts all of them anew; dropping [`Caches`]
//! stops every watch it started.

use super::caches::{AbortOnDrop, Signals, watch_children, watch_nodes};
use super::child_view::ChildView;
use super::fleet::Fleet;
use super::settings::Settings;
use super::world::World;
use crate::Error;
use crate::crd::{SensitivityClass, SovereignCluster, SovereignWorkload};
use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Start-up gate: Sovra's CRDs must be Established before watches start, otherwise the first
/// list fails and the watchers back off for no reason.
pub(super) async fn wait_for_crds(
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

/// One term's caches and the channels that wake the controllers.
pub(super) struct Caches {
    pub world: World,
    pub fleet: Fleet,
    /// The Deployments Sovra manages on the hub (members have theirs in the fleet).
    pub hub_children: Store<ChildView>,
    /// A placement-relevant change of the world: wakes every workload and cluster.
    pub world_changes: broadcast::Receiver<()>,
    /// One workload to wake (its child changed on a member or the hub).
    pub workload_wakes: mpsc::UnboundedReceiver<ObjectRef<DeserializeGuard<SovereignWorkload>>>,
    /// One cluster to probe now (its watch failed).
    pub cluster_wakes: mpsc::UnboundedReceiver<ObjectRef<DeserializeGuard<SovereignCluster>>>,
    /// Sends to `cluster_wakes`.
    pub cluster_wake: mpsc::UnboundedSender<ObjectRef<DeserializeGuard<SovereignCluster>>>,
    _tasks: AbortOnDrop,
}

impl Caches {
    /// Starts every watch of a term. Nodes are stripped to labels and taints.
    pub fn start(client: &Client, settings: &Settings) -> Self {
        let (classes, class_events) = cache(Api::<DeserializeGuard<SensitivityClass>>::all(
            client.clone(),
        ));
        let (clusters, cluster_events) = cache(Api::<DeserializeGuard<SovereignCluster>>::all(
            client.clone(),
        ));
        let (nodes, node_events) = watch_nodes(client);
        let node_events = node_events.map(|_| ()).boxed();
        let (fleet_world_tx, fleet_world_rx) = mpsc::unbounded_channel();
        let (workload_tx, workload_wakes) = mpsc::unbounded_channel();
        let (cluster_tx, cluster_wakes) = mpsc::unbounded_channel();
        let signals = Signals {
            world: fleet_world_tx,
            workload: workload_tx,
            cluster: cluster_tx.clone(),
        };
        let fleet = Fleet::new(
            signals.clone(),
            settings.member_timeout,
            settings.member_probe_interval,
        );
        let world = World::new(
            classes.clone(),
            clusters.clone(),
            nodes.clone(),
            settings.node_pool_label.clone(),
        );

        // Wake every workload (and cluster) only when the placement-relevant world changed.
        let (world_tx, world_changes) = broadcast::channel::<()>(16);
        let watch_world = {
            let world = world.clone();
            let fleet = fleet.clone();
            async move {
                let mut events = futures::stream::select_all([
                    class_events,
                    cluster_events,
                    node_events,
                    super::receiver_stream(fleet_world_rx),
                ]);
                let mut last = None;
                while events.next().await.is_some() {
                    world.invalidate();
                    fleet.retain(&world.cluster_names());
                    let fingerprint = world.fingerprint(&fleet);
                    if last != Some(fingerprint) {
                        last = Some(fingerprint);
                        let _ = world_tx.send(());
                    }
                }
            }
        };
        // The hub's children, cached like every member's; a change wakes the child's workload.
        let (hub_children, _, hub_children_events) = watch_children(client, &signals, None);
        Self {
            world,
            fleet,
            hub_children,
            world_changes,
            workload_wakes,
            cluster_wakes,
            cluster_wake: cluster_tx,
            _tasks: AbortOnDrop(vec![
                tokio::spawn(watch_world),
                tokio::spawn(hub_children_events),
            ]),
        }
    }

    /// Waits until every cache has listed once.
    pub async fn synced(&self) -> Result<(), Error> {
        futures::future::try_join4(
            self.world.classes.wait_until_ready(),
            self.world.clusters.wait_until_ready(),
            self.world.nodes.wait_until_ready(),
            self.hub_children.wait_until_ready(),
        )
        .await
        .map(|_| ())
        .map_err(|e| Error::CacheSync(e.to_string()))
    }

    /// Probes every member once before anything is decided: a member not probed yet counts
    /// as unreachable, and deciding then would fail workloads over for no reason. Each probe
    /// and cache wait is bounded by the member timeout.
    pub async fn probe_members(&self, client: &Client, namespace: &str) {
        let probes = self
            .world
            .clusters
            .state()
            .into_iter()
            .filter_map(|guard| guard.0.as_ref().ok().cloned())
            .map(|c| {
                let fleet = self.fleet.clone();
                async move {
                    if let Some(secret) = &c.spec.connection.kubeconfig_secret_ref {
                        fleet.probe(&c.name_any(), secret, client, namespace).await;
                        fleet.wait_for_caches(&c.name_any()).await;
                    }
                }
            });
        futures::future::join_all(probes).await;
        self.world.invalidate();
    }
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
