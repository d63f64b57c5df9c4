//! What a Bot API answer means for the sender.
//!
//! Every answer is `{"ok":true,"result":...}` or
//! `{"ok":false,"error_code":N,"description":"...","parameters":{...}}`,
//! with `error_code` mirroring the HTTP status. Telegram documents codes
//! but not descriptions, so descriptions are only consulted where a code
//! alone is ambiguous (a 400 for a chat that does not exist).

use std::time::Duration;

use serde::Deserialize;
use switchboard_model::text::{TextUnit, truncate};
use switchboard_model::{SendFailure, SendOutcome};

/// Flood control without a `retry_after`: long enough not to hammer a
/// limit Telegram keeps for tens of seconds at least.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);
const MAX_REASON_CHARS: usize = 200;

/// 400 descriptions that mean the chat cannot be reached at all.
const UNREACHABLE_DESCRIPTIONS: [&str; 3] = ["chat not found", "user not found", "peer_id_invalid"];

#[derive(Debug, Deserialize)]
struct Answer {
    ok: Option<bool>,
    result: Option<serde_json::Value>,
    error_code: Option<i64>,
    description: Option<String>,
    parameters: Option<ResponseParameters>,
}

#[derive(Debug, Deserialize)]
struct ResponseParameters {
    retry_after: Option<u64>,
    migrate_to_chat_id: Option<i64>,
}

pub(crate) fn classify(status: u16, retry_after: Option<&str>, body: &[u8]) -> SendOutcome {
    // Without `ok` it is some other JSON, from a proxy rather than Telegram.
    let answer = serde_json::from_slice::<Answer>(body)
        .ok()
        .filter(|answer| answer.ok.is_some());
    if let Some(Answer {
        ok: Some(true),
        result,
        ..
    }) = &answer
    {
        // `result` is the sent Message, or just `true` for calls like
        // answerCallbackQuery and sendChatAction.
        let message_id = result
            .as_ref()
            .and_then(|r| r.get("message_id"))
            .and_then(serde_json::Value::as_i64)
            .map(|id| id.to_string());
        return SendOutcome::Delivered { message_id };
    }
    let Some(answer) = answer else {
        return classify_unreadable(status, retry_after);
    };
    let code = answer.error_code.unwrap_or(i64::from(status));
    let description = answer.description.unwrap_or_default();
    let reason = if description.is_empty() {
        format!("HTTP {status}")
    } else {
        truncate(&description, MAX_REASON_CHARS, TextUnit::Chars)
    };
    let parameters = answer.parameters;
    let failure = match code {
        429 => SendFailure::RetryAfter {
            after: parameters
                .as_ref()
                .and_then(|p| p.retry_after)
                .filter(|&seconds| seconds > 0)
                .map(Duration::from_secs)
                .or_else(|| header_wait(retry_after))
                .unwrap_or(DEFAULT_RETRY_AFTER),
            code: Some(code),
            reason,
        },
        // Blocked by the user, user deactivated, kicked from the group,
        // never started the bot: Telegram answers 403 for all of them.
        403 => SendFailure::RecipientUnreachable {
            code: Some(code),
            reason,
        },
        // A wrong or revoked token is 401, or 404 when the token is not
        // even shaped like one (the path matches no bot).
        401 | 404 => SendFailure::BadCredentials {
            code: Some(code),
            reason,
        },
        400 if parameters
            .as_ref()
            .is_some_and(|p| p.migrate_to_chat_id.is_some()) =>
        {
            SendFailure::Permanent {
                code: Some(code),
                reason: truncate(
                    &format!("group was upgraded to a supergroup with a new chat id: {reason}"),
                    MAX_REASON_CHARS,
                    TextUnit::Chars,
                ),
            }
        }
        400 if is_unreachable_description(&description) => SendFailure::RecipientUnreachable {
            code: Some(code),
            reason,
        },
        500..=599 => SendFailure::Transient {
            code: Some(code),
            reason,
        },
        _ => SendFailure::Permanent {
            code: Some(code),
            reason,
        },
    };
    SendOutcome::Failed(failure)
}

fn is_unreachable_description(description: &str) -> bool {
    let description = description.to_ascii_lowercase();
    UNREACHABLE_DESCRIPTIONS
        .iter()
        .any(|known| description.contains(known))
}

