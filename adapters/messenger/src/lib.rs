//! The Facebook Messenger Platform adapter: one Facebook Page (a
//! [`MessengerChannel`]) behind the [`PlatformAdapter`] contract.
//!
//! It owns what is Messenger's and nobody else's: the `object: "page"`
//! webhook body with its `entry[].messaging[]` / `standby[]` items (read
//! leniently as `serde_json::Value`, so a field Meta adds tomorrow never
//! breaks parsing), the Send API request bodies for `/me/messages` (quick
//! replies, button template, sender actions, message tags) and Messenger's
//! limits. The signature, handshake and Graph error table it shares with
//! WhatsApp live in `switchboard-meta`.
//!
//! It must not do I/O, read clocks or environment, re-serialise a body before
//! it is verified, or put the page access token anywhere but
//! [`RequestAuth::Bearer`]: never in a path, a body or a `Debug` string.

mod channel;
mod classify;
mod parse;
mod render;

pub use channel::MessengerChannel;

use switchboard_model::{
    Capabilities, ChannelId, Formatting, HandshakeError, HandshakeQuery, InboundEvent,
    OutboundMessage, ParseError, Platform, PlatformAdapter, PlatformRequest, RawWebhook,
    RenderError, SendOutcome, VerifiedWebhook, VerifyError,
};

/// Longest text in one Messenger message.
pub const MAX_TEXT_CHARS: usize = 2000;
/// Longest text above the buttons of a button template.
pub const MAX_BUTTON_TEMPLATE_TEXT_CHARS: usize = 640;
/// Most buttons in a button template.
pub const MAX_BUTTONS: usize = 3;
/// Most quick replies on one message.
pub const MAX_QUICK_REPLIES: usize = 13;
/// Longest quick-reply or button title.
pub const MAX_TITLE_CHARS: usize = 20;
/// Longest quick-reply or postback payload. Meta says 1000 characters;
/// counting bytes keeps multi-byte payloads safely inside it.
pub const MAX_PAYLOAD_BYTES: usize = 1000;

/// What Messenger can show, for the assistant to stay inside.
pub fn capabilities() -> Capabilities {
    Capabilities {
        max_text_chars: MAX_TEXT_CHARS,
        max_buttons: MAX_BUTTONS,
        max_quick_replies: MAX_QUICK_REPLIES,
        max_button_title_chars: MAX_TITLE_CHARS,
        max_list_rows: 0,
        supports_lists: false,
        max_payload_bytes: MAX_PAYLOAD_BYTES,
        supports_typing: true,
        // Meta removed the location quick reply; a customer can still send a
        // location attachment unprompted.
        supports_location_request: false,
        formatting: Formatting::Plain,
        reply_window_hours: Some(24),
    }
}

/// The adapter for one Messenger channel.
#[derive(Debug)]
pub struct MessengerAdapter {
    channel: MessengerChannel,
    capabilities: Capabilities,
}

impl MessengerAdapter {
    pub fn new(channel: MessengerChannel) -> Self {
        Self {
            channel,
            capabilities: capabilities(),
        }
    }

    pub fn channel_config(&self) -> &MessengerChannel {
        &self.channel
    }
}

impl PlatformAdapter for MessengerAdapter {
    fn platform(&self) -> Platform {
        Platform::Messenger
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
        if webhook.platform() != Platform::Messenger {
            return Err(ParseError::WrongShape {
                platform: "messenger",
                detail: format!("body was verified by the {} adapter", webhook.platform()),
            });
        }
        parse::parse_body(
            webhook.body(),
            &self.channel.id,
            self.channel.page_id.as_deref(),
        )
    }

    fn render(&self, message: &OutboundMessage) -> Result<Vec<PlatformRequest>, RenderError> {
        render::render(message, &self.channel.page_access_token)
    }

