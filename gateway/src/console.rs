//! The agent console on the admin listener (`/console/`): a static page
//! (HTML, CSS, JS embedded in the binary; no build step) and its JSON API
//! under `/console/api/`, plus the bearer-token hand-off routes under
//! `/admin/handoffs` for tools and help desks.
//!
//! Sign-in exchanges an admin token for a session: a random id in an
//! HttpOnly, SameSite=Strict cookie (Secure when the admin listener runs
//! TLS), stored server-side (hashed, with an expiry) so every replica knows
//! it. Every state-changing console request must carry the session's CSRF
//! token in `X-CSRF-Token`. Operator tokens may act; read-only tokens may
//! only look.
//!
//! It must not write hand-off records itself: actions go through the inbox
//! as [`Control`] messages so they apply in order with the customer's
//! messages, on whichever replica owns the conversation.

use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use subtle::ConstantTimeEq;
use switchboard_model::ConversationKey;
use tracing::{info, warn};

use crate::config::{AdminToken, Role};
use crate::handoff::{HandoffDesk, HandoffRecord, SIGNATURE_HEADER, signature_valid};
use crate::pipeline::{Control, SubmitError};
use crate::sender::now_ms;
use crate::startup::AppState;

const COOKIE: &str = "sb_console";
/// A refusal, boxed: responses are large and refusals are rare.
type Refusal = Box<HttpResponse>;
const CSRF_HEADER: &str = "X-CSRF-Token";
const MAX_REPLY_CHARS: usize = 4000;
/// The page may load only itself: no inline script, no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const APP_CSS: &str = include_str!("console/app.css");

/// Routes of the console scope; mounted before the bearer-token scope.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/console")
            .wrap(
                actix_web::middleware::DefaultHeaders::new()
                    .add((header::CONTENT_SECURITY_POLICY, CSP))
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    .add((header::REFERRER_POLICY, "no-referrer"))
                    .add((header::X_FRAME_OPTIONS, "DENY"))
                    .add((header::CACHE_CONTROL, "no-store")),
            )
            .configure(console_routes)
            .default_service(web::to(crate::routes::admin_fallback)),
    );
    // Bearer or signed; checked in the handler, so it sits outside the
    // bearer-only scope.
    cfg.configure(signed_routes);
}

crate::routes::route_table! {
    /// Inside the `/console` scope.
    pub(crate) fn console_routes,
    const CONSOLE_ROUTES = [
        get "" => redirect,
        get "/" => page,
        get "/app.js" => script,
        get "/app.css" => style,
        post "/api/login" => login,
        get "/api/session" => session_info,
        post "/api/logout" => logout,
        get "/api/queue" => queue,
        get "/api/handoffs/{key}" => record,
        get "/api/handoffs/{key}/events" => events,
        post "/api/handoffs/{key}/reply" => reply,
        post "/api/handoffs/{key}/hand-back" => hand_back,
        post "/api/handoffs/{key}/close" => close,
        post "/api/handoffs/{key}/take" => take,
    ]
}

crate::routes::route_table! {
    pub(crate) fn signed_routes,
    const SIGNED_ROUTES = [
        post "/admin/handoffs/{key}/reply" => admin_reply,
    ]
}

crate::routes::route_table! {
    /// Bearer-token routes, mounted inside the admin scope (`require_token`).
    pub fn admin_routes,
    const ADMIN_HANDOFF_ROUTES = [
        get "/admin/handoffs" => admin_queue,
        get "/admin/handoffs/{key}" => admin_record,
        post "/admin/handoffs/{key}/hand-back" => admin_hand_back,
        post "/admin/handoffs/{key}/close" => admin_close,
        post "/admin/handoffs/{key}/take" => admin_take,
    ]
}

// ------------------------------------------------------------------ pages

async fn redirect() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, "/console/"))
        .finish()
}

async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(INDEX_HTML)
}

async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .body(APP_JS)
}

async fn style() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(APP_CSS)
}

// --------------------------------------------------------------- sessions

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    name: String,
    operator: bool,
    csrf: String,
    expires_ms: i64,
}

fn session_key(id: &str) -> String {
    format!(
        "sb:v1:console-session:{}",
        hex::encode(AdminToken::digest(id))
    )
}

fn random_hex() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(hex::encode(bytes))
}

fn cookie_value(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

fn error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": message }))
}

