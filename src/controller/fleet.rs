//! Connections to member clusters. One client per member, built from the kubeconfig in the
//! member's Secret, with two caches fed by watches on the member: its Nodes (stripped to labels
//! and taints) and the Deployments Sovra manages there (stripped to labels, replicas, status).
//!
//! The cluster controller probes each member (`/version`, then a one-item Node list, which
//! proves the credentials may read Nodes) and records its [`Health`] here. Decisions read
//! health and pools through the world snapshot; the workload controller reads the client and
//! the Deployment cache to place, find and remove children.

use super::deployment::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, WORKLOAD_LABEL, managed_selector};
use super::world::{pools_of, strip_node};
use crate::crd::{SecretKeyRef, SovereignCluster, SovereignWorkload};
use crate::policy::NodePool;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Secret};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config, ResourceExt};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

/// Why a member cannot be used. Each has a stable code (condition reason, metric label) and a
/// stable sentence for decisions, so a changing error text does not re-decide every workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionFault {
    /// The Secret or its key does not exist.
    KubeconfigMissing,
    /// The Secret exists but the kubeconfig cannot be used.
    KubeconfigInvalid,
    /// The operator may not read the Secret.
    SecretUnreadable,
    /// The API server does not answer (refused, timed out, 5xx).
    ServerUnreachable,
    /// The API server answers but rejects the credentials (401) or their rights (403).
    CredentialsRejected,
}

impl ConnectionFault {
    pub fn code(self) -> &'static str {
        match self {
            Self::KubeconfigMissing => "KubeconfigMissing",
            Self::KubeconfigInvalid => "KubeconfigInvalid",
            Self::SecretUnreadable => "SecretUnreadable",
            Self::ServerUnreachable => "ServerUnreachable",
            Self::CredentialsRejected => "CredentialsRejected",
        }
    }

    /// What a placement decision records: stable, without the changing error detail.
    pub fn summary(self) -> &'static str {
        match self {
            Self::KubeconfigMissing => "its kubeconfig Secret is missing",
            Self::KubeconfigInvalid => "its kubeconfig cannot be used",
            Self::SecretUnreadable => "its kubeconfig Secret cannot be read",
            Self::ServerUnreachable => "its API server does not answer",
            Self::CredentialsRejected => "its API server rejects Sovra's credentials",
        }
    }
}

/// What the last probe of a member found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Not probed yet (just created, or the operator just started).
    Connecting,
    Reachable {
        version: String,
    },
    Unreachable {
        why: ConnectionFault,
        message: String,
    },
}

/// Where fleet changes are announced: the world (reachability, nodes), one workload (its child
/// changed on a member), one cluster (its watch failed: probe it again now).
#[derive(Clone)]
pub struct Signals {
    pub world: UnboundedSender<()>,
    pub workload: UnboundedSender<ObjectRef<DeserializeGuard<SovereignWorkload>>>,
    pub cluster: UnboundedSender<ObjectRef<DeserializeGuard<SovereignCluster>>>,
}

/// Every member connection, by SovereignCluster name. Cheap to clone; clones share members.
#[derive(Clone)]
pub struct Fleet {
    members: Arc<Mutex<BTreeMap<String, Member>>>,
    signals: Signals,
    /// Bound on each probe and each call Sovra makes to a member: one slow member must not
    /// hold up work on the others.
    pub timeout: Duration,
}

struct Member {
    /// SHA-256 of the kubeconfig the client was built from: a rotated Secret rebuilds it.
    source: Vec<u8>,
    /// `None` when no client could be built from the kubeconfig.
    client: Option<Client>,
    health: Health,
    caches: Option<Caches>,
    /// Namespaces known to exist on the member, so placing does not GET one per reconcile.
    namespaces: BTreeSet<String>,
}

struct Caches {
    nodes: Store<Node>,
    nodes_synced: Arc<AtomicBool>,
    deployments: Store<Deployment>,
    /// The watch tasks; aborted when the member is dropped (deleted or rebuilt).
    _tasks: AbortOnDrop,
}

