//! The one mapping between a node pool as placement sees it ([`NodePool`]) and as a cluster's
//! status reports it ([`NodePoolStatus`]), both ways. A member Sovra cannot reach is placed
//! from the pools its status last reported, so every fact placement reads must survive the
//! round trip: a per-pool requirement added to [`NodePool`] is added here, once, or it is
//! silently lost for unreachable members (the round-trip test fails first).

use crate::crd::{NodePoolStatus, SovereignCluster};
use crate::policy::NodePool;

/// How a cluster's status reports `pool`. `sovereign` is what placement may use: sovereign
/// nodes whose countries agree.
pub fn pool_status(pool: &NodePool) -> NodePoolStatus {
    NodePoolStatus {
        name: pool.name.clone(),
        nodes: pool.nodes,
        sovereign_nodes: pool.sovereign_nodes,
        sovereign: pool.is_sovereign() && !pool.country_conflict,
        dedicated_to: pool.dedicated_to.clone(),
        country: pool.country.clone(),
        reasons: pool.notes.clone(),
    }
}

/// The pool a status reports, as placement reads it. A pool with sovereign nodes that is not
/// reported sovereign is one whose nodes disagree on their country.
pub fn pool_from_status(status: &NodePoolStatus) -> NodePool {
    NodePool {
        name: status.name.clone(),
        nodes: status.nodes,
        sovereign_nodes: status.sovereign_nodes,
        country: status.country.clone(),
        country_conflict: !status.sovereign && status.sovereign_nodes > 0,
        dedicated_to: status.dedicated_to.clone(),
        notes: status.reasons.clone(),
    }
}

/// Pools as a cluster's status last reported them: what placement knows of a member it cannot
/// reach (or has not synced yet). Keeping them is what keeps a placement there.
pub fn pools_from_status(cluster: &SovereignCluster) -> Vec<NodePool> {
    cluster
        .status
        .iter()
        .flat_map(|s| s.node_pools.iter())
        .map(pool_from_status)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Pools as `policy::node_pools` can derive them: a country conflict needs sovereign nodes.
    fn derivable_pool() -> impl Strategy<Value = NodePool> {
        (
            "[a-z]{1,8}",
            0..50i32,
            0..50i32,
            proptest::option::of("[A-Z]{2}"),
            any::<bool>(),
            proptest::option::of("[a-z]{1,8}"),
            proptest::collection::vec("[a-z ]{0,20}", 0..3),
        )
            .prop_map(
                |(name, nodes, sovereign, country, conflict, dedicated_to, notes)| NodePool {
                    name,
                    nodes: nodes.max(sovereign),
                    sovereign_nodes: sovereign,
                    country,
                    country_conflict: conflict && sovereign > 0,
                    dedicated_to,
                    notes,
                },
            )
    }

    proptest! {
        #[test]
        fn every_fact_placement_reads_survives_the_trip_through_status(pool in derivable_pool()) {
            prop_assert_eq!(pool_from_status(&pool_status(&pool)), pool);
        }
    }

    #[test]
    fn a_pool_whose_sovereign_nodes_disagree_on_their_country_is_reported_not_sovereign() {
        let pool = NodePool {
            name: "gov".into(),
            nodes: 2,
            sovereign_nodes: 2,
            country_conflict: true,
            ..NodePool::default()
        };
        let status = pool_status(&pool);
        assert!(!status.sovereign);
        assert!(pool_from_status(&status).country_conflict);
    }
}
