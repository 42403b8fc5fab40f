//! One refusal per class of refusal, decided by the engine and summarized: the deciding
//! constraint and the nearest candidate, word for word.

mod fixtures;

use super::refusal_summary;
use crate::crd::Certification::{Bio, C5, EucsHigh, SecNumCloud};
use crate::crd::{Enforcement, Jurisdiction, OperatedBy, PlacementPreferences};
use crate::policy::{Decision, Reason};
use fixtures::{
    Case, case, certs, cluster, dedicated, hubs, not_sovereign, pool, pools, provider, unreachable,
};

#[test]
fn each_class_of_refusal_leads_with_its_deciding_constraint_and_names_the_nearest() {
    let table: Vec<(&str, Case, &str, Option<&str>)> = vec![
        (
            "country",
            case(hubs()).required(&["FR"]),
            "no SovereignCluster is in FR (requiredCountries: [FR]); clusters exist in DE, NL",
            Some(
                "hub-de/general, which meets every requirement but country (country DE is not in spec.placement.requiredCountries)",
            ),
        ),
        (
            "class countries",
            case(hubs()).class(|c| c.location.countries = Some(vec!["FR".to_owned()])),
            "no SovereignCluster is in a country the class allows (FR); clusters exist in DE, NL",
            Some(
                "hub-de/general, which meets every requirement but the class's countries (country DE is not allowed by the class (allowed: FR))",
            ),
        ),
        (
            "jurisdiction",
            case(vec![cluster("nordic", "NO")])
                .class(|c| c.location.jurisdictions = vec![Jurisdiction::Eu]),
            "no SovereignCluster is in a jurisdiction the class allows; clusters exist in NO (EEA)",
            Some(
                "nordic/general, which meets every requirement but jurisdiction (country NO (EEA) is not in a jurisdiction the class allows)",
            ),
        ),
        (
            "EU/EEA location",
            case(vec![cluster("us-east", "US"), cluster("zurich", "CH")]),
            "no SovereignCluster is in the EU/EEA; clusters exist in CH, US",
            Some(
                "us-east/general, which meets every requirement but EU/EEA location (country US is outside the EU/EEA)",
            ),
        ),
        (
            "provider exposure",
            case(
                hubs()
                    .into_iter()
                    .map(|c| provider(c, "Hyperscaler", "US", true))
                    .collect(),
            ),
            "no provider qualifies: every cluster's provider is exposed to extraterritorial non-EU law (Hyperscaler)",
            Some(
                "hub-de/general, which meets every requirement but extraterritorial exposure (provider Hyperscaler is subject to extraterritorial non-EU law)",
            ),
        ),
        (
            "provider headquarters",
            case(vec![
                provider(cluster("hub-de", "DE"), "Hyperscaler", "US", false),
                provider(cluster("hub-nl", "NL"), "Alpine Cloud", "CH", false),
            ])
            .class(|c| c.provider.headquarters_jurisdictions = vec![Jurisdiction::Eu]),
            "no provider qualifies: every cluster's provider is headquartered outside the jurisdictions the class allows (Hyperscaler in US, Alpine Cloud in CH)",
            Some(
                "hub-de/general, which meets every requirement but provider headquarters (provider Hyperscaler is headquartered in US (third country))",
            ),
        ),
        (
            "operator",
            case(hubs()).class(|c| c.provider.operated_by = vec![OperatedBy::Government]),
            "no cluster is operated by an operator the class allows; clusters are operated by eu-provider",
            Some(
                "hub-de/general, which meets every requirement but operator (operated by eu-provider, which the class does not allow)",
            ),
        ),
        (
            "certification",
            case(vec![
                certs(cluster("hub-de", "DE"), &[]),
                cluster("hub-nl", "NL"),
            ])
            .class(|c| c.certifications.all_of = vec![Bio, C5]),
            "no cluster holds certification C5, which the class requires",
            Some(
                "hub-nl/general, which meets every requirement but certifications (missing certifications: C5)",
            ),
        ),
        (
            "one-of certifications",
            case(hubs()).class(|c| c.certifications.any_of = vec![EucsHigh, SecNumCloud]),
            "no cluster holds any of the certifications EUCS-High, SecNumCloud",
            Some(
                "hub-de/general, which meets every requirement but one-of certifications (holds none of the certifications: EUCS-High, SecNumCloud)",
            ),
        ),
        (
            "no sovereign pool",
            case(
                hubs()
                    .into_iter()
                    .map(|c| pools(c, vec![not_sovereign("general")]))
                    .collect(),
            ),
            "no cluster has a sovereign node pool: no node carries the administrator-set label node-restriction.kubernetes.io/sovra-sovereign=true",
            Some(
                "hub-de/general, which meets every requirement but sovereign nodes (cluster has no sovereign node pool; no node carries the administrator-set sovereign label)",
            ),
        ),
        (
            "dedicated pool",
            case(hubs())
                .named("confidential")
                .class(|c| c.node_pool.dedicated = true),
            "no node pool is dedicated to class confidential (taint sovra.dev/sensitivity=confidential:NoSchedule)",
            Some(
                "hub-de/general, which meets every requirement but a dedicated pool (pool is not dedicated to class confidential (taint sovra.dev/sensitivity=confidential:NoSchedule))",
            ),
        ),
        (
            "not enough clusters",
            case(vec![
                certs(cluster("hub-de", "DE"), &[]),
                cluster("hub-nl", "NL"),
            ])
            .class(|c| c.certifications.all_of = vec![Bio])
            .spread(2),
            "2 distinct compliant clusters requested, 1 qualifies: hub-nl",
            Some(
                "hub-de/general, which meets every requirement but certifications (missing certifications: BIO)",
            ),
        ),
        (
            "not enough providers",
            case(hubs()).class(|c| c.continuity.min_providers = 2),
            "2 distinct providers (minProviders) requested, 1 qualifies: Rijkscloud; there is no other SovereignCluster",
            None,
        ),
        (
            "unreachable",
            case(vec![
                unreachable(cluster("hub-nl", "NL"), "timed out"),
                unreachable(cluster("hub-de", "DE"), "connection refused"),
            ]),
            "no cluster can be reached: hub-de (connection refused), hub-nl (timed out)",
            Some(
                "hub-de/general, which meets every requirement but reachability (cluster unreachable: connection refused)",
            ),
        ),
    ];
    for (class, case, deciding, nearest) in table {
        let summary = case.summary();
        assert_eq!(summary.deciding, deciding, "{class}");
        assert_eq!(summary.nearest.as_deref(), nearest, "{class}");
    }
}

