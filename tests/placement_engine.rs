//! The placement engine through the library's public API.
//!
//! - fixtures: builders for clusters, node pools and workloads, the four default classes
//!   (public, internal, confidential, secret) and five typical kinds of cluster;
//! - a class x cluster table: which class may run where, with the exact reasons;
//! - targeted tests of refusal, stability, enforcement modes, reachability, spreading,
//!   country preferences, node pools and `node_pools()`;
//! - property tests of the platform invariants over arbitrary worlds.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use proptest::prelude::*;
use sovra::crd::Certification::{Bio, C5, EucsHigh, EucsSubstantial, Haven, Iso27001, SecNumCloud};
use sovra::crd::Jurisdiction::{Eea, Eu, ThirdCountry};
use sovra::crd::OperatedBy::{EuProvider, Government, ThirdCountryProvider};
use sovra::crd::{
    Certification, CertificationRequirements, ClusterConnection, ContinuityRequirements,
    Enforcement, LocationRequirements, NodePoolRequirements, OperatedBy, PlacementPreferences,
    Provider, ProviderParent, ProviderRequirements, SensitivityClassSpec, SovereignClusterSpec,
};
use sovra::policy::{
    Candidates, ClusterFacts, CurrentPlacement, DEDICATED_TAINT_KEY, DEFAULT_NODE_POOL_LABEL,
    Decision, EEA_COUNTRIES, EU_COUNTRIES, NODE_COUNTRY_LABEL, NodeFacts, NodePool, Outcome,
    Reachability, Reason, SOVEREIGN_NODE_LABEL, Severity, Taint, Target, Verdict, WorkloadRequest,
    decide, jurisdiction_of, node_pools,
};
use std::collections::{BTreeMap, BTreeSet};

// ---------------------------------------------------------------------------------------------
// Fixtures: clusters and node pools
// ---------------------------------------------------------------------------------------------

/// Builds a `ClusterFacts`. Defaults: a reachable cluster in NL of an NL provider without
/// extraterritorial exposure, operated by an EU provider, no certifications, no pools.
#[derive(Clone, Debug)]
struct ClusterBuilder(ClusterFacts);

fn cluster(name: &str) -> ClusterBuilder {
    ClusterBuilder(ClusterFacts {
        name: name.to_owned(),
        spec: SovereignClusterSpec {
            country: "NL".to_owned(),
            region: None,
            provider: Provider {
                name: "Provider".to_owned(),
                headquarters_country: "NL".to_owned(),
                extraterritorial_exposure: false,
                parent: None,
            },
            operated_by: EuProvider,
            certifications: Vec::new(),
            connection: ClusterConnection {
                local: true,
                kubeconfig_secret_ref: None,
            },
        },
        reachability: Reachability::Reachable,
        pools: Vec::new(),
    })
}

impl ClusterBuilder {
    fn country(mut self, country: &str) -> Self {
        country.clone_into(&mut self.0.spec.country);
        self
    }

    fn region(mut self, region: &str) -> Self {
        self.0.spec.region = Some(region.to_owned());
        self
    }

    fn provider(mut self, name: &str, headquarters: &str, extraterritorial_exposure: bool) -> Self {
        self.0.spec.provider = Provider {
            name: name.to_owned(),
            headquarters_country: headquarters.to_owned(),
            extraterritorial_exposure,
            parent: None,
        };
        self
    }

    /// The group that ultimately controls this cluster's provider.
    fn parent(mut self, name: &str, headquarters: &str, extraterritorial_exposure: bool) -> Self {
        self.0.spec.provider.parent = Some(ProviderParent {
            name: name.to_owned(),
            headquarters_country: headquarters.to_owned(),
            extraterritorial_exposure,
        });
        self
    }

    fn operated_by(mut self, operator: OperatedBy) -> Self {
        self.0.spec.operated_by = operator;
        self
    }

    fn certs(mut self, certs: impl IntoIterator<Item = Certification>) -> Self {
        self.0.spec.certifications = certs.into_iter().collect();
        self
    }

    fn pool(mut self, pool: PoolBuilder) -> Self {
        self.0.pools.push(pool.0);
        self
    }

    fn without_pools(mut self) -> Self {
        self.0.pools.clear();
        self
    }

    fn unreachable(mut self, detail: &str) -> Self {
        self.0.reachability = Reachability::Unreachable(detail.to_owned());
        self
    }

    fn named(mut self, name: &str) -> Self {
        name.clone_into(&mut self.0.name);
        self
    }
}

impl From<ClusterBuilder> for ClusterFacts {
    fn from(builder: ClusterBuilder) -> Self {
        builder.0
    }
}

/// Builds a `NodePool`; a new pool has no nodes at all.
#[derive(Clone, Debug)]
struct PoolBuilder(NodePool);

fn pool(name: &str) -> PoolBuilder {
    PoolBuilder(NodePool {
        name: name.to_owned(),
        ..NodePool::default()
    })
}

impl PoolBuilder {
    /// Nodes carrying the administrator-set sovereign label.
    fn sovereign_nodes(mut self, n: i32) -> Self {
        self.0.sovereign_nodes += n;
        self.0.nodes += n;
        self
    }

    /// Nodes without the sovereign label (never placement targets).
    fn other_nodes(mut self, n: i32) -> Self {
        self.0.nodes += n;
        self
    }

    fn dedicated_to(mut self, class: &str) -> Self {
        self.0.dedicated_to = Some(class.to_owned());
        self
    }

    /// Every sovereign node carries `sovra.dev/country=<country>`.
    fn located_in(mut self, country: &str) -> Self {
        self.0.country = Some(country.to_owned());
        self
    }

    fn nodes_disagree_on_country(mut self) -> Self {
        self.0.country = None;
        self.0.country_conflict = true;
        self
    }
}

// The five kinds of cluster of the table.
const GOV_NL: &str = "gov-nl";
const SECNUM_FR: &str = "secnum-fr";
const HYPERSCALER_DE: &str = "hyperscaler-de";
const US_EAST: &str = "us-east";
const NORDIC_NO: &str = "nordic-no";

/// A Dutch government cloud: government-operated, BIO + EUCS-High + Haven, a pool dedicated
/// to every class.
fn gov_nl() -> ClusterBuilder {
    cluster(GOV_NL)
        .country("NL")
        .region("eu-west")
        .provider("Rijkscloud", "NL", false)
        .operated_by(Government)
        .certs([Bio, EucsHigh, Haven])
        .pool(pool("public").sovereign_nodes(3).dedicated_to("public"))
        .pool(pool("internal").sovereign_nodes(3).dedicated_to("internal"))
        .pool(
            pool("confidential")
                .sovereign_nodes(3)
                .dedicated_to("confidential"),
        )
        .pool(pool("secret").sovereign_nodes(3).dedicated_to("secret"))
}

/// A French SecNumCloud-qualified provider: EU provider, no extraterritorial exposure, but no
/// Dutch BIO baseline. A general sovereign pool and one dedicated to `confidential`.
fn secnum_fr() -> ClusterBuilder {
    cluster(SECNUM_FR)
        .country("FR")
        .region("eu-west")
        .provider("Souverain Cloud", "FR", false)
        .operated_by(EuProvider)
        .certs([SecNumCloud, Iso27001])
        .pool(pool("general").sovereign_nodes(4))
        .pool(
            pool("restricted")
                .sovereign_nodes(2)
                .dedicated_to("confidential"),
        )
}

/// The EU region (Germany) of a US hyperscaler: subject to the US CLOUD Act, C5 + ISO27001.
fn hyperscaler_de() -> ClusterBuilder {
    cluster(HYPERSCALER_DE)
        .country("DE")
        .region("eu-central")
        .provider("Hyperscaler", "US", true)
        .operated_by(ThirdCountryProvider)
        .certs([C5, Iso27001])
        .pool(pool("general").sovereign_nodes(6))
}

/// A cluster in the United States.
fn us_east() -> ClusterBuilder {
    cluster(US_EAST)
        .country("US")
        .region("us-east")
        .provider("Hyperscaler", "US", true)
        .operated_by(ThirdCountryProvider)
        .certs([Iso27001, C5])
        .pool(pool("general").sovereign_nodes(6))
}

/// A Norwegian (EEA, not EU) provider.
fn nordic_no() -> ClusterBuilder {
    cluster(NORDIC_NO)
        .country("NO")
        .region("eu-north")
        .provider("Nordic Cloud", "NO", false)
        .operated_by(EuProvider)
        .certs([Iso27001, EucsSubstantial])
        .pool(pool("general").sovereign_nodes(3))
}

// ---------------------------------------------------------------------------------------------
// Fixtures: the default classes
// ---------------------------------------------------------------------------------------------

/// `public`: any EU/EEA country; any provider, exposure allowed; any sovereign pool.
fn public() -> SensitivityClassSpec {
    SensitivityClassSpec {
        description: Some("openbaar; BBN1".to_owned()),
        enforcement: Enforcement::Enforce,
        location: LocationRequirements {
            jurisdictions: vec![Eu, Eea],
            countries: None,
        },
        provider: ProviderRequirements {
            headquarters_jurisdictions: Vec::new(),
            extraterritorial_exposure_allowed: true,
            operated_by: Vec::new(),
        },
        certifications: CertificationRequirements::default(),
        node_pool: NodePoolRequirements { dedicated: false },
        continuity: ContinuityRequirements::default(),
    }
}

/// `internal`: as public, plus the provider is headquartered in the EU/EEA.
fn internal() -> SensitivityClassSpec {
    let mut class = public();
    class.description = Some("intern gebruik; BBN1/BBN2".to_owned());
    class.provider.headquarters_jurisdictions = vec![Eu, Eea];
    class
}

/// `confidential`: as internal, plus no extraterritorial exposure, BIO and one of
/// EUCS-High/SecNumCloud/C5, and a pool dedicated to the class.
fn confidential() -> SensitivityClassSpec {
    let mut class = internal();
    class.description = Some("Departementaal Vertrouwelijk; BBN2/BBN3".to_owned());
    class.provider.extraterritorial_exposure_allowed = false;
    class.certifications = CertificationRequirements {
        all_of: vec![Bio],
        any_of: vec![EucsHigh, SecNumCloud, C5],
    };
    class.node_pool.dedicated = true;
    class
}

/// `secret`: as confidential, plus only NL and only government-operated clusters.
fn secret() -> SensitivityClassSpec {
    let mut class = confidential();
    class.description = Some("Staatsgeheim Confidentieel and above".to_owned());
    class.location.countries = Some(vec!["NL".to_owned()]);
    class.provider.operated_by = vec![Government];
    class
}

