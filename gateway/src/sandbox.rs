//! The built-in sandbox: stands in for the three platforms' send APIs in
//! the demo (`/sandbox/{platform}/...` on the public listener, loopback
//! only). The sender's real HTTP requests land here and are answered the way
//! the platform would; `switchboard chat` reads them back from
//! `GET /sandbox/messages`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::startup::AppState;

const KEEP: usize = 10_000;
const MAX_WAIT: Duration = Duration::from_secs(30);

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

/// `POST /sandbox/telegram/bot{token}/{method}`
pub async fn telegram(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (_bot, method) = path.into_inner();
    let body = json_body(&body);
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
