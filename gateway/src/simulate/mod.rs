//! `switchboard simulate`: stands in for Telegram, Messenger and WhatsApp at
//! once, for load tests and for developers. It sends correctly signed
//! webhooks to a gateway (a mix of platforms, texts, button taps and
//! locations, with duplicates, out-of-order deliveries, batched Meta POSTs
//! and retries after a timeout), serves fake send APIs that answer like the
//! platforms (with 429s, 5xx, WhatsApp 131047 and "bot was blocked" at
//! configurable rates), and checks every reply against what was sent.
//!
//! Correlation: each tracked event asks for an order whose number is a
//! unique token; the assistant's answer names it. A chat's webhooks go out
//! one at a time, so delivery order within a chat is known and replies must
//! follow it. The simulator must not know the gateway's internals: it sees
//! only HTTP, like a platform.

mod platform;
mod stats;
mod traffic;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::{App, HttpServer, web};
use clap::{Args, FromArgMatches};
use switchboard_model::Platform;

pub use platform::Faults;
pub use stats::Histogram;
use stats::Ledger;
use traffic::{Action, Event, Target};

use crate::cli::PlatformArg;
use crate::config::demo;

#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Public URL of the gateway under test.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
    /// Where the fake send APIs listen. Point the gateway at it:
    /// SWITCHBOARD__PLATFORMS__TELEGRAM__API_BASE=http://ADDR/telegram (and
    /// .../messenger, .../whatsapp) with SWITCHBOARD__SANDBOX__ENABLED=false.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub listen: SocketAddr,
    /// Webhooks per second to offer (0: as fast as the connections go).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds of sending (the drain comes after).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Webhooks in flight at once.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Simulated chats (customers). Each sends one webhook at a time.
    #[arg(long, default_value_t = 1000)]
    pub chats: u32,
    /// Platforms to simulate, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "telegram,messenger,whatsapp"
    )]
    pub platforms: Vec<PlatformArg>,
    /// Share of events that are button taps (untracked: their answers name no token).
    #[arg(long, default_value_t = 0.05)]
    pub taps: f64,
    /// Share of events that are shared locations (untracked).
    #[arg(long, default_value_t = 0.05)]
    pub locations: f64,
    /// Probability that a chat's previous webhook is delivered again (a platform retry).
    #[arg(long, default_value_t = 0.0)]
    pub duplicates: f64,
    /// Probability that two new events of a chat are delivered in reverse order.
    #[arg(long, default_value_t = 0.0)]
    pub out_of_order: f64,
    /// Probability that a Meta POST carries two or three of the chat's events.
    #[arg(long, default_value_t = 0.0)]
    pub batches: f64,
    /// Probability that an acknowledged webhook is sent again at once, as a
    /// platform does when the acknowledgement came too late.
    #[arg(long, default_value_t = 0.0)]
    pub timeout_retries: f64,
    /// Probability of a 429 with retry-after on a send.
    #[arg(long, default_value_t = 0.0)]
    pub fault_429: f64,
    /// Probability of a 502 on a send.
    #[arg(long, default_value_t = 0.0)]
    pub fault_5xx: f64,
    /// Probability of WhatsApp 131047 (outside the window) on a reply.
    #[arg(long, default_value_t = 0.0)]
    pub fault_window: f64,
    /// Probability of Telegram 403 "bot was blocked by the user" on a reply.
    #[arg(long, default_value_t = 0.0)]
    pub fault_blocked: f64,
    /// Shorthand: 1% duplicates, reordering, timeouts and each fault, 10% batches.
    #[arg(long)]
    pub faults: bool,
    /// Seconds to wait for outstanding replies after sending stops.
    #[arg(long, default_value_t = 15.0)]
    pub drain: f64,
    /// How long a webhook may take before it is sent again (ms).
    #[arg(long, default_value_t = 5000)]
    pub webhook_timeout_ms: u64,
    #[arg(long, default_value = demo::TELEGRAM_CHANNEL)]
    pub telegram_channel: String,
    #[arg(long, default_value = demo::MESSENGER_CHANNEL)]
    pub messenger_channel: String,
    #[arg(long, default_value = demo::WHATSAPP_CHANNEL)]
    pub whatsapp_channel: String,
    /// Telegram secret token (default: the demo channel's).
    #[arg(long, env = "SIMULATE_TELEGRAM_SECRET", hide_env_values = true)]
    pub telegram_secret: Option<String>,
    /// Messenger app secret (default: the demo channel's).
    #[arg(long, env = "SIMULATE_MESSENGER_SECRET", hide_env_values = true)]
    pub messenger_secret: Option<String>,
    /// WhatsApp app secret (default: the demo channel's).
    #[arg(long, env = "SIMULATE_WHATSAPP_SECRET", hide_env_values = true)]
    pub whatsapp_secret: Option<String>,
    #[arg(long, default_value = demo::MESSENGER_PAGE_ID)]
    pub messenger_page_id: String,
    #[arg(long, default_value = demo::WHATSAPP_PHONE_NUMBER_ID)]
    pub whatsapp_phone_number_id: String,
    /// Start `switchboard serve` (the demo channels, no sandbox, abuse limits
    /// lifted) pointed at the fake APIs, and stop it at the end.
    #[arg(long)]
    pub spawn_gateway: bool,
    /// With --spawn-gateway: the store URL (`memory`, `redis://...`).
    #[arg(long)]
    pub store: Option<String>,
    /// No live progress line.
    #[arg(long)]
    pub quiet: bool,
}

