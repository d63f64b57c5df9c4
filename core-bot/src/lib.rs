//! The shop assistant (in progress).

pub use switchboard_model as model;

pub mod backend;
pub mod guards;
pub mod otp;
pub mod shop;
pub mod texts;