    fn classify(&self, status: u16, retry_after: Option<&str>, body: &[u8]) -> SendOutcome {
        classify::classify(status, retry_after, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_model::SecretString;

    fn adapter() -> MessengerAdapter {
        MessengerAdapter::new(MessengerChannel {
            id: ChannelId::new("shop-messenger").unwrap(),
            app_secrets: vec![SecretString::from("app-secret")],
            verify_tokens: vec![
                SecretString::from("old-verify-token"),
                SecretString::from("new-verify-token"),
            ],
            page_access_token: SecretString::from("EAAG-page-token"),
            page_id: Some("1895382890692545".into()),
        })
    }

    fn query(mode: Option<&str>, token: Option<&str>, challenge: Option<&str>) -> HandshakeQuery {
        HandshakeQuery {
            mode: mode.map(str::to_owned),
            verify_token: token.map(str::to_owned),
            challenge: challenge.map(str::to_owned),
        }
    }

    #[test]
    fn handshake_with_either_verify_token_echoes_the_challenge_verbatim() {
        let adapter = adapter();
        for token in ["old-verify-token", "new-verify-token"] {
            assert_eq!(
                adapter
                    .handshake(&query(Some("subscribe"), Some(token), Some("1158201444")))
                    .as_deref(),
                Ok("1158201444")
            );
        }
        assert_eq!(
            adapter
                .handshake(&query(
                    Some("subscribe"),
                    Some("new-verify-token"),
                    Some("not-a-number_Ω")
                ))
                .as_deref(),
            Ok("not-a-number_Ω")
        );
    }

    #[test]
    fn handshake_with_a_wrong_token_or_mode_is_refused() {
        let adapter = adapter();
        assert_eq!(
            adapter.handshake(&query(Some("subscribe"), Some("app-secret"), Some("1"))),
            Err(HandshakeError::TokenMismatch)
        );
        assert_eq!(
            adapter.handshake(&query(Some("subscribe"), Some(""), Some("1"))),
            Err(HandshakeError::TokenMismatch)
        );
        assert_eq!(
            adapter.handshake(&query(
                Some("unsubscribe"),
                Some("new-verify-token"),
                Some("1")
            )),
            Err(HandshakeError::WrongMode)
        );
        assert_eq!(
            adapter.handshake(&query(Some("subscribe"), None, Some("1"))),
            Err(HandshakeError::MissingParameter("hub.verify_token"))
        );
        assert_eq!(
            adapter.handshake(&query(Some("subscribe"), Some("new-verify-token"), None)),
            Err(HandshakeError::MissingParameter("hub.challenge"))
        );
        assert_eq!(
            adapter.handshake(&HandshakeQuery::default()),
            Err(HandshakeError::MissingParameter("hub.mode"))
        );
    }

    #[test]
    fn a_channel_without_verify_tokens_refuses_every_handshake() {
        let mut channel = adapter().channel;
        channel.verify_tokens.clear();
        let adapter = MessengerAdapter::new(channel);
        assert_eq!(
            adapter.handshake(&query(Some("subscribe"), Some(""), Some("1"))),
            Err(HandshakeError::TokenMismatch)
        );
    }

    #[test]
    fn capabilities_declare_messenger_limits() {
        let adapter = adapter();
        assert_eq!(
            adapter.capabilities(),
            &Capabilities {
                max_text_chars: 2000,
                max_buttons: 3,
                max_quick_replies: 13,
                max_button_title_chars: 20,
                max_list_rows: 0,
                supports_lists: false,
                max_payload_bytes: 1000,
                supports_typing: true,
                supports_location_request: false,
                formatting: Formatting::Plain,
                reply_window_hours: Some(24),
            }
        );
        assert_eq!(adapter.platform(), Platform::Messenger);
        assert_eq!(adapter.channel().as_str(), "shop-messenger");
    }

    #[test]
    fn adapter_debug_output_shows_no_secret() {
        let debug = format!("{:?}", adapter());
        for secret in [
            "app-secret",
            "old-verify-token",
            "new-verify-token",
            "EAAG-page-token",
        ] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
        assert!(debug.contains("shop-messenger"));
        assert!(debug.contains("1895382890692545"));
    }
}
