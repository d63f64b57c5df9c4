use serde::{Deserialize, Serialize};

use crate::ids::{ChannelId, ConversationKey, EventId, Platform};

/// One thing that happened on a platform, normalised. A single webhook POST
/// may carry many (Meta batches entries, changes, messages and statuses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundEvent {
    pub platform: Platform,
    /// The channel whose URL (and secret) the webhook arrived on. The gateway
    /// may re-route Meta events to another channel sharing the same app, by
    /// [`InboundEvent::business_id`]; see [`InboundEvent::reroute`].
    pub channel: ChannelId,
    /// Dedupe key: the same delivery retried by the platform has the same id.
    pub event_id: EventId,
    pub conversation: ConversationKey,
    pub sender: Sender,
    /// The business side the event was addressed to: Messenger page id
    /// (`entry[].id`), WhatsApp `metadata.phone_number_id`, Telegram: none.
    pub business_id: Option<String>,
    /// Platform timestamp in milliseconds since the Unix epoch (0 when the
    /// platform gave none or an unreadable one).
    pub timestamp_ms: i64,
    pub kind: EventKind,
}

impl InboundEvent {
    /// Moves the event to another channel (Meta routing by page or number).
    pub fn reroute(&mut self, channel: ChannelId) {
        self.conversation.channel = channel.clone();
        self.channel = channel;
    }

    /// True for events that come from a customer and may get an answer.
    /// Receipts, statuses, echoes and unknown shapes never do.
    pub fn is_from_customer(&self) -> bool {
        matches!(
            self.kind,
            EventKind::Message(_)
                | EventKind::Edited(_)
                | EventKind::Payload(_)
                | EventKind::Referral(_)
        )
    }
}

