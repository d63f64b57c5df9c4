//! Encryption at rest for values kept in Redis: AES-256-GCM under named
//! keys, so keys can rotate (the first configured key seals new values,
//! every configured key opens old ones).
//!
//! A sealed value is a versioned envelope:
//!
//! ```text
//! b"sbx1" | kid length (1 byte) | kid | nonce (12 bytes) | ciphertext + tag (16 bytes)
//! ```
//!
//! The associated data is the full Redis key the value is stored under, so a
//! value copied to another key fails to open. Nonces are random (96 bits
//! from the OS), which bounds one key to well under 2^32 writes; rotate long
//! before that (docs/REDIS.md).

use std::fmt;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroize;

use super::StoreError;

const MAGIC: &[u8; 4] = b"sbx1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const MAX_KID_LEN: usize = 32;

/// Nonces handed out per `getrandom` call (a page of OS randomness).
const NONCES_PER_FILL: usize = 341;

/// A nonce of random bytes from the OS. They are fetched a page at a time
/// per thread and each byte is handed out once: a system call per seal was
/// about 2% of the gateway's CPU on Redis (three to four seals per event),
/// and the bytes are as random as one call's.
fn fresh_nonce() -> Result<[u8; NONCE_LEN], getrandom::Error> {
    thread_local! {
        static POOL: std::cell::RefCell<([u8; NONCE_LEN * NONCES_PER_FILL], usize)> =
            const { std::cell::RefCell::new(([0; NONCE_LEN * NONCES_PER_FILL], NONCES_PER_FILL)) };
    }
    POOL.with_borrow_mut(|(bytes, next)| {
        if *next >= NONCES_PER_FILL {
            getrandom::fill(bytes)?;
            *next = 0;
        }
        let mut nonce = [0u8; NONCE_LEN];
        let start = *next * NONCE_LEN;
        nonce.copy_from_slice(&bytes[start..start + NONCE_LEN]);
        *next += 1;
        Ok(nonce)
    })
}

/// Why a configured key was refused. Never holds key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyringError {
    #[error(
        "entry {index} is not \"kid:base64-key\"; generate a key with `openssl rand -base64 32` and write e.g. \"k1:<that value>\""
    )]
    Shape { index: usize },
    #[error(
        "entry {index}: key id '{kid}' must be 1-{MAX_KID_LEN} characters of A-Z a-z 0-9 _ - ."
    )]
    KeyId { index: usize, kid: String },
    #[error(
        "entry {index} (key id '{kid}'): the key is not base64 of exactly 32 bytes; generate one with `openssl rand -base64 32`"
    )]
    Material { index: usize, kid: String },
    #[error("key id '{kid}' is configured twice; every key needs its own id")]
    Duplicate { kid: String },
    #[error("no keys given")]
    Empty,
}

struct NamedKey {
    id: String,
    cipher: Aes256Gcm,
}

