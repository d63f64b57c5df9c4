//! Channels registered at run time: `switchboard channels add|check|remove`
//! talk to the admin API (`admin_api.rs`), which calls the platform
//! (`platform_api.rs`: Telegram's setWebhook family, Graph's
//! `subscribed_apps`), keeps the channel sealed in the store (`record.rs`)
//! and swaps it into the live [`ChannelRegistry`].
//!
//! Every replica polls the store's channel version every
//! `registration.refresh_secs` and reloads when it moved; the replica that
//! made a change reloads at once. Channels from the config file are never
//! changed or removed here, and win over a stored channel with their id.
//!
//! It must not fetch any URL it is given: the public URL is only sent to the
//! platform, and platform requests go to the configured API bases.

pub mod admin_api;
pub mod client;
pub mod platform_api;
pub mod record;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchboard_model::{ChannelId, Platform};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::config::{ChannelSecrets, ChannelSettings, ConfigError};
use crate::metrics::Metrics;
use crate::registry::{ChannelRegistry, ChannelSource};
use crate::store::{Store, StoreError};
use platform_api::{
    ApiError, MESSENGER_FIELDS, PlatformApi, SetWebhook, TELEGRAM_ALLOWED_UPDATES, is_bot_token,
    is_graph_id,
};
use record::{RECORD_VERSION, StoredChannel, StoredSecrets, StoredTemplate};

/// `[registration]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationSettings {
    /// The HTTPS base URL the platforms reach the public listener at (e.g.
    /// `https://bot.example.com`): the default for `channels add --public-url`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// How often each replica looks for channels added or removed elsewhere.
    #[serde(default = "default_refresh_secs")]
    pub refresh_secs: u64,
    /// Telegram's `max_connections` for `setWebhook` (1-100).
    #[serde(default = "default_max_connections")]
    pub telegram_max_connections: u32,
    /// With no `[[channels]]` in the file: start with no channels at all
    /// (and register them with `switchboard channels add`) instead of
    /// running the demo.
    #[serde(default)]
    pub start_empty: bool,
}

fn default_refresh_secs() -> u64 {
    5
}

fn default_max_connections() -> u32 {
    40
}

impl Default for RegistrationSettings {
    fn default() -> Self {
        Self {
            public_url: None,
            refresh_secs: default_refresh_secs(),
            telegram_max_connections: default_max_connections(),
            start_empty: false,
        }
    }
}

impl RegistrationSettings {
    pub fn validated(mut self) -> Result<Self, ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.to_owned(),
            message: message.to_owned(),
        };
        if let Some(url) = &self.public_url {
            self.public_url = Some(
                public_base(url).map_err(|message| invalid("registration.public_url", message))?,
            );
        }
        if !(1..=300).contains(&self.refresh_secs) {
            return Err(invalid(
                "registration.refresh_secs",
                "must be between 1 and 300; 5 picks up a new channel on every replica within seconds",
            ));
        }
        if !(1..=100).contains(&self.telegram_max_connections) {
            return Err(invalid(
                "registration.telegram_max_connections",
                "must be between 1 and 100 (Telegram's range)",
            ));
        }
        Ok(self)
    }
}

/// Checks a public base URL: `https://host[:port][/path]`, no query,
/// fragment or credentials. Returns it without a trailing `/`.
pub fn public_base(value: &str) -> Result<String, &'static str> {
    let url = url::Url::parse(value.trim()).map_err(
        |_| "is not a URL; use the HTTPS address the platforms reach, e.g. https://bot.example.com",
    )?;
    if url.scheme() != "https" {
        return Err(
            "must be https://: Telegram and Meta only deliver webhooks over HTTPS with a valid certificate",
        );
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host");
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err("must not carry a query, a fragment or credentials");
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("{field} {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(
        "channel '{0}' is defined in the config file; change it there and restart (the admin API only manages channels it added)"
    )]
    Configured(String),
    #[error("channel '{0}' already exists; pass --replace to register it again")]
    Exists(String),
    #[error("there is no channel '{0}'")]
    NotFound(String),
    #[error(
        "no public URL: pass --public-url https://... or set registration.public_url in the config"
    )]
    NoPublicUrl,
    #[error(transparent)]
    Platform(#[from] ApiError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot encode the channel record")]
    Encode,
    #[error("the operating system gave no randomness for a secret")]
    Randomness,
}

impl RegistrationError {
    pub fn status(&self) -> u16 {
        match self {
            RegistrationError::Invalid { .. } | RegistrationError::NoPublicUrl => 400,
            RegistrationError::NotFound(_) => 404,
            RegistrationError::Configured(_) | RegistrationError::Exists(_) => 409,
            RegistrationError::Platform(_) => 502,
            RegistrationError::Store(_) => 503,
            RegistrationError::Encode | RegistrationError::Randomness => 500,
        }
    }

