//! The simulator's fake send APIs, one listener for all three platforms:
//! `/telegram/bot{token}/{method}`, `/messenger/...`, `/whatsapp/...`. They
//! answer like the platforms, inject the configured faults, and hand every
//! reply to the ledger.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::Shared;
use super::stats::ReplyVerdict;
use super::traffic::tokens_in;

/// Fault probabilities, each 0..1, drawn per message request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// 429 with a retry-after (any platform).
    pub rate_limited: f64,
    /// 502 (any platform).
    pub server_error: f64,
    /// WhatsApp 131047: outside the 24-hour window (permanent).
    pub outside_window: f64,
    /// Telegram 403 "bot was blocked by the user" (permanent).
    pub blocked: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    RateLimited,
    ServerError,
    OutsideWindow,
    Blocked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Telegram,
    Messenger,
    WhatsApp,
}

/// The text a platform would show, from a send request's JSON.
fn shown_text(api: Api, body: &Value) -> Option<String> {
    let pick = |pointers: &[&str]| {
        pointers
            .iter()
            .find_map(|p| body.pointer(p).and_then(Value::as_str))
            .map(str::to_owned)
    };
    match api {
        Api::Telegram => pick(&["/text", "/caption"]),
        Api::Messenger => pick(&["/message/text", "/message/attachment/payload/text"]),
        Api::WhatsApp => pick(&["/text/body", "/interactive/body/text"]),
    }
}

/// Whether the request delivers a message (rather than a typing indicator,
/// a read receipt or a callback answer).
fn is_message(api: Api, method: &str, body: &Value) -> bool {
    match api {
        Api::Telegram => method.starts_with("send") && method != "sendChatAction",
        Api::Messenger => body.get("sender_action").is_none(),
        Api::WhatsApp => body.get("status").is_none(),
    }
}

fn draw(faults: &Faults, api: Api, tracked: bool) -> Option<Fault> {
    let roll = fastrand::f64();
    let mut edge = faults.rate_limited;
    if roll < edge {
        return Some(Fault::RateLimited);
    }
    edge += faults.server_error;
    if roll < edge {
        return Some(Fault::ServerError);
    }
    // Permanent refusals only hit replies that carry a token: a refused
    // greeting would stop the rest of the answer, and the simulator could
    // not tell that from a gateway that lost it.
    if !tracked {
        return None;
    }
    match api {
        Api::WhatsApp if roll < edge + faults.outside_window => Some(Fault::OutsideWindow),
        Api::Telegram if roll < edge + faults.blocked => Some(Fault::Blocked),
        _ => None,
    }
}

fn fault_response(api: Api, fault: Fault) -> HttpResponse {
    let (status, body, retry_after) = match (api, fault) {
        (Api::Telegram, Fault::RateLimited) => (
            429,
            json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}}),
            Some("1"),
        ),
        (Api::Telegram, Fault::ServerError) => (
            502,
            json!({"ok": false, "error_code": 502, "description": "Bad Gateway"}),
            None,
        ),
        (_, Fault::Blocked) => (
            403,
            json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
            None,
        ),
        (Api::WhatsApp, Fault::RateLimited) => (
            429,
            json!({"error": {"message": "(#130429) Rate limit hit", "type": "OAuthException", "code": 130429,
                   "error_data": {"messaging_product": "whatsapp", "details": "Cloud API message throughput has been reached."}}}),
            Some("1"),
        ),
        (_, Fault::RateLimited) => (
            429,
            json!({"error": {"message": "(#613) Calls to this api have exceeded the rate limit.", "type": "OAuthException", "code": 613}}),
            Some("1"),
        ),
        (_, Fault::ServerError) => (
            502,
            json!({"error": {"message": "An unexpected error has occurred. Please retry your request later.", "type": "OAuthException", "code": 2, "is_transient": true}}),
            None,
        ),
        (_, Fault::OutsideWindow) => (
            400,
            json!({"error": {"message": "(#131047) Re-engagement message", "type": "OAuthException", "code": 131047,
                   "error_data": {"messaging_product": "whatsapp", "details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number."}}}),
            None,
        ),
    };
    let mut response =
        HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY));
    if let Some(after) = retry_after {
        response.insert_header(("Retry-After", after));
    }
    response.json(body)
}

fn success(api: Api, body: &Value, seq: u64) -> HttpResponse {
    match api {
        Api::Telegram => HttpResponse::Ok().json(json!({"ok": true, "result": {
            "message_id": seq,
            "date": crate::sender::now_ms() / 1000,
            "chat": {"id": body.get("chat_id").cloned().unwrap_or(Value::Null), "type": "private"},
        }})),
        Api::Messenger => HttpResponse::Ok().json(json!({
            "recipient_id": body.pointer("/recipient/id").cloned().unwrap_or(Value::Null),
            "message_id": format!("m_sim_out_{seq}"),
        })),
        Api::WhatsApp => {
            let to = body.get("to").cloned().unwrap_or(Value::Null);
            HttpResponse::Ok().json(json!({
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": format!("wamid.sim.out.{seq}")}],
            }))
        }
    }
}

/// `POST /{platform}/{tail}`
pub async fn handle(
    request: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let path = request.path();
    let mut segments = path.trim_start_matches('/').split('/');
    let api = match segments.next() {
        Some("telegram") => Api::Telegram,
        Some("messenger") => Api::Messenger,
        Some("whatsapp") => Api::WhatsApp,
        _ => return HttpResponse::NotFound().finish(),
    };
    let method = path.rsplit('/').next().unwrap_or_default();
    let Ok(json) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().finish();
    };
    let seq = shared.counters.api_calls.fetch_add(1, Ordering::Relaxed) + 1;
    if !is_message(api, method, &json) {
        return match api {
            Api::Telegram => HttpResponse::Ok().json(json!({"ok": true, "result": true})),
            Api::Messenger => {
                HttpResponse::Ok().json(json!({"recipient_id": json.pointer("/recipient/id")}))
            }
            Api::WhatsApp => HttpResponse::Ok().json(json!({"success": true})),
        };
    }
    let text = shown_text(api, &json).unwrap_or_default();
    let now = Instant::now();
    let tokens: Vec<u64> = {
        let ledger = shared.lock_ledger();
        tokens_in(&text).filter(|t| ledger.knows(*t)).collect()
    };
    if let Some(fault) = draw(&shared.faults, api, !tokens.is_empty()) {
        shared.counters.faults.fetch_add(1, Ordering::Relaxed);
        if matches!(fault, Fault::Blocked | Fault::OutsideWindow) {
            let mut ledger = shared.lock_ledger();
            for token in &tokens {
                ledger.replied(*token, true, now);
            }
        }
        return fault_response(api, fault);
    }
    if tokens.is_empty() {
        shared
            .counters
            .untracked_replies
            .fetch_add(1, Ordering::Relaxed);
    }
    let mut latencies = Vec::new();
    {
        let mut ledger = shared.lock_ledger();
        for token in &tokens {
            if let ReplyVerdict::First { latency } = ledger.replied(*token, false, now) {
                latencies.push(latency);
            }
        }
    }
    if !latencies.is_empty() {
        let since = u64::try_from(shared.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        shared.last_reply_us.fetch_max(since, Ordering::Relaxed);
        shared
            .counters
            .replies
            .fetch_add(latencies.len() as u64, Ordering::Relaxed);
        let mut histograms = shared.lock_latencies();
        for latency in latencies {
            histograms.record_reply(latency);
        }
    }
    success(api, &json, seq)
}
