//! `whatsapp_business_account` notifications into [`InboundEvent`]s.
//!
//! Shape (WA-OAS `WebhookPayload`): `entry[] -> changes[] -> value`, where a
//! `messages` change carries `metadata`, `contacts[]` and any of
//! `messages[]`, `statuses[]` and `errors[]`. Meta batches all of them, so
//! every level is iterated. The JSON is read as a tree rather than typed
//! structs so that one odd message never costs the rest of the batch; each
//! item that cannot be mapped becomes `Unsupported` with its raw JSON.

use std::collections::HashMap;

use serde_json::Value;
use switchboard_meta::{content_digest, id_string, str_field, timestamp_ms};
use switchboard_model::{
    ChannelId, ChatId, Contact, ConversationKey, DeliveryStatus, EventId, EventKind, InboundEvent,
    Location, Media, MediaKind, Message, MessageContent, OrderItem, ParseError, PayloadEvent,
    PayloadKind, Platform, PlatformErrorInfo, Reaction, Referral, Sender, StatusKind,
};

const OBJECT: &str = "whatsapp_business_account";

/// Every event in a verified body, in the order Meta listed them.
pub(crate) fn parse(channel: &ChannelId, body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    // serde_json's syntax errors name a position, never body text.
    let root: Value =
        serde_json::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    if root.get("object").and_then(Value::as_str) != Some(OBJECT) {
        return Err(wrong_shape(
            "\"object\" is not \"whatsapp_business_account\"",
        ));
    }
    let entries = root
        .get("entry")
        .and_then(Value::as_array)
        .ok_or_else(|| wrong_shape("no \"entry\" array"))?;

    let mut events = Vec::new();
    for entry in entries {
        parse_entry(channel, entry, &mut events);
    }
    Ok(events)
}

fn wrong_shape(detail: &str) -> ParseError {
    ParseError::WrongShape {
        platform: "whatsapp",
        detail: detail.to_owned(),
    }
}

fn parse_entry(channel: &ChannelId, entry: &Value, events: &mut Vec<InboundEvent>) {
    // The WhatsApp Business Account id: the business side when a change
    // names no phone number.
    let account_id = id_string(entry.get("id")).unwrap_or_else(|| "unknown".to_owned());
    let entry_ctx = Context {
        channel,
        business_id: None,
        names: HashMap::new(),
    };
    let Some(changes) = entry.get("changes").and_then(Value::as_array) else {
        events.push(entry_ctx.business_event(
            format!("entry:{account_id}:{}", content_digest(entry)),
            &account_id,
            timestamp_ms(entry.get("time")),
            unsupported("entry", entry),
        ));
        return;
    };
    for change in changes {
        let field = change
            .get("field")
            .and_then(Value::as_str)
            .filter(|f| !f.is_empty())
            .unwrap_or("unknown");
        let value = change.get("value").filter(|v| v.is_object());
        let ctx = Context {
            business_id: value
                .and_then(|v| v.get("metadata"))
                .and_then(|m| id_string(m.get("phone_number_id"))),
            ..entry_ctx.clone()
        };
        match value {
            Some(value) if field == "messages" => parse_messages_value(&ctx, value, events),
            // Account, template and number-quality notifications, and
            // anything newer: recorded, never answered. They carry no id of
            // their own, so the id is derived from their content.
            _ => events.push(ctx.business_event(
                format!("change:{field}:{account_id}:{}", content_digest(change)),
                &account_id,
                timestamp_ms(entry.get("time")),
                unsupported(&format!("change:{field}"), change),
            )),
        }
    }
}

/// What every event of one change shares.
#[derive(Clone)]
struct Context<'a> {
    channel: &'a ChannelId,
    /// `metadata.phone_number_id`: which business number this was for, the
    /// key the gateway routes by.
    business_id: Option<String>,
    /// `contacts[]`: wa_id to profile name.
    names: HashMap<String, String>,
}

impl Context<'_> {
    fn event(
        &self,
        event_id: String,
        chat: &str,
        timestamp_ms: i64,
        kind: EventKind,
    ) -> InboundEvent {
        InboundEvent {
            platform: Platform::WhatsApp,
            channel: self.channel.clone(),
            event_id: EventId(event_id),
            conversation: ConversationKey::new(
                Platform::WhatsApp,
                self.channel.clone(),
                ChatId::Str(chat.to_owned()),
            ),
            sender: Sender {
                id: chat.to_owned(),
                display_name: self.names.get(chat).cloned(),
                ..Sender::default()
            },
            business_id: self.business_id.clone(),
            timestamp_ms,
            kind,
        }
    }

    /// An event that concerns the business rather than one customer: it is
    /// filed under the phone number (or account) it arrived for.
    fn business_event(
        &self,
        event_id: String,
        account_id: &str,
        timestamp_ms: i64,
        kind: EventKind,
    ) -> InboundEvent {
        let chat = self.business_id.as_deref().unwrap_or(account_id);
        self.event(event_id, chat, timestamp_ms, kind)
    }
}

fn unsupported(kind: &str, raw: &Value) -> EventKind {
    EventKind::Unsupported {
        kind: kind.to_owned(),
        raw: raw.clone(),
    }
}

