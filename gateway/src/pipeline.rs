//! The inbound side after the 200: the inbox is split into ordered lanes (a
//! conversation always maps to one lane, so its events are handled in
//! order; different conversations run in parallel), and each lane loads the
//! conversation's state, lets the assistant decide, carries out its effects,
//! saves the state and hands the replies to the outbox.
//!
//! Architecture Invariant: an event is in the inbox before the webhook is
//! acknowledged; a full inbox answers 503 so the platform retries.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use switchboard_core::assistant::{Assistant, Effect, Input, StepContext};
use switchboard_core::state::ConversationState;
use switchboard_core::texts::Text;
use switchboard_model::{
    ConversationKey, EventKind, InboundEvent, MessageContent, OutboundBody, OutboundMessage,
    Platform, StatusKind,
};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::AbuseSettings;
use crate::effects::EffectRunner;
use crate::handoff::{HandoffDesk, Line};
use crate::lanes::{Lanes, PushError};
use crate::metrics::{Metrics, PlatformLabel, PlatformResult};
use crate::queue::{Added, StreamAck, StreamQueue, spawn_consumers};
use crate::ratelimit::{ChannelLimiter, Rate};
use crate::registry::ChannelRegistry;
use crate::sender::{Outbox, OutboxItem, now_ms};
use crate::store::{DONE_PREFIX, DeadLetter, RedisConnection, Store, StoreError, Write, state_key};

/// How many effect round-trips one event may cause; a guard against a
/// dialogue bug looping forever.
const MAX_EFFECT_ROUNDS: usize = 8;

/// What travels through the inbox: a platform event, or a control message
/// from the agent console or help desk. Controls go through the same
/// ordered lane as the conversation's events, so a hand-back is applied
/// exactly between the customer messages before and after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboxEntry {
    Event(InboundEvent),
    Control(Control),
}

impl InboxEntry {
    fn conversation(&self) -> &ConversationKey {
        match self {
            InboxEntry::Event(event) => &event.conversation,
            InboxEntry::Control(control) => control.conversation(),
        }
    }

    /// Reads a sealed entry's plaintext; entries written before controls
    /// existed are bare events.
    fn decode(plain: &[u8]) -> Result<InboxEntry, StoreError> {
        serde_json::from_slice::<InboxEntry>(plain).or_else(|_| {
            serde_json::from_slice::<InboundEvent>(plain)
                .map(InboxEntry::Event)
                .map_err(|e| StoreError::Corrupt(e.to_string()))
        })
    }
}

/// A person acting on a handed-off conversation. `id` is chosen once by
/// whoever submits it, so handling it again (after a crash) is recognised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Control {
    AgentReply {
        conversation: ConversationKey,
        id: String,
        agent: String,
        text: String,
    },
    /// The bot takes over again and says so.
    HandBack {
        conversation: ConversationKey,
        id: String,
        agent: String,
    },
    /// The person is done; the bot answers the next message, silently now.
    Close {
        conversation: ConversationKey,
        id: String,
        agent: String,
    },
    /// A person takes a conversation the bot has not handed off.
    TakeOver {
        conversation: ConversationKey,
        id: String,
        agent: String,
    },
}

impl Control {
    pub fn conversation(&self) -> &ConversationKey {
        match self {
            Control::AgentReply { conversation, .. }
            | Control::HandBack { conversation, .. }
            | Control::Close { conversation, .. }
            | Control::TakeOver { conversation, .. } => conversation,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Control::AgentReply { id, .. }
            | Control::HandBack { id, .. }
            | Control::Close { id, .. }
            | Control::TakeOver { id, .. } => id,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Control::AgentReply { .. } => "agent_reply",
            Control::HandBack { .. } => "hand_back",
            Control::Close { .. } => "close",
            Control::TakeOver { .. } => "take_over",
        }
    }
}

#[derive(Debug)]
pub struct InboxItem {
    pub entry: InboxEntry,
    pub received: Instant,
    /// Set for entries read from the durable inbox: acknowledged once the
    /// event was handled.
    pub ack: Option<StreamAck>,
    /// What the worker reads first, when it was read already: with the
    /// commit of the item before it in its lane (`Worker::commit`).
    loaded: Option<Loaded>,
}

/// What [`Inbox::accept`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    Queued,
    /// Seen before (a platform retry or a duplicate delivery).
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the inbox is full")]
    Full,
    #[error("the inbox is closed (shutting down)")]
    Closed,
    #[error(transparent)]
    Unavailable(#[from] StoreError),
}

/// How long a webhook waits for room in a full inbox (in-process, or a
/// partition of the Redis one) before it is answered 503. A platform told
/// 503 redelivers seconds to minutes later (and a load generator honouring
/// `Retry-After` idles its connection for a second), while room comes back
/// within milliseconds as lanes drain: a short wait keeps the
/// conversation's latency and the connection's throughput, and the answer
/// stays far inside every platform's webhook timeout.
pub const INBOX_WAIT: Duration = Duration::from_millis(100);
/// Most webhooks waiting for room at once; past it a full inbox is
/// answered 503 at once. Each waiter holds its event, so this bounds the
/// memory waiting takes.
pub const INBOX_MAX_WAITING: usize = 1024;

/// Producer side of the inbox: in-process lanes (memory store) or a
/// partitioned Redis stream (Redis store).
#[derive(Clone)]
pub enum Inbox {
    Local(Lanes<InboxItem>),
    Durable(DurableInbox),
}

/// The inbox on Redis Streams.
#[derive(Clone)]
pub struct DurableInbox {
    queue: Arc<StreamQueue<RedisConnection>>,
    /// Seals entries.
    store: Store,
    /// The most entries one partition may hold before webhooks wait, then
    /// are answered 503.
    max_per_partition: u64,
    /// Webhooks waiting for room right now (see [`INBOX_MAX_WAITING`]).
    waiting: Arc<AtomicUsize>,
    /// The durable outbox and its bound per partition: a webhook also
    /// waits for room in the partition its replies will go to.
    outbox: Option<(Arc<StreamQueue<RedisConnection>>, u64)>,
}

