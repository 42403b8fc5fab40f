//! Watch-fed caches shared by the hub and every member: a cluster's Nodes, stripped to what
//! placement reads (labels, taints), and the Deployments Sovra manages there, read as
//! [`ChildView`]s (the labels Sovra reads, the applied digest, generation, replicas, readiness).

use super::cache_view::view_event;
use super::child_view::{ChildObject, ChildView};
use super::deployment::managed_selector;
use super::lanes::{Lanes, live_change};
use super::node_view::NodeObject;
use crate::crd::{ConditionWords, SovereignCluster, SovereignWorkload};
use crate::interner::Interner;
use crate::policy::{NodeFacts, NodePool, node_pools};
use crate::sync::lock;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

/// Where cache changes are announced: the world (reachability, nodes), one workload (its
/// child changed on a member or the hub), one cluster (its watch failed: probe it again now).
#[derive(Clone)]
pub struct Signals {
    pub world: UnboundedSender<()>,
    pub workload: UnboundedSender<ObjectRef<DeserializeGuard<SovereignWorkload>>>,
    pub cluster: UnboundedSender<ObjectRef<DeserializeGuard<SovereignCluster>>>,
}

/// Tasks that are aborted when this is dropped: the watches of one member, or of one term.
pub struct AbortOnDrop(pub Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// A cache of a cluster's Nodes, as the facts placement reads (`node_view`), and the watch events that feed
/// it (the caller drives them). Only events that change what placement reads come out: a Node
/// heartbeat or status update changes neither labels nor taints, and must not wake every
/// workload nor rebuild the world.
pub fn watch_nodes(
    client: &Client,
) -> (
    Store<NodeFacts>,
    impl futures::Stream<Item = Result<watcher::Event<NodeFacts>, watcher::Error>> + Send + 'static,
) {
    let (store, writer) = reflector::store();
    let mut seen = NodeFactsSeen::default();
    let watch = watcher(
        Api::<NodeObject>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .map_ok(view_event);
    let events = reflector::reflector(writer, watch)
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
        event: &Result<watcher::Event<NodeFacts>, watcher::Error>,
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
                self.digests.remove(&node.name);
                true
            }
            Ok(watcher::Event::InitDone) | Err(_) => true,
        }
    }

    /// Records the Node's digest; true when it differs from the one seen before.
    fn remember(&mut self, node: &NodeFacts) -> bool {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        node.labels.hash(&mut hasher);
        for taint in &node.taints {
            (&taint.key, &taint.value, &taint.effect).hash(&mut hasher);
        }
        let digest = hasher.finish();
        match self.digests.get_mut(node.name.as_str()) {
            Some(seen) => std::mem::replace(seen, digest) != digest,
            None => {
                self.digests.insert(node.name.clone(), digest);
                true
            }
        }
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
    Store<ChildView>,
    Arc<AtomicBool>,
    impl Future<Output = ()> + Send + 'static,
) {
    let (store, writer) = reflector::store();
    let synced = Arc::new(AtomicBool::new(false));
    let signals = signals.clone();
    let reader = store.clone();
    let flag = synced.clone();
    let watch = watcher(
        Api::<ChildObject>::all(client.clone()),
        watcher::Config::default().labels(&managed_selector()),
    )
    .default_backoff()
    .map_ok(view_event);
    let task = reflector::reflector(writer, watch).for_each(move |event| {
        let wake = |child: &ChildView| {
            if let Some(workload) = child.workload() {
                let _ = signals
                    .workload
                    .send(ObjectRef::new(workload).within(child.namespace()));
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

/// The hub's SovereignWorkloads as the workload controller caches them, and the watch that
/// feeds the cache (the controller drives it) and tells `lanes` of live changes. Each is
/// stripped of what no reconcile reads ([`strip_workload`]): at 10,000 workloads the managed
/// fields alone would be most of it.
pub fn watch_workloads(
    client: &Client,
    lanes: Lanes,
) -> (
    Store<DeserializeGuard<SovereignWorkload>>,
    impl futures::Stream<Item = Result<DeserializeGuard<SovereignWorkload>, watcher::Error>>
    + Send
    + 'static,
) {
    let (store, writer) = reflector::store();
    let cached = store.clone();
    let words = Interner::default();
    // What the event changed, judged against the cache before it applies the event, and noted
    // once it has.
    let live = Arc::new(std::sync::Mutex::new(None));
    let judged = live.clone();
    let events = watcher(
        Api::<DeserializeGuard<SovereignWorkload>>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .modify(move |guard| strip_workload(guard, &words))
    .inspect_ok(move |event| *lock(&judged) = live_change(event, &cached))
    .reflect(writer)
    .inspect_ok(move |event| lanes.note(event, lock(&live).take()))
    .applied_objects();
    (store, events)
}

/// Drops the managed fields and the last-applied annotation (kubectl's copy of the whole
/// spec) of a cached workload, valid or not, which Sovra reads neither, and packs a valid
/// one's status (`SovereignWorkloadStatus::packed`), its condition words shared through
/// `words` with every other cached workload.
fn strip_workload(
    guard: &mut DeserializeGuard<SovereignWorkload>,
    words: &Interner<ConditionWords>,
) {
    let metadata = match &mut guard.0 {
        Ok(workload) => {
            workload.status = workload.status.take().map(|status| status.packed(words));
            &mut workload.metadata
        }
        Err(invalid) => &mut invalid.metadata,
    };
    metadata.managed_fields = None;
    if let Some(annotations) = metadata.annotations.as_mut() {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
}

/// Where `kubectl apply` (client-side) keeps the last configuration it applied.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The child of workload `namespace/name` in a cache of children. Children are named after
/// their workload; the label check keeps a same-named Deployment of someone else out.
pub fn child(store: &Store<ChildView>, namespace: &str, workload: &str) -> Option<Arc<Deployment>> {
    store
        .get(&ObjectRef::new(workload).within(namespace))
        .filter(|child| child.workload() == Some(workload))
        .map(|child| Arc::new(child.deployment()))
}

/// The node pools of a cluster from its cache of Nodes.
pub fn pools_of(nodes: &Store<NodeFacts>, pool_label: &str) -> Vec<NodePool> {
    let mut facts: Vec<NodeFacts> = nodes.state().iter().map(|n| (**n).clone()).collect();
    facts.sort_by(|a, b| a.name.cmp(&b.name));
    node_pools(&facts, pool_label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn node(sovereign: bool) -> NodeFacts {
        let mut labels = BTreeMap::from([("sovra.dev/node-pool".to_owned(), "general".to_owned())]);
        if sovereign {
            labels.insert(
                crate::policy::SOVEREIGN_NODE_LABEL.to_owned(),
                "true".to_owned(),
            );
        }
        NodeFacts {
            name: "general-0".into(),
            labels,
            taints: Vec::new(),
        }
    }

    #[test]
    fn a_node_update_that_changes_no_label_or_taint_is_not_a_placement_change() {
        let mut seen = NodeFactsSeen::default();
        assert!(seen.changes_placement(&Ok(watcher::Event::Apply(node(true)))));
        // A heartbeat: the same facts again.
        assert!(!seen.changes_placement(&Ok(watcher::Event::Apply(node(true)))));
        assert!(seen.changes_placement(&Ok(watcher::Event::Apply(node(false)))));
        // A relist is reported once, when it is done.
        assert!(!seen.changes_placement(&Ok(watcher::Event::Init)));
        assert!(!seen.changes_placement(&Ok(watcher::Event::InitApply(node(true)))));
        assert!(seen.changes_placement(&Ok(watcher::Event::InitDone)));
        assert!(seen.changes_placement(&Ok(watcher::Event::Delete(node(true)))));
    }
}
