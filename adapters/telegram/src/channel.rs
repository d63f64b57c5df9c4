use std::fmt;

use switchboard_model::{ChannelId, SecretString};

/// One Telegram bot as the operator configured it.
#[derive(Clone)]
pub struct TelegramChannel {
    pub id: ChannelId,
    /// The BotFather token; it goes into the request path
    /// (`/bot<token>/sendMessage`), so it is never logged with a URL.
    pub bot_token: SecretString,
    /// The `secret_token` values given to `setWebhook`. Several are accepted
    /// at once so a rotation (configure new, call `setWebhook`, drop old)
    /// loses no update that was queued under the old one.
    pub secret_tokens: Vec<SecretString>,
}

impl fmt::Debug for TelegramChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelegramChannel")
            .field("id", &self.id)
            .field("bot_token", &"[REDACTED]")
            .field(
                "secret_tokens",
                &format_args!("[{} REDACTED]", self.secret_tokens.len()),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_names_the_channel_but_shows_no_secret() {
        let channel = TelegramChannel {
            id: ChannelId::new("shop-telegram").unwrap(),
            bot_token: SecretString::from("123456:AAE-bot-token"),
            secret_tokens: vec![
                SecretString::from("first_webhook_secret"),
                SecretString::from("second_webhook_secret"),
            ],
        };
        let debug = format!("{channel:?}");
        assert!(debug.contains("shop-telegram"), "{debug}");
        assert!(debug.contains("[2 REDACTED]"), "{debug}");
        for secret in [
            "AAE-bot-token",
            "first_webhook_secret",
            "second_webhook_secret",
        ] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }
}