fn parse_messages_value(ctx: &Context<'_>, value: &Value, events: &mut Vec<InboundEvent>) {
    let mut ctx = ctx.clone();
    for contact in array(value, "contacts") {
        let wa_id = id_string(contact.get("wa_id"));
        let name = contact
            .get("profile")
            .and_then(|p| str_field(p, "name"))
            .filter(|n| !n.is_empty());
        if let (Some(wa_id), Some(name)) = (wa_id, name) {
            ctx.names.insert(wa_id, name);
        }
    }

    let messages = array(value, "messages");
    let statuses = array(value, "statuses");
    for message in messages {
        events.push(message_event(&ctx, message));
    }
    for status in statuses {
        events.push(status_event(&ctx, status));
    }
    if !messages.is_empty() || !statuses.is_empty() {
        return;
    }
    // A change with nothing to answer: asynchronous errors about the number
    // or the app (`value.errors`), or a shape newer than this adapter.
    let business = ctx.business_id.as_deref().unwrap_or("unknown");
    let (prefix, kind) = if array(value, "errors").is_empty() {
        ("change", "change:messages")
    } else {
        ("errors", "errors")
    };
    events.push(ctx.business_event(
        format!("{prefix}:{business}:{}", content_digest(value)),
        business,
        0,
        unsupported(kind, value),
    ));
}

/// `value[key]` as a slice; absent or not an array reads as empty.
fn array<'v>(value: &'v Value, key: &str) -> &'v [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn message_event(ctx: &Context<'_>, message: &Value) -> InboundEvent {
    let timestamp = timestamp_ms(message.get("timestamp"));
    let kind_name = message
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let (Some(wamid), Some(from)) = (id_string(message.get("id")), id_string(message.get("from")))
    else {
        // Without an id there is no dedupe key, without `from` no one to
        // answer: keep it for a person to look at.
        let business = ctx.business_id.as_deref().unwrap_or("unknown");
        return ctx.business_event(
            format!("message:{business}:{}", content_digest(message)),
            business,
            timestamp,
            unsupported(&format!("message:{kind_name}"), message),
        );
    };
    let kind = message_kind(&wamid, kind_name, message);
    ctx.event(format!("message:{wamid}"), &from, timestamp, kind)
}

