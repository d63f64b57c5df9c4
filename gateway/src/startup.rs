//! Wiring: builds the store, channels, assistant, pipeline, sender and both
//! listeners from validated settings. `Application::build` binds its own
//! listeners (port 0 in tests) and reports the real addresses.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use switchboard_core::assistant::{Assistant, AssistantSettings};
use switchboard_core::backend::{DemoBackend, ShopBackend};
use switchboard_core::shop::Shop;
use switchboard_model::Platform;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{BackendSettings, Settings};
use crate::effects::EffectRunner;
use crate::metrics::Metrics;
use crate::pipeline::{self, Inbox, Worker};
use crate::queue::StreamQueue;
use crate::registry::ChannelRegistry;
use crate::sandbox::Sandbox;
use crate::sender::{self, SenderConfig};
use crate::store::Store;
use crate::{admin, sandbox, webhook};

/// Shared by every request handler.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub registry: ChannelRegistry,
    pub store: Store,
    pub inbox: Inbox,
    pub metrics: Arc<Metrics>,
    pub sandbox: Arc<Sandbox>,
    pub demo_backend: Option<Arc<DemoBackend>>,
    shutting_down: Arc<AtomicBool>,
}

impl AppState {
    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}

pub struct Application {
    public_addr: SocketAddr,
    admin_addr: SocketAddr,
    public: Server,
    admin: Server,
    shutdown: ShutdownTrigger,
    stop_inbox: watch::Sender<bool>,
    stop_outbox: watch::Sender<bool>,
    inbox_tasks: Vec<tokio::task::JoinHandle<()>>,
    outbox_tasks: Vec<tokio::task::JoinHandle<()>>,
    grace: Duration,
    shutting_down: Arc<AtomicBool>,
    sandbox: Arc<Sandbox>,
    store: Store,
}

