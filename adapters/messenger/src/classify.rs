//! What the Send API's answer means. The Graph error table is shared with
//! WhatsApp in `switchboard-meta`; only Messenger's own exceptions are here.

use serde_json::Value;
use switchboard_model::{SendFailure, SendOutcome};

/// Meta's pre-2020 answer to a send outside the 24-hour window:
/// `(#10) This message is sent outside of allowed window. You need
/// page_messaging_subscriptions permission...`. Read as bare code 10 it would
/// look like a permission problem for an operator, but what it needs is a
/// message tag.
const LEGACY_OUTSIDE_WINDOW_SUBCODE: i64 = 2018065;

pub(crate) fn classify(status: u16, retry_after: Option<&str>, body: &[u8]) -> SendOutcome {
    if !(200..300).contains(&status)
        && let Some(error) = switchboard_meta::graph_error(body)
        && error.code == Some(10)
        && error.subcode == Some(LEGACY_OUTSIDE_WINDOW_SUBCODE)
    {
        return SendOutcome::Failed(SendFailure::OutsideWindow {
            code: error.code,
            reason: error.message,
        });
    }
    switchboard_meta::classify_graph_response(status, retry_after, body, |answer| {
        answer
            .get("message_id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn failure(status: u16, retry_after: Option<&str>, body: &str) -> SendFailure {
        match classify(status, retry_after, body.as_bytes()) {
            SendOutcome::Failed(failure) => failure,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn a_send_api_success_yields_the_message_id() {
        // Response shape from the button template reference page.
        let body = br#"{"recipient_id":"1254477777772919","message_id":"AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P"}"#;
        assert_eq!(
            classify(200, None, body),
            SendOutcome::Delivered {
                message_id: Some(
                    "AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P"
                        .into()
                )
            }
        );
    }

    #[test]
    fn a_sender_action_success_has_no_message_id() {
        assert_eq!(
            classify(200, None, br#"{"recipient_id":"1254477777772919"}"#),
            SendOutcome::Delivered { message_id: None }
        );
        assert_eq!(
            classify(200, None, b""),
            SendOutcome::Delivered { message_id: None }
        );
    }

    #[test]
    fn rate_limit_613_waits_for_retry_after_or_a_minute() {
        // howdyai/botkit#865.
        let body = r#"{"error":{"message":"(# 613) Calls to this api have exceeded the rate limit.","type":"OAuthException","code":613,"fbtrace_id":"C8eF69zBeUS"}}"#;
        assert_eq!(
            failure(400, None, body),
            SendFailure::RetryAfter {
                after: Duration::from_secs(60),
                code: Some(613),
                reason: "(# 613) Calls to this api have exceeded the rate limit.".into(),
            }
        );
        assert!(matches!(
            failure(400, Some("30"), body),
            SendFailure::RetryAfter { after, .. } if after == Duration::from_secs(30)
        ));
    }

    #[test]
    fn page_request_limit_32_is_a_rate_limit() {
        // Yoctol/bottender#420.
        let body = r#"{"error":{"message":"(#32) Page request limit reached","type":"OAuthException","code":32,"fbtrace_id":"AbC"}}"#;
        assert_eq!(failure(400, None, body).label(), "retry_after");
    }

    #[test]
    fn code_10_subcode_2018278_is_outside_the_window() {
        // Text from botpress/botpress#4890; code and subcode as Meta documents them.
        let body = r#"{"error":{"message":"(#10) This message is sent outside of allowed window. Learn more about the new policy here: https://developers.facebook.com/docs/messenger-platform/policy-overview","type":"OAuthException","code":10,"error_subcode":2018278,"fbtrace_id":"H2LmU5B2kRF"}}"#;
        let failure = failure(400, None, body);
        assert_eq!(failure.label(), "outside_window");
        assert!(!failure.is_retryable());
        assert!(matches!(
            failure,
            SendFailure::OutsideWindow { code: Some(10), .. }
        ));
    }

    #[test]
    fn the_legacy_outside_window_subcode_2018065_is_outside_the_window_not_bad_credentials() {
        // microsoft/botframework-sdk#2050.
        let body = r#"{"error":{"message":"(#10) This message is sent outside of allowed window. You need page_messaging_subscriptions permission to be able to do it. Learn more about the new policy here: https:\/\/developers.facebook.com\/docs\/messenger-platform\/policy-overview","type":"OAuthException","code":10,"error_subcode":2018065,"fbtrace_id":"H\/vnkB0t7Fk"}}"#;
        let failure = failure(400, None, body);
        assert_eq!(failure.label(), "outside_window");
        assert!(
            failure
                .reason()
                .starts_with("(#10) This message is sent outside")
        );
        // Bare code 10 without that subcode stays a permission problem.
        let permission = r#"{"error":{"message":"(#10) Requires pages_messaging permission to manage the object","type":"OAuthException","code":10,"fbtrace_id":"x"}}"#;
        assert_eq!(
            self::failure(403, None, permission).label(),
            "bad_credentials"
        );
    }

    #[test]
    fn code_551_means_the_person_cannot_be_reached() {
        // microsoft/botframework-sdk#4556.
        let body = r#"{"error":{"message":"(#551) This person isn't available right now.","type":"OAuthException","code":551,"error_subcode":1545041,"fbtrace_id":"G3GRmtpZiq6"}}"#;
        assert_eq!(
            failure(400, None, body),
            SendFailure::RecipientUnreachable {
                code: Some(551),
                reason: "(#551) This person isn't available right now.".into(),
            }
        );
    }

    #[test]
    fn code_190_is_a_bad_page_token() {
        // bottenderjs/messaging-apis#169.
        let body = r#"{"error":{"message":"Invalid OAuth access token.","type":"OAuthException","code":190,"error_subcode":1234567,"fbtrace_id":"BLBz/WZt8dN"}}"#;
        let failure = failure(400, None, body);
        assert_eq!(
            failure,
            SendFailure::BadCredentials {
                code: Some(190),
                reason: "Invalid OAuth access token.".into(),
            }
        );
        assert!(!failure.is_retryable());
    }

    #[test]
    fn code_2_is_transient() {
        // Body shape from ibonly/laravel-accountkit#12 (Graph "Service temporarily unavailable").
        let body = r#"{"error":{"message":"Service temporarily unavailable","type":"EMApiException","is_transient":true,"code":2,"fbtrace_id":"AyGh1"}}"#;
        let failure = failure(500, None, body);
        assert_eq!(failure.label(), "transient");
        assert!(failure.is_retryable());
    }

    #[test]
    fn code_100_without_a_known_subcode_is_permanent() {
        // jgorset/facebook-messenger#275: "(#100) The parameter recipient is required".
        let body = r#"{"error":{"message":"(#100) The parameter recipient is required","type":"OAuthException","code":100,"fbtrace_id":"AvV5"}}"#;
        let failure = failure(400, None, body);
        assert_eq!(
            failure,
            SendFailure::Permanent {
                code: Some(100),
                reason: "(#100) The parameter recipient is required".into(),
            }
        );
        assert!(!failure.is_retryable());
    }

    #[test]
    fn code_100_subcode_2018001_means_no_matching_user() {
        let body = r#"{"error":{"message":"(#100) No matching user found","type":"OAuthException","code":100,"error_subcode":2018001,"fbtrace_id":"H88xneLGeNw"}}"#;
        assert_eq!(failure(400, None, body).label(), "recipient_unreachable");
    }

    #[test]
    fn html_gateway_errors_are_transient() {
        assert_eq!(
            failure(502, None, "<html>Bad Gateway</html>"),
            SendFailure::Transient {
                code: None,
                reason: "HTTP 502".into(),
            }
        );
    }
}
