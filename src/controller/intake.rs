//! What asks for workload reconciles, every source through the [`Lanes`]: the workload watch,
//! a child's change on the hub or a member, a world change, and the resync.
//!
//! None of them triggers kube-runtime directly. At start-up, and after a world change, every
//! workload is asked for at once; kube-runtime would hold each in its scheduler and runner
//! (tables that keep the capacity of that burst for good), where the lanes hold a queue entry
//! they give back. The resync is a wheel for the same reason: one timer that asks for a
//! sixtieth of the workloads every [`RESYNC`]`/60`, instead of a requeue timer per workload.

use super::lanes::{Lanes, key_of};
use crate::crd::SovereignWorkload;
use futures::{Stream, StreamExt};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

type Workload = DeserializeGuard<SovereignWorkload>;
type Key = ObjectRef<Workload>;

/// How often each workload is reconciled although nothing it depends on was seen to change:
/// a safety net for a missed event.
pub const RESYNC: Duration = Duration::from_secs(300);

/// The resync wheel's slots: each tick asks for the workloads of one.
const RESYNC_SLOTS: u64 = 60;

/// The sources of workload reconciles.
pub struct Sources<W, E, C> {
    /// The workload watch's applied objects, after the cache and the lanes took note of them.
    pub watch: W,
    /// Whether a watched workload is just what Sovra's own write left (`OwnWrites`): that
    /// asks for nothing.
    pub echo: E,
    /// Workloads whose child changed.
    pub wakes: UnboundedReceiver<Key>,
    /// World changes: every workload is asked for.
    pub world: C,
}

/// Feeds every source into `lanes` until `shutdown`.
pub async fn run<W, E, C>(
    lanes: Lanes,
    cache: Store<Workload>,
    sources: Sources<W, E, C>,
    shutdown: impl Future<Output = ()>,
) where
    W: Stream<Item = Result<Workload, watcher::Error>>,
    E: Fn(&Workload) -> bool,
    C: Stream<Item = ()>,
{
    let Sources {
        watch,
        echo,
        mut wakes,
        world,
    } = sources;
    let watched = watch.for_each(|object| {
        // A watch error is retried by the watcher's backoff; the cache keeps what it had.
        if let Ok(workload) = &object
            && !echo(workload)
            && let Some(key) = key_of(workload)
        {
            lanes.request(key);
        }
        futures::future::ready(())
    });
    let woken = async {
        while let Some(key) = wakes.recv().await {
            lanes.request(key);
        }
    };
    let changed = world.for_each(|()| {
        lanes.request_all(&cache);
        futures::future::ready(())
    });
    let resynced = resync(&lanes, &cache);
    let fed = futures::future::join4(watched, woken, changed, resynced);
    futures::pin_mut!(fed);
    futures::pin_mut!(shutdown);
    futures::future::select(fed, shutdown).await;
}

/// Asks for each workload once per [`RESYNC`], a slot of them at a time. The first turn starts
/// one tick after start-up, which asked for every workload already.
async fn resync(lanes: &Lanes, cache: &Store<Workload>) {
    let tick = RESYNC / u32::try_from(RESYNC_SLOTS).unwrap_or(u32::MAX);
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut slot = 0;
    loop {
        timer.tick().await;
        for key in due(cache, slot) {
            lanes.request(key);
        }
        slot = (slot + 1) % RESYNC_SLOTS;
    }
}

/// The cached workloads in resync slot `slot`.
fn due(cache: &Store<Workload>, slot: u64) -> Vec<Key> {
    cache
        .state()
        .iter()
        .filter_map(|workload| key_of(workload))
        .filter(|key| slot_of(key) == slot)
        .collect()
}

/// A workload's resync slot, from its namespace and name: the same in every term.
fn slot_of(key: &Key) -> u64 {
    let mut hasher = DefaultHasher::new();
    (&key.namespace, &key.name).hash(&mut hasher);
    hasher.finish() % RESYNC_SLOTS
}

#[cfg(test)]
mod tests {
    use super::super::tests::objects::workload;
    use super::*;

    fn cache_of(names: &[String]) -> Store<Workload> {
        let (cache, mut writer) = kube::runtime::reflector::store::<Workload>();
        for name in names {
            let mut w = workload(name, "internal");
            w.metadata.namespace = Some("ns".into());
            writer.apply_watcher_event(&watcher::Event::Apply(DeserializeGuard(Ok(w))));
        }
        cache
    }

