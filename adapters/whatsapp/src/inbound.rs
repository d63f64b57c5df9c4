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
