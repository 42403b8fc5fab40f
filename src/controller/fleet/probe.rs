//! Probing a member: read its kubeconfig Secret, build (or keep) a client, ask the member
//! `/version` and one-item lists, and record the health that came out. A rotated kubeconfig
//! replaces a working connection only once it has answered.

use super::{Fleet, Member, watch_member};
use crate::controller::kubeconfig::client_from_kubeconfig;
use crate::controller::member_health::{ConnectionFault, Health};
use crate::crd::SecretKeyRef;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Secret};
use kube::Client;
use kube::api::{Api, ListParams};
use sha2::{Digest, Sha256};
use std::sync::atomic::Ordering;
use std::time::Duration;

impl Fleet {
    /// Reads the member's kubeconfig, builds a client when the kubeconfig changed, probes it
    /// and, on the first success, starts its caches. A new kubeconfig replaces the connection
    /// (client and caches) only once it has been probed successfully. Never fails: what went
    /// wrong is the returned health. Announces a world change when the health changed.
    pub async fn probe(
        &self,
        name: &str,
        secret: &SecretKeyRef,
        hub: &Client,
        namespace: &str,
    ) -> Health {
        let probed = match self.connect(name, secret, hub, namespace).await {
            Ok(connection) => self.probe_connection(connection).await,
            Err(fault) => Err(fault),
        };
        let now = tokio::time::Instant::now();
        let mut rotation_changed = false;
        let (health, changed) = {
            let mut members = self.lock();
            let member = members
                .entry(name.to_owned())
                .or_insert_with(|| Member::new(Vec::new(), None));
            let before = member.health.clone();
            match probed {
                Ok((client, source, version, refused)) => {
                    if member.source != source || member.client.is_none() {
                        // A new kubeconfig may point at another cluster: nothing of the old
                        // connection is kept.
                        *member = Member::new(source, Some(client.clone()));
                    }
                    if member.rotation_refused != refused {
                        if let Some(why) = &refused {
                            tracing::warn!(cluster = %name, %why, "kept the previous kubeconfig");
                        }
                        member.rotation_refused = refused;
                        rotation_changed = true;
                    }
                    member.failing_since = None;
                    member.health = Health::Reachable { version };
                    if member.caches.is_none() {
                        member.caches = Some(watch_member(name, &client, &self.signals));
                    }
                }
                Err((why, message)) => {
                    let since = *member.failing_since.get_or_insert(now);
                    let tolerated = matches!(before, Health::Reachable { .. })
                        && now.duration_since(since) < self.grace;
                    if tolerated {
                        tracing::warn!(cluster = %name, %message, "probe failed; still counted as reachable for now");
                    } else {
                        member.health = Health::Unreachable { why, message };
                    }
                }
            }
            member.last_probe = Some(now);
            if let Some(caches) = &member.caches {
                caches.probe_wanted.store(false, Ordering::SeqCst);
            }
            (member.health.clone(), member.health != before)
        };
        if changed || rotation_changed {
            let _ = self.signals.world.send(());
        }
        health
    }

    /// A client for the member's current kubeconfig and that kubeconfig's digest: the existing
    /// client when the kubeconfig did not change, or when the Secret cannot be read for a
    /// moment; otherwise a new one (not installed here: `probe` does that once it answers).
    /// A rotated kubeconfig that cannot be used does not replace a working connection.
    async fn connect(
        &self,
        name: &str,
        secret: &SecretKeyRef,
        hub: &Client,
        namespace: &str,
    ) -> Result<Connection, (ConnectionFault, String)> {
        let current = self
            .lock()
            .get(name)
            .and_then(|m| m.client.clone().map(|c| (c, m.source.clone())));
        let read = bounded(
            self.timeout,
            ConnectionFault::SecretUnreadable,
            "reading the kubeconfig Secret",
            read_kubeconfig(secret, hub, namespace),
        )
        .await;
        let kubeconfig = match (read, current.clone()) {
            (Ok(kubeconfig), _) => kubeconfig,
            (Err((ConnectionFault::SecretUnreadable, message)), Some((client, source))) => {
                tracing::warn!(cluster = %name, %message, "using the last kubeconfig");
                return Ok(Connection::unchanged(client, source));
            }
            (Err(fault), _) => return Err(fault),
        };
        let source = Sha256::digest(kubeconfig.as_bytes()).to_vec();
        match current {
            Some((client, current_source)) if current_source == source => {
                Ok(Connection::unchanged(client, source))
            }
            Some((client, current_source)) => {
                match client_from_kubeconfig(&kubeconfig, self.timeout).await {
                    Ok(rotated) => Ok(Connection {
                        client: rotated,
                        source,
                        previous: Some((client, current_source)),
                        refused: None,
                    }),
                    Err((_, why)) => Ok(Connection {
                        refused: Some(format!("the new kubeconfig cannot be used: {why}")),
                        ..Connection::unchanged(client, current_source)
                    }),
                }
            }
            None => Ok(Connection::unchanged(
                client_from_kubeconfig(&kubeconfig, self.timeout).await?,
                source,
            )),
        }
    }

