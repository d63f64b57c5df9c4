//! The outbound side: replies wait in an outbox split into ordered lanes
//! (one chat always maps to one lane, so its replies keep their order), and
//! each lane renders, rate-limits, sends and classifies them one at a time,
//! retrying with backoff and jitter, honouring retry-after, and moving what
//! cannot be delivered to the dead-letter list with the reason.
//!
//! Architecture Invariant: nothing leaves for a Messenger or WhatsApp chat
//! more than 24 hours after the customer's last message unless the channel
//! configured the message tag or template for that case.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use switchboard_model::{
    HttpMethod, OutboundBody, OutboundMessage, Platform, PlatformRequest, SendFailure, SendOutcome,
};
use tracing::{Instrument, debug, warn};

use crate::lanes::Lanes;
use crate::metrics::{Metrics, PlatformLabel, PlatformResult};
use crate::queue::{StreamAck, StreamQueue, spawn_consumers};
use crate::ratelimit::{ChannelLimiter, KeyedLimiter, channel_rate, chat_rate};
use crate::registry::{Channel, ChannelRegistry};
use crate::store::{DeadLetter, RedisConnection, Store, StoreError};

/// Messenger's and WhatsApp's customer-service window.
pub const REPLY_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// Longest platform-requested wait we honour in place; longer ones would
/// hold the lane hostage, so the message is dead-lettered instead.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(30);

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct OutboxItem {
    pub message: OutboundMessage,
    /// When the customer last wrote (ms), for the 24-hour window.
    pub last_customer_ms: Option<i64>,
    /// Stable id of this reply (`platform:channel:event_id#n`): a reply
    /// produced twice after a crash is sent once.
    pub reply_id: String,
    /// Appended in one transaction with the acknowledgement of the inbox
    /// entry that produced it (a single Redis node), so no other outbox
    /// entry carries this reply, and the sender needs no "sent" mark for
    /// it (see `Delivery::deliver_once`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub once: bool,
    /// Set for entries read from the durable outbox.
    #[serde(skip)]
    pub ack: Option<StreamAck>,
}

/// Associated data for sealed outbox entries.
const OUTBOX_PAYLOAD: &str = crate::store::OUTBOX_ENTRY;

fn sent_key(reply_id: &str) -> String {
    format!("sb:v1:sent:{reply_id}")
}

/// How long a delivered reply id is remembered.
const SENT_TTL: Duration = Duration::from_secs(48 * 3600);

/// Wall clock in ms; the only clock the sender reads.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Producer side of the outbox: in-process lanes (memory store) or a
/// partitioned Redis stream (Redis store).
#[derive(Clone)]
pub enum Outbox {
    Local(Lanes<OutboxItem>),
    /// The stream, the store that seals entries, and the most entries one
    /// partition should hold: webhooks wait (then get 503) while the
    /// partition their replies would go to holds more (see
    /// [`Outbox::durable_bound`]).
    Durable(Arc<StreamQueue<RedisConnection>>, Store, u64),
}

impl Outbox {
    /// Local: waits for room (the worker slows down rather than dropping
    /// replies). Durable: returns once the reply is in Redis.
    pub async fn push(&self, item: OutboxItem) -> Result<(), OutboxClosed> {
        match self {
            Outbox::Local(lanes) => {
                let key = item.message.conversation.clone();
                lanes.push(&key, item).await.map_err(|_| OutboxClosed)
            }
            Outbox::Durable(queue, store, _) => {
                let key = item.message.conversation.to_string();
                let bytes = serde_json::to_vec(&item).map_err(|_| OutboxClosed)?;
                let sealed = store
                    .seal(OUTBOX_PAYLOAD, &bytes)
                    .map_err(|_| OutboxClosed)?;
                // Redis down: keep trying; the inbox entry that produced
                // this reply is not acknowledged until it is stored.
                let mut wait = Duration::from_millis(100);
                loop {
                    match queue.add(&key, &sealed).await {
                        Ok(()) => return Ok(()),
                        Err(error) => {
                            warn!(error = %error, "outbox unavailable; retrying");
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(Duration::from_secs(5));
                        }
                    }
                }
            }
        }
    }
}

