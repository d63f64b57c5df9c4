//! Settings: embedded defaults, then the TOML file, then
//! `SWITCHBOARD__SECTION__KEY` environment variables. Validated once at
//! start, with messages that name the key and say what to do.
//!
//! Secrets are `SecretString`s (never printed by `Debug`) and may come from
//! files (`bot_token_file = "/run/secrets/..."`), the usual way in containers.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use switchboard_model::{ChannelId, Platform};

use crate::store::crypto::Keyring;

/// The built-in defaults; every key here can be overridden.
const DEFAULTS: &str = include_str!("defaults.toml");

/// Development secrets of the embedded demo channels. Documented in the
/// README; the demo refuses to listen on anything but loopback.
pub mod demo {
    pub const ADMIN_TOKEN: &str = "dev-admin-token";
    pub const TELEGRAM_CHANNEL: &str = "demo-telegram";
    pub const TELEGRAM_BOT_TOKEN: &str = "123456:DEV-telegram-bot-token";
    pub const TELEGRAM_SECRET_TOKEN: &str = "dev-telegram-secret-token";
    pub const MESSENGER_CHANNEL: &str = "demo-messenger";
    pub const MESSENGER_APP_SECRET: &str = "dev-messenger-app-secret";
    pub const MESSENGER_VERIFY_TOKEN: &str = "dev-messenger-verify-token";
    pub const MESSENGER_PAGE_TOKEN: &str = "dev-messenger-page-token";
    pub const MESSENGER_PAGE_ID: &str = "100000000000001";
    pub const WHATSAPP_CHANNEL: &str = "demo-whatsapp";
    pub const WHATSAPP_APP_SECRET: &str = "dev-whatsapp-app-secret";
    pub const WHATSAPP_VERIFY_TOKEN: &str = "dev-whatsapp-verify-token";
    pub const WHATSAPP_ACCESS_TOKEN: &str = "dev-whatsapp-access-token";
    pub const WHATSAPP_PHONE_NUMBER_ID: &str = "100000000000002";
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(String),
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Validated settings the application runs on.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub store: StoreSettings,
    pub platforms: PlatformSettings,
    pub channels: Vec<ChannelSettings>,
    pub shop: ShopSettings,
    pub backend: BackendSettings,
    pub pipeline: PipelineSettings,
    pub sender: SenderSettings,
    pub sandbox: bool,
    pub abuse: AbuseSettings,
    /// `[registration]`: channels registered at run time (admin API, CLI).
    pub registration: crate::channels::RegistrationSettings,
    /// `[handoff]`: the outbound hand-off webhook and the agent console.
    pub handoff: HandoffSettings,
    /// True when no channel was configured and the demo channels were added.
    pub demo: bool,
    /// Accepted but discouraged settings, logged at start.
    pub warnings: Vec<String>,
}

/// What an admin token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reads: readiness, metrics, channels, dead letters, masked conversations.
    ReadOnly,
    /// Everything, including erasing conversations, managing channels and
    /// reading the demo backend's one-time codes.
    Operator,
}

/// One admin token, kept as the SHA-256 of the token: the tokens are long
/// random strings, so a fast hash suffices, and a leaked config file does
/// not leak them.
#[derive(Clone)]
pub struct AdminToken {
    pub name: String,
    pub role: Role,
    pub sha256: [u8; 32],
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl AdminToken {
    pub fn digest(token: &str) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(token.as_bytes()).into()
    }
}

/// TLS for the listeners (rustls; TLS 1.2 and 1.3 with AEAD suites only).
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Serve the admin listener with TLS too.
    pub admin: bool,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    pub admin_bind: SocketAddr,
    pub admin_tokens: Vec<AdminToken>,
    pub tls: Option<TlsSettings>,
    pub max_body_bytes: usize,
    pub shutdown_grace_secs: u64,
    pub log_format: LogFormat,
    pub log_level: String,
    /// Threads serving the public listener (resolved: never 0).
    pub http_workers: usize,
}

/// `[store]`: where state lives and how it is protected at rest.
#[derive(Clone)]
pub struct StoreSettings {
    /// `memory`, `redis://[user:password@]host:port/db`, `rediss://...`
    /// (TLS), `redis+cluster://host1:port,host2:port` or `rediss+cluster://`.
    pub url: String,
    /// The longest any one Redis call may take.
    pub timeout_ms: u64,
    /// Put before every Redis key (several deployments sharing one Redis).
    pub key_prefix: String,
    /// Seals values at rest; `None` only with `allow_plaintext` or memory.
    pub encryption: Option<Arc<Keyring>>,
    pub allow_plaintext: bool,
    /// Overrides a password in the URL (from `password` or `password_file`).
    pub password: Option<SecretString>,
    /// PEM file of the CA that signed the Redis server's certificate, when
    /// it is not in the system's trust store.
    pub tls_ca_file: Option<PathBuf>,
}

impl StoreSettings {
    /// `url` with every other key at its default (tests, tools).
    pub fn new(url: impl Into<String>) -> StoreSettings {
        StoreSettings {
            url: url.into(),
            timeout_ms: default_store_timeout_ms(),
            key_prefix: String::new(),
            encryption: None,
            allow_plaintext: false,
            password: None,
            tls_ca_file: None,
        }
    }

    pub fn is_memory(&self) -> bool {
        self.url.trim() == "memory"
    }
}

impl fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSettings")
            .field("url", &crate::store::redis::redact_url(&self.url))
            .field("timeout_ms", &self.timeout_ms)
            .field("key_prefix", &self.key_prefix)
            .field("encryption", &self.encryption)
            .field("allow_plaintext", &self.allow_plaintext)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .field("tls_ca_file", &self.tls_ca_file)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct PlatformSettings {
    /// `None` means "the platform's real API" unless the sandbox is on.
    pub telegram_api_base: Option<String>,
    pub messenger_api_base: Option<String>,
    pub whatsapp_api_base: Option<String>,
}

impl PlatformSettings {
    pub fn configured_base(&self, platform: Platform) -> Option<&str> {
        match platform {
            Platform::Telegram => self.telegram_api_base.as_deref(),
            Platform::Messenger => self.messenger_api_base.as_deref(),
            Platform::WhatsApp => self.whatsapp_api_base.as_deref(),
        }
    }
}

pub const REAL_TELEGRAM_API: &str = "https://api.telegram.org";
pub const REAL_GRAPH_API: &str = "https://graph.facebook.com/v21.0";

#[derive(Clone)]
pub enum ChannelSecrets {
    Telegram {
        bot_token: SecretString,
        secret_tokens: Vec<SecretString>,
    },
    Messenger {
        app_secrets: Vec<SecretString>,
        verify_tokens: Vec<SecretString>,
        page_access_token: SecretString,
        page_id: Option<String>,
        /// Message tag used for replies after the 24-hour window.
        outside_window_tag: Option<String>,
    },
    WhatsApp {
        app_secrets: Vec<SecretString>,
        verify_tokens: Vec<SecretString>,
        access_token: SecretString,
        phone_number_id: String,
        /// Template sent instead of a free-form reply after the window.
        outside_window_template: Option<TemplateSettings>,
    },
}