impl SimulateArgs {
    /// Parses `simulate` options (tests build them like the command line).
    pub fn from_args<I, T>(args: I) -> Result<SimulateArgs, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let command = <SimulateArgs as Args>::augment_args(clap::Command::new("simulate"));
        let matches = command.try_get_matches_from(
            std::iter::once(std::ffi::OsString::from("simulate"))
                .chain(args.into_iter().map(Into::into)),
        )?;
        SimulateArgs::from_arg_matches(&matches)
    }

    fn resolved(mut self) -> SimulateArgs {
        if self.faults {
            for rate in [
                &mut self.duplicates,
                &mut self.out_of_order,
                &mut self.timeout_retries,
                &mut self.fault_429,
                &mut self.fault_5xx,
                &mut self.fault_window,
                &mut self.fault_blocked,
            ] {
                if *rate == 0.0 {
                    *rate = 0.01;
                }
            }
            if self.batches == 0.0 {
                self.batches = 0.1;
            }
        }
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("cannot listen on {addr} for the fake platform APIs: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("cannot start the gateway: {0}")]
    Spawn(std::io::Error),
    #[error("the gateway did not become healthy at {0} within 20 s")]
    GatewayNotHealthy(String),
    #[error("nothing to simulate: {0}")]
    Nothing(&'static str),
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    /// Answered 503/429 (backpressure) and sent again later.
    pub backpressure: AtomicU64,
    /// Answered something other than 2xx/503/429: given up.
    pub rejected: AtomicU64,
    pub timeouts: AtomicU64,
    pub transport_errors: AtomicU64,
    pub duplicates: AtomicU64,
    pub reordered: AtomicU64,
    pub batched: AtomicU64,
    pub timeout_retries: AtomicU64,
    pub api_calls: AtomicU64,
    pub replies: AtomicU64,
    pub untracked_replies: AtomicU64,
    pub faults: AtomicU64,
}

#[derive(Debug, Default)]
pub(crate) struct Latencies {
    ack: Histogram,
    ack_window: Histogram,
    reply: Histogram,
    reply_window: Histogram,
}

impl Latencies {
    fn record_ack(&mut self, latency: Duration) {
        self.ack.record(latency);
        self.ack_window.record(latency);
    }

    pub(crate) fn record_reply(&mut self, latency: Duration) {
        self.reply.record(latency);
        self.reply_window.record(latency);
    }
}

pub(crate) struct Shared {
    pub counters: Counters,
    pub started: Instant,
    /// Microseconds from `started` to the latest tracked reply.
    pub last_reply_us: AtomicU64,
    pub faults: Faults,
    ledger: Mutex<Ledger>,
    latencies: Mutex<Latencies>,
}

impl Shared {
    pub(crate) fn lock_ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn lock_latencies(&self) -> MutexGuard<'_, Latencies> {
        self.latencies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct Report {
    pub elapsed: Duration,
    pub sent: u64,
    pub acked: u64,
    pub backpressure: u64,
    pub rejected: u64,
    pub timeouts: u64,
    pub transport_errors: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub batched: u64,
    pub timeout_retries: u64,
    pub replies: u64,
    /// From the start to the last tracked reply: what `replies` took.
    pub reply_span: Duration,
    pub untracked_replies: u64,
    pub refused_on_purpose: u64,
    pub faults: u64,
    pub ack: Histogram,
    pub reply: Histogram,
    /// Acknowledged tracked events with no reply after the drain.
    pub never_answered: u64,
    pub answered_twice: u64,
    pub out_of_order: u64,
    /// Peak RSS of a gateway started with --spawn-gateway (kB, VmHWM).
    pub gateway_peak_rss_kb: Option<u64>,
    /// Time from spawning the gateway to its first healthy answer.
    pub gateway_startup: Option<Duration>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.never_answered == 0 && self.answered_twice == 0 && self.out_of_order == 0
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        #[allow(clippy::cast_precision_loss)]
        let per_sec = |n: u64| n as f64 / secs;
        writeln!(f, "sending time        {:.1} s", secs)?;
        writeln!(
            f,
            "webhooks            sent {} ({:.0}/s), acknowledged {} ({:.0}/s)",
            self.sent,
            per_sec(self.sent),
            self.acked,
            per_sec(self.acked)
        )?;
        writeln!(
            f,
            "                    503/429 backpressure {}, rejected {}, timeouts {}, transport errors {}",
            self.backpressure, self.rejected, self.timeouts, self.transport_errors
        )?;
        writeln!(
            f,
            "injected            duplicates {}, reordered pairs {}, batched POSTs {}, retries after timeout {}, API faults {}",
            self.duplicates, self.reordered, self.batched, self.timeout_retries, self.faults
        )?;
        writeln!(
            f,
            "ack latency         p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
            ms(self.ack.percentile(0.5)),
            ms(self.ack.percentile(0.99)),
            ms(self.ack.percentile(0.999))
        )?;
        writeln!(
            f,
            "replies             tracked {} ({:.0}/s until the last, at {:.1} s), refused on purpose {}, untracked {}",
            self.replies,
            self.replies as f64 / self.reply_span.as_secs_f64().max(1e-9),
            self.reply_span.as_secs_f64(),
            self.refused_on_purpose,
            self.untracked_replies
        )?;
        writeln!(
            f,
            "end-to-end latency  p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
            ms(self.reply.percentile(0.5)),
            ms(self.reply.percentile(0.99)),
            ms(self.reply.percentile(0.999))
        )?;
        if let Some(startup) = self.gateway_startup {
            writeln!(f, "gateway start-up    {:.1} ms", ms(startup))?;
        }
        if let Some(rss) = self.gateway_peak_rss_kb {
            writeln!(f, "gateway peak RSS    {:.1} MB", rss as f64 / 1024.0)?;
        }
        writeln!(
            f,
            "correctness         acknowledged but never answered {}, answered twice {}, out of order {}",
            self.never_answered, self.answered_twice, self.out_of_order
        )?;
        write!(f, "{}", if self.is_clean() { "CLEAN" } else { "FAILED" })
    }
}

/// One simulated customer.
struct Chat {
    index: u32,
    target: Arc<Target>,
    id: String,
    previous: Option<Vec<u8>>,
}

struct Driver {
    shared: Arc<Shared>,
    args: SimulateArgs,
    run: u64,
    client: reqwest::Client,
    gateway: String,
    next_id: AtomicU64,
    token_base: u64,
    started: Instant,
    stop: AtomicBool,
    chats: Mutex<VecDeque<Chat>>,
}

/// Tokens are eight digits: the order numbers the customers ask about.
const TOKEN_SPACE: u64 = 90_000_000;

impl Driver {
    fn new_event(&self, action: fn(u64) -> Action) -> Event {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let token = 10_000_000 + (self.token_base + id) % TOKEN_SPACE;
        Event {
            id,
            action: action(token),
            at_ms: crate::sender::now_ms(),
        }
    }

    fn pick_action(&self) -> fn(u64) -> Action {
        let roll = fastrand::f64();
        if roll < self.args.taps {
            |_| Action::Tap
        } else if roll < self.args.taps + self.args.locations {
            |_| Action::Share {
                lat: 52.37,
                lon: 4.89,
            }
        } else {
            |token| Action::Ask { token }
        }
    }

    fn take_chat(&self) -> Option<Chat> {
        self.chats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop_front()
    }

    fn return_chat(&self, chat: Chat) {
        self.chats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_back(chat);
    }

    /// One step of one chat: maybe a duplicate, then new events.
    async fn turn(&self, chat: &mut Chat) {
        let counters = &self.shared.counters;
        if let Some(previous) = chat.previous.clone()
            && fastrand::f64() < self.args.duplicates
        {
            counters.duplicates.fetch_add(1, Ordering::Relaxed);
            self.deliver(chat, &previous, &[]).await;
        }
        let meta = chat.target.platform != Platform::Telegram;
        let roll = fastrand::f64();
        if roll < self.args.out_of_order {
            counters.reordered.fetch_add(1, Ordering::Relaxed);
            let first = self.new_event(|token| Action::Ask { token });
            let second = self.new_event(|token| Action::Ask { token });
            for event in [second, first] {
                let body = traffic::body(&chat.target, self.run, &chat.id, &[event]);
                self.deliver(chat, &body, &[event]).await;
                chat.previous = Some(body);
            }
        } else if meta && roll < self.args.out_of_order + self.args.batches {
            counters.batched.fetch_add(1, Ordering::Relaxed);
            let count = 2 + fastrand::usize(0..2);
            let events: Vec<Event> = (0..count)
                .map(|_| self.new_event(self.pick_action()))
                .collect();
            let body = traffic::body(&chat.target, self.run, &chat.id, &events);
            self.deliver(chat, &body, &events).await;
            chat.previous = Some(body);
        } else {
            let event = self.new_event(self.pick_action());
            let body = traffic::body(&chat.target, self.run, &chat.id, &[event]);
            self.deliver(chat, &body, &[event]).await;
            chat.previous = Some(body);
        }
    }

    /// Sends one POST until the gateway takes it, as a platform would:
    /// backpressure and timeouts are retried, the first attempt's time is
    /// the events' sending time.
    async fn deliver(&self, chat: &Chat, body: &[u8], events: &[Event]) {
        let counters = &self.shared.counters;
        let first_attempt = Instant::now();
        {
            let mut ledger = self.shared.lock_ledger();
            for token in events.iter().filter_map(|e| e.action.token()) {
                ledger.sent(token, chat.index, first_attempt);
            }
        }
        let url = format!(
            "{}/webhooks/{}/{}",
            self.gateway, chat.target.platform, chat.target.channel
        );
        let (header, value) = traffic::auth_header(&chat.target, body);
        let mut extra_retry = fastrand::f64() < self.args.timeout_retries;
        for _attempt in 0..100 {
            counters.sent.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let response = self
                .client
                .post(&url)
                .header("Content-Type", "application/json")
                .header(header, &value)
                .body(body.to_vec())
                .send()
                .await;
            match response {
                Ok(response) if response.status().is_success() => {
                    counters.acked.fetch_add(1, Ordering::Relaxed);
                    self.shared.lock_latencies().record_ack(started.elapsed());
                    let mut ledger = self.shared.lock_ledger();
                    for token in events.iter().filter_map(|e| e.action.token()) {
                        ledger.acked(token);
                    }
                    drop(ledger);
                    if extra_retry {
                        // The platform did not see this 200 in time.
                        extra_retry = false;
                        counters.timeout_retries.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    return;
                }
                Ok(response)
                    if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE
                        || response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS =>
                {
                    counters.backpressure.fetch_add(1, Ordering::Relaxed);
                    let after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map_or(Duration::from_millis(100), Duration::from_secs);
                    // Platforms wait longer; a load test wants the work done.
                    tokio::time::sleep(
                        after.clamp(Duration::from_millis(20), Duration::from_secs(1)),
                    )
                    .await;
                }
                Ok(_) => {
                    counters.rejected.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(error) if error.is_timeout() => {
                    counters.timeouts.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    counters.transport_errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            if self.stop.load(Ordering::Relaxed) && self.started.elapsed() > self.hard_stop() {
                return;
            }
        }
    }

    fn hard_stop(&self) -> Duration {
        Duration::from_secs_f64(self.args.duration + self.args.drain)
    }

    async fn worker(self: Arc<Self>, worker: usize) {
        let interval = if self.args.rate > 0.0 {
            Some(Duration::from_secs_f64(
                self.args.connections as f64 / self.args.rate,
            ))
        } else {
            None
        };
        // Workers are staggered so the offered load is even.
        let mut next = self.started
            + interval.map_or(Duration::ZERO, |i| {
                i.mul_f64(worker as f64 / self.args.connections as f64)
            });
        loop {
            if let Some(interval) = interval {
                tokio::time::sleep_until(next.into()).await;
                next += interval;
            }
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let Some(mut chat) = self.take_chat() else {
                // Every chat is busy: fewer chats than connections.
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            };
            self.turn(&mut chat).await;
            self.return_chat(chat);
        }
    }
}

fn targets(args: &SimulateArgs) -> Vec<Arc<Target>> {
    let mut platforms: Vec<Platform> = args.platforms.iter().map(|p| (*p).into()).collect();
    platforms.dedup();
    platforms
        .into_iter()
        .map(|platform| {
            Arc::new(match platform {
                Platform::Telegram => Target {
                    platform,
                    channel: args.telegram_channel.clone(),
                    secret: args
                        .telegram_secret
                        .clone()
                        .unwrap_or_else(|| demo::TELEGRAM_SECRET_TOKEN.to_owned()),
                    account: String::new(),
                },
                Platform::Messenger => Target {
                    platform,
                    channel: args.messenger_channel.clone(),
                    secret: args
                        .messenger_secret
                        .clone()
                        .unwrap_or_else(|| demo::MESSENGER_APP_SECRET.to_owned()),
                    account: args.messenger_page_id.clone(),
                },
                Platform::WhatsApp => Target {
                    platform,
                    channel: args.whatsapp_channel.clone(),
                    secret: args
                        .whatsapp_secret
                        .clone()
                        .unwrap_or_else(|| demo::WHATSAPP_APP_SECRET.to_owned()),
                    account: args.whatsapp_phone_number_id.clone(),
                },
            })
        })
        .collect()
}

/// The fake APIs' server; stops when dropped.
pub struct FakeApis {
    pub addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
}

impl FakeApis {
    /// The `api_base` for `platform` on this server.
    pub fn base(&self, platform: Platform) -> String {
        format!("http://{}/{}", self.addr, platform)
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

fn serve_fakes(addr: SocketAddr, shared: Arc<Shared>) -> Result<FakeApis, SimulateError> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|source| SimulateError::Listen { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| SimulateError::Listen { addr, source })?;
    let data = web::Data::new(shared);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(1 << 20))
            .default_service(web::post().to(platform::handle))
    })
    .disable_signals()
    .workers(1)
    .backlog(4096)
    .max_connection_rate(4096)
    .listen(listener)
    .map_err(|source| SimulateError::Listen { addr, source })?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok(FakeApis {
        addr: bound,
        handle,
    })
}

/// A gateway process started for the run.
struct SpawnedGateway {
    child: std::process::Child,
    url: String,
    startup: Duration,
}

impl SpawnedGateway {
    fn peak_rss_kb(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for SpawnedGateway {
    /// Stops the gateway as an orchestrator would (SIGTERM, then a grace
    /// period): it drains and hands its Redis partition leases back, so a
    /// run right after this one on the same Redis does not wait for them to
    /// expire. SIGKILL only if it does not stop in time.
    fn drop(&mut self) {
        let asked = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if asked {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, SimulateError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(SimulateError::Spawn)
}

/// Lifts the gateway's anti-abuse limits (`[abuse]`), which a load test
/// from a few thousand simulated customers would trip, and the per-channel
/// and per-chat send rates (`[sender]`), which hold a real bot to the
/// platform's limits (30/s on Telegram, about 1/s per chat) but would
/// measure only those against the simulator: 20 000 chats at 1/s each cap
/// a run near 20 000 replies/s whatever the gateway could do.
pub const LIFT_ABUSE_LIMITS: [(&str, &str); 9] = [
    ("SWITCHBOARD__ABUSE__SENDER_MESSAGES_PER_MINUTE", "1000000"),
    ("SWITCHBOARD__ABUSE__SENDER_BURST", "1000000"),
    ("SWITCHBOARD__ABUSE__CHANNEL_MESSAGES_PER_SECOND", "1000000"),
    ("SWITCHBOARD__ABUSE__CHANNEL_BURST", "1000000"),
    ("SWITCHBOARD__SENDER__TELEGRAM_PER_SECOND", "100000"),
    ("SWITCHBOARD__SENDER__MESSENGER_PER_SECOND", "100000"),
    ("SWITCHBOARD__SENDER__WHATSAPP_PER_SECOND", "100000"),
    ("SWITCHBOARD__SENDER__CHAT_PER_SECOND", "100000"),
    ("SWITCHBOARD__SENDER__GROUP_PER_MINUTE", "6000000"),
];

/// The environment that points a demo gateway at the fake APIs.
pub fn gateway_env(fakes: SocketAddr) -> Vec<(String, String)> {
    let mut env = vec![(
        "SWITCHBOARD__SANDBOX__ENABLED".to_owned(),
        "false".to_owned(),
    )];
    for platform in [Platform::Telegram, Platform::Messenger, Platform::WhatsApp] {
        env.push((
            format!(
                "SWITCHBOARD__PLATFORMS__{}__API_BASE",
                platform.as_str().to_ascii_uppercase()
            ),
            format!("http://{fakes}/{platform}"),
        ));
    }
    env
}

async fn spawn_gateway(
    fakes: &FakeApis,
    store: Option<&str>,
    client: &reqwest::Client,
) -> Result<SpawnedGateway, SimulateError> {
    match spawn_gateway_with(fakes, store, client, true).await {
        Ok(gateway) => Ok(gateway),
        // A gateway without the `[abuse]` section refuses the keys that
        // lift it (unknown field); it has no such limits to lift.
        Err(SimulateError::GatewayNotHealthy(_)) => {
            spawn_gateway_with(fakes, store, client, false).await
        }
        Err(other) => Err(other),
    }
}

async fn spawn_gateway_with(
    fakes: &FakeApis,
    store: Option<&str>,
    client: &reqwest::Client,
    lift_abuse_limits: bool,
) -> Result<SpawnedGateway, SimulateError> {
    let (public, admin) = (free_port()?, free_port()?);
    let exe = std::env::current_exe().map_err(SimulateError::Spawn)?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("serve")
        .envs(gateway_env(fakes.addr))
        .env("SWITCHBOARD__SERVER__BIND", format!("127.0.0.1:{public}"))
        .env(
            "SWITCHBOARD__SERVER__ADMIN_BIND",
            format!("127.0.0.1:{admin}"),
        )
        .env("SWITCHBOARD__SERVER__LOG_LEVEL", "error")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    if let Some(store) = store {
        command.env("SWITCHBOARD__STORE__URL", store);
    }
    if lift_abuse_limits {
        command.envs(LIFT_ABUSE_LIMITS);
    }
    let started = Instant::now();
    let child = command.spawn().map_err(SimulateError::Spawn)?;
    let url = format!("http://127.0.0.1:{public}");
    let mut gateway = SpawnedGateway {
        child,
        url,
        startup: Duration::ZERO,
    };
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(response) = client.get(format!("{}/healthz", gateway.url)).send().await
            && response.status().is_success()
        {
            gateway.startup = started.elapsed();
            return Ok(gateway);
        }
        if let Ok(Some(_)) = gateway.child.try_wait() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Err(SimulateError::GatewayNotHealthy(gateway.url.clone()))
}

/// Runs a simulation against `args.gateway` (or a spawned gateway).
pub async fn simulate(args: SimulateArgs) -> Result<Report, SimulateError> {
    let args = args.resolved();
    let targets = targets(&args);
    if targets.is_empty() || args.chats == 0 || args.connections == 0 {
        return Err(SimulateError::Nothing(
            "--platforms, --chats and --connections must not be empty",
        ));
    }
    let shared = Arc::new(Shared {
        counters: Counters::default(),
        faults: Faults {
            rate_limited: args.fault_429,
            server_error: args.fault_5xx,
            outside_window: args.fault_window,
            blocked: args.fault_blocked,
        },
        ledger: Mutex::new(Ledger::default()),
        latencies: Mutex::new(Latencies::default()),
        started: Instant::now(),
        last_reply_us: AtomicU64::new(0),
    });
    let fakes = serve_fakes(args.listen, shared.clone())?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(args.webhook_timeout_ms.max(1)))
        .pool_max_idle_per_host(args.connections)
        .build()
        .map_err(SimulateError::Client)?;
    let spawned = if args.spawn_gateway {
        Some(spawn_gateway(&fakes, args.store.as_deref(), &client).await?)
    } else {
        None
    };
    let gateway = spawned.as_ref().map_or_else(
        || args.gateway.trim_end_matches('/').to_owned(),
        |g| g.url.clone(),
    );
    let run = u64::try_from(crate::sender::now_ms() / 1000).unwrap_or(0);
    let chats = (0..args.chats)
        .map(|index| {
            let target = targets[index as usize % targets.len()].clone();
            Chat {
                index,
                id: traffic::chat_id(target.platform, index),
                target,
                previous: None,
            }
        })
        .collect();
    let driver = Arc::new(Driver {
        shared: shared.clone(),
        args: args.clone(),
        run,
        client,
        gateway,
        next_id: AtomicU64::new(0),
        token_base: fastrand::u64(0..TOKEN_SPACE),
        started: Instant::now(),
        stop: AtomicBool::new(false),
        chats: Mutex::new(chats),
    });
    let progress = progress_bar(&args);
    let workers: Vec<_> = (0..args.connections)
        .map(|worker| tokio::spawn(driver.clone().worker(worker)))
        .collect();
    let duration = Duration::from_secs_f64(args.duration.max(0.0));
    let mut last = Snapshot::take(&shared);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while driver.started.elapsed() < duration {
        let remaining = duration.saturating_sub(driver.started.elapsed());
        tokio::select! {
            _ = tick.tick() => {
                let now = Snapshot::take(&shared);
                progress.set_position(driver.started.elapsed().as_secs());
                progress.set_message(now.line(&last, &shared, "sending"));
                last = now;
            }
            () = tokio::time::sleep(remaining) => {}
        }
    }
    let elapsed = driver.started.elapsed();
    driver.stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.await;
    }
    let drain_until = Instant::now() + Duration::from_secs_f64(args.drain.max(0.0));
    while Instant::now() < drain_until && shared.lock_ledger().outstanding() > 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if last.at.elapsed() >= Duration::from_secs(1) {
            let now = Snapshot::take(&shared);
            progress.set_message(now.line(&last, &shared, "draining"));
            last = now;
        }
    }
    progress.finish_and_clear();
    let gateway_peak_rss_kb = spawned.as_ref().and_then(SpawnedGateway::peak_rss_kb);
    let gateway_startup = spawned.as_ref().map(|g| g.startup);
    drop(spawned);
    fakes.stop().await;
    let counters = &shared.counters;
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let ledger = shared.lock_ledger();
    let latencies = shared.lock_latencies();
    Ok(Report {
        elapsed,
        sent: get(&counters.sent),
        acked: get(&counters.acked),
        backpressure: get(&counters.backpressure),
        rejected: get(&counters.rejected),
        timeouts: get(&counters.timeouts),
        transport_errors: get(&counters.transport_errors),
        duplicates: get(&counters.duplicates),
        reordered: get(&counters.reordered),
        batched: get(&counters.batched),
        timeout_retries: get(&counters.timeout_retries),
        replies: get(&counters.replies),
        reply_span: Duration::from_micros(get(&shared.last_reply_us)),
        untracked_replies: get(&counters.untracked_replies),
        refused_on_purpose: ledger.refused(),
        faults: get(&counters.faults),
        ack: latencies.ack.clone(),
        reply: latencies.reply.clone(),
        never_answered: ledger.outstanding(),
        answered_twice: ledger.answered_twice,
        out_of_order: ledger.out_of_order,
        gateway_peak_rss_kb,
        gateway_startup,
    })
}

fn progress_bar(args: &SimulateArgs) -> indicatif::ProgressBar {
    if args.quiet {
        return indicatif::ProgressBar::hidden();
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let bar = indicatif::ProgressBar::new(args.duration.max(0.0).ceil() as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{elapsed:>4} [{bar:20}] {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Counters at one moment, for per-second rates.
struct Snapshot {
    at: Instant,
    sent: u64,
    acked: u64,
    replies: u64,
}

impl Snapshot {
    fn take(shared: &Shared) -> Snapshot {
        let c = &shared.counters;
        Snapshot {
            at: Instant::now(),
            sent: c.sent.load(Ordering::Relaxed),
            acked: c.acked.load(Ordering::Relaxed),
            replies: c.replies.load(Ordering::Relaxed),
        }
    }

    #[allow(clippy::cast_precision_loss)]
    fn line(&self, before: &Snapshot, shared: &Shared, phase: &str) -> String {
        let secs = self.at.duration_since(before.at).as_secs_f64().max(1e-9);
        let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / secs;
        let (ack50, ack99, e2e50, e2e99) = {
            let mut l = shared.lock_latencies();
            let values = (
                l.ack_window.percentile(0.5),
                l.ack_window.percentile(0.99),
                l.reply_window.percentile(0.5),
                l.reply_window.percentile(0.99),
            );
            l.ack_window = Histogram::default();
            l.reply_window = Histogram::default();
            values
        };
        let (outstanding, twice, disorder) = {
            let ledger = shared.lock_ledger();
            (
                ledger.outstanding(),
                ledger.answered_twice,
                ledger.out_of_order,
            )
        };
        format!(
            "{phase}: sent {:.0}/s acked {:.0}/s ack p50 {:.1}ms p99 {:.1}ms | replies {:.0}/s e2e p50 {:.1}ms p99 {:.1}ms | waiting {outstanding} twice {twice} disorder {disorder}",
            rate(self.sent, before.sent),
            rate(self.acked, before.acked),
            ms(ack50),
            ms(ack99),
            rate(self.replies, before.replies),
            ms(e2e50),
            ms(e2e99),
        )
    }
}

/// `switchboard simulate`.
#[allow(clippy::print_stdout)] // The report is the command's output.
pub async fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let report = simulate(args).await?;
    println!("{report}");
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
