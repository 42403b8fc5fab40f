//! The clusters and pools a world offers, judged once per class instead of once per workload.
//!
//! Rules 1 and 2 (every reason against a cluster or pool) read only the class, its name and
//! the workload's `requiredCountries`; a world holds thousands of workloads of a few classes.
//! So the verdicts, and the offer each cluster makes to a workload not yet placed on it, are
//! derived once per (class, requiredCountries) and world, and shared by every decision in it;
//! a decision itself only ranks, chooses and spreads (rule 4). A world change makes a new
//! [`Candidates`], so nothing derived from an old world is ever read again.

use super::cluster_option::Offer;
use super::decision::{ClusterFacts, Verdict, WorkloadRequest};
use super::evaluation::{EvaluatedCluster, evaluate_cluster};
use super::reason::Reason;
use crate::crd::SensitivityClassSpec;
use crate::sync::lock;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// Views kept per world. Workloads that each name their own `requiredCountries` could
/// otherwise grow the cache without bound; past this the oldest view is dropped (and derived
/// again when asked for), which costs time, never correctness.
const MAX_VIEWS: usize = 32;

/// The clusters of one world, sorted by name, with the class views derived from them so far.
#[derive(Debug, Default)]
pub struct Candidates {
    clusters: Vec<ClusterFacts>,
    views: Mutex<Vec<Arc<ClassView>>>,
}

/// Every cluster and pool judged for one class and one set of `requiredCountries`.
#[derive(Debug)]
pub(super) struct ClassView {
    class_name: String,
    class: SensitivityClassSpec,
    required_countries: Vec<String>,
    /// Parallel to [`Candidates::clusters`].
    pub(super) clusters: Vec<ClusterView>,
    /// The evidence every decision of this view carries, shared rather than copied.
    pub(super) verdicts: Arc<[Verdict]>,
    /// The union of every verdict's reasons, sorted: what a refusal lists.
    pub(super) reasons: Vec<Reason>,
}

#[derive(Debug)]
pub(super) struct ClusterView {
    pub(super) evaluated: EvaluatedCluster,
    /// What the cluster offers a workload that is not placed on it now.
    pub(super) offer: Option<Offer>,
}

impl Candidates {
    pub fn new(mut clusters: Vec<ClusterFacts>) -> Self {
        clusters.sort_by(|a, b| a.name.cmp(&b.name));
        // Names are unique in Kubernetes; should the input still repeat one (hand-written plan
        // manifests), the tie-break keeps the result independent of input order.
        if clusters
            .windows(2)
            .any(|w| matches!(w, [a, b] if a.name == b.name))
        {
            clusters.sort_by_cached_key(|c| (c.name.clone(), format!("{c:?}")));
            clusters.dedup_by(|a, b| a.name == b.name);
        }
        Self {
            clusters,
            views: Mutex::default(),
        }
    }

    /// The clusters, sorted by name, each name once.
    pub fn clusters(&self) -> &[ClusterFacts] {
        &self.clusters
    }

    /// The view for the request's class and countries, derived on first use.
    pub(super) fn view(&self, request: &WorkloadRequest<'_>) -> Arc<ClassView> {
        if let Some(view) = lock(&self.views).iter().find(|v| v.serves(request)) {
            return view.clone();
        }
        // Derived outside the lock, so decisions of other classes do not wait on it; two
        // callers deriving the same view at once derive the same thing.
        let view = Arc::new(ClassView::derive(request, &self.clusters));
        let mut views = lock(&self.views);
        if !views.iter().any(|v| v.serves(request)) {
            if views.len() >= MAX_VIEWS {
                views.remove(0);
            }
            views.push(view.clone());
        }
        view
    }
}

impl ClassView {
    fn serves(&self, request: &WorkloadRequest<'_>) -> bool {
        self.class_name == request.class_name
            && self.required_countries == request.preferences.required_countries
            && self.class == *request.class
    }

    fn derive(request: &WorkloadRequest<'_>, clusters: &[ClusterFacts]) -> Self {
        let class_name = request.class_name;
        let enforcement = request.class.enforcement;
        let mut verdicts = Vec::new();
        let mut views = Vec::with_capacity(clusters.len());
        for cluster in clusters {
            let evaluated = evaluate_cluster(request, cluster);
            let cluster_compliant = evaluated.cluster_reasons.is_empty();
            verdicts.push(Verdict {
                cluster: cluster.name.clone(),
                pool: None,
                compliant: cluster_compliant && evaluated.pools.iter().any(|(_, r)| r.is_empty()),
                reasons: evaluated.cluster_reasons.clone(),
            });
            for (index, reasons) in &evaluated.pools {
                verdicts.push(Verdict {
                    cluster: cluster.name.clone(),
                    pool: cluster.pools.get(*index).map(|p| p.name.clone()),
                    compliant: cluster_compliant && reasons.is_empty(),
                    reasons: reasons.clone(),
                });
            }
            let offer = evaluated.offer(cluster, class_name, enforcement, None, false);
            views.push(ClusterView { evaluated, offer });
        }
        let reasons: BTreeSet<&Reason> = verdicts.iter().flat_map(|v| &v.reasons).collect();
        let reasons = reasons.into_iter().cloned().collect();
        Self {
            class_name: class_name.to_owned(),
            class: request.class.clone(),
            required_countries: request.preferences.required_countries.clone(),
            clusters: views,
            verdicts: verdicts.into(),
            reasons,
        }
    }
}