impl fmt::Debug for ChannelSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelSecrets::Telegram { .. } => f.write_str("Telegram([REDACTED])"),
            ChannelSecrets::Messenger { page_id, .. } => {
                write!(f, "Messenger(page_id={page_id:?}, [REDACTED])")
            }
            ChannelSecrets::WhatsApp {
                phone_number_id, ..
            } => {
                write!(f, "WhatsApp(phone_number_id={phone_number_id}, [REDACTED])")
            }
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct TemplateSettings {
    pub name: String,
    #[serde(default = "default_template_language")]
    pub language: String,
}

fn default_template_language() -> String {
    "en_US".to_owned()
}

#[derive(Debug, Clone)]
pub struct ChannelSettings {
    pub id: ChannelId,
    pub platform: Platform,
    pub secrets: ChannelSecrets,
}

#[derive(Debug, Clone)]
pub struct ShopSettings {
    /// `None`: the embedded demo shop.
    pub file: Option<PathBuf>,
    pub state_ttl_days: u64,
    pub link_idle_minutes: u64,
}

#[derive(Debug, Clone)]
pub enum BackendSettings {
    Demo,
    Http {
        url: String,
        token: SecretString,
        timeout_ms: u64,
    },
}

/// `[handoff]`: where hand-offs are announced to a help desk. The
/// webhook is signed (`X-Switchboard-Signature-256: sha256=<hex>`, HMAC-SHA256
/// of the raw body with `webhook_secret`), and the same secret signs agent
/// replies coming back to `POST /admin/handoffs/{conversation}/reply`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoffSettings {
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<SecretString>,
    /// How long an agent console session lasts without activity.
    #[serde(default = "default_console_session_minutes")]
    pub console_session_minutes: u64,
}

fn default_console_session_minutes() -> u64 {
    12 * 60
}

impl Default for HandoffSettings {
    fn default() -> Self {
        Self {
            webhook_url: None,
            webhook_secret: None,
            console_session_minutes: default_console_session_minutes(),
        }
    }
}

/// `[abuse]`: limits on what customers can make the gateway do. Counted in
/// Redis (shared by every replica) when the store is Redis.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbuseSettings {
    /// Messages one sender may send per minute before the bot asks them to
    /// slow down (once) and ignores the rest until the rate drops.
    #[serde(default = "default_sender_per_minute")]
    pub sender_messages_per_minute: u32,
    #[serde(default = "default_sender_burst")]
    pub sender_burst: u32,
    /// Messages per second one channel answers; beyond it events are
    /// acknowledged but not answered (a flood, not customers).
    #[serde(default = "default_channel_per_second")]
    pub channel_messages_per_second: u32,
    #[serde(default = "default_channel_burst")]
    pub channel_burst: u32,
    /// Longest customer text handed to the assistant; longer is cut.
    #[serde(default = "default_max_text_chars")]
    pub max_text_chars: usize,
    /// Largest conversation state stored; a state that grows past it is
    /// started afresh and recorded.
    #[serde(default = "default_max_state_bytes")]
    pub max_state_bytes: usize,
}

fn default_sender_per_minute() -> u32 {
    30
}
fn default_sender_burst() -> u32 {
    15
}
fn default_channel_per_second() -> u32 {
    500
}
fn default_channel_burst() -> u32 {
    1000
}
fn default_max_text_chars() -> usize {
    8192
}
fn default_max_state_bytes() -> usize {
    64 * 1024
}

