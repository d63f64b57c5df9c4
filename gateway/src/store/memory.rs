//! In-process store for the embedded default and tests. Loses everything on
//! restart by design; production uses Redis.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{DeadLetter, MAX_DEAD_LETTERS};
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
    dead_letters: VecDeque<DeadLetter>,
    writes: u64,
    /// Channels registered at run time: id -> record, and a version bumped
    /// on every change.
    channels: BTreeMap<String, Vec<u8>>,
    channels_version: u64,
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
        self.lock().live(key, Instant::now()).cloned()
    }

    pub fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.values.insert(key.to_owned(), (value, now + ttl));
        inner.wrote(now);
    }

    pub fn delete(&self, key: &str) {
        self.lock().values.remove(key);
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
