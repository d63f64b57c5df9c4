//! The WhatsApp Cloud API adapter: proves a webhook came from Meta, turns a
//! `whatsapp_business_account` notification into [`InboundEvent`]s, renders
//! [`OutboundMessage`]s as `POST /{phone-number-id}/messages` requests and
//! says what the Graph API's answer to one of them means.
//!
//! It owns WhatsApp's JSON shapes and limits and nothing else. It is sans-IO:
//! no sockets, clocks or environment, every input is an argument; sending
//! requests, fetching media and remembering the 24-hour window are the
//! gateway's job. What WhatsApp shares with Messenger (signature, handshake,
//! Graph errors, Meta's timestamps and ids) lives in `switchboard-meta`.
//!
//! Architecture Invariant: `parse` never fails on a shape it does not know;
//! anything it cannot map becomes `EventKind::Unsupported` with the raw JSON,
//! so a signed notification is recorded rather than retried by Meta forever.

mod inbound;
mod outbound;

use std::fmt;

use switchboard_model::{
    Capabilities, ChannelId, Formatting, HandshakeError, HandshakeQuery, InboundEvent,
    OutboundMessage, ParseError, Platform, PlatformAdapter, PlatformRequest, RawWebhook,
    RenderError, SecretString, SendOutcome, VerifiedWebhook, VerifyError,
};

pub use outbound::limits;

/// One WhatsApp business number as an operator configured it.
///
/// Several numbers may share one Meta app, and so one app secret and one
/// callback URL; `phone_number_id` is what incoming notifications are routed
/// by (`value.metadata.phone_number_id`) and what replies are sent from.
#[derive(Clone)]
pub struct WhatsAppChannel {
    pub id: ChannelId,
    /// The Meta app secret(s) that sign webhooks; more than one while a
    /// secret is being rotated.
    pub app_secrets: Vec<SecretString>,
    /// Tokens accepted in the `hub.verify_token` subscription handshake.
    pub verify_tokens: Vec<SecretString>,
    /// System-user or business token with `whatsapp_business_messaging`.
    pub access_token: SecretString,
    /// The Graph id of the business phone number (not the phone number).
    pub phone_number_id: String,
}

impl fmt::Debug for WhatsAppChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhatsAppChannel")
            .field("id", &self.id)
            .field("phone_number_id", &self.phone_number_id)
            .field("app_secrets", &Redacted(self.app_secrets.len()))
            .field("verify_tokens", &Redacted(self.verify_tokens.len()))
            .field("access_token", &Redacted(1))
            .finish()
    }
}

/// Shows how many secrets there are, never what they are.
struct Redacted(usize);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[REDACTED; {}]", self.0)
    }
}

/// What WhatsApp can show, for the assistant to stay inside: limits from
/// Meta's Cloud API reference (PLATFORMS.md §2.6).
pub fn capabilities() -> Capabilities {
    Capabilities {
        max_text_chars: limits::TEXT_CHARS,
        max_buttons: limits::BUTTONS,
        max_quick_replies: limits::BUTTONS,
        max_button_title_chars: limits::BUTTON_TITLE_CHARS,
        max_list_rows: limits::LIST_ROWS,
        supports_lists: true,
        // A list row id may hold 200 characters, a button id 256; 200 bytes
        // fit both whatever the characters are.
        max_payload_bytes: limits::ROW_ID_CHARS,
        // The typing indicator exists but is tied to marking one received
        // message read, so it cannot be shown on its own.
        supports_typing: false,
        supports_location_request: true,
        formatting: Formatting::Plain,
        reply_window_hours: Some(24),
    }
}

/// The adapter for one [`WhatsAppChannel`].
#[derive(Debug, Clone)]
pub struct WhatsAppAdapter {
    channel: WhatsAppChannel,
    capabilities: Capabilities,
}

impl WhatsAppAdapter {
    pub fn new(channel: WhatsAppChannel) -> Self {
        Self {
            channel,
            capabilities: capabilities(),
        }
    }

    pub fn phone_number_id(&self) -> &str {
        &self.channel.phone_number_id
    }
}

impl PlatformAdapter for WhatsAppAdapter {
    fn platform(&self) -> Platform {
        Platform::WhatsApp
    }

