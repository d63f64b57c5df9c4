//! Human hand-off: the record of a conversation a person has taken over,
//! the queue of such conversations, and the outbound hand-off webhook.
//!
//! A record lives under the conversation's hash tag
//! (`sb:v1:handoff:{platform:channel:chat}`, sealed like every value) and
//! holds the assistant's summary and the transcript since. The queue is
//! one index (a hash in Redis, field = digest of the conversation, value =
//! the sealed queue entry) so any replica can list it.
//!
//! Only the inbox worker that owns the conversation's lane writes a record
//! (hand-off start, customer lines, agent lines, end), so writes to one
//! record never race; the console only reads and submits control messages
//! to the inbox. Customer text is masked (`switchboard_core::guards`)
//! before it is stored.
//!
//! The hand-off webhook is at-least-once: with Redis each delivery is
//! scheduled in the store (`sb:v1:handoff-hooks`, a sorted set by due time,
//! the sealed body beside it) and a courier on every replica claims due ones
//! with a lease, so a delivery survives the replica that scheduled it. With
//! the memory store it is retried from memory (nothing else survives a
//! restart there either). Each payload carries a `delivery` id for the help
//! desk to drop repeats.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use switchboard_core::assistant::HandoffSummary;
use switchboard_core::state::{HandoffReason, Speaker};
use switchboard_model::{ConversationKey, EventKind, InboundEvent, MessageContent};
use tracing::{info, warn};

use crate::config::HandoffSettings;
use crate::metrics::Metrics;
use crate::store::{RedisConnection, Store, StoreError};

/// A hand-off nobody ends is forgotten after this.
const RECORD_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Transcript lines kept in one record; the oldest go first.
const MAX_LINES: usize = 500;
const INDEX_KEY: &str = "sb:v1:handoffs";
const INDEX_ENTRY: &str = "sb:v1:handoff-entry";
const WEBHOOK_ATTEMPTS: u32 = 6;
/// Due deliveries, by time (Redis sorted set: member = delivery id).
const OUTGOING_KEY: &str = "sb:v1:handoff-hooks";
/// How long a courier may hold a delivery: longer than one attempt (the
/// client's 10 s timeout), short enough that a dead replica's claim lapses.
const CLAIM: Duration = Duration::from_secs(30);
/// A scheduled delivery outlives its last retry by far.
const PENDING_TTL: Duration = Duration::from_secs(2 * 24 * 3600);

fn pending_key(id: &str) -> String {
    format!("sb:v1:handoff-hook:{id}")
}

fn claim_key(id: &str) -> String {
    format!("sb:v1:handoff-hook-claim:{id}")
}

/// A scheduled hand-off webhook: the exact body that is signed and sent,
/// and the attempts so far.
#[derive(Serialize, Deserialize)]
struct Pending {
    body: String,
    attempts: u32,
}

/// The pause before attempt `attempts + 1`: 0.5 s doubling to 30 s, plus
/// up to a quarter of jitter.
fn backoff(attempts: u32) -> Duration {
    let base = Duration::from_millis(500)
        .saturating_mul(1 << attempts.min(6))
        .min(Duration::from_secs(30));
    let quarter = u64::try_from(base.as_millis() / 4).unwrap_or(0);
    base + Duration::from_millis(fastrand::u64(0..=quarter))
}
/// The header the outbound hand-off webhook is signed in, and the inbound
/// agent-reply API accepts.
pub const SIGNATURE_HEADER: &str = "X-Switchboard-Signature-256";

pub fn record_key(conversation: &ConversationKey) -> String {
    format!("sb:v1:handoff:{{{conversation}}}")
}

/// One line of a hand-off: customer, assistant or agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub at_ms: i64,
    /// `customer`, `assistant` or `agent`.
    pub from: String,
    /// The agent's token name, for agent lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub text: String,
    /// Control-message id of an agent line, so a replayed reply is not
    /// written twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// What the queue shows about a waiting conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub conversation: String,
    pub platform: String,
    pub channel: String,
    pub started_ms: i64,
    pub reason: HandoffReason,
    pub customer_name: Option<String>,
    pub last_order: Option<String>,
    /// The customer's complaint or last request, masked.
    pub complaint: Option<String>,
    pub linked_account: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffRecord {
    pub entry: QueueEntry,
    /// When the customer last wrote (platform clock), for the 24-hour window.
    pub last_customer_ms: Option<i64>,
    pub transcript: Vec<Line>,
    /// Bumped on every change; the live view sends only changes.
    pub version: u64,
}