/// The configured encryption keys. `Debug` shows key ids only.
pub struct Keyring {
    /// The first is active: it seals every new value.
    keys: Vec<NamedKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.key_ids().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// Parses `kid:base64` entries; the first becomes the active key.
    pub fn parse(entries: &[SecretString]) -> Result<Keyring, KeyringError> {
        if entries.is_empty() {
            return Err(KeyringError::Empty);
        }
        let mut keys: Vec<NamedKey> = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let (kid, material) = entry
                .expose_secret()
                .trim()
                .split_once(':')
                .ok_or(KeyringError::Shape { index })?;
            let kid = kid.trim();
            let valid_kid = (1..=MAX_KID_LEN).contains(&kid.len())
                && kid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !valid_kid {
                return Err(KeyringError::KeyId {
                    index,
                    kid: kid.chars().take(MAX_KID_LEN + 8).collect(),
                });
            }
            let mut bytes = base64::engine::general_purpose::STANDARD
                .decode(material.trim())
                .map_err(|_| KeyringError::Material {
                    index,
                    kid: kid.to_owned(),
                })?;
            let cipher = (bytes.len() == 32)
                .then(|| Aes256Gcm::new_from_slice(&bytes).ok())
                .flatten();
            bytes.zeroize();
            let cipher = cipher.ok_or_else(|| KeyringError::Material {
                index,
                kid: kid.to_owned(),
            })?;
            if keys.iter().any(|k| k.id == kid) {
                return Err(KeyringError::Duplicate {
                    kid: kid.to_owned(),
                });
            }
            keys.push(NamedKey {
                id: kid.to_owned(),
                cipher,
            });
        }
        Ok(Keyring { keys })
    }

    /// The id of the key that seals new values.
    pub fn active_id(&self) -> &str {
        self.keys.first().map_or("", |k| k.id.as_str())
    }

    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// Seals `plaintext` for storage under `key` with the active key.
    pub fn seal(&self, key: &str, plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let active = self
            .keys
            .first()
            .ok_or_else(|| StoreError::Corrupt("no encryption key configured".to_owned()))?;
        let nonce = fresh_nonce()
            .map_err(|e| StoreError::Unavailable(format!("the OS random source failed: {e}")))?;
        let ciphertext = active
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: key.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Corrupt(format!("cannot seal the value for {key}")))?;
        let kid = active.id.as_bytes();
        let mut sealed =
            Vec::with_capacity(MAGIC.len() + 1 + kid.len() + NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(MAGIC);
        // Key ids are at most 32 bytes, checked in `parse`.
        sealed.push(u8::try_from(kid.len()).unwrap_or(u8::MAX));
        sealed.extend_from_slice(kid);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Opens a value read from `key`, with whichever configured key sealed it.
    pub fn open(&self, key: &str, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        let envelope = Envelope::read(key, sealed)?;
        let named = self
            .keys
            .iter()
            .find(|k| k.id.as_bytes() == envelope.kid)
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "the value at {key} was sealed with key id '{}', which is not configured \
                     (configured: {}); add that key to store.encryption_keys to read it",
                    String::from_utf8_lossy(envelope.kid),
                    self.key_ids().collect::<Vec<_>>().join(", ")
                ))
            })?;
        named
            .cipher
            .decrypt(
                Nonce::from_slice(envelope.nonce),
                Payload {
                    msg: envelope.ciphertext,
                    aad: key.as_bytes(),
                },
            )
            .map_err(|_| {
                StoreError::Corrupt(format!(
                    "the value at {key} fails authentication under key id '{}': it was altered, \
                     or moved from another key",
                    named.id
                ))
            })
    }
}

/// The parts of a sealed value, borrowed.
struct Envelope<'a> {
    kid: &'a [u8],
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

