//! The Switchboard gateway: configuration, HTTP listeners (webhooks, admin,
//! sandbox), the inbound pipeline, the store, the outbound sender, metrics
//! and the command-line tools (`serve`, `chat`, `bot eval`).
//!
//! It owns every side effect in the system: sockets, clocks, randomness and
//! storage. It must not know any platform's JSON (that is the adapters'
//! business) nor decide what to say (that is the assistant's).

// Wiring types hold clients, tasks and trait objects; a Debug for them
// would print nothing useful (and risk printing secrets).
#![allow(missing_debug_implementations)]

pub mod admin;
pub mod backend_http;
pub mod channels;
pub mod chat;
pub mod cli;
pub mod config;
pub mod console;
pub mod digest;
pub mod effects;
pub mod handoff;
pub mod healthcheck;
pub mod lanes;
pub mod metrics;
pub mod otel;
pub mod pipeline;
pub mod queue;
pub mod ratelimit;
pub mod registry;
pub mod request_id;
pub mod routes;
pub mod sandbox;
pub mod sender;
pub mod simulate;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod webhook;
