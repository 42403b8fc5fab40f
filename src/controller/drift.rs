//! Drift enforcement on the hub: a Pod of a SovereignWorkload (label `sovra.dev/workload`) that
//! runs on a node outside the workload's placement (a non-sovereign node, a pool it was not
//! placed on, or any node when the workload is refused or gone) is a policy violation.
//!
//! A violation is recorded in the audit trail first, counted, and reported with a Warning
//! Event on the Pod and on the workload, once per Pod. Under `enforce` the Pod is then evicted
//! through the Eviction API, so PodDisruptionBudgets are respected (a 429 is retried with
//! backoff); under `audit` it is only reported.

use super::context::Context;
use super::context::lock;
use super::deployment::{SENSITIVITY_LABEL, WORKLOAD_LABEL};
use super::metrics::labels;
use super::workload::publish;
use super::world::Snapshot;
use super::{error_policy, instrumented};
use crate::Error;
use crate::audit::{AuditAction, AuditEntry, ObjectRef as AuditObject};
use crate::crd::{Enforcement, SovereignWorkload};
use crate::policy::{Outcome, SOVEREIGN_NODE_LABEL, decide_for_workload};
use futures::{FutureExt, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, EvictParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Safety net: a Pod is re-checked this often even without any watch event.
const RESYNC: Duration = Duration::from_secs(300);
/// A Pod on a node the cache does not know yet is re-checked after this.
const NODE_RETRY: Duration = Duration::from_secs(5);
/// Without a hub SovereignCluster nothing can be decided; re-check after this.
const NO_HUB_RETRY: Duration = Duration::from_secs(30);

/// The parts of a Pod drift enforcement reads: metadata (without managed fields and
/// annotations), the node it is bound to and its phase. Everything else is never deserialized,
/// which keeps the controller's cache small.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(from = "RawPodView")]
pub struct PodView {
    pub metadata: ObjectMeta,
    pub node_name: Option<String>,
    pub phase: Option<String>,
}

#[derive(Deserialize)]
struct RawPodView {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<RawPodSpec>,
    #[serde(default)]
    status: Option<RawPodStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPodSpec {
    #[serde(default)]
    node_name: Option<String>,
}

#[derive(Deserialize)]
struct RawPodStatus {
    #[serde(default)]
    phase: Option<String>,
}

impl From<RawPodView> for PodView {
    fn from(raw: RawPodView) -> Self {
        let mut metadata = raw.metadata;
        metadata.managed_fields = None;
        metadata.annotations = None;
        Self {
            metadata,
            node_name: raw.spec.and_then(|s| s.node_name).filter(|n| !n.is_empty()),
            phase: raw.status.and_then(|s| s.phase),
        }
    }
}

impl Resource for PodView {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Pod::kind(&())
    }
    fn group(_: &()) -> Cow<'_, str> {
        Pod::group(&())
    }
    fn version(_: &()) -> Cow<'_, str> {
        Pod::version(&())
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Pod::plural(&())
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The drift controller's state: the shared context and the Pods already reported, so a
/// resync (or a retried eviction) does not report the same violation again.
pub struct Drift {
    ctx: Arc<Context>,
    pods: Store<PodView>,
    reported: Mutex<HashSet<String>>,
}

impl AsRef<Context> for Drift {
    fn as_ref(&self) -> &Context {
        &self.ctx
    }
}

impl Drift {
    fn is_reported(&self, uid: &str) -> bool {
        lock(&self.reported).contains(uid)
    }

    /// Marks `uid` reported, and forgets Pods that are gone from the cache (deleted), so the
    /// set stays bounded by the number of Pods in violation.
    fn mark_reported(&self, uid: &str) {
        let live: HashSet<String> = self.pods.state().iter().filter_map(|p| p.uid()).collect();
        let mut reported = lock(&self.reported);
        reported.retain(|u| live.contains(u));
        reported.insert(uid.to_owned());
    }

    fn forget(&self, uid: &str) {
        lock(&self.reported).remove(uid);
    }
}

/// The drift controller: Pods labelled `sovra.dev/workload` in all namespaces, re-checked when
/// their workload changes (its placement moved, it was refused or deleted).
pub fn controller(
    client: Client,
    ctx: Arc<Context>,
    config: controller::Config,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> futures::future::BoxFuture<'static, ()> {
    let pods = Controller::new(
        Api::<PodView>::all(client.clone()),
        watcher::Config::default().labels(WORKLOAD_LABEL),
    )
    .with_config(config);
    let store = pods.store();
    let drift = Arc::new(Drift {
        ctx,
        pods: store.clone(),
        reported: Mutex::new(HashSet::new()),
    });
    pods.watches(
        Api::<DeserializeGuard<SovereignWorkload>>::all(client),
        watcher::Config::default(),
        move |workload| {
            let namespace = workload.namespace();
            let name = workload.name_any();
            store
                .state()
                .iter()
                .filter(|pod| {
                    pod.namespace() == namespace && pod.labels().get(WORKLOAD_LABEL) == Some(&name)
                })
                .map(|pod| ObjectRef::from_obj(pod.as_ref()))
                .collect::<Vec<_>>()
        },
    )
    .graceful_shutdown_on(shutdown)
    .run(instrumented(reconcile, "drift"), error_policy, drift)
    .for_each(|_| futures::future::ready(()))
    .boxed()
}

/// Backoff key for evictions a PodDisruptionBudget blocks: kept apart from the reconcile-error
/// key, which every successful check resets, so a blocked eviction keeps backing off.
fn eviction_key(pod: &PodView) -> String {
    format!("eviction/{}", ObjectRef::from_obj(pod))
}

/// What the Pod's workload allows on the hub.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Allowed {
    /// The workload is placed on the hub onto these pools.
    Pools(Vec<String>),
    /// The workload allows nothing on the hub; the reason says why.
    Nothing(String),
}

