//! One webhook body (one `Update`) into one [`InboundEvent`].
//!
//! An Update carries exactly one optional field naming its kind. The kinds a
//! shop bot answers are modelled; every other kind, and every message whose
//! content is not modelled (dice, pinned messages, stories, service
//! messages), becomes `EventKind::Unsupported` with the whole Update kept
//! raw, so nothing Telegram sends is lost or turned into an error.

use serde::Deserialize;
use serde_json::{Map, Value};
use switchboard_model::{
    ChannelId, ChatId, Contact, ConversationKey, EventId, EventKind, InboundEvent, Location, Media,
    MediaKind, Membership, Message, MessageContent, ParseError, PayloadEvent, PayloadKind,
    Platform, Reaction, Referral, Sender,
};

use crate::command::parse_command;
use crate::wire;

/// The Update fields this adapter turns into something other than
/// `Unsupported`, in the order they are looked for.
const MODELLED_KINDS: [&str; 7] = [
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "callback_query",
    "message_reaction",
    "my_chat_member",
];

/// Message content fields the model has no shape for. Checked first so an
/// unsupported message is labelled by what it is (`message:dice`), not by
/// whatever other field happens to come first.
const UNMODELLED_CONTENT: &[&str] = &[
    "dice",
    "poll",
    "game",
    "story",
    "checklist",
    "invoice",
    "paid_media",
    "giveaway",
    "pinned_message",
    "new_chat_members",
    "left_chat_member",
    "new_chat_title",
    "new_chat_photo",
    "delete_chat_photo",
    "group_chat_created",
    "supergroup_chat_created",
    "channel_chat_created",
    "migrate_to_chat_id",
    "migrate_from_chat_id",
    "message_auto_delete_timer_changed",
    "successful_payment",
    "refunded_payment",
    "users_shared",
    "chat_shared",
    "gift",
    "unique_gift",
    "connected_website",
    "write_access_allowed",
    "passport_data",
    "proximity_alert_triggered",
    "boost_added",
    "chat_background_set",
    "forum_topic_created",
    "forum_topic_edited",
    "forum_topic_closed",
    "forum_topic_reopened",
    "general_forum_topic_hidden",
    "general_forum_topic_unhidden",
    "giveaway_created",
    "giveaway_winners",
    "giveaway_completed",
    "video_chat_scheduled",
    "video_chat_started",
    "video_chat_ended",
    "video_chat_participants_invited",
    "web_app_data",
];

/// Message fields that describe a message rather than being its content.
/// A content kind newer than [`UNMODELLED_CONTENT`] is named by the first
/// field not listed here.
const MESSAGE_METADATA: &[&str] = &[
    "message_id",
    "message_thread_id",
    "direct_messages_topic",
    "from",
    "sender_chat",
    "sender_boost_count",
    "sender_business_bot",
    "date",
    "business_connection_id",
    "chat",
    "forward_origin",
    "forward_from",
    "forward_from_chat",
    "forward_from_message_id",
    "forward_signature",
    "forward_sender_name",
    "forward_date",
    "is_topic_message",
    "is_automatic_forward",
    "reply_to_message",
    "external_reply",
    "quote",
    "reply_to_story",
    "reply_to_checklist_task_id",
    "via_bot",
    "edit_date",
    "has_protected_content",
    "is_from_offline",
    "is_paid_post",
    "media_group_id",
    "author_signature",
    "paid_star_count",
    "entities",
    "caption",
    "caption_entities",
    "show_caption_above_media",
    "has_media_spoiler",
    "link_preview_options",
    "suggested_post_info",
    "effect_id",
    "reply_markup",
];

fn wrong_shape(detail: impl Into<String>) -> ParseError {
    ParseError::WrongShape {
        platform: "telegram",
        detail: detail.into(),
    }
}

