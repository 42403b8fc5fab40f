//! Signed audit checkpoints, outside the trail: the term's checkpoint policy (key and
//! origin), the timer, the checkpoint on shutdown, and publishing each checkpoint where the
//! operator cannot silently take it back:
//!
//! - the ConfigMap `sovra-audit-checkpoint` in the operator's namespace: per replica the
//!   latest checkpoint, the last [`RECENT_CHECKPOINTS`] by tree size, and the verifier key,
//!   server-side applied with a field manager per replica (so replicas never remove each
//!   other's keys). The API server's audit log and anyone watching keep its history;
//! - a Normal Event `AuditCheckpoint` regarding that ConfigMap;
//! - a POST to the witness URL, when one is set ([`super::witness`]).
//!
//! At term start the replica's published latest checkpoint, when Sovra's key signed it, must
//! be a prefix of the trail file: a trail rewritten or cut short since is refused like a
//! broken chain. Publishing runs beside the controllers; its failures are logged and counted.

use super::event_recorder::EventRecorder;
use super::metrics::{Metrics, labels};
use super::settings::Settings;
use super::witness::Witness;
use crate::Error;
use crate::audit::{
    AuditTrail, ExternalCheckpoint, RECENT_CHECKPOINTS, SignedCheckpoint, SigningKey, TrustedKey,
    verify_evidence_file,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Client, Resource};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// The ConfigMap checkpoints are published in.
pub const CHECKPOINT_CONFIG_MAP: &str = "sovra-audit-checkpoint";
/// Every data key of the ConfigMap holding a checkpoint ends in this.
pub const CHECKPOINT_KEY_SUFFIX: &str = ".checkpoint";
/// How long the checkpoint on shutdown may take to publish.
const FINAL_PUBLISH: Duration = Duration::from_secs(10);

/// Publishes one replica's checkpoints. Lives for one term.
pub(super) struct Publisher {
    api: Api<ConfigMap>,
    identity: String,
    recorder: EventRecorder,
    metrics: Metrics,
    witness: Option<Witness>,
    /// The tree size last POSTed to the witness.
    posted: Mutex<Option<u64>>,
    verifier_key: String,
}

impl Publisher {
    /// For a trail that signs checkpoints: checks the published latest checkpoint against the
    /// file, then writes the checkpoint due from before (records left uncovered by a crash or
    /// a lost lease).
    pub async fn start(
        client: &Client,
        settings: &Settings,
        metrics: &Metrics,
        audit: &AuditTrail,
        key: Option<&SigningKey>,
    ) -> Result<Option<Self>, Error> {
        let (Some(origin), Some(key)) = (audit.origin(), key) else {
            return Ok(None);
        };
        let witness = match &settings.checkpoint_witness_url {
            Some(url) => Some(
                Witness::new(url, settings.checkpoint_witness_timeout).map_err(|message| {
                    Error::Audit {
                        path: audit.path().map(ToOwned::to_owned).unwrap_or_default(),
                        message,
                    }
                })?,
            ),
            None => None,
        };
        let verifier_key = key
            .public_key()
            .verifier(&origin)
            .map(|v| v.to_string())
            .unwrap_or_default();
        let publisher = Self {
            api: Api::namespaced(client.clone(), &settings.namespace),
            identity: settings.identity.clone(),
            recorder: EventRecorder::new(
                client.clone(),
                Reporter {
                    controller: "sovra".into(),
                    instance: Some(settings.identity.clone()),
                },
            ),
            metrics: metrics.clone(),
            witness,
            posted: Mutex::new(None),
            verifier_key,
        };
        publisher.check_published(audit, key).await?;
        audit.checkpoint().await?;
        tracing::info!(%origin, verifier_key = %publisher.verifier_key, "signing audit checkpoints");
        Ok(Some(publisher))
    }

