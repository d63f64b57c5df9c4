//! Ordered lanes: a fixed set of tasks, each with its own queue, all of them
//! together bounded by one shared room. Items with the same key always go
//! to the same lane, so they are handled one after another in arrival
//! order, while different keys run in parallel.
//! The inbox (events per conversation) and the outbox (replies per chat)
//! both run on lanes.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, watch};
use tokio::task::JoinHandle;

/// Which lane a key belongs to. Stable within a process.
pub fn lane_of(key: &impl Hash, lanes: usize) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % lanes.max(1) as u64) as usize
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PushError {
    #[error("the lanes are full")]
    Full,
    #[error("the lanes are closed (shutting down)")]
    Closed,
}

/// An item with its place in the lanes' shared room, given back when the
/// lane takes the item.
type Queued<T> = (T, OwnedSemaphorePermit);

/// Producer side; cheap to clone.
pub struct Lanes<T> {
    senders: Arc<Vec<mpsc::UnboundedSender<Queued<T>>>>,
    /// Room for `capacity` items across all lanes. Shared rather than per
    /// lane: a producer waiting for room gets in as soon as any lane takes
    /// an item, instead of queueing behind its own lane's (with 64 lanes,
    /// each drains at 1/64 of the rate, so per-lane room made waits 64
    /// times longer), and one busy lane can use room the others do not.
    room: Arc<Semaphore>,
    depth: Gauge,
    /// Producers waiting in [`Lanes::push_within`] right now.
    waiting: Arc<AtomicUsize>,
}

impl<T> Clone for Lanes<T> {
    fn clone(&self) -> Self {
        Self {
            senders: self.senders.clone(),
            room: self.room.clone(),
            depth: self.depth.clone(),
            waiting: self.waiting.clone(),
        }
    }
}

