//! In-process store for the embedded default and tests. Loses everything on
//! restart by design; production uses Redis.
//!
//! Marks (keys that hold nothing: a webhook event's dedupe mark, an inbox
//! entry's done mark) are kept apart in compact, size-capped sets
//! ([`MAX_DEDUPE_MARKS`], [`MAX_DONE_MARKS`]): everything else grows with
//! the number of conversations, marks grow with traffic, so without the cap
//! the process's memory would follow the offered load for the marks' whole
//! TTL (48 hours for done marks). Values of [`COMPRESS_FROM`] bytes or more
//! (conversation states) are kept LZ4-compressed: they are most of what
//! the process holds per conversation. Conversation states together are
//! held to [`MAX_STATE_BYTES`]: past it the least recently written are
//! forgotten, so memory is bounded whatever the number of chats (Redis,
//! for production, keeps every state for its TTL).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::digest::{DigestMap, Digester};

use super::{DeadLetter, MAX_DEAD_LETTERS, is_dedupe_key, is_done_key, is_state_key};

/// Most dedupe marks kept (about 35 bytes each, so about 7 MB): past it
/// the oldest go first, so a platform's retry is recognised within the
/// last this-many events (minutes at thousands of events per second, hours
/// at a shop's usual rate). Redis keeps every mark for the full TTL.
pub const MAX_DEDUPE_MARKS: usize = 200_000;
/// Most done marks kept. A done mark stops an inbox entry handed out again
/// from being handled twice; in memory that happens within seconds (a lane
/// that failed mid-entry), so the last this-many entries are plenty.
pub const MAX_DONE_MARKS: usize = 50_000;
/// Values this long or longer are compressed. A conversation state is
/// 0.4–3 KB of JSON whose transcript lines repeat the same field names
/// and phrases; LZ4 keeps about a third of it for a few microseconds.
/// Shorter values (counters, codes) are not worth it.
pub const COMPRESS_FROM: usize = 256;
/// Most bytes of conversation state kept (as stored, with keys and
/// bookkeeping): about 8 000 conversations with a full 20-line transcript,
/// more with shorter ones. Past it the least recently written states are
/// forgotten first; such a conversation starts afresh, as after its TTL.
/// Only states: counters and one-time codes are never dropped early, so a
/// flood of chats cannot reset a limit.
pub const MAX_STATE_BYTES: usize = 6 << 20;
/// What a kept state costs besides its key and value: its map entry and
/// its place in the eviction order.
const STATE_OVERHEAD: usize = 96;
/// Sweep expired keys after this many writes, so memory stays bounded
/// without a background task.
const SWEEP_EVERY: u64 = 4096;

#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    values: HashMap<String, Value>,
    states: States,
    dedupe: Marks,
    done: Marks,
    dead_letters: VecDeque<DeadLetter>,
    writes: u64,
    /// Channels registered at run time: id -> record, and a version bumped
    /// on every change.
    channels: BTreeMap<String, Vec<u8>>,
    channels_version: u64,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            values: HashMap::new(),
            states: States::default(),
            dedupe: Marks::new(MAX_DEDUPE_MARKS),
            done: Marks::new(MAX_DONE_MARKS),
            dead_letters: VecDeque::new(),
            writes: 0,
            channels: BTreeMap::new(),
            channels_version: 0,
        }
    }
}

#[derive(Debug)]
struct Value {
    stored: Stored,
    expires: Instant,
    /// The write that put it (`Inner::writes`), which tells a state's
    /// current place in [`States::order`] from an older one.
    write: u64,
}

/// The conversation states' footprint and their order of last write.
#[derive(Debug, Default)]
struct States {
    bytes: usize,
    /// Oldest write first; an entry whose key was written again since (or
    /// removed) is stale and skipped.
    order: VecDeque<(Box<str>, u64)>,
    /// The operator has been told states are being forgotten.
    warned: bool,
}

fn state_footprint(key: &str, stored: &Stored) -> usize {
    key.len() + stored.len() + STATE_OVERHEAD
}

/// A value as kept: exactly its size (serializers hand over buffers grown
/// by doubling), and compressed when that makes it smaller.
#[derive(Debug, Clone)]
enum Stored {
    Plain(Box<[u8]>),
    /// `lz4_flex` block format with the plain length in front.
    Lz4(Box<[u8]>),
}

impl Stored {
    fn new(value: Vec<u8>) -> Self {
        if value.len() >= COMPRESS_FROM {
            let packed = lz4_flex::compress_prepend_size(&value);
            if packed.len() < value.len() {
                return Stored::Lz4(packed.into_boxed_slice());
            }
        }
        Stored::Plain(value.into_boxed_slice())
    }

