#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Real WhatsApp webhook bodies (`shared/fixtures/whatsapp`) through the
//! inbound path exactly as the gateway runs it: signature check on the raw
//! bytes, then parse, then the normalised events compared with their
//! reviewed form in `tests/expected/<fixture>.json`.
//!
//! A new fixture file is a new test case. Generate its expected file with
//! `SWITCHBOARD_UPDATE_EXPECTED=1 cargo test -p switchboard-whatsapp --test fixtures`,
//! then read it against PLATFORMS.md before committing it.

use std::path::PathBuf;

use switchboard_meta::{LEGACY_SIGNATURE_HEADER, SIGNATURE_HEADER, sign};
use switchboard_model::testing::{check_expected, fixture_files, fixtures_dir};
use switchboard_model::{
    ChannelId, EventKind, Headers, MessageContent, ParseError, PlatformAdapter, RawWebhook,
    SecretString, VerifyError,
};
use switchboard_whatsapp::{WhatsAppAdapter, WhatsAppChannel};

const TEST_SECRET: &str = "fixture-app-secret";

/// pywa's captured delivery and the secret it was signed with (rotated
/// since); see shared/fixtures/SOURCES.md.
const GOLD_SECRET: &str = "1222e786b144d0e85b9f365372d93676";
const GOLD_SIGNATURE: &str =
    "sha256=54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc441";

fn adapter(secrets: &[&str]) -> WhatsAppAdapter {
    WhatsAppAdapter::new(WhatsAppChannel {
        id: ChannelId::new("shop-wa").unwrap(),
        app_secrets: secrets.iter().map(|s| SecretString::from(*s)).collect(),
        verify_tokens: vec![SecretString::from("verify-token")],
        access_token: SecretString::from("access-token"),
        phone_number_id: "1122334455667".into(),
    })
}

fn whatsapp_fixtures() -> PathBuf {
    fixtures_dir(env!("CARGO_MANIFEST_DIR")).join("whatsapp")
}

fn expected_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("expected")
}

fn check(adapter: &WhatsAppAdapter, headers: &dyn Headers, body: &[u8]) -> Result<(), VerifyError> {
    adapter.verify(RawWebhook::new(headers, body)).map(|_| ())
}

#[test]
fn every_fixture_verifies_parses_and_matches_its_reviewed_expected_form() {
    let adapter = adapter(&[TEST_SECRET]);
    let files = fixture_files(&whatsapp_fixtures());
    let mut problems = Vec::new();
    for (name, body) in &files {
        let signature = sign(TEST_SECRET, body);
        let headers = [(SIGNATURE_HEADER, signature.as_str())];
        let verified = match adapter.verify(RawWebhook::new(&headers, body)) {
            Ok(verified) => verified,
            Err(e) => {
                problems.push(format!(
                    "{name}: signed with the test secret but refused: {e}"
                ));
                continue;
            }
        };
        let events = match adapter.parse(&verified) {
            Ok(events) => events,
            Err(e) => {
                problems.push(format!("{name}: parse failed: {e}"));
                continue;
            }
        };
        if events.is_empty() {
            problems.push(format!(
                "{name}: no events; every fixture holds at least one"
            ));
        }
        let actual = serde_json::to_value(&events).unwrap();
        if let Some(difference) = check_expected(&expected_dir(), name, &actual) {
            problems.push(difference);
        }
    }
    // An expected file whose fixture is gone would silently stop being checked.
    for entry in std::fs::read_dir(expected_dir()).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if !files.iter().any(|(name, _)| *name == stem) {
            problems.push(format!("{}: no fixture of that name", path.display()));
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} fixtures differ:\n\n{}",
        problems.len(),
        files.len(),
        problems.join("\n\n")
    );
}

