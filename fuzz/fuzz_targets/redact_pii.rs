//! The personal-data guards over arbitrary text: every log line goes
//! through `redact_pii` in the log writer, and every customer message
//! through `mask_sensitive`, so neither may panic, and what they leave must
//! not hold anything they would redact again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_core::guards::{find_card_numbers, find_emails, mask_sensitive, redact_pii};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let redacted = redact_pii(text);
    assert!(
        find_card_numbers(&redacted).is_empty(),
        "a card number survived redaction: {redacted:?}"
    );
    assert!(
        find_emails(&redacted).is_empty(),
        "an email survived redaction: {redacted:?}"
    );
    let masked = mask_sensitive(text);
    assert!(
        find_card_numbers(&masked.text).is_empty(),
        "a card number survived masking: {:?}",
        masked.text
    );
    if !find_card_numbers(text).is_empty() {
        assert!(masked.had_card_number);
    }
});
