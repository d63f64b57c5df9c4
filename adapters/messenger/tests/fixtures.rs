//! Every real Messenger payload in `shared/fixtures/messenger`: signed,
//! verified, parsed and compared with its reviewed normalised form in
//! `tests/expected/`. A new fixture file is a new case; regenerate with
//! `SWITCHBOARD_UPDATE_EXPECTED=1` and read the result before committing.
//!
//! Also the signature vectors listed in `shared/fixtures/SOURCES.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use switchboard_messenger::{MessengerAdapter, MessengerChannel};
use switchboard_meta::{LEGACY_SIGNATURE_HEADER, SIGNATURE_HEADER, sign};
use switchboard_model::testing::{check_expected, fixture_files, fixtures_dir};
use switchboard_model::{
    ChannelId, EventKind, Headers, PlatformAdapter, RawWebhook, SecretString, VerifyError,
};

const TEST_SECRET: &str = "fixture-app-secret";

fn adapter(secret: &str) -> MessengerAdapter {
    MessengerAdapter::new(MessengerChannel {
        id: ChannelId::new("shop-messenger").unwrap(),
        app_secrets: vec![SecretString::from(secret)],
        verify_tokens: vec![SecretString::from("verify-me")],
        page_access_token: SecretString::from("page-token"),
        page_id: None,
    })
}

fn messenger_fixtures() -> PathBuf {
    fixtures_dir(env!("CARGO_MANIFEST_DIR")).join("messenger")
}