impl Outbox {
    /// The stream and sealed entry a reply is appended as, so it can be
    /// written in one transaction with other writes; `None` for the local
    /// outbox.
    pub fn sealed_entry(&self, item: &OutboxItem) -> Option<Result<(String, Vec<u8>), StoreError>> {
        let Outbox::Durable(queue, store, _) = self else {
            return None;
        };
        let key = item.message.conversation.to_string();
        Some(
            serde_json::to_vec(item)
                .map_err(|e| StoreError::Corrupt(e.to_string()))
                .and_then(|bytes| store.seal(OUTBOX_PAYLOAD, &bytes))
                .map(|sealed| (queue.stream_key_for(&key), sealed)),
        )
    }
}

impl Outbox {
    /// The durable outbox and its bound per partition. The outbox is
    /// written in one transaction with the inbox entry it answers, so it
    /// is not bounded there; the inbox checks it instead when it takes a
    /// webhook.
    pub fn durable_bound(&self) -> Option<(Arc<StreamQueue<RedisConnection>>, u64)> {
        match self {
            Outbox::Durable(queue, _, max) => Some((queue.clone(), *max)),
            Outbox::Local(_) => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the outbox is closed (shutting down)")]
pub struct OutboxClosed;

pub struct SenderConfig {
    pub lanes: usize,
    pub lane_capacity: usize,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub api_bases: HashMap<Platform, String>,
    pub rates: crate::config::SendRates,
}

/// Starts the sender lanes; returns the outbox and the lane tasks, which
/// finish once `stop` changes and their lane is drained.
pub fn start(
    config: SenderConfig,
    registry: ChannelRegistry,
    store: Store,
    metrics: Arc<Metrics>,
    queue: Option<Arc<StreamQueue<RedisConnection>>>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<(Outbox, Vec<tokio::task::JoinHandle<()>>), reqwest::Error> {
    let http = reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(90))
        // The send APIs answer where they are asked; a redirect would carry
        // the token (in Telegram's path) to another place.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let channel_limits = ChannelLimiter::for_store(&store);
    let delivery = Arc::new(Delivery {
        http,
        registry,
        store,
        metrics,
        api_bases: config.api_bases,
        max_attempts: config.max_attempts,
        rates: config.rates,
        channel_limits,
        chat_limits: KeyedLimiter::default(),
        durable: queue.is_some(),
    });
    let depth = delivery.metrics.queue("outbox");
    let handler = delivery.clone();
    // With Redis the same bound holds the durable backlog, shared out
    // among the partitions.
    let capacity = config.lanes.saturating_mul(config.lane_capacity);
    let (lanes, mut tasks) = Lanes::start(
        config.lanes,
        capacity,
        depth,
        stop,
        move |mut item: OutboxItem| {
            let delivery = handler.clone();
            async move {
                let ack = item.ack.take();
                delivery.deliver_once(item, ack).await;
            }
        },
    );
    let Some(queue) = queue else {
        return Ok((Outbox::Local(lanes), tasks));
    };
    let feed_lanes = lanes;
    let feed = delivery.clone();
    tasks.push(spawn_consumers(
        queue.clone(),
        stop.clone(),
        move |bytes: Vec<u8>, ack: StreamAck| {
            let lanes = feed_lanes.clone();
            let delivery = feed.clone();
            async move {
                let item = delivery
                    .store
                    .open(OUTBOX_PAYLOAD, &bytes)
                    .and_then(|plain| {
                        serde_json::from_slice::<OutboxItem>(&plain)
                            .map_err(|e| StoreError::Corrupt(e.to_string()))
                    });
                match item {
                    Ok(mut item) => {
                        item.ack = Some(ack);
                        let key = item.message.conversation.clone();
                        if lanes.push(&key, item).await.is_err() {
                            debug!("outbox entry left for another replica");
                        }
                    }
                    Err(error) => {
                        warn!(error = %error, "unreadable outbox entry; recorded as a dead letter");
                        delivery.metrics.dead_letter("unreadable_outbox_entry");
                        let letter = DeadLetter::new(
                            "unreadable_outbox_entry",
                            "",
                            "",
                            None,
                            error.to_string(),
                            None,
                        );
                        let _ = delivery.store.push_dead_letter(letter).await;
                        ack.done();
                    }
                }
            }
        },
    ));
    let max_per_partition = queue.share_per_partition(capacity);
    Ok((
        Outbox::Durable(queue, delivery.store.clone(), max_per_partition),
        tasks,
    ))
}

struct Delivery {
    http: reqwest::Client,
    registry: ChannelRegistry,
    store: Store,
    metrics: Arc<Metrics>,
    api_bases: HashMap<Platform, String>,
    max_attempts: u32,
    rates: crate::config::SendRates,
    channel_limits: ChannelLimiter,
    chat_limits: KeyedLimiter,
    durable: bool,
}

impl Delivery {
    /// Delivers a reply unless it was delivered before (durable outbox,
    /// after a crash), then remembers it as delivered and acknowledges its
    /// outbox entry, together (one MULTI/EXEC on a single Redis node).
    /// A reply that exists once ([`OutboxItem::once`]) needs no "sent"
    /// mark: the mark would go in the transaction that deletes its only
    /// entry, so while the entry is there no mark can be, and afterwards
    /// nothing brings the reply back.
    async fn deliver_once(&self, item: OutboxItem, ack: Option<StreamAck>) {
        if !self.durable {
            self.deliver(item).await;
            if let Some(ack) = ack {
                ack.done();
            }
            return;
        }
        let key = (!item.once).then(|| sent_key(&item.reply_id));
        if let Some(key) = &key
            && let Ok(Some(_)) = self.store.get(key).await
        {
            debug!("reply already delivered before a restart; skipping");
            if let Some(ack) = ack {
                ack.done();
            }
            return;
        }
        self.deliver(item).await;
        if key.is_none() {
            // The entry's deletion is all there is to record; the queue's
            // deleter batches it with others.
            if let Some(ack) = ack {
                ack.done();
            }
            return;
        }
        // Without the mark a crash before the acknowledgement would send the
        // reply again, so insist for a while when Redis is briefly away.
        let mut wait = Duration::from_millis(50);
        for _ in 0..10 {
            // Whether the acknowledgement went with the mark.
            let written = match (self.store.as_redis(), &ack) {
                (Some(redis), Some(ack)) => {
                    let mark = key.as_deref().map(|key| crate::store::Write::Put {
                        key,
                        value: &[],
                        ttl: SENT_TTL,
                    });
                    let writes: Vec<_> = mark.into_iter().chain([ack.write()]).collect();
                    redis.commit(&writes).await.map(|()| true)
                }
                _ => match &key {
                    Some(key) => self
                        .store
                        .put(key, Vec::new(), SENT_TTL)
                        .await
                        .map(|()| false),
                    None => Ok(false),
                },
            };
            if let Ok(acknowledged) = written {
                if let Some(ack) = ack {
                    if acknowledged {
                        ack.settled();
                    } else {
                        ack.done();
                    }
                }
                return;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
        warn!("could not record a delivered reply; it may be sent again after a crash");
        if let Some(ack) = ack {
            ack.done();
        }
    }

    async fn deliver(&self, item: OutboxItem) {
        let conversation = item.message.conversation.clone();
        let Some(channel) = self.registry.get(conversation.channel.as_str()) else {
            self.dead_letter(
                &item.message,
                "send_failed:unknown_channel",
                "channel no longer configured",
            )
            .await;
            return;
        };
        let Some(message) = self.apply_window(&channel, item).await else {
            return;
        };
        let requests = match channel.adapter.render(&message) {
            Ok(requests) => requests,
            Err(error) => {
                warn!(channel = %channel.id, error = %error, "reply could not be rendered");
                self.dead_letter(&message, "send_failed:render", &error.to_string())
                    .await;
                return;
            }
        };
        let platform = channel.platform;
        let chat_key = conversation.to_string();
        for request in requests {
            self.channel_limits
                .acquire(
                    channel.id.as_str(),
                    channel_rate(self.rates.for_platform(platform)),
                )
                .await;
            self.chat_limits
                .acquire(
                    &chat_key,
                    chat_rate(platform, &conversation.chat, &self.rates),
                )
                .await;
            // One span per send (exported as a trace span with `otel`).
            let span = tracing::info_span!(
                "send",
                otel.kind = "client",
                platform = platform.as_str(),
                channel = %channel.id,
            );
            let sent = self
                .send_with_retries(&channel, &request)
                .instrument(span)
                .await;
            if let Err(failure) = sent {
                let reason = match failure {
                    SendFailure::OutsideWindow { .. } => "outside_window",
                    SendFailure::RecipientUnreachable { .. } => "send_failed:recipient_unreachable",
                    SendFailure::BadCredentials { .. } => "send_failed:bad_credentials",
                    SendFailure::Permanent { .. } => "send_failed:permanent",
                    SendFailure::Transient { .. } => "send_failed:transient",
                    SendFailure::RetryAfter { .. } => "send_failed:rate_limited",
                };
                warn!(
                    channel = %channel.id,
                    platform = platform.as_str(),
                    class = failure.label(),
                    reason = failure.reason(),
                    "reply not delivered"
                );
                self.dead_letter(&message, reason, failure.reason()).await;
                // The rest of this reply would read oddly without its start.
                return;
            }
        }
    }

    /// Enforces the 24-hour window: tags or templates the message when the
    /// channel configured one, else records why it was not sent.
    async fn apply_window(&self, channel: &Channel, item: OutboxItem) -> Option<OutboundMessage> {
        let mut message = item.message;
        if !matches!(channel.platform, Platform::Messenger | Platform::WhatsApp) {
            return Some(message);
        }
        // Typing indicators and read marks are not messages.
        if matches!(
            message.body,
            OutboundBody::Typing | OutboundBody::MarkRead { .. }
        ) {
            return Some(message);
        }
        let open = item
            .last_customer_ms
            .is_some_and(|last| now_ms().saturating_sub(last) < REPLY_WINDOW_MS);
        if open
            || matches!(message.body, OutboundBody::Template { .. })
            || message.message_tag.is_some()
        {
            return Some(message);
        }
        match (
            channel.platform,
            &channel.outside_window_tag,
            &channel.outside_window_template,
        ) {
            (Platform::Messenger, Some(tag), _) => {
                message.message_tag = Some(tag.clone());
                Some(message)
            }
            (Platform::WhatsApp, _, Some(template)) => {
                message.body = OutboundBody::Template {
                    name: template.name.clone(),
                    language: template.language.clone(),
                    parameters: Vec::new(),
                };
                Some(message)
            }
            _ => {
                self.dead_letter(
                    &message,
                    "outside_window",
                    "more than 24 hours since the customer's last message and no tag or template is configured",
                )
                .await;
                None
            }
        }
    }

    async fn send_with_retries(
        &self,
        channel: &Channel,
        request: &PlatformRequest,
    ) -> Result<(), SendFailure> {
        let platform = channel.platform.as_str();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failure = match self.send_once(channel, request).await {
                SendOutcome::Delivered { message_id } => {
                    self.metrics
                        .sends
                        .get_or_create(&PlatformResult {
                            platform,
                            result: "delivered",
                        })
                        .inc();
                    debug!(channel = %channel.id, ?message_id, "sent");
                    return Ok(());
                }
                SendOutcome::Failed(failure) => failure,
            };
            self.metrics
                .sends
                .get_or_create(&PlatformResult {
                    platform,
                    result: failure.label(),
                })
                .inc();
            let wait = match &failure {
                SendFailure::RetryAfter { after, .. } if *after <= MAX_RETRY_AFTER => *after,
                SendFailure::Transient { .. } => backoff(attempt),
                _ => return Err(failure),
            };
            if attempt >= self.max_attempts {
                return Err(failure);
            }
            debug!(channel = %channel.id, attempt, wait_ms = wait.as_millis() as u64, class = failure.label(), "retrying send");
            tokio::time::sleep(wait).await;
        }
    }

    async fn send_once(&self, channel: &Channel, request: &PlatformRequest) -> SendOutcome {
        let Some(base) = self.api_bases.get(&channel.platform) else {
            return SendOutcome::Failed(SendFailure::Permanent {
                code: None,
                reason: "no api base".into(),
            });
        };
        if !is_plain_path(&request.path) {
            // Adapters render paths relative to the configured API base; a
            // path that could point anywhere else is never requested.
            return SendOutcome::Failed(SendFailure::Permanent {
                code: None,
                reason: "rendered path is not a plain path below the API base".into(),
            });
        }
        let url = request.url(base);
        let method = match request.method {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Delete => reqwest::Method::DELETE,
        };
        let mut builder = self.http.request(method, url.expose_secret());
        if let Some(token) = request.bearer_token() {
            builder = builder.bearer_auth(token);
        }
        if let Some(body) = &request.body {
            match serde_json::to_vec(body) {
                Ok(bytes) => {
                    builder = builder
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(bytes);
                }
                Err(_) => {
                    return SendOutcome::Failed(SendFailure::Permanent {
                        code: None,
                        reason: "body not serialisable".into(),
                    });
                }
            }
        }
        let started = Instant::now();
        let response = builder.send().await;
        self.metrics
            .send_seconds
            .get_or_create(&PlatformLabel {
                platform: channel.platform.as_str(),
            })
            .observe(started.elapsed().as_secs_f64());
        let response = match response {
            Ok(response) => response,
            // reqwest errors can carry the URL, which holds the Telegram
            // token: log only the kind of failure.
            Err(error) => {
                let kind = if error.is_timeout() {
                    "timeout"
                } else if error.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                };
                return SendOutcome::Failed(SendFailure::Transient {
                    code: None,
                    reason: kind.into(),
                });
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.unwrap_or_default();
        channel
            .adapter
            .classify(status, retry_after.as_deref(), &body)
    }

    async fn dead_letter(&self, message: &OutboundMessage, reason: &'static str, detail: &str) {
        self.metrics.dead_letter(reason);
        let letter = DeadLetter::new(
            reason,
            message.conversation.platform.as_str(),
            message.conversation.channel.as_str(),
            Some(message.conversation.to_string()),
            detail,
            serde_json::to_value(&message.body).ok(),
        );
        if let Err(error) = self.store.push_dead_letter(letter).await {
            warn!(error = %error, reason, "could not record a dead letter");
        }
    }
}

/// True for `/segment/segment...` made of URL-safe characters only: no
/// scheme, authority, `..`, query tricks or whitespace that could move a
/// request away from the configured API base.
fn is_plain_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains("..")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~'))
}

/// Exponential backoff with full jitter: uniform in [0, min(cap, base·2^n)].
fn backoff(attempt: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << attempt.min(16));
    let ceiling = exp.min(BACKOFF_CAP);
    ceiling
        .mul_f64(fastrand::f64())
        .max(Duration::from_millis(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_paths_below_the_api_base_are_requested() {
        for ok in ["/sendMessage", "/me/messages", "/100000000000002/messages"] {
            assert!(is_plain_path(ok), "{ok}");
        }
        for bad in [
            "https://evil.example/x",
            "//evil.example/x",
            "/../x",
            "/x?y=1",
            "/a b",
            "@evil",
            "/x@evil",
            "",
        ] {
            assert!(!is_plain_path(bad), "{bad}");
        }
    }

    #[test]
    fn backoff_grows_but_stays_under_the_cap() {
        for attempt in 1..40 {
            let wait = backoff(attempt);
            assert!(wait <= BACKOFF_CAP);
            assert!(wait >= Duration::from_millis(10));
        }
    }
}
