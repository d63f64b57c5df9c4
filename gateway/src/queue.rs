//! Durable queues on Redis Streams: the inbox (events acknowledged to the
//! platforms) and the outbox (replies not yet delivered).
//!
//! Each queue is split into partitions by a stable hash of the conversation
//! key, one stream per partition (`sb:v1:inbox:{inbox-7}`), each with its
//! own hash tag so partitions spread over a cluster. A partition is fed by
//! exactly one replica at a time, the holder of its lease (`SET NX PX`,
//! renewed every second); that replica reads it with a consumer group and
//! hands entries, in order, to its local ordered lanes. An entry is
//! acknowledged and deleted only after it was handled, so a replica that
//! dies leaves its entries pending, and whoever takes the lease next claims
//! them (`XAUTOCLAIM`) and handles them before anything newer.
//!
//! A read whose answer never arrives (Redis killed after it recorded the
//! read, a timeout) leaves entries pending for this replica that it never
//! saw; so does an entry whose handling was given up. The feeder then reads
//! its own pending list again before anything new, skipping what its lanes
//! already hold, so nothing waits for a lease change that may never come.
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
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::store::StoreError;

/// How long a lease lives without renewal: a killed replica's partitions
/// move to others after this.
pub const LEASE: Duration = Duration::from_secs(5);
const RENEW_EVERY: Duration = Duration::from_secs(1);
pub(crate) const GROUP: &str = "switchboard";
const READ_BATCH: usize = 64;
/// Polling back-off when a partition is empty. Reads do not use `BLOCK`:
/// a blocking read would stall every other command multiplexed on the
/// shared connection.
const IDLE_MIN: Duration = Duration::from_millis(2);
/// Pause after a read that found fewer than `READ_BATCH` entries: under
/// load it turns one read per entry into one per few entries (each read is
/// a round trip), at the cost of at most this much added latency per hop.
const BATCH_PAUSE: Duration = Duration::from_millis(3);
const IDLE_MAX: Duration = Duration::from_millis(50);
/// Least time between two re-reads of a feeder's own pending list asked
/// for by given-up entries, so an entry that fails every time is retried
/// once a second, not in a tight loop.
const RESCAN_EVERY: Duration = Duration::from_secs(1);

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
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> StreamQueue<C> {
    pub fn new(
        conn: C,
        prefix: String,
        name: &'static str,
        partitions: u32,
        replica: String,
        timeout: Duration,
    ) -> Self {
        Self {
            conn,
            prefix,
            name,
            partitions: partitions.max(1),
            replica,
            timeout,
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

    /// Creates the consumer group of every partition (idempotent).
    pub async fn ensure_groups(&self) -> Result<(), StoreError> {
        for partition in 0..self.partitions {
            self.ensure_group(partition).await?;
        }
        Ok(())
    }

    /// Creates one partition's stream and group unless they exist. Also run
    /// when Redis answers NOGROUP: a Redis that lost its data (restarted
    /// without persistence, failed over) comes back without them.
    async fn ensure_group(&self, partition: u32) -> Result<(), StoreError> {
        let key = self.stream_key(partition);
        let mut conn = self.conn.clone();
        let created: redis::RedisResult<Value> = tokio::time::timeout(
            self.timeout,
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&key)
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut conn),
        )
        .await
        .map_err(|_| unavailable("XGROUP CREATE timed out"))?;
        match created {
            Ok(_) => Ok(()),
            Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
            Err(error) => Err(unavailable(format!("XGROUP CREATE: {error}"))),
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
    pub async fn add_bounded_once(
        &self,
        partition_key: &str,
        payload: &[u8],
        max_per_partition: u64,
        dedupe_key: &str,
        dedupe_ttl: Duration,
        downstream: Option<(&str, u64)>,
    ) -> Result<Added, StoreError> {
        // Refused for a full partition, the mark goes again so the
        // platform's retry is let through.
        const ONCE_BOUNDED_XADD: &str = r"
if not redis.call('SET', KEYS[1], '', 'NX', 'PX', ARGV[1]) then return 0 end
if redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[2])
  or (KEYS[3] and redis.call('XLEN', KEYS[3]) >= tonumber(ARGV[4])) then
  redis.call('DEL', KEYS[1])
  return -1
end
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
        let mut conn = self.conn.clone();
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
    /// Ids handed to the lanes and not yet acknowledged or given up.
    ids: Mutex<HashSet<String>>,
    /// Set when an entry was left pending (given up, not acknowledged):
    /// the feeder reads its own pending list again.
    rescan: AtomicBool,
    /// Until when (ms on [`clock_ms`]) the lease is surely ours: the send
    /// time of the last renewal Redis confirmed, plus
    /// [`KEEP_WITHOUT_RENEWAL`]. The feeder reads nothing after it, so a
    /// lease manager slowed by timeouts cannot let two replicas read one
    /// partition.
    lease_until: AtomicU64,
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

    fn ids(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // The set stays consistent even if a holder panicked: each
        // operation is one insert or remove.
        self.ids.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `id` as handed out; false when it already is (a re-read of
    /// the pending list found an entry the lanes still hold).
    fn start(&self, id: &str) -> bool {
        self.ids().insert(id.to_owned())
    }

    fn finish(&self, id: &str, left_pending: bool) {
        self.ids().remove(id);
        if left_pending {
            self.rescan.store(true, Ordering::SeqCst);
        }
    }

    fn is_empty(&self) -> bool {
        self.ids().is_empty()
    }
}

/// Acknowledges one entry once it was handled. Dropped without a
/// successful [`StreamAck::done`] (given up, shutting down, a panic), the
/// entry stays pending and its feeder hands it out again.
pub struct StreamAck {
    conn: Box<dyn AckConnection>,
    key: String,
    id: String,
    inflight: Arc<InFlight>,
    timeout: Duration,
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

/// Object-safe view of a connection, so acks need no type parameter.
trait AckConnection: Send + Sync {
    fn ack<'a>(
        &'a self,
        key: &'a str,
        id: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = redis::RedisResult<()>> + Send + 'a>>;
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> AckConnection for C {
    fn ack<'a>(
        &'a self,
        key: &'a str,
        id: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = redis::RedisResult<()>> + Send + 'a>> {
        let mut conn = self.clone();
        Box::pin(async move {
            redis::pipe()
                .cmd("XACK")
                .arg(key)
                .arg(GROUP)
                .arg(id)
                .ignore()
                .cmd("XDEL")
                .arg(key)
                .arg(id)
                .ignore()
                .query_async::<()>(&mut conn)
                .await
        })
    }
}

impl StreamAck {
    /// The `XACK` + `XDEL` of this entry, to go into a
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
    /// it stays pending, and this feeder (or the partition's next holder)
    /// hands it out again.
    pub fn abandon(self) {
        drop(self);
    }

    /// Marks the entry handled. Retries for a while when Redis is down:
    /// an entry left unacknowledged is handed out again and handled
    /// idempotently, so giving up is safe, only wasteful.
    pub async fn done(mut self) {
        let mut wait = Duration::from_millis(50);
        for _ in 0..8 {
            match tokio::time::timeout(self.timeout, self.conn.ack(&self.key, &self.id)).await {
                Ok(Ok(())) => {
                    self.acknowledged = true;
                    return;
                }
                Ok(Err(error)) => debug!(error = %error, "ack failed; retrying"),
                Err(_) => debug!("ack timed out; retrying"),
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
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
        loop {
            if let Err(error) = queue.ensure_groups().await {
                warn!(queue = queue.name, error = %error, "cannot prepare the stream groups; retrying");
            } else {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(RENEW_EVERY) => {}
                _ = stop.changed() => return,
            }
        }
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

fn payload(entry: &StreamId) -> Option<Vec<u8>> {
    match entry.map.get("d")? {
        Value::BulkString(bytes) => Some(bytes.clone()),
        Value::SimpleString(text) => Some(text.clone().into_bytes()),
        _ => None,
    }
}

/// Feeds one owned partition: first every entry left pending by earlier
/// holders (in stream order), then new ones, until told to stop.
async fn feed<C, F, Fut>(
    queue: Arc<StreamQueue<C>>,
    partition: u32,
    mut stop: watch::Receiver<bool>,
    inflight: Arc<InFlight>,
    deliver: Arc<F>,
) where
    C: ConnectionLike + Clone + Send + Sync + 'static,
    F: Fn(Vec<u8>, StreamAck) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let key = queue.stream_key(partition);
    // Where we are: `Some(id)` while working through the pending backlog
    // (entries after `id`), `None` once only new entries are left.
    let mut backlog_after: Option<String> = None;
    let mut taken_over = false;
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
        let entries = if !taken_over {
            match take_over(&queue, &key).await {
                Ok(()) => {
                    taken_over = true;
                    backlog_after = Some("0-0".to_owned());
                    continue;
                }
                Err(error) => Err(error),
            }
        } else {
            match &backlog_after {
                Some(after) => match read(&queue, &key, after).await {
                    Ok(entries) if entries.is_empty() => {
                        backlog_after = None;
                        continue;
                    }
                    other => other,
                },
                None if last_rescan.elapsed() >= RESCAN_EVERY
                    && inflight.rescan.swap(false, Ordering::SeqCst) =>
                {
                    last_rescan = tokio::time::Instant::now();
                    backlog_after = Some("0-0".to_owned());
                    continue;
                }
                None => read(&queue, &key, ">").await,
            }
        };
        let entries = match entries {
            Ok(entries) => entries,
            Err(error) => {
                if error.to_string().contains("NOGROUP") {
                    // Redis lost the stream; recreate it and start over.
                    let _ = queue.ensure_group(partition).await;
                    taken_over = false;
                } else if taken_over {
                    // The read may have happened with its answer lost:
                    // those entries are now pending for us, unseen. Look
                    // at our pending list again before anything new.
                    backlog_after = Some("0-0".to_owned());
                }
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
        // A short read means the partition is (nearly) drained: pause so
        // the next read takes a batch rather than one entry per round trip.
        let pause = entries.len() < READ_BATCH && backlog_after.is_none();
        for entry in entries {
            if backlog_after.is_some() {
                backlog_after = Some(entry.id.clone());
            }
            if !inflight.start(&entry.id) {
                // Still in the lanes from an earlier read.
                continue;
            }
            let ack = StreamAck {
                conn: Box::new(queue.conn.clone()),
                key: key.clone(),
                id: entry.id.clone(),
                inflight: inflight.clone(),
                timeout: queue.timeout,
                acknowledged: false,
            };
            match payload(&entry) {
                Some(bytes) => deliver(bytes, ack).await,
                None => {
                    warn!(
                        queue = queue.name,
                        partition, "stream entry without payload; dropping it"
                    );
                    ack.done().await;
                }
            }
        }
        if pause {
            tokio::select! {
                _ = tokio::time::sleep(BATCH_PAUSE) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// Moves every entry still pending in the group (left by a replica that
/// died or gave the partition up) to this replica, so reading our own
/// pending list hands them back in stream order.
async fn take_over<C: ConnectionLike + Clone + Send + Sync + 'static>(
    queue: &StreamQueue<C>,
    key: &str,
) -> Result<(), StoreError> {
    let mut cursor = "0-0".to_owned();
    loop {
        let mut conn = queue.conn.clone();
        let reply: Value = queue
            .timed(
                "XAUTOCLAIM",
                redis::cmd("XAUTOCLAIM")
                    .arg(key)
                    .arg(GROUP)
                    .arg(&queue.replica)
                    .arg(0)
                    .arg(&cursor)
                    .arg("COUNT")
                    .arg(1000)
                    .arg("JUSTID")
                    .query_async(&mut conn),
            )
            .await?;
        // Reply: [next-cursor, [ids...], [deleted ids]].
        let next = match reply {
            Value::Array(parts) => parts
                .first()
                .and_then(|v| redis::from_redis_value::<String>(v).ok()),
            _ => None,
        };
        match next {
            Some(next) if next != "0-0" => cursor = next,
            _ => return Ok(()),
        }
    }
}

async fn read<C: ConnectionLike + Clone + Send + Sync + 'static>(
    queue: &StreamQueue<C>,
    key: &str,
    from: &str,
) -> Result<Vec<StreamId>, StoreError> {
    let mut conn = queue.conn.clone();
    let reply: Option<StreamReadReply> = queue
        .timed(
            "XREADGROUP",
            redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(&queue.replica)
                .arg("COUNT")
                .arg(READ_BATCH)
                .arg("STREAMS")
                .arg(key)
                .arg(from)
                .query_async(&mut conn),
        )
        .await?;
    Ok(reply
        .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
        .unwrap_or_default())
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

    /// An inbox of one partition on a private Redis, read as replica "r1".
    async fn one_partition_inbox(
        server: &switchboard_testkit::RedisServer,
        timeout: Duration,
    ) -> StreamQueue<crate::store::RedisConnection> {
        let store = crate::store::test_support::redis_store(server.url(), "", &[]).await;
        let queue = StreamQueue::new(
            store.connection(),
            store.key(""),
            "inbox",
            1,
            "r1".to_owned(),
            timeout,
        );
        queue.ensure_groups().await.unwrap();
        queue
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
        // As if the oldest had been handled (XACK + XDEL).
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
        tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
        watch::Sender<bool>,
        JoinHandle<()>,
    ) {
        let queue = Arc::new(one_partition_inbox(server, Duration::from_millis(300)).await);
        let (seen, seen_rx) = tokio::sync::mpsc::unbounded_channel();
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
                    ack.done().await;
                }
            }
        });
        (queue, seen_rx, stop, task)
    }

    async fn next(
        seen: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
        within: Duration,
    ) -> Vec<u8> {
        tokio::time::timeout(within, seen.recv())
            .await
            .expect("nothing handed out in time")
            .expect("consumer ended")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_entry_read_with_its_answer_lost_is_handed_out_without_a_lease_change() {
        let server = switchboard_testkit::RedisServer::start();
        let (queue, mut seen, stop, task) = consumer(&server, |_, _| true).await;
        queue.add("telegram:tg:1", b"a").await.unwrap();
        assert_eq!(next(&mut seen, Duration::from_secs(5)).await, b"a");

        // A read that Redis carried out but whose answer never reached the
        // replica (Redis killed before replying, a timeout): "b" is now
        // pending for r1, and r1 never saw it.
        let mut conn = server.connection();
        let stream = queue.stream_key(0);
        let _: Value = redis::pipe()
            .atomic()
            .cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("d")
            .arg("b")
            .cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg("r1")
            .arg("COUNT")
            .arg(10)
            .arg("STREAMS")
            .arg(&stream)
            .arg(">")
            .query(&mut conn)
            .unwrap();
        // Redis freezes past the store timeout: the replica's reads fail,
        // but not for long enough to lose the lease (5 s).
        server.pause();
        tokio::time::sleep(Duration::from_millis(800)).await;
        server.resume();
        // Well before the lease could have moved and been taken over.
        assert_eq!(next(&mut seen, Duration::from_millis(2500)).await, b"b");
        let holder: Option<String> = redis::cmd("GET")
            .arg(queue.lease_key(0))
            .query(&mut conn)
            .unwrap();
        assert_eq!(holder.as_deref(), Some("r1"), "the lease stayed put");
        let pending: Value = redis::cmd("XPENDING")
            .arg(&stream)
            .arg(GROUP)
            .query(&mut conn)
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        let mut pending = pending;
        while !matches!(&pending, Value::Array(parts) if parts.first() == Some(&Value::Int(0))) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "still pending: {pending:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            pending = redis::cmd("XPENDING")
                .arg(&stream)
                .arg(GROUP)
                .query(&mut conn)
                .unwrap();
        }
        let _ = stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        assert!(seen.try_recv().is_err(), "nothing was handed out twice");
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
                    .add_bounded_once("telegram:tg:1", mark.as_bytes(), 2, mark, ttl, None)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(add("sb:v1:seen:a").await, Added::Queued);
        assert_eq!(add("sb:v1:seen:a").await, Added::Duplicate);
        assert_eq!(add("sb:v1:seen:b").await, Added::Queued);
        assert_eq!(queue.backlog().await.unwrap(), 2);
        // Full: nothing added and no mark left, so the retry is let through.
        assert_eq!(add("sb:v1:seen:c").await, Added::Full);
        assert_eq!(queue.backlog().await.unwrap(), 2);
        let mut connection = server.connection();
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