fn default_class(name: &str) -> SensitivityClassSpec {
    match name {
        "public" => public(),
        "internal" => internal(),
        "confidential" => confidential(),
        "secret" => secret(),
        other => panic!("no default class {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures: workloads
// ---------------------------------------------------------------------------------------------

/// A workload of a class with its placement preferences and current placement.
#[derive(Clone, Debug)]
struct Workload {
    class_name: String,
    class: SensitivityClassSpec,
    preferences: PlacementPreferences,
    replicas: i32,
    current: Vec<CurrentPlacement>,
}

/// A workload of one of the default classes, one replica, no preferences, not yet placed.
fn workload(class_name: &str) -> Workload {
    Workload::of_class(class_name, default_class(class_name))
}

impl Workload {
    fn of_class(class_name: &str, class: SensitivityClassSpec) -> Self {
        Self {
            class_name: class_name.to_owned(),
            class,
            preferences: PlacementPreferences::default(),
            replicas: 1,
            current: Vec::new(),
        }
    }

    fn audit(mut self) -> Self {
        self.class.enforcement = Enforcement::Audit;
        self
    }

    fn replicas(mut self, replicas: i32) -> Self {
        self.replicas = replicas;
        self
    }

    fn clusters(mut self, clusters: i32) -> Self {
        self.preferences.clusters = clusters;
        self
    }

    fn failover(mut self) -> Self {
        self.preferences.failover = true;
        self
    }

    fn requiring<const N: usize>(mut self, countries: [&str; N]) -> Self {
        self.preferences.required_countries = countries.map(str::to_owned).to_vec();
        self
    }

    fn preferring<const N: usize>(mut self, countries: [&str; N]) -> Self {
        self.preferences.preferred_countries = countries.map(str::to_owned).to_vec();
        self
    }

    fn currently_on<const N: usize>(mut self, cluster: &str, pools: [&str; N]) -> Self {
        self.current.push(CurrentPlacement {
            cluster: cluster.to_owned(),
            pools: pools.map(str::to_owned).to_vec(),
        });
        self
    }

    fn request(&self) -> WorkloadRequest<'_> {
        WorkloadRequest {
            class_name: &self.class_name,
            class: &self.class,
            preferences: &self.preferences,
            replicas: self.replicas,
            current: &self.current,
        }
    }

    fn decide<I>(&self, clusters: I) -> Decision
    where
        I: IntoIterator,
        I::Item: Into<ClusterFacts>,
    {
        let clusters: Vec<ClusterFacts> = clusters.into_iter().map(Into::into).collect();
        decide(&self.request(), &clusters)
    }
}

// ---------------------------------------------------------------------------------------------
// Reasons, by name
// ---------------------------------------------------------------------------------------------

fn outside_eu_eea(country: &str) -> Reason {
    Reason::OutsideEuEea {
        country: country.to_owned(),
    }
}

fn unreachable(detail: &str) -> Reason {
    Reason::ClusterUnreachable {
        detail: detail.to_owned(),
    }
}

fn dedicated_to_other(class: &str) -> Reason {
    Reason::PoolDedicatedToOtherClass {
        class: class.to_owned(),
    }
}

fn not_dedicated(class: &str) -> Reason {
    Reason::PoolNotDedicated {
        class: class.to_owned(),
    }
}

fn not_requested(country: &str) -> Reason {
    Reason::CountryNotRequested {
        country: country.to_owned(),
    }
}

fn jurisdiction_not_allowed(country: &str) -> Reason {
    Reason::JurisdictionNotAllowed {
        country: country.to_owned(),
        jurisdiction: jurisdiction_of(country),
    }
}

fn country_not_allowed(country: &str, allowed: &[&str]) -> Reason {
    Reason::CountryNotAllowed {
        country: country.to_owned(),
        allowed: allowed.iter().map(|c| (*c).to_owned()).collect(),
    }
}

fn headquarters_not_allowed(provider: &str, country: &str) -> Reason {
    Reason::ProviderHeadquartersNotAllowed {
        provider: provider.to_owned(),
        country: country.to_owned(),
        jurisdiction: jurisdiction_of(country),
    }
}

fn extraterritorial(provider: &str) -> Reason {
    Reason::ExtraterritorialExposure {
        provider: provider.to_owned(),
    }
}

fn operator_not_allowed(operated_by: OperatedBy) -> Reason {
    Reason::OperatorNotAllowed { operated_by }
}

fn missing(certs: &[Certification]) -> Reason {
    Reason::MissingCertifications {
        missing: certs.to_vec(),
    }
}

/// The default confidential/secret any-of list, as the engine reports it (sorted).
fn none_of_eucs_high_secnumcloud_c5() -> Reason {
    Reason::NoneOfCertifications {
        any_of: vec![EucsHigh, SecNumCloud, C5],
    }
}

fn not_enough_clusters(wanted: i32, found: i32) -> Reason {
    Reason::NotEnoughClusters { wanted, found }
}

// ---------------------------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------------------------

fn sorted(reasons: impl IntoIterator<Item = Reason>) -> Vec<Reason> {
    reasons
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn verdict<'d>(decision: &'d Decision, cluster: &str, pool: Option<&str>) -> &'d Verdict {
    decision
        .verdicts
        .iter()
        .find(|v| v.cluster == cluster && v.pool.as_deref() == pool)
        .unwrap_or_else(|| panic!("no verdict for {cluster}/{pool:?} in {decision:#?}"))
}

fn cluster_reasons(decision: &Decision, cluster: &str) -> Vec<Reason> {
    verdict(decision, cluster, None).reasons.clone()
}

fn pool_reasons(decision: &Decision, cluster: &str, pool: &str) -> Vec<Reason> {
    verdict(decision, cluster, Some(pool)).reasons.clone()
}

#[track_caller]
fn refusal(decision: &Decision) -> Vec<Reason> {
    match &decision.outcome {
        Outcome::Refused(reasons) => reasons.clone(),
        Outcome::Placed(targets) => panic!("expected a refusal, got placed on {targets:#?}"),
    }
}

#[track_caller]
fn targets(decision: &Decision) -> Vec<Target> {
    match &decision.outcome {
        Outcome::Placed(targets) => targets.clone(),
        Outcome::Refused(reasons) => panic!("expected a placement, got refused: {reasons:#?}"),
    }
}

/// The single target of a decision, asserted to be on `cluster` with exactly `pools`.
#[track_caller]
fn placed_on(decision: &Decision, cluster: &str, pools: &[&str]) -> Target {
    let targets = targets(decision);
    assert_eq!(targets.len(), 1, "{targets:#?}");
    let target = targets[0].clone();
    assert_eq!(target.cluster, cluster, "{decision:#?}");
    assert_eq!(target.pools, pools, "{decision:#?}");
    target
}

fn placement_summary(decision: &Decision) -> Vec<(String, Vec<String>, i32)> {
    decision
        .targets()
        .iter()
        .map(|t| (t.cluster.clone(), t.pools.clone(), t.replicas))
        .collect()
}

fn s(items: &[&str]) -> Vec<String> {
    items.iter().map(|i| (*i).to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------
// The table: each default class on each kind of cluster
// ---------------------------------------------------------------------------------------------

#[test]
fn public_workload_is_placed_on_the_public_pool_of_a_dutch_government_cloud() {
    let decision = workload("public").decide([gov_nl()]);
    let target = placed_on(&decision, GOV_NL, &["public"]);
    assert_eq!(target.country, "NL");
    assert_eq!(target.dedicated_to.as_deref(), Some("public"));
    assert!(target.violations.is_empty());
    assert!(target.reachable);
    assert_eq!(cluster_reasons(&decision, GOV_NL), []);
    assert_eq!(pool_reasons(&decision, GOV_NL, "public"), []);
    for other in ["internal", "confidential", "secret"] {
        assert_eq!(
            pool_reasons(&decision, GOV_NL, other),
            [dedicated_to_other(other)]
        );
        assert!(!verdict(&decision, GOV_NL, Some(other)).compliant);
    }
}

#[test]
fn public_workload_is_placed_on_the_general_pool_of_a_french_secnumcloud_provider() {
    let decision = workload("public").decide([secnum_fr()]);
    let target = placed_on(&decision, SECNUM_FR, &["general"]);
    assert_eq!(target.dedicated_to, None);
    assert_eq!(
        pool_reasons(&decision, SECNUM_FR, "restricted"),
        [dedicated_to_other("confidential")]
    );
}

#[test]
fn public_workload_is_placed_on_a_us_hyperscaler_eu_region() {
    let decision = workload("public").decide([hyperscaler_de()]);
    let target = placed_on(&decision, HYPERSCALER_DE, &["general"]);
    assert_eq!(target.country, "DE");
    assert_eq!(cluster_reasons(&decision, HYPERSCALER_DE), []);
}

#[test]
fn public_workload_is_refused_on_a_us_cluster_for_being_outside_the_eu_eea() {
    let decision = workload("public").decide([us_east()]);
    assert_eq!(refusal(&decision), [outside_eu_eea("US")]);
    assert_eq!(cluster_reasons(&decision, US_EAST), [outside_eu_eea("US")]);
    assert_eq!(pool_reasons(&decision, US_EAST, "general"), []);
    assert!(!verdict(&decision, US_EAST, Some("general")).compliant);
}

#[test]
fn public_workload_is_placed_on_an_eea_cluster_in_norway() {
    let decision = workload("public").decide([nordic_no()]);
    let target = placed_on(&decision, NORDIC_NO, &["general"]);
    assert_eq!(target.country, "NO");
}

#[test]
fn internal_workload_is_placed_on_the_internal_pool_of_a_dutch_government_cloud() {
    let decision = workload("internal").decide([gov_nl()]);
    let target = placed_on(&decision, GOV_NL, &["internal"]);
    assert_eq!(target.dedicated_to.as_deref(), Some("internal"));
    assert_eq!(
        pool_reasons(&decision, GOV_NL, "public"),
        [dedicated_to_other("public")]
    );
}

#[test]
fn internal_workload_is_placed_on_a_french_secnumcloud_provider() {
    let decision = workload("internal").decide([secnum_fr()]);
    placed_on(&decision, SECNUM_FR, &["general"]);
}

#[test]
fn internal_workload_is_refused_on_a_us_hyperscaler_eu_region_for_its_us_headquarters() {
    let decision = workload("internal").decide([hyperscaler_de()]);
    let expected = [headquarters_not_allowed("Hyperscaler", "US")];
    assert_eq!(cluster_reasons(&decision, HYPERSCALER_DE), expected);
    assert_eq!(pool_reasons(&decision, HYPERSCALER_DE, "general"), []);
    assert_eq!(refusal(&decision), expected);
    assert_eq!(
        expected[0],
        Reason::ProviderHeadquartersNotAllowed {
            provider: "Hyperscaler".into(),
            country: "US".into(),
            jurisdiction: ThirdCountry,
        }
    );
}

#[test]
fn internal_workload_is_refused_on_a_us_cluster_for_location_and_headquarters() {
    let decision = workload("internal").decide([us_east()]);
    let expected = sorted([
        outside_eu_eea("US"),
        headquarters_not_allowed("Hyperscaler", "US"),
    ]);
    assert_eq!(cluster_reasons(&decision, US_EAST), expected);
    assert_eq!(refusal(&decision), expected);
}

#[test]
fn internal_workload_is_placed_on_an_eea_cluster_with_an_eea_headquartered_provider() {
    let decision = workload("internal").decide([nordic_no()]);
    placed_on(&decision, NORDIC_NO, &["general"]);
}

#[test]
fn confidential_workload_is_placed_on_the_dedicated_pool_of_a_dutch_government_cloud() {
    let decision = workload("confidential").decide([gov_nl()]);
    let target = placed_on(&decision, GOV_NL, &["confidential"]);
    assert_eq!(target.dedicated_to.as_deref(), Some("confidential"));
    assert!(target.violations.is_empty());
    assert!(verdict(&decision, GOV_NL, None).compliant);
    assert!(verdict(&decision, GOV_NL, Some("confidential")).compliant);
}

#[test]
fn confidential_workload_is_refused_on_a_french_secnumcloud_provider_without_bio() {
    let decision = workload("confidential").decide([secnum_fr()]);
    assert_eq!(cluster_reasons(&decision, SECNUM_FR), [missing(&[Bio])]);
    assert_eq!(
        pool_reasons(&decision, SECNUM_FR, "general"),
        [not_dedicated("confidential")]
    );
    // The pool itself is fine, but a pool is only compliant together with its cluster.
    let restricted = verdict(&decision, SECNUM_FR, Some("restricted"));
    assert_eq!(restricted.reasons, []);
    assert!(!restricted.compliant);
    assert_eq!(
        refusal(&decision),
        sorted([missing(&[Bio]), not_dedicated("confidential")])
    );
}

#[test]
fn confidential_workload_is_refused_on_a_us_hyperscaler_eu_region_for_extraterritorial_exposure() {
    let decision = workload("confidential").decide([hyperscaler_de()]);
    let expected_cluster = sorted([
        headquarters_not_allowed("Hyperscaler", "US"),
        extraterritorial("Hyperscaler"),
        missing(&[Bio]),
    ]);
    assert_eq!(cluster_reasons(&decision, HYPERSCALER_DE), expected_cluster);
    assert_eq!(
        pool_reasons(&decision, HYPERSCALER_DE, "general"),
        [not_dedicated("confidential")]
    );
    let mut all = expected_cluster;
    all.push(not_dedicated("confidential"));
    assert_eq!(refusal(&decision), sorted(all));
}

#[test]
fn confidential_workload_is_refused_on_a_us_cluster_for_every_failing_requirement() {
    let decision = workload("confidential").decide([us_east()]);
    assert_eq!(
        cluster_reasons(&decision, US_EAST),
        sorted([
            outside_eu_eea("US"),
            headquarters_not_allowed("Hyperscaler", "US"),
            extraterritorial("Hyperscaler"),
            missing(&[Bio]),
        ])
    );
    assert_eq!(
        pool_reasons(&decision, US_EAST, "general"),
        [not_dedicated("confidential")]
    );
}

#[test]
fn confidential_workload_is_refused_on_an_eea_cluster_without_bio_or_a_high_certification() {
    let decision = workload("confidential").decide([nordic_no()]);
    assert_eq!(
        cluster_reasons(&decision, NORDIC_NO),
        sorted([missing(&[Bio]), none_of_eucs_high_secnumcloud_c5()])
    );
    assert_eq!(
        pool_reasons(&decision, NORDIC_NO, "general"),
        [not_dedicated("confidential")]
    );
}

#[test]
fn secret_workload_is_placed_on_the_secret_pool_of_a_dutch_government_cloud() {
    let decision = workload("secret").replicas(3).decide([gov_nl()]);
    let target = placed_on(&decision, GOV_NL, &["secret"]);
    assert_eq!(target.replicas, 3);
    assert_eq!(target.dedicated_to.as_deref(), Some("secret"));
    assert!(target.violations.is_empty());
    assert_eq!(
        pool_reasons(&decision, GOV_NL, "confidential"),
        [dedicated_to_other("confidential")]
    );
}

#[test]
fn secret_workload_is_refused_on_a_french_secnumcloud_provider_for_country_and_operator() {
    let decision = workload("secret").decide([secnum_fr()]);
    assert_eq!(
        cluster_reasons(&decision, SECNUM_FR),
        sorted([
            country_not_allowed("FR", &["NL"]),
            operator_not_allowed(EuProvider),
            missing(&[Bio]),
        ])
    );
    assert_eq!(
        pool_reasons(&decision, SECNUM_FR, "general"),
        [not_dedicated("secret")]
    );
    assert_eq!(
        pool_reasons(&decision, SECNUM_FR, "restricted"),
        [dedicated_to_other("confidential")]
    );
}

#[test]
fn secret_workload_is_refused_on_a_us_hyperscaler_eu_region_for_extraterritorial_exposure() {
    let decision = workload("secret").decide([hyperscaler_de()]);
    let expected_cluster = sorted([
        country_not_allowed("DE", &["NL"]),
        headquarters_not_allowed("Hyperscaler", "US"),
        extraterritorial("Hyperscaler"),
        operator_not_allowed(ThirdCountryProvider),
        missing(&[Bio]),
    ]);
    assert_eq!(cluster_reasons(&decision, HYPERSCALER_DE), expected_cluster);
    assert_eq!(
        pool_reasons(&decision, HYPERSCALER_DE, "general"),
        [not_dedicated("secret")]
    );
    let mut all = expected_cluster;
    all.push(not_dedicated("secret"));
    assert_eq!(refusal(&decision), sorted(all));
}

#[test]
fn secret_workload_is_refused_on_a_us_cluster_for_every_failing_requirement() {
    let decision = workload("secret").decide([us_east()]);
    assert_eq!(
        cluster_reasons(&decision, US_EAST),
        sorted([
            outside_eu_eea("US"),
            country_not_allowed("US", &["NL"]),
            headquarters_not_allowed("Hyperscaler", "US"),
            extraterritorial("Hyperscaler"),
            operator_not_allowed(ThirdCountryProvider),
            missing(&[Bio]),
        ])
    );
}

#[test]
fn secret_workload_is_refused_on_an_eea_cluster_for_country_operator_and_certifications() {
    let decision = workload("secret").decide([nordic_no()]);
    assert_eq!(
        cluster_reasons(&decision, NORDIC_NO),
        sorted([
            country_not_allowed("NO", &["NL"]),
            operator_not_allowed(EuProvider),
            missing(&[Bio]),
            none_of_eucs_high_secnumcloud_c5(),
        ])
    );
    assert_eq!(
        pool_reasons(&decision, NORDIC_NO, "general"),
        [not_dedicated("secret")]
    );
}

/// The whole table at once: for each class and kind of cluster, where (if anywhere) it lands.
#[test]
fn each_default_class_lands_exactly_where_the_table_says() {
    type Kind = (&'static str, fn() -> ClusterBuilder);
    let kinds: [Kind; 5] = [
        (GOV_NL, gov_nl),
        (SECNUM_FR, secnum_fr),
        (HYPERSCALER_DE, hyperscaler_de),
        (US_EAST, us_east),
        (NORDIC_NO, nordic_no),
    ];
    // Pool the class lands on per kind (same order as `kinds`), or None for a refusal.
    let table: [(&str, [Option<&str>; 5]); 4] = [
        (
            "public",
            [
                Some("public"),
                Some("general"),
                Some("general"),
                None,
                Some("general"),
            ],
        ),
        (
            "internal",
            [
                Some("internal"),
                Some("general"),
                None,
                None,
                Some("general"),
            ],
        ),
        (
            "confidential",
            [Some("confidential"), None, None, None, None],
        ),
        ("secret", [Some("secret"), None, None, None, None]),
    ];
    for (class, row) in table {
        for ((name, kind), expected) in kinds.iter().zip(row) {
            let decision = workload(class).decide([kind()]);
            match expected {
                Some(pool) => {
                    placed_on(&decision, name, &[pool]);
                }
                None => assert!(
                    !refusal(&decision).is_empty(),
                    "{class} on {name}: {decision:#?}"
                ),
            }
        }
    }
    // Given every kind at once, each class finds the government cloud (it is the only place
    // confidential and secret may run; public/internal tie-break on capacity and name).
    let all = || kinds.iter().map(|(_, kind)| kind()).collect::<Vec<_>>();
    placed_on(&workload("secret").decide(all()), GOV_NL, &["secret"]);
    placed_on(
        &workload("confidential").decide(all()),
        GOV_NL,
        &["confidential"],
    );
    placed_on(
        &workload("public").decide(all()),
        HYPERSCALER_DE,
        &["general"],
    );
    placed_on(&workload("internal").decide(all()), SECNUM_FR, &["general"]);
}

// ---------------------------------------------------------------------------------------------
// Refusal
// ---------------------------------------------------------------------------------------------

#[test]
fn a_refusal_lists_the_reasons_of_every_candidate_cluster_and_pool() {
    let decision =
        workload("secret").decide([secnum_fr(), hyperscaler_de(), us_east(), nordic_no()]);
    let union = sorted(
        decision
            .verdicts
            .iter()
            .flat_map(|v| v.reasons.iter().cloned()),
    );
    assert_eq!(refusal(&decision), union);
    for expected in [
        outside_eu_eea("US"),
        country_not_allowed("FR", &["NL"]),
        country_not_allowed("DE", &["NL"]),
        country_not_allowed("NO", &["NL"]),
        extraterritorial("Hyperscaler"),
        operator_not_allowed(EuProvider),
        operator_not_allowed(ThirdCountryProvider),
        none_of_eucs_high_secnumcloud_c5(),
        dedicated_to_other("confidential"),
        not_dedicated("secret"),
    ] {
        assert!(
            union.contains(&expected),
            "{expected:?} missing: {union:#?}"
        );
    }
    // Evidence for every cluster and every pool, sorted by cluster.
    assert_eq!(decision.verdicts.len(), 4 + 5);
    let clusters: Vec<&str> = decision
        .verdicts
        .iter()
        .filter(|v| v.pool.is_none())
        .map(|v| v.cluster.as_str())
        .collect();
    assert_eq!(clusters, [HYPERSCALER_DE, NORDIC_NO, SECNUM_FR, US_EAST]);
    assert!(decision.verdicts.iter().all(|v| !v.compliant));
    assert_eq!(decision.rejection_lines().len(), 4 + 5);
    assert!(decision.audit_violations().is_empty());
}

#[test]
fn a_refusal_never_falls_back_to_a_cluster_that_fails_the_class() {
    // Plenty of capacity, all in the EU, but none meets `confidential`.
    let decision =
        workload("confidential")
            .replicas(5)
            .decide([secnum_fr(), hyperscaler_de(), nordic_no()]);
    assert!(decision.targets().is_empty());
    assert_eq!(decision.enforcement, Enforcement::Enforce);
    assert!(!refusal(&decision).is_empty());
}

#[test]
fn no_clusters_at_all_is_refused_with_no_clusters() {
    let decision = workload("public").decide(Vec::<ClusterFacts>::new());
    assert_eq!(refusal(&decision), [Reason::NoClusters]);
    assert!(decision.verdicts.is_empty());
}

#[test]
fn a_missing_class_is_a_refusal_without_candidates() {
    let decision = Decision::refused(Reason::ClassNotFound {
        class: "topsecret".into(),
    });
    assert_eq!(decision.enforcement, Enforcement::Enforce);
    assert_eq!(
        refusal(&decision),
        [Reason::ClassNotFound {
            class: "topsecret".into()
        }]
    );
    assert!(decision.targets().is_empty());
}

#[test]
fn every_class_including_public_needs_a_sovereign_pool() {
    let unlabelled = cluster("plain-nl").pool(pool("workers").other_nodes(10));
    for class in ["public", "internal", "confidential", "secret"] {
        let decision = workload(class).decide([unlabelled.clone()]);
        let reasons = refusal(&decision);
        assert!(reasons.contains(&Reason::NoSovereignPool), "{class}");
        assert!(reasons.contains(&Reason::PoolNotSovereign), "{class}");
        assert!(
            cluster_reasons(&decision, "plain-nl").contains(&Reason::NoSovereignPool),
            "{class}"
        );
        assert!(
            pool_reasons(&decision, "plain-nl", "workers").contains(&Reason::PoolNotSovereign),
            "{class}"
        );
    }
    let no_pools = workload("public").decide([cluster("empty-nl")]);
    assert_eq!(refusal(&no_pools), [Reason::NoSovereignPool]);
}

#[test]
fn reasons_have_stable_codes_and_the_documented_severity() {
    let class_reasons = [
        jurisdiction_not_allowed("NO"),
        country_not_allowed("FR", &["NL"]),
        headquarters_not_allowed("Hyperscaler", "US"),
        extraterritorial("Hyperscaler"),
        operator_not_allowed(EuProvider),
        missing(&[Bio]),
        none_of_eucs_high_secnumcloud_c5(),
        not_dedicated("secret"),
    ];
    for reason in &class_reasons {
        assert_eq!(reason.severity(), Severity::Class, "{reason:?}");
    }
    let invariants = [
        outside_eu_eea("US"),
        Reason::PoolLocationUnknown,
        unreachable("timeout"),
        Reason::PoolNotSovereign,
        Reason::NoSovereignPool,
        dedicated_to_other("secret"),
        not_requested("DE"),
        not_enough_clusters(2, 1),
        Reason::NoClusters,
    ];
    for reason in &invariants {
        assert_eq!(reason.severity(), Severity::Invariant, "{reason:?}");
    }
    assert_eq!(outside_eu_eea("US").code(), "OutsideEuEea");
    assert_eq!(extraterritorial("X").code(), "ExtraterritorialExposure");
    assert_eq!(
        extraterritorial("Hyperscaler").to_string(),
        "provider Hyperscaler is subject to extraterritorial non-EU law"
    );
    assert_eq!(
        missing(&[Bio, EucsHigh]).to_string(),
        "missing certifications: BIO, EUCS-High"
    );
}

// ---------------------------------------------------------------------------------------------
// Stability
// ---------------------------------------------------------------------------------------------

/// A Dutch municipal cloud: EU provider in NL, lots of sovereign nodes.
fn big_nl(name: &str) -> ClusterBuilder {
    cluster(name)
        .country("NL")
        .provider("Haven Hosting", "NL", false)
        .certs([Haven, Iso27001])
        .pool(pool("general").sovereign_nodes(50))
}

#[test]
fn a_valid_current_placement_is_kept_even_when_a_better_cluster_appears() {
    let fleet = || [nordic_no(), big_nl("a-big-nl"), big_nl("b-big-nl")];
    // Without history the bigger Dutch cluster wins ...
    placed_on(
        &workload("public").decide(fleet()),
        "a-big-nl",
        &["general"],
    );
    // ... but a workload already on the Norwegian one stays, even against its preference.
    let decision = workload("public")
        .currently_on(NORDIC_NO, ["general"])
        .preferring(["NL"])
        .decide(fleet());
    placed_on(&decision, NORDIC_NO, &["general"]);
}

#[test]
fn current_pools_are_kept_while_they_remain_eligible() {
    let two_pools = || {
        cluster("nl")
            .pool(pool("a").sovereign_nodes(2))
            .pool(pool("b").sovereign_nodes(2))
    };
    placed_on(&workload("public").decide([two_pools()]), "nl", &["a", "b"]);
    let kept = workload("public")
        .currently_on("nl", ["b"])
        .decide([two_pools()]);
    placed_on(&kept, "nl", &["b"]);
    // When a current pool is no longer eligible, every eligible pool is used again.
    let gone = workload("public")
        .currently_on("nl", ["b", "decommissioned"])
        .decide([two_pools()]);
    placed_on(&gone, "nl", &["a", "b"]);
}

#[test]
fn a_current_placement_that_no_longer_complies_is_moved() {
    let decision = workload("confidential")
        .currently_on(HYPERSCALER_DE, ["general"])
        .decide([hyperscaler_de(), gov_nl()]);
    placed_on(&decision, GOV_NL, &["confidential"]);
}

#[test]
fn a_current_placement_on_a_cluster_that_left_the_eu_is_refused_not_kept() {
    let moved = hyperscaler_de().country("GB");
    let decision = workload("public")
        .currently_on(HYPERSCALER_DE, ["general"])
        .decide([moved]);
    assert_eq!(refusal(&decision), [outside_eu_eea("GB")]);
}

#[test]
fn a_current_placement_is_kept_when_its_pool_was_dedicated_to_the_class_since() {
    let before = cluster("nl").pool(pool("gov").sovereign_nodes(3));
    let after = cluster("nl").pool(pool("gov").sovereign_nodes(3).dedicated_to("public"));
    let first = workload("public").decide([before]);
    let target = placed_on(&first, "nl", &["gov"]);
    assert_eq!(target.dedicated_to, None);
    let second = workload("public")
        .currently_on("nl", ["gov"])
        .decide([after]);
    let target = placed_on(&second, "nl", &["gov"]);
    assert_eq!(target.dedicated_to.as_deref(), Some("public"));
}

// ---------------------------------------------------------------------------------------------
// Enforce vs audit
// ---------------------------------------------------------------------------------------------

#[test]
fn audit_places_onto_a_cluster_that_fails_only_class_requirements_and_reports_violations() {
    let enforced = workload("confidential").decide([hyperscaler_de()]);
    assert!(!refusal(&enforced).is_empty());

    let decision = workload("confidential").audit().decide([hyperscaler_de()]);
    assert_eq!(decision.enforcement, Enforcement::Audit);
    let target = placed_on(&decision, HYPERSCALER_DE, &["general"]);
    assert_eq!(
        target.violations,
        sorted([
            headquarters_not_allowed("Hyperscaler", "US"),
            extraterritorial("Hyperscaler"),
            missing(&[Bio]),
            not_dedicated("confidential"),
        ])
    );
    // The verdicts still say what is wrong.
    assert!(!verdict(&decision, HYPERSCALER_DE, None).compliant);
    let lines = decision.audit_violations();
    assert_eq!(lines.len(), 4);
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("cluster hyperscaler-de: "))
    );
    assert!(
        lines.contains(
            &"cluster hyperscaler-de: provider Hyperscaler is subject to extraterritorial non-EU law"
                .to_owned()
        ),
        "{lines:#?}"
    );
}

#[test]
fn audit_never_places_onto_a_third_country_cluster() {
    for class in ["public", "internal", "confidential", "secret"] {
        let decision = workload(class).audit().decide([us_east()]);
        assert!(
            refusal(&decision).contains(&outside_eu_eea("US")),
            "{class}: {decision:#?}"
        );
    }
}

#[test]
fn audit_never_places_onto_a_non_sovereign_pool() {
    let decision = workload("public")
        .audit()
        .decide([cluster("nl").pool(pool("workers").other_nodes(8))]);
    assert_eq!(
        refusal(&decision),
        sorted([Reason::NoSovereignPool, Reason::PoolNotSovereign])
    );
}

#[test]
fn audit_never_places_onto_a_pool_dedicated_to_another_class() {
    let decision = workload("public")
        .audit()
        .decide([cluster("nl").pool(pool("vault").sovereign_nodes(3).dedicated_to("secret"))]);
    assert_eq!(refusal(&decision), [dedicated_to_other("secret")]);
}

#[test]
fn audit_never_places_onto_a_pool_in_a_third_country_or_of_unknown_location() {
    let decision = workload("public").audit().decide([cluster("nl")
        .pool(pool("abroad").sovereign_nodes(3).located_in("CH"))
        .pool(pool("mixed").sovereign_nodes(3).nodes_disagree_on_country())]);
    assert_eq!(
        refusal(&decision),
        sorted([outside_eu_eea("CH"), Reason::PoolLocationUnknown])
    );
}

#[test]
fn audit_never_relaxes_the_workloads_own_required_countries() {
    let decision = workload("public")
        .audit()
        .requiring(["FR"])
        .decide([gov_nl()]);
    assert!(refusal(&decision).contains(&not_requested("NL")));
}

#[test]
fn audit_places_an_eu_only_class_onto_an_eea_cluster_and_reports_the_jurisdiction() {
    let mut eu_only = public();
    eu_only.location.jurisdictions = vec![Eu];
    let enforced = Workload::of_class("eu-only", eu_only.clone()).decide([nordic_no()]);
    assert_eq!(refusal(&enforced), [jurisdiction_not_allowed("NO")]);
    let audited = Workload::of_class("eu-only", eu_only)
        .audit()
        .decide([nordic_no()]);
    let target = placed_on(&audited, NORDIC_NO, &["general"]);
    assert_eq!(target.violations, [jurisdiction_not_allowed("NO")]);
}

#[test]
fn audit_prefers_a_compliant_cluster_over_a_violating_one_regardless_of_preference_and_size() {
    let decision = workload("confidential")
        .audit()
        .preferring(["DE"])
        .decide([hyperscaler_de(), gov_nl()]);
    let target = placed_on(&decision, GOV_NL, &["confidential"]);
    assert!(target.violations.is_empty());
    assert!(decision.audit_violations().is_empty());
}

#[test]
fn audit_prefers_fewer_violations() {
    // FR misses only BIO (its `restricted` pool is dedicated); the hyperscaler misses more.
    let decision = workload("confidential")
        .audit()
        .decide([hyperscaler_de(), secnum_fr()]);
    let targets = targets(&decision);
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].cluster, SECNUM_FR);
    assert!(targets[0].violations.contains(&missing(&[Bio])));
    assert!(targets[0].pools.contains(&"restricted".to_owned()));
}