    pub fn hint(&self) -> Option<&'static str> {
        match self {
            RegistrationError::Platform(error) => error.hint(),
            RegistrationError::Store(_) => {
                Some("the store (Redis) did not answer; check /readyz and try again")
            }
            RegistrationError::Exists(_) => Some(
                "`switchboard channels remove ID` first, or add --replace to re-register it with new secrets",
            ),
            _ => None,
        }
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> RegistrationError {
    RegistrationError::Invalid {
        field,
        message: message.into(),
    }
}

/// One step of a registration, reported back to the operator in order.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub step: &'static str,
    /// `ok`, `failed` or `skipped`.
    pub status: &'static str,
    pub detail: String,
}

#[derive(Debug, Default)]
pub struct Steps(pub Vec<Step>);

impl Steps {
    fn ok(&mut self, step: &'static str, detail: impl Into<String>) {
        self.push(step, "ok", detail);
    }
    fn failed(&mut self, step: &'static str, detail: impl Into<String>) {
        self.push(step, "failed", detail);
    }
    fn skipped(&mut self, step: &'static str, detail: impl Into<String>) {
        self.push(step, "skipped", detail);
    }
    fn push(&mut self, step: &'static str, status: &'static str, detail: impl Into<String>) {
        let detail = detail.into();
        info!(step, status, "channel registration");
        self.0.push(Step {
            step,
            status,
            detail,
        });
    }
}

/// A failed operation: the error and the steps that ran before it.
#[derive(Debug)]
pub struct Failure {
    pub error: RegistrationError,
    pub steps: Vec<Step>,
}

/// `POST /admin/channels`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddChannel {
    pub platform: Platform,
    pub id: String,
    #[serde(default)]
    pub public_url: Option<String>,
    #[serde(default)]
    pub replace: bool,
    #[serde(default)]
    pub bot_token: Option<SecretString>,
    #[serde(default, deserialize_with = "whole_number")]
    pub max_connections: Option<u32>,
    #[serde(default)]
    pub drop_pending_updates: bool,
    #[serde(default)]
    pub app_secret: Option<SecretString>,
    #[serde(default)]
    pub verify_token: Option<SecretString>,
    #[serde(default)]
    pub page_access_token: Option<SecretString>,
    #[serde(default)]
    pub page_id: Option<String>,
    #[serde(default)]
    pub access_token: Option<SecretString>,
    #[serde(default)]
    pub phone_number_id: Option<String>,
    #[serde(default)]
    pub waba_id: Option<String>,
    #[serde(default = "yes")]
    pub subscribe: bool,
    #[serde(default)]
    pub outside_window_tag: Option<String>,
    #[serde(default)]
    pub outside_window_template: Option<StoredTemplate>,
}

fn yes() -> bool {
    true
}

/// A token sent as `Authorization: Bearer ...`: Meta's are printable
/// ASCII, and anything else could not be sent in a header at all, so it is
/// refused here (400) rather than failing at the first call (502).
fn bearer_token(field: &'static str, token: &SecretString) -> Result<(), RegistrationError> {
    let value = token.expose_secret();
    if (1..=4096).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(invalid(
            field,
            "must be the token exactly as Meta shows it: 1-4096 printable ASCII characters, no spaces",
        ))
    }
}

/// JSON has one number type: `40.0` is as much an integer as `40` (JSON
/// Schema agrees, and some clients print every number with a fraction).
fn whole_number<'de, D>(deserializer: D) -> Result<Option<u32>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = number.as_u64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= f64::from(u32::MAX))
            // In range and whole, so the cast is exact.
            .map(|f| f as u64)
    });
    whole
        .and_then(|n| u32::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom("must be a whole number between 0 and 4294967295"))
}

/// `DELETE /admin/channels/{id}` options.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveOptions {
    /// Telegram: drop the updates waiting for delivery.
    #[serde(default)]
    pub drop_pending_updates: bool,
    /// Leave the platform side (webhook, subscription) as it is.
    #[serde(default)]
    pub keep_webhook: bool,
    /// Remove the channel even when the platform call fails.
    #[serde(default)]
    pub force: bool,
}

/// Registers, checks and removes channels; keeps the registry in step with
/// the store.
pub struct Registrar {
    api: PlatformApi,
    store: Store,
    registry: ChannelRegistry,
    configured: Vec<ChannelSettings>,
    settings: RegistrationSettings,
    metrics: Arc<Metrics>,
    /// The store's channel version the registry reflects.
    seen_version: Mutex<Option<u64>>,
    /// One change at a time on this replica.
    changes: Mutex<()>,
}