/// The customer's words in an event, for the transcript.
pub fn customer_text(event: &InboundEvent) -> Option<String> {
    match &event.kind {
        EventKind::Message(message) | EventKind::Edited(message) => match &message.content {
            MessageContent::Text { text, .. } => Some(text.clone()),
            MessageContent::Media(media) => Some(
                media
                    .caption
                    .clone()
                    .unwrap_or_else(|| "[attachment]".to_owned()),
            ),
            _ => Some("[message]".to_owned()),
        },
        EventKind::Payload(payload) => Some(
            payload
                .title
                .clone()
                .unwrap_or_else(|| "[button]".to_owned()),
        ),
        _ => None,
    }
}

/// Names a customer line by its event, without the event id itself (ids
/// can encode phone numbers), so a replayed event adds no second line.
pub fn line_id(event: &InboundEvent) -> String {
    use sha2::Digest;
    let name = format!("{}:{}:{}", event.platform, event.channel, event.event_id);
    format!(
        "event:{}",
        hex::encode(&sha2::Sha256::digest(name.as_bytes())[..16])
    )
}

pub fn mask(text: &str) -> String {
    let masked = switchboard_core::guards::mask_sensitive(text).text;
    switchboard_core::guards::redact_pii(&masked).into_owned()
}

fn speaker(from: Speaker) -> &'static str {
    match from {
        Speaker::Customer => "customer",
        Speaker::Assistant => "assistant",
    }
}

/// The queue index: in-process with the memory store, a Redis hash with
/// the Redis store (every replica sees the same queue).
enum Index {
    Local(Mutex<BTreeMap<String, Vec<u8>>>),
    Redis {
        conn: RedisConnection,
        key: String,
        timeout: Duration,
    },
}

fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

impl Index {
    async fn put(&self, field: &str, value: Vec<u8>) -> Result<(), StoreError> {
        match self {
            Index::Local(map) => {
                if let Ok(mut map) = map.lock() {
                    map.insert(field.to_owned(), value);
                }
                Ok(())
            }
            Index::Redis { conn, key, timeout } => {
                let mut command = redis::cmd("HSET");
                command.arg(key).arg(field).arg(value);
                run::<i64>(conn, *timeout, &command).await.map(|_| ())
            }
        }
    }

    async fn remove(&self, field: &str) -> Result<(), StoreError> {
        match self {
            Index::Local(map) => {
                if let Ok(mut map) = map.lock() {
                    map.remove(field);
                }
                Ok(())
            }
            Index::Redis { conn, key, timeout } => {
                let mut command = redis::cmd("HDEL");
                command.arg(key).arg(field);
                run::<i64>(conn, *timeout, &command).await.map(|_| ())
            }
        }
    }

    async fn all(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        match self {
            Index::Local(map) => Ok(map
                .lock()
                .map(|map| map.values().cloned().collect())
                .unwrap_or_default()),
            Index::Redis { conn, key, timeout } => {
                let mut command = redis::cmd("HGETALL");
                command.arg(key);
                let pairs = run::<Vec<(String, Vec<u8>)>>(conn, *timeout, &command).await?;
                Ok(pairs.into_iter().map(|(_, v)| v).collect())
            }
        }
    }
}

async fn run<T: redis::FromRedisValue>(
    conn: &RedisConnection,
    timeout: Duration,
    command: &redis::Cmd,
) -> Result<T, StoreError> {
    let mut conn = conn.clone();
    match tokio::time::timeout(timeout, command.query_async::<T>(&mut conn)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(unavailable(format!("hand-off index: {error}"))),
        Err(_) => Err(unavailable("hand-off index: timed out")),
    }
}

fn field(conversation: &ConversationKey) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(conversation.to_string().as_bytes())[..12])
}

struct Webhook {
    url: String,
    secret: SecretString,
    client: reqwest::Client,
}

