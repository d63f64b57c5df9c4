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
