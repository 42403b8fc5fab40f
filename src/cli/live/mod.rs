//! `sovra plan --live`: what a running hub holds, read with list calls only: its
//! SensitivityClasses, its SovereignClusters (their node pools as the operator last recorded
//! them in status) and its SovereignWorkloads (their placements in status). Nothing is
//! written, watched or fetched from member clusters; the RBAC this needs is the chart's
//! `sovra-viewer` ClusterRole (docs/what-if.md).

pub mod overlay;

use crate::Error;
use crate::crd::{SensitivityClass, SovereignCluster, SovereignWorkload};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::DeserializeGuard;
use kube::{Client, Config, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::path::Path;

/// Objects per list page.
const PAGE: u32 = 500;

/// What the hub holds.
#[derive(Clone, Debug, Default)]
pub struct LiveInputs {
    pub classes: Vec<SensitivityClass>,
    pub clusters: Vec<SovereignCluster>,
    pub workloads: Vec<SovereignWorkload>,
    /// Objects that do not match their schema, one line each: left out, as the operator
    /// leaves them out (it reports them as InvalidSpec).
    pub skipped: Vec<String>,
}

/// A client for the hub: `kubeconfig` (with `context`, else its current context), or the
/// default kubeconfig with `context`, or else what kube infers (KUBECONFIG, ~/.kube/config,
/// in-cluster).
pub async fn hub_client(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Client, Error> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let config = match (kubeconfig, context) {
        (Some(path), _) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| Error::Hub(format!("kubeconfig {}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| Error::Hub(format!("kubeconfig {}: {e}", path.display())))?
        }
        (None, Some(context)) => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| Error::Hub(format!("context {context}: {e}")))?,
        (None, None) => Config::infer()
            .await
            .map_err(|e| Error::Hub(format!("no kubeconfig or in-cluster config: {e}")))?,
    };
    Client::try_from(config).map_err(|e| Error::Hub(format!("cannot build a client: {e}")))
}

/// Lists the hub's classes, clusters and workloads (all namespaces), page by page. Read-only:
/// only `list` requests.
pub async fn live_inputs(client: Client) -> Result<LiveInputs, Error> {
    let mut skipped = Vec::new();
    let classes = list_all::<SensitivityClass>(&client, &mut skipped).await?;
    let clusters = list_all::<SovereignCluster>(&client, &mut skipped).await?;
    let workloads = list_all::<SovereignWorkload>(&client, &mut skipped).await?;
    Ok(LiveInputs {
        classes,
        clusters,
        workloads,
        skipped,
    })
}

async fn list_all<K>(client: &Client, skipped: &mut Vec<String>) -> Result<Vec<K>, Error>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    let api: Api<DeserializeGuard<K>> = Api::all(client.clone());
    let mut params = ListParams::default().limit(PAGE);
    let mut items = Vec::new();
    loop {
        let page = api.list(&params).await.map_err(|e| {
            let plural = K::plural(&());
            let hint = if matches!(&e, kube::Error::Api(s) if s.code == 403) {
                " (plan --live needs list on sensitivityclasses, sovereignclusters and sovereignworkloads in sovra.dev: the chart's sovra-viewer ClusterRole)"
            } else {
                ""
            };
            Error::Hub(format!("list {plural}.{}: {e}{hint}", K::group(&())))
        })?;
        for guard in page.items {
            match guard.0 {
                Ok(object) => items.push(object),
                Err(invalid) => skipped.push(format!(
                    "{} {}: does not match its schema, left out: {}",
                    K::kind(&()),
                    invalid.metadata.name.unwrap_or_default(),
                    invalid.error
                )),
            }
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(items),
        }
    }
}