/// Who sent it. For WhatsApp statuses and Messenger echoes, this is the
/// customer the business message was for, so the event lands in the
/// customer's conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Sender {
    /// PSID, wa_id, or the Telegram user id as a decimal string.
    pub id: String,
    pub display_name: Option<String>,
    /// Telegram `@username`, without the `@`.
    pub username: Option<String>,
    /// IETF language tag where the platform gives one (Telegram `language_code`).
    pub locale: Option<String>,
    /// True when the platform says this sender is a bot (Telegram `is_bot`).
    pub is_bot: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A new message from the customer.
    Message(Message),
    /// The customer edited an earlier message; carries the new content.
    Edited(Message),
    /// A tap on a quick reply, postback button, template button, inline
    /// keyboard button or interactive list row.
    Payload(PayloadEvent),
    Reaction(Reaction),
    /// Entry through a link, ad, QR code or "Get Started" with a ref.
    Referral(Referral),
    /// Messenger delivery/read receipts.
    Receipt(Receipt),
    /// WhatsApp status of a message the business sent.
    Status(DeliveryStatus),
    /// The bot was blocked/unblocked, added to or removed from a group.
    Membership(Membership),
    /// The page's own message echoed back by Messenger: never answered, or
    /// the bot would talk to itself.
    Echo {
        message_id: String,
        app_id: Option<String>,
    },
    /// A shape this adapter does not model. Kept raw for the dead-letter and
    /// admin views; never an error.
    Unsupported {
        kind: String,
        raw: serde_json::Value,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Platform message id: Messenger `mid`, WhatsApp `wamid`, Telegram
    /// `message_id` as a decimal string (unique only inside its chat).
    pub message_id: String,
    pub content: MessageContent,
    /// Id of the message this one replies to, where the platform says.
    pub reply_to: Option<String>,
    pub forwarded: bool,
    /// Telegram forum topic (`message_thread_id`), so replies stay in it.
    pub thread_id: Option<i64>,
    /// Referral that came with the message (WhatsApp click-to-chat ads).
    pub referral: Option<Referral>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MessageContent {
    Text {
        text: String,
        /// A Telegram bot command at the start of the text (`/start abc`).
        command: Option<Command>,
    },
    Media(Media),
    Location(Location),
    Contacts {
        contacts: Vec<Contact>,
    },
    /// A WhatsApp catalogue order.
    Order {
        catalog_id: Option<String>,
        items: Vec<OrderItem>,
        text: Option<String>,
    },
}

impl MessageContent {
    /// The text a person typed: the text itself or a media caption.
    pub fn text(&self) -> Option<&str> {
        match self {
            MessageContent::Text { text, .. } => Some(text),
            MessageContent::Media(media) => media.caption.as_deref(),
            MessageContent::Order { text, .. } => text.as_deref(),
            MessageContent::Location(_) | MessageContent::Contacts { .. } => None,
        }
    }
}

/// `/name@bot args`: `name` is lowercased without the slash and without the
/// `@bot` suffix; `args` is the rest of the text, trimmed (the `/start`
/// deep-link payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub name: String,
    pub args: String,
    /// The `@bot` a group command was addressed to, if any.
    pub bot: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Audio,
    Voice,
    Video,
    File,
    Sticker,
    Animation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    pub kind: MediaKind,
    /// Platform media id (WhatsApp media id, Telegram `file_id`, Messenger
    /// `sticker_id`). Fetching needs the platform's API and a token.
    pub media_id: Option<String>,
    /// Direct URL where the platform gives one (Messenger attachments).
    /// Handed on, never fetched by the gateway.
    pub url: Option<String>,
    pub mime_type: Option<String>,
    pub caption: Option<String>,
    pub file_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    pub name: Option<String>,
    pub address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Contact {
    pub name: String,
    pub phones: Vec<String>,
    pub emails: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderItem {
    pub product_id: String,
    pub quantity: u32,
    pub item_price: Option<f64>,
    pub currency: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadKind {
    /// Messenger quick reply.
    QuickReply,
    /// Messenger postback (buttons, Get Started, persistent menu).
    Postback,
    /// WhatsApp template quick-reply button (`type: button`).
    TemplateButton,
    /// WhatsApp interactive reply button.
    ButtonReply,
    /// WhatsApp interactive list row.
    ListReply,
    /// Telegram inline keyboard callback.
    CallbackQuery,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayloadEvent {
    pub kind: PayloadKind,
    /// The machine payload the bot put on the option (may be empty when a
    /// platform omits it, e.g. standby postbacks).
    pub payload: String,
    /// The human title of the option, where given.
    pub title: Option<String>,
    /// The id of this tap's own message (Messenger quick reply / postback
    /// mid, WhatsApp wamid), where given.
    pub message_id: Option<String>,
    /// The id of the bot message whose option was tapped, where given.
    pub in_reply_to: Option<String>,
    /// Telegram `callback_query.id`: must be answered with
    /// `OutboundBody::AnswerCallback` or the client shows a spinner.
    pub callback_id: Option<String>,
    pub referral: Option<Referral>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    /// The message reacted to.
    pub message_id: String,
    /// The emoji; `None` when the reaction was removed.
    pub emoji: Option<String>,
    pub removed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Referral {
    /// `ref` parameter of an m.me link, or the Telegram `/start` payload.
    pub reference: Option<String>,
    /// `SHORTLINK`, `ADS`, `CUSTOMER_CHAT_PLUGIN`, WhatsApp `source_type`...
    pub source: Option<String>,
    pub ad_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    Delivered,
    Read,
}

/// Messenger receipts: everything sent at or before `watermark` (ms) was
/// delivered/read; `message_ids` lists mids where the platform gives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub kind: ReceiptKind,
    pub watermark_ms: Option<i64>,
    pub message_ids: Vec<String>,
}

/// Ranks let the gateway refuse downgrades: statuses arrive out of order
/// (delivered before sent), `failed` is terminal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusKind {
    Sent,
    Delivered,
    Read,
    Played,
    Failed,
    Deleted,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformErrorInfo {
    pub code: i64,
    pub title: Option<String>,
    pub details: Option<String>,
}

/// WhatsApp status of a message the business sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryStatus {
    pub message_id: String,
    pub status: StatusKind,
    pub errors: Vec<PlatformErrorInfo>,
    /// `conversation.expiration_timestamp` in ms, where given.
    pub window_expires_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Membership {
    /// A private chat's user blocked the bot: stop sending.
    BotBlocked,
    BotUnblocked,
    AddedToGroup,
    RemovedFromGroup,
    /// Any other change, with the new status as the platform names it.
    Changed {
        status: String,
    },
}
