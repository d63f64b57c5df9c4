//! `{"object":"page","entry":[{"id","time","messaging":[item…],"standby":[item…]}]}`
//! into normalised events, one or more per item, in body order.
//!
//! Items are read as `serde_json::Value`: Meta adds fields and item kinds
//! without notice, and a shape this adapter does not model must become
//! `EventKind::Unsupported` (kept raw), never an error or a panic. Only a
//! body that is not a page webhook at all is a [`ParseError`].
//!
//! Event ids are the dedupe keys for Meta's retries, so they are built only
//! from what a retry repeats: `mid`, sender, the item's own `timestamp` and
//! receipt watermarks; never `entry.time`, which differs between retries.

use serde_json::{Map, Value};
use switchboard_meta::{content_digest, id_string, str_field, timestamp_ms};
use switchboard_model::{
    ChannelId, ChatId, ConversationKey, EventId, EventKind, InboundEvent, Location, Media,
    MediaKind, Message, MessageContent, ParseError, PayloadEvent, PayloadKind, Platform, Reaction,
    Receipt, ReceiptKind, Referral, Sender,
};

/// Item keys that carry the event itself, in the order they are looked for.
const MODELED_KINDS: [&str; 7] = [
    "message",
    "message_edit",
    "postback",
    "reaction",
    "referral",
    "delivery",
    "read",
];

/// Item keys that describe the envelope, not the event.
const ENVELOPE_KEYS: [&str; 4] = ["sender", "recipient", "timestamp", "prior_message"];

pub(crate) fn parse_body(
    body: &[u8],
    channel: &ChannelId,
    configured_page: Option<&str>,
) -> Result<Vec<InboundEvent>, ParseError> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    let Value::Object(root) = root else {
        return Err(wrong_shape("the top level is not a JSON object".into()));
    };
    match root.get("object") {
        Some(Value::String(object)) if object == "page" => {}
        Some(Value::String(object)) => {
            return Err(wrong_shape(format!(
                "\"object\" is {}, not \"page\"",
                describe_object(object)
            )));
        }
        _ => return Err(wrong_shape("\"object\": \"page\" is missing".into())),
    }
    let Some(Value::Array(entries)) = root.get("entry") else {
        return Err(wrong_shape("\"entry\" is missing or not an array".into()));
    };

    let mut events = Vec::new();
    for entry in entries {
        let context = Entry {
            channel,
            configured_page,
            page: id_string(entry.get("id")),
            time_ms: timestamp_ms(entry.get("time")),
        };
        context.parse(entry, &mut events);
    }
    Ok(events)
}

fn wrong_shape(detail: String) -> ParseError {
    ParseError::WrongShape {
        platform: "messenger",
        detail,
    }
}

/// Names the `object` an app subscription delivered (`instagram`,
/// `whatsapp_business_account`) so an operator sees the misconfiguration,
/// without copying arbitrary body text into logs.
fn describe_object(object: &str) -> String {
    let is_name = !object.is_empty()
        && object.len() <= 40
        && object
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if is_name {
        format!("\"{object}\"")
    } else {
        "another value".into()
    }
}

/// What every item of one `entry` shares.
struct Entry<'a> {
    channel: &'a ChannelId,
    configured_page: Option<&'a str>,
    /// `entry.id`: the page the events were addressed to.
    page: Option<String>,
    time_ms: i64,
}

impl Entry<'_> {
    fn parse(&self, entry: &Value, events: &mut Vec<InboundEvent>) {
        let messaging = entry.get("messaging").and_then(Value::as_array);
        let standby = entry.get("standby").and_then(Value::as_array);
        if messaging.is_none() && standby.is_none() {
            // Not a messaging entry (a feed `changes` entry, or garbage):
            // recorded once, raw, against the page. Retries repeat the entry
            // but not its `time`, so the id is a digest of the rest.
            let mut stable = entry.clone();
            if let Some(fields) = stable.as_object_mut() {
                fields.remove("time");
            }
            let id = format!(
                "entry:{}:{}",
                self.page.as_deref().unwrap_or_default(),
                content_digest(&stable)
            );
            events.push(self.event(
                id,
                None,
                0,
                EventKind::Unsupported {
                    kind: "entry".into(),
                    raw: entry.clone(),
                },
            ));
            return;
        }
        for item in messaging.into_iter().flatten() {
            events.extend(self.item(item).parse());
        }
        for item in standby.into_iter().flatten() {
            // Another app owns the thread: the item is kept for the record
            // but must never be answered, so one opaque event per item.
            if let Some(mut event) = self.item(item).parse().into_iter().next() {
                event.event_id = EventId(format!("standby:{}", event.event_id));
                event.kind = EventKind::Unsupported {
                    kind: "standby".into(),
                    raw: item.clone(),
                };
                events.push(event);
            }
        }
    }

    fn item<'i>(&'i self, raw: &'i Value) -> Item<'i> {
        let fields = raw.as_object();
        let id_of = |key: &str| {
            fields
                .and_then(|f| f.get(key))
                .and_then(|party| id_string(party.get("id")))
        };
        Item {
            entry: self,
            raw,
            key: fields.map_or("unknown", item_kind),
            sender: id_of("sender"),
            recipient: id_of("recipient"),
            timestamp_ms: timestamp_ms(fields.and_then(|f| f.get("timestamp"))),
        }
    }

    /// An event in the conversation with `customer`. Events without a known
    /// customer are kept against the page itself; they are never answered.
    fn event(
        &self,
        event_id: String,
        customer: Option<&str>,
        timestamp_ms: i64,
        kind: EventKind,
    ) -> InboundEvent {
        let chat = customer
            .or(self.page.as_deref())
            .unwrap_or("unknown")
            .to_owned();
        InboundEvent {
            platform: Platform::Messenger,
            channel: self.channel.clone(),
            event_id: EventId(event_id),
            conversation: ConversationKey::new(
                Platform::Messenger,
                self.channel.clone(),
                ChatId::Str(chat),
            ),
            sender: Sender {
                id: customer.unwrap_or_default().to_owned(),
                ..Sender::default()
            },
            business_id: self.page.clone(),
            timestamp_ms: if timestamp_ms > 0 {
                timestamp_ms
            } else {
                self.time_ms
            },
            kind,
        }
    }

    fn is_page(&self, id: &str) -> bool {
        self.page.as_deref() == Some(id) || self.configured_page == Some(id)
    }
}