    /// Probes the connection's client. A rotated kubeconfig whose server does not answer (or
    /// rejects it) is refused while the previous one still works: a bad rotation must not take
    /// a healthy member down and fail its workloads over.
    async fn probe_connection(
        &self,
        connection: Connection,
    ) -> Result<(Client, Vec<u8>, String, Option<String>), (ConnectionFault, String)> {
        let probe = |client: Client| {
            bounded(
                self.timeout,
                ConnectionFault::ServerUnreachable,
                "probing",
                async move { probe_server(&client).await },
            )
        };
        let Connection {
            client,
            source,
            previous,
            refused,
        } = connection;
        match (probe(client.clone()).await, previous) {
            (Ok(version), _) => Ok((client, source, version, refused)),
            (Err((why, message)), Some((old, old_source))) => match probe(old.clone()).await {
                Ok(version) => Ok((
                    old,
                    old_source,
                    version,
                    Some(format!(
                        "the new kubeconfig does not work ({}): {message}",
                        why.code()
                    )),
                )),
                Err(_) => Err((why, message)),
            },
            (Err(fault), None) => Err(fault),
        }
    }
}

/// Runs `call` within `timeout`; running out is `fault`.
async fn bounded<T>(
    timeout: Duration,
    fault: ConnectionFault,
    what: &str,
    call: impl Future<Output = Result<T, (ConnectionFault, String)>>,
) -> Result<T, (ConnectionFault, String)> {
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| {
            Err((
                fault,
                format!("{what}: no answer within {} s", timeout.as_secs_f32()),
            ))
        })
}

async fn read_kubeconfig(
    secret: &SecretKeyRef,
    hub: &Client,
    namespace: &str,
) -> Result<String, (ConnectionFault, String)> {
    let api: Api<Secret> = Api::namespaced(hub.clone(), namespace);
    let found = api.get_opt(&secret.name).await.map_err(|error| {
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

/// `/version`, then one-item lists of Nodes and Deployments: the server answers and the
/// credentials may read what Sovra caches. Returns the server's version.
async fn probe_server(client: &Client) -> Result<String, (ConnectionFault, String)> {
    let version = client
        .apiserver_version()
        .await
        .map_err(|e| classify(&e, "/version"))?;
    let one = ListParams::default().limit(1);
    Api::<Node>::all(client.clone())
        .list(&one)
        .await
        .map_err(|e| classify(&e, "listing Nodes"))?;
    Api::<Deployment>::all(client.clone())
        .list(&one)
        .await
        .map_err(|e| classify(&e, "listing Deployments"))?;
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

/// What `connect` found: the client to probe, its kubeconfig's digest, the connection it would
/// replace (a rotation), and why a newer kubeconfig was refused.
struct Connection {
    client: Client,
    source: Vec<u8>,
    previous: Option<(Client, Vec<u8>)>,
    refused: Option<String>,
}

impl Connection {
    fn unchanged(client: Client, source: Vec<u8>) -> Self {
        Self {
            client,
            source,
            previous: None,
            refused: None,
        }
    }
}