    fn into_bytes(self) -> Vec<u8> {
        match self {
            Stored::Plain(bytes) => bytes.into_vec(),
            Stored::Lz4(packed) => {
                lz4_flex::decompress_size_prepended(&packed).unwrap_or_else(|error| {
                    // Only this process wrote it; corruption here is memory
                    // corruption. An empty value fails to decode upstream,
                    // which handles it like any corrupt stored value.
                    tracing::error!(%error, "a compressed value in the memory store cannot be read");
                    Vec::new()
                })
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Stored::Plain(bytes) | Stored::Lz4(bytes) => bytes.len(),
        }
    }

    /// The bytes of a value that is never compressed (shorter than
    /// [`COMPRESS_FROM`]).
    fn short(&self) -> Option<&[u8]> {
        match self {
            Stored::Plain(bytes) => Some(bytes),
            Stored::Lz4(_) => None,
        }
    }
}

/// Marks by a 64-bit keyed digest of their key, oldest first in `order`
/// (a set's marks share one TTL, so the oldest also expire first). Expiry
/// is kept as milliseconds since `base`. A mark costs about 35 bytes in
/// all, where a key and an `Instant` would take over 100. Two keys sharing
/// a digest (odds about 1 in 10^14 per event at the cap) would make an
/// event look seen.
#[derive(Debug)]
struct Marks {
    base: Instant,
    cap: usize,
    digester: Digester,
    expiry: DigestMap<u64>,
    order: VecDeque<(u64, u64)>,
}

impl Marks {
    fn new(cap: usize) -> Self {
        Marks {
            base: Instant::now(),
            cap,
            digester: Digester::default(),
            expiry: DigestMap::default(),
            order: VecDeque::new(),
        }
    }

    fn digest(&self, key: &str) -> u64 {
        self.digester.digest(key)
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX)
    }

    fn live(&self, key: &str, now: Instant) -> bool {
        let now = self.millis(now);
        self.expiry
            .get(&self.digest(key))
            .is_some_and(|expires| *expires > now)
    }

    /// Sets the mark; with `only_if_absent`, not when it is live already.
    /// True when it was set.
    fn set(&mut self, key: &str, ttl: Duration, now: Instant, only_if_absent: bool) -> bool {
        let digest = self.digest(key);
        let now = self.millis(now);
        let live = self
            .expiry
            .get(&digest)
            .is_some_and(|expires| *expires > now);
        if only_if_absent && live {
            return false;
        }
        // Rounded up, so a mark lives at least its TTL.
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let expires = now.saturating_add(ttl).saturating_add(1);
        self.expiry.insert(digest, expires);
        self.order.push_back((digest, expires));
        self.prune(now);
        true
    }

    /// Drops expired marks and, past the cap, the oldest. An `order` entry
    /// whose mark was deleted or renewed since is skipped.
    fn prune(&mut self, now: u64) {
        while let Some((digest, expires)) = self.order.front().copied() {
            let current = self.expiry.get(&digest).copied();
            let stale = current != Some(expires);
            if !stale && expires > now && self.expiry.len() <= self.cap {
                break;
            }
            self.order.pop_front();
            if !stale {
                self.expiry.remove(&digest);
            }
        }
        // Deleted and renewed marks leave `order` entries behind; keep them
        // in check.
        if self.order.len() > self.cap.saturating_mul(2) {
            let expiry = &self.expiry;
            self.order
                .retain(|(digest, expires)| expiry.get(digest) == Some(expires));
        }
    }

    fn delete(&mut self, key: &str) {
        self.expiry.remove(&self.digest(key));
    }

    fn len(&self) -> usize {
        self.expiry.len()
    }
}

impl Inner {
    fn live(&self, key: &str, now: Instant) -> Option<&Stored> {
        self.values
            .get(key)
            .filter(|value| value.expires > now)
            .map(|value| &value.stored)
    }