fn fixture(name: &str) -> Vec<u8> {
    let path = messenger_fixtures().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn verify_with(
    adapter: &MessengerAdapter,
    headers: &dyn Headers,
    body: &[u8],
) -> Result<(), VerifyError> {
    adapter.verify(RawWebhook::new(headers, body)).map(|_| ())
}

#[test]
fn every_messenger_fixture_verifies_and_parses_to_its_reviewed_events() {
    let adapter = adapter(TEST_SECRET);
    let expected_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expected");
    let mut differences = Vec::new();
    let files = fixture_files(&messenger_fixtures());
    for (name, body) in &files {
        let signature = sign(TEST_SECRET, body);
        let headers = [(SIGNATURE_HEADER, signature.as_str())];
        let verified = match adapter.verify(RawWebhook::new(&headers, body)) {
            Ok(verified) => verified,
            Err(e) => {
                differences.push(format!("{name}: signed body was refused: {e}"));
                continue;
            }
        };
        let events = match adapter.parse(&verified) {
            Ok(events) => events,
            Err(e) => {
                differences.push(format!("{name}: does not parse: {e}"));
                continue;
            }
        };
        if events.is_empty() {
            differences.push(format!("{name}: parsed to no events"));
        }
        let actual = serde_json::to_value(&events).unwrap();
        differences.extend(check_expected(&expected_dir, name, &actual));
    }
    assert!(
        differences.is_empty(),
        "{} of {} fixtures differ:\n\n{}",
        differences.len(),
        files.len(),
        differences.join("\n\n")
    );
}

#[test]
fn echoes_in_the_fixtures_are_never_customer_events() {
    let adapter = adapter(TEST_SECRET);
    for name in ["echo_text.json", "echo_template.json", "echo_minimal.json"] {
        let body = fixture(name);
        let signature = sign(TEST_SECRET, &body);
        let headers = [(SIGNATURE_HEADER, signature.as_str())];
        let verified = adapter.verify(RawWebhook::new(&headers, &body)).unwrap();
        let events = adapter.parse(&verified).unwrap();
        assert_eq!(events.len(), 1, "{name}");
        assert!(matches!(events[0].kind, EventKind::Echo { .. }), "{name}");
        assert!(!events[0].is_from_customer(), "{name}");
    }
}

// --- Signature vectors from SOURCES.md -----------------------------------

const GOLD_SECRET: &str = "60efff025951cddde78c8d03de52cc90";
const GOLD_SHA1: &str = "sha1=3daa41999293ff66c3eb313e04bcf77861bb0276";
const GOLD_DERIVED_SHA256: &str =
    "sha256=2c28be6e4b8c62b732b3487f445dbec6624868db6844b347567ebc86d7da3ad4";
const DEVELOP_SECRET: &str = "develop";
const JA_SHA256: &str = "sha256=825aeeb8b9946c98251f40cd5a14061d926febd48c2e4e485866206dba1d477d";
const PERCENT_SHA256: &str =
    "sha256=b26624beedb07b08995fa5bc1f2a5a87fe487664ca88d9ddc4ad593cf82b74af";

#[test]
fn the_gold_legacy_sha1_signature_alone_is_refused_as_legacy_only() {
    let body = fixture("text_signed_gold_sha1.json");
    assert_eq!(
        verify_with(
            &adapter(GOLD_SECRET),
            &[(LEGACY_SIGNATURE_HEADER, GOLD_SHA1)],
            &body
        ),
        Err(VerifyError::LegacySignatureOnly)
    );
}

#[test]
fn the_gold_body_verifies_with_its_derived_sha256_even_beside_the_legacy_header() {
    let body = fixture("text_signed_gold_sha1.json");
    let adapter = adapter(GOLD_SECRET);
    assert_eq!(sign(GOLD_SECRET, &body), GOLD_DERIVED_SHA256);
    assert_eq!(
        verify_with(&adapter, &[(SIGNATURE_HEADER, GOLD_DERIVED_SHA256)], &body),
        Ok(())
    );
    assert_eq!(
        verify_with(
            &adapter,
            &[
                (LEGACY_SIGNATURE_HEADER, GOLD_SHA1),
                ("x-hub-signature-256", GOLD_DERIVED_SHA256)
            ],
            &body
        ),
        Ok(())
    );
}

#[test]
fn escaped_unicode_and_percent_bodies_verify_with_the_develop_secret() {
    let adapter = adapter(DEVELOP_SECRET);
    for (name, signature) in [
        ("text_unicode_escaped_ja.json", JA_SHA256),
        ("postback_percent_escaped.json", PERCENT_SHA256),
    ] {
        let body = fixture(name);
        assert_eq!(
            verify_with(&adapter, &[(SIGNATURE_HEADER, signature)], &body),
            Ok(()),
            "{name}"
        );
    }
}

#[test]
fn the_escaped_body_parses_to_the_decoded_japanese_text() {
    let body = fixture("text_unicode_escaped_ja.json");
    let adapter = adapter(DEVELOP_SECRET);
    let headers = [(SIGNATURE_HEADER, JA_SHA256)];
    let verified = adapter.verify(RawWebhook::new(&headers, &body)).unwrap();
    let events = adapter.parse(&verified).unwrap();
    let EventKind::Message(message) = &events[0].kind else {
        panic!("expected a message, got {:?}", events[0].kind);
    };
    assert_eq!(message.content.text(), Some("てすとてすと"));
}

#[test]
fn a_decoded_and_re_serialised_body_no_longer_matches_the_signature() {
    // What a framework that parses before verifying would hash.
    let body = fixture("postback_percent_escaped.json");
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let reserialised = serde_json::to_vec(&value).unwrap();
    assert_ne!(reserialised, body);
    assert_eq!(
        verify_with(
            &adapter(DEVELOP_SECRET),
            &[(SIGNATURE_HEADER, PERCENT_SHA256)],
            &reserialised
        ),
        Err(VerifyError::SignatureMismatch)
    );
}

#[test]
fn a_wrong_secret_is_a_mismatch() {
    let body = fixture("text_unicode_escaped_ja.json");
    assert_eq!(
        verify_with(
            &adapter("not-develop"),
            &[(SIGNATURE_HEADER, JA_SHA256)],
            &body
        ),
        Err(VerifyError::SignatureMismatch)
    );
}

#[test]
fn a_body_changed_by_one_byte_is_a_mismatch() {
    let mut body = fixture("text_unicode_escaped_ja.json");
    let last = body.len() - 2;
    body[last] = b' ';
    assert_eq!(
        verify_with(
            &adapter(DEVELOP_SECRET),
            &[(SIGNATURE_HEADER, JA_SHA256)],
            &body
        ),
        Err(VerifyError::SignatureMismatch)
    );
}

#[test]
fn truncated_and_non_hex_signatures_are_malformed() {
    let body = fixture("text_unicode_escaped_ja.json");
    let adapter = adapter(DEVELOP_SECRET);
    let truncated = &JA_SHA256[..JA_SHA256.len() - 2];
    let non_hex = JA_SHA256.replace('8', "g");
    let unprefixed = JA_SHA256.trim_start_matches("sha256=");
    for bad in [truncated, non_hex.as_str(), unprefixed, "sha256=", ""] {
        assert_eq!(
            verify_with(&adapter, &[(SIGNATURE_HEADER, bad)], &body),
            Err(VerifyError::MalformedHeader(SIGNATURE_HEADER)),
            "{bad:?}"
        );
    }
}

#[test]
fn uppercase_hex_signatures_are_accepted() {
    let body = fixture("postback_percent_escaped.json");
    let upper = format!(
        "sha256={}",
        PERCENT_SHA256.trim_start_matches("sha256=").to_uppercase()
    );
    assert_eq!(
        verify_with(
            &adapter(DEVELOP_SECRET),
            &[(SIGNATURE_HEADER, upper.as_str())],
            &body
        ),
        Ok(())
    );
}

#[test]
fn an_empty_body_verifies_only_with_its_own_signature() {
    let adapter = adapter(TEST_SECRET);
    let signature = sign(TEST_SECRET, b"");
    assert_eq!(
        verify_with(&adapter, &[(SIGNATURE_HEADER, signature.as_str())], b""),
        Ok(())
    );
    assert_eq!(
        verify_with(&adapter, &[(SIGNATURE_HEADER, JA_SHA256)], b""),
        Err(VerifyError::SignatureMismatch)
    );
}

#[test]
fn a_missing_signature_header_is_refused() {
    let body = fixture("text_courier.json");
    assert_eq!(
        verify_with(
            &adapter(TEST_SECRET),
            &[("content-type", "application/json")],
            &body
        ),
        Err(VerifyError::MissingHeader(SIGNATURE_HEADER))
    );
}

#[test]
fn a_channel_without_app_secrets_refuses_everything() {
    let body = fixture("text_courier.json");
    let mut channel = MessengerChannel {
        id: ChannelId::new("shop-messenger").unwrap(),
        app_secrets: vec![],
        verify_tokens: vec![],
        page_access_token: SecretString::from("page-token"),
        page_id: None,
    };
    let signature = sign("", &body);
    let headers = [(SIGNATURE_HEADER, signature.as_str())];
    assert_eq!(
        verify_with(&MessengerAdapter::new(channel.clone()), &headers, &body),
        Err(VerifyError::NoSecretConfigured)
    );
    // During rotation either secret verifies.
    channel.app_secrets = vec![SecretString::from("old"), SecretString::from(TEST_SECRET)];
    let signature = sign(TEST_SECRET, &body);
    let headers = [(SIGNATURE_HEADER, signature.as_str())];
    assert_eq!(
        verify_with(&MessengerAdapter::new(channel), &headers, &body),
        Ok(())
    );
}
