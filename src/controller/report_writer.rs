//! The policy report writer (IO): a task that, for each namespace marked in `policy_reports`,
//! builds the namespace's report (`policy_report`, pure) and applies it, unless it is what Sovra
//! wrote last. Nothing is sent when nothing changed: no clock goes into a report.
//!
//! Sovra never writes onto a report that is not its own: a report under Sovra's name without
//! Sovra's label is left alone (said once, in the log and an Event). When the report CRD is not
//! installed nothing is written; the hub's SovereignCluster says so (`PolicyReports`), and the
//! CRD is looked for again every `recheck`, so installing it later starts the reports.

use super::context::Context;
use super::deployment::FIELD_MANAGER;
use super::policy_report::{
    Detection, REPORT_NAME, ReportApi, is_sovra_report, namespace_report, report_api, same_report,
};
use crate::Error;
use crate::crd::{SovereignCluster, SovereignWorkload, SovereignWorkloadStatus};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use kube::core::DeserializeGuard;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::Value;
use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

/// Marks arriving this close together are written as one.
const DEBOUNCE: Duration = Duration::from_millis(250);
/// A namespace whose write failed is tried again after this.
const RETRY: Duration = Duration::from_secs(5);

/// Writes the reports of marked namespaces until `shutdown`. When the CRD's presence changes
/// the hub's SovereignCluster is woken (`clusters`), so its condition follows.
pub async fn run(
    ctx: Arc<Context>,
    clusters: UnboundedSender<ObjectRef<DeserializeGuard<SovereignCluster>>>,
    shutdown: impl std::future::Future<Output = ()> + Clone,
) {
    let Some(api) = report_api(ctx.reports.kind) else {
        return;
    };
    let wake_hub = || {
        if let Some(hub) = ctx.snapshot().hub.as_deref() {
            let _ = clusters.send(ObjectRef::new(hub));
        }
    };
    let reports = &ctx.reports;
    loop {
        let pause = if reports.pending() {
            RETRY
        } else {
            reports.recheck
        };
        tokio::select! {
            () = reports.marked() => {}
            () = tokio::time::sleep(pause) => {}
            () = shutdown.clone() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(DEBOUNCE) => {}
            () = shutdown.clone() => return,
        }
        if reports.due(Instant::now()) {
            let before = reports.detection();
            let after = reports.detect(&ctx.client).await;
            if after != before {
                wake_hub();
                if after == Detection::Installed {
                    mark_all(&ctx);
                }
            }
        }
        if reports.detection() != Detection::Installed {
            // Every namespace is marked again when the CRD is found.
            reports.take_dirty();
            continue;
        }
        for namespace in reports.take_dirty() {
            match sync(&ctx, api, &namespace).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(crd = api.crd, "the report CRD went away");
                    reports.set_detection(Detection::Missing);
                    reports.take_dirty();
                    wake_hub();
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, %namespace, "could not write the policy report");
                    reports.retry(namespace);
                }
            }
        }
    }
}

/// Marks every namespace with a SovereignWorkload.
fn mark_all(ctx: &Context) {
    let namespaces: BTreeSet<String> = ctx
        .workloads
        .state()
        .iter()
        .filter_map(|guard| match &guard.0 {
            Ok(w) => w.namespace(),
            Err(invalid) => invalid.metadata.namespace.clone(),
        })
        .collect();
    for namespace in namespaces {
        ctx.reports.mark(&namespace);
    }
}

fn api_resource(api: ReportApi) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(api.group, api.version, api.kind),
        api.plural,
    )
}

fn digest(report: &Value) -> u64 {
    let mut hasher = DefaultHasher::new();
    serde_json::to_string(report)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

/// Brings the report of `namespace` up to date. `Ok(false)` when the report API is gone.
async fn sync(ctx: &Context, api: ReportApi, namespace: &str) -> Result<bool, Error> {
    let workloads: Vec<SovereignWorkload> = ctx
        .workloads
        .state()
        .iter()
        .filter_map(|guard| guard.0.as_ref().ok())
        .filter(|w| w.namespace().as_deref() == Some(namespace))
        .map(|w| SovereignWorkload {
            // What Sovra wrote last, when the cache does not show it yet; compacted, as Sovra
            // remembers it (which unpacks the cache's conditions).
            status: ctx.memory.workload_statuses.newest(
                &w.uid().unwrap_or_default(),
                w.status
                    .clone()
                    .map(SovereignWorkloadStatus::compacted)
                    .as_ref(),
            ),
            ..w.clone()
        })
        .collect();
    let violations = ctx.memory.violations.in_namespace(namespace);
    let desired = namespace_report(
        ctx.reports.kind,
        namespace,
        &workloads,
        &violations,
        &ctx.snapshot().classes,
    );
    let wanted = desired.as_ref().map(digest);
    if ctx.reports.is_current(namespace, wanted) {
        return Ok(true);
    }
    let resource = api_resource(api);
    let reports: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), namespace, &resource);
    let found = reports.get_opt(REPORT_NAME).await?;
    let found_value = found
        .as_ref()
        .map(|f| serde_json::to_value(f).unwrap_or_default());
    match (&found_value, &desired) {
        (Some(report), _) if !is_sovra_report(report) => {
            if ctx.reports.conflict(namespace)
                && let Some(found) = &found
            {
                foreign_report(ctx, found, &resource, api, namespace).await;
            }
        }
        (Some(report), Some(desired)) if same_report(report, desired) => {}
        (Some(_), None) => match reports.delete(REPORT_NAME, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error.into()),
        },
        (None, None) => {}
        (_, Some(desired)) => {
            let params = PatchParams::apply(FIELD_MANAGER).force();
            match reports
                .patch(REPORT_NAME, &params, &Patch::Apply(desired))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => return Ok(false),
                Err(error) => return Err(error.into()),
            }
        }
    }
    if found_value.as_ref().is_none_or(is_sovra_report) {
        ctx.reports.no_conflict(namespace);
    }
    ctx.reports.written(namespace, wanted);
    Ok(true)
}

/// Says, once, that the report name is taken by a report that is not Sovra's.
async fn foreign_report(
    ctx: &Context,
    found: &DynamicObject,
    resource: &ApiResource,
    api: ReportApi,
    namespace: &str,
) {
    let note = format!(
        "{} {namespace}/{REPORT_NAME} is not Sovra's (no label app.kubernetes.io/managed-by=sovra); \
         Sovra leaves it alone and writes no report in this namespace until it is removed",
        api.kind
    );
    tracing::warn!(%namespace, kind = api.kind, "{note}");
    let event = Event {
        type_: EventType::Warning,
        reason: "ReportConflict".to_owned(),
        note: Some(note),
        action: "Report".to_owned(),
        secondary: None,
    };
    if let Err(error) = ctx
        .recorder
        .publish(&event, &found.object_ref(resource))
        .await
    {
        tracing::warn!(%error, "could not publish event");
    }
}
