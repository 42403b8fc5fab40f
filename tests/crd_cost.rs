//! The CEL cost of the CRDs' `x-kubernetes-validations` rules, estimated the way kube-apiserver
//! does when a CRD is written (test_apiserver's `cel_cost`). The CRDs in
//! tests/fixtures/crds-before-bounds are the ones a real kube-apiserver v1.32 rejected: the
//! estimator must reject them for the reasons that server gave, and the test server must
//! answer them with the same 422.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use test_apiserver::{
    Cardinality, Cause, ResourceRef, STATIC_ESTIMATED_COST_LIMIT, STATIC_ESTIMATED_CRD_COST_LIMIT,
    TestApiServer, budget_violations, estimate_crd,
};

const SCHEMA: &str = "spec.validation.openAPIV3Schema";
const COUNTRIES_RULE: &str = "spec.validation.openAPIV3Schema.properties[spec].properties[location]\
                              .properties[countries].x-kubernetes-validations[0].rule";
const PLACEMENT_RULE: &str = "spec.validation.openAPIV3Schema.properties[spec].properties[placement]\
                              .x-kubernetes-validations[0].rule";
const ADVICE: &str = "(try simplifying the rule, or adding maxItems, maxProperties, and maxLength \
                      where arrays, maps, and strings are declared)";

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/crds-before-bounds/{name}.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn forbidden(field: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueForbidden".into(),
        message: format!("Forbidden: {detail}"),
        field: field.into(),
    }
}

fn generated_crds() -> Vec<Value> {
    sovra::crd::all()
        .into_iter()
        .map(|crd| serde_json::to_value(crd).unwrap())
        .collect()
}

fn crd_resource() -> ResourceRef {
    ResourceRef::new("apiextensions.k8s.io", "v1", "customresourcedefinitions")
}

#[test]
fn the_sensitivityclass_countries_rule_a_real_api_server_rejected_exceeds_the_rule_budget_by_4_6x()
{
    let crd = fixture("sensitivityclasses.sovra.dev");
    let message = format!("estimated rule cost exceeds budget by factor of 4.6x {ADVICE}");
    assert_eq!(
        budget_violations(&crd),
        [forbidden(COUNTRIES_RULE, &message)]
    );
    let estimate = estimate_crd(&crd).unwrap();
    let countries = estimate.rules().find(|r| r.path == COUNTRIES_RULE).unwrap();
    // An unbounded list of strings: (3 MiB - 2) / 3 items, each costing 44.
    assert_eq!(countries.per_call_cost, 46_137_302);
    assert_eq!(countries.cardinality, Cardinality::Bounded(1));
    // Within the total for the schema: the API server reported no total for this CRD.
    assert!(estimate.total() <= STATIC_ESTIMATED_CRD_COST_LIMIT);
}

#[test]
fn the_sovereignworkload_placement_rule_a_real_api_server_rejected_exceeds_the_rule_and_the_schema_budget_by_more_than_100x()
 {
    let crd = fixture("sovereignworkloads.sovra.dev");
    let rule = format!("estimated rule cost exceeds budget by factor of more than 100x {ADVICE}");
    let total = format!(
        "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds \
         budget by factor of more than 100x {ADVICE}"
    );
    let contributed =
        "contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema";
    assert_eq!(
        budget_violations(&crd),
        [
            forbidden(PLACEMENT_RULE, &rule),
            forbidden(PLACEMENT_RULE, contributed),
            forbidden(SCHEMA, &total),
        ]
    );
    let estimate = estimate_crd(&crd).unwrap();
    let placement = estimate.rules().find(|r| r.path == PLACEMENT_RULE).unwrap();
    // Quadratic: every preferred country looked up in an unbounded list of required ones.
    assert_eq!(placement.cost, 1_099_515_822_082);
    assert_eq!(estimate.total(), 1_099_515_822_082 + 104);
}

#[test]
fn the_sovereigncluster_crd_a_real_api_server_accepted_is_within_budget() {
    let crd = fixture("sovereignclusters.sovra.dev");
    assert_eq!(budget_violations(&crd), []);
    let costs: Vec<u64> = estimate_crd(&crd)
        .unwrap()
        .rules()
        .map(|r| r.cost)
        .collect();
    assert_eq!(costs, [5]);
}