impl Registrar {
    pub fn new(
        api: PlatformApi,
        store: Store,
        registry: ChannelRegistry,
        configured: Vec<ChannelSettings>,
        settings: RegistrationSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            api,
            store,
            registry,
            configured,
            settings,
            metrics,
            seen_version: Mutex::new(None),
            changes: Mutex::new(()),
        }
    }

    pub fn refresh_interval(&self) -> Duration {
        Duration::from_secs(self.settings.refresh_secs)
    }

    /// Reloads the stored channels when the store's version moved. True
    /// when the registry was rebuilt.
    pub async fn refresh(&self) -> Result<bool, StoreError> {
        let mut seen = self.seen_version.lock().await;
        let version = self.store.channels_version().await?;
        if *seen == Some(version) {
            return Ok(false);
        }
        let (version, records) = self.store.channel_records().await?;
        let mut stored = Vec::with_capacity(records.len());
        for (id, bytes) in records {
            match StoredChannel::from_bytes(&bytes) {
                Ok(record) if record.id.as_str() == id => stored.push(record.to_settings()),
                Ok(_) => warn!(channel = %id, "a stored channel record names another id; skipped"),
                Err(error) => {
                    warn!(channel = %id, error = %error, "a stored channel record cannot be read; skipped");
                }
            }
        }
        for id in self.registry.set_stored(&stored) {
            warn!(channel = %id, "a channel in the store has the id of a config-file channel; the config file's is used");
        }
        let all = self.registry.all();
        for source in [ChannelSource::Config, ChannelSource::Store] {
            let count = all.iter().filter(|c| c.source == source).count();
            self.metrics
                .channels(source.as_str())
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        *seen = Some(version);
        Ok(true)
    }

    async fn stored(&self) -> Result<Vec<StoredChannel>, RegistrationError> {
        let (_, records) = self.store.channel_records().await?;
        Ok(records
            .iter()
            .filter_map(|(_, bytes)| StoredChannel::from_bytes(bytes).ok())
            .collect())
    }

    async fn save(&self, record: &StoredChannel) -> Result<(), RegistrationError> {
        let bytes = record.to_bytes().map_err(|_| RegistrationError::Encode)?;
        self.store
            .put_channel_record(record.id.as_str(), bytes)
            .await?;
        self.refresh_after_change().await;
        Ok(())
    }

    async fn refresh_after_change(&self) {
        if let Err(error) = self.refresh().await {
            warn!(error = %error, "channels changed but could not be reloaded yet; the next refresh will");
        }
    }

    /// Puts back what was there before a failed registration.
    async fn roll_back(&self, id: &ChannelId, previous: Option<StoredChannel>, steps: &mut Steps) {
        let result = match &previous {
            Some(record) => self
                .save(record)
                .await
                .map(|()| "the previous registration is back"),
            None => match self.store.delete_channel_record(id.as_str()).await {
                Ok(_) => {
                    self.refresh_after_change().await;
                    Ok("nothing was kept")
                }
                Err(error) => Err(error.into()),
            },
        };
        match result {
            Ok(detail) => steps.ok("roll back", detail),
            Err(error) => steps.failed("roll back", error.to_string()),
        }
    }

    fn webhook_url(
        &self,
        public_url: Option<&str>,
        platform: Platform,
        id: &ChannelId,
    ) -> Result<String, RegistrationError> {
        let base = match public_url {
            Some(url) => public_base(url).map_err(|message| invalid("public_url", message))?,
            None => self
                .settings
                .public_url
                .clone()
                .ok_or(RegistrationError::NoPublicUrl)?,
        };
        Ok(format!("{base}/webhooks/{}/{id}", platform.as_str()))
    }

    /// Registers a channel; on success, what the operator needs next.
    pub async fn add(&self, request: AddChannel) -> Result<Value, Failure> {
        let _one_at_a_time = self.changes.lock().await;
        let mut steps = Steps::default();
        match self.add_steps(request, &mut steps).await {
            Ok(mut answer) => {
                answer["steps"] = json!(steps.0);
                Ok(answer)
            }
            Err(error) => Err(Failure {
                error,
                steps: steps.0,
            }),
        }
    }

    async fn add_steps(
        &self,
        request: AddChannel,
        steps: &mut Steps,
    ) -> Result<Value, RegistrationError> {
        let id = ChannelId::new(request.id.trim()).map_err(|e| invalid("id", e.to_string()))?;
        if self.registry.is_configured(id.as_str()) {
            return Err(RegistrationError::Configured(id.to_string()));
        }
        let previous = self
            .stored()
            .await?
            .into_iter()
            .find(|record| record.id == id);
        if previous.is_some() && !request.replace {
            return Err(RegistrationError::Exists(id.to_string()));
        }
        let webhook_url = self.webhook_url(request.public_url.as_deref(), request.platform, &id)?;
        match request.platform {
            Platform::Telegram => {
                self.add_telegram(request, id, webhook_url, previous, steps)
                    .await
            }
            Platform::Messenger | Platform::WhatsApp => {
                self.add_meta(request, id, webhook_url, previous, steps)
                    .await
            }
        }
    }

    async fn add_telegram(
        &self,
        request: AddChannel,
        id: ChannelId,
        webhook_url: String,
        previous: Option<StoredChannel>,
        steps: &mut Steps,
    ) -> Result<Value, RegistrationError> {
        let bot_token = request.bot_token.ok_or_else(|| {
            invalid(
                "bot_token",
                "is required for a telegram channel: the token @BotFather gave (/newbot or /token)",
            )
        })?;
        if !is_bot_token(bot_token.expose_secret()) {
            return Err(invalid(
                "bot_token",
                "is not a bot token: it looks like 123456789:AAE... (digits, a colon, then letters, digits, _ or -)",
            ));
        }
        let max_connections = request
            .max_connections
            .unwrap_or(self.settings.telegram_max_connections);
        if !(1..=100).contains(&max_connections) {
            return Err(invalid("max_connections", "must be between 1 and 100"));
        }
        let bot = match self.api.get_me(&bot_token).await {
            Ok(bot) => bot,
            Err(error) => {
                steps.failed("getMe", error.to_string());
                return Err(error.into());
            }
        };
        let username = bot.username.clone();
        steps.ok(
            "getMe",
            format!(
                "the token belongs to @{} (id {})",
                username.as_deref().unwrap_or("?"),
                bot.id
            ),
        );
        let secret_token = SecretString::from(random_token(32)?);
        let record = StoredChannel {
            v: RECORD_VERSION,
            id: id.clone(),
            webhook_url: webhook_url.clone(),
            created_at_ms: crate::sender::now_ms(),
            secrets: StoredSecrets::Telegram {
                bot_token: bot_token.clone(),
                secret_token: secret_token.clone(),
                previous_secret_token: previous.as_ref().and_then(|p| match &p.secrets {
                    // Keeps deliveries signed with the old secret working
                    // until Telegram uses the new one.
                    StoredSecrets::Telegram { secret_token, .. } => Some(secret_token.clone()),
                    _ => None,
                }),
                username: username.clone(),
            },
        };
        self.save(&record).await?;
        steps.ok("store", self.stored_detail());
        let set = SetWebhook {
            url: &webhook_url,
            secret_token: &secret_token,
            max_connections,
            drop_pending_updates: request.drop_pending_updates,
        };
        if let Err(error) = self.api.set_webhook(&bot_token, &set).await {
            steps.failed("setWebhook", error.to_string());
            self.roll_back(&id, previous, steps).await;
            return Err(error.into());
        }
        steps.ok(
            "setWebhook",
            format!(
                "Telegram will POST {} to {webhook_url} with a new secret token (max_connections {max_connections})",
                TELEGRAM_ALLOWED_UPDATES.join(", ")
            ),
        );
        Ok(json!({
            "channel": summary(&id, Platform::Telegram, &webhook_url),
            "bot_username": username,
            "webhook_url": webhook_url,
            "allowed_updates": TELEGRAM_ALLOWED_UPDATES,
            "max_connections": max_connections,
            "next": [
                format!("Check delivery: switchboard channels check {id}"),
                format!("Write to @{} on Telegram; the reply comes from the shop assistant", username.as_deref().unwrap_or("your bot")),
            ],
        }))
    }

    async fn add_meta(
        &self,
        request: AddChannel,
        id: ChannelId,
        webhook_url: String,
        previous: Option<StoredChannel>,
        steps: &mut Steps,
    ) -> Result<Value, RegistrationError> {
        let platform = request.platform;
        let app_secret = request.app_secret.ok_or_else(|| {
            invalid(
                "app_secret",
                "is required: the App Secret from Meta's App Dashboard (App settings > Basic)",
            )
        })?;
        let verify_token = match request.verify_token {
            Some(token) => {
                let value = token.expose_secret();
                if value.is_empty() || value.len() > 256 || value.chars().any(char::is_whitespace) {
                    return Err(invalid(
                        "verify_token",
                        "must be 1-256 characters without spaces",
                    ));
                }
                token
            }
            None => SecretString::from(random_token(24)?),
        };
        let (secrets, object_id, token, label) = if platform == Platform::Messenger {
            let page_access_token = request.page_access_token.ok_or_else(|| {
                invalid(
                    "page_access_token",
                    "is required for a messenger channel: a Page access token (Messenger > Settings > Access tokens)",
                )
            })?;
            bearer_token("page_access_token", &page_access_token)?;
            let page_id = request
                .page_id
                .filter(|p| is_graph_id(p))
                .ok_or_else(|| invalid("page_id", "is required: the Page's numeric id (Page > About > Page transparency, or the Messenger settings)"))?;
            let secrets = StoredSecrets::Messenger {
                app_secret,
                verify_token: verify_token.clone(),
                page_access_token: page_access_token.clone(),
                page_id: page_id.clone(),
                outside_window_tag: request.outside_window_tag,
            };
            (secrets, Some(page_id), page_access_token, "page")
        } else {
            let access_token = request.access_token.ok_or_else(|| {
                invalid(
                    "access_token",
                    "is required for a whatsapp channel: a system-user access token with whatsapp_business_messaging",
                )
            })?;
            bearer_token("access_token", &access_token)?;
            let phone_number_id = request
                .phone_number_id
                .filter(|p| is_graph_id(p))
                .ok_or_else(|| invalid("phone_number_id", "is required: the Phone number ID from WhatsApp > API Setup (digits, not the phone number)"))?;
            let waba_id = request.waba_id.filter(|w| !w.trim().is_empty());
            if let Some(waba) = &waba_id
                && !is_graph_id(waba)
            {
                return Err(invalid(
                    "waba_id",
                    "must be the WhatsApp Business Account ID (digits) from WhatsApp > API Setup",
                ));
            }
            if request.subscribe && waba_id.is_none() {
                return Err(invalid(
                    "waba_id",
                    "is required to subscribe the app to the WhatsApp Business Account (WhatsApp > API Setup); or pass --no-subscribe",
                ));
            }
            let secrets = StoredSecrets::WhatsApp {
                app_secret,
                verify_token: verify_token.clone(),
                access_token: access_token.clone(),
                phone_number_id,
                waba_id: waba_id.clone(),
                outside_window_template: request.outside_window_template,
            };
            (secrets, waba_id, access_token, "WhatsApp Business Account")
        };
        let record = StoredChannel {
            v: RECORD_VERSION,
            id: id.clone(),
            webhook_url: webhook_url.clone(),
            created_at_ms: crate::sender::now_ms(),
            secrets,
        };
        self.save(&record).await?;
        steps.ok("store", self.stored_detail());
        let fields = (platform == Platform::Messenger).then_some(MESSENGER_FIELDS);
        match (&object_id, request.subscribe) {
            (Some(object_id), true) => {
                if let Err(error) = self
                    .api
                    .subscribe(platform, object_id, &token, fields)
                    .await
                {
                    steps.failed("subscribed_apps", error.to_string());
                    self.roll_back(&id, previous, steps).await;
                    return Err(error.into());
                }
                steps.ok(
                    "subscribed_apps",
                    match fields {
                        Some(fields) => format!(
                            "{label} {object_id} is subscribed to the app for {}",
                            fields.join(", ")
                        ),
                        None => format!("{label} {object_id} is subscribed to the app"),
                    },
                );
            }
            _ => steps.skipped("subscribed_apps", "not asked to subscribe (--no-subscribe)"),
        }
        let verify = verify_token.expose_secret();
        let next = if platform == Platform::Messenger {
            vec![
                format!(
                    "Meta App Dashboard > Messenger > Messenger API Settings > Configure webhooks: Callback URL {webhook_url}, Verify token {verify}, then Verify and save"
                ),
                format!(
                    "In the same section, subscribe the app's Page fields: {}",
                    MESSENGER_FIELDS.join(", ")
                ),
                "If the app's callback URL already points at another Switchboard channel with this app secret, leave it: entries are routed by page id".to_owned(),
                format!("Check the subscription: switchboard channels check {id}"),
            ]
        } else {
            vec![
                format!(
                    "Meta App Dashboard > WhatsApp > Configuration > Webhook: Callback URL {webhook_url}, Verify token {verify}, then Verify and save"
                ),
                "Under Webhook fields, subscribe to messages".to_owned(),
                "If the app's callback URL already points at another Switchboard channel with this app secret, leave it: entries are routed by phone number id".to_owned(),
                format!("Check the subscription: switchboard channels check {id}"),
            ]
        };
        Ok(json!({
            "channel": summary(&id, platform, &webhook_url),
            "callback_url": webhook_url,
            "verify_token": verify,
            "next": next,
        }))
    }

    fn stored_detail(&self) -> String {
        format!(
            "kept in the store (sealed); this replica uses it now, the others within {} s",
            self.settings.refresh_secs
        )
    }

    /// Asks the platform whether the channel's webhook is healthy.
    pub async fn check(&self, id: &str) -> Result<Value, Failure> {
        let mut steps = Steps::default();
        match self.check_steps(id, &mut steps).await {
            Ok(mut answer) => {
                answer["steps"] = json!(steps.0);
                Ok(answer)
            }
            Err(error) => Err(Failure {
                error,
                steps: steps.0,
            }),
        }
    }

    /// The channel's secrets and what is known about its registration.
    async fn find(&self, id: &str) -> Result<Found, RegistrationError> {
        if let Some(settings) = self.configured.iter().find(|c| c.id.as_str() == id) {
            let webhook_url = self
                .settings
                .public_url
                .as_ref()
                .map(|base| format!("{base}/webhooks/{}/{id}", settings.platform.as_str()));
            return Ok(Found {
                source: ChannelSource::Config,
                platform: settings.platform,
                webhook_url,
                target: Target::from_config(&settings.secrets),
            });
        }
        let record = self
            .stored()
            .await?
            .into_iter()
            .find(|record| record.id.as_str() == id)
            .ok_or_else(|| RegistrationError::NotFound(id.to_owned()))?;
        Ok(Found {
            source: ChannelSource::Store,
            platform: record.secrets.platform(),
            webhook_url: Some(record.webhook_url.clone()),
            target: Target::from_record(&record.secrets),
        })
    }

    async fn check_steps(&self, id: &str, steps: &mut Steps) -> Result<Value, RegistrationError> {
        let found = self.find(id).await?;
        let mut problems: Vec<String> = Vec::new();
        let mut answer = json!({
            "id": id,
            "platform": found.platform,
            "source": found.source.as_str(),
            "expected_url": found.webhook_url,
        });
        match &found.target {
            Target::Telegram { bot_token } => {
                let info = match self.api.get_webhook_info(bot_token).await {
                    Ok(info) => info,
                    Err(error) => {
                        steps.failed("getWebhookInfo", error.to_string());
                        return Err(error.into());
                    }
                };
                steps.ok(
                    "getWebhookInfo",
                    format!(
                        "url {}, {} pending update(s)",
                        if info.url.is_empty() {
                            "(none)"
                        } else {
                            &info.url
                        },
                        info.pending_update_count
                    ),
                );
                let url_matches = found.webhook_url.as_ref().map(|url| *url == info.url);
                if info.url.is_empty() {
                    problems.push("no webhook is set: Telegram delivers this bot's updates nowhere; run `switchboard channels add telegram ... --replace`".to_owned());
                } else if url_matches == Some(false) {
                    problems.push(format!(
                        "the webhook points at {}, not at this gateway ({}); another program may have called setWebhook",
                        info.url,
                        found.webhook_url.as_deref().unwrap_or("")
                    ));
                }
                let now = crate::sender::now_ms() / 1000;
                if let (Some(at), Some(message)) = (info.last_error_date, &info.last_error_message)
                    && now - at < 24 * 3600
                {
                    problems.push(format!(
                        "Telegram's last delivery attempt failed {} min ago: {message}",
                        (now - at).max(0) / 60
                    ));
                }
                if let Some(allowed) = &info.allowed_updates
                    && !allowed.iter().any(|u| u == "message")
                {
                    problems.push("allowed_updates leaves out \"message\": customers' messages are not delivered".to_owned());
                }
                answer["url_matches"] = json!(url_matches);
                answer["webhook"] = json!(info);
            }
            Target::Meta {
                object_id: None,
                label,
                ..
            } => {
                steps.skipped(
                    "subscribed_apps",
                    format!("no {label} id is known for this channel"),
                );
                problems.push(format!(
                    "the subscription cannot be checked: the channel has no {label} id (config channels: set page_id; run-time WhatsApp channels: --waba-id)"
                ));
            }
            Target::Meta {
                object_id: Some(object_id),
                token,
                label,
            } => {
                let apps = match self
                    .api
                    .subscriptions(found.platform, object_id, token)
                    .await
                {
                    Ok(apps) => apps,
                    Err(error) => {
                        steps.failed("subscribed_apps", error.to_string());
                        return Err(error.into());
                    }
                };
                steps.ok(
                    "subscribed_apps",
                    format!("{} app(s) subscribed to {label} {object_id}", apps.len()),
                );
                if apps.is_empty() {
                    problems.push(format!(
                        "no app is subscribed to {label} {object_id}: Meta sends its events nowhere; run `switchboard channels add ... --replace`"
                    ));
                } else if found.platform == Platform::Messenger {
                    let subscribed: Vec<&str> = apps
                        .iter()
                        .filter_map(|app| app.get("subscribed_fields").and_then(Value::as_array))
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    let missing: Vec<&str> = MESSENGER_FIELDS
                        .iter()
                        .copied()
                        .filter(|f| !subscribed.contains(f))
                        .collect();
                    if !missing.is_empty() {
                        problems.push(format!(
                            "the page is not subscribed to {}",
                            missing.join(", ")
                        ));
                    }
                }
                answer["subscribed"] = json!(!apps.is_empty());
                answer["subscribed_apps"] = json!(apps);
            }
        }
        answer["healthy"] = json!(problems.is_empty());
        answer["problems"] = json!(problems);
        Ok(answer)
    }

    /// Unregisters a run-time channel: the platform side first (unless
    /// asked not to), then the store.
    pub async fn remove(&self, id: &str, options: RemoveOptions) -> Result<Value, Failure> {
        let _one_at_a_time = self.changes.lock().await;
        let mut steps = Steps::default();
        match self.remove_steps(id, &options, &mut steps).await {
            Ok(mut answer) => {
                answer["steps"] = json!(steps.0);
                Ok(answer)
            }
            Err(error) => Err(Failure {
                error,
                steps: steps.0,
            }),
        }
    }

    async fn remove_steps(
        &self,
        id: &str,
        options: &RemoveOptions,
        steps: &mut Steps,
    ) -> Result<Value, RegistrationError> {
        if self.registry.is_configured(id) {
            return Err(RegistrationError::Configured(id.to_owned()));
        }
        let stored = self.stored().await?;
        let record = stored
            .iter()
            .find(|record| record.id.as_str() == id)
            .ok_or_else(|| RegistrationError::NotFound(id.to_owned()))?;
        let platform = record.secrets.platform();
        let (step, outcome) = match &record.secrets {
            StoredSecrets::Telegram { bot_token, .. } => (
                "deleteWebhook",
                if options.keep_webhook {
                    None
                } else {
                    Some(
                        self.api
                            .delete_webhook(bot_token, options.drop_pending_updates)
                            .await,
                    )
                },
            ),
            StoredSecrets::Messenger {
                page_access_token,
                page_id,
                ..
            } => (
                "subscribed_apps",
                if options.keep_webhook {
                    None
                } else {
                    Some(
                        self.api
                            .unsubscribe(platform, page_id, page_access_token)
                            .await,
                    )
                },
            ),
            StoredSecrets::WhatsApp {
                access_token,
                waba_id,
                ..
            } => {
                let shared = waba_id.as_ref().is_some_and(|waba| {
                    stored.iter().any(|other| {
                        other.id != record.id
                            && matches!(&other.secrets, StoredSecrets::WhatsApp { waba_id: Some(w), .. } if w == waba)
                    })
                });
                let outcome = match waba_id {
                    Some(_) if shared => {
                        steps.skipped(
                            "subscribed_apps",
                            "another channel uses the same WhatsApp Business Account; it stays subscribed",
                        );
                        None
                    }
                    Some(waba) if !options.keep_webhook => {
                        Some(self.api.unsubscribe(platform, waba, access_token).await)
                    }
                    _ => None,
                };
                ("subscribed_apps", outcome)
            }
        };
        match outcome {
            Some(Ok(())) => steps.ok(step, "the platform stops delivering to this gateway"),
            Some(Err(error)) if options.force => {
                steps.failed(step, format!("{error} (going on: --force)"));
            }
            Some(Err(error)) => {
                steps.failed(step, error.to_string());
                return Err(error.into());
            }
            None if options.keep_webhook => {
                steps.skipped(step, "left as it is (--keep-webhook)");
            }
            None => {}
        }
        self.store.delete_channel_record(id).await?;
        self.refresh_after_change().await;
        steps.ok(
            "store",
            format!(
                "removed; its webhooks answer 404 here now and on the other replicas within {} s",
                self.settings.refresh_secs
            ),
        );
        Ok(json!({ "removed": id, "platform": platform }))
    }
}

