//! The order in which workload reconciles run: live changes before the backlog.
//!
//! At start-up, and after every world change, every workload is due at once. kube-runtime's
//! runner, at its concurrency limit, parks due objects in a set it serves in hash order, so a
//! workload someone just edited could wait behind thousands that changed nothing; and below
//! its limit it polls every running reconcile whenever it polls one. So the workload
//! controller runs unbounded (and without debounce) in kube-runtime, and the limit is kept
//! here, as permits handed out from two first-come-first-served queues:
//! - **live**: a workload whose watch event (after the initial list) is new, changed its spec
//!   (`metadata.generation`) or started its deletion, and in the initial list one whose spec
//!   changed after Sovra last acted on it, see [`live_change`];
//! - **backlog**: everything else (the initial list, relists, world changes, resyncs, retries,
//!   child changes, Sovra's own status writes).
//!
//! Whatever asks for a reconcile (a watch event, a child's change, a world change, the resync)
//! asks the lanes ([`Lanes::request`], fed by `intake`), not kube-runtime: with a free permit
//! the workload gets a ticket and is triggered in kube-runtime; otherwise it is queued, once.
//! So kube-runtime's scheduler and runner only ever hold the workloads with a ticket, at most
//! the concurrency limit, instead of the whole fleet after start-up or a world change. A
//! permit that comes free goes to the first queued workload, live ones first, as a ticket;
//! that reconcile runs on the workload as the cache has it then. A workload queued in the
//! backlog when its live change arrives moves to the live queue. Waiting costs a queue entry,
//! not a running future nor a timer.
//!
//! A reconcile kube-runtime starts on its own (an error's retry) runs at once when it gets a
//! permit ([`Lanes::admit`]); otherwise its workload is queued like any other request.

