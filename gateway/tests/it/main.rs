//! Tests of the `switchboard` binary as processes: its command line, and
//! several replicas sharing one Redis (crashes, restarts, ordering).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli;
mod replicas;
mod simulate;
