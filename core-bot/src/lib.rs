//! The shop assistant (in progress).

pub use switchboard_model as model;

pub mod backend;
pub mod eval;
pub mod guards;
pub mod nlu;
pub mod otp;
pub mod shop;
pub mod texts;
