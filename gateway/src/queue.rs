//! Durable queues on Redis Streams: the inbox (events acknowledged to the
//! platforms) and the outbox (replies not yet delivered).
//!
//! Each queue is split into partitions by a stable hash of the conversation
//! key, one stream per partition (`sb:v1:inbox:{inbox-7}`), each with its
//! own hash tag so partitions spread over a cluster. A partition is fed by
//! exactly one replica at a time, the holder of its lease (`SET NX PX`,
//! renewed every second); that replica reads it with plain `XREAD` from a
//! cursor it keeps itself and hands entries, in order, to its local ordered
//! lanes. An entry is deleted only after it was handled, so whatever is in
//! a stream is not handled yet: a replica that dies leaves its entries in
//! the stream, and whoever takes the lease next reads the stream from its
//! start and handles them before anything newer.
//!
//! Reads change nothing in Redis (no consumer group: no pending list, no
//! claim written to the AOF for each read, no `XACK`). A read whose answer
//! is lost is simply asked again from the same cursor; an entry whose
//! handling was given up stays in the stream, and the feeder reads its
//! partition from the start again, skipping what its lanes still hold.
//! A replica's partitions are read together: one `XREAD` names every
//! partition whose feeder is waiting (one per partition on a cluster,
//! where the streams live in different slots).
//!
//! Architecture Invariant: one conversation's entries are handled in stream
//! order: one partition per conversation, one lease holder per partition,
//! one lane per conversation inside the holder. Handling can repeat after a
//! crash, so handlers are idempotent (see `pipeline` and `sender`).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::streams::{StreamId, StreamReadReply};
use redis::{AsyncCommands, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::store::StoreError;

/// How long a lease lives without renewal: a killed replica's partitions
/// move to others after this.
pub const LEASE: Duration = Duration::from_secs(5);
const RENEW_EVERY: Duration = Duration::from_secs(1);
/// Most entries one read takes from one partition.
const READ_BATCH: usize = 64;
/// Polling back-off when a partition is empty. Reads do not use `BLOCK`:
/// a blocking read would stall every other command multiplexed on the
/// shared connection.
const IDLE_MIN: Duration = Duration::from_millis(2);
/// Pause after a read round in which no partition gave `READ_BATCH`
/// entries: under load it turns one read per entry into one per few
/// entries and lets every busy partition's feeder join the next round
/// (each read is a round trip and a command for Redis), at the cost of at
/// most this much added latency per hop.
const BATCH_PAUSE: Duration = Duration::from_millis(3);
const IDLE_MAX: Duration = Duration::from_millis(50);
/// Least time between two re-reads of a partition from its start asked
/// for by given-up entries, so an entry that fails every time is retried
/// once a second, not in a tight loop.
const RESCAN_EVERY: Duration = Duration::from_secs(1);
/// A partition is also read from its start this often unasked. Normally
/// that finds nothing new (whatever is behind the cursor is in the lanes),
/// but a Redis that came back empty (restarted without persistence) with
/// its clock behind the old one gives new entries ids below the cursor,
/// and nothing else would find them.
const FULL_RESCAN_EVERY: Duration = if cfg!(test) {
    Duration::from_secs(2)
} else {
    Duration::from_secs(30)
};

/// FNV-1a: stable across processes and builds, unlike `DefaultHasher`,
/// because every replica must agree on a conversation's partition.
pub fn partition_of(key: &str, partitions: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(partitions.max(1))) as u32
}

fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// One queue (inbox or outbox) on Redis Streams.
pub struct StreamQueue<C> {
    conn: C,
    /// `store.key_prefix`, so several deployments can share one Redis.
    prefix: String,
    name: &'static str,
    partitions: u32,
    replica: String,
    timeout: Duration,
    /// On a cluster the partitions live in different slots, so one command
    /// cannot read several of them.
    cluster: bool,
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> StreamQueue<C> {
    pub fn new(
        conn: C,
        prefix: String,
        name: &'static str,
        partitions: u32,
        replica: String,
        timeout: Duration,
        cluster: bool,
    ) -> Self {
        Self {
            conn,
            prefix,
            name,
            partitions: partitions.max(1),
            replica,
            timeout,
            cluster,
        }
    }

    pub fn stream_key(&self, partition: u32) -> String {
        format!(
            "{prefix}sb:v1:{name}:{{{name}-{partition}}}",
            prefix = self.prefix,
            name = self.name
        )
    }

    fn lease_key(&self, partition: u32) -> String {
        format!(
            "{prefix}sb:v1:lease:{{{name}-{partition}}}",
            prefix = self.prefix,
            name = self.name
        )
    }

    fn replicas_key(&self) -> String {
        format!("{}sb:v1:replicas:{{{}}}", self.prefix, self.name)
    }

    async fn timed<T>(
        &self,
        what: &str,
        fut: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(unavailable(format!("{what}: {error}"))),
            Err(_) => Err(unavailable(format!("{what}: timed out"))),
        }
    }

    /// Appends `payload` to the partition of `partition_key`. Once this
    /// returns Ok the entry is in Redis.
    pub async fn add(&self, partition_key: &str, payload: &[u8]) -> Result<(), StoreError> {
        let key = self.stream_key(partition_of(partition_key, self.partitions));
        let mut conn = self.conn.clone();
        self.timed("XADD", async {
            let _: String = redis::cmd("XADD")
                .arg(&key)
                .arg("*")
                .arg("d")
                .arg(payload)
                .query_async(&mut conn)
                .await?;
            Ok(())
        })
        .await
    }