    /// Runs `controllers` with the checkpoint timer and publishing beside them; once they
    /// finished (shutdown), writes the checkpoint on shutdown and publishes it, bounded.
    pub async fn run_alongside(
        &self,
        audit: &AuditTrail,
        interval: Duration,
        controllers: impl std::future::Future<Output = ()>,
    ) {
        let Some(mut changes) = audit.checkpoints() else {
            return controllers.await;
        };
        let timer = async {
            let mut ticks = tokio::time::interval(interval.max(Duration::from_secs(1)));
            ticks.tick().await;
            loop {
                ticks.tick().await;
                if let Err(error) = audit.checkpoint().await {
                    tracing::error!(%error, "could not write the periodic audit checkpoint");
                }
            }
        };
        let publishing = async {
            loop {
                let recent = changes.borrow_and_update().clone();
                self.publish(&recent).await;
                if changes.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            () = controllers => {}
            () = timer => {}
            () = publishing => {}
        }
        if let Err(error) = audit.checkpoint().await {
            tracing::error!(%error, "could not write the audit checkpoint on shutdown");
        }
        let recent = changes.borrow_and_update().clone();
        if tokio::time::timeout(FINAL_PUBLISH, self.publish(&recent))
            .await
            .is_err()
        {
            tracing::warn!("publishing the audit checkpoint on shutdown timed out");
        }
    }

    /// The replica's latest published checkpoint, if Sovra's key signed it, must be a prefix
    /// of the trail file; otherwise the trail was rewritten or truncated since.
    async fn check_published(&self, audit: &AuditTrail, key: &SigningKey) -> Result<(), Error> {
        let Some(path) = audit.path() else {
            return Ok(());
        };
        let published = match self.api.get_opt(CHECKPOINT_CONFIG_MAP).await {
            Ok(Some(cm)) => cm.data.unwrap_or_default().remove(&self.latest_key()),
            Ok(None) => None,
            Err(error) => {
                // Publishing never stops Sovra, and neither does failing to read what it
                // published; auditors check the trail against their own copies anyway.
                tracing::warn!(%error, "cannot read the published audit checkpoint; the trail is not compared with it");
                None
            }
        };
        let Some(note) = published else {
            return Ok(());
        };
        let trusted = TrustedKey::Public(key.public_key());
        let signed = SignedCheckpoint::parse(&note).ok().filter(|c| {
            trusted
                .for_origin(&c.checkpoint.origin)
                .is_ok_and(|v| c.verify(&v).is_ok())
        });
        if signed.is_none() {
            tracing::warn!(key = %self.latest_key(), "the published checkpoint is not signed by the configured key; not compared with the trail");
            return Ok(());
        }
        let external = ExternalCheckpoint {
            source: format!(
                "ConfigMap {CHECKPOINT_CONFIG_MAP} key {}",
                self.latest_key()
            ),
            note,
            of_many: false,
        };
        let (path, for_task) = (path.to_owned(), path.to_owned());
        let report = tokio::task::spawn_blocking(move || {
            verify_evidence_file(&for_task, None, std::slice::from_ref(&external))
        })
        .await
        .map_err(|e| Error::Audit {
            path: path.clone(),
            message: format!("checking task failed: {e}"),
        })??;
        match report.problems.first() {
            None => Ok(()),
            Some(problem) => Err(Error::Audit {
                path,
                message: format!(
                    "{problem}. Refusing to extend a trail that contradicts its published \
                     checkpoint: keep the file and the ConfigMap as evidence, investigate, then \
                     move the file aside and remove this replica's keys from the ConfigMap"
                ),
            }),
        }
    }

    /// Applies the ConfigMap, then the Event, then POSTs what the witness has not had.
    async fn publish(&self, recent: &[SignedCheckpoint]) {
        let Some(latest) = recent.last() else {
            return;
        };
        match self.apply(recent).await {
            Ok(cm) => {
                self.count("configmap", true);
                self.event(&cm, latest).await;
            }
            Err(error) => {
                self.count("configmap", false);
                tracing::warn!(%error, "could not publish the audit checkpoint in its ConfigMap");
            }
        }
        let Some(witness) = &self.witness else {
            return;
        };
        let posted = *crate::sync::lock(&self.posted);
        let after = posted.unwrap_or(latest.checkpoint.tree_size.saturating_sub(1));
        for checkpoint in recent.iter().filter(|c| c.checkpoint.tree_size > after) {
            let tree_size = checkpoint.checkpoint.tree_size;
            match witness.post(checkpoint).await {
                Ok(()) => self.count("witness", true),
                Err(error) => {
                    self.count("witness", false);
                    tracing::warn!(%error, url = %witness.url(), tree_size, "could not send the audit checkpoint to the witness");
                }
            }
            // Failed ones are not retried: the next checkpoint covers every line before it.
            *crate::sync::lock(&self.posted) = Some(tree_size);
        }
    }

    async fn apply(&self, recent: &[SignedCheckpoint]) -> Result<ConfigMap, kube::Error> {
        let data = config_map_data(&self.identity, &self.verifier_key, recent);
        let value = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": CHECKPOINT_CONFIG_MAP,
                "labels": {"app.kubernetes.io/managed-by": "sovra"},
            },
            "data": data,
        });
        let manager = format!("sovra-audit-{}", self.identity);
        self.api
            .patch(
                CHECKPOINT_CONFIG_MAP,
                &PatchParams::apply(&manager).force(),
                &Patch::Apply(&value),
            )
            .await
    }

    async fn event(&self, cm: &ConfigMap, latest: &SignedCheckpoint) {
        let c = &latest.checkpoint;
        let event = Event {
            type_: EventType::Normal,
            reason: "AuditCheckpoint".to_owned(),
            note: Some(format!(
                "{} signed a checkpoint of its audit trail: origin {}, {}",
                self.identity, c.origin, c
            )),
            action: "Checkpoint".to_owned(),
            secondary: None,
        };
        match self.recorder.publish(&event, &cm.object_ref(&())).await {
            Ok(()) => self.count("event", true),
            Err(error) => {
                self.count("event", false);
                tracing::warn!(%error, "could not publish the AuditCheckpoint event");
            }
        }
    }

    fn latest_key(&self) -> String {
        format!("{}.latest{CHECKPOINT_KEY_SUFFIX}", self.identity)
    }

    fn count(&self, target: &str, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.metrics
            .checkpoint_publications
            .get_or_create(&labels(&[("target", target), ("result", result)]))
            .inc();
    }
}

