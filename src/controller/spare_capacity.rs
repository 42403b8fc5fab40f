//! Maps, sets and queues that give back what a burst made them reserve.
//!
//! A `HashMap` or `VecDeque` keeps the capacity of its fullest moment. At start-up, and after
//! every world change, every workload passes through the controllers' queues and memories at
//! once, so without this each would hold room for the whole fleet for good: at 10,000
//! workloads several MiB that steady state never uses.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hash};

/// Below this capacity nothing is given back: small tables are not worth the reallocation.
const KEPT: usize = 64;

/// Gives back spare capacity once it is more than three quarters unused, keeping room for
/// twice what is held. Each shrink is paid for by the removals since the last growth, so it
/// costs nothing per operation on average.
pub trait ShedSpare {
    fn shed_spare(&mut self);
}

fn sparse(len: usize, capacity: usize) -> bool {
    capacity > KEPT && len.saturating_mul(4) < capacity
}

impl<K: Eq + Hash, V, S: BuildHasher> ShedSpare for HashMap<K, V, S> {
    fn shed_spare(&mut self) {
        if sparse(self.len(), self.capacity()) {
            self.shrink_to(self.len().saturating_mul(2));
        }
    }
}

impl<T: Eq + Hash, S: BuildHasher> ShedSpare for HashSet<T, S> {
    fn shed_spare(&mut self) {
        if sparse(self.len(), self.capacity()) {
            self.shrink_to(self.len().saturating_mul(2));
        }
    }
}

impl<T> ShedSpare for VecDeque<T> {
    fn shed_spare(&mut self) {
        if sparse(self.len(), self.capacity()) {
            self.shrink_to(self.len().saturating_mul(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_emptied_after_a_burst_gives_its_capacity_back() {
        let mut map: HashMap<u32, u32> = (0..10_000).map(|i| (i, i)).collect();
        let burst = map.capacity();
        for i in 0..10_000 {
            map.remove(&i);
            map.shed_spare();
        }
        assert!(map.capacity() <= KEPT, "{} of {burst} kept", map.capacity());
    }

    #[test]
    fn a_queue_keeps_room_for_twice_what_it_holds_once_mostly_drained() {
        let mut queue: VecDeque<u32> = (0..1_000).collect();
        while queue.len() > 100 {
            queue.pop_front();
            queue.shed_spare();
        }
        assert_eq!(queue.len(), 100);
        assert!(queue.capacity() <= 400, "{}", queue.capacity());
        assert!(
            queue.iter().copied().eq(900..1_000),
            "order and contents are kept"
        );
    }

    #[test]
    fn a_small_or_well_used_set_is_left_as_it_is() {
        let mut set: HashSet<u32> = (0..50).collect();
        let capacity = set.capacity();
        set.shed_spare();
        assert_eq!(set.capacity(), capacity, "below the kept capacity");
        let mut set: HashSet<u32> = (0..1_000).collect();
        let capacity = set.capacity();
        set.retain(|i| *i < 500);
        set.shed_spare();
        // (A hash set's reported capacity shrinks a little by itself as removals leave
        // tombstones; given back, it would be about a thousand.)
        assert!(
            set.capacity() > capacity * 9 / 10,
            "half used is not sparse: {} of {capacity}",
            set.capacity()
        );
    }
}