    /// As [`StreamQueue::add`], unless the partition already holds
    /// `max_per_partition` entries not yet handled (handled ones are
    /// deleted): then nothing is added and the answer is `false`, so the
    /// caller can push back instead of queueing without bound. The check
    /// and the append are one script, so replicas cannot overshoot.
    pub async fn add_bounded(
        &self,
        partition_key: &str,
        payload: &[u8],
        max_per_partition: u64,
    ) -> Result<bool, StoreError> {
        const BOUNDED_XADD: &str = r"
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('XADD', KEYS[1], '*', 'd', ARGV[2])
return 1
";
        static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
        let script = SCRIPT.get_or_init(|| redis::Script::new(BOUNDED_XADD));
        let key = self.stream_key(partition_of(partition_key, self.partitions));
        let mut conn = self.conn.clone();
        let added: i64 = self
            .timed("XADD", async {
                script
                    .key(&key)
                    .arg(max_per_partition)
                    .arg(payload)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok(added == 1)
    }

    /// As [`StreamQueue::add_bounded`], and only when `dedupe_key` (a full
    /// Redis key) was not set: the first sighting's mark, the bound check
    /// and the append are one script, so a webhook costs one round trip.
    /// With `downstream` (a stream key and its bound: the outbox partition
    /// the entry's replies will go to) that stream must have room too, so
    /// a sender that cannot keep up slows the intake down instead of
    /// letting replies pile up in Redis without bound.
    /// Single node only: the mark and the streams live in different
    /// cluster slots.
    /// `conn`, when given, carries the script instead of the queue's
    /// shared connection (a webhook's HTTP worker has one of its own).
    #[allow(clippy::too_many_arguments)]
    pub async fn add_bounded_once(
        &self,
        conn: Option<C>,
        partition_key: &str,
        payload: &[u8],
        max_per_partition: u64,
        dedupe_key: &str,
        dedupe_ttl: Duration,
        downstream: Option<(&str, u64)>,
    ) -> Result<Added, StoreError> {
        // Room is checked first: a webhook refused (or polling for room
        // while the queue is full) writes nothing, so its retries cost
        // Redis no write and the append-only file nothing.
        const ONCE_BOUNDED_XADD: &str = r"
if redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[2])
  or (KEYS[3] and redis.call('XLEN', KEYS[3]) >= tonumber(ARGV[4])) then
  if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
  return -1
end
if not redis.call('SET', KEYS[1], '', 'NX', 'PX', ARGV[1]) then return 0 end
redis.call('XADD', KEYS[2], '*', 'd', ARGV[3])
return 1
";
        static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
        let script = SCRIPT.get_or_init(|| redis::Script::new(ONCE_BOUNDED_XADD));
        let key = self.stream_key(partition_of(partition_key, self.partitions));
        let ttl_ms = u64::try_from(dedupe_ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut invocation = script.key(dedupe_key);
        invocation
            .key(&key)
            .arg(ttl_ms)
            .arg(max_per_partition)
            .arg(payload);
        if let Some((stream, max)) = downstream {
            invocation.key(stream).arg(max);
        }
        let mut conn = conn.unwrap_or_else(|| self.conn.clone());
        let outcome: i64 = self
            .timed("XADD", invocation.invoke_async(&mut conn))
            .await?;
        Ok(match outcome {
            1 => Added::Queued,
            0 => Added::Duplicate,
            _ => Added::Full,
        })
    }

    /// The stream a conversation's entries go to.
    pub fn stream_key_for(&self, partition_key: &str) -> String {
        self.stream_key(partition_of(partition_key, self.partitions))
    }

    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// One partition's share of a bound on the whole queue (at least one).
    pub fn share_per_partition(&self, capacity: usize) -> u64 {
        u64::try_from(capacity)
            .unwrap_or(u64::MAX)
            .div_ceil(u64::from(self.partitions.max(1)))
            .max(1)
    }

    /// Entries not yet handled, across partitions (for metrics).
    pub async fn backlog(&self) -> Result<u64, StoreError> {
        let mut total = 0u64;
        for partition in 0..self.partitions {
            let key = self.stream_key(partition);
            let mut conn = self.conn.clone();
            let len: u64 = self.timed("XLEN", async { conn.xlen(&key).await }).await?;
            total += len;
        }
        Ok(total)
    }
}

/// What [`StreamQueue::add_bounded_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Queued,
    /// The dedupe mark was there: seen before, nothing added.
    Duplicate,
    /// The partition is full: nothing added, no mark left.
    Full,
}

/// What the lease manager, a partition's feeder and its acks share.
struct InFlight {
    /// Ids handed to the lanes and not yet deleted or given up, and the
    /// ids deleted while a read from the start was under way.
    ids: Mutex<Ids>,
    /// Set when an entry was given up (left in the stream): the feeder
    /// reads its partition from the start again.
    rescan: AtomicBool,
    /// Until when (ms on [`clock_ms`]) the lease is surely ours: the send
    /// time of the last renewal Redis confirmed, plus
    /// [`KEEP_WITHOUT_RENEWAL`]. The feeder reads nothing after it, so a
    /// lease manager slowed by timeouts cannot let two replicas read one
    /// partition.
    lease_until: AtomicU64,
}

#[derive(Default)]
struct Ids {
    handed: HashSet<String>,
    /// `Some` while a read from the start is under way: entries deleted
    /// meanwhile may be in its answer (Redis ran the read before the
    /// deletion) and must not be handed out again, or a reply that has no
    /// "sent" mark would be sent twice.
    deleted_during_read: Option<HashSet<String>>,
}

/// Milliseconds on a monotonic clock private to this process.
fn clock_ms() -> u64 {
    static START: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(tokio::time::Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl InFlight {
    fn new(renewal_sent_ms: u64) -> Self {
        Self {
            ids: Mutex::default(),
            rescan: AtomicBool::new(false),
            lease_until: AtomicU64::new(renewal_sent_ms + KEEP_WITHOUT_RENEWAL.as_millis() as u64),
        }
    }

    fn renewed(&self, sent_ms: u64) {
        self.lease_until.store(
            sent_ms + KEEP_WITHOUT_RENEWAL.as_millis() as u64,
            Ordering::SeqCst,
        );
    }

    fn lease_is_fresh(&self) -> bool {
        clock_ms() < self.lease_until.load(Ordering::SeqCst)
    }

    fn ids(&self) -> std::sync::MutexGuard<'_, Ids> {
        // The sets stay consistent even if a holder panicked: each
        // operation is one insert or remove.
        self.ids.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `id` as handed out; false when it already is (a re-read
    /// from the start found an entry the lanes still hold) or was deleted
    /// while that read was under way.
    fn start(&self, id: &str) -> bool {
        let mut ids = self.ids();
        if ids
            .deleted_during_read
            .as_ref()
            .is_some_and(|deleted| deleted.contains(id))
        {
            return false;
        }
        ids.handed.insert(id.to_owned())
    }

    fn finish(&self, id: &str, left_pending: bool) {
        let mut ids = self.ids();
        ids.handed.remove(id);
        if left_pending {
            self.rescan.store(true, Ordering::SeqCst);
        } else if let Some(deleted) = ids.deleted_during_read.as_mut() {
            deleted.insert(id.to_owned());
        }
    }

    /// Brackets a read from the start and the handing out of its answer.
    fn reading_from_start(&self, under_way: bool) {
        self.ids().deleted_during_read = under_way.then(HashSet::new);
    }

    fn is_empty(&self) -> bool {
        self.ids().handed.is_empty()
    }
}

/// Deletes one entry once it was handled. Dropped without a successful
/// [`StreamAck::done`] or [`StreamAck::settled`] (given up, shutting down,
/// a panic), the entry stays in the stream and its feeder hands it out
/// again.
pub struct StreamAck {
    key: String,
    id: String,
    inflight: Arc<InFlight>,
    /// The queue's deleter (see [`spawn_deleter`]).
    deletes: mpsc::UnboundedSender<StreamAck>,
    acknowledged: bool,
}

impl Drop for StreamAck {
    fn drop(&mut self) {
        self.inflight.finish(&self.id, !self.acknowledged);
    }
}

impl std::fmt::Debug for StreamAck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamAck")
            .field("key", &self.key)
            .field("id", &self.id)
            .finish()
    }
}

impl StreamAck {
    /// The `XDEL` of this entry, to go into a
    /// [`crate::store::RedisStore::commit`] with the writes that finish
    /// handling it; call [`StreamAck::settled`] once that succeeded.
    pub fn write(&self) -> crate::store::Write<'_> {
        crate::store::Write::Ack {
            stream: &self.key,
            id: &self.id,
        }
    }

    /// The entry was acknowledged as part of a commit.
    pub fn settled(mut self) {
        self.acknowledged = true;
    }

    /// Gives up on handling the entry for now (shutting down, store down):
    /// it stays in the stream, and this feeder (or the partition's next
    /// holder) hands it out again.
    pub fn abandon(self) {
        drop(self);
    }

    /// Marks the entry handled: hands it to the queue's deleter, which
    /// deletes it with others handled about the same time (one round trip
    /// for all of them) and retries for a while when Redis is down. The
    /// caller goes on at once; until the deletion is confirmed the entry
    /// counts as in flight (a partition is released only after). An entry
    /// left in the stream is handed out again and handled idempotently,
    /// so a deletion given up is safe, only wasteful.
    pub fn done(self) {
        let deletes = self.deletes.clone();
        // Refused only when the deleter is gone (the runtime is stopping):
        // the entry then stays, as after a crash.
        let _ = deletes.send(self);
    }
}

/// How long the deleter waits after the first handled entry for others to
/// join its round trip. Nobody waits for it (see [`StreamAck::done`]): it
/// only delays when handled entries leave Redis.
const DELETE_LINGER: Duration = Duration::from_millis(2);

/// Starts the task that deletes handled entries of `queue` for this
/// replica, in batches. It ends once every ack and the lease manager are
/// gone.
fn spawn_deleter<C: ConnectionLike + Clone + Send + Sync + 'static>(
    queue: Arc<StreamQueue<C>>,
) -> mpsc::UnboundedSender<StreamAck> {
    // Bounded by the entries in flight, which the lanes bound.
    let (deletes, mut handled) = mpsc::unbounded_channel::<StreamAck>();
    tokio::spawn(async move {
        while let Some(first) = handled.recv().await {
            let mut batch = vec![first];
            tokio::time::sleep(DELETE_LINGER).await;
            while let Ok(more) = handled.try_recv() {
                batch.push(more);
            }
            delete(&queue, batch).await;
        }
    });
    deletes
}

