//! The shop assistant: what customers talk to.
//!
//! Owns the shop data ([`shop`]), understanding of customer text ([`nlu`]),
//! the dialogues as a pure step function ([`assistant`]), the conversation
//! state they keep ([`state`]), the reply texts ([`texts`]), the guards that
//! keep personal data out of replies, state and logs ([`guards`]), the
//! one-time-code rules for account linking ([`otp`]), the shop backend
//! contract with its in-memory demo ([`backend`]) and the eval of the
//! understanding ([`eval`]).
//!
//! It must not do I/O, read clocks or draw random numbers: time and random
//! bytes are inputs, backend calls and hand-offs are effects the gateway
//! carries out. It knows platforms only through the declared
//! [`model::Capabilities`].

pub use switchboard_model as model;

pub mod assistant;
pub mod backend;
pub mod eval;
pub mod guards;
pub mod nlu;
pub mod otp;
pub mod shop;
pub mod state;
pub mod texts;

pub use assistant::{
    Assistant, AssistantSettings, Effect, EffectResult, HandoffSummary, Input, LinkCodeFailure,
    Step, StepContext,
};
pub use state::ConversationState;
