//! The parts of the Bot API `Update` this adapter reads. Private: nothing
//! outside the crate sees Telegram's JSON.
//!
//! Read leniently: unknown fields are ignored, nearly everything is optional
//! (2016 payloads lack `is_bot`, channel posts lack `from`), and only what an
//! event cannot exist without (`message_id`, `chat.id`) is required. Ids are
//! `i64`: chat ids are negative for groups and exceed 32 bits.

use serde::Deserialize;
use serde::de::IgnoredAny;

#[derive(Debug, Deserialize)]
pub(crate) struct User {
    pub id: i64,
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub language_code: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Chat {
    pub id: i64,
    #[serde(rename = "type", default)]
    pub kind: String,
    pub title: Option<String>,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Entity {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub offset: usize,
    #[serde(default)]
    pub length: usize,
}

/// Any message the bot only needs the id of (`reply_to_message`).
#[derive(Debug, Deserialize)]
pub(crate) struct MessageRef {
    pub message_id: i64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Message {
    pub message_id: i64,
    pub message_thread_id: Option<i64>,
    #[serde(default)]
    pub is_topic_message: bool,
    pub from: Option<User>,
    pub sender_chat: Option<Chat>,
    #[serde(default)]
    pub date: i64,
    pub edit_date: Option<i64>,
    pub chat: Chat,
    pub reply_to_message: Option<MessageRef>,
    /// Bot API 7.0+; the `forward_*` fields are the older spelling.
    pub forward_origin: Option<IgnoredAny>,
    pub forward_from: Option<IgnoredAny>,
    pub forward_from_chat: Option<IgnoredAny>,
    pub forward_sender_name: Option<IgnoredAny>,
    pub forward_date: Option<IgnoredAny>,
    pub text: Option<String>,
    #[serde(default)]
    pub entities: Vec<Entity>,
    pub caption: Option<String>,
    #[serde(default)]
    pub photo: Vec<PhotoSize>,
    pub animation: Option<File>,
    pub video: Option<File>,
    pub video_note: Option<File>,
    pub voice: Option<File>,
    pub audio: Option<File>,
    pub document: Option<File>,
    pub sticker: Option<File>,
    pub location: Option<Location>,
    pub venue: Option<Venue>,
    pub contact: Option<Contact>,
}

impl Message {
    pub fn is_forwarded(&self) -> bool {
        self.forward_origin.is_some()
            || self.forward_from.is_some()
            || self.forward_from_chat.is_some()
            || self.forward_sender_name.is_some()
            || self.forward_date.is_some()
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct PhotoSize {
    pub file_id: String,
}

/// What `video`, `voice`, `audio`, `document`, `animation`, `sticker` and
/// `video_note` have in common.
#[derive(Debug, Deserialize)]
pub(crate) struct File {
    pub file_id: String,
    pub mime_type: Option<String>,
    pub file_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Location {
    pub latitude: f64,
    pub longitude: f64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Venue {
    pub location: Location,
    #[serde(default)]
    pub title: String,
    pub address: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Contact {
    #[serde(default)]
    pub phone_number: String,
    #[serde(default)]
    pub first_name: String,
    pub last_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CallbackQuery {
    pub id: String,
    pub from: User,
    /// The bot message carrying the keyboard; `InaccessibleMessage` (older
    /// than 48 h) still has `chat` and `message_id`. Absent for keyboards on
    /// inline-mode messages, which have `inline_message_id` instead.
    pub message: Option<CallbackMessage>,
    pub data: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CallbackMessage {
    pub message_id: i64,
    pub chat: Chat,
    pub reply_markup: Option<InlineKeyboardMarkup>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct InlineKeyboardMarkup {
    #[serde(default)]
    pub inline_keyboard: Vec<Vec<InlineKeyboardButton>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct InlineKeyboardButton {
    #[serde(default)]
    pub text: String,
    pub callback_data: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct MessageReactionUpdated {
    pub chat: Chat,
    pub message_id: i64,
    pub user: Option<User>,
    /// Set instead of `user` when the reaction came from an anonymous admin
    /// or a channel.
    pub actor_chat: Option<Chat>,
    #[serde(default)]
    pub date: i64,
    #[serde(default)]
    pub new_reaction: Vec<ReactionType>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReactionType {
    #[serde(rename = "type", default)]
    pub kind: String,
    pub emoji: Option<String>,
    pub custom_emoji_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChatMemberUpdated {
    pub chat: Chat,
    pub from: User,
    #[serde(default)]
    pub date: i64,
    pub old_chat_member: ChatMember,
    pub new_chat_member: ChatMember,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChatMember {
    #[serde(default)]
    pub status: String,
    /// Only on `restricted` members: whether they are still in the chat.
    #[serde(default)]
    pub is_member: bool,
}

impl ChatMember {
    /// Whether this status means "in the chat".
    pub fn is_present(&self) -> bool {
        match self.status.as_str() {
            "creator" | "administrator" | "member" => true,
            "restricted" => self.is_member,
            _ => false,
        }
    }
}
