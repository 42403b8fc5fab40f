//! Connections to member clusters. One client per member, built from the kubeconfig in the
//! member's Secret, with two caches fed by watches on the member: its Nodes (stripped to labels
//! and taints) and the Deployments Sovra manages there (stripped to labels, replicas, status).
//!
//! The cluster controller probes each member (`/version`, then a one-item Node list, which
//! proves the credentials may read Nodes) and records its [`Health`] here. Decisions read
//! health and pools through the world snapshot; the workload controller reads the client and
//! the Deployment cache to place, find and remove children.

use super::context::lock;
use super::deployment::{
    CLUSTER_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, WORKLOAD_LABEL, managed_selector,
};
use super::kubeconfig::client_from_kubeconfig;
use super::world::{pools_of, strip_node};
use crate::crd::{SecretKeyRef, SovereignCluster, SovereignWorkload};
use crate::policy::NodePool;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Secret};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

/// Why a member cannot be used. Each has a stable code (condition reason, metric label) and a
/// stable sentence for decisions, so a changing error text does not re-decide every workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionFault {
    /// The Secret or its key does not exist.
    KubeconfigMissing,
    /// The Secret exists but the kubeconfig cannot be used.
    KubeconfigInvalid,
    /// The operator may not read the Secret.
    SecretUnreadable,
    /// The API server does not answer (refused, timed out, 5xx).
    ServerUnreachable,
    /// The API server answers but rejects the credentials (401) or their rights (403).
    CredentialsRejected,
}

impl ConnectionFault {
    pub fn code(self) -> &'static str {
        match self {
            Self::KubeconfigMissing => "KubeconfigMissing",
            Self::KubeconfigInvalid => "KubeconfigInvalid",
            Self::SecretUnreadable => "SecretUnreadable",
            Self::ServerUnreachable => "ServerUnreachable",
            Self::CredentialsRejected => "CredentialsRejected",
        }
    }

    /// What a placement decision records: stable, without the changing error detail.
    pub fn summary(self) -> &'static str {
        match self {
            Self::KubeconfigMissing => "its kubeconfig Secret is missing",
            Self::KubeconfigInvalid => "its kubeconfig cannot be used",
            Self::SecretUnreadable => "its kubeconfig Secret cannot be read",
            Self::ServerUnreachable => "its API server does not answer",
            Self::CredentialsRejected => "its API server rejects Sovra's credentials",
        }
    }
}

/// What the last probe of a member found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Not probed yet (just created, or the operator just started).
    Connecting,
    Reachable {
        version: String,
    },
    Unreachable {
        why: ConnectionFault,
        message: String,
    },
}

/// Where fleet changes are announced: the world (reachability, nodes), one workload (its child
/// changed on a member), one cluster (its watch failed: probe it again now).
#[derive(Clone)]
pub struct Signals {
    pub world: UnboundedSender<()>,
    pub workload: UnboundedSender<ObjectRef<DeserializeGuard<SovereignWorkload>>>,
    pub cluster: UnboundedSender<ObjectRef<DeserializeGuard<SovereignCluster>>>,
}

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
    caches: Option<Caches>,
    /// Namespaces known to exist on the member, so placing does not GET one per reconcile.
    namespaces: BTreeSet<String>,
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
        }
    }
}

struct Caches {
    /// Set by a failing watch: probe the member now rather than at the next interval.
    probe_wanted: Arc<AtomicBool>,
    nodes: Store<Node>,
    nodes_synced: Arc<AtomicBool>,
    deployments: Store<Deployment>,
    deployments_synced: Arc<AtomicBool>,
    /// The watch tasks; aborted when the member is dropped (deleted or rebuilt).
    _tasks: AbortOnDrop,
}