#[test]
fn every_rule_of_the_generated_crds_costs_under_a_tenth_of_the_budget() {
    let mut failures = Vec::new();
    println!(
        "{:<118} {:>12} {:>12} {:>14} {:>9}",
        "RULE", "PER CALL", "CARDINALITY", "COST", "BUDGET"
    );
    for crd in generated_crds() {
        let estimate = estimate_crd(&crd).unwrap();
        for rule in estimate.rules() {
            let cardinality = match rule.cardinality {
                Cardinality::Bounded(n) => n.to_string(),
                Cardinality::Estimated(n) => format!("~{n}"),
                Cardinality::NotApplied => "-".into(),
            };
            let share = rule.cost as f64 / STATIC_ESTIMATED_COST_LIMIT as f64 * 100.0;
            println!(
                "{:<118} {:>12} {:>12} {:>14} {:>8.4}%",
                format!("{}: {}", estimate.name, rule.path),
                rule.per_call_cost,
                cardinality,
                rule.cost,
                share
            );
            if rule.cost >= STATIC_ESTIMATED_COST_LIMIT / 10 {
                failures.push(format!(
                    "{}: {} costs {}",
                    estimate.name, rule.path, rule.cost
                ));
            }
        }
        let share = estimate.total() as f64 / STATIC_ESTIMATED_CRD_COST_LIMIT as f64 * 100.0;
        println!(
            "{:<118} {:>12} {:>12} {:>14} {:>8.4}%",
            format!("{}: total", estimate.name),
            "",
            "",
            estimate.total(),
            share
        );
        if estimate.total() >= STATIC_ESTIMATED_CRD_COST_LIMIT / 10 {
            failures.push(format!("{}: total {}", estimate.name, estimate.total()));
        }
    }
    assert!(
        failures.is_empty(),
        "over a tenth of the budget: {failures:#?}"
    );
}

#[tokio::test]
async fn registering_a_crd_a_real_api_server_rejected_is_answered_422_with_the_same_causes() {
    let server = TestApiServer::start().await;
    for name in [
        "sensitivityclasses.sovra.dev",
        "sovereignworkloads.sovra.dev",
    ] {
        let crd = fixture(name);
        let err = server.put(crd.clone()).unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"), "{err}");
        let details = err.details.clone().unwrap();
        assert_eq!(details["causes"], json!(budget_violations(&crd)), "{name}");
        assert_eq!(details["kind"], "CustomResourceDefinition");
        assert_eq!(details["name"], name);
        let prefix =
            format!("CustomResourceDefinition.apiextensions.k8s.io \"{name}\" is invalid: ");
        assert!(err.message.starts_with(&prefix), "{}", err.message);
        assert!(
            server.get(&crd_resource(), None, name).is_none(),
            "{name} was stored"
        );
    }
    let err = server
        .put(fixture("sensitivityclasses.sovra.dev"))
        .unwrap_err();
    assert_eq!(
        err.message,
        format!(
            "CustomResourceDefinition.apiextensions.k8s.io \"sensitivityclasses.sovra.dev\" is \
             invalid: {COUNTRIES_RULE}: Forbidden: estimated rule cost exceeds budget by factor \
             of 4.6x {ADVICE}"
        )
    );
}

#[tokio::test]
async fn registering_the_generated_crds_succeeds_and_an_over_budget_update_is_refused() {
    let server = TestApiServer::start().await;
    for crd in generated_crds() {
        let name = crd["metadata"]["name"].as_str().unwrap().to_string();
        server
            .put(crd)
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert!(server.get(&crd_resource(), None, &name).is_some());
    }
    // Replacing a registered CRD with its over-budget version is refused; the old one stays.
    let before = server
        .get(&crd_resource(), None, "sovereignworkloads.sovra.dev")
        .unwrap();
    let err = server
        .put(fixture("sovereignworkloads.sovra.dev"))
        .unwrap_err();
    assert_eq!(err.code, 422);
    let after = server
        .get(&crd_resource(), None, "sovereignworkloads.sovra.dev")
        .unwrap();
    assert_eq!(before, after);
}

#[tokio::test]
async fn creating_or_applying_an_over_budget_crd_through_the_api_is_invalid() {
    let server = TestApiServer::start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    let value = fixture("sensitivityclasses.sovra.dev");
    let crd: CustomResourceDefinition = serde_json::from_value(value.clone()).unwrap();
    let status = |err: kube::Error| match err {
        kube::Error::Api(status) => status,
        other => panic!("expected an API error, got {other:?}"),
    };
    let created = status(crds.create(&PostParams::default(), &crd).await.unwrap_err());
    let apply = PatchParams::apply("crd-cost-test");
    let applied = status(
        crds.patch("sensitivityclasses.sovra.dev", &apply, &Patch::Apply(&crd))
            .await
            .unwrap_err(),
    );
    for status in [created, applied] {
        assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
        let causes = status.details.unwrap().causes;
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].reason, "FieldValueForbidden");
        assert_eq!(causes[0].field, COUNTRIES_RULE);
        assert!(causes[0].message.contains("factor of 4.6x"));
    }
    assert!(
        crds.get_opt("sensitivityclasses.sovra.dev")
            .await
            .unwrap()
            .is_none()
    );
}