fn store_down() -> HttpResponse {
    error(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
}

fn tls_on(state: &AppState) -> bool {
    state.settings.server.tls.as_ref().is_some_and(|t| t.admin)
}

fn cookie(state: &AppState, id: &str, max_age_secs: u64) -> String {
    let secure = if tls_on(state) { "; Secure" } else { "" };
    format!(
        "{COOKIE}={id}; Path=/console; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}"
    )
}

/// The caller's live session, or the response refusing the request.
async fn session(req: &HttpRequest, state: &AppState) -> Result<Session, Refusal> {
    let Some(id) = cookie_value(req) else {
        return Err(Box::new(error(StatusCode::UNAUTHORIZED, "sign in first")));
    };
    let stored = state
        .store
        .get(&session_key(&id))
        .await
        .map_err(|_| Box::new(store_down()))?;
    let session = stored
        .and_then(|bytes| serde_json::from_slice::<Session>(&bytes).ok())
        .filter(|s| s.expires_ms > now_ms());
    session.ok_or_else(|| {
        Box::new(error(
            StatusCode::UNAUTHORIZED,
            "session expired; sign in again",
        ))
    })
}

/// A session allowed to change something: CSRF token matches, and the
/// token behind it is an operator's.
async fn acting_session(req: &HttpRequest, state: &AppState) -> Result<Session, Refusal> {
    let session = session(req, state).await?;
    let presented = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !bool::from(presented.as_bytes().ct_eq(session.csrf.as_bytes())) {
        warn!(target: "switchboard::audit", agent = %session.name, outcome = "csrf", "console request refused");
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token",
        )));
    }
    if !session.operator {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "this token is read-only; an operator token may act",
        )));
    }
    Ok(session)
}

fn token_identity(state: &AppState, token: &str) -> Option<(String, Role)> {
    let presented = AdminToken::digest(token.trim());
    let mut found = None;
    for candidate in &state.settings.server.admin_tokens {
        if bool::from(candidate.sha256.ct_eq(&presented)) {
            found = Some((candidate.name.clone(), candidate.role));
        }
    }
    found
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginForm>,
) -> HttpResponse {
    let Some((name, role)) = token_identity(&state, &body.token) else {
        warn!(target: "switchboard::audit", path = "/console/api/login", outcome = "unauthenticated", "console sign-in refused");
        return error(StatusCode::UNAUTHORIZED, "unknown token");
    };
    let (Some(id), Some(csrf)) = (random_hex(), random_hex()) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "no randomness");
    };
    let minutes = state.settings.handoff.console_session_minutes.max(1);
    let session = Session {
        name: name.clone(),
        operator: role == Role::Operator,
        csrf,
        expires_ms: now_ms().saturating_add(i64::try_from(minutes * 60_000).unwrap_or(i64::MAX)),
    };
    let Ok(bytes) = serde_json::to_vec(&session) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "session not encoded");
    };
    if state
        .store
        .put(&session_key(&id), bytes, Duration::from_secs(minutes * 60))
        .await
        .is_err()
    {
        return store_down();
    }
    // A sign-in replaces whatever session the browser had.
    if let Some(old) = cookie_value(&req) {
        let _ = state.store.delete(&session_key(&old)).await;
    }
    info!(target: "switchboard::audit", token = %name, path = "/console/api/login", "console sign-in");
    HttpResponse::Ok()
        .insert_header((header::SET_COOKIE, cookie(&state, &id, minutes * 60)))
        .json(describe(&session))
}

fn describe(session: &Session) -> serde_json::Value {
    json!({
        "name": session.name,
        "role": if session.operator { "operator" } else { "read-only" },
        "csrf": session.csrf,
    })
}

async fn session_info(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match session(&req, &state).await {
        Ok(session) => HttpResponse::Ok().json(describe(&session)),
        Err(response) => *response,
    }
}

async fn logout(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let session = match session(&req, &state).await {
        Ok(session) => session,
        Err(response) => return *response,
    };
    let presented = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !bool::from(presented.as_bytes().ct_eq(session.csrf.as_bytes())) {
        return error(StatusCode::FORBIDDEN, "missing or wrong CSRF token");
    }
    if let Some(id) = cookie_value(&req) {
        let _ = state.store.delete(&session_key(&id)).await;
    }
    HttpResponse::NoContent()
        .insert_header((header::SET_COOKIE, cookie(&state, "", 0)))
        .finish()
}

