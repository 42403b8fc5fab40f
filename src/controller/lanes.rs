//! The order in which workload reconciles run: live changes before the backlog.
//!
//! At start-up, and after every world change, every workload is due at once. kube-runtime's
//! runner, at its concurrency limit, parks due objects in a set it serves in hash order, so a
//! workload someone just edited could wait behind thousands that changed nothing. So the
//! workload controller runs unbounded in kube-runtime, and each reconcile first takes a
//! [`Permit`] here, where the concurrency limit is kept instead, in two first-come-first-served
//! queues:
//! - **live**: a workload whose watch event (after the initial list) is new, changed its spec
//!   (`metadata.generation`) or started its deletion, see [`live_change`];
//! - **backlog**: everything else (the initial list, relists, world changes, resyncs, child
//!   changes, Sovra's own status writes).
//!
//! A free permit goes to the live queue first. A workload waiting in the backlog when its live
//! change arrives moves to the live queue, and once it holds a permit it reconciles the
//! workload as the cache has it then, not as it was when it was queued.

use super::context::Context;
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
use tokio::sync::oneshot;

type Workload = DeserializeGuard<SovereignWorkload>;
type Key = ObjectRef<Workload>;

/// Which queue a reconcile waits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    Live,
    Backlog,
}

/// The workload controller's concurrency limit with its two queues. Cloning shares them.
#[derive(Clone)]
pub struct Lanes {
    state: Arc<Mutex<State>>,
}

struct State {
    /// Permits nobody holds; while any is free, both queues are empty.
    free: usize,
    live: VecDeque<Waiter>,
    backlog: VecDeque<Waiter>,
    /// Workloads with a live change not yet picked up by a reconcile.
    changed: HashSet<Key>,
    /// Workloads in either queue.
    queued: HashSet<Key>,
}

struct Waiter {
    key: Key,
    permit: oneshot::Sender<Permit>,
}

/// The right to run one reconcile. Dropping it hands it to the next waiter.
pub struct Permit {
    state: Option<Arc<Mutex<State>>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            hand_over(state);
        }
    }
}

/// Gives a released permit to the first waiter still waiting, live ones first; with nobody
/// waiting it is free again.
fn hand_over(state: Arc<Mutex<State>>) {
    loop {
        let next = {
            let mut guard = lock(&state);
            let next = guard.live.pop_front().or_else(|| guard.backlog.pop_front());
            match next {
                Some(waiter) => {
                    guard.changed.remove(&waiter.key);
                    guard.queued.remove(&waiter.key);
                    waiter
                }
                None => {
                    guard.free += 1;
                    return;
                }
            }
        };
        let permit = Permit {
            state: Some(state.clone()),
        };
        match next.permit.send(permit) {
            Ok(()) => return,
            // The waiter gave up (its reconcile was dropped): the next one gets it.
            Err(mut permit) => {
                permit.state = None;
            }
        }
    }
}

impl Lanes {
    /// `concurrency` reconciles at a time; 0 means one.
    pub fn new(concurrency: u16) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                free: usize::from(concurrency.max(1)),
                live: VecDeque::new(),
                backlog: VecDeque::new(),
                changed: HashSet::new(),
                queued: HashSet::new(),
            })),
        }
    }

    /// Waits for a permit for `key`'s reconcile, in the live queue when it has a live change.
    pub async fn acquire(&self, key: &Key) -> Permit {
        let waiting = {
            let mut state = lock(&self.state);
            let lane = if state.changed.remove(key) {
                Lane::Live
            } else {
                Lane::Backlog
            };
            tracing::debug!(workload = %key, ?lane, free = state.free, "waiting for a permit");
            if state.free > 0 {
                state.free -= 1;
                None
            } else {
                state.queued.insert(key.clone());
                let (permit, waiting) = oneshot::channel();
                let waiter = Waiter {
                    key: key.clone(),
                    permit,
                };
                match lane {
                    Lane::Live => state.live.push_back(waiter),
                    Lane::Backlog => state.backlog.push_back(waiter),
                }
                Some(waiting)
            }
        };
        match waiting {
            None => Permit {
                state: Some(self.state.clone()),
            },
            // The sender is only dropped with the queues; a permit of nothing then.
            Some(waiting) => waiting.await.unwrap_or(Permit { state: None }),
        }
    }

    /// Notes a live change of `key`: its next reconcile goes in the live queue, and one
    /// waiting in the backlog moves there now.
    pub fn changed(&self, key: Key) {
        let mut state = lock(&self.state);
        let moved = if let Some(at) = state.backlog.iter().position(|w| w.key == key)
            && let Some(waiter) = state.backlog.remove(at)
        {
            state.live.push_back(waiter);
            true
        } else {
            false
        };
        tracing::debug!(workload = %key, moved, live = state.live.len(), "live change");
        state.changed.insert(key);
    }

    /// The cached workloads not waiting in a queue: after a world change only these need a
    /// reconcile, because one that waits reads the world when it runs. (Triggering those too
    /// would park thousands of requests in kube-runtime's scheduler, which scans them all
    /// every time it looks for the next one.)
    pub fn not_queued(&self, cache: &Store<Workload>) -> Vec<Key> {
        let workloads = cache.state();
        let state = lock(&self.state);
        workloads
            .iter()
            .map(|w| ObjectRef::from_obj(w.as_ref()))
            .filter(|key| !state.queued.contains(key))
            .collect()
    }

    /// Forgets a deleted workload's live change.
    pub fn forget(&self, key: &Key) {
        lock(&self.state).changed.remove(key);
    }

    /// Takes note of a watch event the cache has just applied, with what [`live_change`] said
    /// of it before: a live change, or a workload gone. After the cache applied it, because a
    /// reconcile (kube-runtime runs each on a task of its own) may take a permit the moment its workload moves to the
    /// live queue, and must then read the changed workload.
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
        let names = |queue: &VecDeque<Waiter>| queue.iter().map(|w| w.key.name.clone()).collect();
        (names(&state.live), names(&state.backlog))
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

