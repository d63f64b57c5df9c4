//! Telegram proves a webhook with the `secret_token` given to `setWebhook`,
//! echoed in a header on every request. There is no body signature, so this
//! comparison is the whole of the authentication.

use subtle::{Choice, ConstantTimeEq};
use switchboard_model::{ExposeSecret, Headers, SecretString, VerifyError};

/// The header Telegram sends the webhook's `secret_token` in.
pub const SECRET_TOKEN_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// `setWebhook` accepts 1-256 characters, so a longer header is no token.
const MAX_TOKEN_LEN: usize = 256;

fn is_well_formed(token: &str) -> bool {
    (1..=MAX_TOKEN_LEN).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Compares without leaking, through timing, where the first difference is
/// or how long the configured token is: both sides are padded to the
/// longest legal token and the lengths are compared in constant time too.
fn token_matches(candidate: &[u8], configured: &[u8]) -> Choice {
    if candidate.len() > MAX_TOKEN_LEN || configured.len() > MAX_TOKEN_LEN {
        // Telegram refuses such a secret_token, so it can never match; the
        // length of a misconfigured secret is not worth hiding.
        return Choice::from(0);
    }
    let mut left = [0u8; MAX_TOKEN_LEN];
    let mut right = [0u8; MAX_TOKEN_LEN];
    left[..candidate.len()].copy_from_slice(candidate);
    right[..configured.len()].copy_from_slice(configured);
    let same_len = (candidate.len() as u64).ct_eq(&(configured.len() as u64));
    left.ct_eq(&right) & same_len
}

pub(crate) fn check_secret_token(
    headers: &dyn Headers,
    configured: &[SecretString],
) -> Result<(), VerifyError> {
    let presented = headers
        .get(SECRET_TOKEN_HEADER)
        .ok_or(VerifyError::MissingHeader(SECRET_TOKEN_HEADER))?;
    if !is_well_formed(presented) {
        return Err(VerifyError::MalformedHeader(SECRET_TOKEN_HEADER));
    }
    if configured.is_empty() {
        return Err(VerifyError::NoSecretConfigured);
    }
    // Every configured token is compared, so timing does not tell which
    // one (old or new, during a rotation) matched.
    let matched = configured.iter().fold(Choice::from(0), |matched, token| {
        matched | token_matches(presented.as_bytes(), token.expose_secret().as_bytes())
    });
    if bool::from(matched) {
        Ok(())
    } else {
        Err(VerifyError::SecretTokenMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t_Token-2024";

    fn check(headers: &[(&str, &str)], configured: &[&str]) -> Result<(), VerifyError> {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let configured: Vec<SecretString> =
            configured.iter().map(|t| SecretString::from(*t)).collect();
        check_secret_token(&headers, &configured)
    }

    #[test]
    fn the_configured_token_is_accepted_whatever_the_header_case() {
        assert_eq!(check(&[(SECRET_TOKEN_HEADER, SECRET)], &[SECRET]), Ok(()));
        assert_eq!(
            check(&[("x-telegram-bot-api-secret-token", SECRET)], &[SECRET]),
            Ok(())
        );
    }

    #[test]
    fn a_wrong_token_is_a_mismatch() {
        assert_eq!(
            check(&[(SECRET_TOKEN_HEADER, "s3cr3t_Token-2025")], &[SECRET]),
            Err(VerifyError::SecretTokenMismatch)
        );
    }

    #[test]
    fn a_prefix_or_extension_of_the_token_is_a_mismatch() {
        for presented in ["s3cr3t_Token-202", "s3cr3t_Token-20245", "s"] {
            assert_eq!(
                check(&[(SECRET_TOKEN_HEADER, presented)], &[SECRET]),
                Err(VerifyError::SecretTokenMismatch),
                "{presented}"
            );
        }
    }

    #[test]
    fn a_missing_header_is_named() {
        assert_eq!(
            check(&[("Content-Type", "application/json")], &[SECRET]),
            Err(VerifyError::MissingHeader(SECRET_TOKEN_HEADER))
        );
    }

    #[test]
    fn a_token_telegram_could_never_have_sent_is_malformed() {
        let too_long = "a".repeat(257);
        for presented in ["", "has space", "semi;colon", "ünïcode", too_long.as_str()] {
            assert_eq!(
                check(&[(SECRET_TOKEN_HEADER, presented)], &[SECRET]),
                Err(VerifyError::MalformedHeader(SECRET_TOKEN_HEADER)),
                "{presented:?}"
            );
        }
    }

    #[test]
    fn the_longest_legal_token_is_accepted() {
        let longest = "Z".repeat(256);
        assert_eq!(
            check(&[(SECRET_TOKEN_HEADER, &longest)], &[&longest]),
            Ok(())
        );
    }

    #[test]
    fn a_channel_without_secrets_accepts_nothing() {
        assert_eq!(
            check(&[(SECRET_TOKEN_HEADER, SECRET)], &[]),
            Err(VerifyError::NoSecretConfigured)
        );
    }

    #[test]
    fn during_rotation_both_old_and_new_tokens_are_accepted() {
        let rotation = ["old_secret", "new_secret"];
        assert_eq!(
            check(&[(SECRET_TOKEN_HEADER, "old_secret")], &rotation),
            Ok(())
        );
        assert_eq!(
            check(&[(SECRET_TOKEN_HEADER, "new_secret")], &rotation),
            Ok(())
        );
        assert_eq!(
            check(&[(SECRET_TOKEN_HEADER, "other_secret")], &rotation),
            Err(VerifyError::SecretTokenMismatch)
        );
    }

    #[test]
    fn a_configured_token_longer_than_telegram_allows_never_matches() {
        let oversized = "b".repeat(300);
        assert_eq!(
            check(&[(SECRET_TOKEN_HEADER, &oversized[..256])], &[&oversized]),
            Err(VerifyError::SecretTokenMismatch)
        );
    }
}
