//! Connections to member clusters. One client per member, built from the kubeconfig in the
//! member's Secret, with two caches fed by watches on the member: its Nodes (stripped to labels
//! and taints) and the Deployments Sovra manages there (stripped to labels, replicas, status).
//!
//! The cluster controller probes each member (`/version`, then a one-item Node list, which
//! proves the credentials may read Nodes) and records its [`Health`] here. Decisions read
//! health and pools through the world snapshot; the workload controller reads the client and
//! the Deployment cache to place, find and remove children.

mod probe;

use super::caches::{AbortOnDrop, Signals, child, pools_of, watch_children, watch_nodes};
use super::child_view::ChildView;
use super::deployment::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use super::member_health::Health;
use crate::policy::{NodeFacts, NodePool};
use crate::sync::lock;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Probe intervals a member that answered before must keep failing before it counts as
/// unreachable: an API server restart or a control-plane upgrade must not fail workloads over.
const UNREACHABLE_AFTER_INTERVALS: u32 = 2;

/// Every member connection, by SovereignCluster name. Cheap to clone; clones share members.
#[derive(Clone)]
pub struct Fleet {
    members: Arc<Mutex<BTreeMap<String, Member>>>,
    signals: Signals,
    /// Bound on each probe and each call Sovra makes to a member: one slow member must not
    /// hold up work on the others.
    pub timeout: Duration,
    /// How long a member that answered before may fail before it counts as unreachable.
    grace: Duration,
}

struct Member {
    /// SHA-256 of the kubeconfig `client` was built from: a rotated Secret rebuilds it.
    source: Vec<u8>,
    /// `None` when no client could ever be built from the kubeconfig.
    client: Option<Client>,
    health: Health,
    /// Since when probes fail, while the member still counts as reachable.
    failing_since: Option<tokio::time::Instant>,
    /// When the member was last probed: it is probed once per interval, not per world change.
    last_probe: Option<tokio::time::Instant>,
    /// Why the newest kubeconfig in the Secret was refused while the previous one still works.
    rotation_refused: Option<String>,
    caches: Option<MemberCaches>,
    /// Namespaces known to exist on the member, so placing does not GET one per reconcile.
    namespaces: BTreeSet<String>,
    /// One gate per namespace being made sure of: the workloads of a new namespace are placed
    /// side by side, and without it each would GET the namespace and all but one of their
    /// creates would be answered 409.
    namespace_gates: BTreeMap<String, Arc<tokio::sync::Mutex<()>>>,
}

impl Member {
    fn new(source: Vec<u8>, client: Option<Client>) -> Self {
        Self {
            source,
            client,
            health: Health::Connecting,
            failing_since: None,
            last_probe: None,
            rotation_refused: None,
            caches: None,
            namespaces: BTreeSet::new(),
            namespace_gates: BTreeMap::new(),
        }
    }
}

struct MemberCaches {
    /// Set by a failing watch: probe the member now rather than at the next interval.
    probe_wanted: Arc<AtomicBool>,
    nodes: Store<NodeFacts>,
    nodes_synced: Arc<AtomicBool>,
    deployments: Store<ChildView>,
    deployments_synced: Arc<AtomicBool>,
    /// The watch tasks; aborted when the member is dropped (deleted or rebuilt).
    _tasks: AbortOnDrop,
}

/// What a cache knows about a child.
#[derive(Clone, Debug)]
pub enum Lookup {
    /// The cache has not synced (or never started): there may be a child.
    Unknown,
    Absent,
    Present(Arc<Deployment>),
}