/// Runs `add` until it finds room: on a full partition it tries again,
/// backing off, for up to [`INBOX_WAIT`] while at most [`INBOX_MAX_WAITING`]
/// webhooks wait (`waiting` counts them), as the local inbox does. Redis
/// cannot say when room comes, so this polls; each try is one script run,
/// cheaper by far than the 503 it saves (Telegram and Meta redeliver
/// seconds to minutes later, and a client honouring `Retry-After: 1`
/// idles a second).
async fn with_room<F, Fut>(waiting: &AtomicUsize, mut add: F) -> Result<Added, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Added, StoreError>>,
{
    let added = add().await?;
    if added != Added::Full {
        return Ok(added);
    }
    let Some(_waiting) = crate::lanes::Waiting::enter(waiting, INBOX_MAX_WAITING) else {
        return Ok(Added::Full);
    };
    let deadline = Instant::now() + INBOX_WAIT;
    let mut pause = Duration::from_millis(2);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Added::Full);
        }
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 2).min(Duration::from_millis(16));
        match add().await? {
            Added::Full => continue,
            added => return Ok(added),
        }
    }
}

impl Inbox {
    /// Queues the event. A full inbox is waited on briefly (see
    /// [`INBOX_WAIT`]), then reported so the webhook can answer 503
    /// instead of growing without bound. The durable inbox returns once
    /// the event is in Redis.
    pub async fn submit(&self, event: InboundEvent) -> Result<(), SubmitError> {
        self.submit_entry(InboxEntry::Event(event)).await
    }

    /// Queues the event unless `dedupe_key` marks it as seen within
    /// `dedupe_ttl`; a first sighting whose event cannot be queued leaves
    /// no mark, so the platform's retry is let through. With a single Redis
    /// node this is one round trip.
    pub async fn accept(
        &self,
        store: &Store,
        intake: Option<&IntakeConnection>,
        event: InboundEvent,
        dedupe_key: &str,
        dedupe_ttl: Duration,
    ) -> Result<Accepted, SubmitError> {
        if let (Inbox::Durable(inbox), Some(redis)) = (self, store.as_redis())
            && !redis.is_cluster()
        {
            let entry = InboxEntry::Event(event);
            let key = entry.conversation().to_string();
            let bytes =
                serde_json::to_vec(&entry).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let sealed = inbox.store.seal(INBOX_PAYLOAD, &bytes)?;
            let mark = redis.key(dedupe_key);
            let outbox = inbox
                .outbox
                .as_ref()
                .map(|(queue, max)| (queue.stream_key_for(&key), *max));
            let connection = match intake {
                Some(intake) => intake.get(redis).await,
                None => None,
            };
            let added = with_room(&inbox.waiting, || {
                inbox.queue.add_bounded_once(
                    connection.clone(),
                    &key,
                    &sealed,
                    inbox.max_per_partition,
                    &mark,
                    dedupe_ttl,
                    outbox.as_ref().map(|(stream, max)| (stream.as_str(), *max)),
                )
            })
            .await?;
            return match added {
                Added::Queued => Ok(Accepted::Queued),
                Added::Duplicate => Ok(Accepted::Duplicate),
                Added::Full => Err(SubmitError::Full),
            };
        }
        if !store.first_sighting(dedupe_key, dedupe_ttl).await? {
            return Ok(Accepted::Duplicate);
        }
        match self.submit(event).await {
            Ok(()) => Ok(Accepted::Queued),
            Err(error) => {
                // Not queued, so not seen: let the retry through.
                let _ = store.delete(dedupe_key).await;
                Err(error)
            }
        }
    }

    /// Queues a control message behind the conversation's events.
    pub async fn submit_control(&self, control: Control) -> Result<(), SubmitError> {
        self.submit_entry(InboxEntry::Control(control)).await
    }

    async fn submit_entry(&self, entry: InboxEntry) -> Result<(), SubmitError> {
        match self {
            Inbox::Local(lanes) => {
                let key = entry.conversation().clone();
                lanes
                    .push_within(
                        &key,
                        InboxItem {
                            entry,
                            received: Instant::now(),
                            ack: None,
                            loaded: None,
                        },
                        INBOX_WAIT,
                        INBOX_MAX_WAITING,
                    )
                    .await
                    .map_err(|error| match error {
                        PushError::Full => SubmitError::Full,
                        PushError::Closed => SubmitError::Closed,
                    })
            }
            Inbox::Durable(inbox) => {
                let key = entry.conversation().to_string();
                let bytes =
                    serde_json::to_vec(&entry).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let sealed = inbox.store.seal(INBOX_PAYLOAD, &bytes)?;
                let added = with_room(&inbox.waiting, || async {
                    let added = inbox
                        .queue
                        .add_bounded(&key, &sealed, inbox.max_per_partition)
                        .await?;
                    Ok(if added { Added::Queued } else { Added::Full })
                })
                .await?;
                match added {
                    Added::Full => Err(SubmitError::Full),
                    Added::Queued | Added::Duplicate => Ok(()),
                }
            }
        }
    }
}

/// A Redis connection of one HTTP worker's own, for the intake script.
/// Opened from that worker on first use, so the client's driver task runs
/// on the worker's runtime: a webhook's round trip to Redis stays on one
/// thread instead of being handed to the main runtime (where the lanes
/// keep the driver busy) and back, and it is not queued behind the lanes'
/// commits on the shared connection. Measured: 7-14 % more replies a
/// second under wrk (docs/PERFORMANCE.md, seventh session).
#[derive(Default)]
pub struct IntakeConnection {
    connection: std::sync::OnceLock<RedisConnection>,
    /// Held by the one webhook opening it (the others use the shared
    /// connection meanwhile, never wait); when opening last failed: the
    /// shared connection serves until [`INTAKE_RETRY`] later.
    opening: tokio::sync::Mutex<Option<Instant>>,
}

/// See [`IntakeConnection::opening`].
const INTAKE_RETRY: Duration = Duration::from_secs(5);