/// Why a Pod on `node` breaks its workload's placement; empty when it does not.
fn violations(
    node: &str,
    node_labels: &BTreeMap<String, String>,
    pool_label: &str,
    allowed: &Allowed,
) -> Vec<String> {
    let mut reasons = Vec::new();
    let pool = node_labels.get(pool_label);
    if node_labels.get(SOVEREIGN_NODE_LABEL).map(String::as_str) != Some("true") {
        reasons.push(format!(
            "node {node} is not sovereign: label {SOVEREIGN_NODE_LABEL}=true is missing"
        ));
    }
    match (allowed, pool) {
        (Allowed::Nothing(why), _) => reasons.push(why.clone()),
        (Allowed::Pools(_), None) => reasons.push(format!(
            "node {node} has no {pool_label} label, so it is in none of the placed node pools"
        )),
        (Allowed::Pools(pools), Some(pool)) if !pools.contains(pool) => {
            reasons.push(format!(
                "node pool {pool} is not one of the placed node pools [{}]",
                pools.join(", ")
            ));
        }
        (Allowed::Pools(_), Some(_)) => {}
    }
    reasons
}

/// What the workload allows on the hub, judged against the decision the workload controller
/// makes now, not only against status: a child applied just before a failed status write runs
/// pods the status does not show yet. Pools of the placement in status stay allowed too, since
/// during a move the old pods run until the new ones are placed (make before break).
fn allowed_on_hub(
    workload: Option<&DeserializeGuard<SovereignWorkload>>,
    name: &str,
    hub: &str,
    world: &Snapshot,
) -> Allowed {
    let workload = match workload.map(|guard| &guard.0) {
        None => return Allowed::Nothing(format!("workload {name} does not exist")),
        Some(Err(_)) => {
            return Allowed::Nothing(format!(
                "workload {name} does not match the SovereignWorkload schema and is not placed"
            ));
        }
        Some(Ok(workload)) => workload,
    };
    let decision = decide_for_workload(workload, &world.classes, &world.clusters);
    if matches!(decision.outcome, Outcome::Refused(_)) {
        return Allowed::Nothing(format!("workload {name} is refused; nothing may run"));
    }
    let decided = decision.targets().iter().filter(|t| t.cluster == hub);
    let recorded = workload
        .status
        .iter()
        .flat_map(|s| s.placements.iter())
        .filter(|p| p.cluster == hub);
    let mut pools: Vec<String> = decided
        .flat_map(|t| t.pools.iter().cloned())
        .chain(recorded.flat_map(|p| p.node_pools.iter().cloned()))
        .collect();
    pools.sort();
    pools.dedup();
    if pools.is_empty() {
        return Allowed::Nothing(format!("workload {name} is not placed on cluster {hub}"));
    }
    Allowed::Pools(pools)
}

