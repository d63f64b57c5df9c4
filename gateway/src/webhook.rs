//! The public webhook routes. Every status code the platforms see is decided
//! here, by the table in DESIGN.md ("Status codes at the webhook"):
//! forged 401 (nothing stored), unknown channel 404, too large 413, signed
//! but unparseable 200 + dead letter, store unavailable or inbox full 503,
//! otherwise 200 once every event is deduplicated and queued.

use std::time::Duration;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use switchboard_model::{HandshakeError, HandshakeQuery, Headers, Platform, RawWebhook};
use tracing::{info, warn};

use crate::pipeline::{Accepted, IntakeConnection, SubmitError};
use crate::registry::Route;
use crate::startup::AppState;
use crate::store::{DeadLetter, dedupe_key};

/// actix's header map, seen through the adapters' header interface.
struct ActixHeaders<'a>(&'a HeaderMap);

impl Headers for ActixHeaders<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|value| value.to_str().ok())
    }
}

fn platform_of(name: &str) -> Option<Platform> {
    Platform::from_name(name)
}

/// An answer after which the connection is closed. The unread request
/// body travels with the answer: were it dropped first, actix would keep
/// reading and discarding a chunked body for as long as the client sends
/// (actix-web #3936) instead of closing the connection.
fn closing(
    status: actix_web::http::StatusCode,
    body: &'static str,
    unread: web::Payload,
) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .force_close()
        .body(HoldingBody {
            text: Some(web::Bytes::from_static(body.as_bytes())),
            _unread: unread,
        })
}

/// A fixed response body that keeps the request's unread payload alive
/// until the response has been written.
struct HoldingBody {
    text: Option<web::Bytes>,
    _unread: web::Payload,
}

impl MessageBody for HoldingBody {
    type Error = std::convert::Infallible;

    fn size(&self) -> actix_web::body::BodySize {
        actix_web::body::BodySize::Sized(self.text.as_ref().map_or(0, |t| t.len() as u64))
    }

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<web::Bytes, Self::Error>>> {
        std::task::Poll::Ready(self.get_mut().text.take().map(Ok))
    }
}

fn text(status: actix_web::http::StatusCode, body: &'static str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(body)
}

crate::routes::route_table! {
    /// The public listener's own routes (the sandbox adds its own). actix
    /// tries routes in this order, matching each path pattern anew (a
    /// regex for each `{...}` path), so webhook deliveries, nearly all of
    /// the traffic, come first and are recognised by the first match.
    pub fn public_routes,
    const PUBLIC_ROUTES = [
        post "/webhooks/{platform}/{channel}" => receive,
        get "/webhooks/{platform}/{channel}" => handshake,
        get "/healthz" => healthz,
    ]
}

/// `{platform}` and `{channel}` of a webhook path when each is one
/// non-empty segment (as actix's matcher reads them) with nothing to
/// percent-decode.
pub fn webhook_segments(path: &str) -> Option<(&str, &str)> {
    let (platform, channel) = path.strip_prefix("/webhooks/")?.split_once('/')?;
    let plain = |segment: &str| !segment.is_empty() && !segment.contains(['/', '%']);
    (plain(platform) && plain(channel)).then_some((platform, channel))
}