#[test]
fn the_headline_is_the_deciding_constraint_then_the_nearest_candidate() {
    let summary = case(hubs()).required(&["FR"]).summary();
    assert_eq!(
        summary.headline(),
        "no SovereignCluster is in FR (requiredCountries: [FR]); clusters exist in DE, NL; nearest: hub-de/general, which meets every requirement but country (country DE is not in spec.placement.requiredCountries)"
    );
}

#[test]
fn requirements_that_only_rule_out_every_candidate_together_are_named_with_whom_each_rules_out() {
    // Only hub-de is in DE, and its provider is a US hyperscaler's.
    let clusters = vec![
        provider(cluster("hub-de", "DE"), "Hyperscaler EU", "US", true),
        cluster("hub-nl", "NL"),
        cluster("hub-fr", "FR"),
    ];
    let summary = case(clusters).required(&["DE"]).summary();
    assert_eq!(
        summary.deciding,
        "country and extraterritorial exposure together rule out every candidate: outside requiredCountries [DE]: hub-fr (FR), hub-nl (NL); provider exposed to extraterritorial non-EU law: hub-de (Hyperscaler EU)"
    );
    assert_eq!(
        summary.nearest.as_deref(),
        Some(
            "hub-de/general, which meets every requirement but extraterritorial exposure (provider Hyperscaler EU is subject to extraterritorial non-EU law)"
        )
    );
}

