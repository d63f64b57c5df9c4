//! The assistant: a pure step function from (conversation state, input,
//! context) to (new state, replies, effects).
//!
//! It does no I/O and reads no clock: time comes in [`StepContext::now_ms`],
//! backend calls and account linking go out as [`Effect`]s, and their
//! results come back as [`Input::Effect`]. Replies are [`OutboundBody`]
//! values within the platform's declared [`Capabilities`].
//!
//! Architecture Invariant: personal data (order details, addresses, emails)
//! reaches a reply only for a conversation linked to the account that owns
//! it, by the same platform user, and then only masked.

mod flows;
mod hours;
mod turn;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::backend::{BackendError, BackendRequest, BackendResponse, CartLine};
use crate::model::{Capabilities, ConversationKey, InboundEvent, OutboundBody};
use crate::nlu::Lexicon;
use crate::otp::LinkFailure;
use crate::shop::Shop;
use crate::state::{
    ConversationState, DEFAULT_IDLE_TTL_MS, DEFAULT_LINK_IDLE_MS, HandoffReason, STATE_VERSION,
    TRANSCRIPT_LINES, TranscriptLine,
};

use turn::Turn;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssistantSettings {
    /// Idle time after which a conversation's state is forgotten.
    pub state_idle_ttl_ms: i64,
    /// Idle time after which an account link lapses.
    pub link_idle_ms: i64,
    /// Transcript lines kept for hand-off summaries.
    pub transcript_lines: usize,
}

impl Default for AssistantSettings {
    fn default() -> Self {
        Self {
            state_idle_ttl_ms: DEFAULT_IDLE_TTL_MS,
            link_idle_ms: DEFAULT_LINK_IDLE_MS,
            transcript_lines: TRANSCRIPT_LINES,
        }
    }
}

/// What the gateway knows about the turn that the assistant may not invent.
#[derive(Debug, Clone, Copy)]
pub struct StepContext<'a> {
    pub now_ms: i64,
    pub capabilities: &'a Capabilities,
    pub conversation: &'a ConversationKey,
    /// The platform user who sent the input (for effect results: the user
    /// whose message caused the effect).
    pub sender_id: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Event(InboundEvent),
    Effect(EffectResult),
    /// A person ended the hand-off (admin API); the bot answers again.
    HandoffEnded,
    /// A person takes the conversation over without the bot having handed
    /// it off: the bot falls silent (saying nothing) and asks for the
    /// hand-off record with [`Effect::Handoff`]. Untouched when a person
    /// already has it.
    AgentTookOver,
}

/// The outcome of one step. `state` replaces the stored state (the gateway
/// deletes it instead after [`Effect::EraseUserData`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub state: ConversationState,
    pub replies: Vec<OutboundBody>,
    pub effects: Vec<Effect>,
}

/// Work only the gateway can do. Each result is fed back as
/// [`Input::Effect`] for the same conversation.
#[derive(Clone, PartialEq, Eq)]
pub enum Effect {
    /// Run against the shop backend; feed back [`EffectResult::Backend`].
    Backend(BackendRequest),
    /// Resolve `identifier` (email or order number) with
    /// `BackendRequest::ResolveAccount`, refuse while `otp::may_issue` says
    /// the account is locked, issue a code with `otp::issue` bound
    /// to this conversation and sender, store the record under the account
    /// (replacing any older one), remember which account this conversation
    /// asked for, send the code with `BackendRequest::SendLinkCode`, and feed
    /// back [`EffectResult::LinkCodeIssued`] or [`EffectResult::LinkCodeFailed`].
    IssueLinkCode { identifier: String },
    /// Run `otp::check` on the record of the account this conversation asked
    /// a code for, with this conversation and sender; feed back
    /// [`EffectResult::Linked`] or [`EffectResult::LinkCodeFailed`]. The
    /// code is never stored.
    CheckLinkCode { code: String },
    /// Hand the conversation to a person; the bot stays silent until
    /// [`Input::HandoffEnded`] or the shop's resume time.
    Handoff { summary: HandoffSummary },
    /// Erase the conversation's state and everything stored about this user
    /// in it (link codes, transcripts, dead letters), then feed back
    /// [`EffectResult::Erased`] with a fresh state.
    EraseUserData,
}