struct AbortOnDrop(Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Fleet {
    pub fn new(signals: Signals, timeout: Duration) -> Self {
        Self {
            members: Arc::default(),
            signals,
            timeout,
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Member>> {
        self.members
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drops connections to members that no longer exist (their watches stop).
    pub fn retain(&self, names: &BTreeSet<String>) {
        let mut members = self.lock();
        let before = members.len();
        members.retain(|name, _| names.contains(name));
        if members.len() != before {
            let _ = self.signals.world.send(());
        }
    }

    pub fn health(&self, name: &str) -> Option<Health> {
        self.lock().get(name).map(|m| m.health.clone())
    }

    /// The member's node pools from its Node cache, once that cache has synced.
    pub fn pools(&self, name: &str, pool_label: &str) -> Option<Vec<NodePool>> {
        let members = self.lock();
        let caches = members.get(name)?.caches.as_ref()?;
        if !caches.nodes_synced.load(Ordering::SeqCst) {
            return None;
        }
        Some(pools_of(&caches.nodes, pool_label))
    }

    /// A client for a member that answered its last probe.
    pub fn client(&self, name: &str) -> Option<Client> {
        let members = self.lock();
        let member = members.get(name)?;
        match member.health {
            Health::Reachable { .. } => member.client.clone(),
            _ => None,
        }
    }

    /// Names of every member Sovra has a connection to (reachable or not).
    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// The child of workload `namespace/name` on member `cluster`, as its cache last saw it.
    pub fn child(&self, cluster: &str, namespace: &str, workload: &str) -> Option<Arc<Deployment>> {
        let members = self.lock();
        let caches = members.get(cluster)?.caches.as_ref()?;
        child(&caches.deployments, namespace, workload)
    }

    /// How many Sovra-managed Deployments the member's cache holds.
    pub fn child_count(&self, cluster: &str) -> usize {
        self.lock()
            .get(cluster)
            .and_then(|m| m.caches.as_ref())
            .map_or(0, |c| c.deployments.state().len())
    }

    /// Creates `namespace` on the member when it is missing, labelled as Sovra-managed.
    pub async fn ensure_namespace(
        &self,
        cluster: &str,
        client: &Client,
        namespace: &str,
    ) -> Result<(), kube::Error> {
        if self
            .lock()
            .get(cluster)
            .is_some_and(|m| m.namespaces.contains(namespace))
        {
            return Ok(());
        }
        let api: Api<Namespace> = Api::all(client.clone());
        if api.get_opt(namespace).await?.is_none() {
            let created = Namespace {
                metadata: ObjectMeta {
                    name: Some(namespace.to_owned()),
                    labels: Some(BTreeMap::from([(
                        MANAGED_BY_LABEL.to_owned(),
                        MANAGED_BY_VALUE.to_owned(),
                    )])),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            };
            match api.create(&PostParams::default(), &created).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(error) => return Err(error),
            }
        }
        if let Some(member) = self.lock().get_mut(cluster) {
            member.namespaces.insert(namespace.to_owned());
        }
        Ok(())
    }

    /// Forgets that `namespace` exists on the member (an apply found it missing).
    pub fn forget_namespace(&self, cluster: &str, namespace: &str) {
        if let Some(member) = self.lock().get_mut(cluster) {
            member.namespaces.remove(namespace);
        }
    }

    /// Reads the member's kubeconfig, (re)builds its client when the kubeconfig changed, probes
    /// it and, on the first success, starts its caches. Never fails: what went wrong is the
    /// returned health. Announces a world change when the health changed.
    pub async fn probe(
        &self,
        name: &str,
        secret: &SecretKeyRef,
        hub: &Client,
        namespace: &str,
    ) -> Health {
        let health = match self.connect(name, secret, hub, namespace).await {
            Ok(client) => match probe_server(&client, self.timeout).await {
                Ok(version) => {
                    self.start_caches(name, &client);
                    Health::Reachable { version }
                }
                Err((why, message)) => Health::Unreachable { why, message },
            },
            Err((why, message)) => Health::Unreachable { why, message },
        };
        let changed = {
            let mut members = self.lock();
            match members.get_mut(name) {
                Some(member) if member.health != health => {
                    member.health = health.clone();
                    true
                }
                Some(_) => false,
                // No client could be built: nothing to cache, but decisions must see why.
                None => {
                    members.insert(
                        name.to_owned(),
                        Member {
                            source: Vec::new(),
                            client: None,
                            health: health.clone(),
                            caches: None,
                            namespaces: BTreeSet::new(),
                        },
                    );
                    true
                }
            }
        };
        if changed {
            let _ = self.signals.world.send(());
        }
        health
    }

    /// The member's client, rebuilt when its kubeconfig changed.
    async fn connect(
        &self,
        name: &str,
        secret: &SecretKeyRef,
        hub: &Client,
        namespace: &str,
    ) -> Result<Client, (ConnectionFault, String)> {
        let kubeconfig = read_kubeconfig(secret, hub, namespace, self.timeout).await?;
        let source = Sha256::digest(kubeconfig.as_bytes()).to_vec();
        {
            let members = self.lock();
            if let Some(member) = members.get(name)
                && member.source == source
                && let Some(client) = &member.client
            {
                return Ok(client.clone());
            }
        }
        let client = client_from_kubeconfig(&kubeconfig, self.timeout).await;
        let mut members = self.lock();
        // A new kubeconfig may point at another cluster: nothing of the old connection is kept.
        members.remove(name);
        let client = client?;
        members.insert(
            name.to_owned(),
            Member {
                source,
                client: Some(client.clone()),
                health: Health::Connecting,
                caches: None,
                namespaces: BTreeSet::new(),
            },
        );
        Ok(client)
    }

    /// Waits (at most the member timeout) until a reachable member's Node cache has synced.
    pub async fn wait_for_nodes(&self, name: &str) {
        let deadline = tokio::time::Instant::now() + self.timeout;
        while tokio::time::Instant::now() < deadline {
            let synced = {
                let members = self.lock();
                match members.get(name) {
                    Some(member) => match (&member.health, &member.caches) {
                        (Health::Reachable { .. }, Some(caches)) => {
                            caches.nodes_synced.load(Ordering::SeqCst)
                        }
                        _ => true,
                    },
                    None => true,
                }
            };
            if synced {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn start_caches(&self, name: &str, client: &Client) {
        let mut members = self.lock();
        let Some(member) = members.get_mut(name) else {
            return;
        };
        if member.caches.is_some() {
            return;
        }
        member.caches = Some(watch_member(name, client, &self.signals));
    }
}

/// Starts the Node and Deployment watches of one member.
fn watch_member(name: &str, client: &Client, signals: &Signals) -> Caches {
    let (nodes, nodes_writer) = reflector::store();
    let nodes_synced = Arc::new(AtomicBool::new(false));
    let cluster_ref = ObjectRef::new(name);

    let node_task = {
        let signals = signals.clone();
        let synced = nodes_synced.clone();
        let cluster_ref = cluster_ref.clone();
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .modify(strip_node)
            .reflect(nodes_writer)
            .for_each(move |event| {
                match event {
                    Ok(watcher::Event::InitDone) => synced.store(true, Ordering::SeqCst),
                    Ok(_) => {}
                    // The member may be gone: probe it now rather than at the next interval.
                    Err(_) => {
                        let _ = signals.cluster.send(cluster_ref.clone());
                    }
                }
                let _ = signals.world.send(());
                futures::future::ready(())
            })
    };
    let (deployments, deployment_task) = watch_children(client, signals);
    Caches {
        nodes,
        nodes_synced,
        deployments,
        _tasks: AbortOnDrop(vec![tokio::spawn(node_task), tokio::spawn(deployment_task)]),
    }
}

/// Caches the Deployments Sovra manages on a cluster (stripped) and wakes the workload a child
/// belongs to whenever the child changes. Run the returned future to keep the cache fed.
pub fn watch_children(
    client: &Client,
    signals: &Signals,
) -> (Store<Deployment>, impl Future<Output = ()> + Send + 'static) {
    let (store, writer) = reflector::store();
    let signals = signals.clone();
    let task = watcher(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default().labels(&managed_selector()),
    )
    .default_backoff()
    .modify(strip_deployment)
    .reflect(writer)
    .for_each(move |event| {
        if let Ok(
            watcher::Event::Apply(child)
            | watcher::Event::Delete(child)
            | watcher::Event::InitApply(child),
        ) = &event
            && let (Some(workload), Some(namespace)) =
                (child.labels().get(WORKLOAD_LABEL), child.namespace())
        {
            let _ = signals
                .workload
                .send(ObjectRef::new(workload).within(&namespace));
        }
        futures::future::ready(())
    });
    (store, task)
}

/// The child of workload `namespace/name` in a cache of children. Children are named after
/// their workload; the label check keeps a same-named Deployment of someone else out.
pub fn child(
    store: &Store<Deployment>,
    namespace: &str,
    workload: &str,
) -> Option<Arc<Deployment>> {
    store
        .get(&ObjectRef::new(workload).within(namespace))
        .filter(|d| d.labels().get(WORKLOAD_LABEL).map(String::as_str) == Some(workload))
}

/// Keeps of a child only what Sovra reads: labels, generation, replicas and status.
fn strip_deployment(deployment: &mut Deployment) {
    deployment.metadata.managed_fields = None;
    deployment.metadata.annotations = None;
    if let Some(spec) = deployment.spec.as_mut() {
        spec.template = Default::default();
    }
}

async fn read_kubeconfig(
    secret: &SecretKeyRef,
    hub: &Client,
    namespace: &str,
    timeout: Duration,
) -> Result<String, (ConnectionFault, String)> {
    let api: Api<Secret> = Api::namespaced(hub.clone(), namespace);
    let found = tokio::time::timeout(timeout, api.get_opt(&secret.name))
        .await
        .map_err(|_| {
            (
                ConnectionFault::SecretUnreadable,
                format!("reading Secret {namespace}/{} timed out", secret.name),
            )
        })?
        .map_err(|error| {
            (
                ConnectionFault::SecretUnreadable,
                format!("cannot read Secret {namespace}/{}: {error}", secret.name),
            )
        })?;
    let Some(found) = found else {
        return Err((
            ConnectionFault::KubeconfigMissing,
            format!("Secret {namespace}/{} does not exist", secret.name),
        ));
    };
    let Some(bytes) = found.data.as_ref().and_then(|d| d.get(&secret.key)) else {
        return Err((
            ConnectionFault::KubeconfigMissing,
            format!(
                "Secret {namespace}/{} has no key {:?}",
                secret.name, secret.key
            ),
        ));
    };
    String::from_utf8(bytes.0.clone()).map_err(|_| {
        (
            ConnectionFault::KubeconfigInvalid,
            format!(
                "Secret {namespace}/{} key {:?} is not UTF-8 text",
                secret.name, secret.key
            ),
        )
    })
}

/// A client for a member. Only inline credentials are accepted: `exec` and `auth-provider`
/// would run commands inside the operator, and file paths would read the operator's own files
/// (its service account token, say) and send them to whatever server the kubeconfig names.
pub async fn client_from_kubeconfig(
    yaml: &str,
    timeout: Duration,
) -> Result<Client, (ConnectionFault, String)> {
    let invalid = |message: String| (ConnectionFault::KubeconfigInvalid, message);
    let kubeconfig =
        Kubeconfig::from_yaml(yaml).map_err(|e| invalid(format!("not a kubeconfig: {e}")))?;
    refuse_local_credentials(&kubeconfig).map_err(invalid)?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| invalid(format!("kubeconfig cannot be used: {e}")))?;
    config.connect_timeout = Some(timeout);
    Client::try_from(config).map_err(|e| invalid(format!("cannot build a client: {e}")))
}

fn refuse_local_credentials(kubeconfig: &Kubeconfig) -> Result<(), String> {
    for named in &kubeconfig.auth_infos {
        let Some(user) = &named.auth_info else {
            continue;
        };
        let local = [
            ("exec", user.exec.is_some()),
            ("auth-provider", user.auth_provider.is_some()),
            ("tokenFile", user.token_file.is_some()),
            ("client-certificate", user.client_certificate.is_some()),
            ("client-key", user.client_key.is_some()),
        ];
        if let Some((field, _)) = local.iter().find(|(_, set)| *set) {
            return Err(format!(
                "user {:?} uses {field}; only inline credentials (token, client-certificate-data, client-key-data) are accepted",
                named.name
            ));
        }
    }
    for named in &kubeconfig.clusters {
        if named
            .cluster
            .as_ref()
            .is_some_and(|c| c.certificate_authority.is_some())
        {
            return Err(format!(
                "cluster {:?} uses certificate-authority (a file); use certificate-authority-data",
                named.name
            ));
        }
    }
    Ok(())
}

/// `/version`, then a one-item Node list: the server answers and the credentials may read
/// Nodes. Returns the server's version.
async fn probe_server(
    client: &Client,
    timeout: Duration,
) -> Result<String, (ConnectionFault, String)> {
    let version = tokio::time::timeout(timeout, client.apiserver_version())
        .await
        .map_err(|_| {
            (
                ConnectionFault::ServerUnreachable,
                format!("no answer to /version within {} s", timeout.as_secs_f32()),
            )
        })?
        .map_err(|e| classify(&e, "/version"))?;
    let nodes: Api<Node> = Api::all(client.clone());
    tokio::time::timeout(timeout, nodes.list(&ListParams::default().limit(1)))
        .await
        .map_err(|_| {
            (
                ConnectionFault::ServerUnreachable,
                format!(
                    "no answer to a Node list within {} s",
                    timeout.as_secs_f32()
                ),
            )
        })?
        .map_err(|e| classify(&e, "listing Nodes"))?;
    Ok(version.git_version)
}

fn classify(error: &kube::Error, what: &str) -> (ConnectionFault, String) {
    match error {
        kube::Error::Api(status) if status.code == 401 || status.code == 403 => (
            ConnectionFault::CredentialsRejected,
            format!(
                "{what}: {} {}: {}",
                status.code, status.reason, status.message
            ),
        ),
        other => (
            ConnectionFault::ServerUnreachable,
            format!("{what}: {other}"),
        ),
    }
}

/// Pools as a cluster's status last reported them: what placement knows of a member it cannot
/// reach (or has not synced yet). Keeping them is what keeps a placement there.
pub fn pools_from_status(cluster: &SovereignCluster) -> Vec<NodePool> {
    cluster
        .status
        .iter()
        .flat_map(|s| s.node_pools.iter())
        .map(|p| NodePool {
            name: p.name.clone(),
            nodes: p.nodes,
            sovereign_nodes: p.sovereign_nodes,
            country: p.country.clone(),
            country_conflict: !p.sovereign && p.sovereign_nodes > 0,
            dedicated_to: p.dedicated_to.clone(),
            notes: p.reasons.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(user: &str, cluster: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://member.example:6443\n{cluster}users:\n- name: u\n  user:\n{user}contexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
        )
    }

    #[tokio::test]
    async fn an_inline_token_kubeconfig_gives_a_client() {
        let yaml = kubeconfig("    token: abc\n", "");
        assert!(
            client_from_kubeconfig(&yaml, Duration::from_secs(1))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn credentials_that_run_commands_or_read_local_files_are_refused() {
        for user in [
            "    exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh}\n",
            "    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n",
            "    client-certificate: /etc/cert.pem\n    client-key: /etc/key.pem\n",
        ] {
            let error = client_from_kubeconfig(&kubeconfig(user, ""), Duration::from_secs(1))
                .await
                .err();
            let Some((why, message)) = error else {
                unreachable!("accepted {user}");
            };
            assert_eq!(why, ConnectionFault::KubeconfigInvalid);
            assert!(message.contains("only inline credentials"), "{message}");
        }
        let file_ca = kubeconfig("    token: abc\n", "    certificate-authority: /etc/ca\n");
        let refused = client_from_kubeconfig(&file_ca, Duration::from_secs(1)).await;
        assert!(matches!(
            refused,
            Err((ConnectionFault::KubeconfigInvalid, _))
        ));
    }

    #[tokio::test]
    async fn text_that_is_not_a_kubeconfig_is_invalid_not_a_crash() {
        for text in ["", "{{{", "kind: Config\nclusters: 7\n", "\u{0}\u{1}"] {
            let result = client_from_kubeconfig(text, Duration::from_secs(1)).await;
            assert!(
                matches!(result, Err((ConnectionFault::KubeconfigInvalid, _))),
                "{text:?}"
            );
        }
    }
}