impl Fleet {
    pub fn new(signals: Signals, timeout: Duration, probe_interval: Duration) -> Self {
        Self {
            members: Arc::default(),
            signals,
            timeout,
            grace: probe_interval.saturating_mul(UNREACHABLE_AFTER_INTERVALS),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Member>> {
        lock(&self.members)
    }

    /// Drops connections to clusters that no longer exist (their watches stop).
    pub fn retain(&self, names: &BTreeSet<String>) {
        let mut members = self.lock();
        let before = members.len();
        members.retain(|name, _| names.contains(name));
        if members.len() != before {
            let _ = self.signals.world.send(());
        }
    }

    pub fn health(&self, name: &str) -> Option<Health> {
        self.lock().get(name).map(|m| m.health.clone())
    }

    /// True while a member that answered before fails probes but does not count as
    /// unreachable yet: probe it again soon.
    pub fn is_suspect(&self, name: &str) -> bool {
        self.lock().get(name).is_some_and(|m| {
            m.failing_since.is_some() && matches!(m.health, Health::Reachable { .. })
        })
    }

    /// Whether the member is due for a probe: never probed, last probed an interval ago,
    /// failing (then it is re-probed every second until confirmed or cleared), or one of its
    /// watches failed. Other reconciles of the cluster (a world change) read the last result.
    pub fn probe_due(&self, name: &str, interval: Duration) -> bool {
        let members = self.lock();
        let Some(member) = members.get(name) else {
            return true;
        };
        let wanted = member
            .caches
            .as_ref()
            .is_some_and(|c| c.probe_wanted.load(Ordering::SeqCst));
        let every = if member.failing_since.is_some() {
            interval.min(Duration::from_secs(1))
        } else {
            interval
        };
        // A requeue after `interval` may fire a moment early.
        let due = |at: tokio::time::Instant| at.elapsed() >= every.mul_f32(0.9);
        wanted || member.last_probe.is_none_or(due)
    }

    /// Why the newest kubeconfig of the member was refused, while the previous one is in use.
    pub fn rotation_refused(&self, name: &str) -> Option<String> {
        self.lock()
            .get(name)
            .and_then(|m| m.rotation_refused.clone())
    }

    /// The member's node pools from its Node cache, once that cache has synced.
    pub fn pools(&self, name: &str, pool_label: &str) -> Option<Vec<NodePool>> {
        let members = self.lock();
        let caches = members.get(name)?.caches.as_ref()?;
        if !caches.nodes_synced.load(Ordering::SeqCst) {
            return None;
        }
        Some(pools_of(&caches.nodes, pool_label))
    }

    /// A client for a member that counts as reachable.
    pub fn client(&self, name: &str) -> Option<Client> {
        let members = self.lock();
        let member = members.get(name)?;
        match member.health {
            Health::Reachable { .. } => member.client.clone(),
            _ => None,
        }
    }

    /// Names of every member Sovra has a connection to (reachable or not).
    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// The child of workload `namespace/name` on member `cluster`, as its cache last saw it.
    pub fn child(&self, cluster: &str, namespace: &str, workload: &str) -> Lookup {
        let members = self.lock();
        let Some(caches) = members.get(cluster).and_then(|m| m.caches.as_ref()) else {
            return Lookup::Unknown;
        };
        if !caches.deployments_synced.load(Ordering::SeqCst) {
            return Lookup::Unknown;
        }
        match child(&caches.deployments, namespace, workload) {
            Some(found) => Lookup::Present(found),
            None => Lookup::Absent,
        }
    }

    /// The Sovra-managed Deployments the member's cache holds; `None` until it has synced.
    pub fn children_on(&self, cluster: &str) -> Option<Vec<Arc<Deployment>>> {
        let members = self.lock();
        let caches = members.get(cluster)?.caches.as_ref()?;
        caches.deployments_synced.load(Ordering::SeqCst).then(|| {
            let children = caches.deployments.state().into_iter();
            children.map(|c| Arc::new(c.deployment())).collect()
        })
    }

    /// Creates `namespace` on the member when it is missing, labelled as Sovra-managed.
    pub async fn ensure_namespace(
        &self,
        cluster: &str,
        client: &Client,
        namespace: &str,
    ) -> Result<(), kube::Error> {
        let known = |fleet: &Self| {
            fleet
                .lock()
                .get(cluster)
                .is_some_and(|m| m.namespaces.contains(namespace))
        };
        if known(self) {
            return Ok(());
        }
        let gate = self.lock().get_mut(cluster).map(|member| {
            member
                .namespace_gates
                .entry(namespace.to_owned())
                .or_default()
                .clone()
        });
        let _one_at_a_time = match &gate {
            Some(gate) => Some(gate.lock().await),
            None => None,
        };
        if known(self) {
            return Ok(());
        }
        let api: Api<Namespace> = Api::all(client.clone());
        if api.get_opt(namespace).await?.is_none() {
            let created = Namespace {
                metadata: ObjectMeta {
                    name: Some(namespace.to_owned()),
                    labels: Some(BTreeMap::from([(
                        MANAGED_BY_LABEL.to_owned(),
                        MANAGED_BY_VALUE.to_owned(),
                    )])),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            };
            match api.create(&PostParams::default(), &created).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(error) => return Err(error),
            }
        }
        if let Some(member) = self.lock().get_mut(cluster) {
            member.namespaces.insert(namespace.to_owned());
            member.namespace_gates.remove(namespace);
        }
        Ok(())
    }

    /// Forgets that `namespace` exists on the member (an apply found it missing).
    pub fn forget_namespace(&self, cluster: &str, namespace: &str) {
        if let Some(member) = self.lock().get_mut(cluster) {
            member.namespaces.remove(namespace);
        }
    }

    /// Waits (at most the member timeout) until a reachable member's caches have synced.
    pub async fn wait_for_caches(&self, name: &str) {
        let deadline = tokio::time::Instant::now() + self.timeout;
        while tokio::time::Instant::now() < deadline {
            let synced = match self.lock().get(name) {
                Some(Member {
                    health: Health::Reachable { .. },
                    caches: Some(caches),
                    ..
                }) => {
                    caches.nodes_synced.load(Ordering::SeqCst)
                        && caches.deployments_synced.load(Ordering::SeqCst)
                }
                _ => true,
            };
            if synced {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Starts the Node and Deployment watches of one member. A failing watch asks for a probe now
/// rather than at the next interval: the member may be gone.
fn watch_member(name: &str, client: &Client, signals: &Signals) -> MemberCaches {
    let (nodes, node_events) = watch_nodes(client);
    let nodes_synced = Arc::new(AtomicBool::new(false));
    let probe_wanted = Arc::new(AtomicBool::new(false));
    let cluster_ref = ObjectRef::new(name);
    let node_task = {
        let signals = signals.clone();
        let synced = nodes_synced.clone();
        let cluster_ref = cluster_ref.clone();
        let wanted = probe_wanted.clone();
        node_events.for_each(move |event| {
            match event {
                Ok(watcher::Event::InitDone) => synced.store(true, Ordering::SeqCst),
                Ok(_) => {}
                Err(_) => {
                    wanted.store(true, Ordering::SeqCst);
                    let _ = signals.cluster.send(cluster_ref.clone());
                }
            }
            let _ = signals.world.send(());
            futures::future::ready(())
        })
    };
    let (deployments, deployments_synced, deployment_task) =
        watch_children(client, signals, Some((cluster_ref, probe_wanted.clone())));
    MemberCaches {
        probe_wanted,
        nodes,
        nodes_synced,
        deployments,
        deployments_synced,
        _tasks: AbortOnDrop(vec![tokio::spawn(node_task), tokio::spawn(deployment_task)]),
    }
}
