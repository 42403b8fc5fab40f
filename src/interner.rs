//! One shared copy of each distinct value among many holders.
//!
//! A fleet's cached statuses say the same few things: the same condition words ("Ready",
//! "True", "AllReady", "1/1 replicas ready") on thousands of workloads. Interned, each distinct
//! value is kept once and every holder keeps a pointer to it.

use crate::sync::lock;
use std::collections::HashSet;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Below this many values the interner never sweeps: a small set is not worth the pass.
const KEPT: usize = 64;

/// The distinct values in use, each shared by an `Arc`. Values no holder uses any more are
/// swept once the set has doubled since the last sweep, so a sweep's cost is paid for by the
/// values interned since: amortized constant work per value.
pub struct Interner<T> {
    values: Mutex<Values<T>>,
}

struct Values<T> {
    set: HashSet<Arc<T>>,
    /// How many values the last sweep kept.
    kept: usize,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Self {
            values: Mutex::new(Values {
                set: HashSet::new(),
                kept: 0,
            }),
        }
    }
}

impl<T: Eq + Hash> Interner<T> {
    /// The shared copy of `value`: the one already held, or `value`, which then becomes it.
    pub fn intern(&self, value: T) -> Arc<T> {
        let mut values = lock(&self.values);
        if let Some(shared) = values.set.get(&value) {
            return shared.clone();
        }
        if values.set.len() >= values.kept.max(KEPT).saturating_mul(2) {
            // Held by the set alone: no holder uses it any more.
            values.set.retain(|shared| Arc::strong_count(shared) > 1);
            let kept = values.set.len();
            values.set.shrink_to(kept.saturating_mul(2));
            values.kept = kept;
        }
        let shared = Arc::new(value);
        values.set.insert(shared.clone());
        shared
    }

    /// How many distinct values are held (some perhaps no longer used, until a sweep).
    #[cfg(test)]
    fn distinct(&self) -> usize {
        lock(&self.values).set.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_one_copy() {
        let interner = Interner::default();
        let one = interner.intern("Ready".to_owned());
        let two = interner.intern("Ready".to_owned());
        assert!(Arc::ptr_eq(&one, &two));
        assert!(!Arc::ptr_eq(&one, &interner.intern("Placed".to_owned())));
        assert_eq!(interner.distinct(), 2);
    }

    #[test]
    fn values_no_one_holds_are_swept_once_the_set_has_doubled() {
        let interner = Interner::default();
        let held: Vec<Arc<String>> = (0..10)
            .map(|i| interner.intern(format!("held {i}")))
            .collect();
        for i in 0..(KEPT * 4) {
            drop(interner.intern(format!("dropped {i}")));
        }
        // Every value still held survives every sweep, and is still the shared copy.
        for (i, value) in held.iter().enumerate() {
            assert!(Arc::ptr_eq(value, &interner.intern(format!("held {i}"))));
        }
        // The set never grew past twice what a sweep kept (at least KEPT) plus one.
        assert!(
            interner.distinct() <= KEPT * 2 + 1,
            "{}",
            interner.distinct()
        );
    }
}