/// Deletes `batch` (one `XDEL` per stream, all in one pipeline on a
/// single node), retrying for a while when Redis is down.
async fn delete<C: ConnectionLike + Clone + Send + Sync + 'static>(
    queue: &StreamQueue<C>,
    mut batch: Vec<StreamAck>,
) {
    batch.sort_by(|a, b| a.key.cmp(&b.key));
    let mut commands: Vec<redis::Cmd> = Vec::new();
    for group in batch.chunk_by(|a, b| a.key == b.key) {
        let mut command = redis::cmd("XDEL");
        command.arg(&group[0].key);
        for ack in group {
            command.arg(&ack.id);
        }
        commands.push(command);
    }
    let mut wait = Duration::from_millis(50);
    for _ in 0..8 {
        let deleted = if queue.cluster {
            // The streams live in different slots.
            let each = commands.iter().map(|command| {
                let mut conn = queue.conn.clone();
                async move {
                    queue
                        .timed("XDEL", command.query_async::<()>(&mut conn))
                        .await
                }
            });
            futures_util::future::join_all(each)
                .await
                .into_iter()
                .collect::<Result<Vec<()>, _>>()
                .map(|_| ())
        } else {
            let mut pipeline = redis::pipe();
            for command in &commands {
                pipeline.add_command(command.clone()).ignore();
            }
            let mut conn = queue.conn.clone();
            queue
                .timed("XDEL", pipeline.query_async::<()>(&mut conn))
                .await
        };
        match deleted {
            Ok(()) => {
                for ack in batch {
                    ack.settled();
                }
                return;
            }
            Err(error) => debug!(error = %error, "deleting handled entries failed; retrying"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

/// Renews `KEYS[1]` for `ARGV[2]` ms when `ARGV[1]` holds it.
const RENEW: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
/// Deletes `KEYS[1]` when `ARGV[1]` holds it.
const RELEASE: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

struct Owned {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    inflight: Arc<InFlight>,
}

/// How long after its last confirmed renewal a partition is kept while
/// renewals fail (Redis briefly away): well inside [`LEASE`], so nobody
/// else can hold it meanwhile. Dropping it at the first failed renewal
/// would idle it for a whole lease, since our own unexpired key keeps
/// everyone out, us included.
const KEEP_WITHOUT_RENEWAL: Duration = Duration::from_secs(3);

/// Runs the lease manager: acquires a fair share of the partitions, feeds
/// each owned partition to `deliver`, renews, rebalances when replicas come
/// and go, and on `stop` stops reading, waits for in-flight entries and
/// releases its leases so others take over at once.
pub fn spawn_consumers<C, F, Fut>(
    queue: Arc<StreamQueue<C>>,
    mut stop: watch::Receiver<bool>,
    deliver: F,
) -> JoinHandle<()>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
    F: Fn(Vec<u8>, StreamAck) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let deliver = Arc::new(deliver);
    tokio::spawn(async move {
        let mut owned: HashMap<u32, Owned> = HashMap::new();
        let renew = redis::Script::new(RENEW);
        let release = redis::Script::new(RELEASE);
        // Start the search at a replica-specific partition so replicas
        // starting together do not all race for partition 0.
        let offset = partition_of(&queue.replica, queue.partitions);
        let reads = spawn_reader(queue.clone());
        let deletes = spawn_deleter(queue.clone());
        loop {
            let now_ms = crate::sender::now_ms();
            let live = heartbeat(&queue, now_ms).await.unwrap_or(1).max(1);
            let target = queue.partitions.div_ceil(live) as usize;

            // Renew what we hold; forget what we lost.
            let mut lost = Vec::new();
            for partition in owned.keys().copied().collect::<Vec<_>>() {
                let sent = clock_ms();
                let mut conn = queue.conn.clone();
                let renewed: Result<i64, StoreError> = queue
                    .timed(
                        "lease renew",
                        renew
                            .key(queue.lease_key(partition))
                            .arg(&queue.replica)
                            .arg(LEASE.as_millis() as u64)
                            .invoke_async(&mut conn),
                    )
                    .await;
                match renewed {
                    Ok(1) => {
                        if let Some(feeder) = owned.get(&partition) {
                            feeder.inflight.renewed(sent);
                        }
                    }
                    // Someone else holds it, or it expired.
                    Ok(_) => lost.push(partition),
                    Err(error) => {
                        let expired = owned
                            .get(&partition)
                            .is_none_or(|feeder| !feeder.inflight.lease_is_fresh());
                        if expired {
                            lost.push(partition);
                        } else {
                            debug!(queue = queue.name, partition, error = %error, "lease renewal failed; keeping the partition for now");
                        }
                    }
                }
            }
            for partition in lost {
                if let Some(feeder) = owned.remove(&partition) {
                    warn!(
                        queue = queue.name,
                        partition, "lease lost; stopping this partition"
                    );
                    let _ = feeder.stop.send(true);
                }
            }

            // Give back partitions above our share, once their entries are done.
            while owned.len() > target {
                let Some(partition) = owned.keys().copied().max() else {
                    break;
                };
                if let Some(feeder) = owned.remove(&partition) {
                    retire(&queue, &release, partition, feeder).await;
                    debug!(
                        queue = queue.name,
                        partition, "partition released for rebalancing"
                    );
                }
            }

            // Take free partitions up to our share.
            if owned.len() < target {
                for step in 0..queue.partitions {
                    if owned.len() >= target {
                        break;
                    }
                    let partition = (offset + step) % queue.partitions;
                    if owned.contains_key(&partition) {
                        continue;
                    }
                    let sent = clock_ms();
                    let mut conn = queue.conn.clone();
                    let key = queue.lease_key(partition);
                    let acquired: Result<Option<String>, StoreError> = queue
                        .timed(
                            "lease acquire",
                            redis::cmd("SET")
                                .arg(&key)
                                .arg(&queue.replica)
                                .arg("NX")
                                .arg("PX")
                                .arg(LEASE.as_millis() as u64)
                                .query_async(&mut conn),
                        )
                        .await;
                    if matches!(acquired, Ok(Some(_))) {
                        info!(queue = queue.name, partition, "partition lease acquired");
                        let (feeder_stop, feeder_stop_rx) = watch::channel(false);
                        let inflight = Arc::new(InFlight::new(sent));
                        let task = tokio::spawn(feed(
                            queue.clone(),
                            partition,
                            feeder_stop_rx,
                            inflight.clone(),
                            deliver.clone(),
                            reads.clone(),
                            deletes.clone(),
                        ));
                        owned.insert(
                            partition,
                            Owned {
                                stop: feeder_stop,
                                task,
                                inflight,
                            },
                        );
                    }
                }
            }

            tokio::select! {
                _ = tokio::time::sleep(RENEW_EVERY) => {}
                _ = stop.changed() => break,
            }
        }
        // Shutting down: stop reading, let in-flight entries finish (the
        // lanes drain them), then hand the partitions over.
        let partitions: Vec<u32> = owned.keys().copied().collect();
        for partition in partitions {
            if let Some(feeder) = owned.remove(&partition) {
                retire(&queue, &release, partition, feeder).await;
            }
        }
        let mut conn = queue.conn.clone();
        let _: Result<(), StoreError> = queue
            .timed("replica leave", async {
                conn.zrem(queue.replicas_key(), &queue.replica).await
            })
            .await;
    })
}

/// Stops a partition's feeder, waits (bounded) for its in-flight entries to
/// be acknowledged, and releases the lease.
async fn retire<C: ConnectionLike + Clone + Send + Sync + 'static>(
    queue: &StreamQueue<C>,
    release: &redis::Script,
    partition: u32,
    feeder: Owned,
) {
    let _ = feeder.stop.send(true);
    let _ = tokio::time::timeout(LEASE, feeder.task).await;
    let deadline = tokio::time::Instant::now() + LEASE * 2;
    while !feeder.inflight.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut conn = queue.conn.clone();
    let _: Result<i64, StoreError> = queue
        .timed(
            "lease release",
            release
                .key(queue.lease_key(partition))
                .arg(&queue.replica)
                .invoke_async(&mut conn),
        )
        .await;
}

/// Registers this replica and counts the live ones.
async fn heartbeat<C: ConnectionLike + Clone + Send + Sync + 'static>(
    queue: &StreamQueue<C>,
    now_ms: i64,
) -> Result<u32, StoreError> {
    let key = queue.replicas_key();
    let stale = now_ms - (LEASE.as_millis() as i64) * 3;
    let mut conn = queue.conn.clone();
    let (_, _, count, _): ((), (), u32, ()) = queue
        .timed(
            "replica heartbeat",
            redis::pipe()
                .cmd("ZADD")
                .arg(&key)
                .arg(now_ms)
                .arg(&queue.replica)
                .cmd("ZREMRANGEBYSCORE")
                .arg(&key)
                .arg("-inf")
                .arg(stale)
                .cmd("ZCARD")
                .arg(&key)
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(LEASE.as_millis() as u64 * 10)
                .query_async(&mut conn),
        )
        .await?;
    Ok(count)
}

fn payload(entry: &mut StreamId) -> Option<Vec<u8>> {
    match entry.map.remove("d")? {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.into_bytes()),
        _ => None,
    }
}

