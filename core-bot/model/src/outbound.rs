use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::ids::ConversationKey;

/// One reply for one conversation, in platform-neutral terms. Adapters
/// render it into one or more [`PlatformRequest`]s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundMessage {
    pub conversation: ConversationKey,
    pub body: OutboundBody,
    /// Telegram forum topic to answer in.
    pub thread_id: Option<i64>,
    /// Messenger message tag (`HUMAN_AGENT`, `ACCOUNT_UPDATE`, ...) that lets
    /// this message go out after the 24-hour window; sent as
    /// `messaging_type: MESSAGE_TAG`. Ignored by other platforms.
    pub message_tag: Option<String>,
}

impl OutboundMessage {
    pub fn new(conversation: ConversationKey, body: OutboundBody) -> Self {
        Self {
            conversation,
            body,
            thread_id: None,
            message_tag: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutboundBody {
    /// Plain text. Adapters escape it for the platform's formatting and split
    /// it over the platform's limit.
    Text { text: String },
    /// Text followed by options the customer can tap. Adapters map them onto
    /// quick replies, buttons, inline keyboards or lists within the
    /// platform's limits, and degrade to a numbered text menu otherwise.
    Choice {
        text: String,
        options: Vec<ChoiceOption>,
        style: ChoiceStyle,
    },
    /// An image or file by URL.
    Media {
        kind: OutboundMediaKind,
        url: String,
        caption: Option<String>,
    },
    /// Ask the customer to share their location.
    LocationRequest { text: String },
    /// Show "typing…". Platforms without an indicator render nothing.
    Typing,
    /// Mark a customer's message as read (WhatsApp needs the message id).
    MarkRead { message_id: String },
    /// Telegram: stop the spinner on a tapped inline button.
    AnswerCallback {
        callback_id: String,
        text: Option<String>,
    },
    /// A WhatsApp message template approved in advance by Meta: the only
    /// message WhatsApp delivers outside the 24-hour window. `parameters`
    /// fill the body's `{{1}}`, `{{2}}`, ... in order; `language` is the
    /// template's language code (`en_US`). Platforms without templates
    /// refuse it with `RenderError::Unsupported`.
    Template {
        name: String,
        language: String,
        parameters: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceOption {
    pub title: String,
    pub payload: String,
    /// Secondary line where the platform shows one (WhatsApp list rows).
    pub description: Option<String>,
}

impl ChoiceOption {
    pub fn new(title: impl Into<String>, payload: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            payload: payload.into(),
            description: None,
        }
    }
}

/// How the assistant would like options shown; adapters pick the closest
/// form the platform has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChoiceStyle {
    /// Short-lived suggestions (Messenger quick replies, Telegram inline
    /// keyboard, WhatsApp reply buttons).
    QuickReplies,
    /// Persistent buttons (Messenger button template, WhatsApp reply buttons).
    Buttons,
    /// A longer menu (WhatsApp list with `button` as its opener label).
    List { button: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboundMediaKind {
    Image,
    File,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpMethod {
    Get,
    Post,
    Delete,
}

/// How a request proves who sends it. Secrets stay wrapped until the sender
/// builds the real HTTP request, so a logged `PlatformRequest` shows none.
#[derive(Clone)]
pub enum RequestAuth {
    None,
    /// `Authorization: Bearer <token>` (Meta Graph API).
    Bearer(SecretString),
    /// Telegram puts the bot token in the path: `{base}/{prefix}{token}{path}`
    /// (`/bot<token>/sendMessage`); the platform allows no header.
    PathToken {
        prefix: &'static str,
        token: SecretString,
    },
}

impl fmt::Debug for RequestAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestAuth::None => f.write_str("None"),
            RequestAuth::Bearer(_) => f.write_str("Bearer([REDACTED])"),
            RequestAuth::PathToken { prefix, .. } => write!(f, "PathToken({prefix}[REDACTED])"),
        }
    }
}

/// One HTTP call to a platform's send API, relative to the configured base.
#[derive(Debug, Clone)]
pub struct PlatformRequest {
    pub method: HttpMethod,
    /// Path below the api base, starting with `/`, never holding a secret
    /// (`/sendMessage`, `/me/messages`, `/{phone-number-id}/messages`).
    pub path: String,
    pub auth: RequestAuth,
    pub body: Option<serde_json::Value>,
}

impl PlatformRequest {
    pub fn post_json(path: impl Into<String>, auth: RequestAuth, body: serde_json::Value) -> Self {
        Self {
            method: HttpMethod::Post,
            path: path.into(),
            auth,
            body: Some(body),
        }
    }

    /// The full URL, secret included where the platform demands it in the
    /// path. Kept wrapped: callers expose it only to hand it to the client.
    pub fn url(&self, api_base: &str) -> SecretString {
        let base = api_base.trim_end_matches('/');
        let url = match &self.auth {
            RequestAuth::PathToken { prefix, token } => {
                format!("{base}/{prefix}{}{}", token.expose_secret(), self.path)
            }
            RequestAuth::None | RequestAuth::Bearer(_) => format!("{base}{}", self.path),
        };
        SecretString::from(url)
    }

    /// The bearer token for the `Authorization` header, if this request uses one.
    pub fn bearer_token(&self) -> Option<&str> {
        match &self.auth {
            RequestAuth::Bearer(token) => Some(token.expose_secret()),
            RequestAuth::None | RequestAuth::PathToken { .. } => None,
        }
    }
}

/// What a platform's answer to a send means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Accepted; the platform's id for the sent message where it gives one.
    Delivered {
        message_id: Option<String>,
    },
    Failed(SendFailure),
}

/// Why a send failed, in terms the sender can act on. `reason` is the
/// platform's short error text; it never holds tokens or message content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendFailure {
    /// Rate limited: wait this long, then retry.
    RetryAfter {
        after: Duration,
        code: Option<i64>,
        reason: String,
    },
    /// 5xx, timeouts, Meta "temporary" errors: retry with backoff.
    Transient { code: Option<i64>, reason: String },
    /// Messenger/WhatsApp 24-hour window closed: needs a tag or template.
    OutsideWindow { code: Option<i64>, reason: String },
    /// The customer blocked the bot, left, or does not exist: stop sending.
    RecipientUnreachable { code: Option<i64>, reason: String },
    /// Token wrong, expired or lacking permission: an operator must act.
    BadCredentials { code: Option<i64>, reason: String },
    /// The request itself is wrong; retrying will not help.
    Permanent { code: Option<i64>, reason: String },
}

impl SendFailure {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SendFailure::RetryAfter { .. } | SendFailure::Transient { .. }
        )
    }

    /// A stable lowercase label for metrics and dead letters.
    pub fn label(&self) -> &'static str {
        match self {
            SendFailure::RetryAfter { .. } => "retry_after",
            SendFailure::Transient { .. } => "transient",
            SendFailure::OutsideWindow { .. } => "outside_window",
            SendFailure::RecipientUnreachable { .. } => "recipient_unreachable",
            SendFailure::BadCredentials { .. } => "bad_credentials",
            SendFailure::Permanent { .. } => "permanent",
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            SendFailure::RetryAfter { reason, .. }
            | SendFailure::Transient { reason, .. }
            | SendFailure::OutsideWindow { reason, .. }
            | SendFailure::RecipientUnreachable { reason, .. }
            | SendFailure::BadCredentials { reason, .. }
            | SendFailure::Permanent { reason, .. } => reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telegram_token_goes_into_the_url_but_never_into_debug_output() {
        let request = PlatformRequest::post_json(
            "/sendMessage",
            RequestAuth::PathToken {
                prefix: "bot",
                token: SecretString::from("123:SECRET"),
            },
            serde_json::json!({"chat_id": 1}),
        );
        assert_eq!(
            request.url("http://127.0.0.1:9/").expose_secret(),
            "http://127.0.0.1:9/bot123:SECRET/sendMessage"
        );
        assert!(!format!("{request:?}").contains("SECRET"));
    }

    #[test]
    fn bearer_token_is_exposed_only_through_its_accessor() {
        let request = PlatformRequest::post_json(
            "/me/messages",
            RequestAuth::Bearer(SecretString::from("PAGE-TOKEN")),
            serde_json::json!({}),
        );
        assert_eq!(
            request.url("https://graph.example/v21.0").expose_secret(),
            "https://graph.example/v21.0/me/messages"
        );
        assert_eq!(request.bearer_token(), Some("PAGE-TOKEN"));
        assert!(!format!("{request:?}").contains("PAGE-TOKEN"));
    }
}
