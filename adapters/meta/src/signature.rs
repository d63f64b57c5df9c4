//! `X-Hub-Signature-256: sha256=<hex>` = HMAC-SHA256(app secret, raw body).
//!
//! Meta signs the bytes it sends, with non-ASCII escaped as `\uXXXX`; the
//! body is hashed exactly as received and never re-serialised. Should a
//! proxy on the way have turned those escapes into raw UTF-8, the check is
//! repeated once over the re-escaped form, as PLATFORMS.md §1.2 recommends.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use switchboard_model::{ExposeSecret, Headers, SecretString, VerifyError};

pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
pub const LEGACY_SIGNATURE_HEADER: &str = "X-Hub-Signature";

type HmacSha256 = Hmac<Sha256>;

/// Checks the signature header against `body` with any of `secrets` (more
/// than one while an app secret is being rotated). Constant time in the
/// digest comparison.
pub fn verify_signature(
    headers: &dyn Headers,
    body: &[u8],
    secrets: &[SecretString],
) -> Result<(), VerifyError> {
    let Some(header) = headers.get(SIGNATURE_HEADER) else {
        return Err(if headers.get(LEGACY_SIGNATURE_HEADER).is_some() {
            VerifyError::LegacySignatureOnly
        } else {
            VerifyError::MissingHeader(SIGNATURE_HEADER)
        });
    };
    let expected = decode_header(header)?;
    if secrets.is_empty() {
        return Err(VerifyError::NoSecretConfigured);
    }
    let escaped = escape_non_ascii(body);
    for secret in secrets {
        if digest_matches(secret, body, &expected)
            || escaped
                .as_deref()
                .is_some_and(|alt| digest_matches(secret, alt, &expected))
        {
            return Ok(());
        }
    }
    Err(VerifyError::SignatureMismatch)
}

/// `sha256=` followed by exactly 64 hex digits (either case).
fn decode_header(header: &str) -> Result<[u8; 32], VerifyError> {
    let malformed = VerifyError::MalformedHeader(SIGNATURE_HEADER);
    let hex_digits = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(malformed.clone())?;
    let mut digest = [0u8; 32];
    hex::decode_to_slice(hex_digits, &mut digest).map_err(|_| malformed)?;
    Ok(digest)
}

fn digest_matches(secret: &SecretString, body: &[u8], expected: &[u8; 32]) -> bool {
    let Ok(mut mac) = HmacSha256::new_from_slice(secret.expose_secret().as_bytes()) else {
        return false;
    };
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(expected).is_ok()
}

