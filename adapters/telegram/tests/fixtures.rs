#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every real Telegram payload in `shared/fixtures/telegram` goes through
//! the adapter as the gateway would use it (verify with the secret header,
//! then parse) and must match its reviewed normal form in
//! `tests/expected/<name>.json`. A new fixture file is a new test case;
//! `SWITCHBOARD_UPDATE_EXPECTED=1` writes its expected file for review.

use std::path::Path;

use switchboard_model::testing::{check_expected, fixture_files, fixtures_dir};
use switchboard_model::{
    ChannelId, PlatformAdapter, RawWebhook, SecretString, VerifyError, verify,
};
use switchboard_telegram::{SECRET_TOKEN_HEADER, TelegramAdapter, TelegramChannel};

const SECRET: &str = "fixture_secret-token";

fn adapter() -> TelegramAdapter {
    TelegramAdapter::new(TelegramChannel {
        id: ChannelId::new("shop-telegram").unwrap(),
        bot_token: SecretString::from("123456:fixture-bot-token"),
        secret_tokens: vec![SecretString::from(SECRET)],
    })
}

fn telegram_fixtures() -> Vec<(String, Vec<u8>)> {
    fixture_files(&fixtures_dir(env!("CARGO_MANIFEST_DIR")).join("telegram"))
}

#[test]
fn every_telegram_fixture_parses_to_its_reviewed_normal_form() {
    let adapter = adapter();
    let expected_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expected");
    let headers = [
        ("Content-Type", "application/json"),
        (SECRET_TOKEN_HEADER, SECRET),
    ];
    let mut differences = Vec::new();
    let fixtures = telegram_fixtures();
    for (name, body) in &fixtures {
        let verified = match verify(&adapter, RawWebhook::new(&headers, body)) {
            Ok(verified) => verified,
            Err(e) => {
                differences.push(format!("{name}: not verified: {e}"));
                continue;
            }
        };
        let events = match adapter.parse(&verified) {
            Ok(events) => events,
            Err(e) => {
                differences.push(format!("{name}: not parsed: {e}"));
                continue;
            }
        };
        let actual = serde_json::to_value(&events).unwrap();
        differences.extend(check_expected(&expected_dir, name, &actual));
    }
    assert!(
        differences.is_empty(),
        "{} of {} fixtures differ:\n{}",
        differences.len(),
        fixtures.len(),
        differences.join("\n")
    );
}

#[test]
fn no_fixture_gets_past_verify_with_a_forged_or_missing_token() {
    let adapter = adapter();
    let forged = [(SECRET_TOKEN_HEADER, "fixture_secret-tokeN")];
    let missing = [("Content-Type", "application/json")];
    for (name, body) in telegram_fixtures() {
        assert_eq!(
            verify(&adapter, RawWebhook::new(&forged, &body)).unwrap_err(),
            VerifyError::SecretTokenMismatch,
            "{name}"
        );
        assert_eq!(
            verify(&adapter, RawWebhook::new(&missing, &body)).unwrap_err(),
            VerifyError::MissingHeader(SECRET_TOKEN_HEADER),
            "{name}"
        );
    }
}