/// `Retry-After` in seconds; the HTTP-date form is not used by Telegram.
fn header_wait(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// An answer that is not the Bot API envelope: a proxy or load balancer
/// spoke, so only the HTTP status is known.
fn classify_unreadable(status: u16, retry_after: Option<&str>) -> SendOutcome {
    let reason = format!("HTTP {status} without a Bot API answer");
    let failure = match status {
        // The status says the call went through; sending again could
        // deliver the message twice.
        200..=299 => return SendOutcome::Delivered { message_id: None },
        429 => SendFailure::RetryAfter {
            after: header_wait(retry_after).unwrap_or(DEFAULT_RETRY_AFTER),
            code: None,
            reason,
        },
        408 | 500..=599 => SendFailure::Transient { code: None, reason },
        401 | 404 => SendFailure::BadCredentials { code: None, reason },
        _ => SendFailure::Permanent { code: None, reason },
    };
    SendOutcome::Failed(failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: u16, retry_after: Option<&str>, body: &str) -> SendFailure {
        match classify(status, retry_after, body.as_bytes()) {
            SendOutcome::Failed(failure) => failure,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn a_sent_message_is_delivered_with_its_id() {
        let body = r#"{"ok":true,"result":{"message_id":1055,"from":{"id":1453712331235,"is_bot":true,"first_name":"Shop"},"chat":{"id":436432850,"type":"private"},"date":1611138080,"text":"hi"}}"#;
        assert_eq!(
            classify(200, None, body.as_bytes()),
            SendOutcome::Delivered {
                message_id: Some("1055".into())
            }
        );
    }

    #[test]
    fn a_true_result_is_delivered_without_an_id() {
        assert_eq!(
            classify(200, None, br#"{"ok":true,"result":true}"#),
            SendOutcome::Delivered { message_id: None }
        );
    }

    #[test]
    fn flood_control_waits_as_long_as_telegram_says() {
        let body = r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 35","parameters":{"retry_after":35}}"#;
        assert_eq!(
            failure(429, Some("5"), body),
            SendFailure::RetryAfter {
                after: Duration::from_secs(35),
                code: Some(429),
                reason: "Too Many Requests: retry after 35".into(),
            }
        );
    }

    #[test]
    fn flood_control_without_parameters_uses_the_header_then_a_default() {
        let body = r#"{"ok":false,"error_code":429,"description":"Too Many Requests"}"#;
        let after = |header| match failure(429, header, body) {
            SendFailure::RetryAfter { after, .. } => after,
            other => panic!("expected retry-after, got {other:?}"),
        };
        assert_eq!(after(Some("12")), Duration::from_secs(12));
        assert_eq!(after(None), Duration::from_secs(30));
        assert_eq!(
            after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn every_forbidden_answer_means_the_chat_is_unreachable() {
        for description in [
            "Forbidden: bot was blocked by the user",
            "Forbidden: user is deactivated",
            "Forbidden: bot was kicked from the supergroup chat",
            "Forbidden: bot can't initiate conversation with a user",
        ] {
            let body = format!(r#"{{"ok":false,"error_code":403,"description":"{description}"}}"#);
            assert_eq!(
                failure(403, None, &body),
                SendFailure::RecipientUnreachable {
                    code: Some(403),
                    reason: description.into(),
                }
            );
        }
    }

    #[test]
    fn a_chat_that_does_not_exist_is_unreachable() {
        for description in [
            "Bad Request: chat not found",
            "Bad Request: user not found",
            "Bad Request: PEER_ID_INVALID",
        ] {
            let body = format!(r#"{{"ok":false,"error_code":400,"description":"{description}"}}"#);
            assert!(
                matches!(
                    failure(400, None, &body),
                    SendFailure::RecipientUnreachable {
                        code: Some(400),
                        ..
                    }
                ),
                "{description}"
            );
        }
    }

    #[test]
    fn a_wrong_token_is_bad_credentials() {
        assert_eq!(
            failure(
                401,
                None,
                r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#
            ),
            SendFailure::BadCredentials {
                code: Some(401),
                reason: "Unauthorized".into(),
            }
        );
        assert_eq!(
            failure(
                404,
                None,
                r#"{"ok":false,"error_code":404,"description":"Not Found"}"#
            ),
            SendFailure::BadCredentials {
                code: Some(404),
                reason: "Not Found".into(),
            }
        );
    }

    #[test]
    fn a_migrated_group_is_permanent_and_says_why() {
        let body = r#"{"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1001557912345}}"#;
        let failure = failure(400, None, body);
        assert_eq!(
            failure,
            SendFailure::Permanent {
                code: Some(400),
                reason: "group was upgraded to a supergroup with a new chat id: \
                         Bad Request: group chat was upgraded to a supergroup chat"
                    .into(),
            }
        );
        assert!(!failure.reason().contains("1557912345"));
    }

    #[test]
    fn a_bad_request_is_permanent() {
        let body = r#"{"ok":false,"error_code":400,"description":"Bad Request: can't parse entities: Unsupported start tag \"br\" at byte offset 5"}"#;
        assert_eq!(
            failure(400, None, body),
            SendFailure::Permanent {
                code: Some(400),
                reason: "Bad Request: can't parse entities: Unsupported start tag \"br\" at byte offset 5"
                    .into(),
            }
        );
    }

    #[test]
    fn server_errors_are_transient_with_or_without_an_envelope() {
        assert_eq!(
            failure(
                502,
                None,
                r#"{"ok":false,"error_code":502,"description":"Bad Gateway"}"#
            ),
            SendFailure::Transient {
                code: Some(502),
                reason: "Bad Gateway".into(),
            }
        );
        assert_eq!(
            failure(
                502,
                None,
                "<html><head><title>502 Bad Gateway</title></head></html>"
            ),
            SendFailure::Transient {
                code: None,
                reason: "HTTP 502 without a Bot API answer".into(),
            }
        );
    }

    #[test]
    fn an_unreadable_client_error_is_permanent_and_a_throttling_proxy_is_retried() {
        assert!(matches!(
            failure(400, None, "not json"),
            SendFailure::Permanent { code: None, .. }
        ));
        assert_eq!(
            failure(429, Some("7"), ""),
            SendFailure::RetryAfter {
                after: Duration::from_secs(7),
                code: None,
                reason: "HTTP 429 without a Bot API answer".into(),
            }
        );
    }

    #[test]
    fn long_descriptions_are_cut_to_200_chars() {
        let description = format!("Bad Request: {}", "x".repeat(400));
        let body = format!(r#"{{"ok":false,"error_code":400,"description":"{description}"}}"#);
        let reason = failure(400, None, &body).reason().to_owned();
        assert_eq!(reason.chars().count(), 200);
        assert!(reason.starts_with("Bad Request: xxx"));
    }
}
