//! `spawn_app()`: the real gateway on 127.0.0.1:0 with the platforms' send
//! APIs faked on loopback, plus helpers to sign and post webhooks.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard::config::Settings;
use switchboard::startup::{Application, ShutdownTrigger};
pub use switchboard_testkit::fake::{FakePlatform, Recorded, Scripted, spawn_fake_platform};

pub const ADMIN_TOKEN: &str = "test-admin-token-123";
pub const TG_TOKEN: &str = "111:TEST-TOKEN";
pub const TG_SECRET: &str = "tg-secret-token";
pub const MS_SECRET: &str = "ms-app-secret";
pub const MS_VERIFY: &str = "ms-verify-token";
pub const MS_PAGE_TOKEN: &str = "ms-page-token";
pub const MS2_PAGE_TOKEN: &str = "ms2-page-token";
pub const WA_SECRET: &str = "wa-app-secret";
pub const WA_VERIFY: &str = "wa-verify-token";
pub const WA_TOKEN: &str = "wa-access-token";
pub const WA_NUMBER: &str = "15550001111";

/// Every secret configured in tests, for the leak checks.
pub const ALL_SECRETS: &[&str] = &[
    ADMIN_TOKEN,
    TG_TOKEN,
    TG_SECRET,
    MS_SECRET,
    MS_VERIFY,
    MS_PAGE_TOKEN,
    MS2_PAGE_TOKEN,
    WA_SECRET,
    WA_VERIFY,
    WA_TOKEN,
];

pub struct TestApp {
    pub public: String,
    pub admin: String,
    pub fake: FakePlatform,
    pub client: reqwest::Client,
    pub trigger: ShutdownTrigger,
    pub running: tokio::task::JoinHandle<()>,
    _dir: TempDir,
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "switchboard-it-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn config(fake: &str, extra: &str) -> String {
    format!(
        r#"
[server]
bind = "127.0.0.1:0"
admin_bind = "127.0.0.1:0"
admin_token = "{ADMIN_TOKEN}"
max_body_bytes = 1048576
shutdown_grace_secs = 5

[platforms.telegram]
api_base = "{fake}/telegram"
[platforms.messenger]
api_base = "{fake}/messenger"
[platforms.whatsapp]
api_base = "{fake}/whatsapp"

[sender]
timeout_ms = 2000
max_attempts = 4
workers = 8
outbox_capacity = 1000

[[channels]]
id = "tg"
platform = "telegram"
bot_token = "{TG_TOKEN}"
secret_token = "{TG_SECRET}"

[[channels]]
id = "ms"
platform = "messenger"
app_secret = "{MS_SECRET}"
verify_token = "{MS_VERIFY}"
page_access_token = "{MS_PAGE_TOKEN}"

[[channels]]
id = "wa"
platform = "whatsapp"
app_secret = "{WA_SECRET}"
verify_token = "{WA_VERIFY}"
access_token = "{WA_TOKEN}"
phone_number_id = "{WA_NUMBER}"
{extra}
"#
    )
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with("", &[]).await
}

/// `extra` is appended to the test config (more channels, sections);
/// `env` overrides keys as `SWITCHBOARD__...` variables would.
pub async fn spawn_app_with(extra: &str, env: &[(&str, &str)]) -> TestApp {
    let fake = spawn_fake_platform().await;
    let dir = TempDir::new();
    let path = dir.0.join("switchboard.toml");
    std::fs::write(&path, config(&fake.base, extra)).unwrap();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let settings = Settings::load_from(Some(&path), &env).unwrap();
    let app = Application::build(settings).await.unwrap();
    let public = format!("http://{}", app.public_addr());
    let admin = format!("http://{}", app.admin_addr());
    let trigger = app.shutdown_trigger();
    let running = tokio::spawn(async move {
        app.run_until_stopped().await.unwrap();
    });
    TestApp {
        public,
        admin,
        fake,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        trigger,
        running,
        _dir: dir,
    }
}

