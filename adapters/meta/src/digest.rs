use serde_json::Value;
use sha2::{Digest, Sha256};

/// A short, stable fingerprint of a JSON value: the first 16 hex digits of
/// the SHA-256 of its serialised form.
///
/// Meta retries a delivery with the same body, so a shape that carries no id
/// of its own (a WhatsApp `account_update` change, a bare `errors` list) still
/// gets the same event id on every retry, and two different notifications do
/// not collide the way a positional id (`entry 0, change 0`) would.
pub fn content_digest(value: &Value) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    hex::encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_values_share_a_digest_and_different_ones_do_not() {
        let a = content_digest(&json!({"field": "account_update", "value": {"event": "X"}}));
        let b = content_digest(&json!({"field": "account_update", "value": {"event": "X"}}));
        let c = content_digest(&json!({"field": "account_update", "value": {"event": "Y"}}));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