    #[test]
    fn every_workload_is_in_exactly_one_resync_slot_and_the_slots_share_them_out() {
        let names: Vec<String> = (0..6_000).map(|i| format!("w{i}")).collect();
        let cache = cache_of(&names);
        let mut seen: Vec<String> = Vec::new();
        let mut largest = 0;
        for slot in 0..RESYNC_SLOTS {
            let due = due(&cache, slot);
            largest = largest.max(due.len());
            seen.extend(due.into_iter().map(|k| k.name));
        }
        seen.sort();
        let mut expected = names.clone();
        expected.sort();
        assert_eq!(seen, expected, "each workload once per turn");
        assert!(
            largest < 2 * 6_000 / 60,
            "no slot holds twice its share: {largest}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_resync_asks_for_every_workload_once_per_period_and_never_before_a_tick() {
        let names: Vec<String> = (0..120).map(|i| format!("w{i}")).collect();
        let cache = cache_of(&names);
        // Permits for all: every request gets a ticket, and a workload holding one is not
        // asked for again, so the tickets are the distinct workloads asked for.
        let (lanes, mut tickets) = Lanes::new(u16::MAX);
        let wheel = tokio::spawn({
            let (lanes, cache) = (lanes.clone(), cache.clone());
            async move { resync(&lanes, &cache).await }
        });
        tokio::time::sleep(RESYNC / 120).await;
        assert!(tickets.try_recv().is_err(), "nothing before the first tick");
        tokio::time::sleep(RESYNC).await;
        let mut asked = Vec::new();
        while let Ok(key) = tickets.try_recv() {
            asked.push(key.name);
        }
        asked.sort();
        let mut expected = names.clone();
        expected.sort();
        assert_eq!(asked, expected, "every workload within one period");
        wheel.abort();
    }

    #[tokio::test]
    async fn the_watch_wakes_and_world_changes_all_ask_the_lanes() {
        let cache = cache_of(&["a".to_owned(), "b".to_owned(), "c".to_owned()]);
        let (lanes, mut tickets) = Lanes::new(8);
        let (wake, wakes) = tokio::sync::mpsc::unbounded_channel();
        let watched = cache
            .get(&ObjectRef::new("a").within("ns"))
            .expect("cached");
        let watch = futures::stream::iter([Ok((*watched).clone())]);
        wake.send(ObjectRef::new("b").within("ns")).expect("open");
        drop(wake);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sources = Sources {
            watch,
            echo: |_: &Workload| false,
            wakes,
            world: futures::stream::iter([()]),
        };
        let fed = tokio::spawn(run(lanes, cache, sources, async {
            let _ = stopped.await;
        }));
        let mut asked = Vec::new();
        for _ in 0..3 {
            let key = tokio::time::timeout(Duration::from_secs(5), tickets.recv())
                .await
                .expect("asked for in time")
                .expect("open");
            asked.push(key.name);
        }
        asked.sort();
        assert_eq!(
            asked,
            ["a", "b", "c"],
            "the watch's, the wake's and (c alone) the world change's"
        );
        assert!(
            tickets.try_recv().is_err(),
            "the world change asked for a and b too, which held tickets: not twice"
        );
        let _ = stop.send(());
        fed.await.expect("stops on shutdown");
    }

    #[tokio::test]
    async fn the_watch_event_of_sovras_own_write_asks_for_nothing_and_others_still_do() {
        let cache = cache_of(&["a".to_owned(), "b".to_owned()]);
        let (lanes, mut tickets) = Lanes::new(8);
        let event = |name: &str| {
            let cached = cache
                .get(&ObjectRef::new(name).within("ns"))
                .expect("cached");
            Ok((*cached).clone())
        };
        let watch = futures::stream::iter([event("a"), event("b")]);
        let (_wake, wakes) = tokio::sync::mpsc::unbounded_channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sources = Sources {
            watch,
            echo: |workload: &Workload| kube::ResourceExt::name_any(workload) == "a",
            wakes,
            world: futures::stream::pending(),
        };
        let fed = tokio::spawn(run(lanes, cache, sources, async {
            let _ = stopped.await;
        }));
        let key = tokio::time::timeout(Duration::from_secs(5), tickets.recv())
            .await
            .expect("asked for in time")
            .expect("open");
        assert_eq!(key.name, "b", "the event that is not an echo asks");
        let _ = stop.send(());
        fed.await.expect("stops on shutdown");
        assert!(
            tickets.try_recv().is_err(),
            "a's event, seen before b's, asked for nothing"
        );
    }
}