impl Default for AbuseSettings {
    fn default() -> Self {
        Self {
            sender_messages_per_minute: default_sender_per_minute(),
            sender_burst: default_sender_burst(),
            channel_messages_per_second: default_channel_per_second(),
            channel_burst: default_channel_burst(),
            max_text_chars: default_max_text_chars(),
            max_state_bytes: default_max_state_bytes(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// Redis store only: partitions of the durable inbox and outbox
    /// streams. Every replica must use the same number.
    pub partitions: u32,
    pub workers: usize,
    pub inbox_capacity: usize,
    pub dedupe_ttl_hours: u64,
}

#[derive(Debug, Clone)]
pub struct SenderSettings {
    pub timeout_ms: u64,
    pub max_attempts: u32,
    pub workers: usize,
    pub outbox_capacity: usize,
    /// Sends per second per channel, by platform (shared by all replicas).
    pub rates: SendRates,
}

/// Per-channel and per-chat send rates. The defaults are the platforms'
/// published limits (PLATFORMS.md); raise one only when the platform has
/// raised it for you (WhatsApp throughput tiers, Telegram paid broadcasts),
/// or for a load test against a simulator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SendRates {
    pub telegram: f64,
    pub messenger: f64,
    pub whatsapp: f64,
    /// Sends per second to one person (a Telegram private chat, a
    /// Messenger or WhatsApp user).
    pub chat: f64,
    /// Sends per minute to one Telegram group.
    pub group_per_minute: f64,
}

impl SendRates {
    pub fn for_platform(&self, platform: Platform) -> f64 {
        match platform {
            Platform::Telegram => self.telegram,
            Platform::Messenger => self.messenger,
            Platform::WhatsApp => self.whatsapp,
        }
    }
}

// ---- raw, as deserialised ------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    server: RawServer,
    store: RawStore,
    #[serde(default)]
    platforms: RawPlatforms,
    #[serde(default)]
    channels: Vec<RawChannel>,
    #[serde(default)]
    shop: RawShop,
    #[serde(default)]
    backend: RawBackend,
    pipeline: RawPipeline,
    sender: RawSender,
    #[serde(default)]
    sandbox: RawSandbox,
    #[serde(default)]
    abuse: AbuseSettings,
    #[serde(default)]
    registration: crate::channels::RegistrationSettings,
    #[serde(default)]
    handoff: HandoffSettings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    bind: String,
    admin_bind: String,
    admin_token: Option<SecretString>,
    admin_token_file: Option<PathBuf>,
    #[serde(default)]
    admin_tokens: Vec<RawAdminToken>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    admin_tls: bool,
    max_body_bytes: usize,
    shutdown_grace_secs: u64,
    log_format: LogFormat,
    log_level: String,
    /// 0: half the cores, at least one.
    #[serde(default)]
    http_workers: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdminToken {
    name: String,
    role: Role,
    /// Hex SHA-256 of the token (`switchboard admin token` prints it).
    sha256: Option<String>,
    /// The token itself: accepted with a warning.
    token: Option<SecretString>,
    token_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: String,
    #[serde(default = "default_store_timeout_ms")]
    timeout_ms: u64,
    #[serde(default)]
    key_prefix: String,
    encryption_keys: Option<KeyList>,
    encryption_keys_file: Option<PathBuf>,
    #[serde(default)]
    allow_plaintext: bool,
    password: Option<SecretString>,
    password_file: Option<PathBuf>,
    tls_ca_file: Option<PathBuf>,
}

/// A TOML list, or one string of entries separated by commas or spaces (the
/// form an environment variable can carry).
#[derive(Deserialize)]
#[serde(untagged)]
enum KeyList {
    Many(Vec<String>),
    One(String),
}

impl KeyList {
    fn entries(self) -> Vec<SecretString> {
        let split = |s: &str| -> Vec<SecretString> {
            s.split([',', ' ', '\n', '\t'])
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(|e| SecretString::from(e.to_owned()))
                .collect()
        };
        match self {
            KeyList::Many(list) => list.iter().flat_map(|e| split(e)).collect(),
            KeyList::One(text) => split(&text),
        }
    }
}

fn default_store_timeout_ms() -> u64 {
    2000
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPlatforms {
    #[serde(default)]
    telegram: RawPlatform,
    #[serde(default)]
    messenger: RawPlatform,
    #[serde(default)]
    whatsapp: RawPlatform,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPlatform {
    api_base: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    id: Option<String>,
    platform: Option<String>,
    bot_token: Option<SecretString>,
    bot_token_file: Option<PathBuf>,
    secret_token: Option<SecretString>,
    secret_token_file: Option<PathBuf>,
    /// Accepted as well during a rotation.
    previous_secret_token: Option<SecretString>,
    app_secret: Option<SecretString>,
    app_secret_file: Option<PathBuf>,
    previous_app_secret: Option<SecretString>,
    verify_token: Option<SecretString>,
    verify_token_file: Option<PathBuf>,
    page_access_token: Option<SecretString>,
    page_access_token_file: Option<PathBuf>,
    page_id: Option<String>,
    access_token: Option<SecretString>,
    access_token_file: Option<PathBuf>,
    phone_number_id: Option<String>,
    outside_window_tag: Option<String>,
    outside_window_template: Option<TemplateSettings>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShop {
    file: Option<PathBuf>,
    #[serde(default = "default_state_ttl_days")]
    state_ttl_days: u64,
    #[serde(default = "default_link_idle_minutes")]
    link_idle_minutes: u64,
}

impl Default for RawShop {
    fn default() -> Self {
        Self {
            file: None,
            state_ttl_days: default_state_ttl_days(),
            link_idle_minutes: default_link_idle_minutes(),
        }
    }
}

fn default_state_ttl_days() -> u64 {
    30
}

fn default_link_idle_minutes() -> u64 {
    30
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    #[serde(default = "default_backend_kind")]
    kind: String,
    url: Option<String>,
    token: Option<SecretString>,
    token_file: Option<PathBuf>,
    #[serde(default = "default_backend_timeout")]
    timeout_ms: u64,
}

impl Default for RawBackend {
    fn default() -> Self {
        Self {
            kind: default_backend_kind(),
            url: None,
            token: None,
            token_file: None,
            timeout_ms: default_backend_timeout(),
        }
    }
}

fn default_backend_kind() -> String {
    "demo".to_owned()
}

fn default_backend_timeout() -> u64 {
    5000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    partitions: u32,
    workers: usize,
    inbox_capacity: usize,
    dedupe_ttl_hours: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSender {
    timeout_ms: u64,
    max_attempts: u32,
    workers: usize,
    outbox_capacity: usize,
    telegram_per_second: f64,
    messenger_per_second: f64,
    whatsapp_per_second: f64,
    chat_per_second: f64,
    group_per_minute: f64,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSandbox {
    enabled: Option<bool>,
}

impl Settings {
    /// Loads defaults, then `file` (if any), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(key, _)| key.starts_with("SWITCHBOARD__"))
            .collect();
        Self::load_from(file, &env)
    }

    /// As [`Settings::load`], with the environment given (tests).
    pub fn load_from(
        file: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::Load(format!(
                    "config file {} does not exist; pass an existing TOML file to --config",
                    path.display()
                )));
            }
            builder = builder.add_source(
                config::File::from(path.to_path_buf()).format(config::FileFormat::Toml),
            );
        }
        let env_map: std::collections::HashMap<String, String> = env.iter().cloned().collect();
        builder = builder.add_source(
            config::Environment::with_prefix("SWITCHBOARD")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env_map)),
        );
        let raw: RawSettings = builder
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        raw.validate()
    }

    /// The API base URL the sender uses for `platform`.
    pub fn api_base(&self, platform: Platform, sandbox_base: Option<&str>) -> String {
        if let Some(base) = self.platforms.configured_base(platform) {
            return base.trim_end_matches('/').to_owned();
        }
        if let (true, Some(sandbox)) = (self.sandbox, sandbox_base) {
            return format!("{}/{}", sandbox.trim_end_matches('/'), platform.as_str());
        }
        match platform {
            Platform::Telegram => REAL_TELEGRAM_API.to_owned(),
            Platform::Messenger | Platform::WhatsApp => REAL_GRAPH_API.to_owned(),
        }
    }

    pub fn channel(&self, id: &str) -> Option<&ChannelSettings> {
        self.channels.iter().find(|c| c.id.as_str() == id)
    }
}

fn read_secret(
    key: &str,
    inline: Option<SecretString>,
    file: Option<&PathBuf>,
) -> Result<Option<SecretString>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(invalid(
            key,
            format!("set either {key} or {key}_file, not both"),
        )),
        (Some(secret), None) => Ok(Some(secret)),
        (None, Some(path)) => {
            let content = std::fs::read_to_string(path).map_err(|e| {
                invalid(
                    format!("{key}_file"),
                    format!(
                        "cannot read {}: {e}; check the path and its permissions",
                        path.display()
                    ),
                )
            })?;
            let trimmed = content.trim();
            if trimmed.is_empty() {
                return Err(invalid(
                    format!("{key}_file"),
                    format!("{} is empty", path.display()),
                ));
            }
            Ok(Some(SecretString::from(trimmed.to_owned())))
        }
        (None, None) => Ok(None),
    }
}

fn parse_bind(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        invalid(
            key,
            format!("'{value}' is not an address:port such as 127.0.0.1:8080"),
        )
    })
}

fn check_url(key: &str, value: &str) -> Result<(), ConfigError> {
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        _ => Err(invalid(key, format!("'{value}' is not an http(s) URL"))),
    }
}

