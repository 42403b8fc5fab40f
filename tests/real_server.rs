//! Sovra against REAL Kubernetes binaries, envtest style: etcd and kube-apiserver from
//! `$KUBEBUILDER_ASSETS` (the controller-runtime convention), Sovra's CRDs applied with kubectl,
//! its chart installed with Helm, and the operator running in-process as the chart's
//! ServiceAccount (a TokenRequest token), so the API server's own validation, CEL, admission
//! (NodeRestriction included) and RBAC decide, not a test double. See README "Real-server tests".
//!
//! Without `KUBEBUILDER_ASSETS` every control-plane test prints one `skipped:` line and passes,
//! so this file compiles and runs inside `cargo test --workspace` too. The etcd test runs
//! whenever an etcd binary is found (`$KUBEBUILDER_ASSETS/etcd` or `etcd` on PATH), the
//! certificate test whenever `openssl` is on PATH.
//!
//! Each scenario test starts its own hub (and member) control plane; they take turns
//! ([`harness::one_at_a_time`]). Nothing runs pods here (no scheduler, kubelet or
//! controller-manager): the tests check what Sovra asks of the API server and what it accepts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

#[path = "real_server/mod.rs"]
mod harness;

use harness::apiserver::{
    ApiServer, client_from_kubeconfig, kubeconfig, kubeconfig_with_cert, write_private,
};
use harness::certs::{Authority, service_account_key};
use harness::etcd::Etcd;
use harness::hub::*;
use harness::process::{Process, executable, free_port, on_path, quiet_on_panic, run};
use harness::{WAIT, binaries, etcd_binary, one_at_a_time, repo, skip};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{Node, Secret};
use kube::api::{Api, GetParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::{
    HUB, NAMESPACE, OPERATOR_NAMESPACE, POOL_LABEL, SOVEREIGN, affinity_values, kubeconfig_secret,
    member_cluster, pinned_to_de, workload,
};

fn condition(object: &Value, type_: &str) -> Value {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .cloned()
        .unwrap_or_else(|| panic!("condition {type_} in {object}"))
}

fn pool<'a>(cluster: &'a Value, name: &str) -> Option<&'a Value> {
    cluster
        .pointer("/status/nodePools")?
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
}

async fn wait_for_phase(server: &ApiServer, name: &str, phase: &str) -> Value {
    wait_for_field(
        server,
        WORKLOAD,
        Some(NAMESPACE),
        name,
        "/status/phase",
        json!(phase),
    )
    .await
}

/// A Pod of workload `workload` bound straight to `node` (as if made by hand, not by Sovra).
fn hand_made_pod(name: &str, workload: &str, class: &str, node: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE,
                     "labels": {"sovra.dev/workload": workload, "sovra.dev/sensitivity": class, "app": workload}},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": format!("registry.example.nl/{workload}:1")}]}
    })
}

fn is_gone_or_terminating(pod: Option<&Value>) -> bool {
    pod.is_none_or(|p| p.pointer("/metadata/deletionTimestamp").is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_starts_serves_and_is_cleaned_up_also_when_a_test_panics() {
    let test = "etcd_starts_serves_and_is_cleaned_up_also_when_a_test_panics";
    let Some(binary) = etcd_binary() else {
        skip(
            test,
            "no etcd binary (neither $KUBEBUILDER_ASSETS/etcd nor etcd on PATH; Debian: apt-get install etcd-server)",
        );
        return;
    };
    let etcd = Etcd::start(&binary).await;
    let (addr, pid, dir) = (etcd.client_addr().to_owned(), etcd.pid(), etcd.dir());
    assert!(
        dir.join("data/member").is_dir(),
        "etcd keeps its data in its temp dir"
    );
    etcd.put("/sovra/real-server", "serving");
    assert_eq!(etcd.get("/sovra/real-server").as_deref(), Some("serving"));
    assert_eq!(etcd.get("/sovra/absent"), None);
    drop(etcd);
    assert_cleaned_up(pid, &dir, &addr);

    // A failing test: the panic unwinds through the harness, which still kills and removes.
    let (sender, received) = std::sync::mpsc::channel();
    let failing = std::thread::spawn(move || {
        quiet_on_panic();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let etcd = Etcd::start(&binary).await;
            sender
                .send((etcd.pid(), etcd.dir(), etcd.client_addr().to_owned()))
                .unwrap();
            panic!("deliberate panic: checking that etcd is cleaned up when a test fails");
        })
    });
    assert!(failing.join().is_err(), "the thread panicked");
    let (pid, dir, addr) = received.recv().unwrap();
    assert_cleaned_up(pid, &dir, &addr);
}

