//! Prometheus metrics. Labels are low-cardinality: controller, class, reason code, error kind,
//! cluster name (bounded by the number of SovereignClusters).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;

type Labels = Vec<(&'static str, String)>;

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub reconciliations: Family<Labels, Counter>,
    pub reconcile_errors: Family<Labels, Counter>,
    pub reconcile_duration: Family<Labels, Histogram>,
    pub placements: Family<Labels, Counter>,
    pub refusals: Family<Labels, Counter>,
    pub violations: Family<Labels, Counter>,
    pub cluster_reachable: Family<Labels, Gauge>,
    /// Reconciles running right now: how much of the controller's queue is being worked on.
    pub reconciles_in_flight: Family<Labels, Gauge>,
    /// Placed workloads with no compliant alternative of another provider, by class.
    pub workloads_stranded: Family<Labels, Gauge>,
    /// Placed workloads per provider (by parent) and class: concentration at a glance.
    pub provider_placements: Family<Labels, Gauge>,
    /// Audit checkpoints published, by target (configmap, event, witness) and result.
    pub checkpoint_publications: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sovra");
        let reconciliations = Family::<Labels, Counter>::default();
        let reconcile_errors = Family::<Labels, Counter>::default();
        let reconcile_duration = Family::<Labels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.001, 2.0, 14))) as fn() -> Histogram,
        );
        let placements = Family::<Labels, Counter>::default();
        let refusals = Family::<Labels, Counter>::default();
        let violations = Family::<Labels, Counter>::default();
        let cluster_reachable = Family::<Labels, Gauge>::default();
        let reconciles_in_flight = Family::<Labels, Gauge>::default();
        let workloads_stranded = Family::<Labels, Gauge>::default();
        let provider_placements = Family::<Labels, Gauge>::default();
        let checkpoint_publications = Family::<Labels, Counter>::default();
        registry.register(
            "reconciliations",
            "Reconciles run, by controller",
            reconciliations.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by controller and error",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            reconcile_duration.clone(),
        );
        registry.register(
            "placements",
            "Workloads placed or moved, by class",
            placements.clone(),
        );
        registry.register(
            "refusals",
            "Placements refused, by class and deciding reason",
            refusals.clone(),
        );
        registry.register(
            "policy_violations",
            "Policy violations detected, by class",
            violations.clone(),
        );
        registry.register(
            "cluster_reachable",
            "1 when a SovereignCluster answers, else 0",
            cluster_reachable.clone(),
        );
        registry.register(
            "reconciles_in_flight",
            "Reconciles currently running, by controller",
            reconciles_in_flight.clone(),
        );
        registry.register(
            "workloads_stranded",
            "Placed workloads without a compliant cluster of another provider, by class",
            workloads_stranded.clone(),
        );
        registry.register(
            "provider_placements",
            "Placed workloads per provider (its parent, when it has one) and class",
            provider_placements.clone(),
        );
        registry.register(
            "audit_checkpoint_publications",
            "Signed audit checkpoints published, by target (configmap, event, witness) and result (ok, failed)",
            checkpoint_publications.clone(),
        );
        Self {
            registry: Arc::new(registry),
            reconciliations,
            reconcile_errors,
            reconcile_duration,
            placements,
            refusals,
            violations,
            cluster_reachable,
            reconciles_in_flight,
            workloads_stranded,
            provider_placements,
            checkpoint_publications,
        }
    }
}

impl Metrics {
    /// The text exposition format served on `/metrics`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

pub fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}