/// In audit mode a cluster that has a compliant pool should be used exactly as in enforce
/// mode: audit only reports requirements that *fail*, so switching a class from `enforce` to
/// `audit` must not move a compliant workload onto non-compliant pools of the same cluster.
#[test]
fn audit_uses_only_the_compliant_pools_of_a_cluster_that_has_them() {
    let nl = || {
        gov_nl()
            .without_pools()
            .pool(
                pool("confidential")
                    .sovereign_nodes(3)
                    .dedicated_to("confidential"),
            )
            .pool(pool("general").sovereign_nodes(10))
    };
    let enforced = workload("confidential").decide([nl()]);
    let target = placed_on(&enforced, GOV_NL, &["confidential"]);
    assert!(target.violations.is_empty());

    let audited = workload("confidential").audit().decide([nl()]);
    // Actual: pools ["confidential", "general"], violations [PoolNotDedicated("confidential")].
    let target = placed_on(&audited, GOV_NL, &["confidential"]);
    assert!(target.violations.is_empty(), "{:?}", target.violations);
}

// ---------------------------------------------------------------------------------------------
// Reachability
// ---------------------------------------------------------------------------------------------

#[test]
fn a_new_placement_never_goes_to_an_unreachable_cluster() {
    let down = big_nl("nl").unreachable("connection refused");
    let alone = workload("public").decide([down.clone()]);
    assert_eq!(refusal(&alone), [unreachable("connection refused")]);
    assert_eq!(pool_reasons(&alone, "nl", "general"), []);
    assert_eq!(
        cluster_reasons(&alone, "nl"),
        [unreachable("connection refused")]
    );

    let with_alternative = workload("public").decide([down.clone(), nordic_no()]);
    placed_on(&with_alternative, NORDIC_NO, &["general"]);

    let audited = workload("public").audit().decide([down]);
    assert_eq!(refusal(&audited), [unreachable("connection refused")]);
}

