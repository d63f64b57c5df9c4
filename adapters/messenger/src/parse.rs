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