/// Wraps the workload reconciler: it runs once it holds a permit, on the workload as cached
/// then (gone from the cache: nothing to do, its delete event came after its last change).
pub fn gated<F>(
    lanes: Lanes,
    reconcile: F,
) -> impl Fn(Arc<Workload>, Arc<Context>) -> BoxFuture<'static, Result<Action, Error>>
where
    F: Fn(Arc<Workload>, Arc<Context>) -> BoxFuture<'static, Result<Action, Error>>
        + Send
        + Sync
        + 'static,
{
    let reconcile = Arc::new(reconcile);
    move |workload, ctx| {
        let (lanes, reconcile) = (lanes.clone(), reconcile.clone());
        async move {
            let key = ObjectRef::from_obj(workload.as_ref());
            let _permit = lanes.acquire(&key).await;
            let Some(latest) = ctx.workloads.get(&key) else {
                return Ok(Action::await_change());
            };
            tracing::debug!(workload = %key, generation = ?latest.meta().generation, "permit taken");
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

    #[tokio::test]
    async fn a_free_permit_goes_to_the_live_queue_before_the_backlog() {
        let lanes = Lanes::new(1);
        let held = lanes.acquire(&key("running")).await;
        let backlog = tokio::spawn({
            let lanes = lanes.clone();
            async move { lanes.acquire(&key("old")).await }
        });
        tokio::task::yield_now().await;
        lanes.changed(key("edited"));
        let live = tokio::spawn({
            let lanes = lanes.clone();
            async move { lanes.acquire(&key("edited")).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(
            lanes.waiting(),
            (vec!["edited".to_owned()], vec!["old".to_owned()]),
            "both wait, in their own queues"
        );
        drop(held);
        let live = live.await.expect("the live reconcile got the permit");
        assert_eq!(lanes.waiting(), (vec![], vec!["old".to_owned()]));
        drop(live);
        let _ = backlog.await.expect("then the backlog's");
        assert_eq!(lanes.waiting(), (vec![], vec![]));
    }

    #[tokio::test]
    async fn a_workload_waiting_in_the_backlog_moves_to_the_live_queue_when_it_changes() {
        let lanes = Lanes::new(1);
        let held = lanes.acquire(&key("running")).await;
        let mut waiting = Vec::new();
        for name in ["a", "b", "edited"] {
            let lanes = lanes.clone();
            waiting.push(tokio::spawn(async move { lanes.acquire(&key(name)).await }));
            tokio::task::yield_now().await;
        }
        assert_eq!(lanes.waiting().1, ["a", "b", "edited"]);
        lanes.changed(key("edited"));
        assert_eq!(
            lanes.waiting(),
            (
                vec!["edited".to_owned()],
                vec!["a".to_owned(), "b".to_owned()]
            )
        );
        drop(held);
        tokio::task::yield_now().await;
        assert_eq!(lanes.waiting().1, ["a", "b"], "the edited one went first");
        let edited = waiting.pop().expect("three waiters");
        drop(edited.await.expect("the edited one holds the permit"));
        assert_eq!(lanes.waiting().1, ["b"], "then the backlog, in order");
    }

    #[tokio::test]
    async fn after_a_world_change_only_workloads_not_already_queued_are_reconciled() {
        let (cache, mut writer) = kube::runtime::reflector::store::<Workload>();
        for name in ["running", "waiting", "idle"] {
            let mut w = super::super::tests::objects::workload(name, "internal");
            w.metadata.namespace = Some("ns".into());
            writer.apply_watcher_event(&watcher::Event::Apply(DeserializeGuard(Ok(w))));
        }
        let lanes = Lanes::new(1);
        let _running = lanes.acquire(&key("running")).await;
        let waiting = tokio::spawn({
            let lanes = lanes.clone();
            async move { lanes.acquire(&key("waiting")).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(lanes.waiting().1, ["waiting"], "the path ran: one waits");
        let mut due: Vec<String> = lanes
            .not_queued(&cache)
            .into_iter()
            .map(|k| k.name)
            .collect();
        due.sort();
        assert_eq!(
            due,
            ["idle", "running"],
            "the running one may have read the old world; the waiting one reads the new"
        );
        waiting.abort();
    }

    #[tokio::test]
    async fn a_permit_given_up_while_waiting_passes_to_the_next_waiter() {
        let lanes = Lanes::new(1);
        let held = lanes.acquire(&key("running")).await;
        let abandoning = key("abandoned");
        let mut abandoned = Box::pin(lanes.acquire(&abandoning));
        assert!(
            (&mut abandoned).now_or_never().is_none(),
            "it waits behind the running one"
        );
        let next = tokio::spawn({
            let lanes = lanes.clone();
            async move { lanes.acquire(&key("next")).await }
        });
        tokio::task::yield_now().await;
        drop(abandoned);
        drop(held);
        let permit = next.await.expect("the next waiter got the permit");
        drop(permit);
        let again = lanes.acquire(&key("again")).now_or_never();
        assert!(again.is_some(), "and the permit came back free");
    }

    #[test]
    fn only_new_workloads_spec_changes_and_deletions_are_live_changes() {
        let (cache, mut writer) = kube::runtime::reflector::store::<Workload>();
        let lanes = Lanes::new(1);
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