/// The key naming what happened in an item: a modeled one if present, else
/// the alphabetically first non-envelope key (stable whatever the JSON map
/// order), else `unknown`.
fn item_kind(fields: &Map<String, Value>) -> &str {
    if let Some(kind) = MODELED_KINDS.iter().find(|k| fields.contains_key(**k)) {
        return kind;
    }
    fields
        .keys()
        .map(String::as_str)
        .filter(|key| !ENVELOPE_KEYS.contains(key))
        .min()
        .unwrap_or("unknown")
}

/// One `messaging[]` (or `standby[]`) item.
struct Item<'a> {
    entry: &'a Entry<'a>,
    raw: &'a Value,
    key: &'a str,
    /// `sender.id`: the customer's PSID (the page's id in echoes).
    sender: Option<String>,
    /// `recipient.id`: the page (the customer in echoes).
    recipient: Option<String>,
    /// The item's own timestamp in ms; 0 when absent.
    timestamp_ms: i64,
}

impl Item<'_> {
    fn parse(&self) -> Vec<InboundEvent> {
        let (Some(sender), Some(recipient)) = (self.sender.as_deref(), self.recipient.as_deref())
        else {
            return vec![self.unsupported(self.key)];
        };
        let body = self.raw.get(self.key).unwrap_or(&Value::Null);
        let parsed = match self.key {
            "message" => self.message(sender, recipient, body),
            "message_edit" => self.message_edit(sender, body),
            "postback" => self.postback(sender, body).map(|event| vec![event]),
            "reaction" => self.reaction(sender, body).map(|event| vec![event]),
            "referral" => self.referral(sender, body).map(|event| vec![event]),
            "delivery" => self
                .receipt(sender, body, ReceiptKind::Delivered)
                .map(|event| vec![event]),
            "read" => self
                .receipt(sender, body, ReceiptKind::Read)
                .map(|event| vec![event]),
            _ => None,
        };
        parsed.unwrap_or_else(|| vec![self.unsupported(self.key)])
    }

    fn event(&self, event_id: String, customer: &str, kind: EventKind) -> InboundEvent {
        self.entry
            .event(event_id, Some(customer), self.timestamp_ms, kind)
    }

    fn unsupported(&self, kind: &str) -> InboundEvent {
        let id = format!(
            "{kind}:{}:{}",
            self.sender.as_deref().unwrap_or_default(),
            self.timestamp_ms
        );
        self.unsupported_as(kind, id)
    }

    fn unsupported_as(&self, kind: &str, event_id: String) -> InboundEvent {
        self.entry.event(
            event_id,
            self.sender.as_deref(),
            self.timestamp_ms,
            EventKind::Unsupported {
                kind: kind.to_owned(),
                raw: self.raw.clone(),
            },
        )
    }

    fn message(&self, sender: &str, recipient: &str, message: &Value) -> Option<Vec<InboundEvent>> {
        if !message.is_object() {
            return None;
        }
        let mid = non_empty(message, "mid");
        if message.get("is_echo").and_then(Value::as_bool) == Some(true) {
            return Some(vec![self.echo(sender, recipient, mid, message)]);
        }
        let event_id = match &mid {
            Some(mid) => format!("message:{mid}"),
            None => format!("message:{sender}:{}", self.timestamp_ms),
        };
        let text = non_empty(message, "text");

        if let Some(quick_reply) = message.get("quick_reply").filter(|q| q.is_object()) {
            let tap = PayloadEvent {
                kind: PayloadKind::QuickReply,
                payload: str_field(quick_reply, "payload").unwrap_or_default(),
                title: text,
                message_id: mid,
                in_reply_to: None,
                callback_id: None,
                referral: None,
            };
            return Some(vec![self.event(event_id, sender, EventKind::Payload(tap))]);
        }

        let mut parts = attachment_parts(message);
        if let Some(text) = text {
            match parts.first_mut() {
                Some(Part::Content(MessageContent::Media(media))) if media.caption.is_none() => {
                    media.caption = Some(text);
                }
                // Text beside a location or a link share is still what the
                // customer wrote: it goes first, as its own message.
                _ => parts.insert(
                    0,
                    Part::Content(MessageContent::Text {
                        text,
                        command: None,
                    }),
                ),
            }
        }
        if parts.is_empty() {
            return Some(vec![self.unsupported_as("message", event_id)]);
        }

        let reply_to = message
            .get("reply_to")
            .and_then(|reply| non_empty(reply, "mid"));
        // Click-to-Messenger ads put the referral on the message; some
        // integrations deliver it beside the message instead.
        let mut referral = message
            .get("referral")
            .or_else(|| self.raw.get("referral"))
            .and_then(referral);
        let message_id = mid.unwrap_or_default();
        let events = parts
            .into_iter()
            .enumerate()
            .map(|(index, part)| {
                let id = if index == 0 {
                    event_id.clone()
                } else {
                    format!("{event_id}#{index}")
                };
                match part {
                    Part::Content(content) => {
                        let message = Message {
                            message_id: message_id.clone(),
                            content,
                            reply_to: reply_to.clone(),
                            forwarded: false,
                            thread_id: None,
                            referral: referral.take(),
                        };
                        self.event(id, sender, EventKind::Message(message))
                    }
                    Part::Unsupported(kind) => self.unsupported_as(&kind, id),
                }
            })
            .collect();
        Some(events)
    }

    /// The page's own message, echoed. It belongs to the customer's
    /// conversation: Meta sends it from the page to the customer, but
    /// captured samples have the roles swapped, so the customer is whichever
    /// party is not the page.
    fn echo(
        &self,
        sender: &str,
        recipient: &str,
        mid: Option<String>,
        message: &Value,
    ) -> InboundEvent {
        let customer = if self.entry.is_page(recipient) && !self.entry.is_page(sender) {
            sender
        } else {
            recipient
        };
        let event_id = match &mid {
            Some(mid) => format!("echo:{mid}"),
            None => format!("echo:{customer}:{}", self.timestamp_ms),
        };
        let echo = EventKind::Echo {
            message_id: mid.unwrap_or_default(),
            app_id: id_string(message.get("app_id")),
        };
        self.event(event_id, customer, echo)
    }

    /// `message_edit: {mid, text, num_edit}`; each edit is its own event.
    fn message_edit(&self, sender: &str, edit: &Value) -> Option<Vec<InboundEvent>> {
        let mid = non_empty(edit, "mid")?;
        let text = str_field(edit, "text")?;
        let count = id_string(edit.get("num_edit")).unwrap_or_default();
        let message = Message {
            message_id: mid.clone(),
            content: MessageContent::Text {
                text,
                command: None,
            },
            reply_to: None,
            forwarded: false,
            thread_id: None,
            referral: None,
        };
        let id = format!("message_edit:{mid}:{count}");
        Some(vec![self.event(id, sender, EventKind::Edited(message))])
    }

    /// `postback: {[mid], title, [payload], [referral]}`; standby postbacks
    /// omit the payload.
    fn postback(&self, sender: &str, postback: &Value) -> Option<InboundEvent> {
        if !postback.is_object() {
            return None;
        }
        let mid = non_empty(postback, "mid");
        let event_id = match &mid {
            Some(mid) => format!("postback:{mid}"),
            None => format!("postback:{sender}:{}", self.timestamp_ms),
        };
        let tap = PayloadEvent {
            kind: PayloadKind::Postback,
            payload: str_field(postback, "payload").unwrap_or_default(),
            title: str_field(postback, "title"),
            message_id: mid,
            in_reply_to: None,
            callback_id: None,
            referral: postback.get("referral").and_then(referral),
        };
        Some(self.event(event_id, sender, EventKind::Payload(tap)))
    }

    /// `reaction: {reaction, emoji, action: react|unreact, mid}`; a removal
    /// may omit `reaction` and `emoji`.
    fn reaction(&self, sender: &str, reaction: &Value) -> Option<InboundEvent> {
        let mid = non_empty(reaction, "mid")?;
        let action = str_field(reaction, "action").unwrap_or_default();
        let name = str_field(reaction, "reaction").unwrap_or_default();
        let removed = action == "unreact";
        let event_id = format!("reaction:{mid}:{action}:{name}");
        let kind = EventKind::Reaction(Reaction {
            message_id: mid,
            emoji: if removed {
                None
            } else {
                non_empty(reaction, "emoji")
            },
            removed,
        });
        Some(self.event(event_id, sender, kind))
    }

    /// `referral: {ref, source, type, [ad_id]}`: an m.me link, ad or QR code
    /// opened an existing thread.
    fn referral(&self, sender: &str, value: &Value) -> Option<InboundEvent> {
        let found = referral(value)?;
        let event_id = format!("referral:{sender}:{}", self.timestamp_ms);
        Some(self.event(event_id, sender, EventKind::Referral(found)))
    }

    /// `delivery: {[mids], watermark}` / `read: {watermark}`: everything up
    /// to the watermark was delivered or read.
    fn receipt(&self, sender: &str, receipt: &Value, kind: ReceiptKind) -> Option<InboundEvent> {
        if !receipt.is_object() {
            return None;
        }
        let watermark_ms = Some(timestamp_ms(receipt.get("watermark"))).filter(|&ms| ms > 0);
        let message_ids = receipt
            .get("mids")
            .and_then(Value::as_array)
            .map(|mids| {
                mids.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let prefix = match kind {
            ReceiptKind::Delivered => "delivery",
            ReceiptKind::Read => "read",
        };
        let event_id = format!(
            "{prefix}:{sender}:{}",
            watermark_ms.unwrap_or(self.timestamp_ms)
        );
        let receipt = Receipt {
            kind,
            watermark_ms,
            message_ids,
        };
        Some(self.event(event_id, sender, EventKind::Receipt(receipt)))
    }
}

/// One attachment's worth of a message.
enum Part {
    Content(MessageContent),
    /// An attachment kind the model has no place for (`fallback`,
    /// `template`, `reel`…), named `attachment:<type>`.
    Unsupported(String),
}

fn attachment_parts(message: &Value) -> Vec<Part> {
    let Some(attachments) = message.get("attachments").and_then(Value::as_array) else {
        return Vec::new();
    };
    // Until Meta's sticker transition ends (2026-08-30) a sticker arrives as
    // both a `sticker` and an `image` attachment; a customer cannot send a
    // sticker together with a photo, so the image is the duplicate.
    let has_sticker = attachments
        .iter()
        .any(|a| a.get("type").and_then(Value::as_str) == Some("sticker"));
    attachments
        .iter()
        .filter(|a| !(has_sticker && a.get("type").and_then(Value::as_str) == Some("image")))
        .map(attachment)
        .collect()
}

fn attachment(attachment: &Value) -> Part {
    let kind = attachment
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let payload = attachment.get("payload").unwrap_or(&Value::Null);
    let sticker_id =
        id_string(payload.get("sticker_id")).or_else(|| id_string(attachment.get("sticker_id")));
    let media = |kind: MediaKind, media_id: Option<String>| {
        Part::Content(MessageContent::Media(Media {
            kind,
            media_id,
            url: non_empty(payload, "url"),
            mime_type: None,
            caption: None,
            file_name: None,
        }))
    };
    match kind {
        "sticker" => media(MediaKind::Sticker, sticker_id),
        "image" if sticker_id.is_some() => media(MediaKind::Sticker, sticker_id),
        "image" => media(MediaKind::Image, None),
        "audio" => media(MediaKind::Audio, None),
        "video" => media(MediaKind::Video, None),
        "file" => media(MediaKind::File, None),
        "location" => match coordinates(payload) {
            Some(location) => Part::Content(MessageContent::Location(location)),
            None => Part::Unsupported("attachment:location".into()),
        },
        other => Part::Unsupported(format!("attachment:{other}")),
    }
}

/// `payload.coordinates: {lat, long}`, when both are real coordinates.
fn coordinates(payload: &Value) -> Option<Location> {
    let coordinates = payload.get("coordinates")?;
    let latitude = coordinates.get("lat")?.as_f64()?;
    let longitude = coordinates.get("long")?.as_f64()?;
    let valid = (-90.0..=90.0).contains(&latitude) && (-180.0..=180.0).contains(&longitude);
    valid.then_some(Location {
        latitude,
        longitude,
        name: None,
        address: None,
    })
}

fn referral(value: &Value) -> Option<Referral> {
    value.is_object().then(|| Referral {
        reference: str_field(value, "ref"),
        source: str_field(value, "source"),
        ad_id: id_string(value.get("ad_id")),
    })
}

fn non_empty(value: &Value, key: &str) -> Option<String> {
    str_field(value, key).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const PAGE: &str = "1895382890692545";
    const PSID: &str = "1412611362105802";

    fn channel() -> ChannelId {
        ChannelId::new("shop-messenger").unwrap()
    }

    fn parse(body: &Value) -> Vec<InboundEvent> {
        parse_body(&serde_json::to_vec(body).unwrap(), &channel(), None).unwrap()
    }

    fn page_body(items: &Value) -> Value {
        json!({"object": "page", "entry": [{"id": PAGE, "time": 1486464322257_i64, "messaging": items}]})
    }

    fn one(item: &Value) -> InboundEvent {
        let mut events = parse(&page_body(&json!([item])));
        assert_eq!(events.len(), 1, "{events:#?}");
        events.remove(0)
    }

    fn event(event_id: &str, customer: &str, timestamp_ms: i64, kind: EventKind) -> InboundEvent {
        InboundEvent {
            platform: Platform::Messenger,
            channel: channel(),
            event_id: EventId(event_id.into()),
            conversation: ConversationKey::new(
                Platform::Messenger,
                channel(),
                ChatId::Str(customer.into()),
            ),
            sender: Sender {
                id: customer.into(),
                ..Sender::default()
            },
            business_id: Some(PAGE.into()),
            timestamp_ms,
            kind,
        }
    }

    fn text(mid: &str, text: &str) -> EventKind {
        EventKind::Message(Message {
            message_id: mid.into(),
            content: MessageContent::Text {
                text: text.into(),
                command: None,
            },
            reply_to: None,
            forwarded: false,
            thread_id: None,
            referral: None,
        })
    }

    fn from_customer(extra: &Value) -> Value {
        let mut item = json!({"sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": 1486464322190_i64});
        for (key, value) in extra.as_object().unwrap() {
            item[key] = value.clone();
        }
        item
    }

    fn unsupported(kind: &str, raw: &Value) -> EventKind {
        EventKind::Unsupported {
            kind: kind.into(),
            raw: raw.clone(),
        }
    }

    #[test]
    fn a_text_message_becomes_a_text_message_in_the_customers_conversation() {
        let item = from_customer(
            &json!({"message": {"mid": "m_1", "seq": 12, "text": "Is the blue jacket in stock?"}}),
        );
        assert_eq!(
            one(&item),
            event(
                "message:m_1",
                PSID,
                1486464322190,
                text("m_1", "Is the blue jacket in stock?")
            )
        );
    }

    #[test]
    fn a_reply_keeps_the_mid_it_replies_to() {
        let item = from_customer(
            &json!({"message": {"mid": "m_2", "text": "this one", "reply_to": {"mid": "m_1", "is_self_reply": false}}}),
        );
        let EventKind::Message(message) = one(&item).kind else {
            panic!("not a message");
        };
        assert_eq!(message.reply_to.as_deref(), Some("m_1"));
    }

    #[test]
    fn an_echo_is_an_echo_in_the_customers_conversation_not_a_message() {
        let item = json!({
            "sender": {"id": PAGE}, "recipient": {"id": PSID}, "timestamp": 1480114700296_i64,
            "message": {"is_echo": true, "app_id": 1517776481860111_u64, "metadata": "bot", "mid": "m_echo", "seq": 282, "text": "We open at 9."}
        });
        let echo = one(&item);
        assert_eq!(
            echo,
            event(
                "echo:m_echo",
                PSID,
                1480114700296,
                EventKind::Echo {
                    message_id: "m_echo".into(),
                    app_id: Some("1517776481860111".into()),
                }
            )
        );
        assert!(!echo.is_from_customer());
    }

    #[test]
    fn an_echo_with_swapped_roles_still_lands_with_the_customer() {
        let item = json!({"sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": 1_i64, "message": {"is_echo": true, "mid": "m_e"}});
        let echo = one(&item);
        assert_eq!(echo.conversation.chat, ChatId::Str(PSID.into()));
        assert_eq!(echo.event_id.as_str(), "echo:m_e");
    }

    #[test]
    fn the_configured_page_id_also_identifies_the_page_in_echoes() {
        let body = json!({"object": "page", "entry": [{"id": "other-page", "messaging": [
            {"sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": 5_i64, "message": {"is_echo": true, "mid": "m_e"}}
        ]}]});
        let events =
            parse_body(&serde_json::to_vec(&body).unwrap(), &channel(), Some(PAGE)).unwrap();
        assert_eq!(events[0].conversation.chat, ChatId::Str(PSID.into()));
    }

    #[test]
    fn a_quick_reply_tap_is_a_payload_titled_with_its_text() {
        let item = from_customer(
            &json!({"message": {"mid": "m_q", "text": "Opening hours", "quick_reply": {"payload": "HOURS"}}}),
        );
        assert_eq!(
            one(&item),
            event(
                "message:m_q",
                PSID,
                1486464322190,
                EventKind::Payload(PayloadEvent {
                    kind: PayloadKind::QuickReply,
                    payload: "HOURS".into(),
                    title: Some("Opening hours".into()),
                    message_id: Some("m_q".into()),
                    in_reply_to: None,
                    callback_id: None,
                    referral: None,
                })
            )
        );
    }

    #[test]
    fn a_postback_with_a_mid_is_keyed_by_it_and_without_one_by_sender_and_time() {
        let with_mid = from_customer(
            &json!({"postback": {"mid": "m_p", "title": "Track order", "payload": "ORDER"}}),
        );
        assert_eq!(
            one(&with_mid),
            event(
                "postback:m_p",
                PSID,
                1486464322190,
                EventKind::Payload(PayloadEvent {
                    kind: PayloadKind::Postback,
                    payload: "ORDER".into(),
                    title: Some("Track order".into()),
                    message_id: Some("m_p".into()),
                    in_reply_to: None,
                    callback_id: None,
                    referral: None,
                })
            )
        );
        // Standby-style postback: no mid, no payload.
        let bare = from_customer(&json!({"postback": {"title": "Get Started"}}));
        let tap = one(&bare);
        assert_eq!(
            tap.event_id.as_str(),
            "postback:1412611362105802:1486464322190"
        );
        let EventKind::Payload(payload) = tap.kind else {
            panic!("not a payload");
        };
        assert_eq!(payload.payload, "");
        assert_eq!(payload.message_id, None);
    }

    #[test]
    fn a_referral_opens_the_thread_with_its_ref_source_and_ad() {
        let item = from_customer(
            &json!({"referral": {"ref": "spring-sale", "source": "ADS", "type": "OPEN_THREAD", "ad_id": 6045246247433_u64}}),
        );
        assert_eq!(
            one(&item),
            event(
                "referral:1412611362105802:1486464322190",
                PSID,
                1486464322190,
                EventKind::Referral(Referral {
                    reference: Some("spring-sale".into()),
                    source: Some("ADS".into()),
                    ad_id: Some("6045246247433".into()),
                })
            )
        );
    }

    #[test]
    fn an_ad_referral_on_a_message_stays_with_the_message() {
        let item = from_customer(
            &json!({"message": {"mid": "m_ad", "text": "Hi", "referral": {"ref": "r", "source": "ADS", "ad_id": "42"}}}),
        );
        let EventKind::Message(message) = one(&item).kind else {
            panic!("not a message");
        };
        assert_eq!(
            message.referral,
            Some(Referral {
                reference: Some("r".into()),
                source: Some("ADS".into()),
                ad_id: Some("42".into()),
            })
        );
    }

    #[test]
    fn delivery_and_read_receipts_carry_their_watermark() {
        let delivery = from_customer(
            &json!({"delivery": {"mids": ["m_1", "m_2"], "watermark": 1458668856253_i64, "seq": 37}}),
        );
        assert_eq!(
            one(&delivery),
            event(
                "delivery:1412611362105802:1458668856253",
                PSID,
                1486464322190,
                EventKind::Receipt(Receipt {
                    kind: ReceiptKind::Delivered,
                    watermark_ms: Some(1458668856253),
                    message_ids: vec!["m_1".into(), "m_2".into()],
                })
            )
        );
        let read = from_customer(&json!({"read": {"watermark": "1458668856253"}}));
        assert_eq!(
            one(&read),
            event(
                "read:1412611362105802:1458668856253",
                PSID,
                1486464322190,
                EventKind::Receipt(Receipt {
                    kind: ReceiptKind::Read,
                    watermark_ms: Some(1458668856253),
                    message_ids: vec![],
                })
            )
        );
    }

    #[test]
    fn a_reaction_and_its_removal_are_told_apart() {
        let react = from_customer(
            &json!({"reaction": {"reaction": "love", "emoji": "\u{2764}\u{fe0f}", "action": "react", "mid": "m_bot"}}),
        );
        assert_eq!(
            one(&react),
            event(
                "reaction:m_bot:react:love",
                PSID,
                1486464322190,
                EventKind::Reaction(Reaction {
                    message_id: "m_bot".into(),
                    emoji: Some("\u{2764}\u{fe0f}".into()),
                    removed: false,
                })
            )
        );
        // A removal may omit the reaction and the emoji.
        let unreact = from_customer(&json!({"reaction": {"action": "unreact", "mid": "m_bot"}}));
        assert_eq!(
            one(&unreact),
            event(
                "reaction:m_bot:unreact:",
                PSID,
                1486464322190,
                EventKind::Reaction(Reaction {
                    message_id: "m_bot".into(),
                    emoji: None,
                    removed: true,
                })
            )
        );
    }

    #[test]
    fn a_message_edit_is_an_edited_text_keyed_by_mid_and_edit_count() {
        let item = from_customer(
            &json!({"message_edit": {"mid": "m_1", "text": "blue jacket, size M", "num_edit": 2}}),
        );
        let mut expected_message = text("m_1", "blue jacket, size M");
        if let EventKind::Message(message) = expected_message {
            expected_message = EventKind::Edited(message);
        }
        assert_eq!(
            one(&item),
            event("message_edit:m_1:2", PSID, 1486464322190, expected_message)
        );
    }

    #[test]
    fn text_with_an_image_becomes_the_images_caption() {
        let item = from_customer(
            &json!({"message": {"mid": "m_i", "text": "this one?", "attachments": [
                {"type": "image", "payload": {"url": "https://cdn.example/p.jpg"}}
            ]}}),
        );
        assert_eq!(
            one(&item),
            event(
                "message:m_i",
                PSID,
                1486464322190,
                EventKind::Message(Message {
                    message_id: "m_i".into(),
                    content: MessageContent::Media(Media {
                        kind: MediaKind::Image,
                        media_id: None,
                        url: Some("https://cdn.example/p.jpg".into()),
                        mime_type: None,
                        caption: Some("this one?".into()),
                        file_name: None,
                    }),
                    reply_to: None,
                    forwarded: false,
                    thread_id: None,
                    referral: None,
                })
            )
        );
    }

    #[test]
    fn text_beside_a_link_share_goes_first_as_its_own_message() {
        let item = from_customer(
            &json!({"message": {"mid": "m_l", "text": "https://shop.example/jacket", "attachments": [
                {"type": "fallback", "payload": {"url": "https://shop.example/jacket", "title": "Jacket"}}
            ]}}),
        );
        let events = parse(&page_body(&json!([&item])));
        assert_eq!(
            events,
            vec![
                event(
                    "message:m_l",
                    PSID,
                    1486464322190,
                    text("m_l", "https://shop.example/jacket")
                ),
                event(
                    "message:m_l#1",
                    PSID,
                    1486464322190,
                    unsupported("attachment:fallback", &item)
                ),
            ]
        );
    }

    #[test]
    fn audio_video_and_file_attachments_keep_their_urls_one_event_each() {
        let item = from_customer(&json!({"message": {"mid": "m_m", "attachments": [
            {"type": "audio", "payload": {"url": "https://cdn.example/a.mp4"}},
            {"type": "video", "payload": {"url": "https://cdn.example/v.mp4"}},
            {"type": "file", "payload": {"url": "https://cdn.example/f.pdf"}},
            {"type": "reel", "payload": {"url": "https://cdn.example/r", "reel_video_id": "1"}}
        ]}}));
        let events = parse(&page_body(&json!([&item])));
        let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "message:m_m",
                "message:m_m#1",
                "message:m_m#2",
                "message:m_m#3"
            ]
        );
        let kinds: Vec<(MediaKind, Option<String>)> = events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Message(Message {
                    content: MessageContent::Media(media),
                    ..
                }) => Some((media.kind, media.url.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                (MediaKind::Audio, Some("https://cdn.example/a.mp4".into())),
                (MediaKind::Video, Some("https://cdn.example/v.mp4".into())),
                (MediaKind::File, Some("https://cdn.example/f.pdf".into())),
            ]
        );
        assert_eq!(events[3].kind, unsupported("attachment:reel", &item));
    }

    #[test]
    fn during_the_sticker_transition_a_sticker_is_one_sticker_not_also_an_image() {
        let item = from_customer(&json!({"message": {"mid": "m_s", "attachments": [
            {"type": "image", "payload": {"url": "https://cdn.example/s.png", "sticker_id": 369239263222822_u64}},
            {"type": "sticker", "payload": {"url": "https://cdn.example/s.png", "sticker_id": 369239263222822_u64}}
        ]}}));
        let events = parse(&page_body(&json!([&item])));
        assert_eq!(events.len(), 1);
        let EventKind::Message(message) = &events[0].kind else {
            panic!("not a message");
        };
        assert_eq!(
            message.content,
            MessageContent::Media(Media {
                kind: MediaKind::Sticker,
                media_id: Some("369239263222822".into()),
                url: Some("https://cdn.example/s.png".into()),
                mime_type: None,
                caption: None,
                file_name: None,
            })
        );
    }

    #[test]
    fn a_location_without_real_coordinates_is_unsupported() {
        let item = from_customer(&json!({"message": {"mid": "m_loc", "attachments": [
            {"type": "location", "payload": {"coordinates": {"lat": 123.0, "long": 9.7}}}
        ]}}));
        assert_eq!(one(&item).kind, unsupported("attachment:location", &item));
    }

    #[test]
    fn a_message_with_nothing_readable_is_unsupported_under_its_mid() {
        let item = from_customer(&json!({"message": {"mid": "m_x", "text": ""}}));
        let event = one(&item);
        assert_eq!(event.event_id.as_str(), "message:m_x");
        assert_eq!(event.kind, unsupported("message", &item));
    }

    #[test]
    fn batched_entries_and_items_yield_every_event_in_body_order() {
        let body = json!({"object": "page", "entry": [
            {"id": PAGE, "time": 1_i64, "messaging": [
                from_customer(&json!({"message": {"mid": "m_1", "text": "one"}})),
                from_customer(&json!({"read": {"watermark": 1486464322000_i64}}))
            ]},
            {"id": "189538289069256", "time": 2_i64, "messaging": [
                {"sender": {"id": "999"}, "recipient": {"id": "189538289069256"}, "timestamp": 1486464322191_i64,
                 "message": {"mid": "m_2", "text": "two"}}
            ]}
        ]});
        let events = parse(&body);
        let summary: Vec<(&str, &str, Option<&str>)> = events
            .iter()
            .map(|e| {
                (
                    e.event_id.as_str(),
                    e.sender.id.as_str(),
                    e.business_id.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("message:m_1", PSID, Some(PAGE)),
                ("read:1412611362105802:1486464322000", PSID, Some(PAGE)),
                ("message:m_2", "999", Some("189538289069256")),
            ]
        );
    }

    #[test]
    fn standby_items_are_recorded_as_standby_and_never_as_messages() {
        let message = from_customer(&json!({"message": {"mid": "m_sb", "text": "hello inbox"}}));
        let postback = from_customer(&json!({"postback": {"title": "Talk to a person"}}));
        let body = json!({"object": "page", "entry": [{"id": PAGE, "time": 3_i64, "standby": [&message, &postback]}]});
        assert_eq!(
            parse(&body),
            vec![
                event(
                    "standby:message:m_sb",
                    PSID,
                    1486464322190,
                    unsupported("standby", &message)
                ),
                event(
                    "standby:postback:1412611362105802:1486464322190",
                    PSID,
                    1486464322190,
                    unsupported("standby", &postback)
                ),
            ]
        );
    }

    #[test]
    fn timestamps_as_numbers_or_strings_in_ms_or_seconds_all_become_ms() {
        for (timestamp, expected) in [
            (json!(1527459824000_i64), 1527459824000_i64),
            (json!("1527459824000"), 1527459824000),
            // The postback docs show seconds as a string.
            (json!("1527459824"), 1527459824000),
            (json!(1527459824), 1527459824000),
        ] {
            let item = json!({"sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": timestamp,
                              "postback": {"title": "Hi", "payload": "HI"}});
            let tap = one(&item);
            assert_eq!(tap.timestamp_ms, expected);
            assert_eq!(tap.event_id.as_str(), format!("postback:{PSID}:{expected}"));
        }
    }

    #[test]
    fn an_item_without_a_timestamp_takes_the_entry_time() {
        let item = json!({"sender": {"id": PSID}, "recipient": {"id": PAGE}, "delivery": {"watermark": 1458668856253_i64}});
        assert_eq!(one(&item).timestamp_ms, 1486464322257);
    }

    #[test]
    fn unknown_and_unmodeled_items_are_unsupported_under_their_key() {
        for key in [
            "optin",
            "account_linking",
            "pass_thread_control",
            "take_thread_control",
            "request_thread_control",
            "app_roles",
            "policy_enforcement",
            "response_feedback",
            "brand_new_event",
        ] {
            let mut item = from_customer(&json!({"prior_message": {"source": "checkbox_plugin"}}));
            item[key] = json!({"some": "thing"});
            assert_eq!(
                one(&item),
                event(
                    &format!("{key}:{PSID}:1486464322190"),
                    PSID,
                    1486464322190,
                    unsupported(key, &item)
                ),
                "{key}"
            );
        }
        let empty = from_customer(&json!({}));
        assert_eq!(one(&empty).kind, unsupported("unknown", &empty));
    }

    #[test]
    fn items_missing_sender_or_recipient_are_unsupported_not_a_panic() {
        let no_sender = json!({"recipient": {"id": PAGE}, "timestamp": 7_i64, "message": {"mid": "m", "text": "hi"}});
        let event = one(&no_sender);
        assert_eq!(event.kind, unsupported("message", &no_sender));
        assert_eq!(event.sender.id, "");
        assert_eq!(event.conversation.chat, ChatId::Str(PAGE.into()));

        let no_recipient = json!({"sender": {"id": PSID}, "timestamp": 7_i64, "message": {"mid": "m", "text": "hi"}});
        let event = one(&no_recipient);
        assert_eq!(event.kind, unsupported("message", &no_recipient));
        assert_eq!(event.conversation.chat, ChatId::Str(PSID.into()));

        for odd in [
            json!("text"),
            json!(null),
            json!([1, 2]),
            json!({"sender": "5678"}),
        ] {
            assert!(matches!(one(&odd).kind, EventKind::Unsupported { .. }));
        }
    }

    #[test]
    fn an_entry_without_messaging_is_recorded_once_with_a_retry_stable_id() {
        let entry = |time: i64| json!({"object": "page", "entry": [{"id": PAGE, "time": time, "changes": [{"field": "feed", "value": {}}]}]});
        let first = parse(&entry(1));
        let retry = parse(&entry(2));
        assert_eq!(first.len(), 1);
        assert!(matches!(&first[0].kind, EventKind::Unsupported { kind, .. } if kind == "entry"));
        assert!(
            first[0]
                .event_id
                .as_str()
                .starts_with("entry:1895382890692545:")
        );
        assert_eq!(first[0].event_id, retry[0].event_id);
    }

    #[test]
    fn an_empty_entry_list_is_no_events() {
        assert_eq!(parse(&json!({"object": "page", "entry": []})), vec![]);
    }

    #[test]
    fn bodies_that_are_not_page_webhooks_are_errors() {
        let parse_raw = |body: &[u8]| parse_body(body, &channel(), None);
        assert!(matches!(
            parse_raw(b"not json"),
            Err(ParseError::NotJson(_))
        ));
        assert!(matches!(parse_raw(b""), Err(ParseError::NotJson(_))));
        assert_eq!(
            parse_raw(br#"[{"object":"page"}]"#),
            Err(ParseError::WrongShape {
                platform: "messenger",
                detail: "the top level is not a JSON object".into()
            })
        );
        assert_eq!(
            parse_raw(br#"{"object":"instagram","entry":[]}"#),
            Err(ParseError::WrongShape {
                platform: "messenger",
                detail: "\"object\" is \"instagram\", not \"page\"".into()
            })
        );
        assert_eq!(
            parse_raw(br#"{"object":"<script>alert(1)</script>","entry":[]}"#),
            Err(ParseError::WrongShape {
                platform: "messenger",
                detail: "\"object\" is another value, not \"page\"".into()
            })
        );
        assert_eq!(
            parse_raw(br#"{"entry":[]}"#),
            Err(ParseError::WrongShape {
                platform: "messenger",
                detail: "\"object\": \"page\" is missing".into()
            })
        );
        assert_eq!(
            parse_raw(br#"{"object":"page","entry":{}}"#),
            Err(ParseError::WrongShape {
                platform: "messenger",
                detail: "\"entry\" is missing or not an array".into()
            })
        );
    }

    #[test]
    fn a_parse_error_never_repeats_body_text() {
        let Err(error) = parse_body(
            br#"{"object":"page","entry":[{"secret-ish" "#,
            &channel(),
            None,
        ) else {
            panic!("truncated JSON parsed");
        };
        assert!(!error.to_string().contains("secret-ish"), "{error}");
    }
}