fn assert_cleaned_up(pid: u32, dir: &Path, addr: &str) {
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "etcd (pid {pid}) was killed and reaped"
    );
    assert!(!dir.exists(), "{} was removed", dir.display());
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "nothing listens on {addr} any more"
    );
}

/// The certificates and kubeconfigs the harness gives kube-apiserver and its clients, checked
/// without kube-apiserver: by openssl, and over TLS against `openssl s_server` (which demands
/// a client certificate from the client CA, as `--client-ca-file` does) with kube-rs (rustls)
/// and kubectl (Go's TLS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_certificates_and_kubeconfigs_work_with_rustls_and_kubectl() {
    let test = "generated_certificates_and_kubeconfigs_work_with_rustls_and_kubectl";
    let Some(openssl) = on_path("openssl") else {
        skip(test, "no openssl on PATH");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| dir.path().join(name).display().to_string();
    let serving_ca = Authority::new("sovra-test check serving CA");
    let serving = serving_ca.serving(&["127.0.0.1", "localhost"]);
    let client_ca = Authority::new("sovra-test check client CA");
    let admin = client_ca.client("sovra-test-admin", "system:masters");
    let sa = service_account_key();
    for (name, content) in [
        ("serving-ca.crt", serving_ca.cert_pem()),
        ("apiserver.crt", serving.cert.clone()),
        ("apiserver.key", serving.key.clone()),
        ("client-ca.crt", client_ca.cert_pem()),
        ("admin.crt", admin.cert.clone()),
        ("sa.key", sa.private_pem.clone()),
        ("sa.pub", sa.public_pem.clone()),
    ] {
        write_private(&dir.path().join(name), &content);
    }
    let openssl_says = |args: &[String]| {
        let (status, out, err) = run(
            &format!("openssl {}", args.join(" ")),
            Command::new(&openssl).args(args),
            WAIT,
        );
        (status.success(), format!("{out}{err}"))
    };
    let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
    for check in [
        args(&[
            "verify",
            "-CAfile",
            &file("serving-ca.crt"),
            "-purpose",
            "sslserver",
            "-verify_ip",
            "127.0.0.1",
            &file("apiserver.crt"),
        ]),
        args(&[
            "verify",
            "-CAfile",
            &file("serving-ca.crt"),
            "-purpose",
            "sslserver",
            "-verify_hostname",
            "localhost",
            &file("apiserver.crt"),
        ]),
        args(&[
            "verify",
            "-CAfile",
            &file("client-ca.crt"),
            "-purpose",
            "sslclient",
            &file("admin.crt"),
        ]),
        args(&["pkey", "-in", &file("sa.key"), "-noout"]),
        args(&["pkey", "-pubin", "-in", &file("sa.pub"), "-noout"]),
    ] {
        let (ok, said) = openssl_says(&check);
        assert!(ok, "openssl {}: {said}", check.join(" "));
    }
    let (ok, said) = openssl_says(&args(&[
        "verify",
        "-CAfile",
        &file("serving-ca.crt"),
        &file("admin.crt"),
    ]));
    assert!(
        !ok,
        "the serving CA must not vouch for client certificates: {said}"
    );
    let (_, subject) = openssl_says(&args(&[
        "x509",
        "-in",
        &file("admin.crt"),
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253",
    ]));
    assert!(
        subject.contains("CN=sovra-test-admin,O=system:masters"),
        "user and group as kube-apiserver reads them: {subject}"
    );

    let port = free_port();
    let mut server = Process::spawn(
        "openssl s_server",
        &openssl,
        &args(&[
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            &file("apiserver.crt"),
            "-key",
            &file("apiserver.key"),
            "-CAfile",
            &file("client-ca.crt"),
            "-Verify",
            "1",
            "-verify_return_error",
            "-www",
        ]),
        &dir.path().join("s_server.log"),
    );
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        server.assert_running("openssl s_server to listen");
        assert!(
            started.elapsed() < WAIT,
            "timed out waiting for: openssl s_server to listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = format!("https://127.0.0.1:{port}");
    let readyz = || {
        kube::core::Request::new("")
            .get("readyz", &GetParams::default())
            .unwrap()
    };

    let admin_kubeconfig = kubeconfig_with_cert(&url, &serving_ca.cert_pem(), &admin);
    let answer = client_from_kubeconfig(&admin_kubeconfig)
        .await
        .request_text(readyz())
        .await
        .unwrap_or_else(|e| panic!("kube-rs with the admin kubeconfig: {e}"));
    assert!(answer.contains("s_server"), "{answer}");
    // The member kubeconfig the harness puts in the hub's Secret (inline CA data, a bearer
    // token) passes Sovra's own kubeconfig safety rules.
    let member_style = kubeconfig(&url, &serving_ca.cert_pem(), json!({"token": "t"}));
    if let Err((fault, message)) = sovra::controller::check_kubeconfig(&member_style) {
        panic!("Sovra refuses the harness's member kubeconfig: {fault:?}: {message}");
    }

    let without_cert = client_from_kubeconfig(&kubeconfig(
        &url,
        &serving_ca.cert_pem(),
        json!({"token": "t"}),
    ))
    .await;
    assert!(
        without_cert.request_text(readyz()).await.is_err(),
        "a client without a certificate from the client CA is refused"
    );
    let trusting_other_ca =
        client_from_kubeconfig(&kubeconfig_with_cert(&url, &client_ca.cert_pem(), &admin)).await;
    assert!(
        trusting_other_ca.request_text(readyz()).await.is_err(),
        "a client that does not trust the serving CA refuses the server"
    );

    let kubectl = Some(repo().join(".tools/bin/kubectl"))
        .filter(|p| executable(p))
        .or_else(|| on_path("kubectl"));
    if let Some(kubectl) = kubectl {
        let path = dir.path().join("admin.kubeconfig");
        write_private(&path, &admin_kubeconfig);
        let (status, out, err) = run(
            "kubectl get --raw /readyz",
            Command::new(kubectl)
                .arg(format!("--kubeconfig={}", path.display()))
                .arg(format!(
                    "--cache-dir={}",
                    dir.path().join("kubectl-cache").display()
                ))
                .args(["get", "--raw", "/readyz"])
                .env("KUBECONFIG", &path),
            WAIT,
        );
        assert!(
            status.success(),
            "kubectl with the admin kubeconfig: {err}{out}"
        );
        assert!(out.contains("s_server"), "{out}");
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_and_the_chart_install_and_the_operator_authenticates_as_the_charts_service_account() {
    let Some(binaries) = binaries(
        "crds_and_the_chart_install_and_the_operator_authenticates_as_the_charts_service_account",
    ) else {
        return;
    };
    let _turn = one_at_a_time().await;
    let hub = ApiServer::start(&binaries, "hub").await;
    assert_eq!(
        crd_names().len(),
        3,
        "crds/ holds three CRDs: {:?}",
        crd_names()
    );
    install_crds(&hub).await;

    let objects = install_chart(&hub).await;
    let mut kinds = BTreeSet::new();
    for object in &objects {
        let text = |p: &str| {
            object
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (kind, name) = (text("/kind"), text("/metadata/name"));
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .or(Some(OPERATOR_NAMESPACE));
        assert!(
            hub.get(&text("/apiVersion"), &kind, namespace, &name)
                .await
                .is_some(),
            "the release's {kind} {name} exists"
        );
        kinds.insert(kind);
    }
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "StatefulSet",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "SensitivityClass",
    ] {
        assert!(
            kinds.contains(kind),
            "the chart installed a {kind}: {kinds:?}"
        );
    }
    for class in ["public", "internal", "confidential", "secret"] {
        assert!(
            hub.get("sovra.dev/v1alpha1", "SensitivityClass", None, class)
                .await
                .is_some(),
            "default SensitivityClass {class}"
        );
    }

    // The operator's credentials: a TokenRequest token of the chart's ServiceAccount.
    let operator = hub
        .service_account_client(OPERATOR_NAMESPACE, RELEASE)
        .await;
    let review = Api::<SelfSubjectReview>::all(operator.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .unwrap();
    let user = review.status.and_then(|s| s.user_info).unwrap_or_default();
    assert_eq!(user.username.as_deref(), Some(OPERATOR_USER));
    assert!(
        user.groups
            .unwrap_or_default()
            .contains(&"system:serviceaccounts:sovra-system".to_owned())
    );
    let one = ListParams::default().limit(1);
    Api::<Node>::all(operator.clone())
        .list(&one)
        .await
        .unwrap_or_else(|e| panic!("the chart lets the operator list Nodes: {e}"));
    for (what, denied) in [
        (
            "list Secrets in every namespace",
            Api::<Secret>::all(operator.clone()).list(&one).await.err(),
        ),
        (
            "list Secrets in its own namespace (it may only get them)",
            Api::<Secret>::namespaced(operator.clone(), OPERATOR_NAMESPACE)
                .list(&one)
                .await
                .err(),
        ),
    ] {
        match denied {
            Some(kube::Error::Api(e)) if e.code == 403 => {}
            other => panic!("the operator may not {what}; got {other:?}"),
        }
    }

    // NodeRestriction: a kubelet may set location labels on its own Node, never the sovereign
    // label (README "Rules Sovra never relaxes"). RBAC alone would deny a kubelet everything
    // here (there is no Node authorizer), so grant it the bootstrap system:node role first.
    hub_fixtures(&hub).await;
    hub.apply(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "sovra-test-kubelets"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}]
    }))
    .await;
    let kubelet: Api<Node> = Api::all(
        hub.client_for("system:node:build-agents-0", "system:nodes")
            .await,
    );
    let label =
        |key: &str, value: &str| Patch::Merge(json!({"metadata": {"labels": {key: value}}}));
    kubelet
        .patch(
            "build-agents-0",
            &PatchParams::default(),
            &label("sovra.dev/country", "DE"),
        )
        .await
        .unwrap_or_else(|e| panic!("a kubelet may change a location label on its own Node: {e}"));
    match kubelet
        .patch(
            "build-agents-0",
            &PatchParams::default(),
            &label(SOVEREIGN, "true"),
        )
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 403 && e.message.contains(SOVEREIGN) => {}
        other => panic!("NodeRestriction must forbid a kubelet the sovereign label; got {other:?}"),
    }
    let node = hub.get("v1", "Node", None, "build-agents-0").await.unwrap();
    assert!(
        node.pointer(&format!(
            "/metadata/labels/{}",
            SOVEREIGN.replace('/', "~1")
        ))
        .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_is_placed_onto_its_sovereign_pool_with_the_required_node_affinity() {
    let Some(binaries) =
        binaries("a_workload_is_placed_onto_its_sovereign_pool_with_the_required_node_affinity")
    else {
        return;
    };
    let _turn = one_at_a_time().await;
    let hub = start_hub(&binaries).await;
    let operator = Operator::start(&hub).await;
    hub.apply(workload("tax", "confidential", 3, json!({})))
        .await;

    let placed = wait_for_phase(&hub, "tax", "Placed").await;
    assert_eq!(placed["status"]["placements"][0]["cluster"], HUB);
    assert_eq!(
        placed["status"]["placements"][0]["nodePools"],
        json!(["gov-confidential"])
    );
    assert_eq!(condition(&placed, "Compliant")["status"], "True");
    let deployment = wait_until(&hub, "hub Deployment tax", || {
        hub.get(DEPLOYMENT.0, DEPLOYMENT.1, Some(NAMESPACE), "tax")
    })
    .await;
    assert_eq!(
        affinity_values(&deployment, POOL_LABEL),
        ["gov-confidential"]
    );
    assert_eq!(affinity_values(&deployment, SOVEREIGN), ["true"]);
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(
        deployment["metadata"]["labels"]["sovra.dev/workload"],
        "tax"
    );
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["labels"]["sovra.dev/sensitivity"],
        "confidential"
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["tolerations"][0]["value"],
        "confidential"
    );
    assert_eq!(deployment["metadata"]["ownerReferences"][0]["name"], "tax");
    assert_eq!(
        deployment["metadata"]["ownerReferences"][0]["controller"],
        true
    );
    let event = wait_for_event(&hub, NAMESPACE, "tax", "Placed").await;
    assert_eq!(event["type"], "Normal");
    assert!(
        event["note"].as_str().unwrap().contains("gov-confidential"),
        "{event}"
    );

    let cluster = wait_until(&hub, "hub SovereignCluster reports its pools", || async {
        hub.get(CLUSTER.0, CLUSTER.1, None, HUB)
            .await
            .filter(|c| pool(c, "gov-confidential").is_some_and(|p| p["sovereign"] == true))
    })
    .await;
    assert_eq!(pool(&cluster, "build-agents").unwrap()["sovereign"], false);
    let lease = hub
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            Some(OPERATOR_NAMESPACE),
            &format!("{RELEASE}-leader"),
        )
        .await
        .expect("the operator took the chart's Lease");
    assert_eq!(lease["spec"]["holderIdentity"], "sovra-0");

    operator.shutdown().await;
    hub.assert_never_denied(OPERATOR_USER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_nothing_qualifies_for_is_refused_with_a_placement_refused_event() {
    let Some(binaries) =
        binaries("a_workload_nothing_qualifies_for_is_refused_with_a_placement_refused_event")
    else {
        return;
    };
    let _turn = one_at_a_time().await;
    let hub = start_hub(&binaries).await;
    let operator = Operator::start(&hub).await;
    hub.apply(pinned_to_de("exchange", "confidential", 2, json!({})))
        .await;

    let refused = wait_for_phase(&hub, "exchange", "Refused").await;
    let placed = condition(&refused, "Placed");
    assert_eq!(placed["status"], "False");
    assert_eq!(placed["reason"], "CountryNotRequested");
    let event = wait_for_event(&hub, NAMESPACE, "exchange", "PlacementRefused").await;
    assert_eq!(event["type"], "Warning");
    assert!(
        event["note"]
            .as_str()
            .unwrap()
            .contains("country NL is not in spec.placement.requiredCountries"),
        "{event}"
    );
    assert!(
        hub.get(DEPLOYMENT.0, DEPLOYMENT.1, Some(NAMESPACE), "exchange")
            .await
            .is_none()
    );

    operator.shutdown().await;
    hub.assert_never_denied(OPERATOR_USER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_losing_the_sovereign_label_move_or_refuse_the_workloads_on_their_pool() {
    let Some(binaries) =
        binaries("nodes_losing_the_sovereign_label_move_or_refuse_the_workloads_on_their_pool")
    else {
        return;
    };
    let _turn = one_at_a_time().await;
    let hub = start_hub(&binaries).await;
    let operator = Operator::start(&hub).await;
    hub.apply(workload("portal", "internal", 2, json!({})))
        .await;
    hub.apply(workload("tax", "confidential", 1, json!({})))
        .await;
    let portal = wait_for_phase(&hub, "portal", "Placed").await;
    assert_eq!(
        portal["status"]["placements"][0]["nodePools"],
        json!(["gov-general", "gov-spare"])
    );
    wait_for_phase(&hub, "tax", "Placed").await;
    let unlabel = json!({"metadata": {"labels": {SOVEREIGN: null}}});

    // gov-spare's only node loses the label: portal moves to the pool that is still sovereign.
    hub.merge_patch(NODE.0, NODE.1, None, "gov-spare-0", unlabel.clone())
        .await;
    let moved = wait_until(&hub, "portal's Deployment moved off gov-spare", || async {
        hub.get(DEPLOYMENT.0, DEPLOYMENT.1, Some(NAMESPACE), "portal")
            .await
            .filter(|d| affinity_values(d, POOL_LABEL) == ["gov-general"])
    })
    .await;
    assert_eq!(affinity_values(&moved, SOVEREIGN), ["true"]);
    wait_for_event(&hub, NAMESPACE, "portal", "Moved").await;
    let lost = wait_for_event(&hub, "default", HUB, "SovereigntyLost").await;
    assert_eq!(lost["type"], "Warning");
    assert!(
        lost["note"].as_str().unwrap().contains("gov-spare"),
        "{lost}"
    );

    // The confidential pool loses it on both nodes: tax has nowhere to go, so it is refused and
    // nothing of it may keep running.
    for node in ["gov-confidential-0", "gov-confidential-1"] {
        hub.merge_patch(NODE.0, NODE.1, None, node, unlabel.clone())
            .await;
    }
    wait_for_phase(&hub, "tax", "Refused").await;
    wait_for_field(
        &hub,
        DEPLOYMENT,
        Some(NAMESPACE),
        "tax",
        "/spec/replicas",
        json!(0),
    )
    .await;
    wait_for_event(&hub, NAMESPACE, "tax", "PlacementRefused").await;
    let cluster = wait_until(
        &hub,
        "hub status: gov-confidential no longer sovereign",
        || async {
            hub.get(CLUSTER.0, CLUSTER.1, None, HUB)
                .await
                .filter(|c| pool(c, "gov-confidential").is_some_and(|p| p["sovereign"] == false))
        },
    )
    .await;
    assert_eq!(pool(&cluster, "gov-spare").unwrap()["sovereign"], false);

    operator.shutdown().await;
    hub.assert_never_denied(OPERATOR_USER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_made_pod_on_a_non_sovereign_node_is_a_policy_violation_and_is_evicted() {
    let Some(binaries) =
        binaries("a_hand_made_pod_on_a_non_sovereign_node_is_a_policy_violation_and_is_evicted")
    else {
        return;
    };
    let _turn = one_at_a_time().await;
    let hub = start_hub(&binaries).await;
    let operator = Operator::start(&hub).await;
    hub.apply(workload("portal", "internal", 2, json!({})))
        .await;
    wait_for_phase(&hub, "portal", "Placed").await;

    hub.apply(hand_made_pod(
        "portal-good",
        "portal",
        "internal",
        "gov-general-0",
    ))
    .await;
    hub.apply(hand_made_pod(
        "portal-rogue",
        "portal",
        "internal",
        "build-agents-0",
    ))
    .await;

    let on_pod = wait_for_event(&hub, NAMESPACE, "portal-rogue", "PolicyViolation").await;
    assert_eq!(on_pod["type"], "Warning");
    assert_eq!(on_pod["regarding"]["kind"], "Pod");
    let note = on_pod["note"].as_str().unwrap();
    for part in ["build-agents-0", "pool build-agents", "is not sovereign"] {
        assert!(note.contains(part), "{note}");
    }
    let on_workload = wait_for_event(&hub, NAMESPACE, "portal", "PolicyViolation").await;
    assert_eq!(on_workload["regarding"]["kind"], "SovereignWorkload");
    // Evicted through the Eviction API. With no kubelet to confirm, a bound Pod stays
    // Terminating (deletionTimestamp set) instead of disappearing.
    wait_until(&hub, "portal-rogue evicted", || async {
        is_gone_or_terminating(
            hub.get(POD.0, POD.1, Some(NAMESPACE), "portal-rogue")
                .await
                .as_ref(),
        )
        .then_some(())
    })
    .await;

    // The compliant pod is left alone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        hub.events(NAMESPACE, "portal-good", "PolicyViolation")
            .await
            .is_empty()
    );
    let good = hub
        .get(POD.0, POD.1, Some(NAMESPACE), "portal-good")
        .await
        .expect("portal-good");
    assert!(
        good.pointer("/metadata/deletionTimestamp").is_none(),
        "{good}"
    );

    operator.shutdown().await;
    hub.assert_never_denied(OPERATOR_USER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_workload_releases_it_finalizer_and_deployment_gone() {
    let Some(binaries) = binaries("deleting_a_workload_releases_it_finalizer_and_deployment_gone")
    else {
        return;
    };
    let _turn = one_at_a_time().await;
    let hub = start_hub(&binaries).await;
    let operator = Operator::start(&hub).await;
    hub.apply(workload("tax", "confidential", 1, json!({})))
        .await;
    let placed = wait_for_phase(&hub, "tax", "Placed").await;
    assert_eq!(
        placed["metadata"]["finalizers"],
        json!([sovra::controller::FINALIZER])
    );
    wait_until(&hub, "hub Deployment tax", || {
        hub.get(DEPLOYMENT.0, DEPLOYMENT.1, Some(NAMESPACE), "tax")
    })
    .await;

    hub.delete(WORKLOAD.0, WORKLOAD.1, Some(NAMESPACE), "tax")
        .await;
    // No garbage collector runs here: the Deployment goes because Sovra deletes it, and the
    // workload because Sovra then removes its finalizer.
    wait_gone(&hub, DEPLOYMENT, Some(NAMESPACE), "tax").await;
    wait_gone(&hub, WORKLOAD, Some(NAMESPACE), "tax").await;
    wait_for_event(&hub, NAMESPACE, "tax", "Released").await;
    let trail = std::fs::read_to_string(&operator.audit_log).unwrap();
    assert!(
        trail.lines().last().unwrap().contains("\"Released\""),
        "{trail}"
    );

    operator.shutdown().await;
    hub.assert_never_denied(OPERATOR_USER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cluster_on_a_second_api_server_joins_by_kubeconfig_secret_and_takes_a_workload() {
    let Some(binaries) = binaries(
        "a_member_cluster_on_a_second_api_server_joins_by_kubeconfig_secret_and_takes_a_workload",
    ) else {
        return;
    };
    let _turn = one_at_a_time().await;
    let hub = start_hub(&binaries).await;
    let (member, kubeconfig) = start_member(&binaries, "DE").await;
    let name = "bund-de-1";
    hub.apply(kubeconfig_secret(
        &format!("{name}-kubeconfig"),
        &kubeconfig,
    ))
    .await;
    hub.apply(member_cluster(name, "DE")).await;
    let operator = Operator::start(&hub).await;

    wait(&hub, &format!("{name} Reachable=True (Probed)"), || async {
        let cluster = hub.get(CLUSTER.0, CLUSTER.1, None, name).await;
        match cluster.as_ref().and_then(|c| condition_opt(c, "Reachable")) {
            Some(r) if r["status"] == "True" && r["reason"] == "Probed" => Ok(()),
            other => Err(format!("Reachable {other:?}")),
        }
    })
    .await;
    hub.apply(pinned_to_de("tax-de", "internal", 2, json!({})))
        .await;
    let placed = wait_for_phase(&hub, "tax-de", "Placed").await;
    assert_eq!(placed["status"]["placements"][0]["cluster"], name);
    assert_eq!(
        placed["status"]["placements"][0]["nodePools"],
        json!(["general"])
    );

    let child = wait_until(&member, "member Deployment tax-de", || {
        member.get(DEPLOYMENT.0, DEPLOYMENT.1, Some(NAMESPACE), "tax-de")
    })
    .await;
    assert_eq!(affinity_values(&child, POOL_LABEL), ["general"]);
    assert_eq!(affinity_values(&child, SOVEREIGN), ["true"]);
    assert_eq!(child["spec"]["replicas"], 2);
    assert_eq!(child["metadata"]["labels"]["sovra.dev/cluster"], name);
    let namespace = member
        .get("v1", "Namespace", None, NAMESPACE)
        .await
        .unwrap();
    assert_eq!(
        namespace["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "sovra"
    );
    assert!(
        hub.get(DEPLOYMENT.0, DEPLOYMENT.1, Some(NAMESPACE), "tax-de")
            .await
            .is_none()
    );

    hub.delete(WORKLOAD.0, WORKLOAD.1, Some(NAMESPACE), "tax-de")
        .await;
    wait_gone(&member, DEPLOYMENT, Some(NAMESPACE), "tax-de").await;
    wait_gone(&hub, WORKLOAD, Some(NAMESPACE), "tax-de").await;

    operator.shutdown().await;
    hub.assert_never_denied(OPERATOR_USER);
    member.assert_never_denied(MEMBER_USER);
}

fn condition_opt(object: &Value, type_: &str) -> Option<Value> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}
