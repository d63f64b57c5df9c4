//! In-process store for the embedded default and tests. Loses everything on
//! restart by design; production uses Redis.
//!
//! Dedupe marks, one per webhook event, are kept apart in a compact,
//! size-capped set ([`MAX_DEDUPE_MARKS`]): everything else grows with the
//! number of conversations, they grow with traffic, so without the cap the
//! process's memory would follow the offered load for the whole dedupe TTL.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{DeadLetter, MAX_DEAD_LETTERS, is_dedupe_key};

/// Most dedupe marks kept (about 70 bytes each, so about 14 MB): past it
/// the oldest go first, so a platform's retry is recognised within the
/// last this-many events (minutes at thousands of events per second, hours
/// at a shop's usual rate). Redis keeps every mark for the full TTL.
pub const MAX_DEDUPE_MARKS: usize = 200_000;
/// Sweep expired keys after this many writes, so memory stays bounded
/// without a background task.
const SWEEP_EVERY: u64 = 4096;

#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    values: HashMap<String, (Vec<u8>, Instant)>,
    marks: Marks,
    dead_letters: VecDeque<DeadLetter>,
    writes: u64,
    /// Channels registered at run time: id -> record, and a version bumped
    /// on every change.
    channels: BTreeMap<String, Vec<u8>>,
    channels_version: u64,
}

/// Dedupe marks by a 128-bit digest of their key, oldest first in `order`
/// (all share one TTL, so the oldest also expire first).
#[derive(Debug, Default)]
struct Marks {
    expiry: HashMap<[u8; 16], Instant>,
    order: VecDeque<([u8; 16], Instant)>,
}

impl Marks {
    fn digest(key: &str) -> [u8; 16] {
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&Sha256::digest(key.as_bytes())[..16]);
        digest
    }

    fn live(&self, digest: &[u8; 16], now: Instant) -> bool {
        self.expiry
            .get(digest)
            .is_some_and(|expires| *expires > now)
    }

    fn insert_if_absent(&mut self, key: &str, ttl: Duration, now: Instant) -> bool {
        let digest = Self::digest(key);
        if self.live(&digest, now) {
            return false;
        }
        let expires = now + ttl;
        self.expiry.insert(digest, expires);
        self.order.push_back((digest, expires));
        self.prune(now);
        true
    }

    /// Drops expired marks and, past the cap, the oldest. An `order` entry
    /// whose mark was deleted or renewed since is skipped.
    fn prune(&mut self, now: Instant) {
        while let Some((digest, expires)) = self.order.front().copied() {
            let current = self.expiry.get(&digest).copied();
            let stale = current != Some(expires);
            if !stale && expires > now && self.expiry.len() <= MAX_DEDUPE_MARKS {
                break;
            }
            self.order.pop_front();
            if !stale {
                self.expiry.remove(&digest);
            }
        }
        // Deleted marks leave `order` entries behind; keep them in check.
        if self.order.len() > MAX_DEDUPE_MARKS.saturating_mul(2) {
            let expiry = &self.expiry;
            self.order
                .retain(|(digest, expires)| expiry.get(digest) == Some(expires));
        }
    }

    fn delete(&mut self, key: &str) {
        self.expiry.remove(&Self::digest(key));
    }

    fn len(&self) -> usize {
        self.expiry.len()
    }
}

impl Inner {
    fn live(&self, key: &str, now: Instant) -> Option<&Vec<u8>> {
        self.values
            .get(key)
            .filter(|(_, expires)| *expires > now)
            .map(|(v, _)| v)
    }

