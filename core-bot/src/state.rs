//! Conversation state: what the assistant remembers between turns. Stored
//! by the gateway as JSON, versioned, and dropped after a long idle time.
//!
//! Architecture Invariant: state never holds a card number, a password or a
//! one-time code; customer text is masked before it gets here.

use serde::{Deserialize, Serialize};

use crate::backend::{CartLine, OrderLine};
use crate::nlu::DayRef;

/// Bump when the shape changes incompatibly; older states are started afresh.
pub const STATE_VERSION: u32 = 1;
/// Conversations idle this long are forgotten.
pub const DEFAULT_IDLE_TTL_MS: i64 = 30 * 24 * 60 * 60 * 1000;
/// A verified link lapses after this long without a message from its user.
pub const DEFAULT_LINK_IDLE_MS: i64 = 30 * 60 * 1000;
/// Transcript lines kept for hand-off summaries.
pub const TRANSCRIPT_LINES: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationState {
    pub version: u32,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub last_customer_message_ms: Option<i64>,
    pub dialogue: Dialogue,
    pub context: Context,
    pub cart: Vec<CartLine>,
    pub link: Option<LinkStatus>,
    /// A code was requested in this conversation and not yet used.
    pub pending_link: Option<PendingLink>,
    /// An effect whose result the assistant is waiting for.
    pub pending: Option<PendingEffect>,
    pub handoff: Option<HandoffStatus>,
    /// The options of the last reply, so "2" picks the second.
    pub offered: Vec<OfferedOption>,
    /// Recent lines, masked, for a person taking over.
    pub transcript: Vec<TranscriptLine>,
    /// Consecutive messages the assistant did not understand.
    pub misunderstood: u32,
}

impl ConversationState {
    pub fn new(now_ms: i64) -> Self {
        Self {
            version: STATE_VERSION,
            created_ms: now_ms,
            updated_ms: now_ms,
            last_customer_message_ms: None,
            dialogue: Dialogue::Idle,
            context: Context::default(),
            cart: Vec::new(),
            link: None,
            pending_link: None,
            pending: None,
            handoff: None,
            offered: Vec::new(),
            transcript: Vec::new(),
            misunderstood: 0,
        }
    }

    /// Whether the state has been idle for `idle_ttl_ms` or more.
    pub fn is_expired(&self, now_ms: i64, idle_ttl_ms: i64) -> bool {
        now_ms.saturating_sub(self.updated_ms) >= idle_ttl_ms
    }

    /// Whether a person has taken over and the bot must stay silent.
    pub fn is_handed_off(&self) -> bool {
        self.handoff.is_some()
    }

    /// The account linked for `user_id` at `now_ms`, if the link is live.
    pub fn linked_account(&self, user_id: &str, now_ms: i64) -> Option<&str> {
        self.link
            .as_ref()
            .filter(|link| link.user_id == user_id && now_ms < link.linked_until_ms)
            .map(|link| link.account_id.as_str())
    }

    /// Ends a hand-off; the bot answers again from the next message.
    pub fn end_handoff(&mut self) {
        self.handoff = None;
        self.dialogue = Dialogue::Idle;
    }

    pub fn cart_total_minor(&self) -> u64 {
        self.cart
            .iter()
            .map(|line| {
                line.unit_price_minor
                    .saturating_mul(u64::from(line.quantity))
            })
            .sum()
    }

    pub(crate) fn remember(&mut self, line: TranscriptLine, keep: usize) {
        self.transcript.push(line);
        if self.transcript.len() > keep {
            let excess = self.transcript.len() - keep;
            self.transcript.drain(..excess);
        }
    }
}

/// What the last few turns were about, for "is it in stock?".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    pub last_product: Option<String>,
    pub last_size: Option<String>,
    pub last_store: Option<String>,
    pub last_order: Option<String>,
}

