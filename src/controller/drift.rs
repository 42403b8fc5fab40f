//! Drift enforcement on the hub: a Pod of a SovereignWorkload (label `sovra.dev/workload`) that
//! runs on a node outside the workload's placement (a non-sovereign node, a pool it was not
//! placed on, or any node when the workload is refused or gone) is a policy violation.
//!
//! A violation is recorded in the audit trail first, counted, and reported with a Warning
//! Event on the Pod and on the workload, once per Pod. Under `enforce` the Pod is then evicted
//! through the Eviction API, so PodDisruptionBudgets are respected (a 429 is retried with
//! backoff); under `audit` it is only reported.

use super::context::Context;
use super::deployment::{SENSITIVITY_LABEL, WORKLOAD_LABEL};
use super::metrics::labels;
use super::reconciler::{error_policy, instrumented};
use super::report::publish;
use super::violations::Violation;
use crate::Error;
use crate::audit::{AuditAction, AuditEntry, ObjectRef as AuditObject};
use crate::crd::{Enforcement, SovereignWorkload};
use crate::policy::{NodeFacts, PodOwner, allowed_on, pod_violations};
use crate::sync::lock;
use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, EvictParams};
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashSet;
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

    /// The Pod went, finished or complies: nothing of it is reported any more.
    fn forget(&self, uid: &str) {
        lock(&self.reported).remove(uid);
        if let Some(namespace) = self.ctx.memory.violations.clear(uid) {
            self.ctx.reports.mark(&namespace);
        }
    }
}

/// Forgets the violations of Pods that are gone: deleted (its watch event), or gone while the
/// watch was down (the cache, listed again, no longer has them).
fn forget_gone(ctx: &Context, pods: &Store<PodView>, event: &watcher::Event<PodView>) {
    let violations = &ctx.memory.violations;
    let dropped = match event {
        watcher::Event::Delete(pod) => violations
            .clear(&pod.uid().unwrap_or_default())
            .into_iter()
            .collect(),
        watcher::Event::InitDone if !violations.is_empty() => violations.retain(|uid, v| {
            pods.get(&ObjectRef::new(&v.pod).within(&v.namespace))
                .is_some_and(|pod| pod.uid().as_deref() == Some(uid))
        }),
        _ => std::collections::BTreeSet::new(),
    };
    for namespace in dropped {
        ctx.reports.mark(&namespace);
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
    let (store, writer) = reflector::store();
    let (gone_ctx, gone_store) = (ctx.clone(), store.clone());
    let events = reflector::reflector(
        writer,
        watcher(
            Api::<PodView>::all(client.clone()),
            watcher::Config::default().labels(WORKLOAD_LABEL),
        ),
    )
    .inspect_ok(move |event| forget_gone(&gone_ctx, &gone_store, event))
    .applied_objects();
    let pods = Controller::for_stream(events, store.clone()).with_config(config);
    let drift = Arc::new(Drift {
        ctx,
        pods: store.clone(),
        reported: Mutex::new(HashSet::new()),
    });
    // A workload's pods are judged again when it changes; which pods those are needs only
    // its name, so the watch carries metadata alone (the workload controller caches the rest).
    let workloads = watcher(
        Api::<PartialObjectMeta<SovereignWorkload>>::all(client),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects();
    pods.watches_stream(workloads, move |workload| {
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
    })
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
    let world = ctx.snapshot();
    let Some(hub) = world.hub.clone() else {
        return Ok(Action::requeue(NO_HUB_RETRY));
    };
    let Some(node) = ctx.world.nodes.get(&ObjectRef::<NodeFacts>::new(node_name)) else {
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
    let owner = match workload.as_ref().map(|guard| &guard.0) {
        None => PodOwner::Missing,
        Some(Err(_)) => PodOwner::Invalid,
        Some(Ok(workload)) => PodOwner::Workload(workload),
    };
    let allowed = allowed_on(&hub, &name, owner, &world.classes, &world.candidates);
    let reasons = pod_violations(&node, &ctx.world.pool_label, &allowed);
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
    let pool = node
        .labels
        .get(&ctx.world.pool_label)
        .cloned()
        .unwrap_or_else(|| "<none>".to_owned());
    // Shown as a fail result in the namespace's policy report until it is resolved.
    let violation = Violation {
        namespace: namespace.clone(),
        workload: name.clone(),
        workload_found: matches!(workload.as_ref().map(|guard| &guard.0), Some(Ok(_))),
        pod: pod.name_any(),
        node: node_name.to_owned(),
        pool: pool.clone(),
        class: class.clone(),
        reasons: reasons.clone(),
        since: 0,
    };
    let now = jiff::Timestamp::now().as_second();
    if ctx.memory.violations.record(&uid, violation, now) {
        ctx.reports.mark(&namespace);
    }

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