#[test]
fn the_gold_delivery_verifies_byte_for_byte_with_its_real_secret() {
    let body = std::fs::read(whatsapp_fixtures().join("text_signed_gold.json")).unwrap();
    // The captured body has no trailing newline; an editor adding one would
    // change the bytes Meta signed.
    assert_eq!(body.last(), Some(&b'}'));
    assert_eq!(sign(GOLD_SECRET, &body), GOLD_SIGNATURE);

    let adapter = adapter(&[GOLD_SECRET]);
    let headers = [(SIGNATURE_HEADER, GOLD_SIGNATURE)];
    let verified = adapter.verify(RawWebhook::new(&headers, &body)).unwrap();
    let events = adapter.parse(&verified).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].event_id.as_str(),
        "message:wamid.HBgMOTcyNTQ0NDAxMjQzFQIAEhggM0RFQTNCMEEwRTY3QzUwODYzMDc4NjQ4QzM4ODAxM0YA"
    );
    assert_eq!(events[0].business_id.as_deref(), Some("277321005464405"));
    assert_eq!(events[0].sender.display_name.as_deref(), Some("PyWa Tests"));
}

#[test]
fn the_gold_delivery_with_one_byte_changed_is_refused() {
    let mut body = std::fs::read(whatsapp_fixtures().join("text_signed_gold.json")).unwrap();
    let at = body.windows(3).position(|w| w == b"Hey").unwrap();
    body[at] = b'h';
    let headers = [(SIGNATURE_HEADER, GOLD_SIGNATURE)];
    assert_eq!(
        check(&adapter(&[GOLD_SECRET]), &headers, &body),
        Err(VerifyError::SignatureMismatch)
    );
}

#[test]
fn a_signature_made_with_another_secret_is_refused() {
    let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
    let forged = sign("attacker-guess", body);
    let headers = [(SIGNATURE_HEADER, forged.as_str())];
    assert_eq!(
        check(&adapter(&[TEST_SECRET]), &headers, body),
        Err(VerifyError::SignatureMismatch)
    );
}

#[test]
fn truncated_non_hex_and_unprefixed_signatures_are_malformed() {
    let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
    let good = sign(TEST_SECRET, body);
    let non_hex = format!("sha256={}", "g".repeat(64));
    let cases = [
        good[..good.len() - 2].to_owned(),
        non_hex,
        good.trim_start_matches("sha256=").to_owned(),
        format!("{good}00"),
        "sha256=".to_owned(),
    ];
    for header in &cases {
        let headers = [(SIGNATURE_HEADER, header.as_str())];
        assert_eq!(
            check(&adapter(&[TEST_SECRET]), &headers, body),
            Err(VerifyError::MalformedHeader(SIGNATURE_HEADER)),
            "{header}"
        );
    }
}

#[test]
fn uppercase_hex_and_a_lowercase_header_name_are_the_same_signature() {
    let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
    let upper = format!(
        "sha256={}",
        sign(TEST_SECRET, body)
            .trim_start_matches("sha256=")
            .to_uppercase()
    );
    let headers = [("x-hub-signature-256", upper.as_str())];
    assert_eq!(check(&adapter(&[TEST_SECRET]), &headers, body), Ok(()));
}

#[test]
fn an_empty_body_is_checked_like_any_other_and_then_is_not_json() {
    let adapter = adapter(&[TEST_SECRET]);
    let signature = sign(TEST_SECRET, b"");
    let headers = [(SIGNATURE_HEADER, signature.as_str())];
    let verified = adapter.verify(RawWebhook::new(&headers, b"")).unwrap();
    assert!(matches!(
        adapter.parse(&verified),
        Err(ParseError::NotJson(_))
    ));

    let other = sign(TEST_SECRET, b"{}");
    let headers = [(SIGNATURE_HEADER, other.as_str())];
    assert_eq!(
        check(&adapter, &headers, b""),
        Err(VerifyError::SignatureMismatch)
    );
}

#[test]
fn a_missing_signature_is_refused() {
    let headers = [("Content-Type", "application/json")];
    assert_eq!(
        check(&adapter(&[TEST_SECRET]), &headers, b"{}"),
        Err(VerifyError::MissingHeader(SIGNATURE_HEADER))
    );
}