#[test]
fn pools_dedicated_to_another_class_and_undedicated_pools_are_both_named() {
    let clusters = vec![
        cluster("hub-de", "DE"),
        pools(cluster("hub-nl", "NL"), vec![dedicated("secret", "secret")]),
    ];
    let summary = case(clusters)
        .named("confidential")
        .class(|c| c.node_pool.dedicated = true)
        .summary();
    assert_eq!(
        summary.deciding,
        "a dedicated pool and a pool free of other classes together rule out every candidate: pool not dedicated to class confidential: hub-de/general; pool dedicated to another class: hub-nl/secret (secret)"
    );
}

#[test]
fn a_pool_in_another_country_than_its_cluster_is_named_as_a_pool() {
    let mut in_nl = pool("general");
    in_nl.country = Some("NL".to_owned());
    let summary = case(vec![pools(cluster("hub-fr", "FR"), vec![in_nl])])
        .required(&["FR"])
        .summary();
    assert_eq!(
        summary.deciding,
        "no SovereignCluster and node pool is in FR (requiredCountries: [FR]); candidates are in NL"
    );
}

#[test]
fn too_few_clusters_when_every_cluster_qualifies_says_there_is_no_other() {
    let summary = case(hubs()).spread(3).summary();
    assert_eq!(
        summary.deciding,
        "3 distinct compliant clusters requested, 2 qualify: hub-de, hub-nl; there is no other SovereignCluster"
    );
    assert_eq!(summary.nearest, None);
}

#[test]
fn a_kept_placement_on_an_unreachable_cluster_counts_among_those_that_qualify() {
    let clusters = vec![
        cluster("hub-de", "DE"),
        unreachable(cluster("hub-nl", "NL"), "timed out"),
    ];
    let summary = case(clusters).current("hub-nl").spread(3).summary();
    assert_eq!(
        summary.deciding,
        "3 distinct compliant clusters requested, 2 qualify: hub-de, hub-nl (kept while unreachable); there is no other SovereignCluster"
    );
}

#[test]
fn under_audit_only_what_is_enforced_decides() {
    let clusters = vec![certs(cluster("hub-nl", "NL"), &[])];
    let summary = case(clusters)
        .class(|c| {
            c.enforcement = Enforcement::Audit;
            c.certifications.all_of = vec![Bio];
        })
        .required(&["FR"])
        .summary();
    assert_eq!(
        summary.headline(),
        "no SovereignCluster is in FR (requiredCountries: [FR]); clusters exist in NL; nearest: hub-nl/general, which meets every enforced requirement but country (country NL is not in spec.placement.requiredCountries)"
    );
}

#[test]
fn a_missing_class_and_a_missing_fleet_are_said_plainly() {
    let preferences = PlacementPreferences::default();
    let missing = Decision::refused(Reason::ClassNotFound {
        class: "secret".to_owned(),
    });
    assert_eq!(
        refusal_summary(&missing, &[], &preferences)
            .unwrap()
            .headline(),
        "SensitivityClass secret does not exist, so nothing can be proven about where the workload may run"
    );
    assert_eq!(
        case(Vec::new()).summary().headline(),
        "no SovereignCluster exists, so there is nowhere to place anything"
    );
}

#[test]
fn the_summary_does_not_depend_on_the_order_of_clusters() {
    let mut clusters = vec![
        provider(cluster("hub-de", "DE"), "Hyperscaler EU", "US", true),
        cluster("hub-nl", "NL"),
        cluster("hub-fr", "FR"),
    ];
    let forward = case(clusters.clone()).required(&["DE"]).summary();
    clusters.reverse();
    assert_eq!(case(clusters).required(&["DE"]).summary(), forward);
}

#[test]
fn a_placed_decision_has_no_refusal_summary() {
    let case = case(hubs());
    let decision = case.decision();
    assert!(refusal_summary(&decision, &case.clusters, &case.preferences).is_none());
}