/// Middleware: hands webhook deliveries (`POST /webhooks/{platform}/{channel}`,
/// nearly all of the traffic) straight to [`receive`]. actix's router
/// would match the path against each route's regex and extract the path
/// and state anew for every request, a few percent of a webhook's CPU.
/// Everything else, and any path with something to percent-decode, goes
/// through the router, whose table still has the same route (for `Allow`
/// on a 405 and for the API description).
pub async fn dispatch(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, actix_web::Error> {
    let direct = (request.method() == Method::POST)
        .then(|| webhook_segments(request.path()))
        .flatten()
        .and_then(|(platform, channel)| {
            let state = request.app_data::<web::Data<AppState>>()?.clone();
            Some((state, platform.to_owned(), channel.to_owned()))
        });
    let Some((state, platform, channel)) = direct else {
        return Ok(next.call(request).await?.map_into_left_body());
    };
    let (http_request, mut payload) = request.into_parts();
    let payload = web::Payload::from_request(&http_request, &mut payload).await?;
    let response = receive_from(state, platform, channel, http_request.clone(), payload).await;
    Ok(ServiceResponse::new(
        http_request,
        response.map_into_right_body(),
    ))
}

/// `GET /webhooks/{platform}/{channel}`: Meta's subscription handshake.
pub async fn handshake(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    request: HttpRequest,
) -> HttpResponse {
    let (platform_name, channel_id) = path.into_inner();
    let Some(platform) = platform_of(&platform_name) else {
        return text(actix_web::http::StatusCode::NOT_FOUND, "unknown platform\n");
    };
    let Some(channel) = state
        .registry
        .get(&channel_id)
        .filter(|c| c.platform == platform)
    else {
        return text(actix_web::http::StatusCode::NOT_FOUND, "unknown channel\n");
    };
    let mut query = HandshakeQuery::default();
    for (key, value) in url::form_urlencoded::parse(request.query_string().as_bytes()) {
        match key.as_ref() {
            "hub.mode" => query.mode = Some(value.into_owned()),
            "hub.verify_token" => query.verify_token = Some(value.into_owned()),
            "hub.challenge" => query.challenge = Some(value.into_owned()),
            _ => {}
        }
    }
    match channel.adapter.handshake(&query) {
        Ok(challenge) => {
            info!(platform = platform.as_str(), channel = %channel.id, "webhook subscription verified");
            HttpResponse::Ok()
                .content_type("text/plain; charset=utf-8")
                .body(challenge)
        }
        Err(HandshakeError::NotSupported) => text(
            actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
            "this platform has no handshake\n",
        ),
        Err(error @ HandshakeError::MissingParameter(_)) => {
            warn!(platform = platform.as_str(), channel = %channel.id, error = %error, "handshake refused");
            text(
                actix_web::http::StatusCode::BAD_REQUEST,
                "missing hub.mode, hub.verify_token or hub.challenge\n",
            )
        }
        Err(error) => {
            warn!(platform = platform.as_str(), channel = %channel.id, error = %error, "handshake refused");
            state
                .metrics
                .webhook(platform.as_str(), "handshake_refused");
            text(
                actix_web::http::StatusCode::FORBIDDEN,
                "verification failed\n",
            )
        }
    }
}

/// `POST /webhooks/{platform}/{channel}`.
pub async fn receive(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let (platform_name, channel_id) = path.into_inner();
    receive_from(state, platform_name, channel_id, request, payload).await
}

async fn receive_from(
    state: web::Data<AppState>,
    platform_name: String,
    channel_id: String,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let Some(platform) = platform_of(&platform_name) else {
        return closing(
            actix_web::http::StatusCode::NOT_FOUND,
            "unknown platform\n",
            payload,
        );
    };
    let label = platform.as_str();
    let Some(channel) = state
        .registry
        .get(&channel_id)
        .filter(|c| c.platform == platform)
    else {
        state.metrics.webhook(label, "unknown_channel");
        warn!(platform = label, "webhook for an unknown channel");
        return closing(
            actix_web::http::StatusCode::NOT_FOUND,
            "unknown channel\n",
            payload,
        );
    };
    let mut payload = payload;
    let body = match read_body(&mut payload, &request, state.settings.server.max_body_bytes).await {
        Ok(body) => body,
        // The unread rest of the body is not wanted: close the connection
        // rather than keep reading from a client that sends too much or
        // too slowly.
        Err(BodyError::TooLarge) => {
            state.metrics.webhook(label, "too_large");
            warn!(platform = label, channel = %channel.id, "webhook body over the limit");
            return closing(
                actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                "body too large\n",
                payload,
            );
        }
        Err(BodyError::Incomplete) => {
            state.metrics.webhook(label, "bad_request");
            return closing(
                actix_web::http::StatusCode::BAD_REQUEST,
                "incomplete body\n",
                payload,
            );
        }
        Err(BodyError::Timeout) => {
            state.metrics.webhook(label, "timeout");
            return closing(
                actix_web::http::StatusCode::REQUEST_TIMEOUT,
                "body not received in time\n",
                payload,
            );
        }
    };
    let headers = ActixHeaders(request.headers());
    let verified = match channel.adapter.verify(RawWebhook::new(&headers, &body)) {
        Ok(verified) => verified,
        Err(error) => {
            state.metrics.webhook(label, "unauthorized");
            state
                .metrics
                .verification_failures
                .get_or_create(&crate::metrics::PlatformReason {
                    platform: label,
                    reason: error.label(),
                })
                .inc();
            warn!(platform = label, channel = %channel.id, reason = error.label(), "webhook refused: {error}");
            return text(
                actix_web::http::StatusCode::UNAUTHORIZED,
                "signature verification failed\n",
            );
        }
    };
    let events = match channel.adapter.parse(&verified) {
        Ok(events) => events,
        Err(error) => {
            // Signed by the platform but not understood: answering 4xx/5xx
            // would only make it retry (and maybe disable the webhook).
            state.metrics.webhook(label, "unparseable");
            warn!(platform = label, channel = %channel.id, error = %error, "signed webhook could not be parsed; kept as a dead letter");
            let letter = DeadLetter::new(
                "unparseable_webhook",
                label,
                channel.id.as_str(),
                None,
                error.to_string(),
                Some(serde_json::Value::String(
                    String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]).into_owned(),
                )),
            );
            state.metrics.dead_letter("unparseable_webhook");
            return match state.store.push_dead_letter(letter).await {
                Ok(()) => text(actix_web::http::StatusCode::OK, "ok\n"),
                Err(_) => unavailable(&state, label),
            };
        }
    };

    let dedupe_ttl = Duration::from_secs(state.settings.pipeline.dedupe_ttl_hours * 3600);
    let mut accepted = 0usize;
    let mut duplicates = 0usize;
    for mut event in events {
        match state.registry.route(&channel, &event) {
            Route::Channel(target) => {
                if target != event.channel {
                    event.reroute(target);
                }
            }
            Route::Unclaimed => {
                state
                    .metrics
                    .unclaimed_entries
                    .get_or_create(&crate::metrics::PlatformLabel { platform: label })
                    .inc();
                let letter = DeadLetter::new(
                    "unclaimed_entry",
                    label,
                    channel.id.as_str(),
                    None,
                    format!(
                        "no channel claims business id {}",
                        event.business_id.as_deref().unwrap_or("?")
                    ),
                    Some(serde_json::json!({ "event_id": event.event_id })),
                );
                if state.store.push_dead_letter(letter).await.is_err() {
                    return unavailable(&state, label);
                }
                continue;
            }
        }
        let key = dedupe_key(label, event.channel.as_str(), event.event_id.as_str());
        match state
            .inbox
            .accept(
                &state.store,
                request
                    .app_data::<web::Data<IntakeConnection>>()
                    .map(|intake| intake.get_ref()),
                event,
                &key,
                dedupe_ttl,
            )
            .await
        {
            Ok(Accepted::Queued) => accepted += 1,
            Ok(Accepted::Duplicate) => duplicates += 1,
            Err(SubmitError::Unavailable(error)) => {
                warn!(platform = label, error = %error, "store unavailable; asking the platform to retry");
                return unavailable(&state, label);
            }
            Err(error) => {
                warn!(platform = label, error = %error, "inbox cannot take the event; asking the platform to retry");
                state.metrics.webhook(label, "busy");
                return HttpResponse::ServiceUnavailable()
                    .insert_header((header::RETRY_AFTER, "1"))
                    .content_type("text/plain; charset=utf-8")
                    .body("busy, retry later\n");
            }
        }
    }
    let result = if accepted == 0 && duplicates > 0 {
        "duplicate"
    } else {
        "accepted"
    };
    state.metrics.webhook(label, result);
    text(actix_web::http::StatusCode::OK, "ok\n")
}