#[test]
fn a_current_placement_on_an_unreachable_cluster_is_kept_when_failover_is_off() {
    let decision = workload("secret")
        .currently_on(GOV_NL, ["secret"])
        .decide([gov_nl().unreachable("timeout"), secnum_fr()]);
    let target = placed_on(&decision, GOV_NL, &["secret"]);
    assert!(!target.reachable);
    assert!(target.violations.is_empty());
}

#[test]
fn a_current_placement_on_an_unreachable_cluster_is_replaced_when_failover_is_on() {
    let second_gov = gov_nl().named("gov-nl-2");
    let decision = workload("secret")
        .currently_on(GOV_NL, ["secret"])
        .failover()
        .decide([gov_nl().unreachable("timeout"), second_gov]);
    let target = placed_on(&decision, "gov-nl-2", &["secret"]);
    assert!(target.reachable);
}

#[test]
fn with_failover_and_no_reachable_alternative_the_current_placement_is_kept() {
    let decision = workload("secret")
        .currently_on(GOV_NL, ["secret"])
        .failover()
        .decide([gov_nl().unreachable("timeout"), secnum_fr()]);
    assert_eq!(cluster_reasons(&decision, GOV_NL), [unreachable("timeout")]);
    let target = placed_on(&decision, GOV_NL, &["secret"]);
    assert!(!target.reachable);
}

#[test]
fn with_failover_a_spread_keeps_an_unreachable_member_only_when_it_cannot_be_replaced() {
    let replaced = workload("secret")
        .clusters(2)
        .currently_on(GOV_NL, ["secret"])
        .failover()
        .decide([
            gov_nl().unreachable("timeout"),
            gov_nl().named("gov-nl-2"),
            gov_nl().named("gov-nl-3"),
        ]);
    let mut on: Vec<&str> = replaced
        .targets()
        .iter()
        .map(|t| t.cluster.as_str())
        .collect();
    on.sort_unstable();
    assert_eq!(on, ["gov-nl-2", "gov-nl-3"]);

    let kept = workload("secret")
        .clusters(2)
        .currently_on(GOV_NL, ["secret"])
        .failover()
        .decide([gov_nl().unreachable("timeout"), gov_nl().named("gov-nl-2")]);
    let mut on: Vec<&str> = kept.targets().iter().map(|t| t.cluster.as_str()).collect();
    on.sort_unstable();
    assert_eq!(on, [GOV_NL, "gov-nl-2"]);
}

/// The engine cannot keep a placement on a cluster whose pools it does not know: whoever builds
/// `ClusterFacts` for an unreachable cluster must pass its last known pools.
#[test]
fn a_kept_placement_on_an_unreachable_cluster_relies_on_its_last_known_pools() {
    let decision = workload("secret")
        .currently_on(GOV_NL, ["secret"])
        .decide([gov_nl().without_pools().unreachable("timeout")]);
    assert_eq!(
        refusal(&decision),
        sorted([unreachable("timeout"), Reason::NoSovereignPool])
    );
}

#[test]
fn an_unreachable_current_cluster_that_fails_the_class_is_not_kept() {
    let decision = workload("confidential")
        .currently_on(HYPERSCALER_DE, ["general"])
        .decide([hyperscaler_de().unreachable("timeout"), gov_nl()]);
    placed_on(&decision, GOV_NL, &["confidential"]);
}

// ---------------------------------------------------------------------------------------------
// Spreading over clusters
// ---------------------------------------------------------------------------------------------

fn three_nl_clusters() -> Vec<ClusterFacts> {
    ["nl-a", "nl-b", "nl-c"]
        .into_iter()
        .map(|name| {
            cluster(name)
                .pool(pool("general").sovereign_nodes(3))
                .into()
        })
        .collect()
}

#[test]
fn replicas_are_spread_over_n_distinct_clusters_with_the_remainder_to_the_first() {
    let decision = workload("public")
        .replicas(7)
        .clusters(3)
        .decide(three_nl_clusters());
    assert_eq!(
        placement_summary(&decision),
        [
            ("nl-a".into(), s(&["general"]), 3),
            ("nl-b".into(), s(&["general"]), 2),
            ("nl-c".into(), s(&["general"]), 2),
        ]
    );
    let two = workload("public")
        .replicas(5)
        .clusters(2)
        .decide(three_nl_clusters());
    assert_eq!(
        placement_summary(&two),
        [
            ("nl-a".into(), s(&["general"]), 3),
            ("nl-b".into(), s(&["general"]), 2),
        ]
    );
}