/// A feeder's read: the entries of `key` after `after`.
struct ReadRequest {
    key: String,
    after: String,
    answer: oneshot::Sender<Result<Vec<StreamId>, StoreError>>,
}

/// Starts the task that reads for every feeder of `queue` on this replica:
/// it takes all the reads waiting and asks Redis once for all of them.
/// The task ends once every feeder and the lease manager are gone.
fn spawn_reader<C: ConnectionLike + Clone + Send + Sync + 'static>(
    queue: Arc<StreamQueue<C>>,
) -> mpsc::UnboundedSender<ReadRequest> {
    // Unbounded, yet bounded by the feeders: each waits for its answer
    // before it asks again.
    let (reads, mut requests) = mpsc::unbounded_channel::<ReadRequest>();
    tokio::spawn(async move {
        let mut waiting: Vec<ReadRequest> = Vec::new();
        loop {
            if waiting.is_empty() {
                match requests.recv().await {
                    Some(request) => waiting.push(request),
                    None => return,
                }
            }
            while let Ok(request) = requests.try_recv() {
                waiting.push(request);
            }
            // A partition named twice (a feeder stopped and a new one
            // started meanwhile) waits for the next round: one command
            // cannot tell two answers for one stream apart.
            let mut round: Vec<ReadRequest> = Vec::with_capacity(waiting.len());
            let mut later: Vec<ReadRequest> = Vec::new();
            for request in waiting.drain(..) {
                if round.iter().any(|taken| taken.key == request.key) {
                    later.push(request);
                } else {
                    round.push(request);
                }
            }
            waiting = later;
            let full = read_round(&queue, round).await;
            if !full {
                tokio::time::sleep(BATCH_PAUSE).await;
            }
        }
    });
    reads
}