/// A channel found for `check`.
struct Found {
    source: ChannelSource,
    platform: Platform,
    webhook_url: Option<String>,
    target: Target,
}

/// What `check` asks the platform with.
enum Target {
    Telegram {
        bot_token: SecretString,
    },
    Meta {
        object_id: Option<String>,
        token: SecretString,
        label: &'static str,
    },
}

impl Target {
    fn from_config(secrets: &ChannelSecrets) -> Target {
        match secrets {
            ChannelSecrets::Telegram { bot_token, .. } => Target::Telegram {
                bot_token: bot_token.clone(),
            },
            ChannelSecrets::Messenger {
                page_access_token,
                page_id,
                ..
            } => Target::Meta {
                object_id: page_id.clone(),
                token: page_access_token.clone(),
                label: "page",
            },
            ChannelSecrets::WhatsApp { access_token, .. } => Target::Meta {
                object_id: None,
                token: access_token.clone(),
                label: "WhatsApp Business Account",
            },
        }
    }

    fn from_record(secrets: &StoredSecrets) -> Target {
        match secrets {
            StoredSecrets::Telegram { bot_token, .. } => Target::Telegram {
                bot_token: bot_token.clone(),
            },
            StoredSecrets::Messenger {
                page_access_token,
                page_id,
                ..
            } => Target::Meta {
                object_id: Some(page_id.clone()),
                token: page_access_token.clone(),
                label: "page",
            },
            StoredSecrets::WhatsApp {
                access_token,
                waba_id,
                ..
            } => Target::Meta {
                object_id: waba_id.clone(),
                token: access_token.clone(),
                label: "WhatsApp Business Account",
            },
        }
    }
}