/// Hand-off records, the queue and the hand-off webhook.
pub struct HandoffDesk {
    store: Store,
    index: Index,
    webhook: Option<Arc<Webhook>>,
    /// Redis: the schedule of webhook deliveries. `None` on the memory
    /// store, where deliveries are retried from memory.
    outgoing: Option<Outgoing>,
    metrics: Arc<Metrics>,
}

struct Outgoing {
    conn: RedisConnection,
    key: String,
    timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error("[handoff] webhook_url needs webhook_secret")]
    MissingSecret,
    #[error("cannot build the hand-off webhook client")]
    Client,
}

impl HandoffDesk {
    pub fn new(
        store: &Store,
        settings: &HandoffSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Self, DeskError> {
        let index = match store.as_redis() {
            Some(redis) => Index::Redis {
                conn: redis.connection(),
                key: redis.key(INDEX_KEY),
                timeout: redis.timeout(),
            },
            None => Index::Local(Mutex::new(BTreeMap::new())),
        };
        let outgoing = store.as_redis().map(|redis| Outgoing {
            conn: redis.connection(),
            key: redis.key(OUTGOING_KEY),
            timeout: redis.timeout(),
        });
        let webhook = match &settings.webhook_url {
            Some(url) => {
                let secret = settings
                    .webhook_secret
                    .clone()
                    .ok_or(DeskError::MissingSecret)?;
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|_| DeskError::Client)?;
                Some(Arc::new(Webhook {
                    url: url.clone(),
                    secret,
                    client,
                }))
            }
            None => None,
        };
        Ok(Self {
            store: store.clone(),
            index,
            webhook,
            outgoing,
            metrics,
        })
    }

    /// The secret inbound agent replies may be signed with.
    pub fn webhook_secret(&self) -> Option<&SecretString> {
        self.webhook.as_ref().map(|w| &w.secret)
    }

    /// Starts a hand-off: stores the record, queues it, notifies the help
    /// desk. Called by the conversation's own lane.
    pub async fn open(
        &self,
        event: &InboundEvent,
        summary: &HandoffSummary,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let last_customer_ms = event
            .is_from_customer()
            .then_some(if event.timestamp_ms > 0 {
                event.timestamp_ms
            } else {
                now_ms
            });
        self.open_for(&event.conversation, last_customer_ms, summary, now_ms)
            .await
    }

    /// [`HandoffDesk::open`] without an event: a person took the
    /// conversation over. `last_customer_ms` decides the reply window.
    pub async fn open_for(
        &self,
        conversation: &ConversationKey,
        last_customer_ms: Option<i64>,
        summary: &HandoffSummary,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let transcript: Vec<Line> = summary
            .transcript
            .iter()
            .map(|line| Line {
                at_ms: line.at_ms,
                from: speaker(line.from).to_owned(),
                agent: None,
                text: mask(&line.text),
                id: None,
            })
            .collect();
        // The complaint is the customer's longest recent line: the last
        // one is often just "yes" to the offer of a person.
        let complaint = summary
            .transcript
            .iter()
            .rev()
            .filter(|line| line.from == Speaker::Customer)
            .take(4)
            .max_by_key(|line| line.text.chars().count())
            .map(|line| mask(&line.text));
        let entry = QueueEntry {
            conversation: conversation.to_string(),
            platform: conversation.platform.as_str().to_owned(),
            channel: conversation.channel.to_string(),
            started_ms: now_ms,
            reason: summary.reason,
            customer_name: summary.customer_name.clone(),
            last_order: summary.last_order.clone(),
            complaint,
            linked_account: summary.linked_account.is_some(),
        };
        let record = HandoffRecord {
            entry: entry.clone(),
            last_customer_ms,
            transcript,
            version: 1,
        };
        self.save(conversation, &record).await?;
        if let Some(webhook) = &self.webhook {
            let delivery = random_id();
            let payload = serde_json::json!({
                "event": "handoff.started",
                "delivery": delivery,
                "handoff": entry,
                "transcript": record.transcript,
                "reply_path": format!("/admin/handoffs/{}/reply", conversation),
            });
            let body = payload.to_string();
            match &self.outgoing {
                Some(outgoing) => self.schedule(outgoing, &delivery, body).await?,
                None => {
                    tokio::spawn(deliver(webhook.clone(), body, self.metrics.clone()));
                }
            }
        }
        info!(platform = conversation.platform.as_str(), channel = %conversation.channel, reason = ?summary.reason, "conversation handed off to a person");
        self.metrics.handoffs.inc();
        Ok(())
    }

