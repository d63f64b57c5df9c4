//! End-to-end tests: the real gateway, real HTTP, platform APIs faked on
//! loopback. One binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod admin;
mod bad_input;
mod channels;
mod conversation;
mod fixtures;
mod observability;
mod redis;
mod routing;
mod secrets;
mod sending;
mod shutdown;
mod webhooks;
