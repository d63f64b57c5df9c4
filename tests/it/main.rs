//! End-to-end tests: the real gateway, real HTTP, platform APIs faked on
//! loopback. One binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod admin;
mod channels;
mod conversation;
mod fixtures;
mod redis;
mod routing;
mod sending;
mod shutdown;
mod webhooks;