#[test]
fn a_legacy_sha1_signature_alone_is_refused() {
    // Even a correct sha1 does not count: only SHA-256 is accepted.
    let headers = [(
        LEGACY_SIGNATURE_HEADER,
        "sha1=3daa41999293ff66c3eb313e04bcf77861bb0276",
    )];
    assert_eq!(
        check(&adapter(&[TEST_SECRET]), &headers, b"{}"),
        Err(VerifyError::LegacySignatureOnly)
    );
}

#[test]
fn a_channel_without_secrets_refuses_everything() {
    let body = b"{}";
    let signature = sign(TEST_SECRET, body);
    let headers = [(SIGNATURE_HEADER, signature.as_str())];
    assert_eq!(
        check(&adapter(&[]), &headers, body),
        Err(VerifyError::NoSecretConfigured)
    );
}

#[test]
fn the_previous_secret_still_verifies_during_rotation() {
    let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
    let signature = sign("old-secret", body);
    let headers = [(SIGNATURE_HEADER, signature.as_str())];
    assert_eq!(
        check(&adapter(&["new-secret", "old-secret"]), &headers, body),
        Ok(())
    );
}

/// A text message as Meta sends it: non-ASCII and `/`, `@` escaped.
const ESCAPED: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"1122334455667"},"contacts":[{"profile":{"name":"Ren\u00e9e"},"wa_id":"33612345678"}],"messages":[{"from":"33612345678","id":"wamid.A1","timestamp":"1730231903","type":"text","text":{"body":"J'ai mang\u00e9 des p\u00e2tes \ud83c\udf5d \u3066\u3059\u3068 https:\/\/shop.example\/a \u0040shop 100\u0025"}}]}}]}]}"#;

fn text_of(adapter: &WhatsAppAdapter, headers: &dyn Headers, body: &[u8]) -> String {
    let verified = adapter.verify(RawWebhook::new(headers, body)).unwrap();
    let events = adapter.parse(&verified).unwrap();
    match &events[0].kind {
        EventKind::Message(message) => match &message.content {
            MessageContent::Text { text, .. } => text.clone(),
            other => panic!("expected text, got {other:?}"),
        },
        other => panic!("expected a message, got {other:?}"),
    }
}

#[test]
fn an_escaped_non_ascii_body_verifies_as_sent_and_parses_to_the_real_text() {
    let adapter = adapter(&[TEST_SECRET]);
    let signature = sign(TEST_SECRET, ESCAPED.as_bytes());
    let headers = [(SIGNATURE_HEADER, signature.as_str())];
    assert_eq!(
        text_of(&adapter, &headers, ESCAPED.as_bytes()),
        "J'ai mangé des pâtes 🍝 てすと https://shop.example/a @shop 100%"
    );
}

#[test]
fn a_body_whose_escapes_were_decoded_on_the_way_still_verifies_against_the_escaped_form() {
    // A proxy turned `\u00e9` into raw UTF-8 but left the ASCII escapes
    // alone; Meta's signature covers the escaped form.
    let decoded = ESCAPED
        .replace(r"\u00e9", "é")
        .replace(r"\u00e2", "â")
        .replace(r"\ud83c\udf5d", "🍝")
        .replace(r"\u3066\u3059\u3068", "てすと");
    let adapter = adapter(&[TEST_SECRET]);
    let signature = sign(TEST_SECRET, ESCAPED.as_bytes());
    let headers = [(SIGNATURE_HEADER, signature.as_str())];
    assert_eq!(
        text_of(&adapter, &headers, decoded.as_bytes()),
        "J'ai mangé des pâtes 🍝 てすと https://shop.example/a @shop 100%"
    );
}

#[test]
fn a_signature_over_re_serialised_json_does_not_verify_the_real_body() {
    // What a framework that parsed and re-encoded the body would hash.
    let reserialised =
        serde_json::to_vec(&serde_json::from_str::<serde_json::Value>(ESCAPED).unwrap()).unwrap();
    assert_ne!(reserialised, ESCAPED.as_bytes());
    let signature = sign(TEST_SECRET, &reserialised);
    let headers = [(SIGNATURE_HEADER, signature.as_str())];
    assert_eq!(
        check(&adapter(&[TEST_SECRET]), &headers, ESCAPED.as_bytes()),
        Err(VerifyError::SignatureMismatch)
    );
}
