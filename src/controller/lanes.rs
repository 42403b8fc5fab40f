//! The order in which workload reconciles run: live changes before the backlog.
//!
//! At start-up, and after every world change, every workload is due at once. kube-runtime's
//! runner, at its concurrency limit, parks due objects in a set it serves in hash order, so a
//! workload someone just edited could wait behind thousands that changed nothing; and below
//! its limit it polls every running reconcile whenever it polls one. So the workload
//! controller runs unbounded (and without debounce) in kube-runtime, and the limit is kept
//! here, as permits handed out from two first-come-first-served queues:
//! - **live**: a workload whose watch event (after the initial list) is new, changed its spec
//!   (`metadata.generation`) or started its deletion, see [`live_change`];
//! - **backlog**: everything else (the initial list, relists, world changes, resyncs, retries,
//!   child changes, Sovra's own status writes).
//!
//! A reconcile kube-runtime starts runs at once when it gets a permit ([`Lanes::admit`]);
//! otherwise its workload is queued, once, and the reconcile returns without doing anything.
//! A permit that comes free goes to the first queued workload, live ones first, as a ticket:
//! the workload is triggered again ([`Lanes::admitted`]) and that reconcile runs on the ticket,
//! on the workload as the cache has it then. A workload queued in the backlog when its live
//! change arrives moves to the live queue. Waiting costs a queue entry, not a running future.

use crate::Error;
use crate::crd::SovereignWorkload;
use crate::sync::lock;
use futures::FutureExt;
use futures::future::BoxFuture;
use kube::Resource;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

type Workload = DeserializeGuard<SovereignWorkload>;
type Key = ObjectRef<Workload>;
/// The workloads given a ticket, for the controller to reconcile again.
pub type Tickets = mpsc::UnboundedReceiver<Key>;

/// The workload controller's concurrency limit with its two queues. Cloning shares them.
#[derive(Clone)]
pub struct Lanes {
    state: Arc<Mutex<State>>,
    /// Workloads given a ticket, to be reconciled again.
    admitted: mpsc::UnboundedSender<Key>,
}

struct State {
    /// Permits nobody holds; while any is free, both queues are empty.
    free: usize,
    live: VecDeque<Key>,
    backlog: VecDeque<Key>,
    /// Workloads in either queue.
    queued: HashSet<Key>,
    /// Workloads holding a permit for their next reconcile.
    tickets: HashSet<Key>,
    /// Workloads with a live change not yet picked up by a reconcile.
    changed: HashSet<Key>,
}

/// The right to run one reconcile. Dropping it passes it on.
pub struct Permit {
    lanes: Lanes,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.lanes.pass_on();
    }
}

/// What [`Lanes::admit`] decided for a reconcile.
pub enum Admission {
    Run(Permit),
    /// Queued (or already queued): it runs when a ticket comes.
    Queued,
}

impl Lanes {
    /// `concurrency` reconciles at a time (0 means one), and the stream of workloads to
    /// reconcile again because a permit was reserved for them.
    pub fn new(concurrency: u16) -> (Self, Tickets) {
        let (admitted, tickets) = mpsc::unbounded_channel();
        let lanes = Self {
            state: Arc::new(Mutex::new(State {
                free: usize::from(concurrency.max(1)),
                live: VecDeque::new(),
                backlog: VecDeque::new(),
                queued: HashSet::new(),
                tickets: HashSet::new(),
                changed: HashSet::new(),
            })),
            admitted,
        };
        (lanes, tickets)
    }

    /// A permit for `key`'s reconcile: its ticket, or a free one when nobody is queued;
    /// otherwise `key` is queued, in the live queue when it has a live change.
    pub fn admit(&self, key: &Key) -> Admission {
        let mut state = lock(&self.state);
        let live = state.changed.remove(key);
        let run = state.tickets.remove(key)
            || (state.free > 0 && {
                state.free -= 1;
                true
            });
        if run {
            tracing::debug!(workload = %key, live, "reconciling");
            return Admission::Run(Permit {
                lanes: self.clone(),
            });
        }
        if state.queued.insert(key.clone()) {
            match live {
                true => state.live.push_back(key.clone()),
                false => state.backlog.push_back(key.clone()),
            }
        } else if live {
            promote(&mut state, key);
        }
        tracing::debug!(workload = %key, live, "queued");
        Admission::Queued
    }