    async fn save(
        &self,
        conversation: &ConversationKey,
        record: &HandoffRecord,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store
            .put(&record_key(conversation), bytes, RECORD_TTL)
            .await?;
        let entry =
            serde_json::to_vec(&record.entry).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let sealed = self.store.seal(INDEX_ENTRY, &entry)?;
        self.index.put(&field(conversation), sealed).await
    }

    pub async fn record(
        &self,
        conversation: &ConversationKey,
    ) -> Result<Option<HandoffRecord>, StoreError> {
        match self.store.get(&record_key(conversation)).await? {
            Some(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            None => Ok(None),
        }
    }

    /// Adds a line to an open hand-off; `None` when there is none. A line
    /// whose id is already there is not added again.
    pub async fn append(
        &self,
        conversation: &ConversationKey,
        line: Line,
        customer_at_ms: Option<i64>,
    ) -> Result<Option<HandoffRecord>, StoreError> {
        let Some(mut record) = self.record(conversation).await? else {
            return Ok(None);
        };
        if line.id.is_some() && record.transcript.iter().any(|l| l.id == line.id) {
            return Ok(Some(record));
        }
        record.transcript.push(line);
        if record.transcript.len() > MAX_LINES {
            let excess = record.transcript.len() - MAX_LINES;
            record.transcript.drain(..excess);
        }
        if customer_at_ms.is_some() {
            record.last_customer_ms = customer_at_ms;
        }
        record.version += 1;
        self.save(conversation, &record).await?;
        Ok(Some(record))
    }

    /// Ends a hand-off: the record and its queue entry go.
    pub async fn close(&self, conversation: &ConversationKey) -> Result<(), StoreError> {
        self.store.delete(&record_key(conversation)).await?;
        self.index.remove(&field(conversation)).await
    }

    /// Every conversation waiting for a person, longest waiting first.
    pub async fn queue(&self) -> Result<Vec<QueueEntry>, StoreError> {
        let mut entries: Vec<QueueEntry> = self
            .index
            .all()
            .await?
            .into_iter()
            .filter_map(|sealed| {
                let plain = self.store.open(INDEX_ENTRY, &sealed).ok()?;
                serde_json::from_slice(&plain).ok()
            })
            .collect();
        // A record nobody closed expires; its queue entry goes with it.
        let oldest = crate::sender::now_ms()
            .saturating_sub(i64::try_from(RECORD_TTL.as_millis()).unwrap_or(i64::MAX));
        entries.retain(|e| e.started_ms > oldest);
        entries.sort_by_key(|e| e.started_ms);
        Ok(entries)
    }
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // Only a repeat-detection id: uniqueness, not secrecy, matters.
        bytes = fastrand::u128(..).to_le_bytes();
    }
    hex::encode(bytes)
}

impl HandoffDesk {
    async fn schedule(
        &self,
        outgoing: &Outgoing,
        delivery: &str,
        body: String,
    ) -> Result<(), StoreError> {
        let pending = serde_json::to_vec(&Pending { body, attempts: 0 })
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store
            .put(&pending_key(delivery), pending, PENDING_TTL)
            .await?;
        let mut command = redis::cmd("ZADD");
        command
            .arg(&outgoing.key)
            .arg(crate::sender::now_ms())
            .arg(delivery);
        run::<i64>(&outgoing.conn, outgoing.timeout, &command)
            .await
            .map(|_| ())
    }

