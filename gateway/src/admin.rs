//! The admin listener: readiness, metrics, channels, dead letters,
//! conversations (masked view and erase) and the demo backend's code outbox.
//! Every route needs `Authorization: Bearer <server.admin_token>`, compared
//! in constant time.

use actix_web::body::{BoxBody, EitherBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use switchboard_model::ConversationKey;
use tracing::{info, warn};

use crate::startup::AppState;
use crate::store::state_key;

/// True when the request carries the admin bearer token.
pub fn authorized(req: &ServiceRequest, state: &AppState) -> bool {
    let Some(value) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(token) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    else {
        return false;
    };
    let expected = state.settings.server.admin_token.expose_secret().as_bytes();
    bool::from(token.trim().as_bytes().ct_eq(expected))
}

/// Middleware body: refuses unauthenticated requests before any handler.
pub async fn require_token(
    req: ServiceRequest,
    next: actix_web::middleware::Next<BoxBody>,
) -> Result<ServiceResponse<EitherBody<BoxBody>>, actix_web::Error> {
    let allowed = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|state| authorized(&req, state));
    if !allowed {
        warn!(path = req.path(), "admin request without a valid token");
        let response = HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"switchboard-admin\""))
            .json(json!({"error": "unauthorized", "hint": "send Authorization: Bearer <server.admin_token>"}));
        return Ok(req.into_response(response).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.shutting_down() {
        return HttpResponse::ServiceUnavailable().body("shutting down\n");
    }
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("ready\n"),
        Err(error) => {
            warn!(error = %error, "not ready: store unavailable");
            HttpResponse::ServiceUnavailable().body("store unavailable\n")
        }
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    if let Ok(count) = state.store.dead_letter_count().await {
        state
            .metrics
            .dead_letters_stored
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render())
}

pub async fn channels(state: web::Data<AppState>) -> HttpResponse {
    let mut channels: Vec<Value> = state
        .registry
        .all()
        .into_iter()
        .map(|channel| {
            json!({
                "id": channel.id,
                "platform": channel.platform,
                "business_id": channel.business_id,
                "webhook_path": format!("/webhooks/{}/{}", channel.platform, channel.id),
                "status": "active",
                "source": channel.source.as_str(),
            })
        })
        .collect();
    channels.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    HttpResponse::Ok().json(json!({ "channels": channels }))
}

#[derive(Debug, Deserialize)]
pub struct LimitQuery {
    limit: Option<usize>,
}

pub async fn dead_letters(
    state: web::Data<AppState>,
    query: web::Query<LimitQuery>,
) -> HttpResponse {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    match state.store.dead_letters(limit).await {
        Ok(letters) => HttpResponse::Ok().json(json!({ "dead_letters": letters })),
        Err(error) => {
            warn!(error = %error, "dead letters unavailable");
            HttpResponse::ServiceUnavailable().json(json!({"error": "store unavailable"}))
        }
    }
}

fn parse_key(raw: &str) -> Result<ConversationKey, Box<HttpResponse>> {
    ConversationKey::parse(raw).ok_or_else(|| {
        Box::new(HttpResponse::BadRequest().json(json!({
            "error": "invalid conversation key",
            "hint": "use platform:channel:chat, e.g. telegram:demo-telegram:42",
        })))
    })
}

/// Masks personal data in every string of a JSON value.
fn mask_strings(value: &mut Value) {
    match value {
        Value::String(text) => {
            let masked = switchboard_core::guards::redact_pii(text).into_owned();
            *text = masked;
        }
        Value::Array(items) => items.iter_mut().for_each(mask_strings),
        Value::Object(map) => map.values_mut().for_each(mask_strings),
        _ => {}
    }
}

pub async fn conversation(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let key = match parse_key(&path) {
        Ok(key) => key,
        Err(response) => return *response,
    };
    match state.store.get(&state_key(&key)).await {
        Ok(Some(bytes)) => {
            let mut value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            mask_strings(&mut value);
            HttpResponse::Ok().json(json!({ "conversation": key.to_string(), "state": value }))
        }
        Ok(None) => HttpResponse::NotFound().json(json!({"error": "no such conversation"})),
        Err(error) => {
            warn!(error = %error, "conversation lookup failed");
            HttpResponse::ServiceUnavailable().json(json!({"error": "store unavailable"}))
        }
    }
}

pub async fn erase_conversation(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> HttpResponse {
    let key = match parse_key(&path) {
        Ok(key) => key,
        Err(response) => return *response,
    };
    match state.store.erase_conversation(&key).await {
        Ok(()) => {
            info!(platform = key.platform.as_str(), channel = %key.channel, "conversation erased by an operator");
            HttpResponse::NoContent().finish()
        }
        Err(error) => {
            warn!(error = %error, "erase failed");
            HttpResponse::ServiceUnavailable().json(json!({"error": "store unavailable"}))
        }
    }
}

/// The demo backend's out-of-band one-time codes (what an email or SMS
/// would carry). Only the demo backend has one.
pub async fn dev_outbox(state: web::Data<AppState>) -> HttpResponse {
    match &state.demo_backend {
        Some(demo) => HttpResponse::Ok().json(json!({ "outbox": demo.outbox() })),
        None => HttpResponse::NotFound()
            .json(json!({"error": "the dev outbox exists only with backend.kind = \"demo\""})),
    }
}