impl IntakeConnection {
    /// The worker's connection, opened now if need be; `None` (use the
    /// shared one) while it is being opened or cannot be.
    pub async fn get(&self, redis: &crate::store::RedisStore) -> Option<RedisConnection> {
        if let Some(connection) = self.connection.get() {
            return Some(connection.clone());
        }
        let Ok(mut failed) = self.opening.try_lock() else {
            return None;
        };
        if let Some(connection) = self.connection.get() {
            return Some(connection.clone());
        }
        if failed.is_some_and(|at| at.elapsed() < INTAKE_RETRY) {
            return None;
        }
        match redis.dedicated_connection().await {
            Ok(connection) => Some(self.connection.get_or_init(|| connection).clone()),
            Err(error) => {
                debug!(error = %error, "no intake connection of this worker's own yet; using the shared one");
                *failed = Some(Instant::now());
                None
            }
        }
    }
}

/// Associated data for sealed inbox entries: an entry cannot be replayed
/// as anything else.
const INBOX_PAYLOAD: &str = crate::store::INBOX_ENTRY;

pub struct Worker {
    pub abuse: AbuseSettings,
    /// Inbound per-sender and per-channel limits (shared through Redis).
    pub inbound_limits: ChannelLimiter,
    pub assistant: Arc<Assistant>,
    pub registry: ChannelRegistry,
    pub store: Store,
    pub outbox: Outbox,
    pub effects: EffectRunner,
    pub metrics: Arc<Metrics>,
    pub state_ttl: Duration,
    /// Hand-off records and the agents' queue.
    pub handoffs: Arc<HandoffDesk>,
    /// Entries can be handled twice (after a crash): remember finished ones.
    pub durable: bool,
}

/// Starts the inbox: lanes, and with a durable queue the partition
/// consumers feeding them. The tasks end once `stop` changes and what was
/// taken is handled.
pub fn start(
    lanes: usize,
    lane_capacity: usize,
    worker: &Arc<Worker>,
    queue: Option<Arc<StreamQueue<RedisConnection>>>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> (Inbox, Vec<tokio::task::JoinHandle<()>>) {
    // With Redis the same bound holds the durable backlog, shared out
    // among the partitions.
    let capacity = lanes.saturating_mul(lane_capacity);
    let depth = worker.metrics.queue("inbox");
    let handler = worker.clone();
    // A lane that has its next item already reads what that item needs
    // in the same round trip as the current one's commit.
    let (lanes, mut tasks) = Lanes::start_looking_ahead(
        lanes,
        capacity,
        depth,
        stop,
        move |item: InboxItem, mut next: Option<InboxItem>| {
            let worker = handler.clone();
            async move {
                let ack = worker.handle_item(item, next.as_mut()).await;
                if let Some(ack) = ack {
                    ack.done();
                }
                next
            }
        },
    );
    let Some(queue) = queue else {
        return (Inbox::Local(lanes), tasks);
    };
    let feed_lanes = lanes;
    let feed_worker = worker.clone();
    tasks.push(spawn_consumers(
        queue.clone(),
        stop.clone(),
        move |bytes: Vec<u8>, ack: StreamAck| {
            let lanes = feed_lanes.clone();
            let worker = feed_worker.clone();
            async move {
                let entry = worker
                    .store
                    .open(INBOX_PAYLOAD, &bytes)
                    .and_then(|plain| InboxEntry::decode(&plain));
                match entry {
                    Ok(entry) => {
                        let key = entry.conversation().clone();
                        if let Err(error) = lanes
                            .push(
                                &key,
                                InboxItem {
                                    entry,
                                    received: Instant::now(),
                                    ack: Some(ack),
                                    loaded: None,
                                },
                            )
                            .await
                        {
                            // Shutting down: the entry stays pending for the
                            // next holder of the partition.
                            debug!(error = %error, "inbox entry left for another replica");
                        }
                    }
                    Err(error) => {
                        warn!(error = %error, "unreadable inbox entry; recorded as a dead letter");
                        worker.metrics.dead_letter("unreadable_inbox_entry");
                        let letter = DeadLetter::new(
                            "unreadable_inbox_entry",
                            "",
                            "",
                            None,
                            error.to_string(),
                            None,
                        );
                        let _ = worker.store.push_dead_letter(letter).await;
                        ack.done();
                    }
                }
            }
        },
    ));
    let max_per_partition = queue.share_per_partition(capacity);
    (
        Inbox::Durable(DurableInbox {
            queue,
            store: worker.store.clone(),
            max_per_partition,
            waiting: Arc::new(AtomicUsize::new(0)),
            outbox: worker.outbox.durable_bound(),
        }),
        tasks,
    )
}

/// A short digest naming one event: event ids can hold personal data
/// (WhatsApp message ids encode phone numbers), so keys carry this instead.
pub fn event_digest(event: &InboundEvent) -> String {
    use sha2::Digest;
    let name = format!("{}:{}:{}", event.platform, event.channel, event.event_id);
    hex::encode(&sha2::Sha256::digest(name.as_bytes())[..16])
}

pub fn done_key(event: &InboundEvent) -> String {
    format!("{DONE_PREFIX}{}", event_digest(event))
}

fn control_done_key(control: &Control) -> String {
    use sha2::Digest;
    let name = format!("control:{}", control.id());
    format!(
        "{DONE_PREFIX}{}",
        hex::encode(&sha2::Sha256::digest(name.as_bytes())[..16])
    )
}

fn event_digest_of_conversation(event: &InboundEvent) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(event.conversation.to_string().as_bytes())[..12])
}

/// Cuts overlong customer text (and captions) before the assistant sees
/// it; platforms cap texts at a few thousand characters anyway.
fn cap_text(event: &mut InboundEvent, max_chars: usize) {
    let cut = |text: &mut String| {
        if let Some((index, _)) = text.char_indices().nth(max_chars) {
            text.truncate(index);
        }
    };
    if let EventKind::Message(message) | EventKind::Edited(message) = &mut event.kind {
        match &mut message.content {
            MessageContent::Text { text, .. } => cut(text),
            MessageContent::Media(media) => {
                if let Some(caption) = &mut media.caption {
                    cut(caption);
                }
            }
            _ => {}
        }
    }
}

