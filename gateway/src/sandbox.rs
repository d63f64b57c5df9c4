//! The built-in sandbox: stands in for the three platforms' send APIs in
//! the demo (`/sandbox/{platform}/...` on the public listener, loopback
//! only). The sender's real HTTP requests land here and are answered the way
//! the platform would; `switchboard chat` reads them back from
//! `GET /sandbox/messages`. It also plays the registration calls
//! (`getMe`, `setWebhook`, `getWebhookInfo`, `deleteWebhook`, Graph
//! `subscribed_apps`), so `switchboard channels add/check/remove` can be
//! rehearsed against the demo; those are remembered, not listed as
//! messages (their bodies hold secrets).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest;
use tokio::sync::Notify;

use crate::startup::AppState;

const KEEP: usize = 10_000;
/// Longest a `GET /sandbox/messages` long-poll waits; `switchboard chat`
/// simply polls again.
const MAX_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxMessage {
    pub seq: u64,
    pub platform: String,
    /// Chat the message went to (Telegram chat_id, PSID, wa_id).
    pub chat: String,
    /// API method or path, without any token (`sendMessage`, `me/messages`).
    pub method: String,
    pub body: Value,
}

#[derive(Debug, Default)]
pub struct Sandbox {
    messages: Mutex<VecDeque<SandboxMessage>>,
    seq: AtomicU64,
    arrived: Notify,
    /// Telegram webhooks set, by a digest of the bot's path segment (the
    /// token itself is not kept).
    webhooks: Mutex<HashMap<String, Value>>,
    /// Graph objects (Page, WhatsApp Business Account) with the app
    /// subscribed, and the fields it asked for.
    subscriptions: Mutex<HashMap<String, Vec<String>>>,
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sandbox {
    fn record(&self, platform: &str, chat: String, method: String, body: Value) -> u64 {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        {
            let mut messages = self
                .messages
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if messages.len() >= KEEP {
                messages.pop_front();
            }
            messages.push_back(SandboxMessage {
                seq,
                platform: platform.to_owned(),
                chat,
                method,
                body,
            });
        }
        self.arrived.notify_waiters();
        seq
    }

    fn after(&self, seq: u64, platform: Option<&str>, chat: Option<&str>) -> Vec<SandboxMessage> {
        let messages = self
            .messages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        messages
            .iter()
            .filter(|m| m.seq > seq)
            .filter(|m| platform.is_none_or(|p| m.platform == p))
            .filter(|m| chat.is_none_or(|c| m.chat == c))
            .cloned()
            .collect()
    }

    pub fn all(&self) -> Vec<SandboxMessage> {
        self.after(0, None, None)
    }
}

fn id_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn json_body(body: &web::Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

crate::routes::route_table! {
    /// Mounted on the public listener only when `sandbox` is on.
    pub fn routes,
    const SANDBOX_ROUTES = [
        get "/sandbox/messages" => messages,
        post "/sandbox/telegram/{bot}/{method}" => telegram,
        post "/sandbox/messenger/{object}/subscribed_apps" => graph_subscribe,
        post "/sandbox/messenger/{path:.*}" => messenger,
        get "/sandbox/messenger/{object}/subscribed_apps" => graph_read,
        delete "/sandbox/messenger/{object}/subscribed_apps" => graph_delete,
        post "/sandbox/whatsapp/{object}/subscribed_apps" => graph_subscribe,
        post "/sandbox/whatsapp/{path:.*}" => whatsapp,
        get "/sandbox/whatsapp/{object}/subscribed_apps" => graph_read,
        delete "/sandbox/whatsapp/{object}/subscribed_apps" => graph_delete,
    ]
}

/// `POST /sandbox/telegram/bot{token}/{method}`
pub async fn telegram(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (bot, method) = path.into_inner();
    let body = json_body(&body);
    if let Some(result) = state.sandbox.telegram_registration(&bot, &method, &body) {
        return HttpResponse::Ok().json(json!({"ok": true, "result": result}));
    }
    let chat = id_text(body.get("chat_id"));
    let seq = state
        .sandbox
        .record("telegram", chat, method.clone(), body.clone());
    let result = match method.as_str() {
        "sendMessage" | "sendPhoto" | "sendDocument" => json!({
            "message_id": seq,
            "date": crate::sender::now_ms() / 1000,
            "chat": {"id": body.get("chat_id").cloned().unwrap_or(Value::Null), "type": "private"},
            "text": body.get("text").cloned().unwrap_or(Value::Null),
        }),
        _ => Value::Bool(true),
    };
    HttpResponse::Ok().json(json!({"ok": true, "result": result}))
}

impl Sandbox {
    /// Answers Telegram's registration methods; `None` for anything else.
    fn telegram_registration(&self, bot: &str, method: &str, body: &Value) -> Option<Value> {
        let key = hex::encode(&sha2::Sha256::digest(bot.as_bytes())[..12]);
        match method {
            "getMe" => {
                // `bot123456:ABC...`: the id is the token's first part.
                let id = bot
                    .trim_start_matches("bot")
                    .split(':')
                    .next()
                    .and_then(|id| id.parse::<i64>().ok())
                    .unwrap_or(1);
                Some(json!({
                    "id": id,
                    "is_bot": true,
                    "first_name": "Switchboard sandbox",
                    "username": "switchboard_sandbox_bot",
                    "can_join_groups": false,
                    "can_read_all_group_messages": false,
                    "supports_inline_queries": false,
                }))
            }
            "setWebhook" => {
                let info = json!({
                    "url": body.get("url").cloned().unwrap_or_else(|| json!("")),
                    "max_connections": body.get("max_connections").cloned().unwrap_or_else(|| json!(40)),
                    "allowed_updates": body.get("allowed_updates").cloned().unwrap_or_else(|| json!([])),
                });
                locked(&self.webhooks).insert(key, info);
                Some(Value::Bool(true))
            }
            "getWebhookInfo" => {
                let mut info = locked(&self.webhooks)
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| json!({"url": ""}));
                if let Some(info) = info.as_object_mut() {
                    info.insert("has_custom_certificate".into(), json!(false));
                    info.insert("pending_update_count".into(), json!(0));
                }
                Some(info)
            }
            "deleteWebhook" => {
                locked(&self.webhooks).remove(&key);
                Some(Value::Bool(true))
            }
            _ => None,
        }
    }
}

fn graph_error(message: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"error": {
        "message": message,
        "type": "GraphMethodException",
        "code": 100,
    }}))
}

