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
//! [`RequestAuth::PathToken`] the sender expands at the last moment.

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
        // Telegram's limit for one inline keyboard.
        max_buttons: 100,
        max_quick_replies: 100,
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