/// Reads one Update. The body must be a JSON object with an integer
/// `update_id`; anything else is not something Telegram sends.
pub(crate) fn parse_update(
    channel: &ChannelId,
    body: &[u8],
) -> Result<Vec<InboundEvent>, ParseError> {
    let raw: Value =
        serde_json::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    let Some(update) = raw.as_object() else {
        return Err(wrong_shape("the body is not a JSON object"));
    };
    let update_id = match update.get("update_id") {
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
        _ => return Err(wrong_shape("update_id is missing or not an integer")),
    };
    let update_event = UpdateEvent {
        channel,
        event_id: EventId(format!("update:{update_id}")),
        raw: &raw,
    };
    let event = match update_kind(update) {
        Some((name, value)) => update_event.read(name, value)?,
        None => update_event.unsupported("empty".to_owned(), 0, Sender::default(), 0),
    };
    Ok(vec![event])
}

/// The field that names the Update's kind: a modelled one if present, else
/// the first field that is not `update_id`.
fn update_kind(update: &Map<String, Value>) -> Option<(&str, &Value)> {
    MODELLED_KINDS
        .iter()
        .find_map(|&name| update.get(name).map(|value| (name, value)))
        .or_else(|| {
            update
                .iter()
                .find(|(key, _)| key.as_str() != "update_id")
                .map(|(key, value)| (key.as_str(), value))
        })
}

/// Typed view of one modelled field. Serde's message for a wrong type
/// quotes the offending value (possibly message text), so only "missing
/// field" errors are passed on.
fn typed<'v, T: Deserialize<'v>>(name: &str, value: &'v Value) -> Result<T, ParseError> {
    T::deserialize(value).map_err(|e| {
        let error = e.to_string();
        if error.starts_with("missing field") {
            wrong_shape(format!("`{name}`: {error}"))
        } else {
            wrong_shape(format!("`{name}` has a field of the wrong type"))
        }
    })
}

/// What every event from this Update shares.
struct UpdateEvent<'a> {
    channel: &'a ChannelId,
    event_id: EventId,
    raw: &'a Value,
}