use super::spare_capacity::ShedSpare;
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
use std::sync::{Arc, Mutex, MutexGuard};
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
        let run = state.tickets.remove(key) || state.take_free();
        if run {
            tracing::debug!(workload = %key, live, "reconciling");
            return Admission::Run(Permit {
                lanes: self.clone(),
            });
        }
        if !state.enqueue(key, live) && live {
            promote(&mut state, key);
        }
        tracing::debug!(workload = %key, live, "queued");
        Admission::Queued
    }

    /// Asks for a reconcile of `key`: with a free permit it is triggered now, on a ticket;
    /// otherwise it is queued (in the live queue when it has a live change). A workload queued
    /// or holding a ticket already is not asked for twice: its reconcile reads the cache when
    /// it runs. A running one is (its reconcile may have read what changed before the change).
    pub fn request(&self, key: Key) {
        let mut state = lock(&self.state);
        if state.queued.contains(&key) || state.tickets.contains(&key) {
            return;
        }
        if state.take_free() {
            self.issue(state, key);
            return;
        }
        let live = state.changed.contains(&key);
        state.enqueue(&key, live);
    }

    /// Gives `key` the ticket for a permit it was handed, and triggers its reconcile.
    fn issue(&self, mut state: MutexGuard<'_, State>, key: Key) {
        state.tickets.insert(key.clone());
        drop(state);
        // The receiver is the controller's trigger; it only goes with the term.
        let _ = self.admitted.send(key);
    }

    /// Asks for a reconcile of every cached workload (the world changed).
    pub fn request_all(&self, cache: &Store<Workload>) {
        for workload in cache.state() {
            if let Some(key) = key_of(&workload) {
                self.request(key);
            }
        }
    }

    /// Gives a released permit to the first queued workload, live ones first, as a ticket;
    /// with nobody queued it is free again.
    fn pass_on(&self) {
        let mut state = lock(&self.state);
        state.shed_spare();
        let next = state.live.pop_front().or_else(|| state.backlog.pop_front());
        match next {
            Some(key) => {
                state.queued.remove(&key);
                self.issue(state, key);
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

    /// Takes note of a watch event the cache has just applied, with what [`live_change`] said
    /// of it before: a live change, or a workload gone. After the cache applied it, because a
    /// reconcile (kube-runtime runs each on a task of its own) may start the moment its
    /// workload moves to the live queue, and must then read the changed workload.
    pub fn note(&self, event: &watcher::Event<Workload>, live: Option<Key>) {
        if let Some(key) = live {
            self.changed(key);
        }
        if let watcher::Event::Delete(workload) = event
            && let Some(key) = key_of(workload)
        {
            self.forget(&key);
        }
    }

    #[cfg(test)]
    fn waiting(&self) -> (Vec<String>, Vec<String>) {
        let state = lock(&self.state);
        let names = |queue: &VecDeque<Key>| queue.iter().map(|k| k.name.clone()).collect();
        (names(&state.live), names(&state.backlog))
    }
}

impl State {
    /// Takes a free permit, if there is one.
    fn take_free(&mut self) -> bool {
        let free = self.free > 0;
        if free {
            self.free -= 1;
        }
        free
    }

    /// Queues `key` once, in the live queue when `live`; false when it was queued already.
    fn enqueue(&mut self, key: &Key, live: bool) -> bool {
        if !self.queued.insert(key.clone()) {
            return false;
        }
        match live {
            true => self.live.push_back(key.clone()),
            false => self.backlog.push_back(key.clone()),
        }
        true
    }

    /// After the start-up's burst, and each world change's, the queues drain: what they
    /// reserved for the whole fleet is given back.
    fn shed_spare(&mut self) {
        self.live.shed_spare();
        self.backlog.shed_spare();
        self.queued.shed_spare();
        self.tickets.shed_spare();
        self.changed.shed_spare();
    }
}

/// The key a workload is queued under: its name and namespace (not its UID and resource
/// version, which an `ObjectRef` made from the object would copy into every queue entry).
pub fn key_of(workload: &Workload) -> Option<Key> {
    let meta = workload.meta();
    let key = ObjectRef::new(meta.name.as_deref()?);
    Some(match meta.namespace.as_deref() {
        Some(namespace) => key.within(namespace),
        None => key,
    })
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
    let changed = |key: &Key, workload: &Workload| {
        cached.get(key).map(|before| {
            before.meta().generation != workload.meta().generation
                || before.meta().deletion_timestamp.is_some()
                    != workload.meta().deletion_timestamp.is_some()
        })
    };
    match event {
        watcher::Event::Apply(workload) => {
            let key = key_of(workload)?;
            changed(&key, workload).unwrap_or(true).then_some(key)
        }
        // The cache keeps what it held before a relist until the relist is done. The first
        // list has nothing cached: there a workload is live when its spec changed after Sovra
        // last acted on it (or after its creation, when it has no status), an edit made while
        // no operator watched, which must not wait behind the backlog either.
        watcher::Event::InitApply(workload) => {
            let key = key_of(workload)?;
            changed(&key, workload)
                .unwrap_or_else(|| unobserved_edit(workload))
                .then_some(key)
        }
        _ => None,
    }
}

/// True for a workload whose generation moved past the one its status was written for (past
/// its first, without a status).
fn unobserved_edit(workload: &Workload) -> bool {
    let Ok(workload) = &workload.0 else {
        return false;
    };
    let observed = workload.status.as_ref().and_then(|s| s.observed_generation);
    workload.metadata.generation > Some(observed.unwrap_or(1))
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
            let Some(key) = key_of(&workload) else {
                return Ok(Action::await_change());
            };
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
    fn after_a_world_change_workloads_queued_or_ticketed_already_are_not_asked_for_twice() {
        let (cache, mut writer) = kube::runtime::reflector::store::<Workload>();
        for name in ["running", "waiting", "ticketed", "idle"] {
            let mut w = super::super::tests::objects::workload(name, "internal");
            w.metadata.namespace = Some("ns".into());
            writer.apply_watcher_event(&watcher::Event::Apply(DeserializeGuard(Ok(w))));
        }
        let (lanes, mut tickets) = Lanes::new(2);
        let _running = run(&lanes, "running").expect("a free permit");
        let first = run(&lanes, "first").expect("the other permit");
        assert!(run(&lanes, "ticketed").is_none());
        assert!(run(&lanes, "waiting").is_none());
        drop(first);
        assert_eq!(tickets.try_recv().ok(), Some(key("ticketed")));
        assert_eq!(
            lanes.waiting().1,
            ["waiting"],
            "the path ran: one waits, one has a ticket"
        );
        lanes.request_all(&cache);
        let (live, mut backlog) = lanes.waiting();
        backlog.sort();
        assert!(live.is_empty());
        assert_eq!(
            backlog,
            ["idle", "running", "waiting"],
            "the running one may have read the old world, so it is asked for again; the \
             waiting one is queued once; the ticketed one runs on its ticket"
        );
        assert!(tickets.try_recv().is_err(), "no second ticket");
    }

    #[test]
    fn a_request_with_a_free_permit_is_triggered_on_a_ticket_and_otherwise_waits_its_turn() {
        let (lanes, mut tickets) = Lanes::new(1);
        lanes.request(key("first"));
        assert_eq!(tickets.try_recv().ok(), Some(key("first")), "a free permit");
        lanes.request(key("first"));
        assert!(tickets.try_recv().is_err(), "holding a ticket: not twice");
        lanes.request(key("old"));
        lanes.changed(key("edited"));
        lanes.request(key("edited"));
        assert_eq!(
            lanes.waiting(),
            (vec!["edited".to_owned()], vec!["old".to_owned()]),
            "no permit left: both wait, the live change in the live queue"
        );
        let first = run(&lanes, "first").expect("its ticket");
        drop(first);
        assert_eq!(tickets.try_recv().ok(), Some(key("edited")), "live first");
        drop(run(&lanes, "edited").expect("its ticket"));
        assert_eq!(tickets.try_recv().ok(), Some(key("old")));
        drop(run(&lanes, "old").expect("its ticket"));
        lanes.request(key("later"));
        assert_eq!(
            tickets.try_recv().ok(),
            Some(key("later")),
            "and the permit came back free"
        );
    }

    #[test]
    fn queues_drained_after_a_burst_give_their_capacity_back() {
        let (lanes, mut tickets) = Lanes::new(1);
        for i in 0..5_000 {
            lanes.request(key(&format!("w{i}")));
        }
        let burst = lock(&lanes.state).backlog.capacity();
        while let Ok(next) = tickets.try_recv() {
            match lanes.admit(&next) {
                Admission::Run(permit) => drop(permit),
                Admission::Queued => panic!("{next} came with a ticket"),
            }
        }
        let state = lock(&lanes.state);
        assert!(state.backlog.is_empty(), "the path ran: all were served");
        assert!(
            state.backlog.capacity() < burst / 10 && state.queued.capacity() < burst / 10,
            "{} and {} of {burst} kept",
            state.backlog.capacity(),
            state.queued.capacity()
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
        assert!(
            changed(watcher::Event::InitApply(workload(2, false, false))),
            "edited after its creation while no operator watched"
        );
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