/// Reads every stream of `round` and answers each feeder; true when some
/// stream gave a full batch (more is waiting there).
async fn read_round<C: ConnectionLike + Clone + Send + Sync + 'static>(
    queue: &StreamQueue<C>,
    round: Vec<ReadRequest>,
) -> bool {
    let mut full = false;
    let mut answer = |request: ReadRequest, result: Result<Vec<StreamId>, StoreError>| {
        if let Ok(entries) = &result {
            full |= entries.len() >= READ_BATCH;
        }
        // A feeder that stopped meanwhile is gone; a read changes
        // nothing in Redis, so dropping its answer loses nothing.
        let _ = request.answer.send(result);
    };
    if queue.cluster {
        let reads = round
            .iter()
            .map(|request| read(queue, std::slice::from_ref(request)));
        let results = futures_util::future::join_all(reads).await;
        for (request, result) in round.into_iter().zip(results) {
            answer(
                request,
                result.map(|mut streams| streams.pop().unwrap_or_default()),
            );
        }
    } else {
        match read(queue, &round).await {
            Ok(streams) => {
                for (request, entries) in round.into_iter().zip(streams) {
                    answer(request, Ok(entries));
                }
            }
            Err(error) => {
                for request in round {
                    answer(request, Err(error.clone()));
                }
            }
        }
    }
    full
}

/// One `XREAD` of up to `READ_BATCH` entries from each stream named in
/// `requests`; the entries come back in the order of `requests`.
async fn read<C: ConnectionLike + Clone + Send + Sync + 'static>(
    queue: &StreamQueue<C>,
    requests: &[ReadRequest],
) -> Result<Vec<Vec<StreamId>>, StoreError> {
    let mut command = redis::cmd("XREAD");
    command.arg("COUNT").arg(READ_BATCH).arg("STREAMS");
    for request in requests {
        command.arg(&request.key);
    }
    for request in requests {
        command.arg(&request.after);
    }
    let mut conn = queue.conn.clone();
    let reply: Option<StreamReadReply> =
        queue.timed("XREAD", command.query_async(&mut conn)).await?;
    // Streams with nothing new are left out of the answer.
    let mut by_key: HashMap<String, Vec<StreamId>> = reply
        .map(|reply| {
            reply
                .keys
                .into_iter()
                .map(|stream| (stream.key, stream.ids))
                .collect()
        })
        .unwrap_or_default();
    Ok(requests
        .iter()
        .map(|request| by_key.remove(&request.key).unwrap_or_default())
        .collect())
}