impl UpdateEvent<'_> {
    fn read(&self, name: &str, value: &Value) -> Result<InboundEvent, ParseError> {
        let event = match name {
            "message" | "channel_post" => self.message(name, &typed(name, value)?, value, false),
            "edited_message" | "edited_channel_post" => {
                self.message(name, &typed(name, value)?, value, true)
            }
            "callback_query" => self.callback_query(typed(name, value)?),
            "message_reaction" => self.reaction(&typed(name, value)?),
            "my_chat_member" => self.my_chat_member(&typed(name, value)?),
            other => self.unsupported(
                other.to_owned(),
                best_effort_chat(value),
                best_effort_sender(value),
                value.get("date").and_then(Value::as_i64).unwrap_or(0),
            ),
        };
        Ok(event)
    }

    fn event(&self, chat: i64, sender: Sender, date_seconds: i64, kind: EventKind) -> InboundEvent {
        InboundEvent {
            platform: Platform::Telegram,
            channel: self.channel.clone(),
            event_id: self.event_id.clone(),
            conversation: ConversationKey::new(
                Platform::Telegram,
                self.channel.clone(),
                ChatId::Int(chat),
            ),
            sender,
            business_id: None,
            timestamp_ms: timestamp_ms(date_seconds),
            kind,
        }
    }

    /// `chat` 0 and an empty sender id stand for "Telegram named none"
    /// (a `poll` update has neither).
    fn unsupported(&self, kind: String, chat: i64, sender: Sender, date: i64) -> InboundEvent {
        let raw = self.raw.clone();
        self.event(chat, sender, date, EventKind::Unsupported { kind, raw })
    }

    fn message(
        &self,
        field: &str,
        message: &wire::Message,
        raw_message: &Value,
        edited: bool,
    ) -> InboundEvent {
        let sender = message_sender(message);
        let chat = message.chat.id;
        let date = if edited {
            message.edit_date.unwrap_or(message.date)
        } else {
            message.date
        };
        let Some(content) = content(message) else {
            let kind = format!("{field}:{}", unmodelled_kind(raw_message));
            return self.unsupported(kind, chat, sender, date);
        };
        let referral = start_payload(&content).map(|payload| Referral {
            reference: Some(payload),
            ..Referral::default()
        });
        let model = Message {
            message_id: message.message_id.to_string(),
            content,
            reply_to: message
                .reply_to_message
                .as_ref()
                .map(|reply| reply.message_id.to_string()),
            forwarded: message.is_forwarded(),
            // Replies in ordinary supergroups carry a message_thread_id too,
            // but sending to it fails with "message thread not found"; only
            // forum topics are threads a reply must stay in.
            thread_id: message
                .message_thread_id
                .filter(|_| message.is_topic_message),
            referral,
        };
        let kind = if edited {
            EventKind::Edited(model)
        } else {
            EventKind::Message(model)
        };
        self.event(chat, sender, date, kind)
    }

    fn callback_query(&self, query: wire::CallbackQuery) -> InboundEvent {
        let payload = query.data.unwrap_or_default();
        // A keyboard on an inline-mode message has no chat; the tap is
        // answered in the private chat with the user, whose id it shares.
        let chat = query.message.as_ref().map_or(query.from.id, |m| m.chat.id);
        let title = query
            .message
            .as_ref()
            .and_then(|m| m.reply_markup.as_ref())
            .and_then(|markup| {
                markup
                    .inline_keyboard
                    .iter()
                    .flatten()
                    .find(|button| button.callback_data.as_deref() == Some(payload.as_str()))
            })
            .map(|button| button.text.clone());
        let kind = EventKind::Payload(PayloadEvent {
            kind: PayloadKind::CallbackQuery,
            payload,
            title,
            message_id: None,
            in_reply_to: query.message.as_ref().map(|m| m.message_id.to_string()),
            callback_id: Some(query.id),
            referral: None,
        });
        // A callback query carries no date of its own.
        self.event(chat, user_sender(&query.from), 0, kind)
    }

    fn reaction(&self, update: &wire::MessageReactionUpdated) -> InboundEvent {
        let sender = update
            .user
            .as_ref()
            .map(user_sender)
            .or_else(|| update.actor_chat.as_ref().map(chat_sender))
            .unwrap_or_else(|| chat_sender(&update.chat));
        let emoji = update
            .new_reaction
            .iter()
            .find(|r| r.kind == "emoji")
            .and_then(|r| r.emoji.clone())
            .or_else(|| {
                update
                    .new_reaction
                    .iter()
                    .find(|r| r.kind == "custom_emoji")
                    .and_then(|r| r.custom_emoji_id.clone())
            });
        let kind = EventKind::Reaction(Reaction {
            message_id: update.message_id.to_string(),
            emoji,
            removed: update.new_reaction.is_empty(),
        });
        self.event(update.chat.id, sender, update.date, kind)
    }

    fn my_chat_member(&self, update: &wire::ChatMemberUpdated) -> InboundEvent {
        let old = &update.old_chat_member;
        let new = &update.new_chat_member;
        let changed = || Membership::Changed {
            status: new.status.clone(),
        };
        let membership = match update.chat.kind.as_str() {
            // In private chats Telegram sends this only for block/unblock.
            "private" => match (old.status.as_str(), new.status.as_str()) {
                (_, "kicked") => Membership::BotBlocked,
                ("kicked", "member") => Membership::BotUnblocked,
                _ => changed(),
            },
            "group" | "supergroup" => match (old.is_present(), new.is_present()) {
                (false, true) => Membership::AddedToGroup,
                (true, false) => Membership::RemovedFromGroup,
                _ => changed(),
            },
            _ => changed(),
        };
        self.event(
            update.chat.id,
            user_sender(&update.from),
            update.date,
            EventKind::Membership(membership),
        )
    }
}

fn timestamp_ms(date_seconds: i64) -> i64 {
    if date_seconds <= 0 {
        0
    } else {
        date_seconds.saturating_mul(1000)
    }
}

