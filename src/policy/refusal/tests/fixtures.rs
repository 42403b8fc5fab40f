//! Builders for the refusal tests: clusters and pools, and a case (class, workload request,
//! fleet) decided by the engine.

use crate::crd::Certification::{self, Bio};
use crate::crd::{
    ClusterConnection, OperatedBy, PlacementPreferences, Provider, SensitivityClassSpec,
    SovereignClusterSpec,
};
use crate::policy::refusal::{RefusalSummary, refusal_summary};
use crate::policy::{
    ClusterFacts, CurrentPlacement, Decision, NodePool, Outcome, Reachability, WorkloadRequest,
    decide,
};

/// A reachable cluster of an NL provider without exposure, operated by an EU provider,
/// holding BIO, with one sovereign pool `general`.
pub(super) fn cluster(name: &str, country: &str) -> ClusterFacts {
    ClusterFacts {
        name: name.to_owned(),
        spec: SovereignClusterSpec {
            country: country.to_owned(),
            region: None,
            provider: Provider {
                name: "Rijkscloud".to_owned(),
                headquarters_country: "NL".to_owned(),
                extraterritorial_exposure: false,
                parent: None,
            },
            operated_by: OperatedBy::EuProvider,
            certifications: vec![Bio],
            connection: ClusterConnection {
                local: false,
                kubeconfig_secret_ref: None,
            },
        },
        reachability: Reachability::Reachable,
        pools: vec![pool("general")],
    }
}

pub(super) fn pool(name: &str) -> NodePool {
    NodePool {
        name: name.to_owned(),
        nodes: 3,
        sovereign_nodes: 3,
        ..NodePool::default()
    }
}

pub(super) fn provider(
    mut cluster: ClusterFacts,
    name: &str,
    hq: &str,
    exposed: bool,
) -> ClusterFacts {
    cluster.spec.provider = Provider {
        name: name.to_owned(),
        headquarters_country: hq.to_owned(),
        extraterritorial_exposure: exposed,
        parent: None,
    };
    cluster
}

pub(super) fn certs(mut cluster: ClusterFacts, certs: &[Certification]) -> ClusterFacts {
    cluster.spec.certifications = certs.to_vec();
    cluster
}

pub(super) fn pools(mut cluster: ClusterFacts, pools: Vec<NodePool>) -> ClusterFacts {
    cluster.pools = pools;
    cluster
}

pub(super) fn unreachable(mut cluster: ClusterFacts, detail: &str) -> ClusterFacts {
    cluster.reachability = Reachability::Unreachable(detail.to_owned());
    cluster
}

pub(super) fn not_sovereign(name: &str) -> NodePool {
    NodePool {
        sovereign_nodes: 0,
        ..pool(name)
    }
}

pub(super) fn dedicated(name: &str, class: &str) -> NodePool {
    NodePool {
        dedicated_to: Some(class.to_owned()),
        ..pool(name)
    }
}

/// A workload of a class (by default `internal`: EU/EEA, no exposure, nothing else) and the
/// fleet it is decided against.
pub(super) struct Case {
    class: SensitivityClassSpec,
    class_name: &'static str,
    pub(super) preferences: PlacementPreferences,
    current: Vec<CurrentPlacement>,
    pub(super) clusters: Vec<ClusterFacts>,
}

pub(super) fn case(clusters: Vec<ClusterFacts>) -> Case {
    Case {
        class: SensitivityClassSpec::default(),
        class_name: "internal",
        preferences: PlacementPreferences::default(),
        current: Vec::new(),
        clusters,
    }
}

impl Case {
    pub(super) fn class(mut self, change: impl FnOnce(&mut SensitivityClassSpec)) -> Self {
        change(&mut self.class);
        self
    }

    pub(super) fn named(mut self, class_name: &'static str) -> Self {
        self.class_name = class_name;
        self
    }

    pub(super) fn required(mut self, countries: &[&str]) -> Self {
        self.preferences.required_countries = countries.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    pub(super) fn spread(mut self, clusters: i32) -> Self {
        self.preferences.clusters = clusters;
        self
    }

    pub(super) fn current(mut self, cluster: &str) -> Self {
        self.current.push(CurrentPlacement {
            cluster: cluster.to_owned(),
            pools: vec!["general".to_owned()],
        });
        self
    }

    pub(super) fn decision(&self) -> Decision {
        decide(
            &WorkloadRequest {
                class_name: self.class_name,
                class: &self.class,
                preferences: &self.preferences,
                replicas: 2,
                current: &self.current,
            },
            &self.clusters,
        )
    }

    pub(super) fn summary(&self) -> RefusalSummary {
        let decision = self.decision();
        assert!(
            matches!(decision.outcome, Outcome::Refused(_)),
            "not refused: {decision:?}"
        );
        refusal_summary(&decision, &self.clusters, &self.preferences).unwrap()
    }
}

pub(super) fn hubs() -> Vec<ClusterFacts> {
    vec![cluster("hub-nl", "NL"), cluster("hub-de", "DE")]
}