/// Feeds one owned partition, from the start of its stream (what earlier
/// holders left is handled first, in stream order), until told to stop.
async fn feed<C, F, Fut>(
    queue: Arc<StreamQueue<C>>,
    partition: u32,
    mut stop: watch::Receiver<bool>,
    inflight: Arc<InFlight>,
    deliver: Arc<F>,
    reads: mpsc::UnboundedSender<ReadRequest>,
    deletes: mpsc::UnboundedSender<StreamAck>,
) where
    C: ConnectionLike + Clone + Send + Sync + 'static,
    F: Fn(Vec<u8>, StreamAck) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let key = queue.stream_key(partition);
    // The last id handed out. Everything in the stream is unhandled
    // (handled entries are deleted), so "0-0" reads what the previous
    // holder left and, after a give-up, what this one left.
    let mut after = "0-0".to_owned();
    let mut idle = IDLE_MIN;
    let mut last_rescan = tokio::time::Instant::now();
    loop {
        if *stop.borrow() {
            return;
        }
        if !inflight.lease_is_fresh() {
            // Renewals are late (Redis slow or away): read nothing until
            // the lease manager renews it or gives it up.
            tokio::select! {
                _ = tokio::time::sleep(IDLE_MAX) => {}
                _ = stop.changed() => return,
            }
            continue;
        }
        let since = last_rescan.elapsed();
        if since >= FULL_RESCAN_EVERY
            || (since >= RESCAN_EVERY && inflight.rescan.swap(false, Ordering::SeqCst))
        {
            last_rescan = tokio::time::Instant::now();
            after = "0-0".to_owned();
        }
        let from_start = after == "0-0";
        inflight.reading_from_start(from_start);
        let (answer, answered) = oneshot::channel();
        let request = ReadRequest {
            key: key.clone(),
            after: after.clone(),
            answer,
        };
        if reads.send(request).is_err() {
            return;
        }
        let entries = tokio::select! {
            answered = answered => match answered {
                Ok(entries) => entries,
                // The reader is gone: the replica is stopping.
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let entries = match entries {
            Ok(entries) => entries,
            Err(error) => {
                // Nothing changed in Redis; the next read starts from the
                // same place.
                warn!(queue = queue.name, partition, error = %error, "cannot read the stream; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop.changed() => return,
                }
                continue;
            }
        };
        if entries.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(idle) => {}
                _ = stop.changed() => return,
            }
            idle = (idle * 2).min(IDLE_MAX);
            continue;
        }
        idle = IDLE_MIN;
        for mut entry in entries {
            after.clone_from(&entry.id);
            if !inflight.start(&entry.id) {
                // Still in the lanes from an earlier read, or deleted
                // since Redis ran this one.
                continue;
            }
            let bytes = payload(&mut entry);
            let ack = StreamAck {
                key: key.clone(),
                id: entry.id,
                inflight: inflight.clone(),
                deletes: deletes.clone(),
                acknowledged: false,
            };
            match bytes {
                Some(bytes) => deliver(bytes, ack).await,
                None => {
                    warn!(
                        queue = queue.name,
                        partition, "stream entry without payload; dropping it"
                    );
                    ack.done();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_in_range() {
        assert_eq!(
            partition_of("telegram:tg:1", 16),
            partition_of("telegram:tg:1", 16)
        );
        for n in 0..1000 {
            assert!(partition_of(&format!("whatsapp:wa:{n}"), 16) < 16);
        }
        // Spread: 1000 keys touch every one of 16 partitions.
        let used: HashSet<u32> = (0..1000)
            .map(|n| partition_of(&format!("k{n}"), 16))
            .collect();
        assert_eq!(used.len(), 16);
    }

    /// A queue of `partitions` on a private Redis, read as replica "r1".
    async fn queue_on(
        server: &switchboard_testkit::RedisServer,
        name: &'static str,
        partitions: u32,
        timeout: Duration,
    ) -> StreamQueue<crate::store::RedisConnection> {
        let store = crate::store::test_support::redis_store(server.url(), "", &[]).await;
        StreamQueue::new(
            store.connection(),
            store.key(""),
            name,
            partitions,
            "r1".to_owned(),
            timeout,
            false,
        )
    }

    /// An inbox of one partition on a private Redis, read as replica "r1".
    async fn one_partition_inbox(
        server: &switchboard_testkit::RedisServer,
        timeout: Duration,
    ) -> StreamQueue<crate::store::RedisConnection> {
        queue_on(server, "inbox", 1, timeout).await
    }

    #[tokio::test]
    async fn a_bounded_add_refuses_once_the_partition_is_full_and_takes_again_once_handled() {
        let server = switchboard_testkit::RedisServer::start();
        let queue = one_partition_inbox(&server, Duration::from_secs(2)).await;
        assert!(queue.add_bounded("telegram:tg:1", b"a", 2).await.unwrap());
        assert!(queue.add_bounded("telegram:tg:2", b"b", 2).await.unwrap());
        assert!(
            !queue.add_bounded("telegram:tg:3", b"c", 2).await.unwrap(),
            "a third entry over a bound of two"
        );
        assert_eq!(queue.backlog().await.unwrap(), 2, "nothing was added");
        // Handled entries are deleted; then there is room again.
        let mut connection = server.connection();
        let stream = queue.stream_key(0);
        // As if the oldest had been handled (XDEL).
        let _: i64 = redis::cmd("XTRIM")
            .arg(&stream)
            .arg("MAXLEN")
            .arg(1)
            .query(&mut connection)
            .unwrap();
        assert!(queue.add_bounded("telegram:tg:3", b"c", 2).await.unwrap());
    }

    /// A consumer on one partition that reports each payload it is given;
    /// `keep` decides per payload whether to acknowledge it or to give it
    /// up (drop the ack).
    async fn consumer(
        server: &switchboard_testkit::RedisServer,
        keep: fn(&[u8], usize) -> bool,
    ) -> (
        Arc<StreamQueue<crate::store::RedisConnection>>,
        mpsc::UnboundedReceiver<Vec<u8>>,
        watch::Sender<bool>,
        JoinHandle<()>,
    ) {
        let queue = Arc::new(one_partition_inbox(server, Duration::from_millis(300)).await);
        let (seen, seen_rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(false);
        let times = Arc::new(Mutex::new(HashMap::<Vec<u8>, usize>::new()));
        let task = spawn_consumers(queue.clone(), stop_rx, move |bytes: Vec<u8>, ack| {
            let seen = seen.clone();
            let times = times.clone();
            async move {
                let n = {
                    let mut times = times.lock().unwrap();
                    let n = times.entry(bytes.clone()).or_default();
                    *n += 1;
                    *n
                };
                let acknowledge = keep(&bytes, n);
                let _ = seen.send(bytes);
                if acknowledge {
                    ack.done();
                }
            }
        });
        (queue, seen_rx, stop, task)
    }

    async fn next(seen: &mut mpsc::UnboundedReceiver<Vec<u8>>, within: Duration) -> Vec<u8> {
        tokio::time::timeout(within, seen.recv())
            .await
            .expect("nothing handed out in time")
            .expect("consumer ended")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_that_fail_are_asked_again_without_a_lease_change_and_leave_nothing_behind() {
        let server = switchboard_testkit::RedisServer::start();
        let (queue, mut seen, stop, task) = consumer(&server, |_, _| true).await;
        queue.add("telegram:tg:1", b"a").await.unwrap();
        assert_eq!(next(&mut seen, Duration::from_secs(5)).await, b"a");

        // Redis freezes past the store timeout: the replica's reads fail,
        // but not for long enough to lose the lease (5 s).
        server.pause();
        tokio::time::sleep(Duration::from_millis(800)).await;
        server.resume();
        queue.add("telegram:tg:1", b"b").await.unwrap();
        // Well before the lease could have moved and been taken over.
        assert_eq!(next(&mut seen, Duration::from_millis(2500)).await, b"b");
        let mut conn = server.connection();
        let holder: Option<String> = redis::cmd("GET")
            .arg(queue.lease_key(0))
            .query(&mut conn)
            .unwrap();
        assert_eq!(holder.as_deref(), Some("r1"), "the lease stayed put");
        // Handled entries are deleted, and reading wrote nothing: no
        // consumer group, no pending list.
        let stream = queue.stream_key(0);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while queue.backlog().await.unwrap() > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "still in the stream"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let groups: Vec<Value> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&stream)
            .query(&mut conn)
            .unwrap();
        assert!(groups.is_empty(), "{groups:?}");
        let _ = stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        assert!(seen.try_recv().is_err(), "nothing was handed out twice");
    }

    /// A read from the start can return an entry that was deleted after
    /// Redis ran the read and before its answer was handed out; it must
    /// not be handed out again (a reply without a "sent" mark would go
    /// twice). An entry given up meanwhile is still to be handled.
    #[test]
    fn entries_deleted_during_a_read_from_the_start_are_not_handed_out_again() {
        let inflight = InFlight::new(clock_ms());
        assert!(inflight.start("1-0"));
        assert!(inflight.start("2-0"));
        inflight.reading_from_start(true);
        inflight.finish("1-0", false);
        inflight.finish("2-0", true);
        assert!(!inflight.start("1-0"), "deleted while the read ran");
        assert!(inflight.start("2-0"), "given up: handed out again");
        assert!(inflight.start("3-0"), "new");
        // The next read: what was deleted is no longer in the stream.
        inflight.reading_from_start(false);
        inflight.finish("2-0", false);
        inflight.finish("3-0", false);
        assert!(inflight.is_empty());
    }

    /// A Redis that lost its data comes back with empty streams, and with
    /// its clock behind the old one new entries get ids below a feeder's
    /// cursor; the periodic read from the start finds them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn entries_behind_the_cursor_are_found_by_the_periodic_read_from_the_start() {
        let server = switchboard_testkit::RedisServer::start();
        let (queue, mut seen, stop, task) = consumer(&server, |_, _| true).await;
        let stream = queue.stream_key(0);
        let mut conn = server.connection();
        // The old Redis's clock was far ahead: the cursor ends up there.
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("9999999999999-0")
            .arg("d")
            .arg("a")
            .query(&mut conn)
            .unwrap();
        assert_eq!(next(&mut seen, Duration::from_secs(5)).await, b"a");
        // Redis comes back without the stream (the lease, renewed every
        // second, is kept here so only the periodic read can find what
        // follows); a new entry gets an id from today's clock.
        let _: () = redis::cmd("DEL").arg(&stream).query(&mut conn).unwrap();
        queue.add("telegram:tg:1", b"b").await.unwrap();
        // Within two periodic reads (2 s apart in tests).
        assert_eq!(next(&mut seen, Duration::from_secs(5)).await, b"b");
        let _ = stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        assert!(seen.try_recv().is_err(), "nothing was handed out twice");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_an_earlier_holder_left_is_handed_out_first_and_in_order() {
        let server = switchboard_testkit::RedisServer::start();
        let queue = one_partition_inbox(&server, Duration::from_secs(2)).await;
        // Left by a replica that died while handling: still in the stream.
        for payload in [&b"a"[..], b"b", b"c"] {
            queue.add("telegram:tg:1", payload).await.unwrap();
        }
        drop(queue);
        let (queue, mut seen, stop, task) = consumer(&server, |_, _| true).await;
        queue.add("telegram:tg:1", b"d").await.unwrap();
        for expected in [&b"a"[..], b"b", b"c", b"d"] {
            assert_eq!(next(&mut seen, Duration::from_secs(5)).await, expected);
        }
        let _ = stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        assert!(seen.try_recv().is_err(), "nothing was handed out twice");
        assert_eq!(
            queue.backlog().await.unwrap(),
            0,
            "all deleted once handled"
        );
    }

    /// A replica's feeders share reads, and each still gets its own
    /// partition's entries, in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn partitions_read_together_each_get_their_own_entries_in_order() {
        let server = switchboard_testkit::RedisServer::start();
        let queue = Arc::new(queue_on(&server, "inbox", 8, Duration::from_secs(2)).await);
        let chats: Vec<String> = (0..40).map(|n| format!("telegram:tg:{n}")).collect();
        for round in 0..50 {
            for chat in &chats {
                queue
                    .add(chat, format!("{chat}/{round}").as_bytes())
                    .await
                    .unwrap();
            }
        }
        let (seen, mut seen_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let (stop, stop_rx) = watch::channel(false);
        let task = spawn_consumers(queue.clone(), stop_rx, move |bytes: Vec<u8>, ack| {
            let seen = seen.clone();
            async move {
                let _ = seen.send(bytes);
                ack.done();
            }
        });
        let mut last: HashMap<String, i64> = HashMap::new();
        for _ in 0..chats.len() * 50 {
            let bytes = next(&mut seen_rx, Duration::from_secs(10)).await;
            let text = String::from_utf8(bytes).unwrap();
            let (chat, round) = text.rsplit_once('/').unwrap();
            let round: i64 = round.parse().unwrap();
            let previous = last.insert(chat.to_owned(), round).unwrap_or(-1);
            assert_eq!(round, previous + 1, "{chat} out of order");
        }
        assert!(last.values().all(|round| *round == 49));
        let _ = stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
    }

    /// Reads waiting together go to Redis as one `XREAD`; each answer
    /// holds its own stream's entries after its own cursor, and streams
    /// with nothing new (or no stream at all) get an empty answer.
    #[tokio::test]
    async fn one_read_round_answers_every_waiting_partition() {
        let server = switchboard_testkit::RedisServer::start();
        let queue = Arc::new(queue_on(&server, "inbox", 8, Duration::from_secs(2)).await);
        let mut conn = server.connection();
        let mut first_ids = Vec::new();
        for partition in 0..6 {
            let key = queue.stream_key(partition);
            let mut ids = Vec::new();
            for n in 0..3 {
                let id: String = redis::cmd("XADD")
                    .arg(&key)
                    .arg("*")
                    .arg("d")
                    .arg(format!("{partition}/{n}"))
                    .query(&mut conn)
                    .unwrap();
                ids.push(id);
            }
            first_ids.push(ids[0].clone());
        }
        let reads = spawn_reader(queue.clone());
        // Partitions 0-5 hold three entries each; 0-2 ask after their
        // first, 3-5 from the start; 6 and 7 have no stream.
        let mut answers = Vec::new();
        for partition in 0..8u32 {
            let after = match partition {
                0..=2 => first_ids[partition as usize].clone(),
                _ => "0-0".to_owned(),
            };
            let (answer, answered) = oneshot::channel();
            reads
                .send(ReadRequest {
                    key: queue.stream_key(partition),
                    after,
                    answer,
                })
                .unwrap();
            answers.push(answered);
        }
        for (partition, answered) in answers.into_iter().enumerate() {
            let payloads: Vec<String> = answered
                .await
                .unwrap()
                .unwrap()
                .iter_mut()
                .map(|entry| String::from_utf8(payload(entry).unwrap()).unwrap())
                .collect();
            let expected: Vec<String> = match partition {
                0..=2 => (1..3).map(|n| format!("{partition}/{n}")).collect(),
                3..=5 => (0..3).map(|n| format!("{partition}/{n}")).collect(),
                _ => Vec::new(),
            };
            assert_eq!(payloads, expected, "partition {partition}");
        }
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut conn)
            .unwrap();
        let reads_made = stats
            .lines()
            .find_map(|line| line.strip_prefix("cmdstat_xread:calls="))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse::<u64>().ok());
        assert_eq!(reads_made, Some(1), "{stats}");
    }

    /// Entries handled about the same time are deleted together: one
    /// `XDEL` per stream, in one round trip, and each counts as in flight
    /// until then.
    #[tokio::test]
    async fn handled_entries_are_deleted_in_batches() {
        let server = switchboard_testkit::RedisServer::start();
        let queue = Arc::new(queue_on(&server, "outbox", 2, Duration::from_secs(2)).await);
        let mut conn = server.connection();
        // One per partition, as the feeders have: ids repeat across streams.
        let inflights: Vec<Arc<InFlight>> = (0..2)
            .map(|_| Arc::new(InFlight::new(clock_ms())))
            .collect();
        let deletes = spawn_deleter(queue.clone());
        let mut acks = Vec::new();
        for (partition, inflight) in inflights.iter().enumerate() {
            let key = queue.stream_key(partition as u32);
            for n in 0..5 {
                let id: String = redis::cmd("XADD")
                    .arg(&key)
                    .arg("*")
                    .arg("d")
                    .arg(n)
                    .query(&mut conn)
                    .unwrap();
                assert!(inflight.start(&id));
                acks.push(StreamAck {
                    key: key.clone(),
                    id,
                    inflight: inflight.clone(),
                    deletes: deletes.clone(),
                    acknowledged: false,
                });
            }
        }
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut conn)
            .unwrap();
        for ack in acks {
            ack.done();
        }
        assert!(
            inflights.iter().all(|inflight| !inflight.is_empty()),
            "in flight until deleted"
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !inflights.iter().all(|inflight| inflight.is_empty()) {
            assert!(tokio::time::Instant::now() < deadline, "never deleted");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(queue.backlog().await.unwrap(), 0);
        assert!(
            inflights
                .iter()
                .all(|inflight| !inflight.rescan.load(Ordering::SeqCst)),
            "none left behind"
        );
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut conn)
            .unwrap();
        assert!(stats.contains("cmdstat_xdel:calls=2,"), "{stats}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_entry_given_up_is_handed_out_again_by_the_same_holder() {
        let server = switchboard_testkit::RedisServer::start();
        // "a" is given up the first time (the store was down too long, say):
        // it is handed out again at once, not after a lease change.
        let (queue, mut seen, stop, task) =
            consumer(&server, |bytes, n| bytes != b"a" || n > 1).await;
        queue.add("telegram:tg:1", b"a").await.unwrap();
        assert_eq!(next(&mut seen, Duration::from_secs(5)).await, b"a");
        assert_eq!(next(&mut seen, Duration::from_secs(2)).await, b"a");
        queue.add("telegram:tg:1", b"b").await.unwrap();
        assert_eq!(next(&mut seen, Duration::from_secs(2)).await, b"b");
        let _ = stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        assert!(seen.try_recv().is_err(), "nothing else was handed out");
        assert_eq!(queue.backlog().await.unwrap(), 0, "both acknowledged");
    }

    #[tokio::test]
    async fn a_once_only_add_marks_queues_refuses_duplicates_and_unmarks_when_full() {
        let server = switchboard_testkit::RedisServer::start();
        let queue = one_partition_inbox(&server, Duration::from_secs(2)).await;
        let ttl = Duration::from_secs(60);
        let add = |mark: &'static str| {
            let queue = &queue;
            async move {
                queue
                    .add_bounded_once(None, "telegram:tg:1", mark.as_bytes(), 2, mark, ttl, None)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(add("sb:v1:seen:a").await, Added::Queued);
        assert_eq!(add("sb:v1:seen:a").await, Added::Duplicate);
        assert_eq!(add("sb:v1:seen:b").await, Added::Queued);
        assert_eq!(queue.backlog().await.unwrap(), 2);
        // Full: nothing added and no mark left, so the retry is let through;
        // nothing was written at all (a webhook polling for room costs
        // Redis no write).
        let mut connection = server.connection();
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut connection)
            .unwrap();
        assert_eq!(add("sb:v1:seen:c").await, Added::Full);
        assert_eq!(
            add("sb:v1:seen:a").await,
            Added::Duplicate,
            "seen, and full"
        );
        assert_eq!(queue.backlog().await.unwrap(), 2);
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut connection)
            .unwrap();
        for write in ["cmdstat_set:", "cmdstat_del:", "cmdstat_xadd:"] {
            assert!(!stats.contains(write), "{write} in {stats}");
        }
        let marked: bool = redis::cmd("EXISTS")
            .arg("sb:v1:seen:c")
            .query(&mut connection)
            .unwrap();
        assert!(!marked);
        let ttl_ms: i64 = redis::cmd("PTTL")
            .arg("sb:v1:seen:a")
            .query(&mut connection)
            .unwrap();
        assert!(ttl_ms > 0 && ttl_ms <= 60_000, "{ttl_ms}");
        let _: i64 = redis::cmd("XTRIM")
            .arg(queue.stream_key(0))
            .arg("MAXLEN")
            .arg(1)
            .query(&mut connection)
            .unwrap();
        assert_eq!(add("sb:v1:seen:c").await, Added::Queued);
    }

    #[tokio::test]
    async fn a_once_only_add_refuses_while_the_downstream_stream_is_full() {
        let server = switchboard_testkit::RedisServer::start();
        let queue = one_partition_inbox(&server, Duration::from_secs(2)).await;
        let outbox = "sb:v1:outbox:{outbox-0}";
        let ttl = Duration::from_secs(60);
        let add = |mark: &'static str| {
            let queue = &queue;
            async move {
                queue
                    .add_bounded_once(
                        None,
                        "telegram:tg:1",
                        mark.as_bytes(),
                        10,
                        mark,
                        ttl,
                        Some((outbox, 2)),
                    )
                    .await
                    .unwrap()
            }
        };
        assert_eq!(add("sb:v1:seen:a").await, Added::Queued, "no outbox yet");
        let mut connection = server.connection();
        for reply in ["r1", "r2"] {
            let _: String = redis::cmd("XADD")
                .arg(outbox)
                .arg("*")
                .arg("d")
                .arg(reply)
                .query(&mut connection)
                .unwrap();
        }
        // Two replies not yet sent: the inbox has room, the outbox not.
        assert_eq!(add("sb:v1:seen:b").await, Added::Full);
        assert_eq!(queue.backlog().await.unwrap(), 1, "nothing was added");
        let marked: bool = redis::cmd("EXISTS")
            .arg("sb:v1:seen:b")
            .query(&mut connection)
            .unwrap();
        assert!(!marked, "no mark left, so the retry is let through");
        // One reply sent (acknowledged and deleted): room again.
        let _: i64 = redis::cmd("XTRIM")
            .arg(outbox)
            .arg("MAXLEN")
            .arg(1)
            .query(&mut connection)
            .unwrap();
        assert_eq!(add("sb:v1:seen:b").await, Added::Queued);
        assert_eq!(add("sb:v1:seen:b").await, Added::Duplicate);
    }

    #[test]
    fn fnv1a_matches_the_reference_vector() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c.
        assert_eq!(
            partition_of("a", u32::MAX),
            (0xaf63_dc4c_8601_ec8c_u64 % u64::from(u32::MAX)) as u32
        );
    }
}
