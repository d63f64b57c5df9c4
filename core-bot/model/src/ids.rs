use std::fmt;

use serde::{Deserialize, Serialize};

/// The three platforms Switchboard speaks. Adapter registration is a plain
/// `match` on this enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Messenger,
    #[serde(rename = "whatsapp")]
    WhatsApp,
    Telegram,
}

impl Platform {
    pub const ALL: [Platform; 3] = [Platform::Messenger, Platform::WhatsApp, Platform::Telegram];

    /// The lowercase name used in URLs, keys, metrics labels and config.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Messenger => "messenger",
            Platform::WhatsApp => "whatsapp",
            Platform::Telegram => "telegram",
        }
    }

    pub fn from_name(name: &str) -> Option<Platform> {
        match name {
            "messenger" => Some(Platform::Messenger),
            "whatsapp" => Some(Platform::WhatsApp),
            "telegram" => Some(Platform::Telegram),
            _ => None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operator-chosen channel id (`shop-telegram`). Restricted to
/// `[A-Za-z0-9_-]{1,64}` because it appears in URLs, Redis keys and the
/// `platform:channel:chat` conversation key, where a `:` or `/` would be
/// ambiguous.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ChannelId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("channel id must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")]
pub struct InvalidChannelId;

impl ChannelId {
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidChannelId> {
        let id = id.into();
        let valid = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(id))
        } else {
            Err(InvalidChannelId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ChannelId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        ChannelId::new(raw).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a reply goes and whose conversation it is. Meta ids (PSID, wa_id)
/// are strings and stay strings; Telegram chat ids are 64-bit and negative
/// for groups, so they are never squeezed through a float or an `i32`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChatId {
    Int(i64),
    Str(String),
}

impl fmt::Display for ChatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChatId::Int(id) => write!(f, "{id}"),
            ChatId::Str(id) => f.write_str(id),
        }
    }
}

/// The platform's own id for one delivery, namespaced by event kind
/// (`message:<mid>`, `status:<wamid>:delivered`, `update:<update_id>`).
/// Together with platform and channel it is the dedupe key for retries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub String);

impl EventId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One conversation: platform + channel + chat. Its string form
/// `platform:channel:chat` is what the admin API and stores use.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConversationKey {
    pub platform: Platform,
    pub channel: ChannelId,
    pub chat: ChatId,
}

impl ConversationKey {
    pub fn new(platform: Platform, channel: ChannelId, chat: ChatId) -> Self {
        Self {
            platform,
            channel,
            chat,
        }
    }

    /// Parses `platform:channel:chat`. Telegram chats must be integers;
    /// Meta chats are kept as strings.
    pub fn parse(key: &str) -> Option<Self> {
        let mut parts = key.splitn(3, ':');
        let platform = Platform::from_name(parts.next()?)?;
        let channel = ChannelId::new(parts.next()?).ok()?;
        let chat = parts.next()?;
        if chat.is_empty() {
            return None;
        }
        let chat = match platform {
            Platform::Telegram => ChatId::Int(chat.parse().ok()?),
            Platform::Messenger | Platform::WhatsApp => ChatId::Str(chat.to_owned()),
        };
        Some(Self {
            platform,
            channel,
            chat,
        })
    }
}

impl fmt::Display for ConversationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.platform, self.channel, self.chat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_ids_reject_separators_and_empty() {
        assert!(ChannelId::new("shop-telegram_1").is_ok());
        assert_eq!(ChannelId::new(""), Err(InvalidChannelId));
        assert_eq!(ChannelId::new("a:b"), Err(InvalidChannelId));
        assert_eq!(ChannelId::new("a/b"), Err(InvalidChannelId));
        assert_eq!(ChannelId::new("x".repeat(65)), Err(InvalidChannelId));
    }

    #[test]
    fn conversation_key_round_trips_including_negative_telegram_ids() {
        let key = ConversationKey::new(
            Platform::Telegram,
            ChannelId::new("tg").unwrap(),
            ChatId::Int(-1001241558182),
        );
        assert_eq!(key.to_string(), "telegram:tg:-1001241558182");
        assert_eq!(ConversationKey::parse(&key.to_string()), Some(key));

        let meta = ConversationKey::parse("whatsapp:wa:16505551234").unwrap();
        assert_eq!(meta.chat, ChatId::Str("16505551234".into()));
        assert_eq!(ConversationKey::parse("telegram:tg:abc"), None);
        assert_eq!(ConversationKey::parse("sms:tg:1"), None);
        assert_eq!(ConversationKey::parse("messenger:tg:"), None);
    }
}
