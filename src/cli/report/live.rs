//! `--live`: the hub's SovereignWorkloads and SovereignClusters, listed (never watched or
//! changed). Objects that do not match their CRD are counted and skipped, as the controller
//! does, so one bad object does not hide the rest.

use super::facts::{LiveState, LiveWorkload, cluster_facts};
use crate::Error;
use crate::crd::{SovereignCluster, SovereignWorkload};
use kube::api::{Api, ListParams};
use kube::core::DeserializeGuard;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// Objects per list call; larger fleets are read in pages.
const PAGE: u32 = 500;

/// Lists every SovereignWorkload (all namespaces) and SovereignCluster on the hub.
pub async fn read(client: Client) -> Result<LiveState, Error> {
    let (workloads, bad_workloads) =
        list_all::<SovereignWorkload>(Api::all(client.clone())).await?;
    let (clusters, bad_clusters) = list_all::<SovereignCluster>(Api::all(client)).await?;
    Ok(LiveState {
        workloads: workloads.iter().map(LiveWorkload::from_resource).collect(),
        clusters: cluster_facts(&clusters),
        invalid_objects: bad_workloads + bad_clusters,
    })
}

/// Every object, page by page, and how many could not be read.
async fn list_all<K>(api: Api<DeserializeGuard<K>>) -> Result<(Vec<K>, usize), Error>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    let mut objects = Vec::new();
    let mut invalid = 0;
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api.list(&params).await?;
        for guard in page.items {
            match guard.0 {
                Ok(object) => objects.push(object),
                Err(_) => invalid += 1,
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    Ok((objects, invalid))
}
