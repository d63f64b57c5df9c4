//! The inbound side after the 200: the inbox is split into ordered lanes (a
//! conversation always maps to one lane, so its events are handled in
//! order; different conversations run in parallel), and each lane loads the
//! conversation's state, lets the assistant decide, carries out its effects,
//! saves the state and hands the replies to the outbox.
//!
//! Architecture Invariant: an event is in the inbox before the webhook is
//! acknowledged; a full inbox answers 503 so the platform retries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_core::assistant::{Assistant, Input, StepContext};
use switchboard_core::state::ConversationState;
use switchboard_model::{EventKind, InboundEvent, StatusKind};
use tracing::{Instrument, debug, info_span, warn};

use crate::effects::EffectRunner;
use crate::lanes::{Lanes, PushError};
use crate::metrics::{Metrics, PlatformLabel, PlatformResult};
use crate::queue::{StreamAck, StreamQueue, spawn_consumers};
use crate::registry::ChannelRegistry;
use crate::sender::{Outbox, OutboxItem, now_ms};
use crate::store::{DeadLetter, RedisConnection, Store, StoreError, state_key};

/// How many effect round-trips one event may cause; a guard against a
/// dialogue bug looping forever.
const MAX_EFFECT_ROUNDS: usize = 8;

#[derive(Debug)]
pub struct InboxItem {
    pub event: InboundEvent,
    pub received: Instant,
    /// Set for entries read from the durable inbox: acknowledged once the
    /// event was handled.
    pub ack: Option<StreamAck>,
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

/// Producer side of the inbox: in-process lanes (memory store) or a
/// partitioned Redis stream (Redis store).
#[derive(Clone)]
pub enum Inbox {
    Local(Lanes<InboxItem>),
    Durable(Arc<StreamQueue<RedisConnection>>, Store),
}

impl Inbox {
    /// Queues the event. The local inbox does not wait: a full lane is
    /// reported so the webhook can answer 503 instead of growing without
    /// bound. The durable inbox returns once the event is in Redis.
    pub async fn submit(&self, event: InboundEvent) -> Result<(), SubmitError> {
        match self {
            Inbox::Local(lanes) => {
                let key = event.conversation.clone();
                lanes
                    .try_push(
                        &key,
                        InboxItem {
                            event,
                            received: Instant::now(),
                            ack: None,
                        },
                    )
                    .map_err(|error| match error {
                        PushError::Full => SubmitError::Full,
                        PushError::Closed => SubmitError::Closed,
                    })
            }
            Inbox::Durable(queue, store) => {
                let key = event.conversation.to_string();
                let bytes =
                    serde_json::to_vec(&event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let sealed = store.seal(INBOX_PAYLOAD, &bytes)?;
                queue.add(&key, &sealed).await?;
                Ok(())
            }
        }
    }
}

/// Associated data for sealed inbox entries: an entry cannot be replayed
/// as anything else.
const INBOX_PAYLOAD: &str = "sb:v1:inbox-entry";

pub struct Worker {
    pub assistant: Arc<Assistant>,
    pub registry: ChannelRegistry,
    pub store: Store,
    pub outbox: Outbox,
    pub effects: EffectRunner,
    pub metrics: Arc<Metrics>,
    pub state_ttl: Duration,
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
    let depth = worker.metrics.queue("inbox");
    let handler = worker.clone();
    let (lanes, mut tasks) =
        Lanes::start(lanes, lane_capacity, depth, stop, move |item: InboxItem| {
            let worker = handler.clone();
            async move {
                let ack = worker.handle_item(item).await;
                if let Some(ack) = ack {
                    ack.done().await;
                }
            }
        });
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
                let event = worker.store.open(INBOX_PAYLOAD, &bytes).and_then(|plain| {
                    serde_json::from_slice::<InboundEvent>(&plain)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))
                });
                match event {
                    Ok(event) => {
                        let key = event.conversation.clone();
                        if let Err(error) = lanes
                            .push(
                                &key,
                                InboxItem {
                                    event,
                                    received: Instant::now(),
                                    ack: Some(ack),
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
                        ack.done().await;
                    }
                }
            }
        },
    ));
    (Inbox::Durable(queue, worker.store.clone()), tasks)
}

