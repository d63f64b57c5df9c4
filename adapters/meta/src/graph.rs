//! The Graph API error envelope
//! `{"error":{"message","type","code","error_subcode","is_transient","error_data":{"details"}}}`
//! and what each code means for the sender. Codes from PLATFORMS.md §1.7 and
//! §2.7; build on `code`/`error_subcode`, never on message titles.

use std::time::Duration;

use serde_json::Value;
use switchboard_model::{SendFailure, SendOutcome};

/// The interesting part of a Graph API error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GraphError {
    pub code: Option<i64>,
    pub subcode: Option<i64>,
    pub message: String,
    pub is_transient: bool,
}

/// Reads the `error` object from a Graph API response body, if there is one.
pub fn graph_error(body: &[u8]) -> Option<GraphError> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let error = value.get("error")?;
    let int = |key: &str| {
        error
            .get(key)
            .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
    };
    let message = error
        .get("error_data")
        .and_then(|d| d.get("details"))
        .and_then(Value::as_str)
        .or_else(|| error.get("message").and_then(Value::as_str))
        .unwrap_or("")
        .to_owned();
    Some(GraphError {
        code: int("code"),
        subcode: int("error_subcode"),
        message: shorten(&message),
        is_transient: error
            .get("is_transient")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// Keeps platform error text short enough for logs and dead-letter lists.
fn shorten(message: &str) -> String {
    switchboard_model::text::truncate(message, 200, switchboard_model::text::TextUnit::Chars)
}

const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// WhatsApp pair rate limit: about one message per 6 s to one user.
const PAIR_RATE_WAIT: Duration = Duration::from_secs(6);

fn retry_after_header(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Classifies a Graph API answer. `message_id` extracts the sent message's
/// id from a successful body (the two products place it differently).
pub fn classify_graph_response(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    message_id: impl FnOnce(&Value) -> Option<String>,
) -> SendOutcome {
    if (200..300).contains(&status) {
        let id = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| message_id(&v));
        return SendOutcome::Delivered { message_id: id };
    }
    let error = graph_error(body).unwrap_or_default();
    let reason = if error.message.is_empty() {
        format!("HTTP {status}")
    } else {
        error.message.clone()
    };
    let code = error.code;
    let header_wait = retry_after_header(retry_after);
    let failure = match (code, error.subcode) {
        // Rate limits: app (4), user (17), page (32), custom (613),
        // WhatsApp throughput (130429), spam (131048), WABA (80007).
        (Some(4 | 17 | 32 | 613 | 130429 | 131048 | 80007), _) => SendFailure::RetryAfter {
            after: header_wait.unwrap_or(DEFAULT_RATE_LIMIT_WAIT),
            code,
            reason,
        },
        (Some(131056), _) => SendFailure::RetryAfter {
            after: header_wait.unwrap_or(PAIR_RATE_WAIT),
            code,
            reason,
        },
        // Outside the 24-hour window: WhatsApp re-engagement, Messenger
        // "sent outside of allowed window".
        (Some(131047), _) | (Some(10), Some(2018278)) | (_, Some(2018278)) => {
            SendFailure::OutsideWindow { code, reason }
        }
        // The person cannot be reached: not available (551), undeliverable
        // (131026), no matching user (100/2018001), not in the allowed list
        // of a test number (131030), user blocked / unavailable (2018108).
        (Some(551 | 131026 | 131030), _) | (Some(100), Some(2018001)) | (_, Some(2018108)) => {
            SendFailure::RecipientUnreachable { code, reason }
        }
        // Token invalid or expired (190, 102), permissions (10, 200-299),
        // business number not registered (133010): an operator must act.
        (Some(190 | 102 | 10 | 133010), _) | (Some(200..=299), _) => {
            SendFailure::BadCredentials { code, reason }
        }
        // Unknown/temporary errors Meta asks to retry.
        (Some(1 | 2 | 1200 | 131000 | 131016 | 133004), _) => {
            SendFailure::Transient { code, reason }
        }
        _ if error.is_transient => SendFailure::Transient { code, reason },
        _ if status == 429 => SendFailure::RetryAfter {
            after: header_wait.unwrap_or(DEFAULT_RATE_LIMIT_WAIT),
            code,
            reason,
        },
        _ if status >= 500 || status == 408 => SendFailure::Transient { code, reason },
        _ if status == 401 || status == 403 => SendFailure::BadCredentials { code, reason },
        _ => SendFailure::Permanent { code, reason },
    };
    SendOutcome::Failed(failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: u16, body: &str) -> SendFailure {
        match classify_graph_response(status, None, body.as_bytes(), |_| None) {
            SendOutcome::Failed(f) => f,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    fn err(code: i64, subcode: Option<i64>) -> String {
        let sub = subcode
            .map(|s| format!(r#","error_subcode":{s}"#))
            .unwrap_or_default();
        format!(
            r#"{{"error":{{"message":"m","type":"OAuthException","code":{code}{sub},"fbtrace_id":"x"}}}}"#
        )
    }

    #[test]
    fn success_extracts_the_message_id() {
        let outcome = classify_graph_response(200, None, br#"{"message_id":"m_1"}"#, |v| {
            v.get("message_id")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        assert_eq!(
            outcome,
            SendOutcome::Delivered {
                message_id: Some("m_1".into())
            }
        );
    }

    #[test]
    fn rate_limit_codes_wait_for_retry_after_or_a_default() {
        assert_eq!(failure(400, &err(613, None)).label(), "retry_after");
        let outcome = classify_graph_response(400, Some("7"), err(4, None).as_bytes(), |_| None);
        assert!(matches!(
            outcome,
            SendOutcome::Failed(SendFailure::RetryAfter { after, code: Some(4), .. }) if after == Duration::from_secs(7)
        ));
        assert!(
            matches!(failure(429, "{}"), SendFailure::RetryAfter { after, .. } if after == DEFAULT_RATE_LIMIT_WAIT)
        );
    }

    #[test]
    fn window_unreachable_credentials_transient_and_permanent_are_told_apart() {
        assert_eq!(failure(400, &err(131047, None)).label(), "outside_window");
        assert_eq!(
            failure(400, &err(10, Some(2018278))).label(),
            "outside_window"
        );
        assert_eq!(
            failure(400, &err(551, None)).label(),
            "recipient_unreachable"
        );
        assert_eq!(
            failure(400, &err(100, Some(2018001))).label(),
            "recipient_unreachable"
        );
        assert_eq!(
            failure(400, &err(131026, None)).label(),
            "recipient_unreachable"
        );
        assert_eq!(failure(401, &err(190, None)).label(), "bad_credentials");
        assert_eq!(failure(403, &err(200, None)).label(), "bad_credentials");
        assert_eq!(failure(500, &err(2, None)).label(), "transient");
        assert_eq!(
            failure(503, "<html>bad gateway</html>").label(),
            "transient"
        );
        assert_eq!(failure(400, &err(100, None)).label(), "permanent");
    }

    #[test]
    fn the_details_text_is_preferred_and_kept_short() {
        let body = format!(
            r#"{{"error":{{"message":"(#131047) Re-engagement message","code":131047,"error_data":{{"details":"{}"}}}}}}"#,
            "x".repeat(500)
        );
        let failure = failure(400, &body);
        assert!(failure.reason().chars().count() <= 200);
        assert!(failure.reason().starts_with("xxx"));
    }
}