    /// Every write of a value goes through here: it keeps the states'
    /// footprint, forgets the least recently written states past
    /// [`MAX_STATE_BYTES`], and sweeps expired keys now and then.
    fn set_value(&mut self, key: &str, stored: Stored, expires: Instant, now: Instant) {
        self.writes = self.writes.wrapping_add(1);
        let write = self.writes;
        let state = is_state_key(key);
        let added = state.then(|| state_footprint(key, &stored));
        let old = self.values.insert(
            key.to_owned(),
            Value {
                stored,
                expires,
                write,
            },
        );
        if let Some(added) = added {
            if let Some(old) = old {
                self.states.bytes -= state_footprint(key, &old.stored);
            }
            self.states.bytes += added;
            self.states.order.push_back((key.into(), write));
            self.forget_oldest_states();
        }
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            let mut freed = 0;
            self.values.retain(|key, value| {
                let keep = value.expires > now;
                if !keep && is_state_key(key) {
                    freed += state_footprint(key, &value.stored);
                }
                keep
            });
            self.states.bytes -= freed;
        }
    }

    fn remove_value(&mut self, key: &str) {
        if let Some(old) = self.values.remove(key)
            && is_state_key(key)
        {
            self.states.bytes -= state_footprint(key, &old.stored);
        }
    }

    fn forget_oldest_states(&mut self) {
        let mut forgotten = 0u64;
        while self.states.bytes > MAX_STATE_BYTES {
            let Some((key, write)) = self.states.order.pop_front() else {
                break;
            };
            if self
                .values
                .get(&*key)
                .is_some_and(|value| value.write == write)
            {
                self.remove_value(&key);
                forgotten += 1;
            }
        }
        if forgotten > 0 && !self.states.warned {
            self.states.warned = true;
            tracing::warn!(
                max_bytes = MAX_STATE_BYTES,
                "the memory store holds as many conversations as it may and forgets the least recently active first; use the Redis store to keep them all"
            );
        }
        // Rewritten and removed states leave stale entries behind.
        if self.states.order.len() > self.values.len().saturating_mul(2) + 1024 {
            let values = &self.values;
            self.states.order.retain(|(key, write)| {
                values
                    .get(&**key)
                    .is_some_and(|value| value.write == *write)
            });
        }
    }

    /// The set a mark's key belongs to, if it is a mark's key.
    fn marks_mut(&mut self, key: &str) -> Option<&mut Marks> {
        if is_dedupe_key(key) {
            Some(&mut self.dedupe)
        } else if is_done_key(key) {
            Some(&mut self.done)
        } else {
            None
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
        if value.is_empty()
            && let Some(marks) = self.lock().marks_mut(key)
        {
            return marks.set(key, ttl, now, true);
        }
        // Compressed before the lock is taken: other lanes wait on it.
        let stored = Stored::new(value);
        let mut inner = self.lock();
        if inner.live(key, now).is_some() {
            return false;
        }
        inner.set_value(key, stored, now + ttl, now);
        true
    }

    pub fn count_in_window(&self, key: &str, window: Duration) -> u64 {
        let now = Instant::now();
        let mut inner = self.lock();
        let count = inner
            .live(key, now)
            .and_then(Stored::short)
            .and_then(|value| <[u8; 8]>::try_from(value).ok())
            .map_or(0, u64::from_be_bytes)
            .saturating_add(1);
        let expires = match inner.values.get(key) {
            Some(value) if value.expires > now => value.expires,
            _ => now + window,
        };
        inner.set_value(key, Stored::new(count.to_be_bytes().to_vec()), expires, now);
        count
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let now = Instant::now();
        let mut inner = self.lock();
        if inner
            .marks_mut(key)
            .is_some_and(|marks| marks.live(key, now))
        {
            return Some(Vec::new());
        }
        let stored = inner.live(key, now).cloned();
        drop(inner);
        stored.map(Stored::into_bytes)
    }

    /// How many dedupe marks are kept (for tests and the cap).
    pub fn dedupe_marks(&self) -> usize {
        self.lock().dedupe.len()
    }

    /// How many done marks are kept (for tests and the cap).
    pub fn done_marks(&self) -> usize {
        self.lock().done.len()
    }

    pub fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        let now = Instant::now();
        if value.is_empty()
            && let Some(marks) = self.lock().marks_mut(key)
        {
            marks.set(key, ttl, now, false);
            return;
        }
        // Compressed before the lock is taken: other lanes wait on it.
        let stored = Stored::new(value);
        self.lock().set_value(key, stored, now + ttl, now);
    }

    pub fn delete(&self, key: &str) {
        let mut inner = self.lock();
        if let Some(marks) = inner.marks_mut(key) {
            marks.delete(key);
        }
        inner.remove_value(key);
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
    use crate::store::{DONE_PREFIX, dedupe_key};

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
        assert!(store.lock().dedupe.order.len() <= MAX_DEDUPE_MARKS * 2 + 1);
    }

    #[test]
    fn done_marks_are_capped_apart_from_values_and_renewed_by_a_put() {
        let store = MemoryStore::default();
        let ttl = Duration::from_secs(48 * 3600);
        let key = |n: usize| format!("{DONE_PREFIX}{n:032x}");
        for n in 0..MAX_DONE_MARKS + 500 {
            store.put(&key(n), Vec::new(), ttl);
        }
        assert_eq!(store.done_marks(), MAX_DONE_MARKS, "bounded");
        assert!(store.lock().values.is_empty(), "not kept as values");
        assert_eq!(store.get(&key(MAX_DONE_MARKS + 499)), Some(Vec::new()));
        assert_eq!(store.get(&key(0)), None, "the oldest went first");

        // A put of a live mark renews it: it outlives marks set after the
        // first put. (Renewals are told apart by their expiry, in ms.)
        std::thread::sleep(Duration::from_millis(2));
        store.put(&key(600), Vec::new(), ttl);
        for n in 0..MAX_DONE_MARKS - 1 {
            store.put(&key(1_000_000 + n), Vec::new(), ttl);
        }
        assert_eq!(store.get(&key(600)), Some(Vec::new()));
        assert_eq!(store.get(&key(601)), None);
        store.delete(&key(600));
        assert_eq!(store.get(&key(600)), None);
        assert!(store.lock().done.order.len() <= MAX_DONE_MARKS * 2 + 1);

        // Short TTLs expire; a done key with a value is an ordinary value.
        let short = key(7_000_000);
        store.put(&short, Vec::new(), Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(store.get(&short), None);
        store.put(&short, b"x".to_vec(), ttl);
        assert_eq!(store.get(&short), Some(b"x".to_vec()));
    }

    #[test]
    fn large_values_are_kept_compressed_and_read_back_unchanged() {
        let store = MemoryStore::default();
        let ttl = Duration::from_secs(60);
        let line = r#"{"at_ms":1764000000000,"from":"customer","text":"where is order 10023?"},"#;
        let state = format!(r#"{{"transcript":[{}]}}"#, line.repeat(20)).into_bytes();
        store.put("sb:v1:state:{telegram:tg:1}", state.clone(), ttl);
        assert_eq!(
            store.get("sb:v1:state:{telegram:tg:1}"),
            Some(state.clone())
        );
        let kept = match &store.lock().values["sb:v1:state:{telegram:tg:1}"].stored {
            Stored::Lz4(packed) => packed.len(),
            Stored::Plain(_) => panic!("a repetitive state is kept compressed"),
        };
        assert!(kept * 3 < state.len(), "{kept} of {} bytes", state.len());

        // Bytes that do not compress, and short values, are kept as they are.
        let noise: Vec<u8> = (0..1000u32)
            .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert!(store.insert_if_absent("sb:v1:code:a", noise.clone(), ttl));
        assert_eq!(store.get("sb:v1:code:a"), Some(noise));
        store.put("sb:v1:code:b", b"short".to_vec(), ttl);
        assert!(matches!(
            store.lock().values["sb:v1:code:b"].stored,
            Stored::Plain(_)
        ));
        assert_eq!(store.get("sb:v1:code:b"), Some(b"short".to_vec()));
    }

    /// `len` bytes that LZ4 cannot shrink, different for each `seed`.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn states_are_held_to_a_budget_least_recently_written_forgotten_first() {
        let store = MemoryStore::default();
        let ttl = Duration::from_secs(3600);
        let state = |n: usize| format!("sb:v1:state:{{telegram:tg:{n}}}");
        let size = 2000;
        let fits = MAX_STATE_BYTES / (size + 40 + STATE_OVERHEAD);
        // A counter and a pending code written first must outlive the flood.
        assert_eq!(store.count_in_window("sb:v1:otp-sends:account:a", ttl), 1);
        store.put("sb:v1:otp-pending:{telegram:tg:0}", noise(0, 300), ttl);
        for n in 0..fits * 2 {
            store.put(&state(n), noise(n as u64, size), ttl);
            if n % 100 == 0 {
                // Conversation 0 stays active: rewritten all along.
                store.put(&state(0), noise(0, size), ttl);
            }
        }
        let bytes = store.lock().states.bytes;
        assert!(bytes <= MAX_STATE_BYTES, "{bytes}");
        assert!(
            bytes > MAX_STATE_BYTES - 2 * (size + 200),
            "{bytes}: budget used"
        );
        assert_eq!(
            store.get(&state(fits * 2 - 1)),
            Some(noise((fits * 2 - 1) as u64, size))
        );
        assert_eq!(
            store.get(&state(0)),
            Some(noise(0, size)),
            "recently written"
        );
        assert_eq!(store.get(&state(1)), None, "least recently written");
        assert_eq!(store.get(&state(fits / 2)), None);
        assert_eq!(store.count_in_window("sb:v1:otp-sends:account:a", ttl), 2);
        assert_eq!(
            store.get("sb:v1:otp-pending:{telegram:tg:0}"),
            Some(noise(0, 300))
        );
        let order = store.lock().states.order.len();
        assert!(order <= 2 * store.lock().values.len() + 1024, "{order}");

        // Deleting and rewriting keep the count exact: all gone, zero left.
        for n in 0..fits * 2 {
            store.delete(&state(n));
        }
        assert_eq!(store.lock().states.bytes, 0);
        store.put(&state(5), noise(5, 10), ttl);
        store.put(&state(5), noise(5, 20), ttl);
        assert_eq!(
            store.lock().states.bytes,
            state(5).len() + 20 + STATE_OVERHEAD
        );
    }
}
