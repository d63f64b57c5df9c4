//! A fake of the three platforms' send APIs on 127.0.0.1: records every
//! request (path, Authorization header, JSON body, time) and answers like
//! the platform, or with scripted answers (429, 5xx, errors) first.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// One request the gateway made to a fake platform API.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The status the fake answered with (200 = the platform took it).
    pub status: u16,
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
    pub at: Instant,
}

/// A scripted answer; when the script is empty the fake answers success.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub retry_after: Option<&'static str>,
    pub body: Value,
}

#[derive(Debug, Default)]
pub struct FakeState {
    pub requests: Mutex<Vec<Recorded>>,
    pub script: Mutex<VecDeque<Scripted>>,
    /// While set, every request is answered 503 (a platform outage).
    pub outage: std::sync::atomic::AtomicBool,
    /// Telegram webhooks by bot token, as `setWebhook` left them (the
    /// `WebhookInfo` that `getWebhookInfo` answers).
    pub telegram_webhooks: Mutex<std::collections::HashMap<String, Value>>,
    /// Graph `subscribed_apps` by `platform/object-id`: the subscribed fields.
    pub subscriptions: Mutex<std::collections::HashMap<String, Vec<String>>>,
}

#[derive(Clone, Debug)]
pub struct FakePlatform {
    pub base: String,
    pub state: Arc<FakeState>,
}

impl FakePlatform {
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Starts or ends an outage: every request answered 503 meanwhile.
    pub fn set_outage(&self, on: bool) {
        self.state
            .outage
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Requests the platform accepted (answered 200).
    pub fn delivered(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.status == 200)
            .collect()
    }

    /// The `WebhookInfo` Telegram keeps for `bot_token` (None: never set).
    pub fn telegram_webhook(&self, bot_token: &str) -> Option<Value> {
        self.state
            .telegram_webhooks
            .lock()
            .unwrap()
            .get(bot_token)
            .cloned()
    }

    /// Makes Telegram report failing deliveries for `bot_token`.
    pub fn fail_telegram_deliveries(&self, bot_token: &str, message: &str, pending: u64) {
        let mut hooks = self.state.telegram_webhooks.lock().unwrap();
        let info = hooks
            .entry(bot_token.to_owned())
            .or_insert_with(|| json!({"url": ""}));
        info["last_error_date"] = json!(unix_now());
        info["last_error_message"] = json!(message);
        info["pending_update_count"] = json!(pending);
    }

    /// Fields subscribed on a Page (`messenger`) or WhatsApp Business
    /// Account (`whatsapp`); None when no app is subscribed.
    pub fn subscription(&self, platform: &str, object_id: &str) -> Option<Vec<String>> {
        self.state
            .subscriptions
            .lock()
            .unwrap()
            .get(&format!("{platform}/{object_id}"))
            .cloned()
    }

    pub fn script(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.state.script.lock().unwrap().extend(answers);
    }

