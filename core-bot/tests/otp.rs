//! The one-time-code rules, end to end on the pure ledger.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use switchboard_core::model::{ChannelId, ChatId, ConversationKey, Platform};
use switchboard_core::otp::{
    CODE_TTL_MS, LOCK_MS, LinkFailure, MAX_ATTEMPTS, check, is_code_shaped, issue, may_issue,
};

fn chat(id: i64) -> ConversationKey {
    ConversationKey::new(
        Platform::Telegram,
        ChannelId::new("tg").unwrap(),
        ChatId::Int(id),
    )
}

fn wrong_code(code: &str) -> String {
    if code == "000000" {
        "111111".into()
    } else {
        "000000".into()
    }
}

#[test]
fn the_right_code_links_once_and_only_once() {
    let (mut record, code) = issue("acc-1", &chat(1), "u1", 0, [7; 32]);
    assert!(is_code_shaped(&code));
    assert_eq!(check(&mut record, &code, &chat(1), "u1", 1_000), Ok(()));
    assert_eq!(
        check(&mut record, &code, &chat(1), "u1", 2_000),
        Err(LinkFailure::Used)
    );
}

#[test]
fn only_a_salted_hash_of_the_code_is_stored() {
    let (record, code) = issue("acc-1", &chat(1), "u1", 0, [9; 32]);
    let json = serde_json::to_string(&record).unwrap();
    assert!(!json.contains(&code), "{json}");
    assert_eq!(record.code_hash.len(), 64);
    assert_eq!(record.salt.len(), 32);
    // The same code with another salt hashes differently.
    let mut other_random = [9; 32];
    other_random[20] = 1;
    let (other, other_code) = issue("acc-1", &chat(1), "u1", 0, other_random);
    assert_eq!(other_code, code);
    assert_ne!(other.code_hash, record.code_hash);
}

#[test]
fn codes_expire_after_five_minutes() {
    let (mut record, code) = issue("acc-1", &chat(1), "u1", 0, [3; 32]);
    assert_eq!(
        check(&mut record, &code, &chat(1), "u1", CODE_TTL_MS),
        Err(LinkFailure::Expired)
    );
    let (mut record, code) = issue("acc-1", &chat(1), "u1", 0, [3; 32]);
    assert_eq!(
        check(&mut record, &code, &chat(1), "u1", CODE_TTL_MS - 1),
        Ok(())
    );
}

#[test]
fn five_wrong_tries_lock_for_fifteen_minutes_even_against_the_right_code() {
    let (mut record, code) = issue("acc-1", &chat(1), "u1", 0, [5; 32]);
    let wrong = wrong_code(&code);
    for attempt in 1..MAX_ATTEMPTS {
        assert_eq!(
            check(&mut record, &wrong, &chat(1), "u1", 1_000),
            Err(LinkFailure::Wrong {
                remaining: MAX_ATTEMPTS - attempt
            })
        );
    }
    let locked = Err(LinkFailure::Locked {
        until_ms: 1_000 + LOCK_MS,
    });
    assert_eq!(check(&mut record, &wrong, &chat(1), "u1", 1_000), locked);
    assert_eq!(check(&mut record, &code, &chat(1), "u1", 2_000), locked);
    // After the lock the code has long expired; a new one must be issued.
    assert_eq!(
        check(&mut record, &code, &chat(1), "u1", 1_000 + LOCK_MS),
        Err(LinkFailure::Expired)
    );
}

#[test]
fn a_code_is_bound_to_the_chat_and_user_that_asked() {
    let (mut record, code) = issue("acc-1", &chat(1), "u1", 0, [4; 32]);
    assert_eq!(
        check(&mut record, &code, &chat(2), "u1", 1_000),
        Err(LinkFailure::WrongRequester)
    );
    assert_eq!(
        check(&mut record, &code, &chat(1), "u2", 1_000),
        Err(LinkFailure::WrongRequester)
    );
    // Wrong requesters do not burn the owner's tries.
    assert_eq!(record.attempts, 0);
    assert_eq!(check(&mut record, &code, &chat(1), "u1", 1_000), Ok(()));
}

#[test]
fn malformed_codes_count_as_wrong() {
    let (mut record, _) = issue("acc-1", &chat(1), "u1", 0, [6; 32]);
    assert_eq!(
        check(&mut record, "12a456", &chat(1), "u1", 1),
        Err(LinkFailure::Wrong { remaining: 4 })
    );
}

#[test]
fn codes_spread_over_all_six_digits() {
    let mut first_digits = std::collections::BTreeSet::new();
    for seed in 0..=255u8 {
        let mut random = [0u8; 32];
        random[..16].copy_from_slice(&[seed; 16]);
        random[0] = seed.wrapping_mul(37);
        random[3] = seed.wrapping_mul(101);
        let (_, code) = issue("acc", &chat(1), "u", 0, random);
        assert!(is_code_shaped(&code));
        first_digits.insert(code.as_bytes()[0]);
    }
    assert!(first_digits.len() >= 8, "{first_digits:?}");
}

#[test]
fn a_locked_account_gets_no_new_code_until_the_lock_ends() {
    let (mut record, code) = issue("acc-1", &chat(1), "u1", 0, [8; 32]);
    let wrong = wrong_code(&code);
    for _ in 0..MAX_ATTEMPTS {
        let _ = check(&mut record, &wrong, &chat(1), "u1", 10);
    }
    assert_eq!(
        may_issue(Some(&record), 20),
        Err(LinkFailure::Locked {
            until_ms: 10 + LOCK_MS
        })
    );
    assert_eq!(may_issue(Some(&record), 10 + LOCK_MS), Ok(()));
    assert_eq!(may_issue(None, 0), Ok(()));
}