/// A verified link between this conversation and a shop account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStatus {
    pub account_id: String,
    /// The platform user who proved it; nobody else in the chat uses it.
    pub user_id: String,
    pub linked_ms: i64,
    /// Pushed forward by each message of that user.
    pub linked_until_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLink {
    pub user_id: String,
    pub requested_ms: i64,
    /// Where the code went, masked; `None` until the gateway confirms.
    pub destination_masked: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffStatus {
    pub since_ms: i64,
    pub reason: HandoffReason,
    /// The bot answers again from here on if nobody ended the hand-off.
    pub resume_after_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoffReason {
    /// The customer asked for a person.
    Requested,
    /// After a complaint.
    Complaint,
    /// The assistant kept failing to understand.
    NotUnderstood,
    /// Verification was locked or failed.
    Verification,
    /// A person took the conversation over unasked (console or admin API).
    Agent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferedOption {
    pub title: String,
    pub payload: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    Customer,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptLine {
    pub at_ms: i64,
    pub from: Speaker,
    pub text: String,
}

/// The dialogue in progress and the slots it still needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Dialogue {
    #[default]
    Idle,
    /// Asked which store, for hours or location.
    ChooseStore {
        purpose: StorePurpose,
    },
    /// Checking stock; asks for what is missing, in this order.
    Stock {
        sku: Option<String>,
        size: Option<String>,
        store: Option<String>,
    },
    Purchase {
        sku: Option<String>,
        size: Option<String>,
        quantity: u32,
    },
    /// Asked for an order number.
    OrderNumber {
        purpose: OrderPurpose,
    },
    Refund(RefundDraft),
    Linking {
        stage: LinkStage,
        /// What to carry on with once verified.
        resume: Option<Resume>,
    },
    Complaint {
        stage: ComplaintStage,
    },
    /// Asked "are you sure?" before erasing.
    ConfirmErase,
    /// Offered a person after repeated misunderstandings.
    OfferPerson,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StorePurpose {
    Hours { day: Option<DayRef> },
    Location,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderPurpose {
    Status,
    Refund,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkStage {
    /// Asked for an email address or order number.
    AwaitingIdentifier,
    /// A code went out; waiting for the customer to type it.
    AwaitingCode,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resume {
    Refund { order_number: Option<String> },
    OrderDetails { order_number: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComplaintStage {
    AwaitingText,
    OfferPerson,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundDraft {
    pub order_number: Option<String>,
    /// The order's items, once fetched for the verified owner.
    pub items: Vec<OrderLine>,
    /// Sku of the chosen item.
    pub item: Option<String>,
    /// Reason code (`damaged`, ...) or `other: <masked text>`.
    pub reason: Option<String>,
    pub stage: RefundStage,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStage {
    #[default]
    AwaitingOrder,
    AwaitingItem,
    AwaitingReason,
    AwaitingConfirmation,
}

/// The effect the assistant waits on, so a result (or failure) is read in
/// the right light.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PendingEffect {
    OrderStatus {
        order_number: String,
    },
    OrderDetails {
        order_number: String,
        for_refund: bool,
    },
    Refund,
    Checkout,
    Complaint,
    IssueLinkCode,
    CheckLinkCode,
    Erase,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_json_with_its_version() {
        let mut state = ConversationState::new(1_000);
        state.dialogue = Dialogue::Stock {
            sku: Some("JKT-RAIN".into()),
            size: None,
            store: None,
        };
        let json = serde_json::to_value(&state).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["dialogue"]["kind"], "stock");
        let back: ConversationState = serde_json::from_value(json).unwrap();
        assert_eq!(back, state);
    }

    #[test]
    fn state_expires_after_the_idle_ttl() {
        let state = ConversationState::new(0);
        assert!(!state.is_expired(DEFAULT_IDLE_TTL_MS - 1, DEFAULT_IDLE_TTL_MS));
        assert!(state.is_expired(DEFAULT_IDLE_TTL_MS, DEFAULT_IDLE_TTL_MS));
    }

    #[test]
    fn a_link_serves_only_its_user_and_only_while_fresh() {
        let mut state = ConversationState::new(0);
        state.link = Some(LinkStatus {
            account_id: "acc-1".into(),
            user_id: "u1".into(),
            linked_ms: 0,
            linked_until_ms: 100,
        });
        assert_eq!(state.linked_account("u1", 50), Some("acc-1"));
        assert_eq!(state.linked_account("u2", 50), None);
        assert_eq!(state.linked_account("u1", 100), None);
    }
}