enum BodyError {
    TooLarge,
    Incomplete,
    Timeout,
}

/// Reads the raw body up to `limit` bytes: refuses a declared length over
/// the limit before reading anything, and gives a slow sender ten seconds.
async fn read_body(
    payload: &mut web::Payload,
    request: &HttpRequest,
    limit: usize,
) -> Result<web::Bytes, BodyError> {
    use futures_util::StreamExt;

    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(BodyError::TooLarge);
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(4096).min(limit));
    let read = async {
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|_| BodyError::Incomplete)?;
            if body.len() + chunk.len() > limit {
                return Err(BodyError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(())
    };
    match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Ok(Ok(())) => Ok(body.freeze()),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(BodyError::Timeout),
    }
}

const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

fn unavailable(state: &AppState, platform: &'static str) -> HttpResponse {
    state.metrics.webhook(platform, "unavailable");
    HttpResponse::ServiceUnavailable()
        .insert_header((header::RETRY_AFTER, "5"))
        .content_type("text/plain; charset=utf-8")
        .body("storage unavailable, retry later\n")
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_two_segment_webhook_paths_are_dispatched_directly() {
        assert_eq!(
            webhook_segments("/webhooks/telegram/shop"),
            Some(("telegram", "shop"))
        );
        assert_eq!(
            webhook_segments("/webhooks/whatsapp/wa-1"),
            Some(("whatsapp", "wa-1"))
        );
        for path in [
            "/webhooks/telegram/",
            "/webhooks//shop",
            "/webhooks/telegram/shop/extra",
            "/webhooks/telegram/shop/",
            "/webhooks/telegram",
            "/webhooks/telegr%61m/shop",
            "/webhooks/telegram/sh%6Fp",
            "/healthz",
        ] {
            assert_eq!(webhook_segments(path), None, "{path}");
        }
    }
}
