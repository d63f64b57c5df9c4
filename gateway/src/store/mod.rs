//! Storage behind one interface: dedupe keys, conversation state, one-time
//! code records, dead letters. Backends are siblings (`memory.rs`,
//! `redis.rs`) selected by `[store] url`; the same conformance tests run
//! against each (memory, a private redis-server, a 3-master Redis Cluster).
//!
//! Keys are namespaced `sb:v1:{kind}:...` and every value has a TTL except
//! dead letters, which an operator clears. A conversation's keys carry its
//! `{...}` hash tag so they share one Redis Cluster slot. The Redis backend
//! seals values at rest (crypto.rs); docs/REDIS.md lists every key.

pub mod crypto;
mod memory;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use switchboard_model::ConversationKey;

use crate::config::StoreSettings;
pub use memory::MemoryStore;
pub use redis::{RedisConnection, RedisStore, Write};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Most dead letters kept; the oldest go first.
pub const MAX_DEAD_LETTERS: usize = 10_000;

/// The one list of dead letters, newest first. No TTL: an operator clears it.
pub const DEAD_LETTERS_KEY: &str = "sb:v1:dead-letters";

const DEDUPE_PREFIX: &str = "sb:v1:seen:";

/// Done marks: an inbox entry was handled (its state and replies written).
/// Followed by a 128-bit hex digest naming the entry.
pub const DONE_PREFIX: &str = "sb:v1:done:";

/// Channels registered at run time: one hash, field = channel id, value =
/// the sealed record, plus [`CHANNELS_VERSION_FIELD`]. No TTL: an operator
/// removes a channel. One key, so one cluster slot and atomic updates.
pub const CHANNELS_KEY: &str = "sb:v1:channels";

/// The hash field counting changes to [`CHANNELS_KEY`]; replicas poll it
/// and reload the channels only when it moved. `#` never occurs in a
/// channel id, so it cannot collide with one.
pub const CHANNELS_VERSION_FIELD: &str = "#version";

/// Something the gateway acknowledged but could not handle or deliver. Never
/// holds secrets; message text in it is masked by the assistant's guards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: String,
    pub at_ms: i64,
    /// `unparseable_webhook`, `unclaimed_entry`, `send_failed:<class>`,
    /// `outside_window`, `delivery_failed`, `processing_failed`.
    pub reason: String,
    pub platform: String,
    pub channel: String,
    pub conversation: Option<String>,
    /// Human-readable detail (platform error text, parse error).
    pub detail: String,
    /// The event or message concerned, where there is one.
    pub payload: Option<serde_json::Value>,
}

impl DeadLetter {
    /// A new letter, stamped now with a unique id.
    pub fn new(
        reason: &str,
        platform: &str,
        channel: &str,
        conversation: Option<String>,
        detail: impl Into<String>,
        payload: Option<serde_json::Value>,
    ) -> Self {
        let at_ms = crate::sender::now_ms();
        Self {
            id: format!("dl-{at_ms}-{:016x}", fastrand::u64(..)),
            at_ms,
            reason: reason.to_owned(),
            platform: platform.to_owned(),
            channel: channel.to_owned(),
            conversation,
            detail: detail.into(),
            payload,
        }
    }
}

/// The event id is hashed: ids such as WhatsApp's `wamid` encode the user's
/// phone number, and a fixed length keeps keys small.
pub fn dedupe_key(platform: &str, channel: &str, event_id: &str) -> String {
    let digest = Sha256::digest(event_id.as_bytes());
    format!(
        "{DEDUPE_PREFIX}{platform}:{channel}:{}",
        hex::encode(&digest[..16])
    )
}

/// Dedupe marks hold nothing, so they are not sealed.
pub fn is_dedupe_key(key: &str) -> bool {
    key.starts_with(DEDUPE_PREFIX)
}

/// Done marks hold nothing either.
pub fn is_done_key(key: &str) -> bool {
    key.starts_with(DONE_PREFIX)
}

pub fn state_key(conversation: &ConversationKey) -> String {
    // The `{...}` hash tag keeps one conversation's keys in one cluster slot.
    format!("{STATE_PREFIX}{{{conversation}}}")
}

const STATE_PREFIX: &str = "sb:v1:state:";

/// A conversation state's key (the memory store holds these to a budget).
pub fn is_state_key(key: &str) -> bool {
    key.starts_with(STATE_PREFIX)
}

