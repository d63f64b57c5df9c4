//! The admin listener: readiness, metrics, channels, dead letters,
//! conversations (masked view and erase) and the demo backend's code outbox.
//! Every route needs `Authorization: Bearer <token>` with one of the
//! configured admin tokens (compared as SHA-256 digests in constant time);
//! read-only tokens may only read. Refusals and every state-changing action
//! go to the audit log.

use actix_web::HttpMessage;
use actix_web::body::{BoxBody, EitherBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use switchboard_model::ConversationKey;
use tracing::{info, warn};

use crate::config::{AdminToken, Role};
use crate::startup::AppState;
use crate::store::state_key;

/// Who is calling, once authenticated.
#[derive(Debug, Clone)]
pub struct AdminIdentity {
    pub name: String,
    pub role: Role,
}

/// The admin token the request carries, if it is one of the configured
/// ones. Every configured digest is compared (in constant time), so the
/// time taken says nothing about which token came close.
pub fn identify(req: &ServiceRequest, state: &AppState) -> Option<AdminIdentity> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    let presented = AdminToken::digest(token.trim());
    let mut found = None;
    for candidate in &state.settings.server.admin_tokens {
        if bool::from(candidate.sha256.ct_eq(&presented)) {
            found = Some(AdminIdentity {
                name: candidate.name.clone(),
                role: candidate.role,
            });
        }
    }
    found
}

/// The role a request needs: reading needs any token; changing anything,
/// or reading one-time codes, needs an operator.
pub fn required_role(method: &Method, path: &str) -> Role {
    let reading = matches!(*method, Method::GET | Method::HEAD);
    if reading && path != "/admin/dev-outbox" {
        Role::ReadOnly
    } else {
        Role::Operator
    }
}

fn allows(role: Role, needed: Role) -> bool {
    role == Role::Operator || needed == Role::ReadOnly
}

/// The path for the audit log: its route part, with anything after it (a
/// conversation key holds a chat id or phone number) replaced by a short
/// digest that still tells two targets apart.
fn audit_path(path: &str) -> String {
    let mut parts = path.splitn(4, '/');
    let (_, first, second, rest) = (parts.next(), parts.next(), parts.next(), parts.next());
    let head = match (first, second) {
        (Some(a), Some(b)) => format!("/{a}/{b}"),
        (Some(a), None) => format!("/{a}"),
        _ => "/".to_owned(),
    };
    match rest {
        Some(rest) if !rest.is_empty() => {
            format!("{head}/#{}", &hex::encode(AdminToken::digest(rest))[..12])
        }
        _ => head,
    }
}

/// Middleware body: authenticates, checks the role, and writes the audit
/// log (target `switchboard::audit`) for refusals and for every action that
/// changes something or reveals codes.
pub async fn require_token(
    req: ServiceRequest,
    next: actix_web::middleware::Next<BoxBody>,
) -> Result<ServiceResponse<EitherBody<BoxBody>>, actix_web::Error> {
    let identity = req
        .app_data::<web::Data<AppState>>()
        .and_then(|state| identify(&req, state));
    let method = req.method().clone();
    let path = audit_path(req.path());
    let Some(identity) = identity else {
        warn!(target: "switchboard::audit", method = %method, path = %path, outcome = "unauthenticated", "admin request refused");
        let response = HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"switchboard-admin\""))
            .json(json!({"error": "unauthorized", "hint": "send Authorization: Bearer <admin token>"}));
        return Ok(req.into_response(response).map_into_right_body());
    };
    // The path as the router matches it (percent-decoded), not as sent:
    // `/admin/dev%2Doutbox` reaches the dev outbox and must need what it
    // needs.
    let needed = required_role(&method, req.match_info().as_str());
    if !allows(identity.role, needed) {
        warn!(
            target: "switchboard::audit",
            token = %identity.name, method = %method, path = %path, outcome = "forbidden",
            "admin request refused: the token's role is read-only"
        );
        let response = HttpResponse::Forbidden()
            .json(json!({"error": "forbidden", "hint": "this action needs a token with role = \"operator\""}));
        return Ok(req.into_response(response).map_into_right_body());
    }
    let audited = needed == Role::Operator;
    let name = identity.name.clone();
    req.extensions_mut().insert(identity);
    let response = next.call(req).await?;
    if audited {
        info!(
            target: "switchboard::audit",
            token = %name, method = %method, path = %path, status = response.status().as_u16(),
            "admin action"
        );
    }
    Ok(response.map_into_left_body())
}

crate::routes::route_table! {
    /// Behind [`require_token`].
    pub fn routes,
    const ADMIN_ROUTES = [
        get "/readyz" => readyz,
        get "/metrics" => metrics,
        get "/admin/openapi.json" => crate::routes::document,
        get "/admin/channels" => channels,
        get "/admin/dead-letters" => dead_letters,
        get "/admin/conversations/{key}" => conversation,
        delete "/admin/conversations/{key}" => erase_conversation,
        get "/admin/dev-outbox" => dev_outbox,
    ]
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.shutting_down() {
        return HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body("shutting down\n");
    }
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("ready\n"),
        Err(error) => {
            warn!(error = %error, "not ready: store unavailable");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain; charset=utf-8")
                .body("store unavailable\n")
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
        Ok(letters) => {
            // Dead letters keep what could not be handled, raw bodies
            // included; operators see them with personal data masked.
            let mut value = serde_json::to_value(&letters).unwrap_or(Value::Null);
            mask_strings(&mut value);
            // Ids are ours (`dl-<ms>-<hex>`), never personal, and must stay
            // usable: the masker would take their digits for a phone number.
            if let Value::Array(masked) = &mut value {
                for (letter, original) in masked.iter_mut().zip(&letters) {
                    letter["id"] = Value::String(original.id.clone());
                }
            }
            HttpResponse::Ok().json(json!({ "dead_letters": value }))
        }
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