/// `POST /sandbox/{messenger,whatsapp}/{object}/subscribed_apps`
pub async fn graph_subscribe(
    state: web::Data<AppState>,
    object: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if !crate::channels::platform_api::is_graph_id(&object) {
        return graph_error("the object id must be numeric, as Meta's are");
    }
    let fields = json_body(&body)
        .get("subscribed_fields")
        .and_then(Value::as_str)
        .map(|fields| fields.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    locked(&state.sandbox.subscriptions).insert(object.into_inner(), fields);
    HttpResponse::Ok().json(json!({"success": true}))
}

/// `GET /sandbox/{messenger,whatsapp}/{object}/subscribed_apps`
pub async fn graph_read(state: web::Data<AppState>, object: web::Path<String>) -> HttpResponse {
    if !crate::channels::platform_api::is_graph_id(&object) {
        return graph_error("the object id must be numeric, as Meta's are");
    }
    let data = match locked(&state.sandbox.subscriptions).get(object.as_str()) {
        Some(fields) => json!([{
            "id": "1",
            "name": "Switchboard sandbox",
            "subscribed_fields": fields,
        }]),
        None => json!([]),
    };
    HttpResponse::Ok().json(json!({"data": data}))
}

/// `DELETE /sandbox/{messenger,whatsapp}/{object}/subscribed_apps`
pub async fn graph_delete(state: web::Data<AppState>, object: web::Path<String>) -> HttpResponse {
    if !crate::channels::platform_api::is_graph_id(&object) {
        return graph_error("the object id must be numeric, as Meta's are");
    }
    locked(&state.sandbox.subscriptions).remove(object.as_str());
    HttpResponse::Ok().json(json!({"success": true}))
}

/// `POST /sandbox/messenger/{path}`
pub async fn messenger(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let body = json_body(&body);
    let chat = id_text(body.get("recipient").and_then(|r| r.get("id")));
    let seq = state
        .sandbox
        .record("messenger", chat.clone(), path.into_inner(), body.clone());
    if body.get("sender_action").is_some() {
        return HttpResponse::Ok().json(json!({"recipient_id": chat}));
    }
    HttpResponse::Ok().json(json!({"recipient_id": chat, "message_id": format!("m_sandbox_{seq}")}))
}

/// `POST /sandbox/whatsapp/{path}`
pub async fn whatsapp(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let body = json_body(&body);
    let chat = id_text(body.get("to"));
    let seq = state
        .sandbox
        .record("whatsapp", chat.clone(), path.into_inner(), body.clone());
    if body.get("status").is_some() {
        return HttpResponse::Ok().json(json!({"success": true}));
    }
    HttpResponse::Ok().json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": chat, "wa_id": chat}],
        "messages": [{"id": format!("wamid.sandbox.{seq}")}],
    }))
}

#[derive(Debug, Deserialize)]
pub struct MessagesQuery {
    platform: Option<String>,
    chat: Option<String>,
    #[serde(default)]
    after: u64,
    #[serde(default)]
    wait_ms: u64,
}

/// `GET /sandbox/messages?platform=&chat=&after=&wait_ms=`: long-polls for
/// messages newer than `after`.
pub async fn messages(
    state: web::Data<AppState>,
    query: web::Query<MessagesQuery>,
) -> HttpResponse {
    let query = query.into_inner();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(query.wait_ms).min(MAX_WAIT);
    loop {
        let notified = state.sandbox.arrived.notified();
        let found = state.sandbox.after(
            query.after,
            query.platform.as_deref(),
            query.chat.as_deref(),
        );
        if !found.is_empty() || tokio::time::Instant::now() >= deadline {
            let next = found.last().map_or(query.after, |m| m.seq);
            return HttpResponse::Ok().json(json!({"messages": found, "next": next}));
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}