/// Whether an event can get an answer (and so needs the conversation's
/// state): business-side events (receipts, statuses, echoes) never do.
fn is_answerable(event: &InboundEvent) -> bool {
    !matches!(
        event.kind,
        EventKind::Status(_)
            | EventKind::Receipt(_)
            | EventKind::Echo { .. }
            | EventKind::Unsupported { .. }
    )
}

/// What the worker read before handling an entry (see `Worker::load`).
#[derive(Debug)]
struct Loaded {
    done: bool,
    /// The conversation's stored state, when it was read.
    state: Option<Option<Vec<u8>>>,
}

/// What the worker reads before handling an entry (`Worker::load`).
struct Plan {
    /// The entry's done mark.
    done: String,
    /// The conversation's state, for an event the assistant answers.
    state: Option<String>,
}

/// See `Worker::inbound_cells`.
struct InboundCells {
    tag: String,
    sender_key: String,
    sender: Rate,
    channel: Rate,
}

/// What handling an event leaves to write: the conversation's new state
/// (logical key, JSON) and the replies for the outbox. Written after the
/// assistant's step, with a durable inbox in one transaction with the done
/// mark and the acknowledgement (`Worker::commit`).
#[derive(Default)]
struct Outcome {
    state: Option<(String, Vec<u8>)>,
    replies: Vec<OutboxItem>,
}

/// How long a handled event is remembered; platforms stop retrying well
/// before.
const DONE_TTL: Duration = Duration::from_secs(48 * 3600);

/// How long a worker keeps retrying an event while the store is down
/// before leaving it pending for later (a lease change or restart).
const STORE_PATIENCE: Duration = Duration::from_secs(120);

fn is_unavailable(error: &ProcessError) -> bool {
    matches!(error, ProcessError::Store(StoreError::Unavailable(_)))
}