    /// Gives a released permit to the first queued workload, live ones first, as a ticket;
    /// with nobody queued it is free again.
    fn pass_on(&self) {
        let mut state = lock(&self.state);
        let next = state.live.pop_front().or_else(|| state.backlog.pop_front());
        match next {
            Some(key) => {
                state.queued.remove(&key);
                state.tickets.insert(key.clone());
                drop(state);
                // The receiver is the controller's trigger; it only goes with the term.
                let _ = self.admitted.send(key);
            }
            None => state.free += 1,
        }
    }

    /// Notes a live change of `key`: its next reconcile is live, and when it is queued in the
    /// backlog it moves to the live queue now.
    pub fn changed(&self, key: Key) {
        let mut state = lock(&self.state);
        let moved = state.queued.contains(&key) && promote(&mut state, &key);
        tracing::debug!(workload = %key, moved, "live change");
        state.changed.insert(key);
    }

    /// Forgets a deleted workload; a ticket it held goes to the next one.
    pub fn forget(&self, key: &Key) {
        let mut state = lock(&self.state);
        state.changed.remove(key);
        if state.queued.remove(key) {
            state.live.retain(|k| k != key);
            state.backlog.retain(|k| k != key);
        }
        if state.tickets.remove(key) {
            drop(state);
            self.pass_on();
        }
    }

    /// The cached workloads neither queued nor holding a ticket: after a world change only
    /// these need a reconcile, as one that waits reads the world when it runs.
    pub fn not_queued(&self, cache: &Store<Workload>) -> Vec<Key> {
        let workloads = cache.state();
        let state = lock(&self.state);
        workloads
            .iter()
            .map(|w| ObjectRef::from_obj(w.as_ref()))
            .filter(|key| !state.queued.contains(key) && !state.tickets.contains(key))
            .collect()
    }

    /// Takes note of a watch event the cache has just applied, with what [`live_change`] said
    /// of it before: a live change, or a workload gone. After the cache applied it, because a
    /// reconcile (kube-runtime runs each on a task of its own) may start the moment its
    /// workload moves to the live queue, and must then read the changed workload.
    pub fn note(&self, event: &watcher::Event<Workload>, live: Option<Key>) {
        if let Some(key) = live {
            self.changed(key);
        }
        if let watcher::Event::Delete(workload) = event {
            self.forget(&ObjectRef::from_obj(workload));
        }
    }

    #[cfg(test)]
    fn waiting(&self) -> (Vec<String>, Vec<String>) {
        let state = lock(&self.state);
        let names = |queue: &VecDeque<Key>| queue.iter().map(|k| k.name.clone()).collect();
        (names(&state.live), names(&state.backlog))
    }
}

/// Moves a queued `key` from the backlog to the end of the live queue; false when it was not
/// in the backlog.
fn promote(state: &mut State, key: &Key) -> bool {
    match state.backlog.iter().position(|k| k == key) {
        Some(at) => {
            state.backlog.remove(at);
            state.live.push_back(key.clone());
            true
        }
        None => false,
    }
}