/// The header value Meta would send for `body`: used by tests, the chat
/// client and the simulator.
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The body with every non-ASCII character written as lowercase `\uXXXX`
/// (UTF-16 units), the form Meta signs. `None` when there is nothing to
/// escape or the body is not UTF-8.
fn escape_non_ascii(body: &[u8]) -> Option<Vec<u8>> {
    if body.is_ascii() {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    let mut out = Vec::with_capacity(body.len() + body.len() / 2);
    let mut units = [0u16; 2];
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c as u8);
        } else {
            for unit in c.encode_utf16(&mut units) {
                out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Vec<SecretString> {
        vec![SecretString::from(s)]
    }

    #[test]
    fn courier_hmac_vectors_match() {
        assert_eq!(
            sign("sesame", b"hello world"),
            "sha256=f39034b29165ec6a5104d9aef27266484ab26c8caa7bca8bcb2dd02e8be61b17"
        );
        assert_eq!(
            sign("sesame", b"hello world2"),
            "sha256=60905fdf409d0b4f721e99f6f25b31567a68a6b45e933d814e17a246be4c5a53"
        );
    }

    #[test]
    fn a_correct_signature_verifies() {
        let sig = sign("sesame", b"hello world");
        let headers = [("x-hub-signature-256", sig.as_str())];
        assert_eq!(
            verify_signature(&headers, b"hello world", &secret("sesame")),
            Ok(())
        );
    }

    #[test]
    fn uppercase_hex_is_the_same_digest() {
        let sig = sign("sesame", b"hello world").replace("sha256=", "");
        let header = format!("sha256={}", sig.to_uppercase());
        let headers = [(SIGNATURE_HEADER, header.as_str())];
        assert_eq!(
            verify_signature(&headers, b"hello world", &secret("sesame")),
            Ok(())
        );
    }

    #[test]
    fn wrong_secret_and_changed_body_are_mismatches() {
        let sig = sign("sesame", b"hello world");
        let headers = [(SIGNATURE_HEADER, sig.as_str())];
        assert_eq!(
            verify_signature(&headers, b"hello world", &secret("open")),
            Err(VerifyError::SignatureMismatch)
        );
        assert_eq!(
            verify_signature(&headers, b"hello world!", &secret("sesame")),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn empty_body_is_verified_like_any_other() {
        let sig = sign("sesame", b"");
        let headers = [(SIGNATURE_HEADER, sig.as_str())];
        assert_eq!(verify_signature(&headers, b"", &secret("sesame")), Ok(()));
        assert_eq!(
            verify_signature(&headers, b"", &secret("other")),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn truncated_non_hex_and_unprefixed_signatures_are_malformed() {
        let good = sign("sesame", b"x");
        for bad in [
            &good[..good.len() - 1],
            "sha256=zz34b29165ec6a5104d9aef27266484ab26c8caa7bca8bcb2dd02e8be61b17",
            good.trim_start_matches("sha256="),
            "sha1=3daa41999293ff66c3eb313e04bcf77861bb0276",
            "",
        ] {
            let headers = [(SIGNATURE_HEADER, bad)];
            assert_eq!(
                verify_signature(&headers, b"x", &secret("sesame")),
                Err(VerifyError::MalformedHeader(SIGNATURE_HEADER)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn missing_header_and_legacy_sha1_only_are_distinct_errors() {
        let none: [(&str, &str); 0] = [];
        assert_eq!(
            verify_signature(&none, b"x", &secret("s")),
            Err(VerifyError::MissingHeader(SIGNATURE_HEADER))
        );
        let legacy = [(
            LEGACY_SIGNATURE_HEADER,
            "sha1=3daa41999293ff66c3eb313e04bcf77861bb0276",
        )];
        assert_eq!(
            verify_signature(&legacy, b"x", &secret("s")),
            Err(VerifyError::LegacySignatureOnly)
        );
    }

    #[test]
    fn either_secret_verifies_during_rotation() {
        let sig = sign("new", b"body");
        let headers = [(SIGNATURE_HEADER, sig.as_str())];
        let secrets = [SecretString::from("old"), SecretString::from("new")];
        assert_eq!(verify_signature(&headers, b"body", &secrets), Ok(()));
        assert_eq!(
            verify_signature(&headers, b"body", &[]),
            Err(VerifyError::NoSecretConfigured)
        );
    }

    #[test]
    fn raw_utf8_body_verifies_against_the_escaped_form_meta_signs() {
        let escaped = br#"{"text":"J'ai mang\u00e9 des p\u00e2tes \ud83d\ude00"}"#;
        let raw = r#"{"text":"J'ai mangé des pâtes 😀"}"#;
        let sig = sign("s", escaped);
        let headers = [(SIGNATURE_HEADER, sig.as_str())];
        assert_eq!(verify_signature(&headers, escaped, &secret("s")), Ok(()));
        assert_eq!(
            verify_signature(&headers, raw.as_bytes(), &secret("s")),
            Ok(())
        );
        // The decoded text itself is a different body and must not pass.
        let sig_raw = sign("s", raw.as_bytes());
        let headers = [(SIGNATURE_HEADER, sig_raw.as_str())];
        assert_eq!(
            verify_signature(&headers, escaped, &secret("s")),
            Err(VerifyError::SignatureMismatch)
        );
    }
}