/// Asks a running application to shut down gracefully (tests, signals).
#[derive(Debug, Clone)]
pub struct ShutdownTrigger(Arc<tokio::sync::Notify>, Arc<AtomicBool>);

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.1.store(true, Ordering::SeqCst);
        self.0.notify_waiters();
        self.0.notify_one();
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let settings = Arc::new(settings);
        let metrics = Arc::new(Metrics::new());
        let store = Store::connect(&settings.store).await.context(
            "cannot use the store in store.url; check that Redis is running and reachable",
        )?;
        let replica = replica_id();
        let queue = |name: &'static str| {
            store.as_redis().map(|redis| {
                Arc::new(StreamQueue::new(
                    redis.connection(),
                    redis.key(""),
                    name,
                    settings.pipeline.partitions,
                    replica.clone(),
                    redis.timeout(),
                    redis.is_cluster(),
                ))
            })
        };
        let (inbox_queue, outbox_queue) = (queue("inbox"), queue("outbox"));
        let registry = ChannelRegistry::new(&settings.channels);

        let shop = match &settings.shop.file {
            Some(path) => Shop::from_path(path).with_context(|| {
                format!("shop.file {} is not a valid shop file", path.display())
            })?,
            None => Shop::demo(),
        };
        let shop = Arc::new(shop);
        let assistant_settings = AssistantSettings {
            link_idle_ms: i64::try_from(settings.shop.link_idle_minutes * 60_000)
                .unwrap_or(i64::MAX),
            ..AssistantSettings::default()
        };
        let assistant = Arc::new(Assistant::new(shop, assistant_settings));

        let (demo_backend, backend): (Option<Arc<DemoBackend>>, Arc<dyn ShopBackend>) =
            match &settings.backend {
                BackendSettings::Demo => {
                    let demo = Arc::new(DemoBackend::new());
                    (Some(demo.clone()), demo)
                }
                BackendSettings::Http {
                    url,
                    token,
                    timeout_ms,
                } => (
                    None,
                    Arc::new(crate::backend_http::HttpBackend::new(
                        url,
                        token.clone(),
                        Duration::from_millis(*timeout_ms),
                    )?),
                ),
            };

        // Listeners first: the sandbox's address feeds the sender's API bases.
        let public_listener = TcpListener::bind(settings.server.bind).with_context(|| {
            format!(
                "cannot listen on server.bind {}; is another process using it?",
                settings.server.bind
            )
        })?;
        let admin_listener = TcpListener::bind(settings.server.admin_bind).with_context(|| {
            format!(
                "cannot listen on server.admin_bind {}; is another process using it?",
                settings.server.admin_bind
            )
        })?;
        let tls = settings
            .server
            .tls
            .as_ref()
            .map(crate::tls::server_config)
            .transpose()?;
        let public_addr = public_listener.local_addr()?;
        let admin_addr = admin_listener.local_addr()?;
        let sandbox_base = format!("http://{public_addr}/sandbox");
        let api_bases: HashMap<Platform, String> = Platform::ALL
            .iter()
            .map(|p| (*p, settings.api_base(*p, Some(&sandbox_base))))
            .collect();

        // Run-time channels: loaded now, then kept in step with the store.
        let registrar = web::Data::new(crate::channels::Registrar::new(
            crate::channels::platform_api::PlatformApi::new(
                api_bases.clone(),
                Duration::from_millis(settings.sender.timeout_ms),
            )
            .context("cannot build the HTTP client for the platform APIs")?,
            store.clone(),
            registry.clone(),
            settings.channels.clone(),
            settings.registration.clone(),
            metrics.clone(),
        ));
        if let Err(error) = registrar.refresh().await {
            warn!(error = %error, "cannot load the run-time channels from the store yet; retrying in the background");
        }

        let (stop_outbox, stop_outbox_rx) = watch::channel(false);
        let (outbox, outbox_tasks) = sender::start(
            SenderConfig {
                lanes: settings.sender.workers,
                lane_capacity: settings
                    .sender
                    .outbox_capacity
                    .div_ceil(settings.sender.workers)
                    .max(1),
                timeout: Duration::from_millis(settings.sender.timeout_ms),
                max_attempts: settings.sender.max_attempts,
                api_bases,
                rates: settings.sender.rates,
            },
            registry.clone(),
            store.clone(),
            metrics.clone(),
            outbox_queue,
            &stop_outbox_rx,
        )
        .context("cannot build the HTTP client for the platform APIs")?;

        let stop_courier = stop_outbox_rx.clone();
        crate::channels::spawn_refresher(registrar.clone().into_inner(), stop_outbox_rx);

        let state_ttl = Duration::from_secs(settings.shop.state_ttl_days * 24 * 3600);
        let handoffs = Arc::new(
            crate::handoff::HandoffDesk::new(&store, &settings.handoff, metrics.clone())
                .context("invalid [handoff] section")?,
        );
        crate::handoff::spawn_courier(handoffs.clone(), stop_courier);
        let worker = Arc::new(Worker {
            abuse: settings.abuse.clone(),
            inbound_limits: crate::ratelimit::ChannelLimiter::for_store(&store),
            assistant,
            registry: registry.clone(),
            store: store.clone(),
            outbox,
            effects: EffectRunner::new(backend, store.clone(), metrics.clone(), handoffs.clone()),
            metrics: metrics.clone(),
            state_ttl,
            handoffs: handoffs.clone(),
            durable: inbox_queue.is_some(),
        });
        let (stop_inbox, stop_inbox_rx) = watch::channel(false);
        let (inbox, inbox_tasks) = pipeline::start(
            settings.pipeline.workers,
            settings
                .pipeline
                .inbox_capacity
                .div_ceil(settings.pipeline.workers)
                .max(1),
            &worker,
            inbox_queue,
            &stop_inbox_rx,
        );

        let shutting_down = Arc::new(AtomicBool::new(false));
        let sandbox = Arc::new(Sandbox::default());
        let state = web::Data::new(AppState {
            settings: settings.clone(),
            registry,
            store: store.clone(),
            inbox,
            metrics,
            sandbox: sandbox.clone(),
            demo_backend,
            shutting_down: shutting_down.clone(),
        });

        let grace = Duration::from_secs(settings.server.shutdown_grace_secs);
        let sandbox_on = settings.sandbox;
        let public_state = state.clone();
        let public = HttpServer::new(move || {
            let mut app = App::new()
                .app_data(public_state.clone())
                // One per HTTP worker: this closure runs on each.
                .app_data(web::Data::new(pipeline::IntakeConnection::default()))
                .app_data(crate::routes::query_config())
                .app_data(crate::routes::json_config())
                // Inside the request span: the last `wrap` runs first.
                .wrap(from_fn(webhook::dispatch))
                .wrap(from_fn(crate::request_id::middleware))
                .configure(webhook::public_routes)
                .default_service(web::to(crate::routes::public_fallback));
            if sandbox_on {
                app = app
                    .app_data(web::PayloadConfig::new(1 << 20))
                    .configure(sandbox::routes);
            }
            app
        })
        .disable_signals()
        .client_request_timeout(Duration::from_secs(5))
        .client_disconnect_timeout(Duration::from_secs(2))
        .max_connections(25_000)
        .workers(settings.server.http_workers)
        .shutdown_timeout(grace.as_secs().max(1));
        let public = match &tls {
            Some(config) => public.listen_rustls_0_23(public_listener, config.clone())?,
            None => public.listen(public_listener)?,
        }
        .run();

        let admin_state = state;
        let admin_registrar = registrar;
        let admin_handoffs = web::Data::from(handoffs);
        let admin = HttpServer::new(move || {
            App::new()
                .app_data(admin_state.clone())
                .app_data(crate::routes::query_config())
                .app_data(crate::routes::json_config())
                .app_data(admin_handoffs.clone())
                // The console signs in with a cookie: before the bearer scope.
                .configure(crate::console::routes)
                .service(
                    web::scope("")
                        .wrap(from_fn(admin::require_token))
                        .wrap(from_fn(crate::request_id::middleware))
                        .app_data(admin_registrar.clone())
                        .configure(crate::console::admin_routes)
                        .configure(crate::channels::admin_api::routes)
                        .configure(admin::routes)
                        .default_service(web::to(crate::routes::admin_fallback)),
                )
        })
        .disable_signals()
        .workers(1)
        .client_request_timeout(Duration::from_secs(5))
        .shutdown_timeout(grace.as_secs().max(1));
        let admin = match (&tls, settings.server.tls.as_ref().is_some_and(|t| t.admin)) {
            (Some(config), true) => admin.listen_rustls_0_23(admin_listener, config.clone())?,
            _ => admin.listen(admin_listener)?,
        }
        .run();

        info!(
            public = %public_addr,
            admin = %admin_addr,
            demo = settings.demo,
            sandbox = settings.sandbox,
            channels = settings.channels.len(),
            "switchboard listening"
        );
        Ok(Application {
            public_addr,
            admin_addr,
            public,
            admin,
            shutdown: ShutdownTrigger(
                Arc::new(tokio::sync::Notify::new()),
                Arc::new(AtomicBool::new(false)),
            ),
            stop_inbox,
            stop_outbox,
            inbox_tasks,
            outbox_tasks,
            grace,
            shutting_down,
            sandbox,
            store,
        })
    }

    pub fn public_addr(&self) -> SocketAddr {
        self.public_addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    pub fn shutdown_trigger(&self) -> ShutdownTrigger {
        self.shutdown.clone()
    }

    pub fn sandbox(&self) -> Arc<Sandbox> {
        self.sandbox.clone()
    }

    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// Serves until SIGTERM/SIGINT or the trigger, then shuts down in order:
    /// stop accepting webhooks, finish acknowledged events, flush replies,
    /// all within the grace period.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let public_handle: ServerHandle = self.public.handle();
        let admin_handle: ServerHandle = self.admin.handle();
        let public = tokio::spawn(self.public);
        let admin = tokio::spawn(self.admin);

        let trigger = self.shutdown.clone();
        tokio::select! {
            _ = wait_for_signal() => info!("shutdown signal received"),
            _ = async {
                if !trigger.1.load(Ordering::SeqCst) {
                    trigger.0.notified().await;
                }
            } => info!("shutdown requested"),
        }
        self.shutting_down.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + self.grace;

        // 1. No new webhooks; in-flight requests finish.
        public_handle.stop(true).await;
        // 2. Acknowledged events are processed, 3. their replies are sent.
        let _ = self.stop_inbox.send(true);
        let inbox_done = drain(self.inbox_tasks, deadline).await;
        let _ = self.stop_outbox.send(true);
        let outbox_done = drain(self.outbox_tasks, deadline).await;
        if !(inbox_done && outbox_done) {
            warn!(
                grace_secs = self.grace.as_secs(),
                "grace period over with work still queued; with the memory store it is lost, use Redis to keep it"
            );
        }
        admin_handle.stop(true).await;
        let _ = public.await;
        let _ = admin.await;
        info!("switchboard stopped");
        Ok(())
    }
}

/// Waits for the tasks until the deadline; aborts the rest. True when all
/// finished in time.
async fn drain(tasks: Vec<tokio::task::JoinHandle<()>>, deadline: tokio::time::Instant) -> bool {
    let mut all = true;
    for task in tasks {
        let abort = task.abort_handle();
        if tokio::time::timeout_at(deadline, task).await.is_err() {
            abort.abort();
            all = false;
        }
    }
    all
}

/// A name for this process among the replicas: host name plus a random
/// suffix, so a restarted process never inherits a dead one's leases.
fn replica_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "switchboard".to_owned());
    format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..))
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