// ------------------------------------------------------------ hand-offs

fn parse_key(raw: &str) -> Result<ConversationKey, Refusal> {
    ConversationKey::parse(raw)
        .ok_or_else(|| Box::new(error(StatusCode::BAD_REQUEST, "invalid conversation key")))
}

async fn queue_json(desk: &HandoffDesk) -> HttpResponse {
    match desk.queue().await {
        Ok(entries) => {
            let now = now_ms();
            let items: Vec<serde_json::Value> = entries
                .into_iter()
                .map(|entry| {
                    let wait_secs = now.saturating_sub(entry.started_ms).max(0) / 1000;
                    let mut value = serde_json::to_value(&entry).unwrap_or_default();
                    value["wait_secs"] = json!(wait_secs);
                    value
                })
                .collect();
            HttpResponse::Ok().json(json!({ "handoffs": items }))
        }
        Err(_) => store_down(),
    }
}

async fn record_json(desk: &HandoffDesk, raw: &str) -> HttpResponse {
    let key = match parse_key(raw) {
        Ok(key) => key,
        Err(response) => return *response,
    };
    match desk.record(&key).await {
        Ok(Some(record)) => HttpResponse::Ok().json(record),
        Ok(None) => error(StatusCode::NOT_FOUND, "not handed off"),
        Err(_) => store_down(),
    }
}

async fn queue(
    req: HttpRequest,
    state: web::Data<AppState>,
    desk: web::Data<HandoffDesk>,
) -> HttpResponse {
    if let Err(response) = session(&req, &state).await {
        return *response;
    }
    queue_json(&desk).await
}

async fn record(
    req: HttpRequest,
    state: web::Data<AppState>,
    desk: web::Data<HandoffDesk>,
    path: web::Path<String>,
) -> HttpResponse {
    if let Err(response) = session(&req, &state).await {
        return *response;
    }
    record_json(&desk, &path).await
}

/// Server-sent events: the record whenever it changes, `ended` when the
/// hand-off is over. Polls the store, so it follows changes made by any
/// replica.
async fn events(
    req: HttpRequest,
    state: web::Data<AppState>,
    desk: web::Data<HandoffDesk>,
    path: web::Path<String>,
) -> HttpResponse {
    if let Err(response) = session(&req, &state).await {
        return *response;
    }
    let key = match parse_key(&path) {
        Ok(key) => key,
        Err(response) => return *response,
    };
    struct Follow {
        desk: web::Data<HandoffDesk>,
        state: web::Data<AppState>,
        req: HttpRequest,
        key: ConversationKey,
        version: u64,
        ticks: u64,
        done: bool,
    }
    let start = Follow {
        desk,
        state,
        req,
        key,
        version: 0,
        ticks: 0,
        done: false,
    };
    let stream = futures_util::stream::unfold(start, |mut follow| async move {
        if follow.done {
            return None;
        }
        loop {
            if follow.ticks > 0 {
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            follow.ticks += 1;
            if follow.state.shutting_down() {
                return None;
            }
            // A session that ends (sign-out, expiry) ends the stream.
            if follow.ticks % 25 == 0 && session(&follow.req, &follow.state).await.is_err() {
                return None;
            }
            match follow.desk.record(&follow.key).await {
                Ok(Some(record)) if record.version != follow.version => {
                    follow.version = record.version;
                    let data = serde_json::to_string(&record).unwrap_or_default();
                    let chunk = Bytes::from(format!("event: record\ndata: {data}\n\n"));
                    return Some((Ok::<_, actix_web::Error>(chunk), follow));
                }
                Ok(None) => {
                    follow.done = true;
                    return Some((
                        Ok(Bytes::from_static(b"event: ended\ndata: {}\n\n")),
                        follow,
                    ));
                }
                Ok(Some(_)) | Err(_) => {
                    if follow.ticks % 40 == 0 {
                        return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), follow));
                    }
                }
            }
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(stream)
}

#[derive(Deserialize)]
struct ReplyForm {
    text: String,
    /// Who answered, for replies from a help desk (signed requests).
    agent: Option<String>,
}

fn control_id() -> Option<String> {
    random_hex().map(|hex| hex[..32].to_owned())
}

async fn submit(state: &AppState, control: Control) -> HttpResponse {
    let id = control.id().to_owned();
    match state.inbox.submit_control(control).await {
        Ok(()) => HttpResponse::Accepted().json(json!({ "accepted": id })),
        Err(SubmitError::Full) => error(StatusCode::SERVICE_UNAVAILABLE, "inbox full; retry"),
        Err(SubmitError::Closed) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
        Err(SubmitError::Unavailable(_)) => store_down(),
    }
}

/// Checks that the conversation is handed off right now (a reply to a
/// closed conversation would otherwise vanish silently).
async fn handed_off(desk: &HandoffDesk, key: &ConversationKey) -> Result<HandoffRecord, Refusal> {
    match desk.record(key).await {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err(Box::new(error(
            StatusCode::CONFLICT,
            "this conversation is not handed off",
        ))),
        Err(_) => Err(Box::new(store_down())),
    }
}

async fn act(
    state: &AppState,
    desk: &HandoffDesk,
    raw: &str,
    agent: &str,
    action: &str,
    text: Option<&str>,
) -> HttpResponse {
    let key = match parse_key(raw) {
        Ok(key) => key,
        Err(response) => return *response,
    };
    if let Err(response) = handed_off(desk, &key).await {
        return *response;
    }
    let Some(id) = control_id() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "no randomness");
    };
    let agent = agent.to_owned();
    let control = match (action, text) {
        ("reply", Some(text)) => {
            let text = text.trim();
            if text.is_empty() || text.chars().count() > MAX_REPLY_CHARS {
                return error(
                    StatusCode::BAD_REQUEST,
                    "a reply needs 1 to 4000 characters of text",
                );
            }
            Control::AgentReply {
                conversation: key,
                id,
                agent,
                text: text.to_owned(),
            }
        }
        ("hand-back", _) => Control::HandBack {
            conversation: key,
            id,
            agent,
        },
        _ => Control::Close {
            conversation: key,
            id,
            agent,
        },
    };
    submit(state, control).await
}