#[test]
fn fewer_replicas_than_clusters_leaves_the_last_clusters_without_pods() {
    let decision = workload("public")
        .replicas(1)
        .clusters(3)
        .decide(three_nl_clusters());
    let replicas: Vec<i32> = decision.targets().iter().map(|t| t.replicas).collect();
    assert_eq!(replicas, [1, 0, 0]);
}

#[test]
fn zero_or_negative_replicas_place_no_pods() {
    for replicas in [0, -3] {
        let decision = workload("public")
            .replicas(replicas)
            .clusters(2)
            .decide(three_nl_clusters());
        let targets = targets(&decision);
        assert_eq!(targets.len(), 2);
        assert!(targets.iter().all(|t| t.replicas == 0));
    }
}

#[test]
fn too_few_qualifying_clusters_is_refused_with_not_enough_clusters() {
    let decision = workload("internal").clusters(3).decide([
        gov_nl(),
        secnum_fr(),
        hyperscaler_de(),
        us_east(),
    ]);
    let reasons = refusal(&decision);
    assert!(reasons.contains(&not_enough_clusters(3, 2)), "{reasons:#?}");
    assert!(reasons.contains(&headquarters_not_allowed("Hyperscaler", "US")));
    assert!(reasons.contains(&outside_eu_eea("US")));

    // Even when every candidate is compliant, the shortfall is the reason.
    let all_good = workload("public").clusters(4).decide(three_nl_clusters());
    assert_eq!(refusal(&all_good), [not_enough_clusters(4, 3)]);
}

#[test]
fn a_cluster_listed_twice_counts_once() {
    let decision = workload("public").clusters(2).decide([gov_nl(), gov_nl()]);
    assert_eq!(
        refusal(&decision),
        sorted([
            dedicated_to_other("internal"),
            dedicated_to_other("confidential"),
            dedicated_to_other("secret"),
            not_enough_clusters(2, 1),
        ])
    );
}

#[test]
fn clusters_below_one_means_one_cluster() {
    for clusters in [0, -1] {
        let decision = workload("public")
            .replicas(2)
            .clusters(clusters)
            .decide(three_nl_clusters());
        assert_eq!(
            placement_summary(&decision),
            [("nl-a".into(), s(&["general"]), 2)]
        );
    }
}

#[test]
fn spreading_keeps_the_current_clusters_and_adds_the_best_new_ones() {
    let decision = workload("public")
        .replicas(4)
        .clusters(2)
        .currently_on("nl-c", ["general"])
        .decide(three_nl_clusters());
    assert_eq!(
        placement_summary(&decision),
        [
            ("nl-a".into(), s(&["general"]), 2),
            ("nl-c".into(), s(&["general"]), 2),
        ]
    );
}

/// The controller writes the targets back to status, so the next reconcile decides with every
/// chosen cluster as current. With an uneven spread the remainder replica then moves to
/// another cluster: a pod is deleted on one cluster and created on another although nothing
/// changed in the world.
#[test]
fn redeciding_with_the_placement_as_current_does_not_move_replicas() {
    let first = workload("public")
        .replicas(3)
        .clusters(2)
        .currently_on("nl-c", ["general"])
        .decide(three_nl_clusters());
    // nl-c is kept; the remainder goes to the first by name: [nl-a x2, nl-c x1].
    assert_eq!(
        placement_summary(&first),
        [
            ("nl-a".into(), s(&["general"]), 2),
            ("nl-c".into(), s(&["general"]), 1),
        ]
    );
    let second = workload("public")
        .replicas(3)
        .clusters(2)
        .currently_on("nl-c", ["general"])
        .currently_on("nl-a", ["general"])
        .decide(three_nl_clusters());
    // Actual: [nl-a x2, nl-c x1]: one replica moves from nl-c to nl-a.
    assert_eq!(placement_summary(&second), placement_summary(&first));
}

// ---------------------------------------------------------------------------------------------
// Countries
// ---------------------------------------------------------------------------------------------

#[test]
fn required_countries_narrow_the_candidates() {
    let decision =
        workload("public")
            .requiring(["DE"])
            .decide([gov_nl(), hyperscaler_de(), nordic_no()]);
    placed_on(&decision, HYPERSCALER_DE, &["general"]);
    assert!(cluster_reasons(&decision, GOV_NL).contains(&not_requested("NL")));
    assert_eq!(cluster_reasons(&decision, NORDIC_NO), [not_requested("NO")]);
}

#[test]
fn required_countries_that_no_cluster_is_in_are_refused() {
    let decision = workload("public")
        .requiring(["AT"])
        .decide([hyperscaler_de(), nordic_no()]);
    assert_eq!(
        refusal(&decision),
        sorted([not_requested("DE"), not_requested("NO")])
    );
}

#[test]
fn required_countries_cannot_widen_the_class() {
    let decision = workload("secret")
        .requiring(["FR"])
        .decide([gov_nl(), secnum_fr()]);
    let reasons = refusal(&decision);
    assert!(reasons.contains(&not_requested("NL")));
    assert!(reasons.contains(&country_not_allowed("FR", &["NL"])));
}

#[test]
fn required_countries_apply_to_a_pools_own_country() {
    let decision = workload("public").requiring(["NL"]).decide([cluster("nl")
        .pool(pool("amsterdam").sovereign_nodes(2).located_in("NL"))
        .pool(pool("frankfurt").sovereign_nodes(9).located_in("DE"))]);
    placed_on(&decision, "nl", &["amsterdam"]);
    assert_eq!(
        pool_reasons(&decision, "nl", "frankfurt"),
        [not_requested("DE")]
    );
}

#[test]
fn preferred_countries_order_the_candidates() {
    let fleet = || [gov_nl(), hyperscaler_de(), nordic_no(), secnum_fr()];
    let decision = workload("public")
        .replicas(3)
        .clusters(3)
        .preferring(["NO", "FR"])
        .decide(fleet());
    let clusters: Vec<String> = decision
        .targets()
        .iter()
        .map(|t| t.cluster.clone())
        .collect();
    // NO, FR, then the rest by capacity (hyperscaler-de has 6 sovereign nodes, gov-nl 3 in its
    // only usable pool). Targets are listed by cluster name.
    assert_eq!(clusters, [HYPERSCALER_DE, NORDIC_NO, SECNUM_FR]);

    let single = workload("public").preferring(["FR"]).decide(fleet());
    placed_on(&single, SECNUM_FR, &["general"]);
}

#[test]
fn without_preferences_more_sovereign_nodes_win_and_then_the_name() {
    let decision = workload("public").decide([
        cluster("a-nl").pool(pool("p").sovereign_nodes(2).other_nodes(40)),
        cluster("b-nl").pool(pool("p").sovereign_nodes(3)),
    ]);
    placed_on(&decision, "b-nl", &["p"]);

    let tie = workload("public").decide([
        cluster("b-nl").pool(pool("p").sovereign_nodes(3)),
        cluster("a-nl").pool(pool("p").sovereign_nodes(3)),
    ]);
    placed_on(&tie, "a-nl", &["p"]);
}

#[test]
fn unknown_or_malformed_country_codes_are_third_countries() {
    for code in ["nl", "EL", "EU", "", "NLD", "GB", "CH"] {
        let decision = workload("public").decide([cluster("x")
            .country(code)
            .pool(pool("p").sovereign_nodes(1))]);
        assert_eq!(refusal(&decision), [outside_eu_eea(code)], "{code:?}");
    }
    assert_eq!(jurisdiction_of("NL"), Eu);
    assert_eq!(jurisdiction_of("NO"), Eea);
    assert_eq!(EU_COUNTRIES.len() + EEA_COUNTRIES.len(), 30);
}

#[test]
fn a_class_listing_a_third_country_still_never_places_there() {
    // The CRD forbids this; the engine must not depend on it.
    let mut careless = public();
    careless.location.jurisdictions = vec![Eu, Eea, ThirdCountry];
    careless.location.countries = Some(vec!["US".into(), "NL".into()]);
    let decision = Workload::of_class("careless", careless)
        .audit()
        .requiring(["US"])
        .decide([us_east()]);
    assert!(refusal(&decision).contains(&outside_eu_eea("US")));
}

// ---------------------------------------------------------------------------------------------
// Node pools in decisions
// ---------------------------------------------------------------------------------------------

#[test]
fn a_dedicated_pool_sets_the_toleration_target() {
    let decision = workload("confidential").decide([gov_nl()]);
    let target = placed_on(&decision, GOV_NL, &["confidential"]);
    assert_eq!(target.dedicated_to.as_deref(), Some("confidential"));
}

#[test]
fn a_pool_dedicated_to_another_class_is_rejected() {
    let decision = workload("confidential").decide([gov_nl()
        .without_pools()
        .pool(pool("secret").sovereign_nodes(5).dedicated_to("secret"))]);
    assert_eq!(
        pool_reasons(&decision, GOV_NL, "secret"),
        [dedicated_to_other("secret")]
    );
    assert_eq!(refusal(&decision), [dedicated_to_other("secret")]);
}

#[test]
fn a_class_that_requires_dedication_rejects_an_undedicated_pool() {
    let decision = workload("secret").decide([gov_nl()
        .without_pools()
        .pool(pool("shared").sovereign_nodes(5))]);
    assert_eq!(refusal(&decision), [not_dedicated("secret")]);
}

#[test]
fn pools_whose_sovereign_nodes_disagree_on_country_are_rejected() {
    let decision = workload("public").decide([cluster("nl")
        .pool(pool("mixed").sovereign_nodes(4).nodes_disagree_on_country())
        .pool(pool("local").sovereign_nodes(1).located_in("NL"))]);
    placed_on(&decision, "nl", &["local"]);
    assert_eq!(
        pool_reasons(&decision, "nl", "mixed"),
        [Reason::PoolLocationUnknown]
    );
}

#[test]
fn a_pool_outside_the_eu_is_rejected_even_when_its_cluster_is_in_the_eu() {
    let decision = workload("public").decide([cluster("nl")
        .pool(pool("zurich").sovereign_nodes(9).located_in("CH"))
        .pool(pool("amsterdam").sovereign_nodes(1).located_in("NL"))]);
    placed_on(&decision, "nl", &["amsterdam"]);
    assert_eq!(
        pool_reasons(&decision, "nl", "zurich"),
        [outside_eu_eea("CH")]
    );

    let only_abroad = workload("public")
        .decide([cluster("nl").pool(pool("zurich").sovereign_nodes(9).located_in("CH"))]);
    assert_eq!(refusal(&only_abroad), [outside_eu_eea("CH")]);
    assert_eq!(cluster_reasons(&only_abroad, "nl"), []);
}

#[test]
fn a_pool_in_a_country_the_class_does_not_allow_is_rejected() {
    let decision = workload("secret").decide([gov_nl().without_pools().pool(
        pool("frankfurt")
            .sovereign_nodes(3)
            .dedicated_to("secret")
            .located_in("DE"),
    )]);
    assert_eq!(refusal(&decision), [country_not_allowed("DE", &["NL"])]);
}

#[test]
fn a_pool_in_the_eea_is_reported_for_an_eu_only_class() {
    let mut eu_only = public();
    eu_only.location.jurisdictions = vec![Eu];
    let decision = Workload::of_class("eu-only", eu_only)
        .decide([cluster("nl").pool(pool("oslo").sovereign_nodes(3).located_in("NO"))]);
    assert_eq!(refusal(&decision), [jurisdiction_not_allowed("NO")]);
}

#[test]
fn only_sovereign_nodes_count_as_capacity() {
    let decision = workload("public").decide([
        cluster("a-nl").pool(pool("p").sovereign_nodes(1).other_nodes(99)),
        cluster("b-nl").pool(pool("p").sovereign_nodes(2)),
    ]);
    placed_on(&decision, "b-nl", &["p"]);
}

/// `Decision::verdicts` is documented as "sorted by cluster then pool" and the engine as
/// "the result never depends on input order". Pools are kept in their input order.
#[test]
fn verdicts_are_sorted_by_cluster_then_pool_whatever_the_pool_order() {
    let unsorted = cluster("nl")
        .pool(pool("z").sovereign_nodes(1))
        .pool(pool("a").sovereign_nodes(1));
    let sorted_pools = cluster("nl")
        .pool(pool("a").sovereign_nodes(1))
        .pool(pool("z").sovereign_nodes(1));
    let first = workload("public").decide([unsorted]);
    let second = workload("public").decide([sorted_pools]);
    let pools: Vec<Option<&str>> = first.verdicts.iter().map(|v| v.pool.as_deref()).collect();
    assert_eq!(pools, [None, Some("a"), Some("z")]);
    assert_eq!(first, second);
}

