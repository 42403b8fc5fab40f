//! A SovereignWorkload status as the operator keeps it in memory (its cache and what it wrote
//! last): without the decision's listed candidates and rejection groups and the exit
//! alternatives, which no reconcile reads and which are most of a cached workload (about
//! 3.8 KB of 5 KB at 10 pools on each of 10 members), and with a digest of the whole status in
//! their place. Two compacted statuses are equal exactly when the whole ones are, so "is the
//! status already what Sovra would write" is still answered from memory, with no write. The
//! cache also packs the conditions (`packed`); compacting unpacks them.

use super::packed_conditions::{ConditionWords, PackedConditions};
use super::workload::{SovereignWorkloadStatus, StatusDigest};
use crate::interner::Interner;
use sha2::{Digest, Sha256};

impl SovereignWorkloadStatus {
    /// The status without the lists no reconcile reads, and the digest of the whole one.
    /// A status compacted already is returned as it is, a packed one ([`Self::packed`]) with
    /// its conditions unpacked: what reconciles read and compare.
    pub fn compacted(mut self) -> Self {
        if let Some(packed) = self.packed_conditions.take() {
            self.conditions = packed.unpack();
        }
        if self.compacted_from.is_some() {
            return self;
        }
        self.compacted_from = Some(digest_of(&self));
        if let Some(decision) = self.decision.as_mut() {
            decision.candidates = Vec::new();
            decision.rejected = Vec::new();
        }
        if let Some(exit) = self.exit.as_mut() {
            exit.alternatives = Vec::new();
        }
        self
    }

    /// The status as the cache keeps it: compacted, with its conditions packed (their words
    /// shared through `words`, see `crd::packed_conditions`). Only [`Self::compacted`] reads
    /// it back: its `conditions` are empty.
    pub fn packed(self, words: &Interner<ConditionWords>) -> Self {
        let mut status = self.compacted();
        let conditions = std::mem::take(&mut status.conditions);
        status.packed_conditions = Some(PackedConditions::pack(conditions, words));
        status
    }

    /// True for a status that lacks the lists [`Self::compacted`] drops: writing it would
    /// erase them, so a status built from it must start from the whole one.
    pub fn is_compacted(&self) -> bool {
        self.compacted_from.is_some()
    }
}

fn digest_of(status: &SovereignWorkloadStatus) -> StatusDigest {
    // Serializing a status cannot fail (no maps with non-string keys); an empty input would
    // only make statuses look different, which costs one write, never a missed one.
    let whole = serde_json::to_vec(status).unwrap_or_default();
    let hash = Sha256::digest(&whole);
    hash.first_chunk().copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use crate::crd::{
        CandidateVerdict, ExitAlternative, ExitStatus, PlacementDecision, RejectionGroup,
        SovereignWorkloadStatus,
    };

    fn status(example: &str) -> SovereignWorkloadStatus {
        SovereignWorkloadStatus {
            clusters: Some("gov-a".into()),
            decision: Some(PlacementDecision {
                reasons: vec!["placed".into()],
                candidates: vec![CandidateVerdict {
                    cluster: "gov-a".into(),
                    accepted: true,
                    ..CandidateVerdict::default()
                }],
                rejected: vec![RejectionGroup {
                    reason: "NotSovereign".into(),
                    count: 1,
                    examples: vec![example.into()],
                    ..RejectionGroup::default()
                }],
                ..PlacementDecision::default()
            }),
            exit: Some(ExitStatus {
                alternatives: vec![ExitAlternative {
                    cluster: "gov-b".into(),
                    provider: "Beta".into(),
                }],
                alternative_count: 1,
                stranded: false,
            }),
            ..SovereignWorkloadStatus::default()
        }
    }

    #[test]
    fn a_compacted_status_drops_the_listed_candidates_groups_and_alternatives_and_keeps_the_rest() {
        let compacted = status("gov-c/general").compacted();
        let decision = compacted.decision.clone().unwrap_or_default();
        assert!(decision.candidates.is_empty() && decision.rejected.is_empty());
        assert_eq!(decision.reasons, vec!["placed".to_owned()]);
        let exit = compacted.exit.clone().unwrap_or_default();
        assert!(exit.alternatives.is_empty());
        assert_eq!(exit.alternative_count, 1);
        assert_eq!(compacted.clusters.as_deref(), Some("gov-a"));
        assert!(compacted.is_compacted());
        assert!(!status("gov-c/general").is_compacted());
    }

    #[test]
    fn compacted_statuses_are_equal_exactly_when_the_whole_ones_are() {
        let one = status("gov-c/general").compacted();
        assert_eq!(one, status("gov-c/general").compacted());
        // They differ only in a dropped list: the digest tells them apart.
        assert_ne!(one, status("gov-d/general").compacted());
    }

    #[test]
    fn a_packed_status_compacts_to_the_compacted_status_it_was_packed_from() {
        let words = crate::interner::Interner::default();
        let mut whole = status("gov-c/general");
        whole.conditions = vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "AllReady".into(),
            message: "1/1 replicas ready".into(),
            observed_generation: Some(1),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::UNIX_EPOCH,
            ),
        }];
        let packed = whole.clone().packed(&words);
        assert!(packed.conditions.is_empty() && packed.is_compacted());
        assert_eq!(packed.clone().compacted(), whole.clone().compacted());
        assert_eq!(packed.compacted().conditions, whole.conditions);
    }

    #[test]
    fn compacting_twice_changes_nothing() {
        let once = status("gov-c/general").compacted();
        assert_eq!(once.clone().compacted(), once);
    }

    #[test]
    fn the_digest_is_neither_serialized_nor_read() {
        let compacted = status("gov-c/general").compacted();
        let json = serde_json::to_value(&compacted).unwrap_or_default();
        assert!(json.get("compactedFrom").is_none());
        let read: SovereignWorkloadStatus = serde_json::from_value(json).unwrap_or_default();
        assert!(!read.is_compacted());
    }
}
