//! One-time codes that link a conversation to a shop account: pure ledger
//! logic, no storage, no clock, no randomness of its own.
//!
//! Rules: 6 digits; valid for 5 minutes; only a salted SHA-256 hash is kept;
//! at most 5 wrong tries, then locked for 15 minutes; single use; bound to
//! the conversation and platform user that asked for it; at most
//! [`MAX_SENDS_PER_ACCOUNT`] codes sent to one account and
//! [`MAX_SENDS_PER_CONVERSATION`] asked for from one conversation per
//! [`SEND_WINDOW_MS`], so the bot cannot be used to flood someone's phone or
//! mailbox (the lock stops guessing, not sending). The gateway stores
//! one record per account, so a newer request replaces an older one and a
//! code typed in another chat never matches.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::model::ConversationKey;

pub const CODE_DIGITS: usize = 6;
pub const CODE_TTL_MS: i64 = 5 * 60 * 1000;
pub const MAX_ATTEMPTS: u32 = 5;
pub const LOCK_MS: i64 = 15 * 60 * 1000;
/// The window the send caps count in.
pub const SEND_WINDOW_MS: i64 = 60 * 60 * 1000;
/// Codes one account may be sent per window, whichever chats asked.
pub const MAX_SENDS_PER_ACCOUNT: u64 = 5;
/// Codes one conversation may ask for per window, whichever accounts: one
/// chat cycling through many victims' addresses is stopped too.
pub const MAX_SENDS_PER_CONVERSATION: u64 = 10;

/// A code as the gateway stores it. Holds no plain code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkCodeRecord {
    /// Lowercase hex SHA-256 of `salt bytes || code digits`.
    pub code_hash: String,
    /// Lowercase hex of 16 random bytes.
    pub salt: String,
    pub account_id: String,
    pub conversation: ConversationKey,
    pub user_id: String,
    pub issued_ms: i64,
    pub expires_ms: i64,
    /// Wrong tries so far.
    pub attempts: u32,
    pub locked_until_ms: Option<i64>,
    pub used: bool,
}

/// Why a typed code was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LinkFailure {
    #[error("wrong code, {remaining} tries left")]
    Wrong { remaining: u32 },
    #[error("too many wrong codes, locked until {until_ms}")]
    Locked { until_ms: i64 },
    #[error("the code has expired")]
    Expired,
    #[error("the code was already used")]
    Used,
    #[error("the code was requested in another conversation or by another user")]
    WrongRequester,
}

/// A new record and the plain code to send out of band. `random` must come
/// from a cryptographically secure source; bytes 0..16 pick the code, bytes
/// 16..32 are the salt.
pub fn issue(
    account_id: &str,
    conversation: &ConversationKey,
    user_id: &str,
    now_ms: i64,
    random: [u8; 32],
) -> (LinkCodeRecord, String) {
    let code = code_from_bytes(&random[..16]);
    let salt = &random[16..];
    let record = LinkCodeRecord {
        code_hash: hash_code(salt, &code),
        salt: hex::encode(salt),
        account_id: account_id.to_owned(),
        conversation: conversation.clone(),
        user_id: user_id.to_owned(),
        issued_ms: now_ms,
        expires_ms: now_ms.saturating_add(CODE_TTL_MS),
        attempts: 0,
        locked_until_ms: None,
        used: false,
    };
    (record, code)
}

/// Whether a new code may replace `existing` (the account's current
/// record). A locked account gets no new code until the lock ends, or asking
/// again would reset the count of wrong tries.
pub fn may_issue(existing: Option<&LinkCodeRecord>, now_ms: i64) -> Result<(), LinkFailure> {
    match existing.and_then(|record| record.locked_until_ms) {
        Some(until_ms) if now_ms < until_ms => Err(LinkFailure::Locked { until_ms }),
        _ => Ok(()),
    }
}

/// Checks a typed code, counting a wrong one against the record. On success
/// the record is marked used, so the same code never works twice.
pub fn check(
    record: &mut LinkCodeRecord,
    code: &str,
    conversation: &ConversationKey,
    user_id: &str,
    now_ms: i64,
) -> Result<(), LinkFailure> {
    if record.used {
        return Err(LinkFailure::Used);
    }
    if let Some(until_ms) = record.locked_until_ms
        && now_ms < until_ms
    {
        return Err(LinkFailure::Locked { until_ms });
    }
    // A requester who is not the one the code was issued to is turned away
    // without counting a try, so nobody can lock another customer out.
    if &record.conversation != conversation || record.user_id != user_id {
        return Err(LinkFailure::WrongRequester);
    }
    if now_ms >= record.expires_ms {
        return Err(LinkFailure::Expired);
    }
    let code = code.trim();
    let matches = is_code_shaped(code)
        && hex::decode(&record.salt).is_ok_and(|salt| {
            let expected = hash_code(&salt, code);
            bool::from(expected.as_bytes().ct_eq(record.code_hash.as_bytes()))
        });
    if matches {
        record.used = true;
        return Ok(());
    }
    record.attempts = record.attempts.saturating_add(1);
    if record.attempts >= MAX_ATTEMPTS {
        let until_ms = now_ms.saturating_add(LOCK_MS);
        record.locked_until_ms = Some(until_ms);
        return Err(LinkFailure::Locked { until_ms });
    }
    Err(LinkFailure::Wrong {
        remaining: MAX_ATTEMPTS - record.attempts,
    })
}

/// Whether `text` has the shape of a code: exactly six ASCII digits.
pub fn is_code_shaped(text: &str) -> bool {
    text.len() == CODE_DIGITS && text.bytes().all(|b| b.is_ascii_digit())
}

fn hash_code(salt: &[u8], code: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(code.as_bytes());
    hex::encode(hasher.finalize())
}

/// Six uniformly distributed digits: 4-byte windows are rejected above the
/// largest multiple of 10^6 so no code is likelier than another.
fn code_from_bytes(bytes: &[u8]) -> String {
    const LIMIT: u32 = u32::MAX - (u32::MAX % 1_000_000) - 1;
    let value = bytes
        .chunks_exact(4)
        .map(|chunk| u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
        .find(|value| *value <= LIMIT)
        // Four windows all above the limit happen with odds of ~1e-25; the
        // small bias of the fallback is harmless then.
        .unwrap_or_else(|| {
            bytes.iter().fold(0u32, |acc, b| {
                acc.wrapping_mul(31).wrapping_add(u32::from(*b))
            })
        });
    format!("{:06}", value % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChannelId, ChatId, Platform};

    #[test]
    fn codes_are_six_digits_and_differ_with_the_random_bytes() {
        let key = ConversationKey::new(
            Platform::Telegram,
            ChannelId::new("tg").unwrap(),
            ChatId::Int(1),
        );
        let (_, a) = issue("acc", &key, "1", 0, [1; 32]);
        let (_, b) = issue("acc", &key, "1", 0, [2; 32]);
        assert!(is_code_shaped(&a) && is_code_shaped(&b));
        assert_ne!(a, b);
    }

    #[test]
    fn bytes_above_the_limit_are_skipped() {
        let mut bytes = [0xff_u8; 16];
        bytes[4..8].copy_from_slice(&123_456_u32.to_be_bytes());
        assert_eq!(code_from_bytes(&bytes), "123456");
    }
}