impl Worker {
    /// Handles one item and gives back its acknowledgement when the event
    /// is done with and still to be acknowledged; `None` when it was
    /// acknowledged with the commit, or is left pending (store down).
    /// `next` is the lane's next item when it is queued already: its first
    /// read goes with this item's commit.
    async fn handle_item(
        &self,
        mut item: InboxItem,
        mut next: Option<&mut InboxItem>,
    ) -> Option<StreamAck> {
        let ack = item.ack.take();
        if !self.durable {
            let (_, outcome) = self.handle(&item.entry, item.received, None).await;
            if let Err(error) = self.write(outcome).await {
                warn!(error = %error, "event handled but its outcome not kept");
            }
            return ack;
        }
        let Plan { done, state } = self.plan(&item.entry);
        let started = Instant::now();
        let mut wait = Duration::from_millis(100);
        let mut loaded = item.loaded.take();
        loop {
            let load = match loaded.take() {
                Some(loaded) => Ok(loaded),
                None => self.load(&done, state.as_deref()).await,
            };
            let error = match load {
                // Handled before a crash and acknowledged only now.
                Ok(Loaded { done: true, .. }) => return ack,
                Ok(Loaded {
                    done: false,
                    state: prefetched,
                }) => {
                    let (error, outcome) =
                        self.handle(&item.entry, item.received, prefetched).await;
                    match error {
                        Some(error) if is_unavailable(&error) => error,
                        // Handled, or failed for good (recorded): either way
                        // it is done with.
                        _ => match self
                            .commit(outcome, &done, ack.as_ref(), next.as_deref_mut())
                            .await
                        {
                            Ok(()) => {
                                if let Some(ack) = ack {
                                    ack.settled();
                                }
                                return None;
                            }
                            Err(error @ StoreError::Unavailable(_)) => ProcessError::Store(error),
                            // The outcome cannot be written at all (it
                            // cannot be sealed, or Redis calls it corrupt):
                            // record it and finish the entry without it, or
                            // it would come back for ever.
                            Err(error) => {
                                warn!(error = %error, "handled event's outcome cannot be stored; recorded as a dead letter");
                                if let InboxEntry::Event(event) = &item.entry {
                                    self.record(event, "processing_failed", &error.to_string())
                                        .await;
                                }
                                match self
                                    .commit(Outcome::default(), &done, ack.as_ref(), None)
                                    .await
                                {
                                    Ok(()) => {
                                        if let Some(ack) = ack {
                                            ack.settled();
                                        }
                                        return None;
                                    }
                                    Err(error) => ProcessError::Store(error),
                                }
                            }
                        },
                    }
                }
                Err(error) => ProcessError::Store(error),
            };
            if !is_unavailable(&error) || started.elapsed() >= STORE_PATIENCE {
                // Leave it pending: whoever holds the partition next
                // retries it.
                warn!(error = %error, "store still unavailable; event left in the inbox");
                if let Some(ack) = ack {
                    ack.abandon();
                }
                return None;
            }
            warn!(error = %error, "store unavailable; retrying the event");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }

    /// What to read before handling `entry`.
    fn plan(&self, entry: &InboxEntry) -> Plan {
        let done = match entry {
            InboxEntry::Event(event) => done_key(event),
            InboxEntry::Control(control) => control_done_key(control),
        };
        // The state is read with the done mark, in one round trip.
        let state = match entry {
            InboxEntry::Event(event) if is_answerable(event) => {
                Some(state_key(&event.conversation))
            }
            _ => None,
        };
        Plan { done, state }
    }

    /// Whether `done` is marked and (when asked) the stored state: one
    /// round trip on a single Redis node.
    async fn load(&self, done: &str, state: Option<&str>) -> Result<Loaded, StoreError> {
        if let (Some(state), Some(redis)) = (state, self.store.as_redis()) {
            match redis.get_pair(done, state).await {
                Ok((mark, stored)) => {
                    return Ok(Loaded {
                        done: mark.is_some(),
                        state: Some(stored),
                    });
                }
                Err(error @ StoreError::Unavailable(_)) => return Err(error),
                // A state that cannot be opened (sealed with a retired key):
                // read the mark alone and let processing meet the state and
                // record the failure, rather than wedging the entry.
                Err(StoreError::Corrupt(_)) => {}
            }
        }
        let done = match self.store.get(done).await {
            Ok(mark) => mark.is_some(),
            // The mark is there but cannot be opened (sealed with a retired
            // key): its presence is all it says, so the event was handled.
            Err(StoreError::Corrupt(_)) => true,
            Err(error) => return Err(error),
        };
        Ok(Loaded { done, state: None })
    }

    /// Keeps a handled event's outcome without a durable inbox: the state
    /// in the store, the replies in the local outbox.
    async fn write(&self, outcome: Outcome) -> Result<(), ProcessError> {
        if let Some((key, bytes)) = outcome.state {
            self.store.put(&key, bytes, self.state_ttl).await?;
        }
        for reply in outcome.replies {
            self.outbox
                .push(reply)
                .await
                .map_err(|_| ProcessError::OutboxClosed)?;
        }
        Ok(())
    }

    /// Writes a handled entry's outcome, its done mark and its
    /// acknowledgement together (one MULTI/EXEC on a single Redis node):
    /// an entry is never acknowledged without its state and replies, and
    /// never handled twice once they are written.
    /// With `next` (the lane's next item, not read yet) its first read
    /// goes in the same round trip, behind the writes, and is kept in it
    /// when the commit went through.
    async fn commit(
        &self,
        mut outcome: Outcome,
        done: &str,
        ack: Option<&StreamAck>,
        next: Option<&mut InboxItem>,
    ) -> Result<(), StoreError> {
        let Some(redis) = self.store.as_redis() else {
            self.write(outcome)
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            return self.store.put(done, Vec::new(), DONE_TTL).await;
        };
        let mut entries = Vec::with_capacity(outcome.replies.len());
        // One MULTI/EXEC on a single node: these replies exist once.
        let once = !redis.is_cluster();
        for reply in &mut outcome.replies {
            reply.once = once;
            match self.outbox.sealed_entry(reply) {
                Some(entry) => entries.push(entry?),
                None => {
                    return Err(StoreError::Corrupt(
                        "a durable inbox needs a durable outbox".to_owned(),
                    ));
                }
            }
        }
        let mut writes = Vec::with_capacity(entries.len() + 3);
        if let Some((key, bytes)) = &outcome.state {
            writes.push(Write::Put {
                key,
                value: bytes,
                ttl: self.state_ttl,
            });
        }
        for (stream, payload) in &entries {
            writes.push(Write::Append { stream, payload });
        }
        writes.push(Write::Put {
            key: done,
            value: &[],
            ttl: DONE_TTL,
        });
        if let Some(ack) = ack {
            writes.push(ack.write());
        }
        // The next event's `load` (its done mark and state), when it is an
        // event the assistant answers; anything else reads on its own.
        let read_next = next.filter(|next| next.loaded.is_none()).and_then(|next| {
            let Plan {
                done,
                state: Some(state),
            } = self.plan(&next.entry)
            else {
                return None;
            };
            Some((done, state, next))
        });
        let Some((next_done, next_state, next)) = read_next else {
            return redis.commit(&writes).await;
        };
        let (committed, replies) = redis
            .commit_then(&writes, redis.pair_reads(&next_done, &next_state))
            .await;
        // A reply that cannot be used (a state that cannot be opened, say)
        // leaves the read to `load`, which knows what to do with it.
        if let Some(Ok((mark, stored))) =
            replies.map(|replies| redis.read_pair(&next_done, &next_state, replies))
        {
            self.metrics.reads_ahead.inc();
            next.loaded = Some(Loaded {
                done: mark.is_some(),
                state: Some(stored),
            });
        }
        committed
    }

    /// Processes one event, records metrics, and gives back the error when
    /// it failed (after recording it, unless the store itself is down),
    /// with what is left to write. `prefetched` is the conversation's
    /// stored state when the caller read it already.
    async fn handle(
        &self,
        entry: &InboxEntry,
        received: Instant,
        prefetched: Option<Option<Vec<u8>>>,
    ) -> (Option<ProcessError>, Outcome) {
        let event = match entry {
            InboxEntry::Event(event) => event,
            InboxEntry::Control(control) => {
                return (self.handle_control(control).await, Outcome::default());
            }
        };
        let platform = event.platform.as_str();
        let span = info_span!(
            "event",
            platform,
            channel = %event.channel,
            event_id = %event.event_id,
        );
        let result = self.process(event, prefetched).instrument(span).await;
        let (label, error, outcome) = match result {
            Ok((label, outcome)) => (label, None, outcome),
            Err(error) if self.durable && is_unavailable(&error) => {
                ("store_unavailable", Some(error), Outcome::default())
            }
            Err(error) => {
                warn!(platform, channel = %event.channel, error = %error, "event processing failed");
                self.record(event, "processing_failed", &error.to_string())
                    .await;
                ("failed", Some(error), Outcome::default())
            }
        };
        self.metrics
            .events
            .get_or_create(&PlatformResult {
                platform,
                result: label,
            })
            .inc();
        if error.is_none() {
            self.metrics
                .event_seconds
                .get_or_create(&PlatformLabel { platform })
                .observe(received.elapsed().as_secs_f64());
        }
        (error, outcome)
    }

    async fn process(
        &self,
        event: &InboundEvent,
        prefetched: Option<Option<Vec<u8>>>,
    ) -> Result<(&'static str, Outcome), ProcessError> {
        let nothing = |label| Ok((label, Outcome::default()));
        // Business-side events are recorded where useful and never answered.
        if !is_answerable(event) {
            return match &event.kind {
                EventKind::Status(status) if status.status == StatusKind::Failed => {
                    let detail = status
                        .errors
                        .iter()
                        .map(|e| format!("{} {}", e.code, e.title.as_deref().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join("; ");
                    self.record(event, "delivery_failed", &detail).await;
                    nothing("delivery_failed")
                }
                EventKind::Echo { .. } => nothing("echo"),
                EventKind::Unsupported { kind, .. } => {
                    debug!(kind = %kind, "unsupported event kind, not answered");
                    nothing("unsupported")
                }
                _ => nothing("receipt"),
            };
        }
        let Some(channel) = self.registry.get(event.channel.as_str()) else {
            return Err(ProcessError::UnknownChannel);
        };
        let conversation = &event.conversation;
        if event.is_from_customer() && !self.inbound_allowed(event).await {
            return Ok((self.slow_down(event).await?, Outcome::default()));
        }
        // The assistant gets the event, its text capped, by reference.
        let input = {
            let mut owned = event.clone();
            cap_text(&mut owned, self.abuse.max_text_chars);
            Input::Event(owned)
        };
        let Input::Event(event) = &input else {
            return Err(ProcessError::Encode("not an event".to_owned()));
        };
        let key = state_key(conversation);
        let now = now_ms();
        let ttl_ms = i64::try_from(self.state_ttl.as_millis()).unwrap_or(i64::MAX);
        let stored = match prefetched {
            Some(stored) => stored,
            None => self.store.get(&key).await?,
        };
        let state = match stored {
            Some(bytes) => match serde_json::from_slice::<ConversationState>(&bytes) {
                Ok(state) if !state.is_expired(now, ttl_ms) => state,
                Ok(_) => ConversationState::new(now),
                Err(error) => {
                    // An unreadable state must not wedge the conversation.
                    warn!(error = %error, "conversation state unreadable, starting afresh");
                    ConversationState::new(now)
                }
            },
            None => ConversationState::new(now),
        };
        let was_handed_off = state.is_handed_off();
        let ctx = StepContext {
            now_ms: now,
            capabilities: channel.adapter.capabilities(),
            conversation,
            sender_id: &event.sender.id,
        };
        let mut step = self.assistant.step(state, &input, &ctx);
        let mut replies = std::mem::take(&mut step.replies);
        let mut pending: std::collections::VecDeque<_> = std::mem::take(&mut step.effects).into();
        let mut erased = false;
        let mut rounds = 0;
        while let Some(effect) = pending.pop_front() {
            rounds += 1;
            if rounds > MAX_EFFECT_ROUNDS {
                warn!("too many effect rounds for one event; stopping");
                break;
            }
            let outcome = self.effects.run(effect, event).await;
            erased |= outcome.erased;
            if let Some(result) = outcome.result {
                step = self
                    .assistant
                    .step(step.state, &Input::Effect(result), &ctx);
                replies.append(&mut step.replies);
                pending.extend(std::mem::take(&mut step.effects));
            }
        }
        let still_handed_off = step.state.is_handed_off();
        if was_handed_off && event.is_from_customer() && !erased {
            self.note_customer_line(event, still_handed_off, now)
                .await?;
        }
        let mut outcome = Outcome::default();
        if erased {
            // Everything about the customer is gone; keep nothing, not even
            // the state that said goodbye.
            self.store.erase_conversation(conversation).await?;
        } else {
            let mut bytes =
                serde_json::to_vec(&step.state).map_err(|e| ProcessError::Encode(e.to_string()))?;
            if bytes.len() > self.abuse.max_state_bytes {
                // Something (a bug, an abuse) grew the state without bound;
                // starting afresh beats storing it or wedging the chat.
                warn!(
                    bytes = bytes.len(),
                    limit = self.abuse.max_state_bytes,
                    "conversation state too large; reset"
                );
                self.record(event, "state_too_large", &format!("{} bytes", bytes.len()))
                    .await;
                bytes = serde_json::to_vec(&ConversationState::new(now))
                    .map_err(|e| ProcessError::Encode(e.to_string()))?;
            }
            outcome.state = Some((key, bytes));
        }
        // The window runs from when the customer wrote, by the platform's
        // clock: a message redelivered a day late opens no window.
        let sent_at = if event.timestamp_ms > 0 {
            event.timestamp_ms
        } else {
            now
        };
        let last_customer_ms = event.is_from_customer().then_some(sent_at);
        for (index, body) in replies.into_iter().enumerate() {
            let mut message = OutboundMessage::new(conversation.clone(), body);
            if let EventKind::Message(m) | EventKind::Edited(m) = &event.kind {
                message.thread_id = m.thread_id;
            }
            // Deterministic, so a reply produced again after a crash is
            // recognised by the sender and not sent twice.
            let reply_id = format!("{}#{index}", event_digest(event));
            outcome.replies.push(OutboxItem {
                message,
                last_customer_ms,
                reply_id,
                // Set by the commit when it is one transaction.
                once: false,
                ack: None,
            });
        }
        Ok(("answered", outcome))
    }

    /// A customer wrote during a hand-off: the line goes to the agents
    /// (masked). When the shop's resume time passed and the bot took over
    /// again, the hand-off is closed instead.
    async fn note_customer_line(
        &self,
        event: &InboundEvent,
        still_handed_off: bool,
        now: i64,
    ) -> Result<(), ProcessError> {
        if !still_handed_off {
            self.handoffs.close(&event.conversation).await?;
            return Ok(());
        }
        let Some(text) = crate::handoff::customer_text(event) else {
            return Ok(());
        };
        let at_ms = if event.timestamp_ms > 0 {
            event.timestamp_ms
        } else {
            now
        };
        let line = Line {
            at_ms,
            from: "customer".to_owned(),
            agent: None,
            text: crate::handoff::mask(&text),
            id: Some(crate::handoff::line_id(event)),
        };
        self.handoffs
            .append(&event.conversation, line, Some(at_ms))
            .await?;
        Ok(())
    }

    /// Carries out an agent's action, in order with the conversation's
    /// events. Errors are the store's; anything else is logged and dropped
    /// (the conversation may have been closed or erased meanwhile).
    async fn handle_control(&self, control: &Control) -> Option<ProcessError> {
        let conversation = control.conversation();
        let span = info_span!(
            "control",
            platform = conversation.platform.as_str(),
            channel = %conversation.channel,
            action = control.name(),
        );
        let result = self.process_control(control).instrument(span).await;
        let label = match &result {
            Ok(label) => *label,
            Err(error) => {
                warn!(error = %error, action = control.name(), "agent action failed");
                "control_failed"
            }
        };
        self.metrics
            .events
            .get_or_create(&PlatformResult {
                platform: conversation.platform.as_str(),
                result: label,
            })
            .inc();
        result.err()
    }

    async fn process_control(&self, control: &Control) -> Result<&'static str, ProcessError> {
        let conversation = control.conversation();
        let now = now_ms();
        match control {
            Control::AgentReply {
                id, agent, text, ..
            } => {
                let line = Line {
                    at_ms: now,
                    from: "agent".to_owned(),
                    agent: Some(agent.clone()),
                    text: crate::handoff::mask(text),
                    id: Some(id.clone()),
                };
                let Some(record) = self.handoffs.append(conversation, line, None).await? else {
                    debug!("agent reply to a conversation no longer handed off; dropped");
                    return Ok("control_stale");
                };
                let mut message = OutboundMessage::new(
                    conversation.clone(),
                    OutboundBody::Text { text: text.clone() },
                );
                let in_window = record
                    .last_customer_ms
                    .is_some_and(|last| now.saturating_sub(last) < crate::sender::REPLY_WINDOW_MS);
                if !in_window && conversation.platform == Platform::Messenger {
                    // Meta allows a person's reply up to 7 days after the
                    // customer's last message with this tag.
                    message.message_tag = Some("HUMAN_AGENT".to_owned());
                }
                self.outbox
                    .push(OutboxItem {
                        message,
                        last_customer_ms: record.last_customer_ms,
                        reply_id: format!("agent:{id}"),
                        once: false,
                        ack: None,
                    })
                    .await
                    .map_err(|_| ProcessError::OutboxClosed)?;
                Ok("agent_reply")
            }
            Control::TakeOver { agent, .. } => {
                let Some(channel) = self.registry.get(conversation.channel.as_str()) else {
                    return Err(ProcessError::UnknownChannel);
                };
                let key = state_key(conversation);
                let ttl_ms = i64::try_from(self.state_ttl.as_millis()).unwrap_or(i64::MAX);
                let state = match self.store.get(&key).await? {
                    Some(bytes) => serde_json::from_slice::<ConversationState>(&bytes)
                        .ok()
                        .filter(|state| !state.is_expired(now, ttl_ms)),
                    None => None,
                };
                // Only a conversation the bot has: the console checked, but
                // it may have been erased since.
                let Some(state) = state else {
                    return Ok("control_stale");
                };
                let last_customer_ms = state.last_customer_message_ms;
                let ctx = StepContext {
                    now_ms: now,
                    capabilities: channel.adapter.capabilities(),
                    conversation,
                    sender_id: "",
                };
                let step = self.assistant.step(state, &Input::AgentTookOver, &ctx);
                if step.effects.is_empty() {
                    // A person has it already.
                    return Ok("control_stale");
                }
                for effect in &step.effects {
                    if let Effect::Handoff { summary } = effect {
                        self.handoffs
                            .open_for(conversation, last_customer_ms, summary, now)
                            .await?;
                    }
                }
                let bytes = serde_json::to_vec(&step.state)
                    .map_err(|e| ProcessError::Encode(e.to_string()))?;
                self.store.put(&key, bytes, self.state_ttl).await?;
                info!(agent = %agent, "conversation taken over by a person");
                Ok("taken_over")
            }
            Control::HandBack { id, .. } | Control::Close { id, .. } => {
                let speak = matches!(control, Control::HandBack { .. });
                let Some(channel) = self.registry.get(conversation.channel.as_str()) else {
                    return Err(ProcessError::UnknownChannel);
                };
                let key = state_key(conversation);
                let state = match self.store.get(&key).await? {
                    Some(bytes) => serde_json::from_slice::<ConversationState>(&bytes).ok(),
                    None => None,
                };
                self.handoffs.close(conversation).await?;
                let Some(state) = state else {
                    return Ok("control_stale");
                };
                let ctx = StepContext {
                    now_ms: now,
                    capabilities: channel.adapter.capabilities(),
                    conversation,
                    sender_id: "",
                };
                let step = self.assistant.step(state, &Input::HandoffEnded, &ctx);
                let bytes = serde_json::to_vec(&step.state)
                    .map_err(|e| ProcessError::Encode(e.to_string()))?;
                self.store.put(&key, bytes, self.state_ttl).await?;
                if speak {
                    let last_customer_ms = step.state.last_customer_message_ms;
                    for (index, body) in step.replies.into_iter().enumerate() {
                        self.outbox
                            .push(OutboxItem {
                                message: OutboundMessage::new(conversation.clone(), body),
                                last_customer_ms,
                                reply_id: format!("control:{id}#{index}"),
                                once: false,
                                ack: None,
                            })
                            .await
                            .map_err(|_| ProcessError::OutboxClosed)?;
                    }
                }
                Ok(if speak { "handed_back" } else { "closed" })
            }
        }
    }

    /// The inbound limits' two cells for an event: its sender's (counted
    /// by this replica) and its channel's (shared), both under the
    /// channel's tag.
    fn inbound_cells(&self, event: &InboundEvent) -> InboundCells {
        let abuse = &self.abuse;
        let sender_key = {
            use sha2::Digest;
            let who = format!("{}:{}:{}", event.platform, event.channel, event.sender.id);
            format!(
                "s:{}",
                hex::encode(&sha2::Sha256::digest(who.as_bytes())[..12])
            )
        };
        InboundCells {
            tag: format!("in:{}:{}", event.platform, event.channel),
            sender_key,
            sender: Rate {
                burst: f64::from(abuse.sender_burst),
                per_second: f64::from(abuse.sender_messages_per_minute) / 60.0,
            },
            channel: Rate {
                burst: f64::from(abuse.channel_burst),
                per_second: f64::from(abuse.channel_messages_per_second),
            },
        }
    }

    /// Whether the sender and the channel are within their inbound rates.
    async fn inbound_allowed(&self, event: &InboundEvent) -> bool {
        let cells = self.inbound_cells(event);
        let allowed = self
            .inbound_limits
            .try_acquire_pair(
                &cells.tag,
                (&cells.sender_key, cells.sender),
                ("c", cells.channel),
            )
            .await;
        if !allowed {
            self.metrics
                .events
                .get_or_create(&PlatformResult {
                    platform: event.platform.as_str(),
                    result: "rate_limited",
                })
                .inc();
        }
        allowed
    }

    /// Over the limit: the platform already got its 200; the customer gets
    /// one "slow down" per minute (none while a person has the
    /// conversation) and the rest is dropped.
    async fn slow_down(&self, event: &InboundEvent) -> Result<&'static str, ProcessError> {
        // A person has the conversation: the bot stays silent even here,
        // or the agent's customer would hear from a bot mid-conversation.
        if self.handoffs.record(&event.conversation).await?.is_some() {
            return Ok("rate_limited");
        }
        let marker = format!("sb:v1:slowdown:{}", event_digest_of_conversation(event));
        if self
            .store
            .first_sighting(&marker, Duration::from_secs(60))
            .await?
        {
            let text = self.assistant.shop().texts.get(Text::SlowDown).to_owned();
            let message =
                OutboundMessage::new(event.conversation.clone(), OutboundBody::Text { text });
            let sent_at = if event.timestamp_ms > 0 {
                event.timestamp_ms
            } else {
                now_ms()
            };
            self.outbox
                .push(OutboxItem {
                    message,
                    last_customer_ms: Some(sent_at),
                    reply_id: format!("{}#slow", event_digest(event)),
                    once: false,
                    ack: None,
                })
                .await
                .map_err(|_| ProcessError::OutboxClosed)?;
        }
        Ok("rate_limited")
    }

    async fn record(&self, event: &InboundEvent, reason: &'static str, detail: &str) {
        self.metrics.dead_letter(reason);
        let letter = DeadLetter::new(
            reason,
            event.platform.as_str(),
            event.channel.as_str(),
            Some(event.conversation.to_string()),
            detail,
            Some(serde_json::json!({
                "event_id": event.event_id,
                "kind": event_kind_name(&event.kind),
            })),
        );
        if let Err(error) = self.store.push_dead_letter(letter).await {
            warn!(error = %error, "could not record a dead letter");
        }
    }
}

pub fn event_kind_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Message(_) => "message",
        EventKind::Edited(_) => "edited",
        EventKind::Payload(_) => "payload",
        EventKind::Reaction(_) => "reaction",
        EventKind::Referral(_) => "referral",
        EventKind::Receipt(_) => "receipt",
        EventKind::Status(_) => "status",
        EventKind::Membership(_) => "membership",
        EventKind::Echo { .. } => "echo",
        EventKind::Unsupported { .. } => "unsupported",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("channel is no longer configured")]
    UnknownChannel,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("state could not be encoded: {0}")]
    Encode(String),
    #[error("the outbox is closed")]
    OutboxClosed,
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// An `add` that finds the partition full `full_for` times, counting
    /// its calls.
    fn full_for(
        full_for: u32,
        calls: &AtomicU32,
    ) -> impl FnMut() -> std::future::Ready<Result<Added, StoreError>> + '_ {
        move || {
            let call = calls.fetch_add(1, Ordering::Relaxed);
            std::future::ready(Ok(if call < full_for {
                Added::Full
            } else {
                Added::Queued
            }))
        }
    }

    #[tokio::test]
    async fn a_durable_add_waits_for_room_and_gets_in_once_there_is_some() {
        let waiting = AtomicUsize::new(0);
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let added = with_room(&waiting, full_for(3, &calls)).await.unwrap();
        assert_eq!(added, Added::Queued);
        assert_eq!(calls.load(Ordering::Relaxed), 4);
        assert!(started.elapsed() < INBOX_WAIT, "{:?}", started.elapsed());
        assert_eq!(waiting.load(Ordering::Relaxed), 0, "no longer waiting");
    }

    #[tokio::test]
    async fn a_durable_add_gives_up_once_the_wait_runs_out() {
        let waiting = AtomicUsize::new(0);
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let added = with_room(&waiting, full_for(u32::MAX, &calls))
            .await
            .unwrap();
        assert_eq!(added, Added::Full);
        let waited = started.elapsed();
        assert!(waited >= INBOX_WAIT, "{waited:?}");
        assert!(waited < INBOX_WAIT * 3, "{waited:?}");
        // Backing off: a handful of tries, not a busy loop.
        let tries = calls.load(Ordering::Relaxed);
        assert!((4..=12).contains(&tries), "{tries} tries");
        assert_eq!(waiting.load(Ordering::Relaxed), 0, "no longer waiting");
    }

    #[tokio::test]
    async fn a_durable_add_does_not_wait_when_too_many_wait_or_there_is_no_need() {
        let calls = AtomicU32::new(0);
        let crowded = AtomicUsize::new(INBOX_MAX_WAITING);
        let added = with_room(&crowded, full_for(1, &calls)).await.unwrap();
        assert_eq!(added, Added::Full, "refused at once");
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        assert_eq!(crowded.load(Ordering::Relaxed), INBOX_MAX_WAITING);

        let waiting = AtomicUsize::new(0);
        let duplicate = with_room(&waiting, || std::future::ready(Ok(Added::Duplicate)))
            .await
            .unwrap();
        assert_eq!(duplicate, Added::Duplicate);
        let failed = with_room(&waiting, || {
            std::future::ready(Err(StoreError::Unavailable("down".to_owned())))
        })
        .await;
        assert!(matches!(failed, Err(StoreError::Unavailable(_))));
    }
}