    /// Waits until at least `n` requests arrived, or panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        loop {
            let requests = self.requests();
            if requests.len() >= n {
                return requests;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} platform API calls within {timeout:?}, got {}: {:#?}",
                requests.len(),
                requests
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Requests whose body mentions the chat (Telegram `chat_id`,
    /// Messenger `recipient.id`, WhatsApp `to`).
    pub fn to_chat(&self, chat: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| {
                let body = &r.body;
                let id = body
                    .get("chat_id")
                    .or_else(|| body.get("to"))
                    .or_else(|| body.pointer("/recipient/id"));
                match id {
                    Some(Value::String(s)) => s == chat,
                    Some(Value::Number(n)) => n.to_string() == chat,
                    _ => false,
                }
            })
            .collect()
    }
}

async fn fake_handler(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<FakeState>,
) -> HttpResponse {
    let path = req.path().to_owned();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let record = |status: u16| Recorded {
        status,
        path: path.clone(),
        authorization: authorization.clone(),
        body: json.clone(),
        at: Instant::now(),
    };
    if state.outage.load(std::sync::atomic::Ordering::SeqCst) {
        state.requests.lock().unwrap().push(record(503));
        return HttpResponse::ServiceUnavailable()
            .json(json!({"ok": false, "error_code": 503, "description": "Service Unavailable"}));
    }
    let scripted = state.script.lock().unwrap().pop_front();
    if let Some(scripted) = scripted {
        state.requests.lock().unwrap().push(record(scripted.status));
        let mut response =
            HttpResponse::build(actix_web::http::StatusCode::from_u16(scripted.status).unwrap());
        if let Some(after) = scripted.retry_after {
            response.insert_header(("Retry-After", after));
        }
        return response.json(scripted.body);
    }
    state.requests.lock().unwrap().push(record(200));
    if let Some(answer) = registration_answer(&req, &path, &json, &state) {
        return answer;
    }
    if path.starts_with("/telegram/") {
        if path.ends_with("/sendMessage")
            || path.ends_with("/sendPhoto")
            || path.ends_with("/sendDocument")
        {
            return HttpResponse::Ok().json(json!({"ok": true, "result": {"message_id": 1, "date": 0, "chat": {"id": json.get("chat_id")}}}));
        }
        return HttpResponse::Ok().json(json!({"ok": true, "result": true}));
    }
    if path.starts_with("/messenger/") {
        return HttpResponse::Ok()
            .json(json!({"recipient_id": json.pointer("/recipient/id"), "message_id": "m_fake"}));
    }
    HttpResponse::Ok()
        .json(json!({"messaging_product": "whatsapp", "messages": [{"id": "wamid.fake"}]}))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Telegram's webhook methods and Graph's `subscribed_apps` edge, keeping
/// state like the platforms do.
fn registration_answer(
    req: &HttpRequest,
    path: &str,
    body: &Value,
    state: &FakeState,
) -> Option<HttpResponse> {
    if let Some(rest) = path.strip_prefix("/telegram/bot") {
        let (token, method) = rest.rsplit_once('/')?;
        let mut hooks = state.telegram_webhooks.lock().unwrap();
        return match method {
            "getMe" => Some(HttpResponse::Ok().json(json!({"ok": true, "result": {
                "id": token.split(':').next().and_then(|id| id.parse::<i64>().ok()).unwrap_or(1),
                "is_bot": true, "first_name": "Fake Shop", "username": "fake_shop_bot"
            }}))),
            "setWebhook" => {
                let url = body.get("url").and_then(Value::as_str).unwrap_or("");
                if !url.starts_with("https://") {
                    return Some(HttpResponse::BadRequest().json(json!({"ok": false, "error_code": 400, "description": "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"})));
                }
                hooks.insert(token.to_owned(), json!({
                    "url": url,
                    "has_custom_certificate": false,
                    "pending_update_count": 0,
                    "max_connections": body.get("max_connections").cloned().unwrap_or(json!(40)),
                    "allowed_updates": body.get("allowed_updates").cloned().unwrap_or(json!([])),
                    "secret_token": body.get("secret_token").cloned().unwrap_or(Value::Null),
                }));
                Some(
                    HttpResponse::Ok().json(
                        json!({"ok": true, "result": true, "description": "Webhook was set"}),
                    ),
                )
            }
            "getWebhookInfo" => {
                let mut info = hooks
                    .get(token)
                    .cloned()
                    .unwrap_or_else(|| json!({"url": "", "pending_update_count": 0}));
                // The real API never reveals the secret.
                if let Some(map) = info.as_object_mut() {
                    map.remove("secret_token");
                }
                Some(HttpResponse::Ok().json(json!({"ok": true, "result": info})))
            }
            "deleteWebhook" => {
                hooks.remove(token);
                Some(HttpResponse::Ok().json(
                    json!({"ok": true, "result": true, "description": "Webhook was deleted"}),
                ))
            }
            _ => None,
        };
    }
    let object = path.strip_suffix("/subscribed_apps")?;
    let (platform, object_id) = object.trim_start_matches('/').split_once('/')?;
    let key = format!("{platform}/{object_id}");
    let mut subscriptions = state.subscriptions.lock().unwrap();
    match req.method().as_str() {
        "POST" => {
            let fields = body
                .get("subscribed_fields")
                .and_then(Value::as_str)
                .map(|f| f.split(',').map(str::to_owned).collect())
                .unwrap_or_default();
            subscriptions.insert(key, fields);
            Some(HttpResponse::Ok().json(json!({"success": true})))
        }
        "DELETE" => {
            subscriptions.remove(&key);
            Some(HttpResponse::Ok().json(json!({"success": true})))
        }
        _ => {
            let data = match subscriptions.get(&key) {
                Some(_) if platform == "whatsapp" => vec![
                    json!({"whatsapp_business_api_data": {"id": "1000", "name": "Fake App", "link": "https://example.invalid/app"}}),
                ],
                Some(fields) => vec![
                    json!({"id": "1000", "name": "Fake App", "category": "Business", "subscribed_fields": fields}),
                ],
                None => Vec::new(),
            };
            Some(HttpResponse::Ok().json(json!({"data": data})))
        }
    }
}

/// Starts the fake on a free port (call inside a Tokio runtime).
pub async fn spawn_fake_platform() -> FakePlatform {
    let state = web::Data::new(FakeState::default());
    let shared = state.clone().into_inner();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .default_service(web::to(fake_handler))
    })
    .listen(listener)
    .unwrap()
    .workers(1)
    .disable_signals()
    .run();
    tokio::spawn(server);
    FakePlatform {
        base: format!("http://{addr}"),
        state: shared,
    }
}