/// What an inbox entry is sealed under (its associated data).
pub const INBOX_ENTRY: &str = "sb:v1:inbox-entry";
/// What an outbox entry is sealed under.
pub const OUTBOX_ENTRY: &str = "sb:v1:outbox-entry";

/// Values LZ4 packs before sealing: conversation states and queue entries,
/// JSON that makes most of what Redis holds and writes to its append-only
/// file (see `redis::pack`).
pub fn is_packed_kind(key: &str) -> bool {
    is_state_key(key) || key == INBOX_ENTRY || key == OUTBOX_ENTRY
}

pub fn link_code_key(account_id: &str) -> String {
    format!("sb:v1:otp:{account_id}")
}

pub fn pending_link_key(conversation: &ConversationKey) -> String {
    format!("sb:v1:otp-pending:{{{conversation}}}")
}

/// Counts codes sent to one account in the current window.
pub fn code_sends_account_key(account_id: &str) -> String {
    format!("sb:v1:otp-sends:account:{account_id}")
}

/// Counts codes one conversation asked for in the current window.
pub fn code_sends_conversation_key(conversation: &ConversationKey) -> String {
    format!("sb:v1:otp-sends:conversation:{{{conversation}}}")
}

/// Every key that belongs to one conversation alone (all in its hash-tag
/// slot), deleted by [`Store::erase_conversation`]. A new per-conversation
/// key belongs here too.
pub fn conversation_keys(conversation: &ConversationKey) -> Vec<String> {
    vec![
        state_key(conversation),
        pending_link_key(conversation),
        code_sends_conversation_key(conversation),
    ]
}

/// The configured store. An enum rather than a trait object: two backends,
/// static dispatch, and `grep` finds every implementation.
#[derive(Debug, Clone)]
pub enum Store {
    Memory(Arc<MemoryStore>),
    Redis(Arc<RedisStore>),
}

impl Store {
    pub fn memory() -> Store {
        Store::Memory(Arc::new(MemoryStore::default()))
    }

    /// The store `settings.url` names: `memory`, or Redis in any of the
    /// forms [`redis::parse_url`] takes. Fails when Redis does not answer.
    pub async fn connect(settings: &StoreSettings) -> StoreResult<Store> {
        if settings.url.trim() == "memory" {
            return Ok(Store::memory());
        }
        Ok(Store::Redis(Arc::new(RedisStore::connect(settings).await?)))
    }

    /// The Redis backend, for the streams that live beside the store.
    pub fn as_redis(&self) -> Option<&Arc<RedisStore>> {
        match self {
            Store::Redis(store) => Some(store),
            Store::Memory(_) => None,
        }
    }

    /// Seals bytes kept outside the key/value methods (stream entries);
    /// `associated` binds them to one use, so they cannot be replayed as
    /// another kind of value. Unchanged in memory and with
    /// `allow_plaintext`.
    pub fn seal(&self, associated: &str, plaintext: &[u8]) -> StoreResult<Vec<u8>> {
        match self {
            Store::Memory(_) => Ok(plaintext.to_vec()),
            Store::Redis(store) => store.seal_packed(associated, plaintext),
        }
    }

    /// Opens bytes sealed by [`Store::seal`] with the same `associated`.
    pub fn open(&self, associated: &str, stored: &[u8]) -> StoreResult<Vec<u8>> {
        match self {
            Store::Memory(_) => Ok(stored.to_vec()),
            Store::Redis(store) => store.open_packed(associated, stored),
        }
    }

    /// Records `key`; true when it was new (not seen within its TTL). Atomic:
    /// of two concurrent calls with one key exactly one gets `true`.
    pub async fn first_sighting(&self, key: &str, ttl: Duration) -> StoreResult<bool> {
        match self {
            Store::Memory(store) => Ok(store.insert_if_absent(key, Vec::new(), ttl)),
            Store::Redis(store) => store.first_sighting(key, ttl).await,
        }
    }

    /// Adds one to the counter `key` and returns the new count. The first
    /// increment starts a window of `window`; the counter disappears when
    /// it ends (a fixed window, not a sliding one). Atomic across replicas.
    pub async fn count_in_window(&self, key: &str, window: Duration) -> StoreResult<u64> {
        match self {
            Store::Memory(store) => Ok(store.count_in_window(key, window)),
            Store::Redis(store) => store.count_in_window(key, window).await,
        }
    }

