#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Multi-cluster placement against several test API servers: one hub, members reached through
//! kubeconfig Secrets, and faults on the members. An [`Observer`] samples every cluster while
//! a scenario runs and checks that nothing ever runs outside its class and that the hub never
//! records a duplicate placement.

mod support;

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;
use test_apiserver::{RequestMatcher, TestApiServer};

/// Placements the hub records for `workload`, as cluster names.
fn placed_on(hub: &TestApiServer, workload: &str) -> Vec<String> {
    hub.get(&workloads(), Some(NAMESPACE), workload)
        .and_then(|w| w.pointer("/status/placements").cloned())
        .and_then(|p| p.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|p| p["cluster"].as_str().unwrap().to_owned())
        .collect()
}

fn condition_of(workload: &Value, type_: &str) -> Value {
    workload["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
        .unwrap()
}

/// A DE-only `internal` workload: of the fixtures, only `bund-*` members qualify.
fn internal_in_de(name: &str, replicas: i32, placement: Value) -> Value {
    pinned_to_de(name, "internal", replicas, placement)
}

/// Puts a Sovra child of `workload` for `cluster` on `member` by hand, as an earlier
/// placement, a crash or a deletion Sovra could not carry out would leave it.
fn leave_child(member: &TestApiServer, workload: &str, cluster: &str) {
    let _ = member
        .put(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}));
    member
        .put(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": workload, "namespace": NAMESPACE, "labels": {
                "app.kubernetes.io/managed-by": "sovra", "sovra.dev/workload": workload,
                "sovra.dev/cluster": cluster}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"sovra.dev/workload": workload}},
                     "template": {"metadata": {"labels": {"sovra.dev/workload": workload}},
                                  "spec": {"containers": [{"name": "app", "image": "old:1"}]}}}
        }))
        .unwrap();
}

/// Waits until the member's status reports its sovereign pool. A workload may be placed from
/// the member's Node cache before the cluster's status is first written, and what Sovra
/// compares with later (sovereignty lost, pools kept through an outage) is that status.
async fn wait_for_reported_pool(hub: &TestApiServer, cluster: &str) {
    eventually(
        &format!("{cluster} reports its sovereign pool"),
        WAIT,
        || async {
            hub.get(&clusters(), None, cluster)
                .filter(|c| c["status"]["sovereignPools"] == 1)
        },
    )
    .await;
}

/// Clusters by name, for the observer.
type Fleet = Vec<(String, TestApiServer)>;