fn full_name(first: &str, last: Option<&str>) -> Option<String> {
    let name = match last {
        Some(last) => format!("{first} {last}"),
        None => first.to_owned(),
    };
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

fn user_sender(user: &wire::User) -> Sender {
    Sender {
        id: user.id.to_string(),
        display_name: full_name(&user.first_name, user.last_name.as_deref()),
        username: user.username.clone(),
        locale: user.language_code.clone(),
        is_bot: user.is_bot,
    }
}

fn chat_sender(chat: &wire::Chat) -> Sender {
    let display_name = chat.title.clone().or_else(|| {
        full_name(
            chat.first_name.as_deref().unwrap_or(""),
            chat.last_name.as_deref(),
        )
    });
    Sender {
        id: chat.id.to_string(),
        display_name,
        username: chat.username.clone(),
        locale: None,
        is_bot: false,
    }
}

/// `sender_chat` wins over `from`: for anonymous group admins and posts a
/// linked channel forwards into its discussion group, `from` is a
/// placeholder account (GroupAnonymousBot, "Telegram") and `sender_chat`
/// the real author. Channel posts from 2018 carry neither: the channel
/// itself spoke.
fn message_sender(message: &wire::Message) -> Sender {
    if let Some(chat) = &message.sender_chat {
        chat_sender(chat)
    } else if let Some(user) = &message.from {
        user_sender(user)
    } else {
        chat_sender(&message.chat)
    }
}

fn content(message: &wire::Message) -> Option<MessageContent> {
    if let Some(text) = &message.text {
        return Some(MessageContent::Text {
            text: text.clone(),
            command: parse_command(text, &message.entities),
        });
    }
    let media = |kind: MediaKind, file_id: &str, file: Option<&wire::File>| {
        MessageContent::Media(Media {
            kind,
            media_id: Some(file_id.to_owned()),
            url: None,
            mime_type: file.and_then(|f| f.mime_type.clone()),
            caption: message.caption.clone(),
            file_name: file.and_then(|f| f.file_name.clone()),
        })
    };
    let file = |kind: MediaKind, file: &wire::File| media(kind, &file.file_id, Some(file));
    // `animation` comes with a `document` twin for old clients, and `venue`
    // with a `location` twin: the richer field is read first.
    if let Some(animation) = &message.animation {
        return Some(file(MediaKind::Animation, animation));
    }
    if let Some(largest) = message.photo.last() {
        return Some(media(MediaKind::Image, &largest.file_id, None));
    }
    let files = [
        (MediaKind::Video, &message.video),
        (MediaKind::Video, &message.video_note),
        (MediaKind::Voice, &message.voice),
        (MediaKind::Audio, &message.audio),
        (MediaKind::File, &message.document),
        (MediaKind::Sticker, &message.sticker),
    ];
    if let Some((kind, Some(found))) = files.into_iter().find(|(_, f)| f.is_some()) {
        return Some(file(kind, found));
    }
    if let Some(venue) = &message.venue {
        return Some(MessageContent::Location(Location {
            latitude: venue.location.latitude,
            longitude: venue.location.longitude,
            name: (!venue.title.is_empty()).then(|| venue.title.clone()),
            address: venue.address.clone(),
        }));
    }
    if let Some(location) = &message.location {
        return Some(MessageContent::Location(Location {
            latitude: location.latitude,
            longitude: location.longitude,
            name: None,
            address: None,
        }));
    }
    if let Some(contact) = &message.contact {
        return Some(MessageContent::Contacts {
            contacts: vec![Contact {
                name: full_name(&contact.first_name, contact.last_name.as_deref())
                    .unwrap_or_default(),
                phones: (!contact.phone_number.is_empty())
                    .then(|| contact.phone_number.clone())
                    .into_iter()
                    .collect(),
                emails: Vec::new(),
            }],
        });
    }
    None
}

/// The deep-link payload of `/start <payload>` (t.me/bot?start=payload),
/// which the model carries as a referral.
fn start_payload(content: &MessageContent) -> Option<String> {
    match content {
        MessageContent::Text {
            command: Some(command),
            ..
        } if command.name == "start" && !command.args.is_empty() => Some(command.args.clone()),
        _ => None,
    }
}

fn unmodelled_kind(raw_message: &Value) -> String {
    let Some(fields) = raw_message.as_object() else {
        return "unknown".to_owned();
    };
    UNMODELLED_CONTENT
        .iter()
        .find(|name| fields.contains_key(**name))
        .map(|name| (*name).to_owned())
        .or_else(|| {
            fields
                .keys()
                .find(|key| !MESSAGE_METADATA.contains(&key.as_str()))
                .cloned()
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The chat an unmodelled Update belongs to, where it names one.
fn best_effort_chat(value: &Value) -> i64 {
    [
        "/chat/id",
        "/message/chat/id",
        "/from/id",
        "/user/id",
        "/voter_chat/id",
    ]
    .iter()
    .find_map(|pointer| value.pointer(pointer).and_then(Value::as_i64))
    .unwrap_or(0)
}

fn best_effort_sender(value: &Value) -> Sender {
    ["from", "user"]
        .iter()
        .find_map(|field| {
            let user = value.get(*field)?;
            wire::User::deserialize(user).ok()
        })
        .map(|user| user_sender(&user))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use switchboard_model::Command;

    fn channel() -> ChannelId {
        ChannelId::new("shop-telegram").unwrap()
    }

    fn parse_one(update: &Value) -> InboundEvent {
        let body = serde_json::to_vec(update).unwrap();
        let mut events = parse_update(&channel(), &body).unwrap();
        assert_eq!(events.len(), 1, "one Update is one event");
        events.remove(0)
    }

    fn user(id: i64, first: &str) -> Value {
        json!({"id": id, "is_bot": false, "first_name": first, "language_code": "de"})
    }

    fn sender(id: &str, name: &str) -> Sender {
        Sender {
            id: id.into(),
            display_name: Some(name.into()),
            username: None,
            locale: Some("de".into()),
            is_bot: false,
        }
    }

    fn text_message(text: &str, command: Option<Command>) -> Message {
        Message {
            message_id: "7".into(),
            content: MessageContent::Text {
                text: text.into(),
                command,
            },
            reply_to: None,
            forwarded: false,
            thread_id: None,
            referral: None,
        }
    }

    #[test]
    fn a_private_text_becomes_a_message_in_the_users_chat() {
        let event = parse_one(&json!({
            "update_id": 10,
            "message": {
                "message_id": 7,
                "from": {"id": 42, "is_bot": false, "first_name": "Ada", "last_name": "Lovelace",
                         "username": "ada", "language_code": "en", "is_premium": true},
                "chat": {"id": 42, "first_name": "Ada", "type": "private"},
                "date": 1700000000,
                "text": "Are you open today?",
                "some_future_field": {"nested": [1, 2]}
            }
        }));
        assert_eq!(
            event,
            InboundEvent {
                platform: Platform::Telegram,
                channel: channel(),
                event_id: EventId("update:10".into()),
                conversation: ConversationKey::new(Platform::Telegram, channel(), ChatId::Int(42)),
                sender: Sender {
                    id: "42".into(),
                    display_name: Some("Ada Lovelace".into()),
                    username: Some("ada".into()),
                    locale: Some("en".into()),
                    is_bot: false,
                },
                business_id: None,
                timestamp_ms: 1_700_000_000_000,
                kind: EventKind::Message(text_message("Are you open today?", None)),
            }
        );
    }

    #[test]
    fn a_group_command_gives_name_bot_and_deep_link_payload() {
        let event = parse_one(&json!({
            "update_id": 11,
            "message": {
                "message_id": 7,
                "from": user(42, "Ada"),
                "chat": {"id": -1001241558182_i64, "title": "Shop fans", "type": "supergroup"},
                "date": 1700000000,
                "text": "/start@ShopBot spring-sale",
                "entities": [{"offset": 0, "length": 14, "type": "bot_command"}]
            }
        }));
        assert_eq!(event.conversation.chat, ChatId::Int(-1001241558182));
        assert_eq!(event.sender, sender("42", "Ada"));
        let mut expected = text_message(
            "/start@ShopBot spring-sale",
            Some(Command {
                name: "start".into(),
                args: "spring-sale".into(),
                bot: Some("ShopBot".into()),
            }),
        );
        expected.referral = Some(Referral {
            reference: Some("spring-sale".into()),
            source: None,
            ad_id: None,
        });
        assert_eq!(event.kind, EventKind::Message(expected));
    }

    #[test]
    fn a_supergroup_chat_id_stays_a_negative_64_bit_integer() {
        let event = parse_one(&json!({
            "update_id": 12,
            "message": {
                "message_id": 7, "from": user(5964236329_i64, "Cable"),
                "chat": {"id": -1001906889117_i64, "title": "testGroup", "type": "supergroup"},
                "date": 1680553456, "text": "1"
            }
        }));
        assert_eq!(
            event.conversation.to_string(),
            "telegram:shop-telegram:-1001906889117"
        );
        assert_eq!(event.sender.id, "5964236329");
    }

    #[test]
    fn a_forum_topic_message_keeps_its_thread_but_a_plain_reply_does_not() {
        let topic = parse_one(&json!({
            "update_id": 13,
            "message": {
                "message_id": 9, "message_thread_id": 3, "is_topic_message": true,
                "from": user(42, "Ada"), "chat": {"id": -100123, "type": "supergroup"},
                "date": 1, "text": "hi", "reply_to_message": {"message_id": 3, "date": 1,
                "chat": {"id": -100123, "type": "supergroup"}, "forum_topic_created": {}}
            }
        }));
        let EventKind::Message(message) = topic.kind else {
            panic!("expected a message, got {:?}", topic.kind)
        };
        assert_eq!(message.thread_id, Some(3));
        assert_eq!(message.reply_to.as_deref(), Some("3"));

        let reply = parse_one(&json!({
            "update_id": 14,
            "message": {
                "message_id": 9, "message_thread_id": 8,
                "from": user(42, "Ada"), "chat": {"id": -100123, "type": "supergroup"},
                "date": 1, "text": "hi", "reply_to_message": {"message_id": 8, "date": 1,
                "chat": {"id": -100123, "type": "supergroup"}, "text": "earlier"}
            }
        }));
        let EventKind::Message(message) = reply.kind else {
            panic!("expected a message, got {:?}", reply.kind)
        };
        assert_eq!(message.thread_id, None);
        assert_eq!(message.reply_to.as_deref(), Some("8"));
    }

    #[test]
    fn an_anonymous_admin_is_the_group_not_the_placeholder_bot() {
        let event = parse_one(&json!({
            "update_id": 15,
            "message": {
                "message_id": 7,
                "from": {"id": 1087968824, "is_bot": true, "first_name": "Group",
                         "username": "GroupAnonymousBot"},
                "sender_chat": {"id": -100123, "title": "Shop fans", "type": "supergroup"},
                "chat": {"id": -100123, "title": "Shop fans", "type": "supergroup"},
                "date": 1, "text": "hello"
            }
        }));
        assert_eq!(
            event.sender,
            Sender {
                id: "-100123".into(),
                display_name: Some("Shop fans".into()),
                username: None,
                locale: None,
                is_bot: false,
            }
        );
    }

    #[test]
    fn a_callback_query_becomes_a_payload_with_its_button_title() {
        let event = parse_one(&json!({
            "update_id": 16,
            "callback_query": {
                "id": "4382bfdwdsb323b2d9",
                "from": user(42, "Ada"),
                "message": {
                    "message_id": 1054, "date": 1, "text": "Pick one",
                    "chat": {"id": 42, "type": "private"},
                    "reply_markup": {"inline_keyboard": [
                        [{"text": "Hours", "callback_data": "HOURS"}],
                        [{"text": "Stores", "callback_data": "STORES"}]
                    ]}
                },
                "chat_instance": "56656092177350901239",
                "data": "STORES"
            }
        }));
        assert_eq!(event.conversation.chat, ChatId::Int(42));
        assert_eq!(event.sender, sender("42", "Ada"));
        assert_eq!(event.timestamp_ms, 0);
        assert_eq!(
            event.kind,
            EventKind::Payload(PayloadEvent {
                kind: PayloadKind::CallbackQuery,
                payload: "STORES".into(),
                title: Some("Stores".into()),
                message_id: None,
                in_reply_to: Some("1054".into()),
                callback_id: Some("4382bfdwdsb323b2d9".into()),
                referral: None,
            })
        );
    }

    #[test]
    fn a_callback_on_an_inline_message_lands_in_the_users_private_chat() {
        let event = parse_one(&json!({
            "update_id": 17,
            "callback_query": {
                "id": "77", "from": user(42, "Ada"),
                "inline_message_id": "AAAAAOV", "chat_instance": "-1"
            }
        }));
        assert_eq!(event.conversation.chat, ChatId::Int(42));
        let EventKind::Payload(payload) = event.kind else {
            panic!("expected a payload, got {:?}", event.kind)
        };
        assert_eq!(payload.payload, "");
        assert_eq!(payload.in_reply_to, None);
        assert_eq!(payload.callback_id.as_deref(), Some("77"));
    }

    #[test]
    fn an_emptied_reaction_list_is_a_removed_reaction() {
        let event = parse_one(&json!({
            "update_id": 18,
            "message_reaction": {
                "chat": {"id": 42, "type": "private"}, "message_id": 35,
                "user": user(42, "Ada"), "date": 1721306082,
                "old_reaction": [{"type": "emoji", "emoji": "👍"}], "new_reaction": []
            }
        }));
        assert_eq!(event.timestamp_ms, 1_721_306_082_000);
        assert_eq!(
            event.kind,
            EventKind::Reaction(Reaction {
                message_id: "35".into(),
                emoji: None,
                removed: true,
            })
        );
    }

    #[test]
    fn a_custom_emoji_reaction_names_its_id_and_a_channel_can_react() {
        let event = parse_one(&json!({
            "update_id": 19,
            "message_reaction": {
                "chat": {"id": -100123, "type": "supergroup"}, "message_id": 35,
                "actor_chat": {"id": -100999, "title": "Shop news", "type": "channel"},
                "date": 1, "old_reaction": [],
                "new_reaction": [{"type": "custom_emoji", "custom_emoji_id": "5368324170671202286"}]
            }
        }));
        assert_eq!(event.sender.id, "-100999");
        assert_eq!(
            event.kind,
            EventKind::Reaction(Reaction {
                message_id: "35".into(),
                emoji: Some("5368324170671202286".into()),
                removed: false,
            })
        );
    }

    fn my_chat_member(chat_type: &str, old: &str, new: &str) -> EventKind {
        parse_one(&json!({
            "update_id": 20,
            "my_chat_member": {
                "chat": {"id": 42, "type": chat_type}, "from": user(42, "Ada"), "date": 1,
                "old_chat_member": {"user": {"id": 1, "is_bot": true, "first_name": "bot"}, "status": old},
                "new_chat_member": {"user": {"id": 1, "is_bot": true, "first_name": "bot"}, "status": new}
            }
        }))
        .kind
    }

    #[test]
    fn my_chat_member_changes_map_to_memberships() {
        use Membership::*;
        let cases = [
            ("private", "member", "kicked", BotBlocked),
            ("private", "kicked", "member", BotUnblocked),
            ("group", "left", "member", AddedToGroup),
            ("supergroup", "kicked", "administrator", AddedToGroup),
            ("supergroup", "member", "left", RemovedFromGroup),
            ("group", "administrator", "kicked", RemovedFromGroup),
            (
                "supergroup",
                "member",
                "administrator",
                Changed {
                    status: "administrator".into(),
                },
            ),
            (
                "channel",
                "left",
                "administrator",
                Changed {
                    status: "administrator".into(),
                },
            ),
        ];
        for (chat_type, old, new, expected) in cases {
            assert_eq!(
                my_chat_member(chat_type, old, new),
                EventKind::Membership(expected),
                "{chat_type}: {old} -> {new}"
            );
        }
    }

    #[test]
    fn an_unknown_update_kind_is_kept_raw_as_unsupported() {
        let update = json!({
            "update_id": 21,
            "some_update_from_bot_api_42": {"from": user(42, "Ada"), "chat": {"id": -5}, "date": 3}
        });
        let event = parse_one(&update);
        assert_eq!(event.event_id, EventId("update:21".into()));
        assert_eq!(event.conversation.chat, ChatId::Int(-5));
        assert_eq!(event.sender, sender("42", "Ada"));
        assert_eq!(event.timestamp_ms, 3000);
        assert_eq!(
            event.kind,
            EventKind::Unsupported {
                kind: "some_update_from_bot_api_42".into(),
                raw: update,
            }
        );
        assert!(!event.is_from_customer());
    }

    #[test]
    fn a_poll_update_without_chat_or_user_still_parses() {
        let event = parse_one(&json!({"update_id": 22, "poll": {"id": "5", "question": "?"}}));
        assert_eq!(event.conversation.chat, ChatId::Int(0));
        assert_eq!(event.sender, Sender::default());
        assert!(matches!(event.kind, EventKind::Unsupported { ref kind, .. } if kind == "poll"));
    }

    #[test]
    fn a_message_with_unmodelled_content_is_named_by_that_content() {
        let base = |extra: Value| {
            let mut message = json!({"message_id": 1, "chat": {"id": 1, "type": "private"},
                                     "date": 1, "from": user(1, "A")});
            if let (Some(message), Some(extra)) = (message.as_object_mut(), extra.as_object()) {
                message.extend(extra.clone());
            }
            parse_one(&json!({"update_id": 23, "message": message})).kind
        };
        let kind_of = |kind: EventKind| match kind {
            EventKind::Unsupported { kind, .. } => kind,
            other => panic!("expected unsupported, got {other:?}"),
        };
        assert_eq!(
            kind_of(base(json!({"dice": {"emoji": "🎲", "value": 2}}))),
            "message:dice"
        );
        assert_eq!(
            kind_of(base(json!({"paid_star_count": 5, "brand_new_content": {}}))),
            "message:brand_new_content"
        );
        assert_eq!(kind_of(base(json!({}))), "message:unknown");
    }

    #[test]
    fn a_body_that_is_not_json_is_an_error() {
        assert!(matches!(
            parse_update(&channel(), b"update_id=1&message=hi"),
            Err(ParseError::NotJson(_))
        ));
    }

    #[test]
    fn a_json_array_is_not_an_update() {
        assert_eq!(
            parse_update(&channel(), br#"[{"update_id":1}]"#),
            Err(wrong_shape("the body is not a JSON object"))
        );
    }

    #[test]
    fn an_object_without_an_integer_update_id_is_not_an_update() {
        for body in [
            &br#"{"message":{}}"#[..],
            br#"{"update_id":"1","message":{}}"#,
            br#"{"update_id":1.5}"#,
        ] {
            assert_eq!(
                parse_update(&channel(), body),
                Err(wrong_shape("update_id is missing or not an integer")),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_message_without_a_chat_is_an_error_that_quotes_no_content() {
        assert_eq!(
            parse_update(
                &channel(),
                br#"{"update_id":1,"message":{"message_id":1,"date":1,"text":"secret"}}"#
            ),
            Err(wrong_shape("`message`: missing field `chat`"))
        );
        let error = parse_update(
            &channel(),
            br#"{"update_id":1,"message":{"message_id":"secret text","chat":{"id":1}}}"#,
        )
        .unwrap_err();
        assert!(!error.to_string().contains("secret"), "{error}");
    }

    #[test]
    fn an_update_with_only_an_id_is_unsupported_not_an_error() {
        let event = parse_one(&json!({"update_id": 24}));
        assert!(matches!(event.kind, EventKind::Unsupported { ref kind, .. } if kind == "empty"));
    }
}
