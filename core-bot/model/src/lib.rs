//! The adapter contract: the boundary every part of Switchboard meets at.
//!
//! This crate owns the normalised message model ([`InboundEvent`],
//! [`OutboundMessage`]), the identifiers that key conversations
//! ([`ConversationKey`]), the declared [`Capabilities`] of a platform, the
//! [`PlatformAdapter`] trait and the typed proof of authenticity
//! ([`VerifiedWebhook`]) that `parse` demands.
//!
//! It must not know any platform's JSON, open sockets, read clocks or
//! environment variables: adapters and the assistant depend on it, never the
//! other way round. Keep it small enough to read in one sitting.

mod adapter;
mod capabilities;
mod error;
mod event;
mod ids;
mod outbound;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;

pub use adapter::{HandshakeQuery, Headers, PlatformAdapter, RawWebhook, VerifiedWebhook, verify};
pub use capabilities::{Capabilities, Formatting};
pub use error::{HandshakeError, ParseError, RenderError, VerifyError};
pub use event::{
    Command, Contact, DeliveryStatus, EventKind, InboundEvent, Location, Media, MediaKind,
    Membership, Message, MessageContent, OrderItem, PayloadEvent, PayloadKind, PlatformErrorInfo,
    Reaction, Receipt, ReceiptKind, Referral, Sender, StatusKind,
};
pub use ids::{ChannelId, ChatId, ConversationKey, EventId, InvalidChannelId, Platform};
pub use outbound::{
    ChoiceOption, ChoiceStyle, HttpMethod, OutboundBody, OutboundMediaKind, OutboundMessage,
    PlatformRequest, RequestAuth, SendFailure, SendOutcome,
};

/// Re-exported so adapters and the gateway name one secret type.
pub use secrecy::{ExposeSecret, SecretString};