async fn reply(
    req: HttpRequest,
    state: web::Data<AppState>,
    desk: web::Data<HandoffDesk>,
    path: web::Path<String>,
    body: Bytes,
) -> HttpResponse {
    let session = match acting_session(&req, &state).await {
        Ok(session) => session,
        Err(response) => return *response,
    };
    // Read only for a caller with a session: nobody else learns how a
    // body is judged.
    let body: ReplyForm = match crate::routes::json_body(&req, &body) {
        Ok(body) => body,
        Err(refusal) => return *refusal,
    };
    act(
        &state,
        &desk,
        &path,
        &session.name,
        "reply",
        Some(&body.text),
    )
    .await
}

async fn hand_back(
    req: HttpRequest,
    state: web::Data<AppState>,
    desk: web::Data<HandoffDesk>,
    path: web::Path<String>,
) -> HttpResponse {
    let session = match acting_session(&req, &state).await {
        Ok(session) => session,
        Err(response) => return *response,
    };
    info!(target: "switchboard::audit", agent = %session.name, action = "hand-back", "console action");
    act(&state, &desk, &path, &session.name, "hand-back", None).await
}

async fn close(
    req: HttpRequest,
    state: web::Data<AppState>,
    desk: web::Data<HandoffDesk>,
    path: web::Path<String>,
) -> HttpResponse {
    let session = match acting_session(&req, &state).await {
        Ok(session) => session,
        Err(response) => return *response,
    };
    info!(target: "switchboard::audit", agent = %session.name, action = "close", "console action");
    act(&state, &desk, &path, &session.name, "close", None).await
}

async fn take(
    req: HttpRequest,
    state: web::Data<AppState>,
    desk: web::Data<HandoffDesk>,
    path: web::Path<String>,
) -> HttpResponse {
    let session = match acting_session(&req, &state).await {
        Ok(session) => session,
        Err(response) => return *response,
    };
    info!(target: "switchboard::audit", agent = %session.name, action = "take", "console action");
    take_over(&state, &desk, &path, &session.name).await
}

