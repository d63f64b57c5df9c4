//! End-to-end tests: the real gateway, real HTTP, platform APIs faked on
//! loopback. One binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod abuse;
mod admin;
mod bad_input;
mod channels;
mod config_docs;
mod console_browser;
mod conversation;
mod deploy;
mod erasure;
mod fixtures;
mod handoff;
mod observability;
mod redis;
mod routing;
mod secrets;
mod sending;
mod shutdown;
mod tls;
mod webhooks;