    pub async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        match self {
            Store::Memory(store) => Ok(store.get(key)),
            Store::Redis(store) => store.get(key).await,
        }
    }

    pub async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> StoreResult<()> {
        match self {
            Store::Memory(store) => {
                store.put(key, value, ttl);
                Ok(())
            }
            Store::Redis(store) => store.put(key, &value, ttl).await,
        }
    }

    pub async fn delete(&self, key: &str) -> StoreResult<()> {
        match self {
            Store::Memory(store) => {
                store.delete(key);
                Ok(())
            }
            Store::Redis(store) => store.delete(key).await,
        }
    }

    pub async fn push_dead_letter(&self, letter: DeadLetter) -> StoreResult<()> {
        match self {
            Store::Memory(store) => {
                store.push_dead_letter(letter);
                Ok(())
            }
            Store::Redis(store) => store.push_dead_letter(&letter).await,
        }
    }

    /// Newest first.
    pub async fn dead_letters(&self, limit: usize) -> StoreResult<Vec<DeadLetter>> {
        match self {
            Store::Memory(store) => Ok(store.dead_letters(limit)),
            Store::Redis(store) => store.dead_letters(limit).await,
        }
    }

    pub async fn dead_letter_count(&self) -> StoreResult<usize> {
        match self {
            Store::Memory(store) => Ok(store.dead_letter_count()),
            Store::Redis(store) => store.dead_letter_count().await,
        }
    }

    /// Removes everything stored about one conversation: its own keys
    /// ([`conversation_keys`]), the link-code record of the account it was
    /// linking, and dead letters that name it.
    pub async fn erase_conversation(&self, conversation: &ConversationKey) -> StoreResult<()> {
        let name = conversation.to_string();
        match self {
            Store::Memory(store) => {
                if let Some(account) = store.get(&pending_link_key(conversation)) {
                    store.delete(&link_code_key(&String::from_utf8_lossy(&account)));
                }
                for key in conversation_keys(conversation) {
                    store.delete(&key);
                }
                store.remove_dead_letters(|letter| letter.conversation.as_deref() == Some(&name));
                Ok(())
            }
            Store::Redis(store) => store.erase_conversation(conversation).await,
        }
    }

    /// Every channel record registered at run time, with the version the
    /// set had when read (see [`Store::channels_version`]).
    pub async fn channel_records(&self) -> StoreResult<(u64, Vec<(String, Vec<u8>)>)> {
        match self {
            Store::Memory(store) => Ok(store.channel_records()),
            Store::Redis(store) => store.channel_records().await,
        }
    }

    /// A number that changes whenever a channel record is added, replaced
    /// or removed; cheap to poll.
    pub async fn channels_version(&self) -> StoreResult<u64> {
        match self {
            Store::Memory(store) => Ok(store.channels_version()),
            Store::Redis(store) => store.channels_version().await,
        }
    }

    /// Adds or replaces one channel record (sealed at rest in Redis).
    pub async fn put_channel_record(&self, id: &str, record: Vec<u8>) -> StoreResult<()> {
        match self {
            Store::Memory(store) => {
                store.put_channel_record(id, record);
                Ok(())
            }
            Store::Redis(store) => store.put_channel_record(id, &record).await,
        }
    }

    /// Removes one channel record; false when there was none.
    pub async fn delete_channel_record(&self, id: &str) -> StoreResult<bool> {
        match self {
            Store::Memory(store) => Ok(store.delete_channel_record(id)),
            Store::Redis(store) => store.delete_channel_record(id).await,
        }
    }

    pub async fn ping(&self) -> StoreResult<()> {
        match self {
            Store::Memory(_) => Ok(()),
            Store::Redis(store) => store.ping().await,
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Settings and fixtures shared by the store tests.
    use super::*;
    use crate::store::crypto::Keyring;
    use secrecy::SecretString;
    use switchboard_model::{ChannelId, ChatId, Platform};

    pub const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    pub const K2: &str = "k2:HxAbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgEAAAA=";

    pub fn keyring(entries: &[&str]) -> Option<Arc<Keyring>> {
        let entries: Vec<SecretString> = entries.iter().map(|e| SecretString::from(*e)).collect();
        Some(Arc::new(Keyring::parse(&entries).unwrap()))
    }

    /// A Redis store sealing with `keys` (plain text when empty).
    pub async fn redis_store(url: &str, prefix: &str, keys: &[&str]) -> Arc<RedisStore> {
        let mut settings = StoreSettings::new(url);
        settings.key_prefix = prefix.to_owned();
        settings.encryption = if keys.is_empty() { None } else { keyring(keys) };
        settings.allow_plaintext = keys.is_empty();
        Arc::new(RedisStore::connect(&settings).await.unwrap())
    }

    pub fn conversation(chat: i64) -> ConversationKey {
        ConversationKey::new(
            Platform::Telegram,
            ChannelId::new("tg").unwrap(),
            ChatId::Int(chat),
        )
    }

    pub fn letter(id: &str, conversation: Option<String>) -> DeadLetter {
        DeadLetter {
            id: id.into(),
            at_ms: 1,
            reason: "send_failed:permanent".into(),
            platform: "telegram".into(),
            channel: "tg".into(),
            conversation,
            detail: "x".into(),
            payload: None,
        }
    }
}

#[cfg(test)]
mod conformance {
    //! Behaviour every backend must show: memory, a private redis-server
    //! (sealed and plain) and a 3-master Redis Cluster.
    use super::test_support::*;
    use super::*;
    use switchboard_testkit::{RedisCluster, RedisServer};

    async fn check(store: Store) {
        let ttl = Duration::from_secs(60);
        assert!(store.first_sighting("k1", ttl).await.unwrap());
        assert!(!store.first_sighting("k1", ttl).await.unwrap());
        store.delete("k1").await.unwrap();
        assert!(store.first_sighting("k1", ttl).await.unwrap());
        let seen = dedupe_key("telegram", "tg", "update-1");
        assert!(store.first_sighting(&seen, ttl).await.unwrap());
        assert!(!store.first_sighting(&seen, ttl).await.unwrap());

        assert_eq!(store.get("absent").await.unwrap(), None);
        store.put("v", b"one".to_vec(), ttl).await.unwrap();
        assert_eq!(store.get("v").await.unwrap().as_deref(), Some(&b"one"[..]));
        store.put("v", b"two".to_vec(), ttl).await.unwrap();
        assert_eq!(store.get("v").await.unwrap().as_deref(), Some(&b"two"[..]));
        store
            .put("short", b"x".to_vec(), Duration::from_millis(1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(store.get("short").await.unwrap(), None);

        let sealed = store.seal("sb:v1:inbox-entry", b"event").unwrap();
        assert_eq!(store.open("sb:v1:inbox-entry", &sealed).unwrap(), b"event");

        let conv = conversation(-5);
        store
            .put(&state_key(&conv), b"{}".to_vec(), ttl)
            .await
            .unwrap();
        store
            .put(&pending_link_key(&conv), b"acct-1".to_vec(), ttl)
            .await
            .unwrap();
        store
            .put(&link_code_key("acct-1"), b"rec".to_vec(), ttl)
            .await
            .unwrap();
        store
            .put(&link_code_key("acct-2"), b"other".to_vec(), ttl)
            .await
            .unwrap();
        let d1 = letter("d1", Some(conv.to_string()));
        store.push_dead_letter(d1.clone()).await.unwrap();
        store.push_dead_letter(letter("d2", None)).await.unwrap();
        let letters = store.dead_letters(10).await.unwrap();
        assert_eq!(letters.len(), 2);
        assert_eq!(letters[0].id, "d2", "newest first");
        assert_eq!(letters[1], d1, "a letter reads back whole");
        assert_eq!(store.dead_letters(1).await.unwrap().len(), 1);
        assert_eq!(store.dead_letter_count().await.unwrap(), 2);

        store.erase_conversation(&conv).await.unwrap();
        assert_eq!(store.get(&state_key(&conv)).await.unwrap(), None);
        assert_eq!(store.get(&link_code_key("acct-1")).await.unwrap(), None);
        assert_eq!(store.get(&pending_link_key(&conv)).await.unwrap(), None);
        assert!(
            store.get(&link_code_key("acct-2")).await.unwrap().is_some(),
            "another account's record stays"
        );
        let left = store.dead_letters(10).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, "d2");
        assert_eq!(store.dead_letter_count().await.unwrap(), 1);
        store.ping().await.unwrap();

        check_channel_records(&store).await;
        check_concurrent_sightings(&store).await;
        check_counting_in_a_window(&store).await;
    }

    async fn check_counting_in_a_window(store: &Store) {
        let window = Duration::from_millis(400);
        let mut handles = Vec::new();
        for _ in 0..10 {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                store.count_in_window("counted", window).await.unwrap()
            }));
        }
        let mut counts = Vec::new();
        for handle in handles {
            counts.push(handle.await.unwrap());
        }
        counts.sort_unstable();
        assert_eq!(counts, (1..=10).collect::<Vec<u64>>(), "no count lost");
        // Later increments do not stretch the window.
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(store.count_in_window("counted", window).await.unwrap(), 11);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(
            store.count_in_window("counted", window).await.unwrap(),
            1,
            "a new window starts from one"
        );
    }

    async fn check_channel_records(store: &Store) {
        let (start, records) = store.channel_records().await.unwrap();
        assert!(records.is_empty());
        assert_eq!(store.channels_version().await.unwrap(), start);
        store
            .put_channel_record("tg-a", b"{\"a\":1}".to_vec())
            .await
            .unwrap();
        store
            .put_channel_record("wa-b", b"{\"b\":2}".to_vec())
            .await
            .unwrap();
        let after_puts = store.channels_version().await.unwrap();
        assert_ne!(after_puts, start, "a change moves the version");
        let (version, records) = store.channel_records().await.unwrap();
        assert_eq!(version, after_puts);
        assert_eq!(
            records,
            vec![
                ("tg-a".to_owned(), b"{\"a\":1}".to_vec()),
                ("wa-b".to_owned(), b"{\"b\":2}".to_vec()),
            ]
        );
        assert!(store.delete_channel_record("tg-a").await.unwrap());
        assert!(!store.delete_channel_record("tg-a").await.unwrap());
        let (version, records) = store.channel_records().await.unwrap();
        assert_ne!(version, after_puts);
        assert_eq!(records.len(), 1);
        assert!(store.delete_channel_record("wa-b").await.unwrap());
    }

    async fn check_concurrent_sightings(store: &Store) {
        let mut handles = Vec::new();
        for _ in 0..16 {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                store
                    .first_sighting("same", Duration::from_secs(60))
                    .await
                    .unwrap()
            }));
        }
        let mut firsts = 0;
        for handle in handles {
            firsts += usize::from(handle.await.unwrap());
        }
        assert_eq!(firsts, 1, "exactly one concurrent sighting is first");
    }

    #[tokio::test]
    async fn memory_store_conforms() {
        check(Store::memory()).await;
    }

    #[tokio::test]
    async fn redis_store_conforms() {
        let server = RedisServer::start();
        check(Store::Redis(redis_store(server.url(), "", &[K1]).await)).await;
    }

    /// A stream with one entry not handled yet, as the worker holds it
    /// while handling; gives the entry's id.
    async fn pending_entry(store: &RedisStore, stream: &str) -> String {
        let mut connection = store.connection();
        ::redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("d")
            .arg("event")
            .query_async(&mut connection)
            .await
            .unwrap()
    }

    /// `commit` writes state, reply, done mark and acknowledgement, and
    /// `get_pair` reads them back, on a single node and across cluster
    /// slots alike.
    async fn check_commit(store: &RedisStore) {
        let mut connection = store.connection();
        let inbox = store.key("sb:v1:inbox:{inbox-3}");
        let outbox = store.key("sb:v1:outbox:{outbox-5}");
        let id = pending_entry(store, &inbox).await;
        let state = state_key(&conversation(9));
        let ttl = Duration::from_secs(60);
        store
            .commit(&[
                Write::Put {
                    key: &state,
                    value: b"new state",
                    ttl,
                },
                Write::Append {
                    stream: &outbox,
                    payload: b"reply",
                },
                Write::Put {
                    key: "sb:v1:done:e1",
                    value: &[],
                    ttl,
                },
                Write::Ack {
                    stream: &inbox,
                    id: &id,
                },
            ])
            .await
            .unwrap();
        let (done, stored) = store.get_pair("sb:v1:done:e1", &state).await.unwrap();
        assert!(done.is_some());
        assert_eq!(stored.as_deref(), Some(&b"new state"[..]));
        assert_eq!(
            store.get_pair("sb:v1:done:e2", &state).await.unwrap().0,
            None
        );
        let (outbox_len, inbox_len): (u64, u64) = (
            ::redis::cmd("XLEN")
                .arg(&outbox)
                .query_async(&mut connection)
                .await
                .unwrap(),
            ::redis::cmd("XLEN")
                .arg(&inbox)
                .query_async(&mut connection)
                .await
                .unwrap(),
        );
        assert_eq!((outbox_len, inbox_len), (1, 0), "reply added, event gone");
    }

    #[tokio::test]
    async fn a_commit_on_one_node_is_all_or_nothing() {
        let server = RedisServer::start();
        assert!(server.is_private(), "needs its own redis-server");
        let store = redis_store(server.url(), "", &[K1]).await;
        check_commit(&store).await;

        // Out of memory, SET and XADD are refused: then the acknowledgement
        // (which Redis would still allow) must not happen either, or the
        // event would be gone without its state and reply.
        let inbox = "sb:v1:inbox:{inbox-0}";
        let id = pending_entry(&store, inbox).await;
        let mut admin = server.connection();
        let _: () = ::redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg("1")
            .query(&mut admin)
            .unwrap();
        let state = state_key(&conversation(10));
        let ttl = Duration::from_secs(60);
        let writes = [
            Write::Put {
                key: &state,
                value: b"state",
                ttl,
            },
            Write::Append {
                stream: "sb:v1:outbox:{outbox-0}",
                payload: b"reply",
            },
            Write::Put {
                key: "sb:v1:done:e9",
                value: &[],
                ttl,
            },
            Write::Ack {
                stream: inbox,
                id: &id,
            },
        ];
        let refused = store.commit(&writes).await;
        let _: () = ::redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg("0")
            .query(&mut admin)
            .unwrap();
        assert!(
            matches!(refused, Err(StoreError::Unavailable(_))),
            "{refused:?}"
        );
        let waiting: u64 = ::redis::cmd("XLEN").arg(inbox).query(&mut admin).unwrap();
        assert_eq!(waiting, 1, "the event is still in the inbox");
        assert_eq!(store.get(&state).await.unwrap(), None);
        assert_eq!(store.get("sb:v1:done:e9").await.unwrap(), None);
        // Once Redis has room again the same commit goes through whole.
        store.commit(&writes).await.unwrap();
        assert_eq!(
            store.get(&state).await.unwrap().as_deref(),
            Some(&b"state"[..])
        );
        let len: u64 = ::redis::cmd("XLEN").arg(inbox).query(&mut admin).unwrap();
        assert_eq!(len, 0);
    }

    /// A commit of one write (the sender's acknowledgement of a reply that
    /// needs no mark) is that one command: atomic by itself, without the
    /// two extra commands of a MULTI/EXEC around it.
    #[tokio::test]
    async fn a_commit_of_one_write_goes_without_a_transaction() {
        let server = RedisServer::start();
        assert!(server.is_private(), "needs its own redis-server");
        let store = redis_store(server.url(), "", &[K1]).await;
        let outbox = "sb:v1:outbox:{outbox-2}";
        let id = pending_entry(&store, outbox).await;
        let mut admin = server.connection();
        let _: () = ::redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut admin)
            .unwrap();
        store
            .commit(&[Write::Ack {
                stream: outbox,
                id: &id,
            }])
            .await
            .unwrap();
        let len: u64 = ::redis::cmd("XLEN").arg(outbox).query(&mut admin).unwrap();
        assert_eq!(len, 0, "the entry is gone");
        let stats: String = ::redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut admin)
            .unwrap();
        assert!(stats.contains("cmdstat_xdel:calls=1,"), "{stats}");
        assert!(!stats.contains("cmdstat_multi"), "{stats}");
        assert!(!stats.contains("cmdstat_exec"), "{stats}");
    }

    /// `commit_then` sends one more command behind the writes in the same
    /// round trip: it sees them when they went through, its reply comes
    /// back as Redis sent it (an error reply included), and a refused
    /// commit gives no reply to trust.
    #[tokio::test]
    async fn a_command_sent_behind_a_commit_sees_it_and_a_refused_commit_gives_no_reply() {
        let server = RedisServer::start();
        assert!(server.is_private(), "needs its own redis-server");
        let store = redis_store(server.url(), "", &[K1]).await;
        let inbox = "sb:v1:inbox:{inbox-4}";
        let state = state_key(&conversation(11));
        let ttl = Duration::from_secs(60);
        let get = |key: &str| {
            let mut get = ::redis::cmd("GET");
            get.arg(store.key(key));
            vec![get]
        };
        let id = pending_entry(&store, inbox).await;
        let writes = [
            Write::Put {
                key: &state,
                value: b"after the commit",
                ttl,
            },
            Write::Ack {
                stream: inbox,
                id: &id,
            },
        ];
        let (committed, reply) = store.commit_then(&writes, get(&state)).await;
        committed.unwrap();
        let stored = match reply.as_deref() {
            Some([::redis::Value::BulkString(bytes)]) => bytes.clone(),
            other => panic!("expected the state, got {other:?}"),
        };
        let opened = store
            .opened(&state, &store.key(&state), Some(stored))
            .unwrap();
        assert_eq!(opened.as_deref(), Some(&b"after the commit"[..]));

        // One write goes alone, and an error reply is handed back as such.
        let id = pending_entry(&store, inbox).await;
        let (committed, reply) = store
            .commit_then(
                &[Write::Ack {
                    stream: inbox,
                    id: &id,
                }],
                vec![::redis::cmd("EVALSHA").arg("0".repeat(40)).arg(0).clone()],
            )
            .await;
        committed.unwrap();
        match reply.as_deref() {
            Some([reply @ ::redis::Value::ServerError(_)]) => {
                assert!(format!("{reply:?}").contains("NOSCRIPT"), "{reply:?}");
            }
            other => panic!("expected NOSCRIPT, got {other:?}"),
        }

        // Out of memory: the writes are refused together and the command
        // behind them answers nothing the caller could take for after them.
        let id = pending_entry(&store, inbox).await;
        let mut admin = server.connection();
        let maxmemory = |value: &str, admin: &mut ::redis::Connection| {
            let _: () = ::redis::cmd("CONFIG")
                .arg("SET")
                .arg("maxmemory")
                .arg(value)
                .query(admin)
                .unwrap();
        };
        maxmemory("1", &mut admin);
        let refused_state = state_key(&conversation(12));
        let (committed, reply) = store
            .commit_then(
                &[
                    Write::Put {
                        key: &refused_state,
                        value: b"refused",
                        ttl,
                    },
                    Write::Ack {
                        stream: inbox,
                        id: &id,
                    },
                ],
                get(&refused_state),
            )
            .await;
        maxmemory("0", &mut admin);
        assert!(
            matches!(committed, Err(StoreError::Unavailable(_))),
            "{committed:?}"
        );
        assert!(reply.is_none(), "{reply:?}");
        let waiting: u64 = ::redis::cmd("XLEN").arg(inbox).query(&mut admin).unwrap();
        assert_eq!(waiting, 1, "the entry is still there");
        assert_eq!(store.get(&refused_state).await.unwrap(), None);
    }

    #[tokio::test]
    async fn redis_store_without_encryption_conforms() {
        let server = RedisServer::start();
        check(Store::Redis(redis_store(server.url(), "", &[]).await)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_cluster_store_conforms() {
        let cluster = RedisCluster::start(3);
        let store = redis_store(&cluster.url(), "shop-a:", &[K1]).await;
        check(Store::Redis(store.clone())).await;
        check_commit(&store).await;

        // A conversation's keys share one slot, so one DEL (or a script)
        // can touch them all.
        let conv = conversation(77);
        let mut connection = store.connection();
        let mut slots = Vec::new();
        for key in conversation_keys(&conv) {
            let slot: i64 = ::redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(store.key(&key))
                .query_async(&mut connection)
                .await
                .unwrap();
            slots.push(slot);
        }
        assert!(slots.windows(2).all(|w| w[0] == w[1]), "{slots:?}");
    }

    #[tokio::test]
    async fn store_connect_picks_the_backend_from_the_url() {
        let store = Store::connect(&StoreSettings::new("memory")).await.unwrap();
        assert!(store.as_redis().is_none());
        let server = RedisServer::start();
        let mut settings = StoreSettings::new(server.url());
        settings.encryption = keyring(&[K1]);
        let store = Store::connect(&settings).await.unwrap();
        assert!(store.as_redis().is_some_and(|r| r.encrypts()));
    }

    #[test]
    fn dedupe_keys_do_not_carry_the_event_id() {
        let key = dedupe_key("whatsapp", "wa", "wamid.HBgLMTU1NTAwMDExMTEVAgASGBQz");
        assert!(key.starts_with("sb:v1:seen:whatsapp:wa:"));
        assert!(!key.contains("wamid"));
        assert_ne!(key, dedupe_key("whatsapp", "wa", "wamid.other"));
        assert!(is_dedupe_key(&key));
        assert!(!is_dedupe_key(&state_key(&conversation(1))));
    }
}