impl<'a> Envelope<'a> {
    fn read(key: &str, bytes: &'a [u8]) -> Result<Envelope<'a>, StoreError> {
        let not_sealed = || {
            StoreError::Corrupt(format!(
                "the value at {key} is not sealed (no sbx1 envelope): written without \
                 encryption or by something else; delete it, or see docs/REDIS.md on moving \
                 from allow_plaintext to encryption"
            ))
        };
        let rest = bytes.strip_prefix(MAGIC).ok_or_else(not_sealed)?;
        let (&kid_len, rest) = rest.split_first().ok_or_else(not_sealed)?;
        let kid_len = usize::from(kid_len);
        if kid_len == 0 || kid_len > MAX_KID_LEN || rest.len() < kid_len + NONCE_LEN + TAG_LEN {
            return Err(StoreError::Corrupt(format!(
                "the sealed value at {key} is truncated or malformed"
            )));
        }
        let (kid, rest) = rest.split_at(kid_len);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        Ok(Envelope {
            kid,
            nonce,
            ciphertext,
        })
    }
}

/// True when `bytes` starts like a sealed value.
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// The key id a sealed value names, for diagnostics.
pub fn sealed_key_id(bytes: &[u8]) -> Option<String> {
    Envelope::read("", bytes)
        .ok()
        .map(|e| String::from_utf8_lossy(e.kid).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "k2:HxAbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgEAAAA=";

    fn ring(entries: &[&str]) -> Keyring {
        let entries: Vec<SecretString> = entries.iter().map(|e| SecretString::from(*e)).collect();
        Keyring::parse(&entries).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_under_its_key_and_hides_the_plaintext() {
        let keys = ring(&[K1]);
        let plaintext = b"order 10023 for Ada Lovelace";
        let sealed = keys.seal("sb:v1:state:{x}", plaintext).unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.windows(5).any(|w| w == b"10023"));
        assert_eq!(keys.open("sb:v1:state:{x}", &sealed).unwrap(), plaintext);
    }

    #[test]
    fn nonces_never_repeat_across_refills_or_threads() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..NONCES_PER_FILL * 3 + 7 {
            assert!(seen.insert(fresh_nonce().unwrap()), "a nonce came twice");
        }
        let other: Vec<[u8; NONCE_LEN]> = std::thread::spawn(|| {
            (0..NONCES_PER_FILL + 1)
                .map(|_| fresh_nonce().unwrap())
                .collect()
        })
        .join()
        .unwrap();
        for nonce in other {
            assert!(seen.insert(nonce), "another thread's nonce came twice");
        }
    }

    #[test]
    fn sealing_twice_gives_different_bytes() {
        let keys = ring(&[K1]);
        assert_ne!(
            keys.seal("k", b"same").unwrap(),
            keys.seal("k", b"same").unwrap()
        );
    }

    #[test]
    fn a_value_moved_to_another_key_does_not_open() {
        let keys = ring(&[K1]);
        let sealed = keys.seal("sb:v1:state:{a}", b"secret").unwrap();
        let error = keys.open("sb:v1:state:{b}", &sealed).unwrap_err();
        assert!(matches!(error, StoreError::Corrupt(_)), "{error}");
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let keys = ring(&[K1]);
        let sealed = keys.seal("k", b"hello").unwrap();
        for index in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[index] ^= 0x01;
            assert!(keys.open("k", &tampered).is_err(), "bit flip at {index}");
        }
    }

    #[test]
    fn after_rotation_old_values_read_and_new_ones_use_the_new_key() {
        let old = ring(&[K1]);
        let sealed_by_k1 = old.seal("k", b"before").unwrap();
        let rotated = ring(&[K2, K1]);
        assert_eq!(rotated.active_id(), "k2");
        assert_eq!(rotated.open("k", &sealed_by_k1).unwrap(), b"before");
        let sealed_by_k2 = rotated.seal("k", b"after").unwrap();
        assert_eq!(sealed_key_id(&sealed_by_k2).as_deref(), Some("k2"));
        // With k1 retired, its values name the missing key.
        let error = ring(&[K2])
            .open("k", &sealed_by_k1)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("'k1'") && error.contains("not configured"),
            "{error}"
        );
    }

    #[test]
    fn a_plaintext_value_is_reported_as_not_sealed() {
        let error = ring(&[K1]).open("k", b"{\"plain\":1}").unwrap_err();
        assert!(error.to_string().contains("not sealed"), "{error}");
    }

    #[test]
    fn truncated_envelopes_are_corrupt_not_a_panic() {
        let keys = ring(&[K1]);
        let sealed = keys.seal("k", b"x").unwrap();
        for len in 0..sealed.len() {
            assert!(keys.open("k", &sealed[..len]).is_err());
        }
    }

    #[test]
    fn bad_key_entries_are_refused_without_echoing_the_key() {
        let cases = [
            ("no-colon-here", "entry 0 is not"),
            (
                "bad id!:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                "key id",
            ),
            ("k1:c2hvcnQ=", "exactly 32 bytes"),
            ("k1:not base64 at all", "exactly 32 bytes"),
        ];
        for (entry, expected) in cases {
            let error = Keyring::parse(&[SecretString::from(entry)])
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{entry}: {error}");
            assert!(!error.contains("c2hvcnQ"), "key material leaked: {error}");
        }
        assert_eq!(
            Keyring::parse(&[SecretString::from(K1), SecretString::from(K1)]).unwrap_err(),
            KeyringError::Duplicate { kid: "k1".into() }
        );
    }

    #[test]
    fn debug_shows_key_ids_only() {
        let debug = format!("{:?}", ring(&[K1, K2]));
        assert!(debug.contains("k1") && debug.contains("k2"));
        assert!(!debug.contains("AAECAw"), "{debug}");
    }
}