/// Two `ClusterFacts` with the same name (impossible for cluster-scoped Kubernetes objects,
/// but possible through the public API, e.g. from `sovra plan` manifests) are deduplicated by
/// keeping whichever came first in the input.
#[test]
fn duplicate_cluster_names_do_not_make_the_decision_depend_on_input_order() {
    let in_nl = cluster("dup").pool(pool("p").sovereign_nodes(1));
    let in_us = cluster("dup")
        .country("US")
        .pool(pool("p").sovereign_nodes(1));
    let a = workload("public").decide([in_nl.clone(), in_us.clone()]);
    let b = workload("public").decide([in_us, in_nl]);
    assert_eq!(a, b);
}

// ---------------------------------------------------------------------------------------------
// node_pools(): from Nodes to pools
// ---------------------------------------------------------------------------------------------

/// A Node's placement facts: `node("n1").in_pool("gov").sovereign().country("NL")`.
#[derive(Clone, Debug)]
struct NodeBuilder(NodeFacts);

fn node(name: &str) -> NodeBuilder {
    NodeBuilder(NodeFacts {
        name: name.to_owned(),
        ..NodeFacts::default()
    })
}

impl NodeBuilder {
    fn label(mut self, key: &str, value: &str) -> Self {
        self.0.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    fn in_pool(self, pool: &str) -> Self {
        self.label(DEFAULT_NODE_POOL_LABEL, pool)
    }

    fn sovereign(self) -> Self {
        self.label(SOVEREIGN_NODE_LABEL, "true")
    }

    fn country(self, country: &str) -> Self {
        self.label(NODE_COUNTRY_LABEL, country)
    }

    fn taint(mut self, key: &str, value: Option<&str>, effect: &str) -> Self {
        self.0.taints.push(Taint {
            key: key.to_owned(),
            value: value.map(str::to_owned),
            effect: effect.to_owned(),
        });
        self
    }

    fn dedicated_to(self, class: &str) -> Self {
        self.taint(DEDICATED_TAINT_KEY, Some(class), "NoSchedule")
    }
}

fn pools_of<const N: usize>(nodes: [NodeBuilder; N]) -> Vec<NodePool> {
    let nodes: Vec<NodeFacts> = nodes.into_iter().map(|n| n.0).collect();
    node_pools(&nodes, DEFAULT_NODE_POOL_LABEL)
}

#[test]
fn node_pools_groups_nodes_by_the_pool_label_sorted_by_name() {
    let pools = pools_of([
        node("n1").in_pool("zeta").sovereign(),
        node("n2").in_pool("alpha").sovereign(),
        node("n3").in_pool("zeta"),
        node("n4").in_pool("alpha").sovereign(),
        node("n5").sovereign(),
        node("n6").in_pool("").sovereign(),
    ]);
    let summary: Vec<(&str, i32, i32)> = pools
        .iter()
        .map(|p| (p.name.as_str(), p.nodes, p.sovereign_nodes))
        .collect();
    assert_eq!(summary, [("alpha", 2, 2), ("zeta", 2, 1)]);
    assert!(pools[0].notes.is_empty());
    assert_eq!(pools[1].notes.len(), 1);
}

#[test]
fn node_pools_honours_a_custom_pool_label() {
    let nodes = [
        node("n1").label("example.org/pool", "gpu").sovereign().0,
        node("n2").in_pool("ignored").sovereign().0,
    ];
    let pools = node_pools(&nodes, "example.org/pool");
    assert_eq!(pools.len(), 1);
    assert_eq!(pools[0].name, "gpu");
}

#[test]
fn only_the_exact_administrator_label_true_makes_a_node_sovereign() {
    let pools = pools_of([
        node("a").in_pool("p").label(SOVEREIGN_NODE_LABEL, "True"),
        node("b").in_pool("p").label(SOVEREIGN_NODE_LABEL, "yes"),
        node("c").in_pool("p").label(SOVEREIGN_NODE_LABEL, "1"),
        node("d").in_pool("p").label("sovra.dev/sovereign", "true"),
        node("e").in_pool("p").label(SOVEREIGN_NODE_LABEL, " true"),
    ]);
    assert_eq!(pools[0].sovereign_nodes, 0);
    assert!(!pools[0].is_sovereign());
    assert_eq!(pools[0].notes.len(), 1);
    assert!(node("x").sovereign().0.is_sovereign());
}

#[test]
fn a_pool_takes_the_country_its_sovereign_nodes_agree_on_ignoring_other_nodes() {
    let pools = pools_of([
        node("a").in_pool("p").sovereign().country("NL"),
        node("b").in_pool("p").sovereign().country("NL"),
        node("c").in_pool("p").country("US"),
    ]);
    assert_eq!(pools[0].country.as_deref(), Some("NL"));
    assert!(!pools[0].country_conflict);
}

#[test]
fn sovereign_nodes_that_disagree_on_country_make_the_pool_location_unknown() {
    for second in [Some("DE"), None] {
        let other = match second {
            Some(country) => node("b").in_pool("p").sovereign().country(country),
            None => node("b").in_pool("p").sovereign(),
        };
        let pools = pools_of([node("a").in_pool("p").sovereign().country("NL"), other]);
        assert!(pools[0].country_conflict, "{second:?}");
        assert_eq!(pools[0].country, None);
    }
    let unlabelled = pools_of([node("a").in_pool("p").sovereign()]);
    assert!(!unlabelled[0].country_conflict);
    assert_eq!(unlabelled[0].country, None);
}

#[test]
fn a_pool_is_dedicated_only_when_every_sovereign_node_has_the_no_schedule_taint() {
    let all = pools_of([
        node("a").in_pool("p").sovereign().dedicated_to("secret"),
        node("b").in_pool("p").sovereign().dedicated_to("secret"),
        // Non-sovereign nodes are never scheduled on, so their taints do not matter.
        node("c").in_pool("p"),
    ]);
    assert_eq!(all[0].dedicated_to.as_deref(), Some("secret"));

    let partial = pools_of([
        node("a").in_pool("p").sovereign().dedicated_to("secret"),
        node("b").in_pool("p").sovereign(),
    ]);
    assert_eq!(partial[0].dedicated_to, None);

    let split = pools_of([
        node("a").in_pool("p").sovereign().dedicated_to("secret"),
        node("b")
            .in_pool("p")
            .sovereign()
            .dedicated_to("confidential"),
    ]);
    assert_eq!(split[0].dedicated_to, None);

    let soft = pools_of([node("a").in_pool("p").sovereign().taint(
        DEDICATED_TAINT_KEY,
        Some("secret"),
        "PreferNoSchedule",
    )]);
    assert_eq!(soft[0].dedicated_to, None);

    let other_key = pools_of([node("a").in_pool("p").sovereign().taint(
        "example.org/dedicated",
        Some("secret"),
        "NoSchedule",
    )]);
    assert_eq!(other_key[0].dedicated_to, None);
}

#[test]
fn node_facts_keep_the_labels_and_taints_of_a_node() {
    use k8s_openapi::api::core::v1::{Node, NodeSpec, Taint as K8sTaint};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let k8s_node = Node {
        metadata: ObjectMeta {
            name: Some("node-1".into()),
            labels: Some(BTreeMap::from([
                (SOVEREIGN_NODE_LABEL.to_owned(), "true".to_owned()),
                (DEFAULT_NODE_POOL_LABEL.to_owned(), "gov".to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: Some(vec![K8sTaint {
                key: DEDICATED_TAINT_KEY.into(),
                value: Some("secret".into()),
                effect: "NoSchedule".into(),
                time_added: None,
            }]),
            ..NodeSpec::default()
        }),
        status: None,
    };
    let facts = NodeFacts::from_node(&k8s_node);
    assert_eq!(facts.name, "node-1");
    assert!(facts.is_sovereign());
    assert_eq!(facts.dedicated_to(), Some("secret"));
    assert_eq!(NodeFacts::from_node(&Node::default()), NodeFacts::default());
}

#[test]
fn a_decision_from_raw_nodes_places_a_secret_workload_only_on_attested_dedicated_nodes() {
    let pools = pools_of([
        // Claims to be sovereign through a label a kubelet could set itself: not sovereign.
        node("rogue")
            .in_pool("fast")
            .label("sovra.dev/sovereign", "true"),
        node("w1").in_pool("fast").country("NL"),
        node("s1")
            .in_pool("vault")
            .sovereign()
            .country("NL")
            .dedicated_to("secret"),
        node("s2")
            .in_pool("vault")
            .sovereign()
            .country("NL")
            .dedicated_to("secret"),
        node("g1").in_pool("general").sovereign().country("NL"),
    ]);
    let mut gov = gov_nl().without_pools();
    gov.0.pools = pools;
    let decision = workload("secret").replicas(2).decide([gov]);
    let target = placed_on(&decision, GOV_NL, &["vault"]);
    assert_eq!(target.dedicated_to.as_deref(), Some("secret"));
    assert_eq!(
        pool_reasons(&decision, GOV_NL, "fast"),
        sorted([Reason::PoolNotSovereign, not_dedicated("secret")])
    );
    assert_eq!(
        pool_reasons(&decision, GOV_NL, "general"),
        [not_dedicated("secret")]
    );
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

const CLASS_NAMES: [&str; 4] = ["public", "internal", "confidential", "secret"];
const ALL_CERTS: [Certification; 8] = [
    Bio,
    Iso27001,
    Certification::EucsBasic,
    EucsSubstantial,
    EucsHigh,
    SecNumCloud,
    C5,
    Haven,
];
const JURISDICTIONS: [sovra::crd::Jurisdiction; 3] = [Eu, Eea, ThirdCountry];
const OPERATORS: [OperatedBy; 3] = [Government, EuProvider, ThirdCountryProvider];

/// EU (often), EEA, third countries and garbage codes.
fn arb_country() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => prop::sample::select(&EU_COUNTRIES[..]).prop_map(str::to_owned),
        2 => prop::sample::select(&EEA_COUNTRIES[..]).prop_map(str::to_owned),
        2 => prop::sample::select(&["US", "GB", "CH", "CN", "RU", "TR"][..]).prop_map(str::to_owned),
        1 => prop::sample::select(&["", "nl", "EL", "EU", "NLD", " NL", "N"][..]).prop_map(str::to_owned),
        1 => "[A-Za-z]{0,3}",
    ]
}

fn arb_pool(index: usize) -> impl Strategy<Value = NodePool> {
    (
        prop_oneof![1 => Just(0), 4 => 1..5i32],
        0..3i32,
        prop::option::weighted(0.5, arb_country()),
        prop::bool::weighted(0.1),
        prop::option::weighted(
            0.35,
            prop::sample::select(&["public", "internal", "confidential", "secret", "other"][..]),
        ),
    )
        .prop_map(
            move |(sovereign, others, country, conflict, dedicated)| NodePool {
                name: format!("p{index}"),
                nodes: sovereign + others,
                sovereign_nodes: sovereign,
                country: if conflict { None } else { country },
                country_conflict: conflict,
                dedicated_to: dedicated.map(str::to_owned),
                notes: Vec::new(),
            },
        )
}

fn arb_cluster(index: usize) -> impl Strategy<Value = ClusterFacts> {
    let pools = (0..4usize).prop_flat_map(|n| (0..n).map(arb_pool).collect::<Vec<_>>());
    (
        arb_country(),
        arb_country(),
        any::<bool>(),
        prop::sample::select(&OPERATORS[..]),
        prop::sample::subsequence(&ALL_CERTS[..], 0..=ALL_CERTS.len()),
        pools,
        prop::bool::weighted(0.2),
        // Some providers belong to one of two groups: diversity counts groups, not names.
        prop::option::weighted(
            0.3,
            (
                prop::sample::select(&["group-a", "group-b"][..]),
                arb_country(),
                prop::bool::weighted(0.2),
            ),
        ),
    )
        .prop_map(
            move |(country, hq, exposure, operator, certs, pools, down, parent)| ClusterFacts {
                name: format!("c{index}"),
                spec: {
                    let builder = cluster("x")
                        .country(&country)
                        .provider(&format!("provider-{index}"), &hq, exposure)
                        .operated_by(operator)
                        .certs(certs);
                    match parent {
                        Some((name, hq, exposure)) => builder.parent(name, &hq, exposure),
                        None => builder,
                    }
                    .0
                    .spec
                },
                reachability: if down {
                    Reachability::Unreachable("timeout".into())
                } else {
                    Reachability::Reachable
                },
                pools,
            },
        )
}

fn arb_class() -> impl Strategy<Value = SensitivityClassSpec> {
    (
        prop::bool::weighted(0.3),
        prop::sample::subsequence(&JURISDICTIONS[..], 0..=3),
        prop::option::weighted(0.3, prop::collection::vec(arb_country(), 1..4)),
        prop::sample::subsequence(&JURISDICTIONS[..], 0..=3),
        any::<bool>(),
        prop::sample::subsequence(&OPERATORS[..], 0..=3),
        prop::sample::subsequence(&ALL_CERTS[..], 0..=2),
        prop::sample::subsequence(&ALL_CERTS[..], 0..=3),
        prop::bool::weighted(0.4),
    )
        .prop_map(
            |(
                audit,
                jurisdictions,
                countries,
                hq,
                exposure,
                operators,
                all_of,
                any_of,
                dedicated,
            )| {
                SensitivityClassSpec {
                    description: None,
                    enforcement: if audit {
                        Enforcement::Audit
                    } else {
                        Enforcement::Enforce
                    },
                    location: LocationRequirements {
                        jurisdictions,
                        countries,
                    },
                    provider: ProviderRequirements {
                        headquarters_jurisdictions: hq,
                        extraterritorial_exposure_allowed: exposure,
                        operated_by: operators,
                    },
                    certifications: CertificationRequirements { all_of, any_of },
                    node_pool: NodePoolRequirements { dedicated },
                    continuity: ContinuityRequirements::default(),
                }
            },
        )
}

fn arb_class_or_default() -> impl Strategy<Value = (String, SensitivityClassSpec)> {
    prop_oneof![
        prop::sample::select(&CLASS_NAMES[..]).prop_map(|n| (n.to_owned(), default_class(n))),
        prop::sample::select(&CLASS_NAMES[..]).prop_flat_map(|n| (
            Just(n.to_owned()),
            prop_oneof![
                Just(default_class(n)),
                Just({
                    let mut class = default_class(n);
                    class.enforcement = Enforcement::Audit;
                    class
                }),
            ]
        )),
        (
            prop::sample::select(&["public", "secret", "custom"][..]).prop_map(str::to_owned),
            arb_class()
        ),
    ]
}

fn arb_preferences() -> impl Strategy<Value = PlacementPreferences> {
    (
        prop::collection::vec(arb_country(), 0..3),
        prop_oneof![
            3 => Just(Vec::new()),
            1 => prop::collection::vec(arb_country(), 1..4),
        ],
        prop_oneof![3 => Just(1), 3 => 2..=3i32, 1 => -1..=4i32],
        any::<bool>(),
        prop_oneof![3 => Just(None), 1 => (1..=3i32).prop_map(Some)],
    )
        .prop_map(
            |(preferred_countries, required_countries, clusters, failover, min_providers)| {
                PlacementPreferences {
                    preferred_countries,
                    required_countries,
                    clusters,
                    failover,
                    min_providers,
                }
            },
        )
}

fn arb_current() -> impl Strategy<Value = Vec<CurrentPlacement>> {
    prop::collection::vec(
        (
            0..7usize,
            prop::sample::subsequence(&["p0", "p1", "p2", "p3", "p9"][..], 0..=3),
        )
            .prop_map(|(cluster, pools)| CurrentPlacement {
                cluster: format!("c{cluster}"),
                pools: pools.into_iter().map(str::to_owned).collect(),
            }),
        0..3,
    )
}

/// Everything a decision depends on, plus a shuffled copy of the clusters.
#[derive(Clone, Debug)]
struct World {
    workload: Workload,
    clusters: Vec<ClusterFacts>,
    shuffled: Vec<ClusterFacts>,
}

fn arb_workload() -> impl Strategy<Value = Workload> {
    (
        arb_class_or_default(),
        arb_preferences(),
        -2..20i32,
        arb_current(),
    )
        .prop_map(
            |((class_name, class), preferences, replicas, current)| Workload {
                class_name,
                class,
                preferences,
                replicas,
                current,
            },
        )
}

fn arb_world() -> impl Strategy<Value = World> {
    let clusters = (0..7usize)
        .prop_flat_map(|n| (0..n).map(arb_cluster).collect::<Vec<_>>())
        .prop_flat_map(|clusters| (Just(clusters.clone()), Just(clusters).prop_shuffle()));
    (arb_workload(), clusters).prop_map(|(workload, (clusters, shuffled))| World {
        workload,
        clusters,
        shuffled,
    })
}

fn is_eu_or_eea(country: &str) -> bool {
    jurisdiction_of(country) != ThirdCountry
}

fn check_invariants(world: &World, decision: &Decision) -> Result<(), TestCaseError> {
    let workload = &world.workload;
    let enforcement = workload.class.enforcement;
    prop_assert_eq!(decision.enforcement, enforcement);
    let facts = |name: &str| world.clusters.iter().find(|c| c.name == name).unwrap();

    // Evidence for every cluster and every pool.
    let pool_count: usize = world.clusters.iter().map(|c| c.pools.len()).sum();
    prop_assert_eq!(decision.verdicts.len(), world.clusters.len() + pool_count);

    // In enforce mode the engine places exactly when enough clusters qualify: compliant ones,
    // plus current ones kept while unreachable that are otherwise compliant. (With failover, a
    // current unreachable one is replaced when enough reachable ones qualify, and kept when
    // not: either way the count that decides is the same.)
    if enforcement == Enforcement::Enforce {
        let qualifying = decision
            .verdicts
            .iter()
            .filter(|v| v.pool.is_none())
            .filter(|v| {
                let kept = workload.current.iter().any(|c| c.cluster == v.cluster);
                let usable_cluster = v
                    .reasons
                    .iter()
                    .all(|r| kept && matches!(r, Reason::ClusterUnreachable { .. }));
                let usable_pool = decision
                    .verdicts
                    .iter()
                    .any(|p| p.cluster == v.cluster && p.pool.is_some() && p.reasons.is_empty());
                usable_cluster && usable_pool
            })
            .collect::<Vec<_>>();
        let qualifying_providers: BTreeSet<&str> = qualifying
            .iter()
            .map(|v| facts(&v.cluster).spec.provider.identity())
            .collect();
        let wanted = usize::try_from(workload.preferences.clusters.max(1)).unwrap();
        let min_providers = usize::try_from(workload.request().min_providers()).unwrap();
        prop_assert_eq!(
            matches!(decision.outcome, Outcome::Placed(_)),
            qualifying.len() >= wanted && qualifying_providers.len() >= min_providers,
            "{} qualify from {} providers, {} wanted from {}: {:?}",
            qualifying.len(),
            qualifying_providers.len(),
            wanted,
            min_providers,
            decision
        );
    }

    match &decision.outcome {
        // (d) a refusal always says why.
        Outcome::Refused(reasons) => {
            prop_assert!(!reasons.is_empty());
            prop_assert!(decision.targets().is_empty());
            let mut sorted_reasons = reasons.clone();
            sorted_reasons.sort();
            sorted_reasons.dedup();
            prop_assert_eq!(&sorted_reasons, reasons);
            // Every reason of every candidate, plus only the shortfall itself.
            let evidence: BTreeSet<&Reason> =
                decision.verdicts.iter().flat_map(|v| &v.reasons).collect();
            for reason in &evidence {
                prop_assert!(
                    reasons.contains(reason),
                    "{:?} not in {:?}",
                    reason,
                    reasons
                );
            }
            for reason in reasons {
                prop_assert!(
                    evidence.contains(reason)
                        || matches!(
                            reason,
                            Reason::NoClusters
                                | Reason::NotEnoughClusters { .. }
                                | Reason::NotEnoughProviders { .. }
                        ),
                    "{:?}",
                    reason
                );
            }
        }
        Outcome::Placed(targets) => {
            // (d) exactly `clusters` distinct targets (more when `minProviders` needs more),
            // from at least `minProviders` distinct providers, carrying all replicas.
            let min_providers = usize::try_from(workload.request().min_providers()).unwrap();
            let wanted = usize::try_from(workload.preferences.clusters.max(1))
                .unwrap()
                .max(min_providers);
            prop_assert_eq!(targets.len(), wanted);
            let distinct: BTreeSet<&str> = targets.iter().map(|t| t.cluster.as_str()).collect();
            prop_assert_eq!(distinct.len(), wanted);
            let providers: BTreeSet<&str> = targets
                .iter()
                .map(|t| facts(&t.cluster).spec.provider.identity())
                .collect();
            prop_assert!(providers.len() >= min_providers, "{:?}", targets);
            let total: i32 = targets.iter().map(|t| t.replicas).sum();
            prop_assert_eq!(total, workload.replicas.max(0));
            let max = targets.iter().map(|t| t.replicas).max().unwrap();
            let min = targets.iter().map(|t| t.replicas).min().unwrap();
            prop_assert!(max - min <= 1, "uneven spread {:?}", targets);
            prop_assert!(targets.windows(2).all(|w| w[0].replicas >= w[1].replicas));

            for target in targets {
                let cluster = facts(&target.cluster);
                let is_current = workload.current.iter().any(|c| c.cluster == target.cluster);
                // (a) never outside the EU/EEA, neither the cluster nor any pool.
                prop_assert!(is_eu_or_eea(&cluster.spec.country), "{:?}", target);
                prop_assert_eq!(&target.country, &cluster.spec.country);
                prop_assert!(!target.pools.is_empty());
                let mut sorted_pools = target.pools.clone();
                sorted_pools.sort();
                prop_assert_eq!(&sorted_pools, &target.pools);
                for name in &target.pools {
                    let pool = cluster.pools.iter().find(|p| &p.name == name).unwrap();
                    if let Some(country) = &pool.country {
                        prop_assert!(is_eu_or_eea(country), "{:?}", pool);
                    }
                    prop_assert!(!pool.country_conflict, "{:?}", pool);
                    // (b) only sovereign pools.
                    prop_assert!(pool.sovereign_nodes > 0, "{:?}", pool);
                    prop_assert!(
                        pool.dedicated_to
                            .as_deref()
                            .is_none_or(|class| class == workload.class_name)
                    );
                    // (g) the workload's own required countries hold for cluster and pools.
                    let required = &workload.preferences.required_countries;
                    if !required.is_empty() {
                        prop_assert!(required.contains(&target.country));
                        if let Some(country) = &pool.country {
                            prop_assert!(required.contains(country));
                        }
                    }
                    // Audit relaxes class requirements only.
                    let pool_verdict = verdict(decision, &cluster.name, Some(name));
                    prop_assert!(
                        pool_verdict
                            .reasons
                            .iter()
                            .all(|r| r.severity() == Severity::Class),
                        "{:?}",
                        pool_verdict
                    );
                    if enforcement == Enforcement::Enforce {
                        prop_assert!(pool_verdict.reasons.is_empty(), "{:?}", pool_verdict);
                        if target.reachable {
                            prop_assert!(pool_verdict.compliant, "{:?}", pool_verdict);
                        }
                    }
                }
                let dedicated = target.pools.iter().any(|name| {
                    cluster.pools.iter().any(|p| {
                        &p.name == name && p.dedicated_to.as_deref() == Some(&workload.class_name)
                    })
                });
                prop_assert_eq!(
                    target.dedicated_to.as_deref(),
                    dedicated.then_some(workload.class_name.as_str())
                );

                // (f) never a new placement on an unreachable cluster.
                let reachable = cluster.reachability == Reachability::Reachable;
                prop_assert_eq!(target.reachable, reachable);
                if !reachable {
                    prop_assert!(is_current, "{:?}", target);
                }
                // With failover, an unreachable one is kept only when too few reachable
                // clusters qualify to replace it.
                if !reachable
                    && workload.preferences.failover
                    && enforcement == Enforcement::Enforce
                {
                    let compliant_reachable: Vec<&Verdict> = decision
                        .verdicts
                        .iter()
                        .filter(|v| v.pool.is_none() && v.compliant)
                        .collect();
                    let providers: BTreeSet<&str> = compliant_reachable
                        .iter()
                        .map(|v| facts(&v.cluster).spec.provider.identity())
                        .collect();
                    // Too few: fewer than the clusters needed (`minProviders` can need more
                    // than `clusters`), or from fewer providers than required.
                    let min_providers =
                        usize::try_from(workload.request().min_providers()).unwrap();
                    let wanted = usize::try_from(workload.preferences.clusters.max(1))
                        .unwrap()
                        .max(min_providers);
                    prop_assert!(
                        compliant_reachable.len() < wanted || providers.len() < min_providers,
                        "{:?}",
                        decision
                    );
                }

                let cluster_verdict = verdict(decision, &cluster.name, None);
                for reason in &cluster_verdict.reasons {
                    let allowed = match reason {
                        Reason::ClusterUnreachable { .. } => !reachable,
                        other => other.severity() == Severity::Class,
                    };
                    prop_assert!(allowed, "{:?} on target {:?}", reason, target);
                }
                // (c) enforce: no violations, and compliant evidence (a kept placement on an
                // unreachable cluster is compliant except for being unreachable).
                match enforcement {
                    Enforcement::Enforce => {
                        prop_assert!(target.violations.is_empty(), "{:?}", target);
                        if reachable {
                            prop_assert!(cluster_verdict.compliant, "{:?}", cluster_verdict);
                        } else {
                            prop_assert_eq!(
                                &cluster_verdict.reasons,
                                &vec![unreachable("timeout")]
                            );
                        }
                    }
                    Enforcement::Audit => {
                        // Violations are exactly the class reasons of cluster and chosen pools.
                        let expected: BTreeSet<Reason> = cluster_verdict
                            .reasons
                            .iter()
                            .chain(target.pools.iter().flat_map(|p| {
                                verdict(decision, &cluster.name, Some(p)).reasons.iter()
                            }))
                            .filter(|r| r.severity() == Severity::Class)
                            .cloned()
                            .collect();
                        prop_assert_eq!(
                            target.violations.iter().cloned().collect::<BTreeSet<_>>(),
                            expected
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_decision_respects_the_platform_invariants(world in arb_world()) {
        let decision = world.workload.decide(world.clusters.clone());
        check_invariants(&world, &decision)?;
    }

    // What one world derives for a class is shared by every decision in it (`Candidates`):
    // sharing must never change a decision, whatever was decided in that world before.
    #[test]
    fn a_decision_in_a_world_shared_with_other_workloads_equals_one_in_a_fresh_world(
        world in arb_world(),
        others in proptest::collection::vec(arb_workload(), 0..6),
    ) {
        let shared = Candidates::new(world.shuffled.clone());
        let everyone: Vec<&Workload> =
            others.iter().chain([&world.workload]).chain(&others).collect();
        for workload in everyone {
            let fresh = decide(&workload.request(), &world.clusters);
            prop_assert_eq!(shared.decide(&workload.request()), fresh);
        }
    }

    // (e) deterministic and independent of the order of the clusters.
    #[test]
    fn decisions_are_deterministic_and_independent_of_cluster_order(world in arb_world()) {
        let first = world.workload.decide(world.clusters.clone());
        let again = world.workload.decide(world.clusters.clone());
        prop_assert_eq!(&first, &again);
        let shuffled = world.workload.decide(world.shuffled.clone());
        prop_assert_eq!(&first, &shuffled);
    }

    // Audit places wherever enforce does and keeps those targets' clusters eligible; enforce
    // never places where audit refuses.
    #[test]
    fn enforce_never_places_where_audit_would_refuse(world in arb_world()) {
        let mut enforced = world.workload.clone();
        enforced.class.enforcement = Enforcement::Enforce;
        let mut audited = world.workload.clone();
        audited.class.enforcement = Enforcement::Audit;
        let enforced = enforced.decide(world.clusters.clone());
        let audited = audited.decide(world.clusters.clone());
        if matches!(enforced.outcome, Outcome::Placed(_)) {
            prop_assert!(matches!(audited.outcome, Outcome::Placed(_)), "{:?}", audited);
        }
        prop_assert_eq!(
            enforced.verdicts.iter().map(|v| &v.reasons).collect::<Vec<_>>(),
            audited.verdicts.iter().map(|v| &v.reasons).collect::<Vec<_>>()
        );
    }

    // Stability: deciding again with the placement recorded as current keeps the same clusters
    // and pools (the controller writes the targets back to status between reconciles).
    #[test]
    fn redeciding_with_the_placement_as_current_keeps_it(world in arb_world()) {
        let first = world.workload.decide(world.clusters.clone());
        let mut again = world.workload.clone();
        again.current = first
            .targets()
            .iter()
            .map(|t| CurrentPlacement { cluster: t.cluster.clone(), pools: t.pools.clone() })
            .collect();
        let second = again.decide(world.clusters.clone());
        let placed = |d: &Decision| -> BTreeSet<(String, Vec<String>)> {
            d.targets().iter().map(|t| (t.cluster.clone(), t.pools.clone())).collect()
        };
        prop_assert_eq!(placed(&first), placed(&second));
    }
}

// ---------------------------------------------------------------------------------------------
// Provider diversity (minProviders) and exit readiness
// ---------------------------------------------------------------------------------------------

/// An `internal`-qualifying cluster in NL of provider `provider`, with one sovereign pool.
fn provider_cluster(name: &str, provider: &str) -> ClusterBuilder {
    cluster(name)
        .provider(provider, "NL", false)
        .certs([Bio])
        .pool(pool("general").sovereign_nodes(3))
}

impl Workload {
    fn min_providers(mut self, n: i32) -> Self {
        self.preferences.min_providers = Some(n);
        self
    }

    fn class_min_providers(mut self, n: i32) -> Self {
        self.class.continuity.min_providers = n;
        self
    }
}

fn providers_of(decision: &Decision, clusters: &[ClusterBuilder]) -> BTreeSet<String> {
    decision
        .targets()
        .iter()
        .filter_map(|t| clusters.iter().find(|c| c.0.name == t.cluster))
        .map(|c| c.0.spec.provider.identity().to_owned())
        .collect()
}

#[test]
fn two_providers_required_spreads_the_workload_over_two_providers_not_two_clusters_of_one() {
    let clusters = [
        provider_cluster("a1", "Alpha"),
        provider_cluster("a2", "Alpha"),
        provider_cluster("b1", "Beta"),
    ];
    let decision = workload("internal")
        .min_providers(2)
        .decide(clusters.clone());
    assert_eq!(
        providers_of(&decision, &clusters),
        BTreeSet::from(["Alpha".to_owned(), "Beta".to_owned()])
    );
    assert_eq!(targets(&decision).len(), 2);
}

#[test]
fn clusters_of_providers_with_one_parent_count_as_one_provider() {
    let clusters = [
        provider_cluster("a", "Alpha").parent("Holding", "NL", false),
        provider_cluster("b", "Beta").parent("Holding", "NL", false),
    ];
    let decision = workload("internal").min_providers(2).decide(clusters);
    assert_eq!(
        refusal(&decision),
        [Reason::NotEnoughProviders {
            wanted: 2,
            found: s(&["Holding"]),
        }]
    );
    assert_eq!(
        decision.deciding_reason().map(Reason::code),
        Some("NotEnoughProviders")
    );
}

#[test]
fn the_class_minimum_holds_and_a_workload_can_raise_but_not_lower_it() {
    let clusters = [
        provider_cluster("a", "Alpha"),
        provider_cluster("b", "Beta"),
        provider_cluster("c", "Gamma"),
    ];
    let class_two = workload("internal").class_min_providers(2);
    assert_eq!(class_two.request().min_providers(), 2);
    assert_eq!(targets(&class_two.decide(clusters.clone())).len(), 2);
    let lowered = class_two.clone().min_providers(1);
    assert_eq!(lowered.request().min_providers(), 2, "never lowered");
    let raised = class_two.min_providers(3);
    assert_eq!(targets(&raised.decide(clusters)).len(), 3);
}

#[test]
fn too_few_providers_is_refused_under_audit_too_naming_the_compliant_providers() {
    let clusters = [
        provider_cluster("a", "Alpha"),
        provider_cluster("b", "Alpha"),
    ];
    let decision = workload("internal")
        .audit()
        .min_providers(2)
        .decide(clusters);
    let reasons = refusal(&decision);
    assert!(
        reasons.contains(&Reason::NotEnoughProviders {
            wanted: 2,
            found: s(&["Alpha"]),
        }),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .find(|r| r.code() == "NotEnoughProviders")
            .is_some_and(|r| r.to_string().contains("only from one provider: Alpha")),
        "{reasons:?}"
    );
}

#[test]
fn a_provider_whose_parent_is_exposed_to_non_eu_law_stops_qualifying_for_confidential() {
    let exposed = gov_nl().parent("Overseas Group", "US", true);
    let decision = workload("confidential").decide([exposed]);
    assert!(
        cluster_reasons(&decision, GOV_NL).contains(&Reason::ExtraterritorialExposure {
            provider: "Overseas Group".into()
        }),
        "{decision:#?}"
    );
    assert!(matches!(decision.outcome, Outcome::Refused(_)));
}

#[test]
fn diversity_keeps_the_current_placement_of_each_provider() {
    let clusters = [
        provider_cluster("a1", "Alpha"),
        provider_cluster("a2", "Alpha"),
        provider_cluster("b1", "Beta"),
        provider_cluster("b2", "Beta"),
    ];
    let decision = workload("internal")
        .min_providers(2)
        .currently_on("a2", ["general"])
        .currently_on("b2", ["general"])
        .decide(clusters);
    let placed: Vec<String> = targets(&decision).into_iter().map(|t| t.cluster).collect();
    assert_eq!(placed, s(&["a2", "b2"]));
}

#[test]
fn a_workload_with_a_compliant_cluster_of_another_provider_is_exit_ready() {
    let clusters: Vec<ClusterFacts> = [
        provider_cluster("a", "Alpha"),
        provider_cluster("a2", "Alpha"),
        provider_cluster("b", "Beta"),
        provider_cluster("us", "Gamma").country("US"),
    ]
    .into_iter()
    .map(|c| c.0)
    .collect();
    let decision = workload("internal")
        .currently_on("a", ["general"])
        .decide(clusters.clone());
    let exit = sovra::policy::exit_readiness(&decision, &clusters).unwrap();
    assert_eq!(exit.providers, s(&["Alpha"]));
    assert_eq!(
        exit.alternatives,
        [sovra::policy::Alternative {
            cluster: "b".into(),
            provider: "Beta".into()
        }],
        "another cluster of the same provider and a non-compliant one are no way out"
    );
    assert!(!exit.stranded());
}

#[test]
fn a_workload_spread_over_two_providers_is_not_stranded_without_a_third() {
    let clusters: Vec<ClusterFacts> = [
        provider_cluster("a", "Alpha"),
        provider_cluster("b", "Beta"),
    ]
    .into_iter()
    .map(|c| c.0)
    .collect();
    let decision = workload("internal")
        .min_providers(2)
        .decide(clusters.clone());
    let exit = sovra::policy::exit_readiness(&decision, &clusters).unwrap();
    assert_eq!(exit.providers, s(&["Alpha", "Beta"]));
    assert!(exit.alternatives.is_empty());
    assert!(
        !exit.stranded(),
        "losing either provider leaves it on the other"
    );
}

#[test]
fn a_workload_whose_only_compliant_provider_is_the_one_it_runs_on_is_stranded_but_placed() {
    let clusters: Vec<ClusterFacts> = [
        provider_cluster("a", "Alpha"),
        provider_cluster("b", "Beta").parent("Alpha", "NL", false),
    ]
    .into_iter()
    .map(|c| c.0)
    .collect();
    let decision = workload("internal").decide(clusters.clone());
    assert!(matches!(decision.outcome, Outcome::Placed(_)));
    let exit = sovra::policy::exit_readiness(&decision, &clusters).unwrap();
    assert!(exit.stranded(), "{exit:?}");
    let refused = workload("internal").decide(Vec::<ClusterFacts>::new());
    assert!(sovra::policy::exit_readiness(&refused, &[]).is_none());
}

proptest! {
    #[test]
    fn exit_alternatives_are_compliant_clusters_of_providers_the_workload_does_not_use(
        world in arb_world()
    ) {
        let decision = decide(&world.workload.request(), &world.clusters);
        if let Some(exit) = sovra::policy::exit_readiness(&decision, &world.clusters) {
            for alternative in &exit.alternatives {
                prop_assert!(!exit.providers.contains(&alternative.provider));
                prop_assert!(verdict(&decision, &alternative.cluster, None).compliant);
            }
            // Stranded: on one provider, with nowhere else to go.
            prop_assert_eq!(
                exit.stranded(),
                exit.alternatives.is_empty() && exit.providers.len() == 1
            );
        } else {
            prop_assert!(matches!(decision.outcome, Outcome::Refused(_)));
        }
    }
}