impl fmt::Debug for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::Backend(request) => f.debug_tuple("Backend").field(request).finish(),
            Effect::IssueLinkCode { .. } => f.write_str("IssueLinkCode { identifier: [REDACTED] }"),
            Effect::CheckLinkCode { .. } => f.write_str("CheckLinkCode { code: [REDACTED] }"),
            Effect::Handoff { summary } => f
                .debug_struct("Handoff")
                .field("reason", &summary.reason)
                .finish_non_exhaustive(),
            Effect::EraseUserData => f.write_str("EraseUserData"),
        }
    }
}

/// What a person taking over needs to know. Customer text in it is masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffSummary {
    pub reason: HandoffReason,
    pub customer_name: Option<String>,
    /// Set when the conversation is verified.
    pub linked_account: Option<String>,
    pub last_order: Option<String>,
    pub cart: Vec<CartLine>,
    pub transcript: Vec<TranscriptLine>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EffectResult {
    Backend(Result<BackendResponse, BackendError>),
    LinkCodeIssued { destination_masked: String },
    LinkCodeFailed(LinkCodeFailure),
    Linked { account_id: String },
    Erased,
}

/// Why linking did not go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LinkCodeFailure {
    #[error(transparent)]
    Code(LinkFailure),
    /// No account has that email address or order number.
    #[error("no account matches")]
    UnknownAccount,
    /// No code was issued for this conversation (or it was replaced).
    #[error("no code is pending for this conversation")]
    NoPendingCode,
    /// The backend could not be reached or refused to send.
    #[error("the code could not be sent")]
    Unavailable,
    /// The account (or this conversation) was sent as many codes as the
    /// hourly cap allows: asking again must not flood the customer's phone
    /// or mailbox.
    #[error("too many codes sent recently")]
    TooManyCodes,
}

impl From<LinkFailure> for LinkCodeFailure {
    fn from(failure: LinkFailure) -> Self {
        LinkCodeFailure::Code(failure)
    }
}

/// The shop assistant for one shop. Cheap to share: hold it in an `Arc`.
#[derive(Debug)]
pub struct Assistant {
    shop: Arc<Shop>,
    settings: AssistantSettings,
    lexicon: Lexicon,
}

impl Assistant {
    pub fn new(shop: Arc<Shop>, settings: AssistantSettings) -> Self {
        let lexicon = Lexicon::new(&shop);
        Self {
            shop,
            settings,
            lexicon,
        }
    }

    pub fn shop(&self) -> &Shop {
        &self.shop
    }

    pub fn settings(&self) -> &AssistantSettings {
        &self.settings
    }

    /// One turn. Never fails: anything unexpected gets a polite answer.
    pub fn step(&self, state: ConversationState, input: &Input, ctx: &StepContext<'_>) -> Step {
        let state = if state.version != STATE_VERSION
            || state.is_expired(ctx.now_ms, self.settings.state_idle_ttl_ms)
        {
            ConversationState::new(ctx.now_ms)
        } else {
            state
        };
        match input {
            Input::Event(event) => {
                if !event.is_from_customer() || event.sender.is_bot {
                    // Receipts, statuses, echoes, reactions, membership and
                    // unknown shapes are never answered and change nothing.
                    return Step {
                        state,
                        replies: Vec::new(),
                        effects: Vec::new(),
                    };
                }
                let mut turn = Turn::new(self, ctx, state);
                flows::on_event(&mut turn, event);
                turn.finish()
            }
            Input::Effect(result) => {
                let mut turn = Turn::new(self, ctx, state);
                flows::on_effect(&mut turn, result);
                turn.finish()
            }
            Input::HandoffEnded => {
                let mut turn = Turn::new(self, ctx, state);
                flows::on_handoff_ended(&mut turn);
                turn.finish()
            }
            Input::AgentTookOver => {
                let mut turn = Turn::new(self, ctx, state);
                flows::on_agent_took_over(&mut turn);
                turn.finish()
            }
        }
    }
}