impl RawSettings {
    fn validate(self) -> Result<Settings, ConfigError> {
        let server = &self.server;
        let bind = parse_bind("server.bind", &server.bind)?;
        let admin_bind = parse_bind("server.admin_bind", &server.admin_bind)?;
        if server.http_workers > 256 {
            return Err(invalid(
                "server.http_workers",
                "must be at most 256 (0 picks half the cores)",
            ));
        }
        if server.max_body_bytes < 1024 {
            return Err(invalid(
                "server.max_body_bytes",
                "must be at least 1024; Meta sends batches of up to several hundred KB, so 1048576 or more is recommended",
            ));
        }
        if !(1..=1024).contains(&self.pipeline.partitions) {
            return Err(invalid(
                "pipeline.partitions",
                "must be between 1 and 1024, and the same on every replica",
            ));
        }
        if self.pipeline.workers == 0 || self.sender.workers == 0 {
            return Err(invalid(
                "pipeline.workers / sender.workers",
                "must be at least 1",
            ));
        }
        if self.pipeline.inbox_capacity == 0 || self.sender.outbox_capacity == 0 {
            return Err(invalid(
                "pipeline.inbox_capacity / sender.outbox_capacity",
                "must be at least 1",
            ));
        }
        if self.pipeline.dedupe_ttl_hours < 48 {
            return Err(invalid(
                "pipeline.dedupe_ttl_hours",
                "must be at least 48: Meta and Telegram retry deliveries for a day or more",
            ));
        }
        if self.sender.max_attempts == 0 {
            return Err(invalid("sender.max_attempts", "must be at least 1"));
        }
        let store = validate_store(self.store)?;
        for (key, base) in [
            (
                "platforms.telegram.api_base",
                &self.platforms.telegram.api_base,
            ),
            (
                "platforms.messenger.api_base",
                &self.platforms.messenger.api_base,
            ),
            (
                "platforms.whatsapp.api_base",
                &self.platforms.whatsapp.api_base,
            ),
        ] {
            if let Some(base) = base {
                check_url(key, base)?;
            }
        }

        let mut channels = Vec::with_capacity(self.channels.len());
        for (index, raw) in self.channels.into_iter().enumerate() {
            let channel = validate_channel(index, raw)?;
            if channels
                .iter()
                .any(|c: &ChannelSettings| c.id == channel.id)
            {
                return Err(invalid(
                    format!("channels[{index}].id"),
                    format!(
                        "'{}' is used by another channel; channel ids must be unique",
                        channel.id
                    ),
                ));
            }
            channels.push(channel);
        }
        let demo = channels.is_empty() && !self.registration.start_empty;
        if demo {
            channels = demo_channels()?;
        }
        let sandbox = self.sandbox.enabled.unwrap_or(demo);

        let mut warnings = Vec::new();
        let admin_tokens = admin_tokens(
            self.server.admin_token,
            self.server.admin_token_file.as_ref(),
            self.server.admin_tokens,
            demo,
            &mut warnings,
        )?;
        let tls = match (self.server.tls_cert, self.server.tls_key) {
            (Some(cert), Some(key)) => {
                for (name, path) in [("server.tls_cert", &cert), ("server.tls_key", &key)] {
                    if !path.is_file() {
                        return Err(invalid(
                            name,
                            format!("{} does not exist or is not a file", path.display()),
                        ));
                    }
                }
                Some(TlsSettings {
                    cert,
                    key,
                    admin: self.server.admin_tls,
                })
            }
            (None, None) if self.server.admin_tls => {
                return Err(invalid(
                    "server.admin_tls",
                    "needs server.tls_cert and server.tls_key",
                ));
            }
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "server.tls_cert / server.tls_key",
                    "set both (PEM certificate chain and private key) or neither",
                ));
            }
        };

        if demo || sandbox {
            for (key, addr) in [("server.bind", bind), ("server.admin_bind", admin_bind)] {
                if !addr.ip().is_loopback() {
                    return Err(invalid(
                        key,
                        format!(
                            "{addr} is not a loopback address; the demo channels and the sandbox \
                             use public development secrets, so they only listen on 127.0.0.1 or \
                             ::1. Configure your own [[channels]] to listen elsewhere"
                        ),
                    ));
                }
            }
        }

        let backend = match self.backend.kind.as_str() {
            "demo" => BackendSettings::Demo,
            "http" => {
                let url = self.backend.url.ok_or_else(|| {
                    invalid("backend.url", "is required when backend.kind = \"http\"")
                })?;
                check_url("backend.url", &url)?;
                let token = read_secret(
                    "backend.token",
                    self.backend.token,
                    self.backend.token_file.as_ref(),
                )?
                .ok_or_else(|| {
                    invalid(
                        "backend.token",
                        "is required when backend.kind = \"http\" (or backend.token_file)",
                    )
                })?;
                BackendSettings::Http {
                    url,
                    token,
                    timeout_ms: self.backend.timeout_ms,
                }
            }
            other => {
                return Err(invalid(
                    "backend.kind",
                    format!("'{other}' is unknown; use \"demo\" or \"http\""),
                ));
            }
        };

        let abuse = &self.abuse;
        if abuse.sender_messages_per_minute == 0
            || abuse.sender_burst == 0
            || abuse.channel_messages_per_second == 0
            || abuse.channel_burst == 0
        {
            return Err(invalid("abuse", "rates and bursts must be at least 1"));
        }
        if abuse.max_text_chars < 256 || abuse.max_state_bytes < 4096 {
            return Err(invalid(
                "abuse.max_text_chars / abuse.max_state_bytes",
                "must be at least 256 characters / 4096 bytes",
            ));
        }

        Ok(Settings {
            server: ServerSettings {
                bind,
                admin_bind,
                admin_tokens,
                tls,
                max_body_bytes: self.server.max_body_bytes,
                shutdown_grace_secs: self.server.shutdown_grace_secs,
                log_format: self.server.log_format,
                log_level: self.server.log_level,
                http_workers: resolve_http_workers(self.server.http_workers),
            },
            store,
            platforms: PlatformSettings {
                telegram_api_base: self.platforms.telegram.api_base,
                messenger_api_base: self.platforms.messenger.api_base,
                whatsapp_api_base: self.platforms.whatsapp.api_base,
            },
            channels,
            shop: ShopSettings {
                file: self.shop.file,
                state_ttl_days: self.shop.state_ttl_days.max(1),
                link_idle_minutes: self.shop.link_idle_minutes.max(1),
            },
            backend,
            pipeline: PipelineSettings {
                partitions: self.pipeline.partitions,
                workers: self.pipeline.workers,
                inbox_capacity: self.pipeline.inbox_capacity,
                dedupe_ttl_hours: self.pipeline.dedupe_ttl_hours,
            },
            sender: SenderSettings {
                timeout_ms: self.sender.timeout_ms,
                max_attempts: self.sender.max_attempts,
                workers: self.sender.workers,
                outbox_capacity: self.sender.outbox_capacity,
                rates: send_rates(&self.sender)?,
            },
            sandbox,
            abuse: self.abuse,
            registration: self.registration.validated()?,
            handoff: self.handoff,
            demo,
            warnings,
        })
    }
}

fn send_rates(raw: &RawSender) -> Result<SendRates, ConfigError> {
    // At most 100 000 sends a second, whatever the unit.
    let within = |key: &str, value: f64, max: f64, per: &str| {
        if value.is_finite() && value > 0.0 && value <= max {
            Ok(value)
        } else {
            Err(invalid(
                key,
                format!("must be a number of sends per {per} above 0 and at most {max}"),
            ))
        }
    };
    let check = |key: &str, value: f64| within(key, value, 100_000.0, "second");
    let group_per_minute = within(
        "sender.group_per_minute",
        raw.group_per_minute,
        6_000_000.0,
        "minute",
    )?;
    Ok(SendRates {
        telegram: check("sender.telegram_per_second", raw.telegram_per_second)?,
        messenger: check("sender.messenger_per_second", raw.messenger_per_second)?,
        whatsapp: check("sender.whatsapp_per_second", raw.whatsapp_per_second)?,
        chat: check("sender.chat_per_second", raw.chat_per_second)?,
        group_per_minute,
    })
}