/// The replica's keys in the ConfigMap: `<identity>.latest.checkpoint`, one
/// `<identity>.<tree size>.checkpoint` per recent checkpoint, `<identity>.verifier-key`.
pub(super) fn config_map_data(
    identity: &str,
    verifier_key: &str,
    recent: &[SignedCheckpoint],
) -> BTreeMap<String, String> {
    let skip = recent.len().saturating_sub(RECENT_CHECKPOINTS);
    let mut data: BTreeMap<String, String> = recent
        .iter()
        .skip(skip)
        .map(|c| {
            (
                format!(
                    "{identity}.{}{CHECKPOINT_KEY_SUFFIX}",
                    c.checkpoint.tree_size
                ),
                c.to_string(),
            )
        })
        .collect();
    if let Some(latest) = recent.last() {
        data.insert(
            format!("{identity}.latest{CHECKPOINT_KEY_SUFFIX}"),
            latest.to_string(),
        );
    }
    data.insert(format!("{identity}.verifier-key"), verifier_key.to_owned());
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Checkpoint;

    fn signed(size: u64) -> SignedCheckpoint {
        let key = SigningKey::generate().unwrap();
        Checkpoint::new("sovra.dev/u/sovra-0", size, &"ab".repeat(32))
            .unwrap()
            .sign(&key)
    }

    #[test]
    fn the_config_map_keeps_the_latest_and_recent_checkpoints_keyed_by_replica_and_tree_size() {
        let recent: Vec<SignedCheckpoint> = (1..=3).map(|i| signed(i * 100)).collect();
        let data = config_map_data("sovra-0", "vkey", &recent);
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "sovra-0.100.checkpoint",
                "sovra-0.200.checkpoint",
                "sovra-0.300.checkpoint",
                "sovra-0.latest.checkpoint",
                "sovra-0.verifier-key"
            ]
        );
        assert_eq!(data["sovra-0.latest.checkpoint"], recent[2].to_string());
        let many: Vec<SignedCheckpoint> = (1..=20).map(signed).collect();
        let data = config_map_data("sovra-0", "vkey", &many);
        assert_eq!(data.len(), RECENT_CHECKPOINTS + 2);
        assert!(!data.contains_key("sovra-0.4.checkpoint"));
        assert!(data.contains_key("sovra-0.5.checkpoint"));
    }
}
