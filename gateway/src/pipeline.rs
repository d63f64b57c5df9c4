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
use crate::registry::ChannelRegistry;
use crate::sender::{Outbox, OutboxItem, now_ms};
use crate::store::{DeadLetter, Store, state_key};

/// How many effect round-trips one event may cause; a guard against a
/// dialogue bug looping forever.
const MAX_EFFECT_ROUNDS: usize = 8;

#[derive(Debug)]
pub struct InboxItem {
    pub event: InboundEvent,
    pub received: Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the inbox is full")]
    Full,
    #[error("the inbox is closed (shutting down)")]
    Closed,
}

/// Producer side of the inbox.
#[derive(Clone)]
pub struct Inbox {
    lanes: Lanes<InboxItem>,
}

impl Inbox {
    /// Queues the event without waiting; a full lane is reported so the
    /// webhook can answer 503 instead of growing without bound.
    pub fn try_submit(&self, event: InboundEvent) -> Result<(), SubmitError> {
        let key = event.conversation.clone();
        self.lanes
            .try_push(
                &key,
                InboxItem {
                    event,
                    received: Instant::now(),
                },
            )
            .map_err(|error| match error {
                PushError::Full => SubmitError::Full,
                PushError::Closed => SubmitError::Closed,
            })
    }
}

pub struct Worker {
    pub assistant: Arc<Assistant>,
    pub registry: ChannelRegistry,
    pub store: Store,
    pub outbox: Outbox,
    pub effects: EffectRunner,
    pub metrics: Arc<Metrics>,
    pub state_ttl: Duration,
}

/// Starts the inbox lanes; the tasks end once `stop` changes and their lane
/// is drained.
pub fn start(
    lanes: usize,
    lane_capacity: usize,
    worker: &Arc<Worker>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> (Inbox, Vec<tokio::task::JoinHandle<()>>) {
    let depth = worker.metrics.queue("inbox");
    let worker = worker.clone();
    let (lanes, tasks) = Lanes::start(lanes, lane_capacity, depth, stop, move |item: InboxItem| {
        let worker = worker.clone();
        async move { worker.handle(item).await }
    });
    (Inbox { lanes }, tasks)
}

impl Worker {
    async fn handle(&self, item: InboxItem) {
        let event = item.event;
        let platform = event.platform.as_str();
        let span = info_span!(
            "event",
            platform,
            channel = %event.channel,
            event_id = %event.event_id,
        );
        let result = self.process(&event).instrument(span).await;
        let label = match result {
            Ok(label) => label,
            Err(error) => {
                warn!(platform, channel = %event.channel, error = %error, "event processing failed");
                self.record(&event, "processing_failed", &error.to_string())
                    .await;
                "failed"
            }
        };
        self.metrics
            .events
            .get_or_create(&PlatformResult {
                platform,
                result: label,
            })
            .inc();
        self.metrics
            .event_seconds
            .get_or_create(&PlatformLabel { platform })
            .observe(item.received.elapsed().as_secs_f64());
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
        let Some(channel) = self.registry.get(event.channel.as_str()).cloned() else {
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
        for body in replies {
            let mut message = switchboard_model::OutboundMessage::new(conversation.clone(), body);
            if let EventKind::Message(m) | EventKind::Edited(m) = &event.kind {
                message.thread_id = m.thread_id;
            }
            self.outbox
                .push(OutboxItem {
                    message,
                    last_customer_ms,
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
    Store(#[from] crate::store::StoreError),
    #[error("state could not be encoded: {0}")]
    Encode(String),
    #[error("the outbox is closed")]
    OutboxClosed,
}