async fn reconcile(pod: Arc<PodView>, drift: Arc<Drift>) -> Result<Action, Error> {
    let ctx = &drift.ctx;
    let uid = pod.uid().unwrap_or_default();
    let finished = matches!(pod.phase.as_deref(), Some("Succeeded" | "Failed"));
    if pod.metadata.deletion_timestamp.is_some() || finished {
        drift.forget(&uid);
        return Ok(Action::await_change());
    }
    let Some(node_name) = pod.node_name.as_deref() else {
        // Not scheduled yet: binding it to a node is a change that wakes this Pod again.
        return Ok(Action::await_change());
    };
    let world = ctx.world.snapshot();
    let Some(hub) = world.hub.clone() else {
        return Ok(Action::requeue(NO_HUB_RETRY));
    };
    let Some(node) = ctx.world.nodes.get(&ObjectRef::<Node>::new(node_name)) else {
        return Ok(Action::requeue(NODE_RETRY));
    };
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod
        .labels()
        .get(WORKLOAD_LABEL)
        .cloned()
        .unwrap_or_default();
    let api: Api<DeserializeGuard<SovereignWorkload>> =
        Api::namespaced(ctx.client.clone(), &namespace);
    let workload = if name.is_empty() {
        None
    } else {
        api.get_opt(&name).await?
    };
    let allowed = allowed_on_hub(workload.as_ref(), &name, &hub, &world);
    let node_labels = node.metadata.labels.clone().unwrap_or_default();
    let reasons = violations(node_name, &node_labels, &ctx.world.pool_label, &allowed);
    if reasons.is_empty() {
        drift.forget(&uid);
        return Ok(Action::requeue(RESYNC));
    }

    let class = workload
        .as_ref()
        .and_then(|guard| guard.0.as_ref().ok())
        .map(|w| w.spec.sensitivity.clone())
        .or_else(|| pod.labels().get(SENSITIVITY_LABEL).cloned())
        .unwrap_or_default();
    // An unknown class is enforced: sovereignty fails closed.
    let enforcement = world
        .classes
        .get(&class)
        .map_or(Enforcement::Enforce, |c| c.enforcement);
    let pool = node_labels
        .get(&ctx.world.pool_label)
        .cloned()
        .unwrap_or_else(|| "<none>".to_owned());

    if !drift.is_reported(&uid) {
        // Recorded (and fsynced) before acting, like every other decision.
        ctx.audit
            .record(AuditEntry {
                action: AuditAction::Violation,
                object: AuditObject::from_resource(pod.as_ref()),
                class: Some(class.clone()),
                cluster: Some(hub.clone()),
                pools: vec![pool.clone()],
                reasons: reasons.clone(),
            })
            .await?;
        drift.mark_reported(&uid);
        ctx.metrics
            .violations
            .get_or_create(&labels(&[("class", &class)]))
            .inc();
        let consequence = match enforcement {
            Enforcement::Enforce => "evicting",
            Enforcement::Audit => "enforcement audit: reported only",
        };
        // Deterministic, so a repeat is aggregated by the Recorder into the same series.
        let note = format!(
            "pod {} of workload {name} (class {class}) runs on node {node_name} in pool {pool} \
             of cluster {hub}: {}; {consequence}",
            pod.name_any(),
            reasons.join("; ")
        );
        publish(
            ctx,
            pod.as_ref(),
            EventType::Warning,
            "PolicyViolation",
            "Enforce",
            &note,
        )
        .await;
        if let Some(Ok(workload)) = workload.as_ref().map(|guard| &guard.0) {
            publish(
                ctx,
                workload,
                EventType::Warning,
                "PolicyViolation",
                "Enforce",
                &note,
            )
            .await;
        }
    }

    if enforcement == Enforcement::Audit {
        return Ok(Action::requeue(RESYNC));
    }
    let key = eviction_key(&pod);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    match pods.evict(&pod.name_any(), &EvictParams::default()).await {
        Ok(_) => {
            ctx.backoff.reset(&key);
            tracing::info!(pod = %key, node = node_name, %pool, "evicted pod violating its class");
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
        Err(kube::Error::Api(e)) if e.code == 429 => {
            let delay = ctx.backoff.next_delay(&key);
            tracing::info!(pod = %key, retry_in = ?delay, message = %e.message,
                "eviction blocked by a disruption budget");
            Ok(Action::requeue(delay))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_labels(pool: Option<&str>, sovereign: bool) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        if let Some(pool) = pool {
            labels.insert("sovra.dev/node-pool".to_owned(), pool.to_owned());
        }
        if sovereign {
            labels.insert(SOVEREIGN_NODE_LABEL.to_owned(), "true".to_owned());
        }
        labels
    }

    #[test]
    fn a_sovereign_node_in_a_placed_pool_is_no_violation() {
        let allowed = Allowed::Pools(vec!["gov-general".into()]);
        let labels = node_labels(Some("gov-general"), true);
        assert!(violations("n", &labels, "sovra.dev/node-pool", &allowed).is_empty());
    }

    #[test]
    fn non_sovereign_nodes_other_pools_and_unplaced_workloads_are_violations() {
        let allowed = Allowed::Pools(vec!["gov-general".into()]);
        let reasons = violations(
            "b-0",
            &node_labels(Some("build"), false),
            "sovra.dev/node-pool",
            &allowed,
        );
        assert_eq!(reasons.len(), 2);
        assert!(reasons[0].contains("not sovereign"));
        assert!(reasons[1].contains("node pool build is not one of"));
        let nothing = Allowed::Nothing("workload w does not exist".into());
        let reasons = violations(
            "g-0",
            &node_labels(Some("gov-general"), true),
            "sovra.dev/node-pool",
            &nothing,
        );
        assert_eq!(reasons, ["workload w does not exist"]);
        let reasons = violations(
            "x",
            &node_labels(None, true),
            "sovra.dev/node-pool",
            &allowed,
        );
        assert!(reasons[0].contains("has no sovra.dev/node-pool label"));
    }

    #[test]
    fn the_pod_view_keeps_only_what_drift_reads() {
        let view: PodView = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "annotations": {"a": "b"}, "managedFields": [{"manager": "m"}]},
            "spec": {"nodeName": "n", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1"}
        }))
        .unwrap();
        assert_eq!(view.node_name.as_deref(), Some("n"));
        assert_eq!(view.phase.as_deref(), Some("Running"));
        assert!(view.metadata.managed_fields.is_none() && view.metadata.annotations.is_none());
    }
}
