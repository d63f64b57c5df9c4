//! Storage behind one interface: dedupe keys, conversation state, one-time
//! code records, dead letters. Backends are siblings (`memory.rs`; Redis
//! comes next) selected by `[store] url`; the same conformance tests run
//! against each.
//!
//! Keys are namespaced `sb:v1:{kind}:...` and every value has a TTL except
//! dead letters, which an operator clears.

mod memory;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchboard_model::ConversationKey;

pub use memory::MemoryStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

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

pub fn dedupe_key(platform: &str, channel: &str, event_id: &str) -> String {
    format!("sb:v1:seen:{platform}:{channel}:{event_id}")
}

pub fn state_key(conversation: &ConversationKey) -> String {
    // The `{...}` hash tag keeps one conversation's keys in one cluster slot.
    format!("sb:v1:state:{{{conversation}}}")
}

pub fn link_code_key(account_id: &str) -> String {
    format!("sb:v1:otp:{account_id}")
}

pub fn pending_link_key(conversation: &ConversationKey) -> String {
    format!("sb:v1:otp-pending:{{{conversation}}}")
}

/// The configured store. An enum rather than a trait object: two backends,
/// static dispatch, and `grep` finds every implementation.
#[derive(Debug, Clone)]
pub enum Store {
    Memory(std::sync::Arc<MemoryStore>),
}

impl Store {
    pub fn memory() -> Store {
        Store::Memory(std::sync::Arc::new(MemoryStore::default()))
    }

    /// Records `key`; true when it was new (not seen within its TTL). Atomic:
    /// of two concurrent calls with one key exactly one gets `true`.
    pub async fn first_sighting(&self, key: &str, ttl: Duration) -> StoreResult<bool> {
        match self {
            Store::Memory(store) => Ok(store.insert_if_absent(key, Vec::new(), ttl)),
        }
    }

    pub async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        match self {
            Store::Memory(store) => Ok(store.get(key)),
        }
    }

    pub async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> StoreResult<()> {
        match self {
            Store::Memory(store) => {
                store.put(key, value, ttl);
                Ok(())
            }
        }
    }

    pub async fn delete(&self, key: &str) -> StoreResult<()> {
        match self {
            Store::Memory(store) => {
                store.delete(key);
                Ok(())
            }
        }
    }

    pub async fn push_dead_letter(&self, letter: DeadLetter) -> StoreResult<()> {
        match self {
            Store::Memory(store) => {
                store.push_dead_letter(letter);
                Ok(())
            }
        }
    }

    /// Newest first.
    pub async fn dead_letters(&self, limit: usize) -> StoreResult<Vec<DeadLetter>> {
        match self {
            Store::Memory(store) => Ok(store.dead_letters(limit)),
        }
    }

    pub async fn dead_letter_count(&self) -> StoreResult<usize> {
        match self {
            Store::Memory(store) => Ok(store.dead_letter_count()),
        }
    }

    /// Removes everything stored about one conversation: state, pending
    /// link codes, and dead letters that name it.
    pub async fn erase_conversation(&self, conversation: &ConversationKey) -> StoreResult<()> {
        let name = conversation.to_string();
        match self {
            Store::Memory(store) => {
                store.delete(&state_key(conversation));
                if let Some(account) = store.get(&pending_link_key(conversation)) {
                    store.delete(&link_code_key(&String::from_utf8_lossy(&account)));
                }
                store.delete(&pending_link_key(conversation));
                store.remove_dead_letters(|letter| letter.conversation.as_deref() == Some(&name));
                Ok(())
            }
        }
    }

    pub async fn ping(&self) -> StoreResult<()> {
        match self {
            Store::Memory(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod conformance {
    //! Behaviour every backend must show.
    use super::*;
    use switchboard_model::{ChannelId, ChatId, Platform};

    fn conversation() -> ConversationKey {
        ConversationKey::new(
            Platform::Telegram,
            ChannelId::new("tg").unwrap(),
            ChatId::Int(-5),
        )
    }

    async fn check(store: Store) {
        let ttl = Duration::from_secs(60);
        assert!(store.first_sighting("k1", ttl).await.unwrap());
        assert!(!store.first_sighting("k1", ttl).await.unwrap());
        store.delete("k1").await.unwrap();
        assert!(store.first_sighting("k1", ttl).await.unwrap());

        store.put("v", b"one".to_vec(), ttl).await.unwrap();
        assert_eq!(store.get("v").await.unwrap().as_deref(), Some(&b"one"[..]));
        store
            .put("short", b"x".to_vec(), Duration::from_millis(1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(store.get("short").await.unwrap(), None);

        let conv = conversation();
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
        let letter = DeadLetter {
            id: "d1".into(),
            at_ms: 1,
            reason: "send_failed:permanent".into(),
            platform: "telegram".into(),
            channel: "tg".into(),
            conversation: Some(conv.to_string()),
            detail: "x".into(),
            payload: None,
        };
        store.push_dead_letter(letter.clone()).await.unwrap();
        store
            .push_dead_letter(DeadLetter {
                id: "d2".into(),
                conversation: None,
                ..letter
            })
            .await
            .unwrap();
        assert_eq!(store.dead_letters(10).await.unwrap()[0].id, "d2");

        store.erase_conversation(&conv).await.unwrap();
        assert_eq!(store.get(&state_key(&conv)).await.unwrap(), None);
        assert_eq!(store.get(&link_code_key("acct-1")).await.unwrap(), None);
        assert_eq!(store.get(&pending_link_key(&conv)).await.unwrap(), None);
        let left = store.dead_letters(10).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, "d2");
    }

    #[tokio::test]
    async fn memory_store_conforms() {
        check(Store::memory()).await;
    }

    #[tokio::test]
    async fn only_one_of_many_concurrent_sightings_is_first() {
        let store = Store::memory();
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
        assert_eq!(firsts, 1);
    }
}