    fn channel(&self) -> &ChannelId {
        &self.channel.id
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn authenticate(&self, raw: &RawWebhook<'_>) -> Result<(), VerifyError> {
        switchboard_meta::verify_signature(raw.headers, raw.body, &self.channel.app_secrets)
    }

    fn handshake(&self, query: &HandshakeQuery) -> Result<String, HandshakeError> {
        switchboard_meta::answer_handshake(query, &self.channel.verify_tokens)
    }

    fn parse(&self, webhook: &VerifiedWebhook<'_>) -> Result<Vec<InboundEvent>, ParseError> {
        if webhook.platform() != Platform::WhatsApp {
            return Err(ParseError::WrongShape {
                platform: "whatsapp",
                detail: format!("the body was verified as a {} webhook", webhook.platform()),
            });
        }
        inbound::parse(webhook.channel(), webhook.body())
    }

    fn render(&self, message: &OutboundMessage) -> Result<Vec<PlatformRequest>, RenderError> {
        outbound::render(
            &self.channel.phone_number_id,
            &self.channel.access_token,
            message,
        )
    }

    fn classify(&self, status: u16, retry_after: Option<&str>, body: &[u8]) -> SendOutcome {
        switchboard_meta::classify_graph_response(status, retry_after, body, |value| {
            // `{"messaging_product":"whatsapp","contacts":[..],"messages":[{"id":"wamid..."}]}`
            value
                .get("messages")?
                .get(0)?
                .get("id")?
                .as_str()
                .map(str::to_owned)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_model::{SendFailure, verify};

    fn adapter() -> WhatsAppAdapter {
        WhatsAppAdapter::new(WhatsAppChannel {
            id: ChannelId::new("shop-wa").unwrap(),
            app_secrets: vec![SecretString::from("app-secret-1")],
            verify_tokens: vec![SecretString::from("verify-me")],
            access_token: SecretString::from("EAAG-token"),
            phone_number_id: "106540352242922".into(),
        })
    }

    fn failure(status: u16, body: &str) -> SendFailure {
        match adapter().classify(status, None, body.as_bytes()) {
            SendOutcome::Failed(failure) => failure,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let shown = format!("{:?}", adapter());
        assert!(!shown.contains("app-secret-1"), "{shown}");
        assert!(!shown.contains("verify-me"), "{shown}");
        assert!(!shown.contains("EAAG-token"), "{shown}");
        assert!(shown.contains("106540352242922"));
        assert!(shown.contains("[REDACTED; 1]"));
    }

    #[test]
    fn capabilities_declare_whatsapp_limits() {
        let caps = capabilities();
        assert_eq!(caps.max_text_chars, 4096);
        assert_eq!(caps.max_buttons, 3);
        assert_eq!(caps.max_quick_replies, 3);
        assert_eq!(caps.max_button_title_chars, 20);
        assert_eq!(caps.max_list_rows, 10);
        assert!(caps.supports_lists);
        assert_eq!(caps.max_payload_bytes, 200);
        assert!(!caps.supports_typing);
        assert!(caps.supports_location_request);
        assert_eq!(caps.formatting, Formatting::Plain);
        assert_eq!(caps.reply_window_hours, Some(24));
        assert_eq!(adapter().capabilities(), &caps);
        assert_eq!(adapter().platform(), Platform::WhatsApp);
        assert_eq!(adapter().channel().as_str(), "shop-wa");
    }

    #[test]
    fn handshake_echoes_the_challenge_only_for_a_configured_token() {
        let query = |token: &str| HandshakeQuery {
            mode: Some("subscribe".into()),
            verify_token: Some(token.into()),
            challenge: Some("1158201444".into()),
        };
        assert_eq!(
            adapter().handshake(&query("verify-me")).as_deref(),
            Ok("1158201444")
        );
        assert_eq!(
            adapter().handshake(&query("guess")),
            Err(HandshakeError::TokenMismatch)
        );
    }

    /// An adapter of another platform that accepts everything.
    struct Messenger(ChannelId);

    impl PlatformAdapter for Messenger {
        fn platform(&self) -> Platform {
            Platform::Messenger
        }
        fn channel(&self) -> &ChannelId {
            &self.0
        }
        fn capabilities(&self) -> &Capabilities {
            unreachable!("not used by verify")
        }
        fn authenticate(&self, _: &RawWebhook<'_>) -> Result<(), VerifyError> {
            Ok(())
        }
        fn handshake(&self, _: &HandshakeQuery) -> Result<String, HandshakeError> {
            Err(HandshakeError::NotSupported)
        }
        fn parse(&self, _: &VerifiedWebhook<'_>) -> Result<Vec<InboundEvent>, ParseError> {
            Ok(vec![])
        }
        fn render(&self, _: &OutboundMessage) -> Result<Vec<PlatformRequest>, RenderError> {
            Ok(vec![])
        }
        fn classify(&self, _: u16, _: Option<&str>, _: &[u8]) -> SendOutcome {
            SendOutcome::Delivered { message_id: None }
        }
    }

    #[test]
    fn a_webhook_verified_for_another_platform_is_not_parsed() {
        let messenger = Messenger(ChannelId::new("fb").unwrap());
        let headers: [(&str, &str); 0] = [];
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let verified = verify(&messenger, RawWebhook::new(&headers, body)).unwrap();
        assert!(matches!(
            adapter().parse(&verified),
            Err(ParseError::WrongShape { .. })
        ));
    }

    #[test]
    fn a_send_response_yields_the_wamid() {
        let body = br#"{"messaging_product":"whatsapp","contacts":[{"input":"16505551234","wa_id":"16505551234"}],"messages":[{"id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3N0EyQUJDMjFEQzZCQUMzODMA"}]}"#;
        assert_eq!(
            adapter().classify(200, None, body),
            SendOutcome::Delivered {
                message_id: Some(
                    "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3N0EyQUJDMjFEQzZCQUMzODMA".into()
                )
            }
        );
        assert_eq!(
            adapter().classify(200, None, b"not json"),
            SendOutcome::Delivered { message_id: None }
        );
    }

    #[test]
    fn re_engagement_error_means_the_window_is_closed() {
        let body = r#"{"error":{"message":"(#131047) Re-engagement message","type":"OAuthException","code":131047,"error_data":{"messaging_product":"whatsapp","details":"Message failed to send because more than 24 hours have passed since the customer last replied to this number."},"fbtrace_id":"AbCdEf"}}"#;
        assert_eq!(
            failure(400, body),
            SendFailure::OutsideWindow {
                code: Some(131047),
                reason: "Message failed to send because more than 24 hours have passed since the customer last replied to this number.".into()
            }
        );
    }

    #[test]
    fn throughput_and_pair_rate_limits_are_retried_later() {
        let throughput = r#"{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429,"error_data":{"messaging_product":"whatsapp","details":"Cloud API message throughput has been reached."},"fbtrace_id":"A1"}}"#;
        assert!(matches!(
            failure(400, throughput),
            SendFailure::RetryAfter {
                code: Some(130429),
                ..
            }
        ));
        let pair = r#"{"error":{"message":"(#131056) (Business Account, Consumer Account) pair rate limit hit","type":"OAuthException","code":131056,"error_data":{"messaging_product":"whatsapp","details":"Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time."},"fbtrace_id":"A2"}}"#;
        match failure(400, pair) {
            SendFailure::RetryAfter { after, code, .. } => {
                assert_eq!(code, Some(131056));
                assert_eq!(after, std::time::Duration::from_secs(6));
            }
            other => panic!("expected a retry, got {other:?}"),
        }
        let with_header = adapter().classify(429, Some("30"), throughput.as_bytes());
        assert!(matches!(
            with_header,
            SendOutcome::Failed(SendFailure::RetryAfter { after, .. }) if after == std::time::Duration::from_secs(30)
        ));
    }

    #[test]
    fn undeliverable_recipient_stops_sending() {
        let body = r#"{"error":{"message":"(#131026) Message undeliverable","type":"OAuthException","code":131026,"error_data":{"messaging_product":"whatsapp","details":"Message Undeliverable."},"fbtrace_id":"A3"}}"#;
        assert_eq!(
            failure(400, body),
            SendFailure::RecipientUnreachable {
                code: Some(131026),
                reason: "Message Undeliverable.".into()
            }
        );
    }

    #[test]
    fn an_expired_token_needs_an_operator() {
        let body = r#"{"error":{"message":"Error validating access token: Session has expired on Tuesday, 01-Aug-23 10:00:00 PDT.","type":"OAuthException","code":190,"error_subcode":463,"fbtrace_id":"A4"}}"#;
        assert_eq!(
            failure(401, body),
            SendFailure::BadCredentials {
                code: Some(190),
                reason: "Error validating access token: Session has expired on Tuesday, 01-Aug-23 10:00:00 PDT.".into()
            }
        );
    }

    #[test]
    fn an_unknown_server_error_is_transient() {
        let body = r#"{"error":{"message":"(#131000) Something went wrong","type":"OAuthException","code":131000,"error_data":{"messaging_product":"whatsapp","details":"Something went wrong"},"fbtrace_id":"A5"}}"#;
        assert_eq!(
            failure(500, body),
            SendFailure::Transient {
                code: Some(131000),
                reason: "Something went wrong".into()
            }
        );
    }

    #[test]
    fn an_invalid_parameter_is_permanent() {
        let body = r#"{"error":{"message":"(#100) Invalid parameter","type":"OAuthException","code":100,"error_data":{"messaging_product":"whatsapp","details":"Parameter value is not valid"},"fbtrace_id":"A6"}}"#;
        assert_eq!(
            failure(400, body),
            SendFailure::Permanent {
                code: Some(100),
                reason: "Parameter value is not valid".into()
            }
        );
    }
}
