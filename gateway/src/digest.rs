//! Maps keyed by a 64-bit keyed digest of a string instead of the string:
//! for per-event and per-chat bookkeeping that must stay small (dedupe
//! marks, rate-limit buckets). Owns only the hashing; what a collision
//! means is up to each user (each documents it).

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};

/// Digests keyed with a per-process random key (SipHash-1-3), so senders
/// who choose event or chat ids cannot aim many at one hash bucket.
#[derive(Debug, Default, Clone)]
pub struct Digester(RandomState);

impl Digester {
    pub fn digest(&self, key: impl Hash) -> u64 {
        self.0.hash_one(key)
    }
}

/// A map from digests. They are uniformly distributed already, so the
/// table uses them as they are instead of hashing them again.
pub type DigestMap<V> = HashMap<u64, V, BuildHasherDefault<Identity>>;

#[derive(Debug, Default)]
pub struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; fold anything else in anyway.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_stable_within_a_process_and_differ_between_keys() {
        let digester = Digester::default();
        assert_eq!(
            digester.digest("sb:v1:seen:a"),
            digester.digest("sb:v1:seen:a")
        );
        assert_ne!(
            digester.digest("sb:v1:seen:a"),
            digester.digest("sb:v1:seen:b")
        );
        assert_ne!(
            Digester::default().digest("k"),
            Digester::default().digest("k"),
            "each process (each digester) has its own key"
        );
        let mut map = DigestMap::default();
        map.insert(digester.digest("x"), 1);
        assert_eq!(map.get(&digester.digest("x")), Some(&1));
    }
}