/// Queues a take-over of a conversation the bot has: 404 when there is no
/// such conversation, 409 when a person has it already.
async fn take_over(state: &AppState, desk: &HandoffDesk, raw: &str, agent: &str) -> HttpResponse {
    let key = match parse_key(raw) {
        Ok(key) => key,
        Err(response) => return *response,
    };
    match desk.record(&key).await {
        Ok(Some(_)) => {
            return error(
                StatusCode::CONFLICT,
                "a person has this conversation already",
            );
        }
        Ok(None) => {}
        Err(_) => return store_down(),
    }
    match state.store.get(&crate::store::state_key(&key)).await {
        Ok(Some(_)) => {}
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such conversation"),
        Err(_) => return store_down(),
    }
    let Some(id) = control_id() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "no randomness");
    };
    submit(
        state,
        Control::TakeOver {
            conversation: key,
            id,
            agent: agent.to_owned(),
        },
    )
    .await
}

// ------------------------------------------------------- bearer / signed

async fn admin_queue(desk: web::Data<HandoffDesk>) -> HttpResponse {
    queue_json(&desk).await
}

async fn admin_record(desk: web::Data<HandoffDesk>, path: web::Path<String>) -> HttpResponse {
    record_json(&desk, &path).await
}

fn admin_name(req: &HttpRequest) -> String {
    use actix_web::HttpMessage;
    req.extensions()
        .get::<crate::admin::AdminIdentity>()
        .map(|identity| identity.name.clone())
        .unwrap_or_else(|| "admin".to_owned())
}

async fn admin_hand_back(
    req: HttpRequest,
    state: web::Data<AppState>,
    desk: web::Data<HandoffDesk>,
    path: web::Path<String>,
) -> HttpResponse {
    act(&state, &desk, &path, &admin_name(&req), "hand-back", None).await
}

async fn admin_close(
    req: HttpRequest,
    state: web::Data<AppState>,
    desk: web::Data<HandoffDesk>,
    path: web::Path<String>,
) -> HttpResponse {
    act(&state, &desk, &path, &admin_name(&req), "close", None).await
}

async fn admin_take(
    req: HttpRequest,
    state: web::Data<AppState>,
    desk: web::Data<HandoffDesk>,
    path: web::Path<String>,
) -> HttpResponse {
    take_over(&state, &desk, &path, &admin_name(&req)).await
}

/// Largest signed agent reply body read (actix's default for a body read
/// whole).
const MAX_SIGNED_REPLY_BYTES: usize = 256 * 1024;

/// An agent reply from a tool or help desk: an operator bearer token, or
/// the body signed with `[handoff] webhook_secret`. The body is read only
/// once the headers could authorise it, so an anonymous caller cannot make
/// the gateway buffer anything.
async fn admin_reply(
    req: HttpRequest,
    state: web::Data<AppState>,
    desk: web::Data<HandoffDesk>,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .and_then(|token| token_identity(&state, token));
    let signature = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .zip(desk.webhook_secret());
    let unauthenticated = || {
        warn!(target: "switchboard::audit", path = "/admin/handoffs/#/reply", outcome = "unauthenticated", "agent reply refused");
        HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"switchboard-admin\""))
            .json(json!({"error": "unauthorized", "hint": "send an operator bearer token or sign the body (X-Switchboard-Signature-256)"}))
    };
    let operator = match bearer {
        Some((name, Role::Operator)) => Some(name),
        Some((name, Role::ReadOnly)) => {
            warn!(target: "switchboard::audit", token = %name, path = "/admin/handoffs/#/reply", outcome = "forbidden", "agent reply refused");
            return error(StatusCode::FORBIDDEN, "this action needs an operator token");
        }
        None if signature.is_some() => None,
        None => return unauthenticated(),
    };
    let body = match payload.to_bytes_limited(MAX_SIGNED_REPLY_BYTES).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => return error(StatusCode::BAD_REQUEST, "the body could not be read"),
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large"),
    };
    let signed = operator.is_none()
        && signature.is_some_and(|(signature, secret)| signature_valid(secret, &body, signature));
    let caller = match operator {
        Some(name) => name,
        None if signed => "help-desk".to_owned(),
        None => return unauthenticated(),
    };
    let Ok(form) = serde_json::from_slice::<ReplyForm>(&body) else {
        return error(StatusCode::BAD_REQUEST, "expected {\"text\": \"...\"}");
    };
    let agent = match (&form.agent, signed) {
        (Some(agent), true) => format!("{caller}:{}", agent.chars().take(64).collect::<String>()),
        _ => caller,
    };
    info!(target: "switchboard::audit", token = %agent, path = "/admin/handoffs/#/reply", "agent reply");
    act(&state, &desk, &path, &agent, "reply", Some(&form.text)).await
}