    /// One round of the courier: attempts every due delivery this replica
    /// can claim. Returns how many were attempted.
    pub async fn deliver_due(&self) -> Result<usize, StoreError> {
        let (Some(outgoing), Some(webhook)) = (&self.outgoing, &self.webhook) else {
            return Ok(0);
        };
        let mut command = redis::cmd("ZRANGEBYSCORE");
        command
            .arg(&outgoing.key)
            .arg("-inf")
            .arg(crate::sender::now_ms())
            .arg("LIMIT")
            .arg(0)
            .arg(16);
        let due = run::<Vec<String>>(&outgoing.conn, outgoing.timeout, &command).await?;
        let mut attempted = 0;
        for delivery in due {
            // Another replica's courier may hold it (or have just sent it).
            if !self
                .store
                .first_sighting(&claim_key(&delivery), CLAIM)
                .await?
            {
                continue;
            }
            attempted += 1;
            let result = self.attempt(outgoing, webhook, &delivery).await;
            // Released either way: it is rescheduled or gone.
            self.store.delete(&claim_key(&delivery)).await?;
            result?;
        }
        Ok(attempted)
    }

    async fn attempt(
        &self,
        outgoing: &Outgoing,
        webhook: &Webhook,
        delivery: &str,
    ) -> Result<(), StoreError> {
        let pending = match self.store.get(&pending_key(delivery)).await? {
            Some(bytes) => serde_json::from_slice::<Pending>(&bytes).ok(),
            None => None,
        };
        let Some(mut pending) = pending else {
            // Expired or unreadable: nothing left to send.
            return self.unschedule(outgoing, delivery).await;
        };
        pending.attempts += 1;
        if post(webhook, pending.body.as_bytes(), pending.attempts).await {
            return self.unschedule(outgoing, delivery).await;
        }
        if pending.attempts >= WEBHOOK_ATTEMPTS {
            self.metrics.dead_letter("handoff_webhook_failed");
            warn!(attempts = pending.attempts, "hand-off webhook gave up");
            return self.unschedule(outgoing, delivery).await;
        }
        let due = crate::sender::now_ms()
            + i64::try_from(backoff(pending.attempts).as_millis()).unwrap_or(i64::MAX / 2);
        let bytes = serde_json::to_vec(&pending).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store
            .put(&pending_key(delivery), bytes, PENDING_TTL)
            .await?;
        let mut command = redis::cmd("ZADD");
        command.arg(&outgoing.key).arg(due).arg(delivery);
        run::<i64>(&outgoing.conn, outgoing.timeout, &command)
            .await
            .map(|_| ())
    }

    async fn unschedule(&self, outgoing: &Outgoing, delivery: &str) -> Result<(), StoreError> {
        let mut command = redis::cmd("ZREM");
        command.arg(&outgoing.key).arg(delivery);
        run::<i64>(&outgoing.conn, outgoing.timeout, &command).await?;
        self.store.delete(&pending_key(delivery)).await
    }
}

/// Runs the courier until `stop` changes: with Redis and a webhook, every
/// replica looks for due hand-off deliveries once a second.
pub fn spawn_courier(
    desk: Arc<HandoffDesk>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    if desk.outgoing.is_none() || desk.webhook.is_none() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut failing = false;
        loop {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => return,
            }
            match desk.deliver_due().await {
                Ok(_) => failing = false,
                Err(error) => {
                    if !failing {
                        warn!(error = %error, "hand-off webhooks cannot be read from the store; retrying");
                    }
                    failing = true;
                }
            }
        }
    }))
}

/// One signed POST of `body` to the help desk; true when it took it.
async fn post(webhook: &Webhook, body: &[u8], attempt: u32) -> bool {
    let signature = switchboard_meta::sign(webhook.secret.expose_secret(), body);
    let sent = webhook
        .client
        .post(&webhook.url)
        .header("Content-Type", "application/json")
        .header(SIGNATURE_HEADER, &signature)
        .body(body.to_vec())
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => true,
        Ok(response) => {
            warn!(
                attempt,
                status = response.status().as_u16(),
                "hand-off webhook refused; will retry"
            );
            false
        }
        Err(error) => {
            // reqwest errors carry the URL; keep only the kind.
            warn!(
                attempt,
                timeout = error.is_timeout(),
                connect = error.is_connect(),
                "hand-off webhook failed; will retry"
            );
            false
        }
    }
}

