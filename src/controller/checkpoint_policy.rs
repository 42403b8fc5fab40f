//! The checkpoint policy of a term: the signing key, read from its file, and the origin.

use super::settings::Settings;
use crate::Error;
use crate::audit::{CheckpointPolicy, SigningKey};
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::Api;
use std::time::Duration;

/// The checkpoint policy of a term: `None` without a signing key. The key file must be
/// readable (a configured key that is missing stops Sovra: evidence is not silently unsigned).
pub(super) async fn policy(
    client: &Client,
    settings: &Settings,
) -> Result<Option<CheckpointPolicy>, Error> {
    let Some(path) = &settings.audit_signing_key else {
        return Ok(None);
    };
    let key = SigningKey::read(path)?;
    let origin = match &settings.audit_origin {
        Some(origin) => origin.clone(),
        None => derived_origin(client, settings).await?,
    };
    Ok(Some(CheckpointPolicy {
        key,
        origin,
        every_records: settings.checkpoint_every_records,
    }))
}

/// `sovra.dev/<UID of kube-system>/<identity>`: the UID names the hub for as long as it
/// exists; the identity, the replica (each has its own trail). When the Namespace may not be
/// read (403) or does not exist (404): `sovra.dev/<operator namespace>/<identity>`. Other
/// failures are retried briefly, then end the term: a guessed origin would stick to the trail.
async fn derived_origin(client: &Client, settings: &Settings) -> Result<String, Error> {
    let api = Api::<Namespace>::all(client.clone());
    let mut attempts = 0;
    loop {
        attempts += 1;
        match api.get("kube-system").await {
            Ok(ns) => {
                if let Some(uid) = ns.metadata.uid {
                    return Ok(format!("sovra.dev/{uid}/{}", settings.identity));
                }
                break;
            }
            Err(kube::Error::Api(status)) if matches!(status.code, 403 | 404) => {
                tracing::warn!(error = %status.message, "cannot read the kube-system Namespace's UID");
                break;
            }
            Err(error) if attempts < 3 => {
                tracing::debug!(%error, "reading the kube-system Namespace; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
    tracing::warn!("the audit checkpoint origin falls back to the operator namespace");
    Ok(format!(
        "sovra.dev/{}/{}",
        settings.namespace, settings.identity
    ))
}