/// Counts a producer as waiting for as long as it lives (the durable
/// inbox's wait for room counts its waiters with it too).
pub(crate) struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    /// Counts one more waiter in `count`, unless `max` wait already.
    pub(crate) fn enter(count: &'a AtomicUsize, max: usize) -> Option<Self> {
        if count.fetch_add(1, Ordering::Relaxed) >= max {
            count.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Self(count))
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<T: Send + 'static> Lanes<T> {
    /// Starts `count` lanes holding at most `capacity` items between them,
    /// handling items with `handle`. The tasks end once `stop` changes (or
    /// every producer is dropped) and their lane is drained: what was
    /// queued is handled.
    pub fn start<F, Fut>(
        count: usize,
        capacity: usize,
        depth: Gauge,
        stop: &watch::Receiver<bool>,
        handle: F,
    ) -> (Lanes<T>, Vec<JoinHandle<()>>)
    where
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send,
    {
        Self::run(count, capacity, depth, stop, false, move |item, _| {
            let handled = handle(item);
            async move {
                handled.await;
                None
            }
        })
    }

    /// As [`Lanes::start`], with a look ahead: `handle` gets each item
    /// together with the lane's next one when that is queued already, and
    /// gives the next one back (it may have prepared it, say read what it
    /// needs in the same round trip as the current item's last write); the
    /// lane handles it next, in order as ever. The next item keeps its
    /// place in the room until it is handled.
    pub fn start_looking_ahead<F, Fut>(
        count: usize,
        capacity: usize,
        depth: Gauge,
        stop: &watch::Receiver<bool>,
        handle: F,
    ) -> (Lanes<T>, Vec<JoinHandle<()>>)
    where
        F: Fn(T, Option<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<T>> + Send,
    {
        Self::run(count, capacity, depth, stop, true, handle)
    }

    fn run<F, Fut>(
        count: usize,
        capacity: usize,
        depth: Gauge,
        stop: &watch::Receiver<bool>,
        look_ahead: bool,
        handle: F,
    ) -> (Lanes<T>, Vec<JoinHandle<()>>)
    where
        F: Fn(T, Option<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<T>> + Send,
    {
        let handle = Arc::new(handle);
        let mut senders = Vec::with_capacity(count.max(1));
        let mut tasks = Vec::with_capacity(count.max(1));
        for _ in 0..count.max(1) {
            let (tx, mut rx) = mpsc::unbounded_channel::<Queued<T>>();
            senders.push(tx);
            let handle = handle.clone();
            let depth = depth.clone();
            let mut stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let mut stopping = false;
                // The next item when the handler gave it back, with its
                // place in the room.
                let mut ahead: Option<Queued<T>> = None;
                loop {
                    let (item, room) = match ahead.take() {
                        Some(queued) => queued,
                        None if stopping => match rx.recv().await {
                            Some(queued) => queued,
                            None => break,
                        },
                        None => tokio::select! {
                            queued = rx.recv() => match queued {
                                Some(queued) => queued,
                                None => break,
                            },
                            _ = stop.changed() => {
                                // Take nothing new; finish what was queued.
                                rx.close();
                                stopping = true;
                                continue;
                            }
                        },
                    };
                    drop(room);
                    depth.dec();
                    let next = if look_ahead { rx.try_recv().ok() } else { None };
                    match next {
                        Some((next, next_room)) => {
                            if let Some(next) = handle(item, Some(next)).await {
                                ahead = Some((next, next_room));
                            } else {
                                // The handler kept it (it must not): the
                                // item is gone, so its room is given back.
                                depth.dec();
                            }
                        }
                        None => {
                            let _ = handle(item, None).await;
                        }
                    }
                }
            }));
        }
        (
            Lanes {
                senders: Arc::new(senders),
                room: Arc::new(Semaphore::new(capacity.clamp(1, Semaphore::MAX_PERMITS))),
                depth,
                waiting: Arc::new(AtomicUsize::new(0)),
            },
            tasks,
        )
    }

    fn sender(&self, key: &impl Hash) -> Result<&mpsc::UnboundedSender<Queued<T>>, PushError> {
        self.senders
            .get(lane_of(key, self.senders.len()))
            .ok_or(PushError::Closed)
    }

    fn queue(&self, key: &impl Hash, item: T, room: OwnedSemaphorePermit) -> Result<(), PushError> {
        self.sender(key)?
            .send((item, room))
            .map_err(|_| PushError::Closed)?;
        self.depth.inc();
        Ok(())
    }

    /// A place in the room if one is free now.
    fn free_room(&self) -> Result<Option<OwnedSemaphorePermit>, PushError> {
        match self.room.clone().try_acquire_owned() {
            Ok(room) => Ok(Some(room)),
            Err(TryAcquireError::NoPermits) => Ok(None),
            Err(TryAcquireError::Closed) => Err(PushError::Closed),
        }
    }

    /// Queues without waiting; full lanes are reported. (Producers wait a
    /// little, [`Lanes::push_within`]; tests fill lanes with this.)
    #[cfg(test)]
    pub fn try_push(&self, key: &impl Hash, item: T) -> Result<(), PushError> {
        let room = self.free_room()?.ok_or(PushError::Full)?;
        self.queue(key, item, room)
    }

    /// Queues; when the lanes are full, waits up to `wait` for room, but
    /// only while fewer than `max_waiting` producers wait already (each
    /// waiter holds its item, so their number bounds that memory). Full
    /// when the wait runs out or too many wait.
    pub async fn push_within(
        &self,
        key: &impl Hash,
        item: T,
        wait: Duration,
        max_waiting: usize,
    ) -> Result<(), PushError> {
        if let Some(room) = self.free_room()? {
            return self.queue(key, item, room);
        }
        let Some(_waiting) = Waiting::enter(&self.waiting, max_waiting) else {
            return Err(PushError::Full);
        };
        match tokio::time::timeout(wait, self.room.clone().acquire_owned()).await {
            Ok(Ok(room)) => self.queue(key, item, room),
            Ok(Err(_)) => Err(PushError::Closed),
            Err(_) => Err(PushError::Full),
        }
    }

    /// Queues, waiting for room.
    pub async fn push(&self, key: &impl Hash, item: T) -> Result<(), PushError> {
        let room = self
            .room
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PushError::Closed)?;
        self.queue(key, item, room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn one_keys_items_are_handled_in_order_and_all_are_drained_on_stop() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, stop) = watch::channel(false);
        let sink = seen.clone();
        let (lanes, tasks) = Lanes::start(
            4,
            100,
            Gauge::default(),
            &stop,
            move |(key, n): (u32, u32)| {
                let sink = sink.clone();
                async move {
                    tokio::task::yield_now().await;
                    sink.lock().unwrap().push((key, n));
                }
            },
        );
        for n in 0..50 {
            for key in 0..3u32 {
                lanes.push(&key, (key, n)).await.unwrap();
            }
        }
        stop_tx.send(true).unwrap();
        for task in tasks {
            task.await.unwrap();
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 150);
        for key in 0..3u32 {
            let order: Vec<u32> = seen
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, n)| *n)
                .collect();
            assert_eq!(order, (0..50).collect::<Vec<_>>());
        }
        assert_eq!(lanes.try_push(&0u32, (0, 0)), Err(PushError::Closed));
    }

    /// A lane that looks ahead hands each item over with the next one when
    /// that one is queued already, handles what it gives back next (as
    /// changed), in order, and still drains everything on stop.
    #[tokio::test]
    async fn a_lane_looking_ahead_hands_over_the_next_item_and_handles_it_next() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, stop) = watch::channel(false);
        let (gate_tx, gate) = watch::channel(false);
        let sink = seen.clone();
        let (lanes, tasks) = Lanes::start_looking_ahead(
            1,
            3,
            Gauge::default(),
            &stop,
            move |(n, prepared): (u32, bool), next: Option<(u32, bool)>| {
                let sink = sink.clone();
                let mut gate = gate.clone();
                async move {
                    let _ = gate.wait_for(|open| *open).await;
                    sink.lock()
                        .unwrap()
                        .push((n, prepared, next.map(|(n, _)| n)));
                    // Prepares the next item, as the inbox reads ahead.
                    next.map(|(n, _)| (n, true))
                }
            },
        );
        lanes.try_push(&0u32, (0, false)).unwrap();
        // The first item is taken (its room given back) but held at the
        // gate; three more fill the room, the one taken as "next" included.
        while lanes.room.available_permits() < 3 {
            tokio::task::yield_now().await;
        }
        for n in 1..4 {
            lanes.try_push(&0u32, (n, false)).unwrap();
        }
        assert_eq!(lanes.try_push(&0u32, (9, false)), Err(PushError::Full));
        gate_tx.send(true).unwrap();
        stop_tx.send(true).unwrap();
        for task in tasks {
            task.await.unwrap();
        }
        let seen = seen.lock().unwrap();
        let order: Vec<u32> = seen.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(order, [0, 1, 2, 3]);
        // Item 0 was alone when taken; item 1 came from the queue with 2
        // behind it, 2 and 3 as their predecessors left them.
        assert_eq!(
            *seen,
            [
                (0, false, None),
                (1, false, Some(2)),
                (2, true, Some(3)),
                (3, true, None)
            ]
        );
    }

    #[tokio::test]
    async fn a_full_lane_refuses_without_waiting() {
        let (_stop_tx, stop) = watch::channel(false);
        let (gate_tx, gate) = watch::channel(false);
        let (lanes, _tasks) = Lanes::start(1, 1, Gauge::default(), &stop, move |_: u32| {
            let mut gate = gate.clone();
            async move {
                let _ = gate.wait_for(|open| *open).await;
            }
        });
        lanes.try_push(&1u32, 1).unwrap();
        // The first item may already be in the handler; fill the queue.
        let mut refused = false;
        for n in 0..3 {
            if lanes.try_push(&1u32, n) == Err(PushError::Full) {
                refused = true;
                break;
            }
        }
        assert!(refused);
        gate_tx.send(true).unwrap();
    }

    /// One lane of one item whose handler waits for `gate`; returns once
    /// the lane holds an item and the handler holds another.
    async fn blocked_lane(gate: watch::Receiver<bool>) -> (Lanes<u32>, watch::Sender<bool>) {
        let (stop_tx, stop) = watch::channel(false);
        let (started_tx, mut started) = mpsc::channel::<()>(8);
        let (lanes, _tasks) = Lanes::start(1, 1, Gauge::default(), &stop, move |_: u32| {
            let mut gate = gate.clone();
            let started = started_tx.clone();
            async move {
                let _ = started.send(()).await;
                let _ = gate.wait_for(|open| *open).await;
            }
        });
        lanes.try_push(&1u32, 1).unwrap();
        started.recv().await.unwrap();
        lanes.try_push(&1u32, 2).unwrap();
        assert_eq!(lanes.try_push(&1u32, 3), Err(PushError::Full));
        (lanes, stop_tx)
    }

    #[tokio::test]
    async fn a_push_within_waits_for_room_and_gives_up_when_the_wait_runs_out() {
        let (gate_tx, gate) = watch::channel(false);
        let (lanes, _stop) = blocked_lane(gate).await;

        let started = tokio::time::Instant::now();
        let refused = lanes
            .push_within(&1u32, 3, Duration::from_millis(50), 8)
            .await;
        assert_eq!(refused, Err(PushError::Full));
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(lanes.waiting.load(Ordering::Relaxed), 0);

        // Room appears while it waits: taken.
        let waiter = {
            let lanes = lanes.clone();
            tokio::spawn(async move {
                lanes
                    .push_within(&1u32, 4, Duration::from_secs(10), 8)
                    .await
            })
        };
        while lanes.waiting.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        gate_tx.send(true).unwrap();
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert_eq!(lanes.waiting.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_push_within_refuses_at_once_when_too_many_wait() {
        let (_gate_tx, gate) = watch::channel(false);
        let (lanes, _stop) = blocked_lane(gate).await;
        let waiter = {
            let lanes = lanes.clone();
            tokio::spawn(async move {
                lanes
                    .push_within(&1u32, 3, Duration::from_secs(10), 1)
                    .await
            })
        };
        while lanes.waiting.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        let started = tokio::time::Instant::now();
        assert_eq!(
            lanes
                .push_within(&1u32, 4, Duration::from_secs(10), 1)
                .await,
            Err(PushError::Full)
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        waiter.abort();
    }

    #[tokio::test]
    async fn room_freed_in_any_lane_lets_a_waiting_producer_in() {
        // Two keys on different lanes, each lane's handler held by its own gate.
        let a = 0u32;
        let b = (1u32..).find(|k| lane_of(k, 2) != lane_of(&a, 2)).unwrap();
        let (_stop_tx, stop) = watch::channel(false);
        let (open_a, gate_a) = watch::channel(false);
        let (open_b, gate_b) = watch::channel(false);
        let (started_tx, mut started) = mpsc::channel::<u32>(8);
        let (lanes, _tasks) = Lanes::start(2, 2, Gauge::default(), &stop, move |key: u32| {
            let mut gate = if key == a {
                gate_a.clone()
            } else {
                gate_b.clone()
            };
            let started = started_tx.clone();
            async move {
                let _ = started.send(key).await;
                let _ = gate.wait_for(|open| *open).await;
            }
        });
        lanes.try_push(&a, a).unwrap();
        lanes.try_push(&b, b).unwrap();
        started.recv().await.unwrap();
        started.recv().await.unwrap();
        // Both handlers busy; the room (2) is taken by one queued item each.
        lanes.try_push(&a, a).unwrap();
        lanes.try_push(&b, b).unwrap();
        assert_eq!(lanes.try_push(&a, a), Err(PushError::Full));

        let waiter = {
            let lanes = lanes.clone();
            tokio::spawn(async move { lanes.push_within(&a, a, Duration::from_secs(10), 8).await })
        };
        while lanes.waiting.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        // Lane b moves on; lane a stays stuck, yet a's producer gets in.
        open_b.send(true).unwrap();
        assert_eq!(waiter.await.unwrap(), Ok(()));
        open_a.send(true).unwrap();
    }
}