/// Which workload a watch event shows changed live, judged before the cache applies it
/// (`cached` is the cache): one that is new, whose generation moved or whose deletion started,
/// and one a relist shows changed that way (the watch was down when it changed). Status writes,
/// finalizer and label changes, and the first list are not.
pub fn live_change(event: &watcher::Event<Workload>, cached: &Store<Workload>) -> Option<Key> {
    let changed = |workload: &Workload| {
        cached.get(&ObjectRef::from_obj(workload)).map(|before| {
            before.meta().generation != workload.meta().generation
                || before.meta().deletion_timestamp.is_some()
                    != workload.meta().deletion_timestamp.is_some()
        })
    };
    match event {
        watcher::Event::Apply(workload) if changed(workload).unwrap_or(true) => {
            Some(ObjectRef::from_obj(workload))
        }
        // The cache keeps what it held before a relist until the relist is done.
        watcher::Event::InitApply(workload) if changed(workload).unwrap_or(false) => {
            Some(ObjectRef::from_obj(workload))
        }
        _ => None,
    }
}

/// Wraps the workload reconciler: it runs when [`Lanes::admit`] gives it a permit, on the
/// workload as `cache` holds it then (gone from the cache: nothing to do, its delete event came
/// after its last change); otherwise it returns at once and runs again on its ticket.
pub fn gated<C, F>(
    lanes: Lanes,
    cache: Store<Workload>,
    reconcile: F,
) -> impl Fn(Arc<Workload>, Arc<C>) -> BoxFuture<'static, Result<Action, Error>>
where
    C: Send + Sync + 'static,
    F: Fn(Arc<Workload>, Arc<C>) -> BoxFuture<'static, Result<Action, Error>>
        + Send
        + Sync
        + 'static,
{
    let reconcile = Arc::new(reconcile);
    move |workload, ctx| {
        let (lanes, cache, reconcile) = (lanes.clone(), cache.clone(), reconcile.clone());
        async move {
            let key = ObjectRef::from_obj(workload.as_ref());
            let Admission::Run(_permit) = lanes.admit(&key) else {
                return Ok(Action::await_change());
            };
            let Some(latest) = cache.get(&key) else {
                return Ok(Action::await_change());
            };
            reconcile(latest, ctx).await
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        ObjectRef::new(name).within("ns")
    }

    fn run(lanes: &Lanes, name: &str) -> Option<Permit> {
        match lanes.admit(&key(name)) {
            Admission::Run(permit) => Some(permit),
            Admission::Queued => None,
        }
    }

    #[test]
    fn a_free_permit_goes_to_the_live_queue_before_the_backlog_as_a_ticket() {
        let (lanes, mut tickets) = Lanes::new(1);
        let running = run(&lanes, "running").expect("a free permit");
        assert!(run(&lanes, "old").is_none(), "no permit left: queued");
        lanes.changed(key("edited"));
        assert!(run(&lanes, "edited").is_none());
        assert_eq!(
            lanes.waiting(),
            (vec!["edited".to_owned()], vec!["old".to_owned()]),
            "both wait, in their own queues"
        );
        drop(running);
        assert_eq!(
            tickets.try_recv().ok(),
            Some(key("edited")),
            "triggered again"
        );
        assert!(run(&lanes, "old").is_none(), "the ticket is not old's");
        let edited = run(&lanes, "edited").expect("its ticket");
        drop(edited);
        assert_eq!(tickets.try_recv().ok(), Some(key("old")));
        let old = run(&lanes, "old").expect("its ticket");
        drop(old);
        assert!(tickets.try_recv().is_err());
        assert!(
            run(&lanes, "next").is_some(),
            "and the permit came back free"
        );
    }

    #[test]
    fn a_workload_queued_in_the_backlog_moves_to_the_live_queue_when_it_changes() {
        let (lanes, mut tickets) = Lanes::new(1);
        let running = run(&lanes, "running").expect("a free permit");
        for name in ["a", "b", "edited"] {
            assert!(run(&lanes, name).is_none());
        }
        assert!(
            run(&lanes, "a").is_none(),
            "triggered again: still queued once"
        );
        assert_eq!(lanes.waiting().1, ["a", "b", "edited"]);
        lanes.changed(key("edited"));
        assert_eq!(
            lanes.waiting(),
            (
                vec!["edited".to_owned()],
                vec!["a".to_owned(), "b".to_owned()]
            )
        );
        drop(running);
        assert_eq!(tickets.try_recv().ok(), Some(key("edited")));
    }

    #[test]
    fn a_deleted_workloads_ticket_passes_to_the_next() {
        let (lanes, mut tickets) = Lanes::new(1);
        let running = run(&lanes, "running").expect("a free permit");
        assert!(run(&lanes, "deleted").is_none());
        assert!(run(&lanes, "next").is_none());
        drop(running);
        assert_eq!(tickets.try_recv().ok(), Some(key("deleted")));
        lanes.forget(&key("deleted"));
        assert_eq!(
            tickets.try_recv().ok(),
            Some(key("next")),
            "its ticket went on"
        );
        assert!(run(&lanes, "next").is_some());
    }

    #[test]
    fn after_a_world_change_only_workloads_neither_queued_nor_ticketed_are_reconciled() {
        let (cache, mut writer) = kube::runtime::reflector::store::<Workload>();
        for name in ["running", "waiting", "ticketed", "idle"] {
            let mut w = super::super::tests::objects::workload(name, "internal");
            w.metadata.namespace = Some("ns".into());
            writer.apply_watcher_event(&watcher::Event::Apply(DeserializeGuard(Ok(w))));
        }
        let (lanes, _tickets) = Lanes::new(2);
        let _running = run(&lanes, "running").expect("a free permit");
        let first = run(&lanes, "first").expect("the other permit");
        assert!(run(&lanes, "ticketed").is_none());
        assert!(run(&lanes, "waiting").is_none());
        drop(first);
        assert_eq!(
            lanes.waiting().1,
            ["waiting"],
            "the path ran: one waits, one has a ticket"
        );
        let mut due: Vec<String> = lanes
            .not_queued(&cache)
            .into_iter()
            .map(|k| k.name)
            .collect();
        due.sort();
        assert_eq!(
            due,
            ["idle", "running"],
            "the running one may have read the old world; the others read the new"
        );
    }

    #[test]
    fn only_new_workloads_spec_changes_and_deletions_are_live_changes() {
        let (cache, mut writer) = kube::runtime::reflector::store::<Workload>();
        let (lanes, _tickets) = Lanes::new(1);
        let workload = |generation: i64, status: bool, deleting: bool| {
            let mut w = super::super::tests::objects::workload("w", "internal");
            w.metadata.namespace = Some("ns".into());
            w.metadata.generation = Some(generation);
            if status {
                w.status = Some(Default::default());
            }
            if deleting {
                w = super::super::tests::objects::deleting(w);
            }
            DeserializeGuard(Ok(w))
        };
        let mut changed = |event: watcher::Event<Workload>| {
            let live = live_change(&event, &cache);
            writer.apply_watcher_event(&event);
            lanes.note(&event, live);
            lock(&lanes.state).changed.remove(&key("w"))
        };
        assert!(!changed(watcher::Event::Init), "a list is the backlog");
        assert!(!changed(watcher::Event::InitApply(workload(
            1, false, false
        ))));
        assert!(!changed(watcher::Event::InitDone));
        assert!(
            !changed(watcher::Event::Apply(workload(1, true, false))),
            "a status write"
        );
        assert!(
            changed(watcher::Event::Apply(workload(2, true, false))),
            "a spec edit"
        );
        assert!(
            changed(watcher::Event::Apply(workload(2, true, true))),
            "a deletion"
        );
        assert!(!changed(watcher::Event::Delete(workload(2, true, true))));
        assert!(
            changed(watcher::Event::Apply(workload(1, false, false))),
            "a workload created live"
        );
        assert!(!changed(watcher::Event::Init), "a relist");
        assert!(
            !changed(watcher::Event::InitApply(workload(1, true, false))),
            "unchanged since the watch went down"
        );
        assert!(
            changed(watcher::Event::InitApply(workload(3, true, false))),
            "edited while the watch was down"
        );
    }
}