fn validate_store(raw: RawStore) -> Result<StoreSettings, ConfigError> {
    let url = raw.url.trim().to_owned();
    let memory = url == "memory";
    if !memory {
        crate::store::redis::parse_url(&url).map_err(|e| invalid("store.url", e.to_string()))?;
    }
    if !(50..=60_000).contains(&raw.timeout_ms) {
        return Err(invalid(
            "store.timeout_ms",
            "must be between 50 and 60000; 2000 suits a Redis in the same network",
        ));
    }
    let prefix_ok = raw.key_prefix.len() <= 64
        && raw
            .key_prefix
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '{' && c != '}');
    if !prefix_ok {
        return Err(invalid(
            "store.key_prefix",
            "must be at most 64 printable characters without spaces or braces (braces would break cluster hash tags), e.g. \"shop-a:\"",
        ));
    }
    let entries = match (raw.encryption_keys, &raw.encryption_keys_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "store.encryption_keys",
                "set either encryption_keys or encryption_keys_file, not both",
            ));
        }
        (Some(list), None) => list.entries(),
        (None, Some(path)) => {
            let content = std::fs::read_to_string(path).map_err(|e| {
                invalid(
                    "store.encryption_keys_file",
                    format!(
                        "cannot read {}: {e}; check the path and its permissions",
                        path.display()
                    ),
                )
            })?;
            content
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(|line| SecretString::from(line.to_owned()))
                .collect()
        }
        (None, None) => Vec::new(),
    };
    let encryption = if entries.is_empty() {
        None
    } else {
        let key = if raw.encryption_keys_file.is_some() {
            "store.encryption_keys_file"
        } else {
            "store.encryption_keys"
        };
        Some(Arc::new(
            Keyring::parse(&entries).map_err(|e| invalid(key, e.to_string()))?,
        ))
    };
    if !memory && encryption.is_none() && !raw.allow_plaintext {
        return Err(invalid(
            "store.encryption_keys",
            "is required for a Redis store: conversation state and link codes are encrypted at rest. \
             Generate a key with `openssl rand -base64 32` and set encryption_keys = [\"k1:<that value>\"] \
             (or encryption_keys_file, one \"id:key\" per line). To store plain text instead (never in \
             production), set allow_plaintext = true",
        ));
    }
    let password = read_secret("store.password", raw.password, raw.password_file.as_ref())?;
    let tls = url.starts_with("rediss://") || url.starts_with("rediss+cluster://");
    if let Some(path) = &raw.tls_ca_file {
        if !tls {
            return Err(invalid(
                "store.tls_ca_file",
                "only applies to a TLS store.url (rediss:// or rediss+cluster://)",
            ));
        }
        if !path.is_file() {
            return Err(invalid(
                "store.tls_ca_file",
                format!("{} does not exist", path.display()),
            ));
        }
    }
    Ok(StoreSettings {
        url,
        timeout_ms: raw.timeout_ms,
        key_prefix: raw.key_prefix,
        encryption,
        allow_plaintext: raw.allow_plaintext,
        password,
        tls_ca_file: raw.tls_ca_file,
    })
}

/// The admin tokens from `server.admin_token[_file]` (a plain token,
/// named "admin", operator) and `[[server.admin_tokens]]`.
fn admin_tokens(
    plain: Option<SecretString>,
    plain_file: Option<&PathBuf>,
    named: Vec<RawAdminToken>,
    demo: bool,
    warnings: &mut Vec<String>,
) -> Result<Vec<AdminToken>, ConfigError> {
    let mut tokens = Vec::new();
    let check_length = |key: &str, token: &SecretString| {
        if token.expose_secret().len() < 12 {
            Err(invalid(
                key,
                "is too short; use at least 12 characters (32 random ones are better)",
            ))
        } else {
            Ok(())
        }
    };
    if let Some(token) = read_secret("server.admin_token", plain, plain_file)? {
        check_length("server.admin_token", &token)?;
        if !demo {
            warnings.push(
                "server.admin_token holds a plain token; prefer [[server.admin_tokens]] with its sha256 \
                 (`switchboard admin token` prints one)"
                    .to_owned(),
            );
        }
        tokens.push(AdminToken {
            name: "admin".to_owned(),
            role: Role::Operator,
            sha256: AdminToken::digest(token.expose_secret()),
        });
    }
    for (index, raw) in named.into_iter().enumerate() {
        let key = format!("server.admin_tokens[{index}]");
        if raw.name.trim().is_empty() || raw.name.len() > 64 {
            return Err(invalid(format!("{key}.name"), "must be 1-64 characters"));
        }
        if tokens.iter().any(|t: &AdminToken| t.name == raw.name) {
            return Err(invalid(
                format!("{key}.name"),
                format!("'{}' is used twice; names must be unique", raw.name),
            ));
        }
        let plain = read_secret(&format!("{key}.token"), raw.token, raw.token_file.as_ref())?;
        let sha256 = match (raw.sha256, plain) {
            (Some(hex_digest), None) => {
                let mut digest = [0u8; 32];
                hex::decode_to_slice(hex_digest.trim(), &mut digest).map_err(|_| {
                    invalid(
                        format!("{key}.sha256"),
                        "must be 64 hex digits (the SHA-256 of the token)",
                    )
                })?;
                digest
            }
            (None, Some(token)) => {
                check_length(&format!("{key}.token"), &token)?;
                warnings.push(format!(
                    "{key}.token holds a plain token; store its sha256 instead"
                ));
                AdminToken::digest(token.expose_secret())
            }
            (Some(_), Some(_)) => return Err(invalid(&key, "set sha256 or token, not both")),
            (None, None) => return Err(invalid(&key, "needs sha256 (or token / token_file)")),
        };
        tokens.push(AdminToken {
            name: raw.name,
            role: raw.role,
            sha256,
        });
    }
    if tokens.is_empty() {
        if demo {
            tokens.push(AdminToken {
                name: "demo".to_owned(),
                role: Role::Operator,
                sha256: AdminToken::digest(demo::ADMIN_TOKEN),
            });
        } else {
            return Err(invalid(
                "server.admin_token",
                "is required when channels are configured; set [[server.admin_tokens]] (or admin_token / admin_token_file)",
            ));
        }
    }
    Ok(tokens)
}

fn required(
    index: usize,
    platform: &str,
    key: &str,
    value: Option<SecretString>,
    file: Option<&PathBuf>,
    hint: &str,
) -> Result<SecretString, ConfigError> {
    let full = format!("channels[{index}].{key}");
    read_secret(&full, value, file)?.ok_or_else(|| {
        invalid(
            &full,
            format!("is missing: a {platform} channel needs {hint} in {key} or {key}_file"),
        )
    })
}