fn summary(id: &ChannelId, platform: Platform, webhook_url: &str) -> Value {
    json!({
        "id": id,
        "platform": platform,
        "source": ChannelSource::Store.as_str(),
        "webhook_path": format!("/webhooks/{}/{id}", platform.as_str()),
        "webhook_url": webhook_url,
    })
}

/// `bytes` random bytes as URL-safe base64: within Telegram's secret_token
/// alphabet (A-Z a-z 0-9 _ -) and Meta's verify token rules.
fn random_token(bytes: usize) -> Result<String, RegistrationError> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|_| RegistrationError::Randomness)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buffer))
}

/// Reloads the channels every `refresh_secs` until `stop` changes.
pub fn spawn_refresher(
    registrar: Arc<Registrar>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = registrar.refresh_interval();
        let mut failing = false;
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            match registrar.refresh().await {
                Ok(_) => {
                    if failing {
                        info!("channels can be read from the store again");
                    }
                    failing = false;
                }
                Err(error) => {
                    registrar.metrics.channel_refresh_failures.inc();
                    // Once per outage, not every few seconds.
                    if !failing {
                        warn!(error = %error, "cannot reload the channels from the store; serving the last known set");
                    }
                    failing = true;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_connections_may_be_written_with_a_fraction_that_is_zero() {
        // Found by the API scan: JSON Schema calls 40.0 an integer.
        let parse = |n: &str| {
            serde_json::from_str::<AddChannel>(&format!(
                r#"{{"platform": "telegram", "id": "t", "max_connections": {n}}}"#
            ))
            .map(|request| request.max_connections)
        };
        assert_eq!(parse("40").unwrap(), Some(40));
        assert_eq!(parse("40.0").unwrap(), Some(40));
        assert_eq!(parse("null").unwrap(), None);
        for bad in ["40.5", "-1", "4294967296", "1e300", "\"40\""] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn public_urls_must_be_plain_https() {
        assert_eq!(
            public_base("https://bot.example.com/").unwrap(),
            "https://bot.example.com"
        );
        assert_eq!(
            public_base("https://bot.example.com:8443/shop").unwrap(),
            "https://bot.example.com:8443/shop"
        );
        for bad in [
            "http://bot.example.com",
            "bot.example.com",
            "https://user:pw@bot.example.com",
            "https://bot.example.com/?a=1",
            "https://bot.example.com/#x",
        ] {
            assert!(public_base(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn generated_secrets_fit_telegrams_alphabet() {
        let token = random_token(32).unwrap();
        assert_eq!(token.len(), 43);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        );
        assert_ne!(token, random_token(32).unwrap());
    }

    #[test]
    fn registration_settings_are_checked() {
        let settings = RegistrationSettings {
            public_url: Some("https://bot.example.com/".into()),
            ..RegistrationSettings::default()
        }
        .validated()
        .unwrap();
        assert_eq!(
            settings.public_url.as_deref(),
            Some("https://bot.example.com")
        );
        for bad in [
            RegistrationSettings {
                public_url: Some("http://x".into()),
                ..RegistrationSettings::default()
            },
            RegistrationSettings {
                refresh_secs: 0,
                ..RegistrationSettings::default()
            },
            RegistrationSettings {
                telegram_max_connections: 101,
                ..RegistrationSettings::default()
            },
        ] {
            let error = bad.validated().unwrap_err().to_string();
            assert!(error.starts_with("registration."), "{error}");
        }
    }
}