fn message_kind(wamid: &str, kind_name: &str, message: &Value) -> EventKind {
    let context = message.get("context");
    let flag = |key: &str| {
        context
            .and_then(|c| c.get(key))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let forwarded = flag("forwarded") || flag("frequently_forwarded");
    // `context.id` names the message this one answers; a forwarded message
    // carries a context too, but it answers nothing.
    let context_id = context.and_then(|c| id_string(c.get("id")));
    let referral = referral(message.get("referral"));

    let payload = |kind: PayloadKind, payload: Option<String>, title: Option<String>| {
        EventKind::Payload(PayloadEvent {
            kind,
            payload: payload.unwrap_or_default(),
            title,
            message_id: Some(wamid.to_owned()),
            in_reply_to: context_id.clone(),
            callback_id: None,
            referral: referral.clone(),
        })
    };

    let content = match kind_name {
        "text" => message
            .get("text")
            .and_then(|t| str_field(t, "body"))
            .map(|text| MessageContent::Text {
                text,
                command: None,
            }),
        "image" | "video" | "audio" | "voice" | "document" | "sticker" => {
            media(kind_name, message.get(kind_name)).map(MessageContent::Media)
        }
        "location" => location(message.get("location")).map(MessageContent::Location),
        "contacts" => message
            .get("contacts")
            .and_then(Value::as_array)
            .map(|cards| MessageContent::Contacts {
                contacts: cards.iter().map(contact).collect(),
            }),
        "order" => message.get("order").filter(|o| o.is_object()).map(order),
        "interactive" => {
            let interactive = message.get("interactive");
            let sub = interactive
                .and_then(|i| i.get("type"))
                .and_then(Value::as_str);
            let reply = |key: &str| {
                let reply = interactive.and_then(|i| i.get(key))?;
                Some((id_string(reply.get("id")), str_field(reply, "title")))
            };
            let tapped = match sub {
                Some("button_reply") => {
                    reply("button_reply").map(|r| (PayloadKind::ButtonReply, r))
                }
                Some("list_reply") => reply("list_reply").map(|r| (PayloadKind::ListReply, r)),
                _ => None,
            };
            // Flow answers (`nfm_reply`) and newer interactive replies are
            // not modelled.
            return match tapped {
                Some((kind, (id, title))) => payload(kind, id, title),
                None => unsupported(
                    &sub.map_or_else(
                        || "message:interactive".to_owned(),
                        |sub| format!("message:interactive:{sub}"),
                    ),
                    message,
                ),
            };
        }
        "button" => {
            // A tap on a template's quick-reply button.
            return match message.get("button").filter(|b| b.is_object()) {
                Some(button) => payload(
                    PayloadKind::TemplateButton,
                    str_field(button, "payload"),
                    str_field(button, "text"),
                ),
                None => unsupported("message:button", message),
            };
        }
        "reaction" => {
            let reaction = message.get("reaction");
            let target = reaction.and_then(|r| id_string(r.get("message_id")));
            let emoji = reaction
                .and_then(|r| str_field(r, "emoji"))
                .filter(|e| !e.is_empty());
            return match target {
                Some(message_id) => EventKind::Reaction(Reaction {
                    message_id,
                    removed: emoji.is_none(),
                    emoji,
                }),
                None => unsupported("message:reaction", message),
            };
        }
        // system (number changed), unsupported, unknown, request_welcome,
        // ephemeral, group events, ...: nothing the assistant can answer.
        _ => None,
    };
    match content {
        Some(content) => EventKind::Message(Message {
            message_id: wamid.to_owned(),
            content,
            reply_to: if forwarded { None } else { context_id },
            forwarded,
            thread_id: None,
            referral,
        }),
        None => unsupported(&format!("message:{kind_name}"), message),
    }
}

fn media(kind_name: &str, payload: Option<&Value>) -> Option<Media> {
    let payload = payload.filter(|p| p.is_object())?;
    let kind = match kind_name {
        "image" => MediaKind::Image,
        "video" => MediaKind::Video,
        // A recorded voice note arrives as `audio` with `voice: true`.
        "audio" if payload.get("voice").and_then(Value::as_bool) == Some(true) => MediaKind::Voice,
        "audio" => MediaKind::Audio,
        "voice" => MediaKind::Voice,
        "document" => MediaKind::File,
        _ => MediaKind::Sticker,
    };
    Some(Media {
        kind,
        media_id: id_string(payload.get("id")),
        url: str_field(payload, "url").filter(|u| !u.is_empty()),
        mime_type: str_field(payload, "mime_type").filter(|m| !m.is_empty()),
        caption: str_field(payload, "caption").filter(|c| !c.is_empty()),
        file_name: str_field(payload, "filename").filter(|f| !f.is_empty()),
    })
}

/// An integer Meta may send as a JSON number or as a string.
fn integer(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A number Meta may send as a JSON number or as a string.
fn number(value: Option<&Value>) -> Option<f64> {
    match value? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n: &f64| n.is_finite())
}

fn location(payload: Option<&Value>) -> Option<Location> {
    let payload = payload?;
    Some(Location {
        latitude: number(payload.get("latitude"))?,
        longitude: number(payload.get("longitude"))?,
        name: str_field(payload, "name").filter(|n| !n.is_empty()),
        address: str_field(payload, "address").filter(|a| !a.is_empty()),
    })
}

fn contact(card: &Value) -> Contact {
    let name = card.get("name");
    let formatted = name.and_then(|n| str_field(n, "formatted_name"));
    let name = formatted.filter(|n| !n.is_empty()).unwrap_or_else(|| {
        ["first_name", "last_name"]
            .iter()
            .filter_map(|key| name.and_then(|n| str_field(n, key)))
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    });
    let collect = |list: &str, key: &str| -> Vec<String> {
        array(card, list)
            .iter()
            .filter_map(|item| str_field(item, key))
            .filter(|s| !s.is_empty())
            .collect()
    };
    Contact {
        name,
        phones: collect("phones", "phone"),
        emails: collect("emails", "email"),
    }
}

fn order(order: &Value) -> MessageContent {
    let items = array(order, "product_items")
        .iter()
        .map(|item| OrderItem {
            product_id: id_string(item.get("product_retailer_id")).unwrap_or_default(),
            quantity: integer(item.get("quantity"))
                .and_then(|q| u32::try_from(q).ok())
                .unwrap_or(0),
            item_price: number(item.get("item_price")),
            currency: str_field(item, "currency").filter(|c| !c.is_empty()),
        })
        .collect();
    MessageContent::Order {
        catalog_id: id_string(order.get("catalog_id")),
        items,
        text: str_field(order, "text").filter(|t| !t.is_empty()),
    }
}

/// Click-to-WhatsApp ads and posts: `referral{source_url, source_id,
/// source_type: "ad"|"post", headline, ...}`.
fn referral(value: Option<&Value>) -> Option<Referral> {
    let value = value.filter(|v| v.is_object())?;
    let source = str_field(value, "source_type").filter(|s| !s.is_empty());
    let source_id = id_string(value.get("source_id"));
    Some(Referral {
        reference: str_field(value, "source_url").filter(|u| !u.is_empty()),
        ad_id: source_id.filter(|_| source.as_deref() == Some("ad")),
        source,
    })
}

fn status_event(ctx: &Context<'_>, status: &Value) -> InboundEvent {
    let timestamp = timestamp_ms(status.get("timestamp"));
    let name = str_field(status, "status").unwrap_or_else(|| "unknown".to_owned());
    let (Some(wamid), Some(recipient)) = (
        id_string(status.get("id")),
        id_string(status.get("recipient_id")),
    ) else {
        let business = ctx.business_id.as_deref().unwrap_or("unknown");
        return ctx.business_event(
            format!("status:{business}:{}", content_digest(status)),
            business,
            timestamp,
            unsupported(&format!("status:{name}"), status),
        );
    };
    let kind = match name.as_str() {
        "sent" => StatusKind::Sent,
        "delivered" => StatusKind::Delivered,
        "read" => StatusKind::Read,
        "played" => StatusKind::Played,
        "failed" => StatusKind::Failed,
        "deleted" => StatusKind::Deleted,
        other => StatusKind::Other(other.to_owned()),
    };
    let errors = array(status, "errors")
        .iter()
        .filter(|e| e.is_object())
        .map(|error| PlatformErrorInfo {
            code: integer(error.get("code")).unwrap_or(0),
            title: str_field(error, "title").or_else(|| str_field(error, "message")),
            details: error
                .get("error_data")
                .and_then(|d| str_field(d, "details")),
        })
        .collect();
    let window_expires_ms = status
        .get("conversation")
        .and_then(|c| c.get("expiration_timestamp"))
        .map(|t| timestamp_ms(Some(t)))
        .filter(|ms| *ms > 0);
    ctx.event(
        format!("status:{wamid}:{name}"),
        &recipient,
        timestamp,
        EventKind::Status(DeliveryStatus {
            message_id: wamid,
            status: kind,
            errors,
            window_expires_ms,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const CUSTOMER: &str = "16505551234";
    const NUMBER_ID: &str = "106540352242922";

    fn channel() -> ChannelId {
        ChannelId::new("shop-wa").unwrap()
    }

    /// One `messages` change around `value_extra` (messages, statuses, ...).
    fn body(value_extra: Value) -> Vec<u8> {
        let mut value = json!({
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": NUMBER_ID},
            "contacts": [{"profile": {"name": "Ada Lovelace"}, "wa_id": CUSTOMER}],
        });
        let Value::Object(extra) = value_extra else {
            panic!("value_extra must be an object");
        };
        for (key, item) in extra {
            value[key] = item;
        }
        serde_json::to_vec(&json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
        }))
        .unwrap()
    }

    fn events(value_extra: Value) -> Vec<InboundEvent> {
        parse(&channel(), &body(value_extra)).unwrap()
    }

    /// The single event of a body holding one inbound message.
    fn one(message: Value) -> InboundEvent {
        let mut message = message;
        for (key, default) in [
            ("from", json!(CUSTOMER)),
            ("id", json!("wamid.IN1")),
            ("timestamp", json!("1700000000")),
        ] {
            if message.get(key).is_none() {
                message[key] = default;
            }
        }
        let mut events = events(json!({"messages": [message]}));
        assert_eq!(events.len(), 1);
        events.remove(0)
    }

    fn kind(message: Value) -> EventKind {
        one(message).kind
    }

    fn content(message: Value) -> MessageContent {
        match kind(message) {
            EventKind::Message(message) => message.content,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    fn unsupported_kind(kind: EventKind) -> String {
        match kind {
            EventKind::Unsupported { kind, .. } => kind,
            other => panic!("expected unsupported, got {other:?}"),
        }
    }

    #[test]
    fn a_text_message_becomes_a_complete_event() {
        let event = one(json!({"type": "text", "text": {"body": "Are you open on Sunday?"}}));
        assert_eq!(
            event,
            InboundEvent {
                platform: Platform::WhatsApp,
                channel: channel(),
                event_id: EventId("message:wamid.IN1".into()),
                conversation: ConversationKey::new(
                    Platform::WhatsApp,
                    channel(),
                    ChatId::Str(CUSTOMER.into())
                ),
                sender: Sender {
                    id: CUSTOMER.into(),
                    display_name: Some("Ada Lovelace".into()),
                    ..Sender::default()
                },
                business_id: Some(NUMBER_ID.into()),
                timestamp_ms: 1_700_000_000_000,
                kind: EventKind::Message(Message {
                    message_id: "wamid.IN1".into(),
                    content: MessageContent::Text {
                        text: "Are you open on Sunday?".into(),
                        command: None,
                    },
                    reply_to: None,
                    forwarded: false,
                    thread_id: None,
                    referral: None,
                }),
            }
        );
    }

    fn media_of(kind: MediaKind, media_id: &str) -> Media {
        Media {
            kind,
            media_id: Some(media_id.into()),
            url: None,
            mime_type: None,
            caption: None,
            file_name: None,
        }
    }

    #[test]
    fn each_media_type_keeps_its_id_mime_type_caption_and_name() {
        assert_eq!(
            content(json!({"type": "image", "image": {
                "id": "1001", "mime_type": "image/jpeg", "sha256": "abc=", "caption": "this one",
                "url": "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1001"
            }})),
            MessageContent::Media(Media {
                mime_type: Some("image/jpeg".into()),
                caption: Some("this one".into()),
                url: Some(
                    "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1001".into()
                ),
                ..media_of(MediaKind::Image, "1001")
            })
        );
        assert_eq!(
            content(json!({"type": "video", "video": {"id": "1002", "mime_type": "video/mp4"}})),
            MessageContent::Media(Media {
                mime_type: Some("video/mp4".into()),
                ..media_of(MediaKind::Video, "1002")
            })
        );
        assert_eq!(
            content(json!({"type": "audio", "audio": {"id": "1003", "voice": false}})),
            MessageContent::Media(media_of(MediaKind::Audio, "1003"))
        );
        assert_eq!(
            content(json!({"type": "audio", "audio": {"id": "1004", "voice": true}})),
            MessageContent::Media(media_of(MediaKind::Voice, "1004"))
        );
        assert_eq!(
            content(
                json!({"type": "voice", "voice": {"id": "1005", "mime_type": "audio/ogg; codecs=opus"}})
            ),
            MessageContent::Media(Media {
                mime_type: Some("audio/ogg; codecs=opus".into()),
                ..media_of(MediaKind::Voice, "1005")
            })
        );
        assert_eq!(
            content(json!({"type": "document", "document": {
                "id": "1006", "filename": "receipt.pdf", "caption": "my receipt", "mime_type": "application/pdf"
            }})),
            MessageContent::Media(Media {
                mime_type: Some("application/pdf".into()),
                caption: Some("my receipt".into()),
                file_name: Some("receipt.pdf".into()),
                ..media_of(MediaKind::File, "1006")
            })
        );
        assert_eq!(
            content(
                json!({"type": "sticker", "sticker": {"id": "1007", "animated": true, "mime_type": "image/webp"}})
            ),
            MessageContent::Media(Media {
                mime_type: Some("image/webp".into()),
                ..media_of(MediaKind::Sticker, "1007")
            })
        );
    }

    #[test]
    fn a_media_message_without_its_object_is_unsupported() {
        assert_eq!(
            unsupported_kind(kind(json!({"type": "image"}))),
            "message:image"
        );
    }

    #[test]
    fn a_location_keeps_name_and_address_and_accepts_numbers_as_strings() {
        assert_eq!(
            content(json!({"type": "location", "location": {
                "latitude": "48.8584", "longitude": 2.2945, "name": "Eiffel Tower",
                "address": "Champ de Mars, 75007 Paris", "url": "https://example.com"
            }})),
            MessageContent::Location(Location {
                latitude: 48.8584,
                longitude: 2.2945,
                name: Some("Eiffel Tower".into()),
                address: Some("Champ de Mars, 75007 Paris".into()),
            })
        );
        assert_eq!(
            unsupported_kind(kind(
                json!({"type": "location", "location": {"latitude": 1.0}})
            )),
            "message:location"
        );
    }

    #[test]
    fn shared_contacts_keep_names_phones_and_emails() {
        assert_eq!(
            content(json!({"type": "contacts", "contacts": [
                {
                    "name": {"formatted_name": "Grace Hopper", "first_name": "Grace"},
                    "phones": [{"phone": "+1 555 0100", "type": "CELL", "wa_id": "15550100"}],
                    "emails": [{"email": "grace@example.com", "type": "WORK"}],
                },
                {"name": {"first_name": "Alan", "last_name": "Turing"}},
            ]})),
            MessageContent::Contacts {
                contacts: vec![
                    Contact {
                        name: "Grace Hopper".into(),
                        phones: vec!["+1 555 0100".into()],
                        emails: vec!["grace@example.com".into()],
                    },
                    Contact {
                        name: "Alan Turing".into(),
                        phones: vec![],
                        emails: vec![],
                    },
                ],
            }
        );
    }

    #[test]
    fn an_order_lists_its_items_with_prices_and_currency() {
        assert_eq!(
            content(json!({"type": "order", "order": {
                "catalog_id": "354160437058781",
                "text": "Please deliver after 6pm",
                "product_items": [
                    {"product_retailer_id": "JACKET-BLUE-M", "quantity": 1, "item_price": 89.9, "currency": "EUR"},
                    {"product_retailer_id": "SOCKS", "quantity": "3", "item_price": "4.5", "currency": "EUR"},
                ],
            }})),
            MessageContent::Order {
                catalog_id: Some("354160437058781".into()),
                items: vec![
                    OrderItem {
                        product_id: "JACKET-BLUE-M".into(),
                        quantity: 1,
                        item_price: Some(89.9),
                        currency: Some("EUR".into()),
                    },
                    OrderItem {
                        product_id: "SOCKS".into(),
                        quantity: 3,
                        item_price: Some(4.5),
                        currency: Some("EUR".into()),
                    },
                ],
                text: Some("Please deliver after 6pm".into()),
            }
        );
    }

    fn tap(kind: PayloadKind, payload: &str, title: &str, in_reply_to: Option<&str>) -> EventKind {
        EventKind::Payload(PayloadEvent {
            kind,
            payload: payload.into(),
            title: Some(title.into()),
            message_id: Some("wamid.IN1".into()),
            in_reply_to: in_reply_to.map(Into::into),
            callback_id: None,
            referral: None,
        })
    }

    #[test]
    fn interactive_button_and_list_replies_are_payloads() {
        let context = json!({"from": "15550001111", "id": "wamid.OUT7"});
        assert_eq!(
            kind(
                json!({"type": "interactive", "context": context, "interactive": {
                    "type": "button_reply", "button_reply": {"id": "HOURS", "title": "Hours"}
                }})
            ),
            tap(
                PayloadKind::ButtonReply,
                "HOURS",
                "Hours",
                Some("wamid.OUT7")
            )
        );
        assert_eq!(
            kind(
                json!({"type": "interactive", "context": context, "interactive": {
                    "type": "list_reply",
                    "list_reply": {"id": "STORE_PARIS", "title": "Paris", "description": "Rue de Rivoli"}
                }})
            ),
            tap(
                PayloadKind::ListReply,
                "STORE_PARIS",
                "Paris",
                Some("wamid.OUT7")
            )
        );
    }

    #[test]
    fn flow_answers_and_other_interactive_replies_are_unsupported() {
        let flow = json!({"type": "interactive", "interactive": {
            "type": "nfm_reply",
            "nfm_reply": {"name": "flow", "response_json": "{\"flow_token\":\"x\"}", "body": "Sent"}
        }});
        assert_eq!(
            unsupported_kind(kind(flow)),
            "message:interactive:nfm_reply"
        );
        assert_eq!(
            unsupported_kind(kind(json!({"type": "interactive"}))),
            "message:interactive"
        );
        assert_eq!(
            unsupported_kind(kind(
                json!({"type": "interactive", "interactive": {"type": "button_reply"}})
            )),
            "message:interactive:button_reply"
        );
    }

    #[test]
    fn a_template_quick_reply_tap_names_the_template_message() {
        assert_eq!(
            kind(json!({
                "type": "button",
                "context": {"from": "15550001111", "id": "wamid.TEMPLATE1"},
                "button": {"payload": "TRACK_ORDER", "text": "Track my order"},
            })),
            tap(
                PayloadKind::TemplateButton,
                "TRACK_ORDER",
                "Track my order",
                Some("wamid.TEMPLATE1")
            )
        );
    }

    #[test]
    fn reactions_and_their_removal() {
        assert_eq!(
            kind(
                json!({"type": "reaction", "reaction": {"message_id": "wamid.OUT7", "emoji": "\u{1f44d}"}})
            ),
            EventKind::Reaction(Reaction {
                message_id: "wamid.OUT7".into(),
                emoji: Some("👍".into()),
                removed: false,
            })
        );
        for reaction in [
            json!({"message_id": "wamid.OUT7"}),
            json!({"message_id": "wamid.OUT7", "emoji": ""}),
        ] {
            assert_eq!(
                kind(json!({"type": "reaction", "reaction": reaction})),
                EventKind::Reaction(Reaction {
                    message_id: "wamid.OUT7".into(),
                    emoji: None,
                    removed: true,
                })
            );
        }
    }

    fn message_fields(message: Value) -> Message {
        match kind(message) {
            EventKind::Message(message) => message,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn a_reply_names_the_message_it_answers_but_a_forward_does_not() {
        let reply = message_fields(json!({
            "type": "text", "text": {"body": "yes"},
            "context": {"from": "15550001111", "id": "wamid.OUT7"},
        }));
        assert_eq!(reply.reply_to.as_deref(), Some("wamid.OUT7"));
        assert!(!reply.forwarded);

        for flag in ["forwarded", "frequently_forwarded"] {
            let forward = message_fields(json!({
                "type": "text", "text": {"body": "look"},
                "context": {flag: true, "id": "wamid.ELSEWHERE"},
            }));
            assert_eq!(forward.reply_to, None, "{flag}");
            assert!(forward.forwarded, "{flag}");
        }
    }

    #[test]
    fn a_click_to_whatsapp_ad_is_a_referral_with_the_ad_id() {
        let message = message_fields(json!({
            "type": "text", "text": {"body": "Is this still available?"},
            "referral": {
                "source_url": "https://fb.me/3cr4Wqqkv", "source_id": "120204857654880521",
                "source_type": "ad", "headline": "Summer sale", "ctwa_clid": "ARAkLk"
            },
        }));
        assert_eq!(
            message.referral,
            Some(Referral {
                reference: Some("https://fb.me/3cr4Wqqkv".into()),
                source: Some("ad".into()),
                ad_id: Some("120204857654880521".into()),
            })
        );
        let post = message_fields(json!({
            "type": "text", "text": {"body": "hi"},
            "referral": {"source_url": "https://fb.com/p/1", "source_id": "777", "source_type": "post"},
        }));
        assert_eq!(post.referral.unwrap().ad_id, None);
    }

    #[test]
    fn system_unknown_and_other_message_types_are_unsupported_with_the_raw_message() {
        for (message_type, expected) in [
            ("system", "message:system"),
            ("unsupported", "message:unsupported"),
            ("unknown", "message:unknown"),
            ("request_welcome", "message:request_welcome"),
            ("hologram", "message:hologram"),
        ] {
            let raw = json!({"type": message_type, "from": CUSTOMER, "id": "wamid.IN1", "timestamp": "1700000000"});
            assert_eq!(
                kind(raw.clone()),
                EventKind::Unsupported {
                    kind: expected.into(),
                    raw,
                }
            );
        }
        assert_eq!(
            unsupported_kind(kind(json!({"text": {"body": "no type"}}))),
            "message:unknown"
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let message = message_fields(json!({
            "type": "text", "text": {"body": "hi", "new_field": [1, 2]},
            "future": {"nested": true}, "identity": {"acknowledged": true},
        }));
        assert_eq!(
            message.content,
            MessageContent::Text {
                text: "hi".into(),
                command: None
            }
        );
    }

    #[test]
    fn a_message_without_id_or_sender_is_kept_under_the_business_number() {
        let events = events(
            json!({"messages": [{"type": "text", "text": {"body": "hi"}, "timestamp": "1700000000"}]}),
        );
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(event.conversation.chat, ChatId::Str(NUMBER_ID.into()));
        assert!(
            event
                .event_id
                .as_str()
                .starts_with("message:106540352242922:")
        );
        assert_eq!(unsupported_kind(event.kind.clone()), "message:text");
        assert_eq!(event.timestamp_ms, 1_700_000_000_000);
    }

    fn status(status: &Value) -> InboundEvent {
        let mut events = events(json!({"statuses": [status]}));
        assert_eq!(events.len(), 1);
        events.remove(0)
    }

    #[test]
    fn a_failed_status_outside_the_window_carries_131047() {
        let event = status(&json!({
            "id": "wamid.OUT9", "status": "failed", "timestamp": "1682651887", "recipient_id": CUSTOMER,
            "errors": [{
                "code": 131047, "title": "Re-engagement message", "message": "Re-engagement message",
                "error_data": {"details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number."},
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
            }],
        }));
        assert_eq!(event.event_id.as_str(), "status:wamid.OUT9:failed");
        assert_eq!(event.conversation.chat, ChatId::Str(CUSTOMER.into()));
        assert_eq!(event.sender.id, CUSTOMER);
        assert_eq!(event.sender.display_name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(event.timestamp_ms, 1_682_651_887_000);
        assert_eq!(
            event.kind,
            EventKind::Status(DeliveryStatus {
                message_id: "wamid.OUT9".into(),
                status: StatusKind::Failed,
                errors: vec![PlatformErrorInfo {
                    code: 131047,
                    title: Some("Re-engagement message".into()),
                    details: Some("Message failed to send because more than 24 hours have passed since the customer last replied to this number.".into()),
                }],
                window_expires_ms: None,
            })
        );
        assert!(!event.is_from_customer());
    }

    #[test]
    fn a_failed_media_status_carries_131014_and_the_window_end() {
        let event = status(&json!({
            "id": "wamid.OUT10", "recipient_id": CUSTOMER, "status": "failed", "timestamp": "1454119029",
            "conversation": {"id": "C1", "expiration_timestamp": 1454205429, "origin": {"type": "service"}},
            "errors": [{"code": 131014, "title": "Request for url https://URL.jpg failed with error: 404 (Not Found)"}],
        }));
        assert_eq!(
            event.kind,
            EventKind::Status(DeliveryStatus {
                message_id: "wamid.OUT10".into(),
                status: StatusKind::Failed,
                errors: vec![PlatformErrorInfo {
                    code: 131014,
                    title: Some(
                        "Request for url https://URL.jpg failed with error: 404 (Not Found)".into()
                    ),
                    details: None,
                }],
                window_expires_ms: Some(1_454_205_429_000),
            })
        );
    }

    #[test]
    fn every_status_name_is_kept_and_names_its_event_id() {
        for (name, expected) in [
            ("sent", StatusKind::Sent),
            ("delivered", StatusKind::Delivered),
            ("read", StatusKind::Read),
            ("played", StatusKind::Played),
            ("deleted", StatusKind::Deleted),
            ("warning", StatusKind::Other("warning".into())),
        ] {
            let event = status(
                &json!({"id": "wamid.OUT1", "status": name, "timestamp": "1", "recipient_id": CUSTOMER}),
            );
            assert_eq!(event.event_id.as_str(), format!("status:wamid.OUT1:{name}"));
            match event.kind {
                EventKind::Status(status) => assert_eq!(status.status, expected),
                other => panic!("expected a status, got {other:?}"),
            }
        }
    }

    #[test]
    fn batched_duplicates_are_all_kept_with_equal_event_ids_for_the_gateway_to_dedupe() {
        let message = json!({"from": CUSTOMER, "id": "wamid.DUP", "timestamp": "1700000000", "type": "text", "text": {"body": "hi"}});
        let events = events(json!({"messages": [message, message]}));
        assert_eq!(events.len(), 2);
        assert_eq!(events[0], events[1]);
        assert_eq!(events[0].event_id.as_str(), "message:wamid.DUP");
    }

    #[test]
    fn several_entries_changes_messages_and_statuses_come_out_in_order() {
        let change = |number: &str, extra: Value| {
            let mut value = json!({"metadata": {"phone_number_id": number}});
            for (k, v) in extra.as_object().unwrap() {
                value[k] = v.clone();
            }
            json!({"field": "messages", "value": value})
        };
        let body = json!({
            "object": "whatsapp_business_account",
            "entry": [
                {"id": "W1", "changes": [
                    change("N1", json!({"messages": [
                        {"from": "A", "id": "m1", "timestamp": "1", "type": "text", "text": {"body": "1"}},
                        {"from": "B", "id": "m2", "timestamp": "2", "type": "text", "text": {"body": "2"}},
                    ], "statuses": [{"id": "o1", "status": "read", "timestamp": "3", "recipient_id": "A"}]})),
                ]},
                {"id": "W2", "changes": [
                    change("N2", json!({"statuses": [{"id": "o2", "status": "sent", "timestamp": "4", "recipient_id": "C"}]})),
                ]},
            ],
        });
        let events = parse(&channel(), &serde_json::to_vec(&body).unwrap()).unwrap();
        let summary: Vec<(&str, Option<&str>, String)> = events
            .iter()
            .map(|e| {
                (
                    e.event_id.as_str(),
                    e.business_id.as_deref(),
                    e.conversation.chat.to_string(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("message:m1", Some("N1"), "A".to_owned()),
                ("message:m2", Some("N1"), "B".to_owned()),
                ("status:o1:read", Some("N1"), "A".to_owned()),
                ("status:o2:sent", Some("N2"), "C".to_owned()),
            ]
        );
    }

    #[test]
    fn a_body_that_is_not_json_is_an_error() {
        assert!(matches!(
            parse(&channel(), b"object=whatsapp_business_account"),
            Err(ParseError::NotJson(_))
        ));
        assert!(matches!(
            parse(&channel(), b""),
            Err(ParseError::NotJson(_))
        ));
    }

    #[test]
    fn json_that_is_not_a_whatsapp_notification_is_an_error() {
        for body in [
            json!({"object": "page", "entry": []}),
            json!({"entry": []}),
            json!({"object": "whatsapp_business_account"}),
            json!({"object": "whatsapp_business_account", "entry": {}}),
            json!([{"object": "whatsapp_business_account"}]),
            json!("whatsapp_business_account"),
        ] {
            assert!(
                matches!(
                    parse(&channel(), &serde_json::to_vec(&body).unwrap()),
                    Err(ParseError::WrongShape {
                        platform: "whatsapp",
                        ..
                    })
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn an_empty_entry_list_is_no_events() {
        assert_eq!(
            parse(
                &channel(),
                br#"{"object":"whatsapp_business_account","entry":[]}"#
            ),
            Ok(vec![])
        );
    }

    fn change_event(field: &str, value: &Value) -> InboundEvent {
        let body = json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "time": 1700000000, "changes": [{"field": field, "value": value}]}],
        });
        let mut events = parse(&channel(), &serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(events.len(), 1);
        events.remove(0)
    }

    #[test]
    fn other_change_fields_are_unsupported_with_a_content_derived_id() {
        let value = json!({"phone_number": "15550001111", "event": "VERIFIED_ACCOUNT"});
        let event = change_event("account_update", &value);
        assert_eq!(
            event.kind,
            EventKind::Unsupported {
                kind: "change:account_update".into(),
                raw: json!({"field": "account_update", "value": value}),
            }
        );
        assert!(
            event
                .event_id
                .as_str()
                .starts_with("change:account_update:102290129340398:")
        );
        assert_eq!(
            event.conversation.chat,
            ChatId::Str("102290129340398".into())
        );
        assert_eq!(event.business_id, None);
        assert_eq!(event.timestamp_ms, 1_700_000_000_000);
        // The same notification again (a retry) has the same id; another
        // notification of the same kind does not.
        assert_eq!(
            change_event("account_update", &value).event_id,
            event.event_id
        );
        let other = change_event("account_update", &json!({"event": "DISABLED_UPDATE"}));
        assert_ne!(other.event_id, event.event_id);
    }

    #[test]
    fn a_change_with_only_errors_is_unsupported_errors() {
        let events = events(json!({"errors": [{
            "code": 131000, "title": "Something went wrong", "message": "Something went wrong",
            "error_data": {"details": "Unsupported webhook payload"}
        }]}));
        assert_eq!(events.len(), 1);
        assert_eq!(unsupported_kind(events[0].kind.clone()), "errors");
        assert!(
            events[0]
                .event_id
                .as_str()
                .starts_with("errors:106540352242922:")
        );
        assert_eq!(events[0].business_id.as_deref(), Some(NUMBER_ID));
    }

    #[test]
    fn a_messages_change_with_nothing_in_it_is_still_recorded() {
        let events = events(json!({}));
        assert_eq!(events.len(), 1);
        assert_eq!(unsupported_kind(events[0].kind.clone()), "change:messages");
    }

    #[test]
    fn an_unreadable_timestamp_is_zero() {
        let event = one(json!({"type": "text", "text": {"body": "hi"}, "timestamp": "yesterday"}));
        assert_eq!(event.timestamp_ms, 0);
    }

    /// Any JSON at all, a few levels deep.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            prop_oneof![
                Just("text".to_owned()),
                Just("interactive".to_owned()),
                Just("button_reply".to_owned()),
                Just("audio".to_owned()),
                "\\PC{0,12}",
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("type".to_owned()),
                        Just("id".to_owned()),
                        Just("from".to_owned()),
                        Just("text".to_owned()),
                        Just("interactive".to_owned()),
                        Just("context".to_owned()),
                        Just("status".to_owned()),
                        Just("errors".to_owned()),
                        "[a-z_]{1,10}",
                    ],
                    inner,
                    0..6,
                )
                .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_messages_statuses_and_changes_never_panic_and_never_fail_the_batch(
            messages in prop::collection::vec(any_json(), 0..4),
            statuses in prop::collection::vec(any_json(), 0..4),
            junk_value in any_json(),
        ) {
            let body = json!({
                "object": "whatsapp_business_account",
                "entry": [
                    {"id": "1", "changes": [
                        {"field": "messages", "value": {"metadata": {"phone_number_id": "N"}, "messages": messages, "statuses": statuses}},
                        {"field": "messages", "value": junk_value},
                        junk_value,
                    ]},
                ],
            });
            let events = parse(&channel(), &serde_json::to_vec(&body).unwrap());
            let events = events.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(events.len() >= messages.len() + statuses.len());
        }
    }
}