fn validate_channel(index: usize, raw: RawChannel) -> Result<ChannelSettings, ConfigError> {
    let id_key = format!("channels[{index}].id");
    let id = raw.id.ok_or_else(|| {
        invalid(
            &id_key,
            "is missing; give each channel a short id such as \"shop-telegram\"",
        )
    })?;
    let id = ChannelId::new(id).map_err(|e| invalid(&id_key, e.to_string()))?;
    let platform_key = format!("channels[{index}].platform");
    let platform_name = raw.platform.ok_or_else(|| {
        invalid(
            &platform_key,
            "is missing; use telegram, messenger or whatsapp",
        )
    })?;
    let platform = Platform::from_name(&platform_name).ok_or_else(|| {
        invalid(
            &platform_key,
            format!("'{platform_name}' is unknown; use telegram, messenger or whatsapp"),
        )
    })?;
    let secrets = match platform {
        Platform::Telegram => {
            let bot_token = required(
                index,
                "telegram",
                "bot_token",
                raw.bot_token,
                raw.bot_token_file.as_ref(),
                "the token from @BotFather",
            )?;
            let secret = required(
                index,
                "telegram",
                "secret_token",
                raw.secret_token,
                raw.secret_token_file.as_ref(),
                "the secret_token given to setWebhook (1-256 of A-Z a-z 0-9 _ -)",
            )?;
            let mut secret_tokens = vec![secret];
            secret_tokens.extend(raw.previous_secret_token);
            for token in &secret_tokens {
                let value = token.expose_secret();
                let valid = (1..=256).contains(&value.len())
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !valid {
                    return Err(invalid(
                        format!("channels[{index}].secret_token"),
                        "must be 1-256 characters of A-Z, a-z, 0-9, '_' or '-' (Telegram's rule)",
                    ));
                }
            }
            ChannelSecrets::Telegram {
                bot_token,
                secret_tokens,
            }
        }
        Platform::Messenger => {
            let app_secret = required(
                index,
                "messenger",
                "app_secret",
                raw.app_secret,
                raw.app_secret_file.as_ref(),
                "the App Secret from Meta's App Dashboard (Settings > Basic)",
            )?;
            let verify_token = required(
                index,
                "messenger",
                "verify_token",
                raw.verify_token,
                raw.verify_token_file.as_ref(),
                "the Verify Token you type into the webhook settings",
            )?;
            let page_access_token = required(
                index,
                "messenger",
                "page_access_token",
                raw.page_access_token,
                raw.page_access_token_file.as_ref(),
                "the Page access token",
            )?;
            let mut app_secrets = vec![app_secret];
            app_secrets.extend(raw.previous_app_secret);
            ChannelSecrets::Messenger {
                app_secrets,
                verify_tokens: vec![verify_token],
                page_access_token,
                page_id: raw.page_id,
                outside_window_tag: raw.outside_window_tag,
            }
        }
        Platform::WhatsApp => {
            let app_secret = required(
                index,
                "whatsapp",
                "app_secret",
                raw.app_secret,
                raw.app_secret_file.as_ref(),
                "the App Secret from Meta's App Dashboard (Settings > Basic)",
            )?;
            let verify_token = required(
                index,
                "whatsapp",
                "verify_token",
                raw.verify_token,
                raw.verify_token_file.as_ref(),
                "the Verify Token you type into the webhook settings",
            )?;
            let access_token = required(
                index,
                "whatsapp",
                "access_token",
                raw.access_token,
                raw.access_token_file.as_ref(),
                "a system-user access token",
            )?;
            let phone_number_id = raw.phone_number_id.filter(|p| !p.trim().is_empty()).ok_or_else(|| {
                invalid(
                    format!("channels[{index}].phone_number_id"),
                    "is missing: a whatsapp channel needs the Phone number ID from WhatsApp > API Setup",
                )
            })?;
            let mut app_secrets = vec![app_secret];
            app_secrets.extend(raw.previous_app_secret);
            ChannelSecrets::WhatsApp {
                app_secrets,
                verify_tokens: vec![verify_token],
                access_token,
                phone_number_id,
                outside_window_template: raw.outside_window_template,
            }
        }
    };
    Ok(ChannelSettings {
        id,
        platform,
        secrets,
    })
}

fn demo_channels() -> Result<Vec<ChannelSettings>, ConfigError> {
    let id = |s: &str| ChannelId::new(s).map_err(|e| invalid("channels", e.to_string()));
    let secret = |s: &str| SecretString::from(s.to_owned());
    Ok(vec![
        ChannelSettings {
            id: id(demo::TELEGRAM_CHANNEL)?,
            platform: Platform::Telegram,
            secrets: ChannelSecrets::Telegram {
                bot_token: secret(demo::TELEGRAM_BOT_TOKEN),
                secret_tokens: vec![secret(demo::TELEGRAM_SECRET_TOKEN)],
            },
        },
        ChannelSettings {
            id: id(demo::MESSENGER_CHANNEL)?,
            platform: Platform::Messenger,
            secrets: ChannelSecrets::Messenger {
                app_secrets: vec![secret(demo::MESSENGER_APP_SECRET)],
                verify_tokens: vec![secret(demo::MESSENGER_VERIFY_TOKEN)],
                page_access_token: secret(demo::MESSENGER_PAGE_TOKEN),
                page_id: Some(demo::MESSENGER_PAGE_ID.to_owned()),
                outside_window_tag: None,
            },
        },
        ChannelSettings {
            id: id(demo::WHATSAPP_CHANNEL)?,
            platform: Platform::WhatsApp,
            secrets: ChannelSecrets::WhatsApp {
                app_secrets: vec![secret(demo::WHATSAPP_APP_SECRET)],
                verify_tokens: vec![secret(demo::WHATSAPP_VERIFY_TOKEN)],
                access_token: secret(demo::WHATSAPP_ACCESS_TOKEN),
                phone_number_id: demo::WHATSAPP_PHONE_NUMBER_ID.to_owned(),
                outside_window_template: None,
            },
        },
    ])
}

