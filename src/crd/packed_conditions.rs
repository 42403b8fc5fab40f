//! A cached status's conditions, packed: the words of each condition (type, status, reason,
//! message and observed generation) interned, so every cached workload that says the same
//! shares one copy, and only the transition time kept per workload.
//!
//! Unpacked, four conditions cost a cached workload about 1.1 KB (128 bytes each in place and
//! four strings each on the heap); packed, 96 bytes. A fleet's workloads say few distinct
//! things: 10,000 workloads of a class on 100 node pools share about a hundred "placed onto"
//! messages and one "1/1 replicas ready".

use crate::interner::Interner;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use std::sync::Arc;

/// What a condition says, apart from when it last changed: what workloads share.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConditionWords {
    type_: String,
    status: String,
    reason: String,
    message: String,
    observed_generation: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
struct PackedCondition {
    words: Arc<ConditionWords>,
    last_transition_time: Time,
}

/// Conditions in their order, packed ([`PackedConditions::pack`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PackedConditions(Box<[PackedCondition]>);

impl PackedConditions {
    pub fn pack(conditions: Vec<Condition>, words: &Interner<ConditionWords>) -> Self {
        let packed = conditions.into_iter().map(|c| PackedCondition {
            words: words.intern(ConditionWords {
                type_: c.type_,
                status: c.status,
                reason: c.reason,
                message: c.message,
                observed_generation: c.observed_generation,
            }),
            last_transition_time: c.last_transition_time,
        });
        Self(packed.collect())
    }

    /// The conditions as they were packed.
    pub fn unpack(&self) -> Vec<Condition> {
        self.0
            .iter()
            .map(|c| Condition {
                type_: c.words.type_.clone(),
                status: c.words.status.clone(),
                reason: c.words.reason.clone(),
                message: c.words.message.clone(),
                observed_generation: c.words.observed_generation,
                last_transition_time: c.last_transition_time.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(type_: &str, message: &str, second: i64) -> Condition {
        Condition {
            type_: type_.into(),
            status: "True".into(),
            reason: "AllReady".into(),
            message: message.into(),
            observed_generation: Some(2),
            last_transition_time: Time(jiff::Timestamp::from_second(second).unwrap_or_default()),
        }
    }

    #[test]
    fn conditions_unpack_to_exactly_what_was_packed_in_their_order() {
        let words = Interner::default();
        let conditions = vec![
            condition("Placed", "placed onto gov-a [general]", 10),
            condition("Ready", "1/1 replicas ready", 20),
        ];
        let packed = PackedConditions::pack(conditions.clone(), &words);
        assert_eq!(packed.unpack(), conditions);
    }

    #[test]
    fn workloads_that_say_the_same_share_the_words_but_keep_their_own_times() {
        let words = Interner::default();
        let one = PackedConditions::pack(vec![condition("Ready", "1/1 replicas ready", 1)], &words);
        let two = PackedConditions::pack(vec![condition("Ready", "1/1 replicas ready", 2)], &words);
        assert!(Arc::ptr_eq(&one.0[0].words, &two.0[0].words));
        assert_ne!(one, two, "the transition times differ");
        assert_eq!(
            two.unpack()[0].last_transition_time,
            condition("Ready", "", 2).last_transition_time
        );
    }
}