pub fn done_key(event: &InboundEvent) -> String {
    format!(
        "sb:v1:done:{}:{}:{}",
        event.platform, event.channel, event.event_id
    )
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
    /// is done with; `None` leaves a durable entry pending.
    async fn handle_item(&self, mut item: InboxItem) -> Option<StreamAck> {
        let ack = item.ack.take();
        if !self.durable {
            self.handle(&item.event, item.received).await;
            return ack;
        }
        let done = done_key(&item.event);
        let started = Instant::now();
        let mut wait = Duration::from_millis(100);
        loop {
            // Handled before a crash and acknowledged only now?
            match self.store.get(&done).await {
                Ok(Some(_)) => return ack,
                Ok(None) => {}
                Err(error) => warn!(error = %error, "store unavailable; retrying the event"),
            }
            match self.handle(&item.event, item.received).await {
                Some(error) if is_unavailable(&error) && started.elapsed() < STORE_PATIENCE => {
                    warn!(error = %error, "store unavailable; retrying the event");
                }
                Some(error) if is_unavailable(&error) => {
                    // Leave it pending: whoever holds the partition next
                    // retries it.
                    warn!(error = %error, "store still unavailable; event left in the inbox");
                    if let Some(ack) = ack {
                        ack.abandon();
                    }
                    return None;
                }
                _ => break,
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
        // Best effort: the mark matters only if the acknowledgement is lost.
        let _ = self.store.put(&done, Vec::new(), DONE_TTL).await;
        ack
    }

    /// Processes one event, records metrics, and gives back the error when
    /// it failed (after recording it, unless the store itself is down).
    async fn handle(&self, event: &InboundEvent, received: Instant) -> Option<ProcessError> {
        let platform = event.platform.as_str();
        let span = info_span!(
            "event",
            platform,
            channel = %event.channel,
            event_id = %event.event_id,
        );
        let result = self.process(event).instrument(span).await;
        let (label, error) = match result {
            Ok(label) => (label, None),
            Err(error) if self.durable && is_unavailable(&error) => {
                ("store_unavailable", Some(error))
            }
            Err(error) => {
                warn!(platform, channel = %event.channel, error = %error, "event processing failed");
                self.record(event, "processing_failed", &error.to_string())
                    .await;
                ("failed", Some(error))
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
        error
    }

    async fn process(&self, event: &InboundEvent) -> Result<&'static str, ProcessError> {
        // Business-side events are recorded where useful and never answered.
        match &event.kind {
            EventKind::Status(status) if status.status == StatusKind::Failed => {
                let detail = status
                    .errors
                    .iter()
                    .map(|e| format!("{} {}", e.code, e.title.as_deref().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join("; ");
                self.record(event, "delivery_failed", &detail).await;
                return Ok("delivery_failed");
            }
            EventKind::Status(_) | EventKind::Receipt(_) => return Ok("receipt"),
            EventKind::Echo { .. } => return Ok("echo"),
            EventKind::Unsupported { kind, .. } => {
                debug!(kind = %kind, "unsupported event kind, not answered");
                return Ok("unsupported");
            }
            _ => {}
        }
        let Some(channel) = self.registry.get(event.channel.as_str()) else {
            return Err(ProcessError::UnknownChannel);
        };
        let conversation = &event.conversation;
        let key = state_key(conversation);
        let now = now_ms();
        let ttl_ms = i64::try_from(self.state_ttl.as_millis()).unwrap_or(i64::MAX);
        let state = match self.store.get(&key).await? {
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
        let ctx = StepContext {
            now_ms: now,
            capabilities: channel.adapter.capabilities(),
            conversation,
            sender_id: &event.sender.id,
        };
        let mut step = self
            .assistant
            .step(state, &Input::Event(event.clone()), &ctx);
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
        if erased {
            // Everything about the customer is gone; keep nothing, not even
            // the state that said goodbye.
            self.store.erase_conversation(conversation).await?;
        } else {
            let bytes =
                serde_json::to_vec(&step.state).map_err(|e| ProcessError::Encode(e.to_string()))?;
            self.store.put(&key, bytes, self.state_ttl).await?;
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
            let mut message = switchboard_model::OutboundMessage::new(conversation.clone(), body);
            if let EventKind::Message(m) | EventKind::Edited(m) = &event.kind {
                message.thread_id = m.thread_id;
            }
            // Deterministic, so a reply produced again after a crash is
            // recognised by the sender and not sent twice.
            let reply_id = format!(
                "{}:{}:{}#{index}",
                event.platform, event.channel, event.event_id
            );
            self.outbox
                .push(OutboxItem {
                    message,
                    last_customer_ms,
                    reply_id,
                    ack: None,
                })
                .await
                .map_err(|_| ProcessError::OutboxClosed)?;
        }
        Ok("answered")
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
