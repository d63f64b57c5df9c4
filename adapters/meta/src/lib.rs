//! What the Messenger and WhatsApp adapters share, because Meta built both on
//! one webhook and Graph API machinery: the `X-Hub-Signature-256` check over
//! the raw body, the `hub.challenge` subscription handshake, lenient number
//! and string readers for Meta's JSON, and the Graph API error envelope with
//! its classification into [`SendFailure`]s.
//!
//! Sans-IO like the adapters: no sockets, clocks or environment. It must not
//! know either product's message shapes; those stay in their own adapter.

mod digest;
mod graph;
mod handshake;
mod signature;

pub use digest::content_digest;
pub use graph::{GraphError, classify_graph_response, graph_error};
pub use handshake::answer_handshake;
pub use signature::{LEGACY_SIGNATURE_HEADER, SIGNATURE_HEADER, sign, verify_signature};

use serde_json::Value;

/// Meta timestamps are epoch milliseconds as numbers in Messenger, epoch
/// seconds as strings in WhatsApp, and the postback docs show seconds as a
/// string. Anything below 10^11 is taken as seconds (10^11 ms is 1973).
pub fn timestamp_ms(value: Option<&Value>) -> i64 {
    let raw = match value {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match raw {
        Some(t) if t <= 0 => 0,
        Some(t) if t < 100_000_000_000 => t.saturating_mul(1000),
        Some(t) => t,
        None => 0,
    }
}

/// An id Meta usually sends as a string but sometimes as a number
/// (`app_id`, `entry[].id` in some samples). Never goes through `f64`.
pub fn id_string(value: Option<&Value>) -> Option<String> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// A string field, or `None` when absent, null or not a string.
pub fn str_field(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_in_ms_seconds_and_strings_all_become_ms() {
        assert_eq!(timestamp_ms(Some(&json!(1458692752478_i64))), 1458692752478);
        assert_eq!(timestamp_ms(Some(&json!("1527459824"))), 1527459824000);
        assert_eq!(timestamp_ms(Some(&json!(1527459824))), 1527459824000);
        assert_eq!(timestamp_ms(Some(&json!("not a time"))), 0);
        assert_eq!(timestamp_ms(None), 0);
    }

    #[test]
    fn big_numeric_ids_keep_every_digit() {
        assert_eq!(
            id_string(Some(&json!(1517776481860111_u64))).as_deref(),
            Some("1517776481860111")
        );
        assert_eq!(id_string(Some(&json!("123"))).as_deref(), Some("123"));
        assert_eq!(id_string(Some(&json!(""))), None);
    }
}