/// Samples every cluster every 20 ms while a scenario runs.
struct Observer {
    violations: Arc<Mutex<Vec<String>>>,
    /// Samples in which more clusters than allowed ran the workload at once.
    excess: Arc<Mutex<usize>>,
    /// Members a scenario has cut off (stopped, or back but not yet swept by Sovra), or that a
    /// workload is moving off (make before break: its old child runs until the new one is
    /// applied). What runs there is not counted as a duplicate; it still must never be outside
    /// the class.
    cut_off: Arc<Mutex<BTreeSet<String>>>,
    /// Complete rounds of samples (every rule on every cluster) so far.
    rounds: Arc<AtomicUsize>,
    /// (workload, cluster) pairs some sample found running.
    seen: Arc<Mutex<BTreeSet<(String, String)>>>,
    /// Workloads some sample found running nowhere after an earlier one found them running.
    gaps: Arc<Mutex<BTreeSet<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Observer {
    /// `rules`: workload name, the clusters its class allows, and how many clusters it may
    /// run on at once.
    fn start(hub: &TestApiServer, fleet: Fleet, rules: Vec<(&str, Vec<&str>, usize)>) -> Self {
        let violations = Arc::new(Mutex::new(Vec::new()));
        let excess = Arc::new(Mutex::new(0));
        let cut_off = Arc::new(Mutex::new(BTreeSet::new()));
        let rounds = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let gaps = Arc::new(Mutex::new(BTreeSet::new()));
        let rules: Vec<(String, BTreeSet<String>, usize)> = rules
            .into_iter()
            .map(|(w, allowed, n)| {
                (
                    w.to_owned(),
                    allowed.into_iter().map(str::to_owned).collect(),
                    n,
                )
            })
            .collect();
        let task = {
            let (hub, violations, excess, cut_off, rounds, seen, gaps) = (
                hub.clone(),
                violations.clone(),
                excess.clone(),
                cut_off.clone(),
                rounds.clone(),
                seen.clone(),
                gaps.clone(),
            );
            tokio::spawn(async move {
                let mut ran = BTreeSet::new();
                loop {
                    for (workload, allowed, n) in &rules {
                        let running: Vec<&str> = fleet
                            .iter()
                            .filter(|(_, server)| !running_children(server, workload).is_empty())
                            .map(|(name, _)| name.as_str())
                            .collect();
                        seen.lock().unwrap().extend(
                            running
                                .iter()
                                .map(|cluster| (workload.clone(), (*cluster).to_owned())),
                        );
                        if !running.is_empty() {
                            ran.insert(workload.clone());
                        } else if ran.contains(workload) {
                            gaps.lock().unwrap().insert(workload.clone());
                        }
                        let mut found = violations.lock().unwrap();
                        for cluster in &running {
                            if !allowed.contains(*cluster) {
                                found.push(format!(
                                    "{workload} runs on {cluster}, outside its class"
                                ));
                            }
                        }
                        let placed = placed_on(&hub, workload);
                        let distinct: BTreeSet<&String> = placed.iter().collect();
                        if distinct.len() != placed.len() || placed.len() > *n {
                            found.push(format!("{workload} recorded on {placed:?}"));
                        }
                        let back = cut_off.lock().unwrap();
                        let counted = running.iter().filter(|c| !back.contains(**c)).count();
                        if counted > *n {
                            *excess.lock().unwrap() += 1;
                        }
                    }
                    rounds.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        Observer {
            violations,
            excess,
            cut_off,
            rounds,
            seen,
            gaps,
            task,
        }
    }

    /// Complete rounds of samples so far: taken at the start of a scenario's interesting part,
    /// it is the `since` of [`Observer::assert_clean`].
    fn rounds(&self) -> usize {
        self.rounds.load(Ordering::SeqCst)
    }

    /// Panics unless some sample found `workload` running on `cluster`.
    fn assert_saw(&self, workload: &str, cluster: &str) {
        let seen = self.seen.lock().unwrap();
        assert!(
            seen.contains(&(workload.to_owned(), cluster.to_owned())),
            "the observer never saw {workload} running on {cluster}: {seen:?}"
        );
    }

    /// Panics if a sample found `workload` running nowhere after it had run (a move that broke
    /// before it made). Samples read the clusters in fleet order, so a move to a later member
    /// is never seen as a gap that was not there.
    fn assert_no_gap(&self, workload: &str) {
        let gaps = self.gaps.lock().unwrap();
        assert!(
            !gaps.contains(workload),
            "a sample found {workload} running nowhere after it had run"
        );
    }

    /// Waits for a round of samples begun after this call (the observer still runs, and has
    /// sampled the scenario's end), checks that rounds were sampled since `since` (a
    /// [`Observer::rounds`] value), then that no sample found a violation.
    async fn assert_clean(&self, since: usize) {
        let end = self.rounds();
        eventually("the observer samples again", WAIT, || async {
            (self.rounds() >= end + 2).then_some(())
        })
        .await;
        assert!(
            end >= since + 2,
            "the observer sampled the scenario: {} round(s)",
            end.saturating_sub(since)
        );
        let violations = self.violations.lock().unwrap();
        assert!(violations.is_empty(), "{violations:#?}");
        assert_eq!(
            *self.excess.lock().unwrap(),
            0,
            "samples with a duplicate placement"
        );
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Hub plus two compliant German members and a German hyperscaler member that fails
/// `internal`.
async fn hub_with_members() -> (TestApiServer, BTreeMap<&'static str, TestApiServer>) {
    let hub = hub_server().await;
    let mut members = BTreeMap::new();
    for (name, cluster) in [
        ("bund-de-1", member_cluster("bund-de-1", "DE")),
        ("bund-de-2", member_cluster("bund-de-2", "DE")),
        ("hyperscale-de", hyperscaler_cluster("hyperscale-de", "DE")),
    ] {
        let member = member_server("DE").await;
        join(&hub, cluster, &member);
        members.insert(name, member);
    }
    (hub, members)
}

fn fleet_of(hub: &TestApiServer, members: &BTreeMap<&'static str, TestApiServer>) -> Fleet {
    let mut fleet = vec![(HUB.to_owned(), hub.clone())];
    fleet.extend(members.iter().map(|(n, s)| ((*n).to_owned(), s.clone())));
    fleet
}

/// A scenario's start: hub and members, the operator (its HTTP endpoints on `addr`), an
/// observer, and `tax` (internal, DE only) placed on `bund-de-1`.
struct TaxOnMember {
    hub: TestApiServer,
    members: BTreeMap<&'static str, TestApiServer>,
    operator: Operator,
    addr: std::net::SocketAddr,
    observer: Observer,
    _dir: tempfile::TempDir,
}

async fn tax_on_member(replicas: i32, placement: Value) -> TaxOnMember {
    let (hub, members) = hub_with_members().await;
    let dir = tempfile::tempdir().unwrap();
    let (operator, addr) = start_serving_operator(&hub, dir.path(), "sovra-0", false).await;
    let observer = Observer::start(
        &hub,
        fleet_of(&hub, &members),
        vec![("tax", vec!["bund-de-1", "bund-de-2"], 1)],
    );
    hub.put(internal_in_de("tax", replicas, placement)).unwrap();
    wait_for_phase(&hub, "tax", "Placed").await;
    assert_eq!(placed_on(&hub, "tax"), ["bund-de-1"]);
    TaxOnMember {
        hub,
        members,
        operator,
        addr,
        observer,
        _dir: dir,
    }
}

/// The hub and a single member `bund-de-1`, with `tax` placed there: nowhere else qualifies.
async fn tax_on_only_member(
    replicas: i32,
    placement: Value,
) -> (TestApiServer, TestApiServer, Operator, tempfile::TempDir) {
    let hub = hub_server().await;
    let member = member_server("DE").await;
    join(&hub, member_cluster("bund-de-1", "DE"), &member);
    let dir = tempfile::tempdir().unwrap();
    let operator = start_operator(&hub, dir.path(), "sovra-0", false);
    hub.put(internal_in_de("tax", replicas, placement)).unwrap();
    wait_for_phase(&hub, "tax", "Placed").await;
    (hub, member, operator, dir)
}

#[tokio::test]
async fn a_member_reports_its_version_and_node_pools_in_status() {
    let (hub, _members) = hub_with_members().await;
    let dir = tempfile::tempdir().unwrap();
    let _operator = start_operator(&hub, dir.path(), "sovra-0", false);

    wait_for_reachable(&hub, "bund-de-1", "True", "Probed").await;
    let status = eventually("pools in status", WAIT, || async {
        hub.get(&clusters(), None, "bund-de-1")
            .map(|c| c["status"].clone())
            .filter(|s| s["sovereignPools"] == 1)
    })
    .await;
    assert!(
        status["kubernetesVersion"]
            .as_str()
            .unwrap()
            .starts_with('v')
    );
    let pools = status["nodePools"].as_array().unwrap();
    let names: Vec<&str> = pools.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["batch", "general"]);
    assert_eq!(pools[1]["sovereign"], true);
    assert_eq!(pools[1]["country"], "DE");
    assert_eq!(pools[0]["sovereign"], false);
}

#[tokio::test]
async fn bad_connections_each_get_a_clear_condition_and_a_warning_and_the_operator_carries_on() {
    let hub = hub_server().await;
    // No Secret at all.
    hub.put(member_cluster("no-secret", "DE")).unwrap();
    // A Secret that holds no kubeconfig but something secret: never quoted back.
    hub.put(kubeconfig_secret(
        "garbage-kubeconfig",
        "db-password: hunter2-do-not-leak\nclusters: [[[",
    ))
    .unwrap();
    hub.put(member_cluster("garbage", "DE")).unwrap();
    // A kubeconfig that would run a command inside the operator.
    let exec = "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://x:6443'}}]\nusers: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh}}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n";
    hub.put(kubeconfig_secret("exec-kubeconfig", exec)).unwrap();
    hub.put(member_cluster("exec", "DE")).unwrap();
    // A server that is gone.
    let gone = member_server("DE").await;
    join(&hub, member_cluster("gone", "DE"), &gone);
    gone.stop().await;
    // Credentials that may not read Nodes.
    let forbidden = member_server("DE").await;
    forbidden
        .faults()
        .forbid(RequestMatcher::verb("list").resource("nodes"));
    join(&hub, member_cluster("forbidden", "DE"), &forbidden);

    let dir = tempfile::tempdir().unwrap();
    let _operator = start_operator(&hub, dir.path(), "sovra-0", false);

    for (cluster, reason, says) in [
        ("no-secret", "KubeconfigMissing", "does not exist"),
        ("garbage", "KubeconfigInvalid", "not a kubeconfig"),
        ("exec", "KubeconfigInvalid", "uses exec"),
        ("gone", "ServerUnreachable", "/version"),
        ("forbidden", "CredentialsRejected", "403"),
    ] {
        wait_for_reachable(&hub, cluster, "False", reason).await;
        let message = cluster_condition(&hub, cluster, "Reachable").unwrap()["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.contains(says), "{cluster}: {message}");
        assert!(!message.contains("hunter2"), "{cluster}: {message}");
        let event = wait_for_event(&hub, "default", cluster, "ClusterUnreachable").await;
        assert_eq!(event["type"], "Warning");
        assert!(event["note"].as_str().unwrap().contains(reason));
        assert!(!event["note"].as_str().unwrap().contains("hunter2"));
    }

    // Nothing is placed on any of them, and the hub still places.
    hub.put(workload("portal", "internal", 1, json!({})))
        .unwrap();
    let portal = wait_for_phase(&hub, "portal", "Placed").await;
    // Each was judged, and rejected for not answering (not merely outranked by the hub).
    let candidates = portal["status"]["decision"]["candidates"]
        .as_array()
        .unwrap();
    for cluster in ["no-secret", "garbage", "exec", "gone", "forbidden"] {
        let verdict = candidates
            .iter()
            .find(|c| c["cluster"] == cluster && c.get("nodePool").is_none())
            .unwrap_or_else(|| panic!("a verdict on {cluster}: {candidates:?}"));
        assert_eq!(verdict["accepted"], false, "{verdict}");
        assert!(
            verdict["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r.as_str().unwrap().starts_with("cluster unreachable")),
            "{verdict}"
        );
    }
    assert_eq!(placed_on(&hub, "portal"), [HUB]);
}

#[tokio::test]
async fn a_workload_is_placed_on_a_member_in_its_namespace_which_sovra_creates() {
    let TaxOnMember {
        hub,
        members,
        operator,
        observer,
        addr: _,
        _dir,
    } = tax_on_member(2, json!({})).await;
    let window = observer.rounds();
    assert_eq!(
        hub.get(&workloads(), Some(NAMESPACE), "tax").unwrap()["status"]["placements"][0]["nodePools"],
        json!(["general"])
    );

    let member = &members["bund-de-1"];
    let namespace = member.get(&namespaces(), None, NAMESPACE).unwrap();
    assert_eq!(
        namespace["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "sovra"
    );
    let child = member.get(&deployments(), Some(NAMESPACE), "tax").unwrap();
    assert_eq!(child["spec"]["replicas"], 2);
    assert_eq!(
        child["metadata"]["labels"]["sovra.dev/cluster"],
        "bund-de-1"
    );
    assert!(
        child["metadata"].get("ownerReferences").is_none(),
        "owner references cannot point across clusters"
    );
    assert_eq!(affinity_values(&child, POOL_LABEL), ["general"]);
    assert_eq!(affinity_values(&child, SOVEREIGN), ["true"]);
    assert!(hub.get(&deployments(), Some(NAMESPACE), "tax").is_none());
    assert!(running_children(&members["hyperscale-de"], "tax").is_empty());

    // An edit by hand on the member is reverted: Sovra owns the placement fields.
    let mut edited = member.get(&deployments(), Some(NAMESPACE), "tax").unwrap();
    edited["spec"]["replicas"] = json!(9);
    edited["spec"]["template"]["spec"]["affinity"] = json!(null);
    member.put(edited).unwrap();
    eventually("hand edit reverted", WAIT, || async {
        member
            .get(&deployments(), Some(NAMESPACE), "tax")
            .filter(|d| d["spec"]["replicas"] == 2)
            .filter(|d| affinity_values(d, SOVEREIGN) == ["true"])
    })
    .await;

    // Readiness is read back from the member.
    let mut child = member.get(&deployments(), Some(NAMESPACE), "tax").unwrap();
    child["status"] = json!({"replicas": 2, "readyReplicas": 2});
    member.put(child).unwrap();
    eventually("ready from the member", WAIT, || async {
        hub.get(&workloads(), Some(NAMESPACE), "tax")
            .filter(|w| w["status"]["readyReplicas"] == 2)
    })
    .await;

    // Deleting the workload removes its child on the member through the finalizer.
    hub.delete(&workloads(), Some(NAMESPACE), "tax").unwrap();
    wait_gone(member, &deployments(), Some(NAMESPACE), "tax").await;
    wait_gone(&hub, &workloads(), Some(NAMESPACE), "tax").await;
    assert_eq!(audit_actions(&operator.audit_log), ["Placed", "Released"]);
    observer.assert_clean(window).await;
    observer.assert_saw("tax", "bund-de-1");
}

#[tokio::test]
async fn replicas_spread_over_n_distinct_compliant_clusters_and_too_few_is_a_refusal() {
    let (hub, members) = hub_with_members().await;
    let dir = tempfile::tempdir().unwrap();
    let _operator = start_operator(&hub, dir.path(), "sovra-0", false);
    let observer = Observer::start(
        &hub,
        fleet_of(&hub, &members),
        vec![
            ("spread", vec![HUB, "bund-de-1", "bund-de-2"], 3),
            ("too-wide", vec![], 0),
        ],
    );

    hub.put(workload("spread", "internal", 5, json!({"clusters": 3})))
        .unwrap();
    wait_for_phase(&hub, "spread", "Placed").await;
    let mut placed = placed_on(&hub, "spread");
    placed.sort();
    assert_eq!(placed, ["bund-de-1", "bund-de-2", HUB]);
    let replicas: i64 = [
        hub.get(&deployments(), Some(NAMESPACE), "spread"),
        members["bund-de-1"].get(&deployments(), Some(NAMESPACE), "spread"),
        members["bund-de-2"].get(&deployments(), Some(NAMESPACE), "spread"),
    ]
    .iter()
    .map(|d| d.as_ref().unwrap()["spec"]["replicas"].as_i64().unwrap())
    .sum();
    assert_eq!(replicas, 5);

    // Only three clusters meet `internal`: four is refused, and nothing partial is placed.
    let window = observer.rounds();
    hub.put(workload("too-wide", "internal", 4, json!({"clusters": 4})))
        .unwrap();
    let refused = wait_for_phase(&hub, "too-wide", "Refused").await;
    let placed_condition = condition_of(&refused, "Placed");
    assert_eq!(placed_condition["reason"], "NotEnoughClusters");
    assert!(
        placed_condition["message"].as_str().unwrap().contains("4"),
        "{placed_condition}"
    );
    for (_, server) in fleet_of(&hub, &members) {
        assert!(running_children(&server, "too-wide").is_empty());
    }
    observer.assert_clean(window).await;
    for cluster in [HUB, "bund-de-1", "bund-de-2"] {
        observer.assert_saw("spread", cluster);
    }
}

#[tokio::test]
async fn a_member_going_down_keeps_its_placement_and_degrades_the_workload_without_failover() {
    let TaxOnMember {
        hub,
        members,
        operator: _operator,
        observer,
        addr: _,
        _dir,
    } = tax_on_member(1, json!({})).await;

    // The pools the outage must not lose were reported before it.
    wait_for_reported_pool(&hub, "bund-de-1").await;
    let window = observer.rounds();
    members["bund-de-1"].stop().await;
    wait_for_reachable(&hub, "bund-de-1", "False", "ServerUnreachable").await;
    let degraded = wait_for_phase(&hub, "tax", "Degraded").await;
    assert_eq!(
        condition_of(&degraded, "Ready")["reason"],
        "ClusterUnreachable"
    );
    assert_eq!(
        placed_on(&hub, "tax"),
        ["bund-de-1"],
        "the placement is kept"
    );
    let event = wait_for_event(&hub, NAMESPACE, "tax", "PlacementDegraded").await;
    assert!(event["note"].as_str().unwrap().contains("failover"));
    // The last known pools stay in the cluster's status: an outage is not a loss of sovereignty.
    assert_eq!(
        hub.get(&clusters(), None, "bund-de-1").unwrap()["status"]["sovereignPools"],
        1
    );
    assert!(events_for(&hub, "default", "bund-de-1", "SovereigntyLost").is_empty());
    assert!(running_children(&members["bund-de-2"], "tax").is_empty());

    members["bund-de-1"].restart().await;
    wait_for_reachable(&hub, "bund-de-1", "True", "Probed").await;
    wait_for_phase(&hub, "tax", "Placed").await;
    wait_for_event(&hub, "default", "bund-de-1", "ClusterReachable").await;
    assert_eq!(placed_on(&hub, "tax"), ["bund-de-1"]);
    observer.assert_clean(window).await;
    observer.assert_saw("tax", "bund-de-1");
}

#[tokio::test]
async fn with_failover_a_workload_leaves_a_down_member_for_a_compliant_one_and_converges_to_one_on_return()
 {
    let TaxOnMember {
        hub,
        members,
        operator,
        addr,
        observer,
        _dir,
    } = tax_on_member(2, json!({"failover": true})).await;

    let window = observer.rounds();
    let down = &members["bund-de-1"];
    observer.cut_off.lock().unwrap().insert("bund-de-1".into());
    down.stop().await;
    eventually("failed over to bund-de-2", WAIT, || async {
        (placed_on(&hub, "tax") == ["bund-de-2"]).then_some(())
    })
    .await;
    wait_for_event(&hub, NAMESPACE, "tax", "Moved").await;
    let moved = members["bund-de-2"]
        .get(&deployments(), Some(NAMESPACE), "tax")
        .unwrap();
    assert_eq!(moved["spec"]["replicas"], 2);
    // The hyperscaler member is reachable and in DE, but fails the class: never chosen.
    assert!(running_children(&members["hyperscale-de"], "tax").is_empty());

    // The member comes back with the old child still on it: Sovra removes it.
    let returned = std::time::Instant::now();
    down.restart().await;
    wait_gone(down, &deployments(), Some(NAMESPACE), "tax").await;
    println!(
        "old child removed {} ms after its member returned",
        returned.elapsed().as_millis()
    );
    observer.cut_off.lock().unwrap().clear();
    // Decided again with bund-de-1 answering: once its return is in status (the world the
    // workload controller decides from has it), tax is woken, and a reconcile begun after that
    // has finished.
    wait_for_reachable(&hub, "bund-de-1", "True", "Probed").await;
    let started = reconciles_started(addr, "workload").await;
    touch_workload(&hub, "tax").await;
    wait_for_reconciles_after(addr, "workload", started, 1).await;
    assert_eq!(
        placed_on(&hub, "tax"),
        ["bund-de-2"],
        "stays where it moved"
    );
    assert_eq!(audit_actions(&operator.audit_log), ["Placed", "Moved"]);
    observer.assert_clean(window).await;
    observer.assert_saw("tax", "bund-de-2");
}

#[tokio::test]
async fn a_member_pool_losing_sovereignty_moves_the_workload_make_before_break() {
    let TaxOnMember {
        hub,
        members,
        operator,
        observer,
        addr: _,
        _dir,
    } = tax_on_member(1, json!({})).await;

    // What is lost must have been recorded first.
    wait_for_reported_pool(&hub, "bund-de-1").await;
    let window = observer.rounds();
    let first = &members["bund-de-1"];
    // Make before break: the old child runs on until the new one is applied.
    observer.cut_off.lock().unwrap().insert("bund-de-1".into());
    for name in ["general-0", "general-1"] {
        let mut node = first.get(&nodes(), None, name).unwrap();
        node["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove(SOVEREIGN);
        first.put(node).unwrap();
    }
    let lost = wait_for_event(&hub, "default", "bund-de-1", "SovereigntyLost").await;
    assert!(lost["note"].as_str().unwrap().contains("general"));
    eventually("moved to bund-de-2", WAIT, || async {
        (placed_on(&hub, "tax") == ["bund-de-2"]).then_some(())
    })
    .await;
    wait_gone(first, &deployments(), Some(NAMESPACE), "tax").await;
    observer.cut_off.lock().unwrap().clear();
    assert!(
        members["bund-de-2"]
            .get(&deployments(), Some(NAMESPACE), "tax")
            .is_some()
    );
    let actions = audit_actions(&operator.audit_log);
    assert!(
        actions.contains(&"SovereigntyLost".to_owned()),
        "{actions:?}"
    );
    assert!(actions.contains(&"Moved".to_owned()), "{actions:?}");
    observer.assert_clean(window).await;
    observer.assert_saw("tax", "bund-de-1");
    observer.assert_saw("tax", "bund-de-2");
    observer.assert_no_gap("tax");
}

#[tokio::test]
async fn sovereignty_lost_with_nowhere_to_go_scales_to_zero_and_refuses() {
    let (hub, member, _operator, _dir) = tax_on_only_member(3, json!({"failover": true})).await;

    let mut cluster = hub.get(&clusters(), None, "bund-de-1").unwrap();
    cluster["spec"]["provider"]["headquartersCountry"] = json!("US");
    hub.put(cluster).unwrap();

    let refused = wait_for_phase(&hub, "tax", "Refused").await;
    assert!(
        condition_of(&refused, "Placed")["message"]
            .as_str()
            .unwrap()
            .contains("headquartered in US"),
        "{refused}"
    );
    eventually("scaled to zero on the member", WAIT, || async {
        member
            .get(&deployments(), Some(NAMESPACE), "tax")
            .filter(|d| d["spec"]["replicas"] == 0)
    })
    .await;
    wait_for_event(&hub, NAMESPACE, "tax", "PlacementRefused").await;
}

#[tokio::test]
async fn an_orphan_on_a_member_is_removed_and_a_deletion_waits_for_a_down_member() {
    let (hub, members) = hub_with_members().await;
    // A child Sovra left behind on bund-de-2 (an earlier placement, a crash).
    let orphan_home = &members["bund-de-2"];
    leave_child(orphan_home, "tax", "bund-de-2");

    let dir = tempfile::tempdir().unwrap();
    let (operator, addr) = start_serving_operator(&hub, dir.path(), "sovra-0", false).await;
    hub.put(internal_in_de("tax", 1, json!({}))).unwrap();
    wait_for_phase(&hub, "tax", "Placed").await;
    assert_eq!(placed_on(&hub, "tax"), ["bund-de-1"]);
    wait_gone(orphan_home, &deployments(), Some(NAMESPACE), "tax").await;

    // Deleting while the member is down: the finalizer holds until it can remove the child.
    let placed = &members["bund-de-1"];
    placed.stop().await;
    wait_for_reachable(&hub, "bund-de-1", "False", "ServerUnreachable").await;
    let member_errors =
        r#"sovra_reconcile_errors_total{kind="SovereignWorkload",error="member_cluster"}"#;
    let failed_before = metric(addr, member_errors).await;
    hub.delete(&workloads(), Some(NAMESPACE), "tax").unwrap();
    // The deletion was handled: its cleanup failed on the member that cannot be reached.
    eventually("the cleanup failed on the down member", WAIT, || async {
        (metric(addr, member_errors).await > failed_before).then_some(())
    })
    .await;
    assert!(
        hub.get(&workloads(), Some(NAMESPACE), "tax").is_some(),
        "the finalizer holds while the member's child cannot be removed"
    );
    placed.restart().await;
    wait_gone(placed, &deployments(), Some(NAMESPACE), "tax").await;
    wait_gone(&hub, &workloads(), Some(NAMESPACE), "tax").await;
    assert_eq!(
        audit_actions(&operator.audit_log),
        ["Placed", "Released"],
        "the release is recorded once, when it can be carried out"
    );
}

#[tokio::test]
async fn member_faults_neither_duplicate_nor_misplace_and_a_slow_member_holds_up_no_one_else() {
    let (hub, members) = hub_with_members().await;
    let dir = tempfile::tempdir().unwrap();
    let _operator = start_operator(&hub, dir.path(), "sovra-0", false);
    let allowed = vec!["bund-de-1", "bund-de-2"];
    let observer = Observer::start(
        &hub,
        fleet_of(&hub, &members),
        vec![
            ("a", allowed.clone(), 1),
            ("b", allowed.clone(), 1),
            ("c", allowed.clone(), 1),
            ("d", vec!["bund-at"], 1),
        ],
    );
    let window = observer.rounds();
    let first = &members["bund-de-1"];

    // 409 on apply: retried.
    first.faults().fail_next(
        RequestMatcher::verb("patch").resource("deployments"),
        409,
        2,
    );
    hub.put(internal_in_de("a", 1, json!({}))).unwrap();
    wait_for_phase(&hub, "a", "Placed").await;
    assert!(first.get(&deployments(), Some(NAMESPACE), "a").is_some());
    let conflicts = first
        .requests()
        .iter()
        .filter(|r| r.verb == "patch" && r.resource == "deployments" && r.status == 409)
        .count();
    assert_eq!(conflicts, 2, "both conflicts were served");

    // A cut watch and a compacted history (410 Gone on re-watch): the caches relist.
    first.clear_requests();
    first.compact();
    first.cut_watches();
    hub.put(internal_in_de("b", 1, json!({}))).unwrap();
    wait_for_phase(&hub, "b", "Placed").await;
    // Served: each cache's re-watch got 410 Gone, it relisted and watched again (a watch that
    // merely ended is resumed with one watch).
    eventually(
        "the member's caches relisted and watch again",
        WAIT,
        || async {
            let watches = |resource: &str| {
                first
                    .requests()
                    .iter()
                    .filter(|r| r.verb == "watch" && r.resource == resource)
                    .count()
            };
            (watches("deployments") >= 2 && watches("nodes") >= 2).then_some(())
        },
    )
    .await;
    // A child deleted behind Sovra's back while its watch was re-established is recreated.
    first.delete(&deployments(), Some(NAMESPACE), "b").unwrap();
    eventually("b recreated", WAIT, || async {
        first.get(&deployments(), Some(NAMESPACE), "b")
    })
    .await;

    // A slow member (slower than the member timeout) fails its workload's reconcile, which
    // is retried; a workload bound for another member is placed meanwhile.
    let austria = member_server("AT").await;
    join(&hub, member_cluster("bund-at", "AT"), &austria);
    wait_for_reachable(&hub, "bund-at", "True", "Probed").await;
    first.faults().delay(
        RequestMatcher::verb("patch").resource("deployments"),
        Duration::from_secs(3),
    );
    hub.put(internal_in_de("c", 1, json!({}))).unwrap();
    hub.put(workload(
        "d",
        "internal",
        1,
        json!({"requiredCountries": ["AT"]}),
    ))
    .unwrap();
    wait_for_phase(&hub, "d", "Placed").await;
    assert_eq!(placed_on(&hub, "d"), ["bund-at"]);
    // c's reconcile reached its slow member: it looked for a foreign Deployment in the child's
    // place, the step just before the (delayed) apply.
    eventually("c's apply on bund-de-1 under way", WAIT, || async {
        first
            .requests()
            .iter()
            .any(|r| {
                r.verb == "get" && r.resource == "deployments" && r.name.as_deref() == Some("c")
            })
            .then_some(())
    })
    .await;
    assert_ne!(
        hub.get(&workloads(), Some(NAMESPACE), "c").unwrap()["status"]["phase"],
        "Placed",
        "c waits for its slow member"
    );
    first.faults().clear();
    wait_for_phase(&hub, "c", "Placed").await;
    assert_eq!(placed_on(&hub, "c"), ["bund-de-1"]);

    let mut everywhere = fleet_of(&hub, &members);
    everywhere.push(("bund-at".to_owned(), austria.clone()));
    for workload in ["a", "b", "c", "d"] {
        let running: usize = everywhere
            .iter()
            .map(|(_, s)| running_children(s, workload).len())
            .sum();
        assert_eq!(running, 1, "{workload} runs exactly once");
    }
    observer.assert_clean(window).await;
    for workload in ["a", "b", "c"] {
        observer.assert_saw(workload, "bund-de-1");
    }
}

#[tokio::test]
async fn with_failover_but_nowhere_to_go_the_placement_is_kept_and_never_scaled_down() {
    let (hub, member, operator, _dir) = tax_on_only_member(2, json!({"failover": true})).await;

    member.stop().await;
    wait_for_phase(&hub, "tax", "Degraded").await;
    assert_eq!(placed_on(&hub, "tax"), ["bund-de-1"]);
    member.restart().await;
    wait_for_reachable(&hub, "bund-de-1", "True", "Probed").await;
    wait_for_phase(&hub, "tax", "Placed").await;
    let child = member.get(&deployments(), Some(NAMESPACE), "tax").unwrap();
    assert_eq!(child["spec"]["replicas"], 2);
    assert_eq!(audit_actions(&operator.audit_log), ["Placed"]);
}

#[tokio::test]
async fn deleting_a_member_moves_its_workloads_off_and_removes_its_children_before_it_goes() {
    let TaxOnMember {
        hub,
        members,
        operator,
        observer,
        addr: _,
        _dir,
    } = tax_on_member(1, json!({})).await;
    eventually("drain finalizer on the member", WAIT, || async {
        hub.get(&clusters(), None, "bund-de-1")
            .filter(|c| c["metadata"]["finalizers"] == json!(["sovra.dev/drain"]))
    })
    .await;

    let window = observer.rounds();
    // Make before break: the child on the member being drained runs on until the one on
    // bund-de-2 is applied.
    observer.cut_off.lock().unwrap().insert("bund-de-1".into());
    hub.delete(&clusters(), None, "bund-de-1").unwrap();
    eventually("moved to bund-de-2", WAIT, || async {
        (placed_on(&hub, "tax") == ["bund-de-2"]).then_some(())
    })
    .await;
    wait_gone(&hub, &clusters(), None, "bund-de-1").await;
    assert!(
        members["bund-de-1"]
            .get(&deployments(), Some(NAMESPACE), "tax")
            .is_none(),
        "nothing of Sovra is left on the deleted member: {:?}",
        hub.list(&events(), Some("default"))
            .iter()
            .map(|e| e["reason"].clone())
            .collect::<Vec<_>>()
    );
    wait_for_event(&hub, "default", "bund-de-1", "Drained").await;
    assert_eq!(audit_actions(&operator.audit_log), ["Placed", "Moved"]);
    observer.cut_off.lock().unwrap().clear();
    observer.assert_clean(window).await;
    observer.assert_saw("tax", "bund-de-1");
    observer.assert_saw("tax", "bund-de-2");
    observer.assert_no_gap("tax");
}

#[tokio::test]
async fn a_member_that_is_down_when_the_operator_starts_keeps_its_placements() {
    let (hub, members) = hub_with_members().await;
    let dir = tempfile::tempdir().unwrap();
    let operator = start_operator(&hub, dir.path(), "sovra-0", false);
    hub.put(internal_in_de("tax", 1, json!({}))).unwrap();
    wait_for_phase(&hub, "tax", "Placed").await;
    // The pools the next operator decides from were reported before this one stops.
    wait_for_reported_pool(&hub, "bund-de-1").await;
    operator.shutdown().await.unwrap();

    members["bund-de-1"].stop().await;
    let (_operator, addr) = start_serving_operator(&hub, dir.path(), "sovra-1", false).await;
    // From the pools its status last reported, the placement is kept, not refused or moved.
    wait_for_phase(&hub, "tax", "Degraded").await;
    // Also once the new operator has found the member down, and decided tax again since.
    wait_for_reachable(&hub, "bund-de-1", "False", "ServerUnreachable").await;
    let started = reconciles_started(addr, "workload").await;
    touch_workload(&hub, "tax").await;
    wait_for_reconciles_after(addr, "workload", started, 1).await;
    assert_eq!(placed_on(&hub, "tax"), ["bund-de-1"]);
    assert!(running_children(&members["bund-de-2"], "tax").is_empty());
    members["bund-de-1"].restart().await;
    wait_for_phase(&hub, "tax", "Placed").await;
    assert_eq!(placed_on(&hub, "tax"), ["bund-de-1"]);
}

#[tokio::test]
async fn a_rotated_kubeconfig_is_picked_up_and_a_broken_one_is_reported() {
    let hub = hub_server().await;
    let old = member_server("DE").await;
    join(&hub, member_cluster("bund-de-1", "DE"), &old);
    let dir = tempfile::tempdir().unwrap();
    let _operator = start_operator(&hub, dir.path(), "sovra-0", false);
    wait_for_reachable(&hub, "bund-de-1", "True", "Probed").await;

    // The member moved to a new endpoint (same cluster, new address): the Secret is updated.
    let new = member_server("DE").await;
    new.faults().require_token(Some("rotated".into()));
    hub.put(kubeconfig_secret(
        "bund-de-1-kubeconfig",
        &new.kubeconfig_yaml(),
    ))
    .unwrap();
    old.stop().await;
    eventually("probed through the new kubeconfig", WAIT, || async {
        new.requests()
            .iter()
            .any(|r| r.path == "/version")
            .then_some(())
    })
    .await;
    wait_for_reachable(&hub, "bund-de-1", "True", "Probed").await;

    // A broken rotation no longer takes a working member down (issue 12 item 9): the
    // connection that works is kept, and the refused kubeconfig is reported.
    hub.put(kubeconfig_secret(
        "bund-de-1-kubeconfig",
        "not: [a, kubeconfig",
    ))
    .unwrap();
    let refused = eventually("KubeconfigAccepted=False", WAIT, || async {
        cluster_condition(&hub, "bund-de-1", "KubeconfigAccepted")
            .filter(|c| c["status"] == "False")
    })
    .await;
    assert_eq!(refused["reason"], "RotationRefused");
    wait_for_event(&hub, "default", "bund-de-1", "KubeconfigRefused").await;
    wait_for_reachable(&hub, "bund-de-1", "True", "Probed").await;
    assert!(events_for(&hub, "default", "bund-de-1", "ClusterUnreachable").is_empty());
}

#[tokio::test]
async fn a_rotated_kubeconfig_whose_server_does_not_answer_leaves_the_working_connection() {
    let (hub, member, operator, _dir) = tax_on_only_member(1, json!({})).await;
    let elsewhere = member_server("DE").await;
    let unanswered = elsewhere.kubeconfig_yaml();
    elsewhere.stop().await;
    hub.put(kubeconfig_secret("bund-de-1-kubeconfig", &unanswered))
        .unwrap();
    let refused = eventually("KubeconfigAccepted=False", WAIT, || async {
        cluster_condition(&hub, "bund-de-1", "KubeconfigAccepted")
            .filter(|c| c["status"] == "False")
    })
    .await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("the new kubeconfig does not work (ServerUnreachable)"),
        "{refused}"
    );
    // Probes go on through the old connection, which answers: nothing fails over.
    member.clear_requests();
    eventually("probed through the old kubeconfig", WAIT, || async {
        member
            .requests()
            .iter()
            .any(|r| r.path == "/version")
            .then_some(())
    })
    .await;
    wait_for_reachable(&hub, "bund-de-1", "True", "Probed").await;
    assert_eq!(placed_on(&hub, "tax"), ["bund-de-1"]);
    assert_eq!(audit_actions(&operator.audit_log), ["Placed"]);

    // Fixing the Secret is accepted again.
    hub.put(kubeconfig_secret(
        "bund-de-1-kubeconfig",
        &member.kubeconfig_yaml(),
    ))
    .unwrap();
    eventually("KubeconfigAccepted=True", WAIT, || async {
        cluster_condition(&hub, "bund-de-1", "KubeconfigAccepted").filter(|c| c["status"] == "True")
    })
    .await;
    wait_for_event(&hub, "default", "bund-de-1", "KubeconfigAccepted").await;
}

#[tokio::test]
async fn deleting_a_member_that_cannot_be_reached_lets_it_go_with_a_warning() {
    let (hub, member, _operator, _dir) = tax_on_only_member(1, json!({})).await;

    member.stop().await;
    wait_for_reachable(&hub, "bund-de-1", "False", "ServerUnreachable").await;
    hub.delete(&clusters(), None, "bund-de-1").unwrap();
    let skipped = wait_for_event(&hub, "default", "bund-de-1", "DrainSkipped").await;
    assert!(
        skipped["note"]
            .as_str()
            .unwrap()
            .contains("1 Sovra Deployment")
    );
    wait_gone(&hub, &clusters(), None, "bund-de-1").await;
    // Nowhere else to go: refused, not silently kept on a cluster that no longer exists.
    wait_for_phase(&hub, "tax", "Refused").await;
}

#[tokio::test]
async fn one_failed_probe_does_not_fail_a_workload_over() {
    let TaxOnMember {
        hub,
        members,
        operator,
        observer,
        addr: _,
        _dir,
    } = tax_on_member(1, json!({"failover": true})).await;
    wait_for_reachable(&hub, "bund-de-1", "True", "Probed").await;
    let window = observer.rounds();
    let member = &members["bund-de-1"];
    member
        .faults()
        .fail_next(RequestMatcher::verb("list").resource("nodes"), 500, 1);
    // The failed probe was served, and two later probes got past the step that failed: the
    // member counted as reachable all along, past the grace of two probe intervals.
    eventually("a probe failed and two later ones passed", WAIT, || async {
        let requests = member.requests();
        let lists = |r: &&test_apiserver::RequestRecord| r.verb == "list" && r.resource == "nodes";
        let failed = requests.iter().position(|r| lists(&r) && r.status == 500)?;
        let passed = requests[failed..]
            .iter()
            .filter(|r| lists(r) && r.status == 200)
            .count();
        (passed >= 2).then_some(())
    })
    .await;
    assert_eq!(placed_on(&hub, "tax"), ["bund-de-1"]);
    assert_eq!(audit_actions(&operator.audit_log), ["Placed"]);
    assert!(events_for(&hub, "default", "bund-de-1", "ClusterUnreachable").is_empty());
    observer.assert_clean(window).await;
    observer.assert_saw("tax", "bund-de-1");
}

#[tokio::test]
async fn two_clusters_on_one_api_server_leave_each_other_s_children_alone() {
    let hub = hub_server().await;
    let shared = member_server("DE").await;
    join(&hub, member_cluster("bund-de-1", "DE"), &shared);
    join(&hub, member_cluster("bund-de-1-alias", "DE"), &shared);
    let dir = tempfile::tempdir().unwrap();
    let (_operator, addr) = start_serving_operator(&hub, dir.path(), "sovra-0", false).await;
    hub.put(internal_in_de("tax", 1, json!({}))).unwrap();
    wait_for_phase(&hub, "tax", "Placed").await;
    // Both clusters had the chance to remove the child: with both connections up, the shared
    // server was probed four more times (each member's probe sweeps its orphans), and then tax
    // was decided again (its removals planned over both clusters' children).
    wait_for_reachable(&hub, "bund-de-1", "True", "Probed").await;
    wait_for_reachable(&hub, "bund-de-1-alias", "True", "Probed").await;
    let probes = || {
        shared
            .requests()
            .iter()
            .filter(|r| r.path == "/version")
            .count()
    };
    let probed = probes();
    eventually("four more probes of the shared server", WAIT, || async {
        (probes() >= probed + 4).then_some(())
    })
    .await;
    let started = reconciles_started(addr, "workload").await;
    touch_workload(&hub, "tax").await;
    wait_for_reconciles_after(addr, "workload", started, 1).await;
    let deletes = shared
        .requests()
        .iter()
        .filter(|r| r.verb == "delete" && r.resource == "deployments")
        .count();
    assert_eq!(deletes, 0, "neither cluster removes the other's child");
    assert!(shared.get(&deployments(), Some(NAMESPACE), "tax").is_some());
}

#[tokio::test]
async fn deleting_the_only_member_refuses_its_workload_and_removes_the_scaled_down_child() {
    let (hub, member, _operator, _dir) = tax_on_only_member(2, json!({})).await;
    // The cluster controller runs beside the workload controller: once its drain finalizer is
    // on the member, a delete drains it.
    eventually("the member carries the drain finalizer", WAIT, || async {
        hub.get(&clusters(), None, "bund-de-1")
            .filter(|c| c["metadata"]["finalizers"] == json!(["sovra.dev/drain"]))
    })
    .await;
    hub.delete(&clusters(), None, "bund-de-1").unwrap();
    wait_for_phase(&hub, "tax", "Refused").await;
    wait_gone(&hub, &clusters(), None, "bund-de-1").await;
    let left = member.get(&deployments(), Some(NAMESPACE), "tax");
    assert!(left.is_none(), "{left:#?}");
    wait_for_event(&hub, "default", "bund-de-1", "Drained").await;
}

#[tokio::test]
async fn a_member_whose_object_stops_matching_the_schema_can_still_be_deleted() {
    let hub = hub_server().await;
    let member = member_server("DE").await;
    join(&hub, member_cluster("bund-de-1", "DE"), &member);
    let dir = tempfile::tempdir().unwrap();
    let _operator = start_operator(&hub, dir.path(), "sovra-0", false);
    eventually("drain finalizer on the member", WAIT, || async {
        hub.get(&clusters(), None, "bund-de-1")
            .filter(|c| c["metadata"]["finalizers"] == json!(["sovra.dev/drain"]))
    })
    .await;
    let mut broken = hub.get(&clusters(), None, "bund-de-1").unwrap();
    broken["spec"]["country"] = json!(42);
    // Stored as if written before the schema said country is a string.
    hub.put_unvalidated(broken).unwrap();
    hub.delete(&clusters(), None, "bund-de-1").unwrap();
    wait_gone(&hub, &clusters(), None, "bund-de-1").await;
}

#[tokio::test]
async fn a_child_whose_workload_no_longer_exists_is_removed_from_its_member() {
    let hub = hub_server().await;
    let member = member_server("DE").await;
    // Left behind by a workload deleted while the member could not be reached.
    leave_child(&member, "ghost", "bund-de-1");
    join(&hub, member_cluster("bund-de-1", "DE"), &member);
    let dir = tempfile::tempdir().unwrap();
    let _operator = start_operator(&hub, dir.path(), "sovra-0", false);
    wait_gone(&member, &deployments(), Some(NAMESPACE), "ghost").await;
    let event = wait_for_event(&hub, "default", "bund-de-1", "OrphanRemoved").await;
    assert!(event["note"].as_str().unwrap().contains("ghost"));
}

#[tokio::test]
async fn without_a_hub_cluster_nothing_keeps_running_on_the_hub() {
    let hub = hub_server().await;
    let dir = tempfile::tempdir().unwrap();
    let _operator = start_operator(&hub, dir.path(), "sovra-0", false);
    hub.put(workload("portal", "internal", 2, json!({})))
        .unwrap();
    wait_for_phase(&hub, "portal", "Placed").await;
    hub.delete(&clusters(), None, HUB).unwrap();
    wait_for_phase(&hub, "portal", "Refused").await;
    eventually("the hub child scaled to zero", WAIT, || async {
        hub.get(&deployments(), Some(NAMESPACE), "portal")
            .filter(|d| d["spec"]["replicas"] == 0)
    })
    .await;
}