    fn wrote(&mut self, now: Instant) {
        self.writes = self.writes.wrapping_add(1);
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            self.values.retain(|_, (_, expires)| *expires > now);
        }
    }
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn insert_if_absent(&self, key: &str, value: Vec<u8>, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut inner = self.lock();
        if is_dedupe_key(key) && value.is_empty() {
            return inner.marks.insert_if_absent(key, ttl, now);
        }
        if inner.live(key, now).is_some() {
            return false;
        }
        inner.values.insert(key.to_owned(), (value, now + ttl));
        inner.wrote(now);
        true
    }

    pub fn count_in_window(&self, key: &str, window: Duration) -> u64 {
        let now = Instant::now();
        let mut inner = self.lock();
        let count = inner
            .live(key, now)
            .and_then(|value| <[u8; 8]>::try_from(value.as_slice()).ok())
            .map_or(0, u64::from_be_bytes)
            .saturating_add(1);
        let expires = match inner.values.get(key) {
            Some((_, expires)) if *expires > now => *expires,
            _ => now + window,
        };
        inner
            .values
            .insert(key.to_owned(), (count.to_be_bytes().to_vec(), expires));
        inner.wrote(now);
        count
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let now = Instant::now();
        let inner = self.lock();
        if is_dedupe_key(key) && inner.marks.live(&Marks::digest(key), now) {
            return Some(Vec::new());
        }
        inner.live(key, now).cloned()
    }

    /// How many dedupe marks are kept (for tests and the cap).
    pub fn dedupe_marks(&self) -> usize {
        self.lock().marks.len()
    }

    pub fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.values.insert(key.to_owned(), (value, now + ttl));
        inner.wrote(now);
    }

    pub fn delete(&self, key: &str) {
        let mut inner = self.lock();
        if is_dedupe_key(key) {
            inner.marks.delete(key);
        }
        inner.values.remove(key);
    }

    pub fn push_dead_letter(&self, letter: DeadLetter) {
        let mut inner = self.lock();
        if inner.dead_letters.len() >= MAX_DEAD_LETTERS {
            inner.dead_letters.pop_front();
        }
        inner.dead_letters.push_back(letter);
    }

    pub fn dead_letters(&self, limit: usize) -> Vec<DeadLetter> {
        self.lock()
            .dead_letters
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect()
    }

    pub fn dead_letter_count(&self) -> usize {
        self.lock().dead_letters.len()
    }

    pub fn remove_dead_letters(&self, matches: impl Fn(&DeadLetter) -> bool) {
        self.lock().dead_letters.retain(|letter| !matches(letter));
    }

    pub fn channel_records(&self) -> (u64, Vec<(String, Vec<u8>)>) {
        let inner = self.lock();
        let records = inner
            .channels
            .iter()
            .map(|(id, record)| (id.clone(), record.clone()))
            .collect();
        (inner.channels_version, records)
    }

    pub fn channels_version(&self) -> u64 {
        self.lock().channels_version
    }

    pub fn put_channel_record(&self, id: &str, record: Vec<u8>) {
        let mut inner = self.lock();
        inner.channels.insert(id.to_owned(), record);
        inner.channels_version += 1;
    }

    pub fn delete_channel_record(&self, id: &str) -> bool {
        let mut inner = self.lock();
        let removed = inner.channels.remove(id).is_some();
        if removed {
            inner.channels_version += 1;
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::dedupe_key;

    #[test]
    fn dedupe_marks_are_capped_oldest_first_and_recognised_until_evicted() {
        let store = MemoryStore::default();
        let ttl = Duration::from_secs(3600);
        let key = |n: usize| dedupe_key("telegram", "tg", &n.to_string());
        for n in 0..MAX_DEDUPE_MARKS + 1000 {
            assert!(store.insert_if_absent(&key(n), Vec::new(), ttl), "{n}");
        }
        assert_eq!(store.dedupe_marks(), MAX_DEDUPE_MARKS, "bounded");
        // The newest are still recognised, the oldest were let go.
        assert!(!store.insert_if_absent(&key(MAX_DEDUPE_MARKS + 999), Vec::new(), ttl));
        assert_eq!(store.get(&key(MAX_DEDUPE_MARKS + 999)), Some(Vec::new()));
        assert_eq!(store.get(&key(0)), None);
        assert!(store.insert_if_absent(&key(0), Vec::new(), ttl), "evicted");
        assert_eq!(store.dedupe_marks(), MAX_DEDUPE_MARKS);
    }

    #[test]
    fn a_deleted_mark_lets_the_retry_through_and_expired_marks_go() {
        let store = MemoryStore::default();
        let key = dedupe_key("whatsapp", "wa", "wamid.1");
        assert!(store.insert_if_absent(&key, Vec::new(), Duration::from_secs(60)));
        assert!(!store.insert_if_absent(&key, Vec::new(), Duration::from_secs(60)));
        store.delete(&key);
        assert_eq!(store.get(&key), None);
        assert!(store.insert_if_absent(&key, Vec::new(), Duration::from_secs(60)));

        let short = dedupe_key("whatsapp", "wa", "wamid.2");
        assert!(store.insert_if_absent(&short, Vec::new(), Duration::from_millis(1)));
        std::thread::sleep(Duration::from_millis(5));
        assert!(store.insert_if_absent(&short, Vec::new(), Duration::from_millis(1)));
        // Deleting many marks does not let their bookkeeping grow.
        for n in 0..10_000 {
            let key = dedupe_key("whatsapp", "wa", &format!("d{n}"));
            assert!(store.insert_if_absent(&key, Vec::new(), Duration::from_secs(60)));
            store.delete(&key);
        }
        assert!(store.lock().marks.order.len() <= MAX_DEDUPE_MARKS * 2 + 1);
    }
}
