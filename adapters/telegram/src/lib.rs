//! The Telegram Bot API adapter: one bot (a [`TelegramChannel`]) behind the
//! [`PlatformAdapter`] contract.
//!
//! It owns everything that is Telegram's and nobody else's: the
//! `X-Telegram-Bot-Api-Secret-Token` check, the `Update` JSON (private wire
//! structs, read leniently so new Bot API fields never break parsing), the
//! HTML parse mode and its escaping, Telegram's length limits (UTF-16 units
//! for text, bytes for `callback_data`) and the meaning of its error answers.
//!
//! It is sans-IO: no sockets, clocks or environment. It must not decide what
//! the bot says, and it must never put the bot token anywhere but the
//! [`switchboard_model::RequestAuth::PathToken`] the sender expands at the
//! last moment.

mod channel;
mod classify;
mod command;
mod html;
mod parse;
mod render;
mod verify;
mod wire;

use switchboard_model::{
    Capabilities, ChannelId, Formatting, HandshakeError, HandshakeQuery, InboundEvent,
    OutboundMessage, ParseError, Platform, PlatformAdapter, PlatformRequest, RawWebhook,
    RenderError, SendOutcome, VerifiedWebhook, VerifyError,
};

pub use channel::TelegramChannel;
pub use html::escape_html;
pub use verify::SECRET_TOKEN_HEADER;

/// What a Telegram chat can show. Text limits are counted in UTF-16 units
/// by Telegram; the adapter does that counting itself when it splits.
pub fn capabilities() -> Capabilities {
    Capabilities {
        max_text_chars: render::MAX_TEXT_UNITS,
        max_buttons: render::MAX_BUTTONS,
        // Quick replies are inline buttons too on Telegram.
        max_quick_replies: render::MAX_BUTTONS,
        max_button_title_chars: render::MAX_BUTTON_TITLE_CHARS,
        max_list_rows: 0,
        supports_lists: false,
        max_payload_bytes: render::MAX_CALLBACK_DATA_BYTES,
        supports_typing: true,
        supports_location_request: true,
        formatting: Formatting::TelegramHtml,
        reply_window_hours: None,
    }
}

/// One bot's adapter, built from its channel configuration.
#[derive(Debug)]
pub struct TelegramAdapter {
    channel: TelegramChannel,
    capabilities: Capabilities,
}

impl TelegramAdapter {
    pub fn new(channel: TelegramChannel) -> Self {
        Self {
            channel,
            capabilities: capabilities(),
        }
    }
}

impl PlatformAdapter for TelegramAdapter {
    fn platform(&self) -> Platform {
        Platform::Telegram
    }

    fn channel(&self) -> &ChannelId {
        &self.channel.id
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn authenticate(&self, raw: &RawWebhook<'_>) -> Result<(), VerifyError> {
        verify::check_secret_token(raw.headers, &self.channel.secret_tokens)
    }

    /// Telegram has no subscription handshake: the webhook is registered
    /// with `setWebhook` from the bot's side.
    fn handshake(&self, _query: &HandshakeQuery) -> Result<String, HandshakeError> {
        Err(HandshakeError::NotSupported)
    }

    fn parse(&self, webhook: &VerifiedWebhook<'_>) -> Result<Vec<InboundEvent>, ParseError> {
        // A body another platform's adapter vouched for was never checked
        // against this bot's secret.
        if webhook.platform() != Platform::Telegram {
            return Err(ParseError::WrongShape {
                platform: "telegram",
                detail: format!(
                    "the body was verified by the {} adapter",
                    webhook.platform()
                ),
            });
        }
        parse::parse_update(webhook.channel(), webhook.body())
    }

    fn render(&self, message: &OutboundMessage) -> Result<Vec<PlatformRequest>, RenderError> {
        render::render(&self.channel.bot_token, message)
    }

    fn classify(&self, status: u16, retry_after: Option<&str>, body: &[u8]) -> SendOutcome {
        classify::classify(status, retry_after, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_model::{SecretString, verify};

    fn adapter() -> TelegramAdapter {
        TelegramAdapter::new(TelegramChannel {
            id: ChannelId::new("shop-telegram").unwrap(),
            bot_token: SecretString::from("123456:AAE-bot-token"),
            secret_tokens: vec![SecretString::from("webhook_secret")],
        })
    }

    /// Stands in for another platform's adapter that vouches for anything.
    struct OtherPlatform(ChannelId, Capabilities);

    impl PlatformAdapter for OtherPlatform {
        fn platform(&self) -> Platform {
            Platform::Messenger
        }
        fn channel(&self) -> &ChannelId {
            &self.0
        }
        fn capabilities(&self) -> &Capabilities {
            &self.1
        }
        fn authenticate(&self, _raw: &RawWebhook<'_>) -> Result<(), VerifyError> {
            Ok(())
        }
        fn handshake(&self, _query: &HandshakeQuery) -> Result<String, HandshakeError> {
            Err(HandshakeError::NotSupported)
        }
        fn parse(&self, _webhook: &VerifiedWebhook<'_>) -> Result<Vec<InboundEvent>, ParseError> {
            Ok(Vec::new())
        }
        fn render(&self, _message: &OutboundMessage) -> Result<Vec<PlatformRequest>, RenderError> {
            Ok(Vec::new())
        }
        fn classify(&self, _status: u16, _retry_after: Option<&str>, _body: &[u8]) -> SendOutcome {
            SendOutcome::Delivered { message_id: None }
        }
    }

    #[test]
    fn telegram_has_no_handshake() {
        let query = HandshakeQuery {
            mode: Some("subscribe".into()),
            verify_token: Some("webhook_secret".into()),
            challenge: Some("1158201444".into()),
        };
        assert_eq!(
            adapter().handshake(&query),
            Err(HandshakeError::NotSupported)
        );
    }

    #[test]
    fn capabilities_declare_telegrams_limits() {
        let adapter = adapter();
        assert_eq!(adapter.capabilities(), &capabilities());
        assert_eq!(
            capabilities(),
            Capabilities {
                max_text_chars: 4096,
                max_buttons: 100,
                max_quick_replies: 100,
                max_button_title_chars: 64,
                max_list_rows: 0,
                supports_lists: false,
                max_payload_bytes: 64,
                supports_typing: true,
                supports_location_request: true,
                formatting: Formatting::TelegramHtml,
                reply_window_hours: None,
            }
        );
        assert_eq!(adapter.platform(), Platform::Telegram);
        assert_eq!(adapter.channel().as_str(), "shop-telegram");
    }

    #[test]
    fn a_body_verified_by_another_platform_is_not_parsed() {
        let other = OtherPlatform(ChannelId::new("shop-fb").unwrap(), capabilities());
        let headers: [(&str, &str); 0] = [];
        let body = br#"{"update_id":1,"message":{"message_id":1,"chat":{"id":1},"text":"hi"}}"#;
        let vouched = verify(&other, RawWebhook::new(&headers, body)).unwrap();
        assert_eq!(
            adapter().parse(&vouched),
            Err(ParseError::WrongShape {
                platform: "telegram",
                detail: "the body was verified by the messenger adapter".into(),
            })
        );
    }
}
