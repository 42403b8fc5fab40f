//! Node pools derived from Nodes: which pool a node is in, whether it is sovereign, where it
//! is, and whether the pool is dedicated to a class.

use super::{DEDICATED_TAINT_KEY, NODE_COUNTRY_LABEL, SOVEREIGN_NODE_LABEL};
use k8s_openapi::api::core::v1::Node;
use std::collections::BTreeMap;

/// The facts of a Node that placement depends on (labels and taints); everything else of the
/// Node is dropped, which also keeps caches small.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeFacts {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Taint {
    pub key: String,
    pub value: Option<String>,
    pub effect: String,
}

impl NodeFacts {
    pub fn from_node(node: &Node) -> Self {
        Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints: node
                .spec
                .as_ref()
                .and_then(|spec| spec.taints.as_ref())
                .map(|taints| {
                    taints
                        .iter()
                        .map(|t| Taint {
                            key: t.key.clone(),
                            value: t.value.clone(),
                            effect: t.effect.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Sovereign only when the administrator-controlled label says exactly `true`.
    pub fn is_sovereign(&self) -> bool {
        self.labels.get(SOVEREIGN_NODE_LABEL).map(String::as_str) == Some("true")
    }

    /// Class this node is dedicated to, from its `sovra.dev/sensitivity=<class>:NoSchedule` taint.
    pub fn dedicated_to(&self) -> Option<&str> {
        self.taints
            .iter()
            .find(|t| t.key == DEDICATED_TAINT_KEY && t.effect == "NoSchedule")
            .and_then(|t| t.value.as_deref())
    }
}

/// A pool of nodes in one cluster as placement sees it. Only sovereign nodes count for
/// placement: the Deployment's node affinity requires the sovereign label as well as the pool
/// label, so pods can never land on the pool's other nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodePool {
    pub name: String,
    pub nodes: i32,
    pub sovereign_nodes: i32,
    /// Country all sovereign nodes agree on (from `sovra.dev/country`); `None` when unlabelled.
    pub country: Option<String>,
    /// Sovereign nodes disagree on their country: the pool's location cannot be established.
    pub country_conflict: bool,
    /// Class every sovereign node is dedicated to by taint; `None` when not all agree.
    pub dedicated_to: Option<String>,
    /// Human-readable notes on why (part of) the pool is not sovereign.
    pub notes: Vec<String>,
}

impl NodePool {
    pub fn is_sovereign(&self) -> bool {
        self.sovereign_nodes > 0
    }
}

/// Groups nodes into pools by `pool_label`. Nodes without the label belong to no pool and are
/// never placement targets. The result is sorted by pool name.
pub fn node_pools(nodes: &[NodeFacts], pool_label: &str) -> Vec<NodePool> {
    let mut members: BTreeMap<&str, Vec<&NodeFacts>> = BTreeMap::new();
    for node in nodes {
        if let Some(pool) = node.labels.get(pool_label).filter(|p| !p.is_empty()) {
            members.entry(pool.as_str()).or_default().push(node);
        }
    }
    members
        .into_iter()
        .map(|(name, nodes)| summarize(name, &nodes))
        .collect()
}

fn summarize(name: &str, nodes: &[&NodeFacts]) -> NodePool {
    let sovereign: Vec<&&NodeFacts> = nodes.iter().filter(|n| n.is_sovereign()).collect();
    let mut notes = Vec::new();
    let outsiders = nodes.len() - sovereign.len();
    if sovereign.is_empty() {
        notes.push(format!(
            "no node carries {SOVEREIGN_NODE_LABEL}=true (set by an administrator)"
        ));
    } else if outsiders > 0 {
        notes.push(format!(
            "{outsiders} of {} nodes lack {SOVEREIGN_NODE_LABEL}=true and are excluded",
            nodes.len()
        ));
    }

    let mut countries: Vec<Option<&str>> = sovereign
        .iter()
        .map(|n| n.labels.get(NODE_COUNTRY_LABEL).map(String::as_str))
        .collect();
    countries.sort_unstable();
    countries.dedup();
    let country_conflict = countries.len() > 1;
    if country_conflict {
        notes.push(format!(
            "sovereign nodes disagree on {NODE_COUNTRY_LABEL}: {}",
            countries
                .iter()
                .map(|c| c.unwrap_or("<unset>"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let country = match countries.as_slice() {
        [Some(country)] => Some((*country).to_owned()),
        _ => None,
    };

    let mut dedications: Vec<Option<&str>> = sovereign.iter().map(|n| n.dedicated_to()).collect();
    dedications.sort_unstable();
    dedications.dedup();
    let dedicated_to = match dedications.as_slice() {
        [Some(class)] => Some((*class).to_owned()),
        _ => None,
    };
    if dedications.len() > 1 {
        notes.push(format!(
            "only some sovereign nodes carry the {DEDICATED_TAINT_KEY} taint: not dedicated"
        ));
    }

    NodePool {
        name: name.to_owned(),
        nodes: saturating_i32(nodes.len()),
        sovereign_nodes: saturating_i32(sovereign.len()),
        country,
        country_conflict,
        dedicated_to,
        notes,
    }
}

fn saturating_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::DEFAULT_NODE_POOL_LABEL;

    fn node(name: &str, labels: &[(&str, &str)], taint: Option<&str>) -> NodeFacts {
        NodeFacts {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            taints: taint
                .map(|class| Taint {
                    key: DEDICATED_TAINT_KEY.into(),
                    value: Some(class.into()),
                    effect: "NoSchedule".into(),
                })
                .into_iter()
                .collect(),
        }
    }

    const POOL: &str = DEFAULT_NODE_POOL_LABEL;

    #[test]
    fn nodes_without_the_admin_label_do_not_make_a_pool_sovereign() {
        let nodes = [
            node("a", &[(POOL, "gov"), (SOVEREIGN_NODE_LABEL, "false")], None),
            node("b", &[(POOL, "gov"), (SOVEREIGN_NODE_LABEL, "True")], None),
            node("c", &[(POOL, "gov")], None),
        ];
        let pools = node_pools(&nodes, POOL);
        assert_eq!(pools.len(), 1);
        assert!(!pools[0].is_sovereign());
        assert_eq!(pools[0].nodes, 3);
    }

    #[test]
    fn a_mixed_pool_counts_only_its_sovereign_nodes() {
        let nodes = [
            node("a", &[(POOL, "p"), (SOVEREIGN_NODE_LABEL, "true")], None),
            node("b", &[(POOL, "p")], None),
        ];
        let pool = &node_pools(&nodes, POOL)[0];
        assert_eq!((pool.nodes, pool.sovereign_nodes), (2, 1));
        assert!(pool.notes[0].contains("1 of 2 nodes"));
    }

    #[test]
    fn unlabelled_nodes_belong_to_no_pool() {
        let nodes = [node("a", &[(SOVEREIGN_NODE_LABEL, "true")], None)];
        assert!(node_pools(&nodes, POOL).is_empty());
    }

    #[test]
    fn a_pool_is_dedicated_only_when_every_sovereign_node_carries_the_taint() {
        let s = (SOVEREIGN_NODE_LABEL, "true");
        let all = [
            node("a", &[(POOL, "p"), s], Some("secret")),
            node("b", &[(POOL, "p"), s], Some("secret")),
        ];
        assert_eq!(
            node_pools(&all, POOL)[0].dedicated_to.as_deref(),
            Some("secret")
        );
        let some = [
            node("a", &[(POOL, "p"), s], Some("secret")),
            node("b", &[(POOL, "p"), s], None),
        ];
        assert_eq!(node_pools(&some, POOL)[0].dedicated_to, None);
    }

    #[test]
    fn sovereign_nodes_that_disagree_on_country_make_the_location_unknown() {
        let s = (SOVEREIGN_NODE_LABEL, "true");
        let nodes = [
            node("a", &[(POOL, "p"), s, (NODE_COUNTRY_LABEL, "NL")], None),
            node("b", &[(POOL, "p"), s, (NODE_COUNTRY_LABEL, "US")], None),
        ];
        let pool = &node_pools(&nodes, POOL)[0];
        assert!(pool.country_conflict);
        assert_eq!(pool.country, None);
    }
}