struct AbortOnDrop(Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
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
        caches
            .deployments_synced
            .load(Ordering::SeqCst)
            .then(|| caches.deployments.state())
    }

    /// Creates `namespace` on the member when it is missing, labelled as Sovra-managed.
    pub async fn ensure_namespace(
        &self,
        cluster: &str,
        client: &Client,
        namespace: &str,
    ) -> Result<(), kube::Error> {
        if self
            .lock()
            .get(cluster)
            .is_some_and(|m| m.namespaces.contains(namespace))
        {
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
        }
        Ok(())
    }

    /// Forgets that `namespace` exists on the member (an apply found it missing).
    pub fn forget_namespace(&self, cluster: &str, namespace: &str) {
        if let Some(member) = self.lock().get_mut(cluster) {
            member.namespaces.remove(namespace);
        }
    }

    /// Reads the member's kubeconfig, builds a client when the kubeconfig changed, probes it
    /// and, on the first success, starts its caches. A new kubeconfig replaces the connection
    /// (client and caches) only once it has been probed successfully. Never fails: what went
    /// wrong is the returned health. Announces a world change when the health changed.
    pub async fn probe(
        &self,
        name: &str,
        secret: &SecretKeyRef,
        hub: &Client,
        namespace: &str,
    ) -> Health {
        let probed = match self.connect(name, secret, hub, namespace).await {
            Ok(connection) => self.probe_connection(connection).await,
            Err(fault) => Err(fault),
        };
        let now = tokio::time::Instant::now();
        let mut rotation_changed = false;
        let (health, changed) = {
            let mut members = self.lock();
            let member = members
                .entry(name.to_owned())
                .or_insert_with(|| Member::new(Vec::new(), None));
            let before = member.health.clone();
            match probed {
                Ok((client, source, version, refused)) => {
                    if member.source != source || member.client.is_none() {
                        // A new kubeconfig may point at another cluster: nothing of the old
                        // connection is kept.
                        *member = Member::new(source, Some(client.clone()));
                    }
                    if member.rotation_refused != refused {
                        if let Some(why) = &refused {
                            tracing::warn!(cluster = %name, %why, "kept the previous kubeconfig");
                        }
                        member.rotation_refused = refused;
                        rotation_changed = true;
                    }
                    member.failing_since = None;
                    member.health = Health::Reachable { version };
                    if member.caches.is_none() {
                        member.caches = Some(watch_member(name, &client, &self.signals));
                    }
                }
                Err((why, message)) => {
                    let since = *member.failing_since.get_or_insert(now);
                    let tolerated = matches!(before, Health::Reachable { .. })
                        && now.duration_since(since) < self.grace;
                    if tolerated {
                        tracing::warn!(cluster = %name, %message, "probe failed; still counted as reachable for now");
                    } else {
                        member.health = Health::Unreachable { why, message };
                    }
                }
            }
            member.last_probe = Some(now);
            if let Some(caches) = &member.caches {
                caches.probe_wanted.store(false, Ordering::SeqCst);
            }
            (member.health.clone(), member.health != before)
        };
        if changed || rotation_changed {
            let _ = self.signals.world.send(());
        }
        health
    }

    /// A client for the member's current kubeconfig and that kubeconfig's digest: the existing
    /// client when the kubeconfig did not change, or when the Secret cannot be read for a
    /// moment; otherwise a new one (not installed here: `probe` does that once it answers).
    /// A rotated kubeconfig that cannot be used does not replace a working connection.
    async fn connect(
        &self,
        name: &str,
        secret: &SecretKeyRef,
        hub: &Client,
        namespace: &str,
    ) -> Result<Connection, (ConnectionFault, String)> {
        let current = self
            .lock()
            .get(name)
            .and_then(|m| m.client.clone().map(|c| (c, m.source.clone())));
        let read = bounded(
            self.timeout,
            ConnectionFault::SecretUnreadable,
            "reading the kubeconfig Secret",
            read_kubeconfig(secret, hub, namespace),
        )
        .await;
        let kubeconfig = match (read, current.clone()) {
            (Ok(kubeconfig), _) => kubeconfig,
            (Err((ConnectionFault::SecretUnreadable, message)), Some((client, source))) => {
                tracing::warn!(cluster = %name, %message, "using the last kubeconfig");
                return Ok(Connection::unchanged(client, source));
            }
            (Err(fault), _) => return Err(fault),
        };
        let source = Sha256::digest(kubeconfig.as_bytes()).to_vec();
        match current {
            Some((client, current_source)) if current_source == source => {
                Ok(Connection::unchanged(client, source))
            }
            Some((client, current_source)) => {
                match client_from_kubeconfig(&kubeconfig, self.timeout).await {
                    Ok(rotated) => Ok(Connection {
                        client: rotated,
                        source,
                        previous: Some((client, current_source)),
                        refused: None,
                    }),
                    Err((_, why)) => Ok(Connection {
                        refused: Some(format!("the new kubeconfig cannot be used: {why}")),
                        ..Connection::unchanged(client, current_source)
                    }),
                }
            }
            None => Ok(Connection::unchanged(
                client_from_kubeconfig(&kubeconfig, self.timeout).await?,
                source,
            )),
        }
    }

    /// Probes the connection's client. A rotated kubeconfig whose server does not answer (or
    /// rejects it) is refused while the previous one still works: a bad rotation must not take
    /// a healthy member down and fail its workloads over.
    async fn probe_connection(
        &self,
        connection: Connection,
    ) -> Result<(Client, Vec<u8>, String, Option<String>), (ConnectionFault, String)> {
        let probe = |client: Client| {
            bounded(
                self.timeout,
                ConnectionFault::ServerUnreachable,
                "probing",
                async move { probe_server(&client).await },
            )
        };
        let Connection {
            client,
            source,
            previous,
            refused,
        } = connection;
        match (probe(client.clone()).await, previous) {
            (Ok(version), _) => Ok((client, source, version, refused)),
            (Err((why, message)), Some((old, old_source))) => match probe(old.clone()).await {
                Ok(version) => Ok((
                    old,
                    old_source,
                    version,
                    Some(format!(
                        "the new kubeconfig does not work ({}): {message}",
                        why.code()
                    )),
                )),
                Err(_) => Err((why, message)),
            },
            (Err(fault), None) => Err(fault),
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

/// What `connect` found: the client to probe, its kubeconfig's digest, the connection it would
/// replace (a rotation), and why a newer kubeconfig was refused.
struct Connection {
    client: Client,
    source: Vec<u8>,
    previous: Option<(Client, Vec<u8>)>,
    refused: Option<String>,
}

impl Connection {
    fn unchanged(client: Client, source: Vec<u8>) -> Self {
        Self {
            client,
            source,
            previous: None,
            refused: None,
        }
    }
}

/// Starts the Node and Deployment watches of one member. A failing watch asks for a probe now
/// rather than at the next interval: the member may be gone.
fn watch_member(name: &str, client: &Client, signals: &Signals) -> Caches {
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
    Caches {
        probe_wanted,
        nodes,
        nodes_synced,
        deployments,
        deployments_synced,
        _tasks: AbortOnDrop(vec![tokio::spawn(node_task), tokio::spawn(deployment_task)]),
    }
}

/// A cache of a cluster's Nodes, stripped to labels and taints, and the watch events that feed
/// it (the caller drives them). Only events that change what placement reads come out: a Node
/// heartbeat or status update changes neither labels nor taints, and must not wake every
/// workload nor rebuild the world.
pub fn watch_nodes(
    client: &Client,
) -> (
    Store<Node>,
    impl futures::Stream<Item = Result<watcher::Event<Node>, watcher::Error>> + Send + 'static,
) {
    let (store, writer) = reflector::store();
    let mut seen = NodeFactsSeen::default();
    let events = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(strip_node)
        .reflect(writer)
        .filter(move |event| futures::future::ready(seen.changes_placement(event)));
    (store, events)
}

/// A digest of each Node's labels and taints, to tell which watch events matter to placement.
#[derive(Default)]
pub struct NodeFactsSeen {
    digests: std::collections::HashMap<String, u64>,
}

impl NodeFactsSeen {
    /// True for an event after which the cluster's node pools may differ: a Node whose labels
    /// or taints changed, a deleted Node, the end of a (re)list, and a watch error.
    pub fn changes_placement(
        &mut self,
        event: &Result<watcher::Event<Node>, watcher::Error>,
    ) -> bool {
        match event {
            Ok(watcher::Event::Apply(node)) => self.remember(node),
            // A relist: the store is replaced at InitDone, which is reported then.
            Ok(watcher::Event::Init) => {
                self.digests.clear();
                false
            }
            Ok(watcher::Event::InitApply(node)) => {
                self.remember(node);
                false
            }
            Ok(watcher::Event::Delete(node)) => {
                self.digests.remove(&node.name_any());
                true
            }
            Ok(watcher::Event::InitDone) | Err(_) => true,
        }
    }

    /// Records the Node's digest; true when it differs from the one seen before.
    fn remember(&mut self, node: &Node) -> bool {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        node.metadata.labels.hash(&mut hasher);
        for taint in node.spec.iter().flat_map(|s| s.taints.iter().flatten()) {
            (&taint.key, &taint.value, &taint.effect).hash(&mut hasher);
        }
        let digest = hasher.finish();
        self.digests.insert(node.name_any(), digest) != Some(digest)
    }
}

/// Caches the Deployments Sovra manages on a cluster (stripped) and wakes the workload a child
/// belongs to whenever the child changes, and every child's workload once the cache has
/// (re)synced: a member that comes back may hold children its workloads no longer want. Run the
/// returned future to keep the cache fed. `probe`: the cluster to probe when the watch fails.
pub fn watch_children(
    client: &Client,
    signals: &Signals,
    probe: Option<(
        ObjectRef<DeserializeGuard<SovereignCluster>>,
        Arc<AtomicBool>,
    )>,
) -> (
    Store<Deployment>,
    Arc<AtomicBool>,
    impl Future<Output = ()> + Send + 'static,
) {
    let (store, writer) = reflector::store();
    let synced = Arc::new(AtomicBool::new(false));
    let signals = signals.clone();
    let reader = store.clone();
    let flag = synced.clone();
    let task = watcher(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default().labels(&managed_selector()),
    )
    .default_backoff()
    .modify(strip_deployment)
    .reflect(writer)
    .for_each(move |event| {
        let wake = |child: &Deployment| {
            if let (Some(workload), Some(namespace)) =
                (child.labels().get(WORKLOAD_LABEL), child.namespace())
            {
                let _ = signals
                    .workload
                    .send(ObjectRef::new(workload).within(&namespace));
            }
        };
        match &event {
            Ok(watcher::Event::Apply(child) | watcher::Event::Delete(child)) => wake(child),
            // The store holds the relisted children only from InitDone on.
            Ok(watcher::Event::InitDone) => {
                flag.store(true, Ordering::SeqCst);
                for child in reader.state() {
                    wake(&child);
                }
            }
            Ok(_) => {}
            Err(_) => {
                if let Some((cluster, wanted)) = &probe {
                    wanted.store(true, Ordering::SeqCst);
                    let _ = signals.cluster.send(cluster.clone());
                }
            }
        }
        futures::future::ready(())
    });
    (store, synced, task)
}

/// The child of workload `namespace/name` in a cache of children. Children are named after
/// their workload; the label check keeps a same-named Deployment of someone else out.
pub fn child(
    store: &Store<Deployment>,
    namespace: &str,
    workload: &str,
) -> Option<Arc<Deployment>> {
    store
        .get(&ObjectRef::new(workload).within(namespace))
        .filter(|d| d.labels().get(WORKLOAD_LABEL).map(String::as_str) == Some(workload))
}

/// Whether `child`, found on the API server of `cluster`, is that SovereignCluster's to remove.
/// A child belongs to the cluster its `sovra.dev/cluster` label names, so two SovereignClusters
/// pointed at one API server never remove each other's children; one whose label is missing or
/// names no existing cluster belongs to whoever finds it, so it cannot be left behind.
pub fn belongs_to(child: &Deployment, cluster: &str, clusters: &BTreeSet<String>) -> bool {
    match child.labels().get(CLUSTER_LABEL) {
        Some(label) if clusters.contains(label) => label == cluster,
        _ => true,
    }
}

/// Keeps of a child only what Sovra reads: labels, generation, replicas and status.
fn strip_deployment(deployment: &mut Deployment) {
    deployment.metadata.managed_fields = None;
    deployment.metadata.annotations = None;
    if let Some(spec) = deployment.spec.as_mut() {
        spec.template = Default::default();
    }
}

/// Runs `call` within `timeout`; running out is `fault`.
async fn bounded<T>(
    timeout: Duration,
    fault: ConnectionFault,
    what: &str,
    call: impl Future<Output = Result<T, (ConnectionFault, String)>>,
) -> Result<T, (ConnectionFault, String)> {
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| {
            Err((
                fault,
                format!("{what}: no answer within {} s", timeout.as_secs_f32()),
            ))
        })
}

async fn read_kubeconfig(
    secret: &SecretKeyRef,
    hub: &Client,
    namespace: &str,
) -> Result<String, (ConnectionFault, String)> {
    let api: Api<Secret> = Api::namespaced(hub.clone(), namespace);
    let found = api.get_opt(&secret.name).await.map_err(|error| {
        (
            ConnectionFault::SecretUnreadable,
            format!("cannot read Secret {namespace}/{}: {error}", secret.name),
        )
    })?;
    let Some(found) = found else {
        return Err((
            ConnectionFault::KubeconfigMissing,
            format!("Secret {namespace}/{} does not exist", secret.name),
        ));
    };
    let Some(bytes) = found.data.as_ref().and_then(|d| d.get(&secret.key)) else {
        return Err((
            ConnectionFault::KubeconfigMissing,
            format!(
                "Secret {namespace}/{} has no key {:?}",
                secret.name, secret.key
            ),
        ));
    };
    String::from_utf8(bytes.0.clone()).map_err(|_| {
        (
            ConnectionFault::KubeconfigInvalid,
            format!(
                "Secret {namespace}/{} key {:?} is not UTF-8 text",
                secret.name, secret.key
            ),
        )
    })
}

/// `/version`, then one-item lists of Nodes and Deployments: the server answers and the
/// credentials may read what Sovra caches. Returns the server's version.
async fn probe_server(client: &Client) -> Result<String, (ConnectionFault, String)> {
    let version = client
        .apiserver_version()
        .await
        .map_err(|e| classify(&e, "/version"))?;
    let one = ListParams::default().limit(1);
    Api::<Node>::all(client.clone())
        .list(&one)
        .await
        .map_err(|e| classify(&e, "listing Nodes"))?;
    Api::<Deployment>::all(client.clone())
        .list(&one)
        .await
        .map_err(|e| classify(&e, "listing Deployments"))?;
    Ok(version.git_version)
}

fn classify(error: &kube::Error, what: &str) -> (ConnectionFault, String) {
    match error {
        kube::Error::Api(status) if status.code == 401 || status.code == 403 => (
            ConnectionFault::CredentialsRejected,
            format!(
                "{what}: {} {}: {}",
                status.code, status.reason, status.message
            ),
        ),
        other => (
            ConnectionFault::ServerUnreachable,
            format!("{what}: {other}"),
        ),
    }
}

/// Pools as a cluster's status last reported them: what placement knows of a member it cannot
/// reach (or has not synced yet). Keeping them is what keeps a placement there.
pub fn pools_from_status(cluster: &SovereignCluster) -> Vec<NodePool> {
    cluster
        .status
        .iter()
        .flat_map(|s| s.node_pools.iter())
        .map(|p| NodePool {
            name: p.name.clone(),
            nodes: p.nodes,
            sovereign_nodes: p.sovereign_nodes,
            country: p.country.clone(),
            country_conflict: !p.sovereign && p.sovereign_nodes > 0,
            dedicated_to: p.dedicated_to.clone(),
            notes: p.reasons.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(sovereign: bool) -> Node {
        let mut labels = BTreeMap::from([("sovra.dev/node-pool".to_owned(), "general".to_owned())]);
        if sovereign {
            labels.insert(
                crate::policy::SOVEREIGN_NODE_LABEL.to_owned(),
                "true".to_owned(),
            );
        }
        Node {
            metadata: ObjectMeta {
                name: Some("general-0".into()),
                labels: Some(labels),
                ..ObjectMeta::default()
            },
            ..Node::default()
        }
    }

    #[test]
    fn a_node_update_that_changes_no_label_or_taint_is_not_a_placement_change() {
        let mut seen = NodeFactsSeen::default();
        assert!(seen.changes_placement(&Ok(watcher::Event::Apply(node(true)))));
        let mut heartbeat = node(true);
        heartbeat.metadata.resource_version = Some("99".into());
        heartbeat.status = Some(Default::default());
        assert!(!seen.changes_placement(&Ok(watcher::Event::Apply(heartbeat))));
        assert!(seen.changes_placement(&Ok(watcher::Event::Apply(node(false)))));
        // A relist is reported once, when it is done.
        assert!(!seen.changes_placement(&Ok(watcher::Event::Init)));
        assert!(!seen.changes_placement(&Ok(watcher::Event::InitApply(node(true)))));
        assert!(seen.changes_placement(&Ok(watcher::Event::InitDone)));
        assert!(seen.changes_placement(&Ok(watcher::Event::Delete(node(true)))));
    }
}