impl TestApp {
    pub async fn post_telegram(
        &self,
        channel: &str,
        secret: Option<&str>,
        body: &[u8],
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/webhooks/telegram/{channel}", self.public))
            .header("Content-Type", "application/json")
            .body(body.to_vec());
        if let Some(secret) = secret {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
        }
        request.send().await.unwrap()
    }

    /// Posts a Meta webhook signed with `secret` (unsigned when `None`).
    pub async fn post_meta(
        &self,
        platform: &str,
        channel: &str,
        secret: Option<&str>,
        body: &[u8],
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/webhooks/{platform}/{channel}", self.public))
            .header("Content-Type", "application/json")
            .body(body.to_vec());
        if let Some(secret) = secret {
            request = request.header("X-Hub-Signature-256", switchboard_meta::sign(secret, body));
        }
        request.send().await.unwrap()
    }

    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.admin))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
    }

    pub async fn dead_letters(&self) -> Vec<Value> {
        let body: Value = self
            .admin_get("/admin/dead-letters?limit=1000")
            .await
            .json()
            .await
            .unwrap();
        body["dead_letters"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until a dead letter with `reason` shows up.
    pub async fn wait_for_dead_letter(&self, reason: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(letter) = self
                .dead_letters()
                .await
                .into_iter()
                .find(|l| l["reason"] == reason)
            {
                return letter;
            }
            assert!(
                Instant::now() < deadline,
                "no dead letter with reason {reason} within {timeout:?}: {:#?}",
                self.dead_letters().await
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn stop(self) {
        self.trigger.trigger();
        tokio::time::timeout(Duration::from_secs(15), self.running)
            .await
            .expect("shutdown took too long")
            .unwrap();
    }
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

static COUNTER: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1);

/// A Telegram private-chat text update from user/chat `chat`.
pub fn telegram_text(chat: i64, text: &str) -> Vec<u8> {
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        + fastrand::i64(1..1_000_000) * 1000;
    let mut message = json!({
        "message_id": n,
        "from": {"id": chat, "is_bot": false, "first_name": "Ada", "language_code": "en"},
        "chat": {"id": chat, "type": "private", "first_name": "Ada"},
        "date": now_secs(),
        "text": text,
    });
    if text.starts_with('/') {
        let len = text.split_whitespace().next().unwrap().len();
        message["entities"] = json!([{"type": "bot_command", "offset": 0, "length": len}]);
    }
    serde_json::to_vec(&json!({"update_id": n, "message": message})).unwrap()
}

/// A WhatsApp text message from `from` to the test number, sent `age_secs` ago.
pub fn whatsapp_text(from: &str, text: &str, age_secs: i64) -> Vec<u8> {
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": WA_NUMBER},
            "contacts": [{"profile": {"name": "Ada"}, "wa_id": from}],
            "messages": [{"from": from, "id": format!("wamid.test.{n}.{}", fastrand::u64(..)), "timestamp": (now_secs() - age_secs).to_string(), "type": "text", "text": {"body": text}}]
        }}]}]
    }))
    .unwrap()
}

/// A Messenger text message from `psid` to `page`.
pub fn messenger_text(page: &str, psid: &str, text: &str) -> Vec<u8> {
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let now_ms = now_secs() * 1000;
    serde_json::to_vec(&json!({
        "object": "page",
        "entry": [{"id": page, "time": now_ms, "messaging": [{
            "sender": {"id": psid}, "recipient": {"id": page}, "timestamp": now_ms,
            "message": {"mid": format!("m_test_{n}_{}", fastrand::u64(..)), "text": text}
        }]}]
    }))
    .unwrap()
}

/// The text of a recorded send, whatever the platform.
pub fn sent_text(recorded: &Recorded) -> String {
    let body = &recorded.body;
    body.get("text")
        .and_then(Value::as_str)
        .or_else(|| body.pointer("/message/text").and_then(Value::as_str))
        .or_else(|| body.pointer("/text/body").and_then(Value::as_str))
        .or_else(|| {
            body.pointer("/interactive/body/text")
                .and_then(Value::as_str)
        })
        .or_else(|| {
            body.pointer("/message/attachment/payload/text")
                .and_then(Value::as_str)
        })
        .unwrap_or("")
        .to_owned()
}
