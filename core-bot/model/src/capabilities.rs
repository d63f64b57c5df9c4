use serde::{Deserialize, Serialize};

/// How the platform formats text the adapter sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Formatting {
    /// Text is shown as sent.
    Plain,
    /// Telegram `parse_mode: HTML`; the adapter escapes user-derived text.
    TelegramHtml,
}

/// What a platform can show, declared by its adapter so the assistant can
/// stay inside the limits without knowing which platform it is on. Lengths
/// are in characters (Unicode scalar values) unless named `_bytes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Longest text in one message; longer text is split by the adapter.
    pub max_text_chars: usize,
    /// Most tappable buttons shown with one message.
    pub max_buttons: usize,
    /// Most quick-reply suggestions with one message.
    pub max_quick_replies: usize,
    /// Longest button / quick-reply title.
    pub max_button_title_chars: usize,
    /// Rows a list menu can hold (0 when the platform has no list).
    pub max_list_rows: usize,
    pub supports_lists: bool,
    /// Longest option payload, in bytes.
    pub max_payload_bytes: usize,
    pub supports_typing: bool,
    pub supports_location_request: bool,
    pub formatting: Formatting,
    /// Replies outside 24 h of the customer's last message are refused
    /// unless tagged or templated (Messenger, WhatsApp).
    pub reply_window_hours: Option<u32>,
}