/// Memory store: posts the hand-off with retries from memory.
async fn deliver(webhook: Arc<Webhook>, body: String, metrics: Arc<Metrics>) {
    for attempt in 1..=WEBHOOK_ATTEMPTS {
        if post(&webhook, body.as_bytes(), attempt).await {
            return;
        }
        if attempt < WEBHOOK_ATTEMPTS {
            tokio::time::sleep(backoff(attempt)).await;
        }
    }
    metrics.dead_letter("handoff_webhook_failed");
    warn!("hand-off webhook gave up");
}

/// Whether `signature` is `sha256=<hex>` of `body` under `secret`
/// (constant-time).
pub fn signature_valid(secret: &SecretString, body: &[u8], signature: &str) -> bool {
    use subtle::ConstantTimeEq;
    let expected = switchboard_meta::sign(secret.expose_secret(), body);
    expected.len() == signature.len()
        && bool::from(expected.as_bytes().ct_eq(signature.trim().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_checked_over_the_exact_body() {
        let secret = SecretString::from("hook-secret");
        let body = br#"{"text":"hi"}"#;
        let good = switchboard_meta::sign("hook-secret", body);
        assert!(signature_valid(&secret, body, &good));
        assert!(!signature_valid(&secret, br#"{"text":"hi!"}"#, &good));
        assert!(!signature_valid(
            &secret,
            body,
            &switchboard_meta::sign("other", body)
        ));
    }

    fn desk() -> HandoffDesk {
        HandoffDesk::new(
            &Store::memory(),
            &HandoffSettings::default(),
            Arc::new(Metrics::new()),
        )
        .unwrap()
    }

    fn record(conversation: &ConversationKey, started_ms: i64) -> HandoffRecord {
        HandoffRecord {
            entry: QueueEntry {
                conversation: conversation.to_string(),
                platform: conversation.platform.as_str().to_owned(),
                channel: conversation.channel.to_string(),
                started_ms,
                reason: HandoffReason::Requested,
                customer_name: Some("Ada".to_owned()),
                last_order: None,
                complaint: None,
                linked_account: false,
            },
            last_customer_ms: Some(started_ms),
            transcript: Vec::new(),
            version: 1,
        }
    }

    fn line(id: &str) -> Line {
        Line {
            at_ms: 1,
            from: "agent".to_owned(),
            agent: Some("zoe".to_owned()),
            text: "hello".to_owned(),
            id: Some(id.to_owned()),
        }
    }

    #[tokio::test]
    async fn a_replayed_line_is_written_once_and_closing_empties_the_queue() {
        let desk = desk();
        let now = crate::sender::now_ms();
        let first = ConversationKey::parse("telegram:tg:1").unwrap();
        let second = ConversationKey::parse("whatsapp:wa:2").unwrap();
        desk.save(&second, &record(&second, now)).await.unwrap();
        desk.save(&first, &record(&first, now - 1000))
            .await
            .unwrap();
        let queue = desk.queue().await.unwrap();
        let order: Vec<&str> = queue.iter().map(|e| e.conversation.as_str()).collect();
        assert_eq!(
            order,
            ["telegram:tg:1", "whatsapp:wa:2"],
            "longest waiting first"
        );

        desk.append(&first, line("a"), None).await.unwrap();
        let again = desk.append(&first, line("a"), None).await.unwrap().unwrap();
        assert_eq!(again.transcript.len(), 1);
        assert_eq!(again.version, 2);

        desk.close(&first).await.unwrap();
        assert!(desk.record(&first).await.unwrap().is_none());
        assert!(
            desk.append(&first, line("b"), None)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(desk.queue().await.unwrap().len(), 1);
    }

    #[test]
    fn a_webhook_url_without_a_secret_is_refused() {
        let settings = HandoffSettings {
            webhook_url: Some("https://helpdesk.invalid/hook".to_owned()),
            ..HandoffSettings::default()
        };
        assert!(matches!(
            HandoffDesk::new(&Store::memory(), &settings, Arc::new(Metrics::new())),
            Err(DeskError::MissingSecret)
        ));
    }

    #[test]
    fn card_numbers_are_masked_in_stored_lines() {
        let masked = mask("my card is 4111 1111 1111 1111 thanks");
        assert!(!masked.contains("4111 1111 1111 1111"), "{masked}");
    }
}
