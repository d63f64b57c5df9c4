use std::fmt;

use switchboard_model::{ChannelId, SecretString};

/// One Facebook Page as configured by an operator.
#[derive(Clone)]
pub struct MessengerChannel {
    pub id: ChannelId,
    /// Secrets of the Meta app the page is subscribed to; more than one
    /// while a secret is being rotated. They verify `X-Hub-Signature-256`.
    pub app_secrets: Vec<SecretString>,
    /// Tokens accepted in the `hub.verify_token` subscription handshake.
    pub verify_tokens: Vec<SecretString>,
    /// Page access token for the Send API, sent only as a bearer header.
    pub page_access_token: SecretString,
    /// The page this channel answers for (`entry[].id`). `None` takes every
    /// page of the app (the one-page case). The gateway routes by it.
    pub page_id: Option<String>,
}

impl fmt::Debug for MessengerChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Counts, not values: enough to see a secret is missing in a log.
        f.debug_struct("MessengerChannel")
            .field("id", &self.id)
            .field(
                "app_secrets",
                &format_args!("[{} redacted]", self.app_secrets.len()),
            )
            .field(
                "verify_tokens",
                &format_args!("[{} redacted]", self.verify_tokens.len()),
            )
            .field("page_access_token", &format_args!("[redacted]"))
            .field("page_id", &self.page_id)
            .finish()
    }
}