/// `server.http_workers`, with 0 resolved to half the cores, at least one:
/// the pipeline (worker, sender, outbound HTTP) runs on tokio's threads,
/// one per core, and with as many HTTP threads again both sides took turns
/// on every core. On two cores, 1 answered 4-18% more than 2 and brought
/// the ack p99 under 5 ms (docs/PERFORMANCE.md).
fn resolve_http_workers(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    (cores / 2).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_workers_default_to_half_the_cores_and_a_set_value_is_kept() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        assert_eq!(resolve_http_workers(0), (cores / 2).max(1));
        assert_eq!(resolve_http_workers(3), 3);
        let settings = Settings::load(None).unwrap();
        assert!(settings.server.http_workers >= 1);
    }

    fn write(content: &str) -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        let path = dir.path().join("switchboard.toml");
        std::fs::write(&path, content).unwrap();
        (dir, path)
    }

    /// A tiny self-cleaning temp dir, to avoid a dependency for two tests.
    mod tempdir {
        use std::path::{Path, PathBuf};

        pub struct Dir(PathBuf);

        impl Dir {
            pub fn new() -> Self {
                let path = std::env::temp_dir().join(format!(
                    "switchboard-config-{}-{}",
                    std::process::id(),
                    fastrand::u64(..)
                ));
                std::fs::create_dir_all(&path).unwrap();
                Self(path)
            }

            pub fn path(&self) -> &Path {
                &self.0
            }
        }

        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    const FULL: &str = r#"
[server]
bind = "127.0.0.1:8080"
admin_bind = "127.0.0.1:8081"
admin_token = "change-me-please"
max_body_bytes = 1048576

[store]
url = "memory"

[platforms.telegram]
api_base = "https://api.telegram.org"
[platforms.messenger]
api_base = "https://graph.facebook.com/v21.0"
[platforms.whatsapp]
api_base = "https://graph.facebook.com/v21.0"

[[channels]]
id = "shop-telegram"
platform = "telegram"
bot_token = "123:abc"
secret_token = "s3cr3t_token"

[[channels]]
id = "shop-messenger"
platform = "messenger"
app_secret = "app-secret"
verify_token = "verify"
page_access_token = "page-token"

[[channels]]
id = "shop-whatsapp"
platform = "whatsapp"
app_secret = "app-secret"
verify_token = "verify"
access_token = "wa-token"
phone_number_id = "1234567890"
"#;

    #[test]
    fn admin_tokens_are_kept_as_hashes_with_roles_and_plain_ones_warn() {
        let digest = hex::encode(AdminToken::digest("read-only-token-123"));
        let config = FULL.replace(
            "max_body_bytes = 1048576",
            &format!(
                "max_body_bytes = 1048576\n\n[[server.admin_tokens]]\nname = \"grafana\"\nrole = \"read-only\"\nsha256 = \"{digest}\"\n"
            ),
        );
        let (_dir, path) = write(&config);
        let settings = Settings::load_from(Some(&path), &[]).unwrap();
        let tokens = &settings.server.admin_tokens;
        assert_eq!(tokens.len(), 2);
        assert_eq!(
            (tokens[0].name.as_str(), tokens[0].role),
            ("admin", Role::Operator)
        );
        assert_eq!(
            (tokens[1].name.as_str(), tokens[1].role),
            ("grafana", Role::ReadOnly)
        );
        assert_eq!(tokens[1].sha256, AdminToken::digest("read-only-token-123"));
        assert!(
            settings
                .warnings
                .iter()
                .any(|w| w.contains("server.admin_token")),
            "{:?}",
            settings.warnings
        );
        assert!(!format!("{settings:?}").contains(&digest));

        let bad = config.replace(&digest, "not-hex");
        let (_dir, path) = write(&bad);
        let error = Settings::load_from(Some(&path), &[])
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("server.admin_tokens[0].sha256"),
            "{error}"
        );
    }

    #[test]
    fn send_rates_default_to_the_platforms_limits_and_can_be_raised() {
        let (_dir, path) = write(FULL);
        let settings = Settings::load_from(Some(&path), &[]).unwrap();
        assert_eq!(
            settings.sender.rates,
            SendRates {
                telegram: 30.0,
                messenger: 300.0,
                whatsapp: 80.0,
                chat: 1.0,
                group_per_minute: 20.0,
            }
        );
        let env = |value: &str| {
            vec![(
                "SWITCHBOARD__SENDER__WHATSAPP_PER_SECOND".to_owned(),
                value.to_owned(),
            )]
        };
        let raised = Settings::load_from(Some(&path), &env("1000")).unwrap();
        assert!((raised.sender.rates.whatsapp - 1000.0).abs() < f64::EPSILON);
        assert!((raised.sender.rates.for_platform(Platform::Telegram) - 30.0).abs() < f64::EPSILON);
        for bad in ["0", "-5", "1e9"] {
            let error = Settings::load_from(Some(&path), &env(bad))
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with("sender.whatsapp_per_second"),
                "{bad}: {error}"
            );
        }
        // Per-chat pacing is lifted the same way (a load test against the
        // simulator), and refuses nonsense with the key's name.
        let chat = |key: &str, value: &str| vec![(key.to_owned(), value.to_owned())];
        let lifted = Settings::load_from(
            Some(&path),
            &[
                chat("SWITCHBOARD__SENDER__CHAT_PER_SECOND", "100000"),
                chat("SWITCHBOARD__SENDER__GROUP_PER_MINUTE", "6000000"),
            ]
            .concat(),
        )
        .unwrap();
        assert!((lifted.sender.rates.chat - 100_000.0).abs() < f64::EPSILON);
        assert!((lifted.sender.rates.group_per_minute - 6_000_000.0).abs() < f64::EPSILON);
        for (key, name) in [
            (
                "SWITCHBOARD__SENDER__CHAT_PER_SECOND",
                "sender.chat_per_second",
            ),
            (
                "SWITCHBOARD__SENDER__GROUP_PER_MINUTE",
                "sender.group_per_minute",
            ),
        ] {
            for bad in ["0", "-1", "1e12", "nan"] {
                let error = Settings::load_from(Some(&path), &chat(key, bad))
                    .unwrap_err()
                    .to_string();
                assert!(error.starts_with(name), "{key}={bad}: {error}");
            }
        }
    }

    #[test]
    fn tls_needs_both_files() {
        let config = FULL.replace(
            "max_body_bytes = 1048576",
            "max_body_bytes = 1048576\ntls_cert = \"/nonexistent.pem\"",
        );
        let (_dir, path) = write(&config);
        let error = Settings::load_from(Some(&path), &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("tls_cert"), "{error}");
    }

    #[test]
    fn no_config_runs_the_demo_on_loopback_with_the_sandbox() {
        let settings = Settings::load_from(None, &[]).unwrap();
        assert!(settings.demo && settings.sandbox);
        assert_eq!(settings.channels.len(), 3);
        assert_eq!(settings.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.server.admin_bind.to_string(), "127.0.0.1:8081");
        assert_eq!(settings.server.admin_tokens.len(), 1);
        assert_eq!(
            settings.server.admin_tokens[0].sha256,
            AdminToken::digest(demo::ADMIN_TOKEN)
        );
        assert_eq!(settings.server.admin_tokens[0].role, Role::Operator);
        assert_eq!(
            settings.api_base(Platform::Telegram, Some("http://127.0.0.1:8080/sandbox")),
            "http://127.0.0.1:8080/sandbox/telegram"
        );
    }

    #[test]
    fn the_documented_config_shape_loads_and_debug_shows_no_secret() {
        let (_dir, path) = write(FULL);
        let settings = Settings::load_from(Some(&path), &[]).unwrap();
        assert!(!settings.demo && !settings.sandbox);
        assert_eq!(settings.channels.len(), 3);
        assert_eq!(
            settings.api_base(Platform::WhatsApp, None),
            "https://graph.facebook.com/v21.0"
        );
        let debug = format!("{settings:?}");
        for secret in [
            "change-me-please",
            "123:abc",
            "s3cr3t_token",
            "app-secret",
            "page-token",
            "wa-token",
        ] {
            assert!(!debug.contains(secret), "{secret} leaked into Debug");
        }
    }

    #[test]
    fn environment_variables_override_the_file() {
        let (_dir, path) = write(FULL);
        let env = vec![
            (
                "SWITCHBOARD__SERVER__BIND".to_owned(),
                "127.0.0.1:9999".to_owned(),
            ),
            (
                "SWITCHBOARD__SERVER__MAX_BODY_BYTES".to_owned(),
                "2097152".to_owned(),
            ),
        ];
        let settings = Settings::load_from(Some(&path), &env).unwrap();
        assert_eq!(settings.server.bind.to_string(), "127.0.0.1:9999");
        assert_eq!(settings.server.max_body_bytes, 2_097_152);
    }

    #[test]
    fn secrets_can_come_from_files() {
        let dir = tempdir::Dir::new();
        let token_path = dir.path().join("bot_token");
        std::fs::write(&token_path, "999:from-file\n").unwrap();
        let config = FULL.replace(
            "bot_token = \"123:abc\"",
            &format!("bot_token_file = \"{}\"", token_path.display()),
        );
        let (_dir2, path) = write(&config);
        let settings = Settings::load_from(Some(&path), &[]).unwrap();
        let ChannelSecrets::Telegram { bot_token, .. } = &settings.channels[0].secrets else {
            panic!("telegram channel expected");
        };
        assert_eq!(bot_token.expose_secret(), "999:from-file");
    }

    #[test]
    fn invalid_config_names_the_key_and_what_to_do() {
        let cases = [
            (
                FULL.replace("bind = \"127.0.0.1:8080\"", "bind = \"localhost\""),
                "server.bind",
            ),
            (
                FULL.replace("platform = \"whatsapp\"", "platform = \"sms\""),
                "channels[2].platform",
            ),
            (
                FULL.replace("phone_number_id = \"1234567890\"", ""),
                "channels[2].phone_number_id",
            ),
            (
                FULL.replace("id = \"shop-messenger\"", "id = \"shop-telegram\""),
                "channels[1].id",
            ),
            (
                FULL.replace(
                    "secret_token = \"s3cr3t_token\"",
                    "secret_token = \"no spaces!\"",
                ),
                "channels[0].secret_token",
            ),
            (
                FULL.replace("admin_token = \"change-me-please\"", ""),
                "server.admin_token",
            ),
            (
                FULL.replace("url = \"memory\"", "url = \"mongodb://x\""),
                "store.url",
            ),
        ];
        for (config, key) in cases {
            let (_dir, path) = write(&config);
            let error = Settings::load_from(Some(&path), &[])
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(key),
                "expected an error naming {key}, got: {error}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_refused_rather_than_silently_ignored() {
        let (_dir, path) = write(&FULL.replace("max_body_bytes", "max_body_byte"));
        assert!(Settings::load_from(Some(&path), &[]).is_err());
    }

    #[test]
    fn the_demo_refuses_a_public_bind() {
        let env = vec![(
            "SWITCHBOARD__SERVER__BIND".to_owned(),
            "0.0.0.0:8080".to_owned(),
        )];
        let error = Settings::load_from(None, &env).unwrap_err().to_string();
        assert!(error.contains("loopback"), "{error}");
    }

    const KEY1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const KEY2: &str = "k2:HxAbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgEAAAA=";

    fn with_store(store: &str) -> String {
        FULL.replace(
            "[store]\nurl = \"memory\"\n",
            &format!("[store]\n{store}\n"),
        )
    }

    fn store_error(store: &str) -> String {
        let (_dir, path) = write(&with_store(store));
        Settings::load_from(Some(&path), &[])
            .unwrap_err()
            .to_string()
    }

    fn store_settings(store: &str, env: &[(&str, &str)]) -> StoreSettings {
        let (_dir, path) = write(&with_store(store));
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::load_from(Some(&path), &env).unwrap().store
    }

    #[test]
    fn a_redis_store_without_keys_refuses_to_start_and_says_how_to_make_one() {
        let error = store_error("url = \"redis://127.0.0.1:6379/0\"");
        assert!(error.starts_with("store.encryption_keys"), "{error}");
        assert!(error.contains("openssl rand -base64 32"), "{error}");
        assert!(error.contains("allow_plaintext"), "{error}");
        let settings = store_settings(
            "url = \"redis://127.0.0.1:6379/0\"\nallow_plaintext = true",
            &[],
        );
        assert!(settings.encryption.is_none() && settings.allow_plaintext);
        assert_eq!(settings.timeout_ms, 2000);
    }

    #[test]
    fn the_store_url_is_a_one_line_switch_from_file_or_environment() {
        let settings = store_settings(
            &format!(
                "url = \"redis://127.0.0.1:6379/0\"\nencryption_keys = [\"{KEY2}\", \"{KEY1}\"]"
            ),
            &[],
        );
        let keyring = settings.encryption.unwrap();
        assert_eq!(keyring.active_id(), "k2");
        assert_eq!(keyring.key_ids().collect::<Vec<_>>(), ["k2", "k1"]);

        let keys = format!("{KEY1},{KEY2}");
        let settings = store_settings(
            "url = \"memory\"",
            &[
                (
                    "SWITCHBOARD__STORE__URL",
                    "redis+cluster://10.0.0.1:7000,10.0.0.2:7000",
                ),
                ("SWITCHBOARD__STORE__ENCRYPTION_KEYS", &keys),
                ("SWITCHBOARD__STORE__TIMEOUT_MS", "500"),
            ],
        );
        assert_eq!(settings.url, "redis+cluster://10.0.0.1:7000,10.0.0.2:7000");
        assert_eq!(settings.timeout_ms, 500);
        assert_eq!(settings.encryption.unwrap().active_id(), "k1");
    }

    #[test]
    fn encryption_keys_can_come_from_a_file_with_comments() {
        let dir = tempdir::Dir::new();
        let keys = dir.path().join("keys");
        std::fs::write(&keys, format!("# newest first\n{KEY2}\n\n{KEY1}\n")).unwrap();
        let settings = store_settings(
            &format!(
                "url = \"rediss://cache.internal:6380\"\nencryption_keys_file = \"{}\"",
                keys.display()
            ),
            &[],
        );
        assert_eq!(settings.encryption.unwrap().active_id(), "k2");
    }

    #[test]
    fn bad_store_settings_name_the_key_and_never_echo_secrets() {
        let cases = [
            (
                "url = \"redis+cluster://\"\nallow_plaintext = true",
                "store.url",
            ),
            (
                "url = \"redis+cluster://a:1,b:2/4\"\nallow_plaintext = true",
                "store.url",
            ),
            ("url = \"http://x\"", "store.url"),
            (
                "url = \"redis://h:1\"\nencryption_keys = [\"k1:c2VjcmV0LWJ1dC10b28tc2hvcnQ=\"]",
                "store.encryption_keys",
            ),
            (
                &format!("url = \"redis://h:1\"\nencryption_keys = [\"{KEY1}\", \"{KEY1}\"]"),
                "store.encryption_keys",
            ),
            (
                "url = \"redis://h:1\"\nallow_plaintext = true\ntimeout_ms = 0",
                "store.timeout_ms",
            ),
            (
                "url = \"redis://h:1\"\nallow_plaintext = true\nkey_prefix = \"{a}\"",
                "store.key_prefix",
            ),
            (
                "url = \"redis://h:1\"\nallow_plaintext = true\ntls_ca_file = \"/etc/hosts\"",
                "store.tls_ca_file",
            ),
        ];
        for (store, key) in cases {
            let error = store_error(store);
            assert!(error.starts_with(key), "expected {key}: {error}");
            assert!(!error.contains("c2VjcmV0"), "key material in: {error}");
        }
    }

    #[test]
    fn store_debug_shows_neither_password_nor_key_material() {
        let settings = store_settings(
            &format!(
                "url = \"redis://app:hunter2@cache:6379/0\"\nencryption_keys = [\"{KEY1}\"]\npassword = \"override-pw\""
            ),
            &[],
        );
        let debug = format!("{settings:?}");
        for secret in ["hunter2", "override-pw", "AAECAwQF"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(debug.contains("k1"), "key ids are shown: {debug}");
    }
}
