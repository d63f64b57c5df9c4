//! Request ids: every request on both listeners runs inside a tracing span
//! named by its route (`POST /webhooks/{platform}/{channel}`) that carries
//! a request id, so each log line of the request names it, and with the
//! `otel` feature the span is exported as one trace span per webhook. The
//! id is the caller's `X-Request-Id` when it is a plain token (a proxy's or
//! load balancer's), otherwise a new one; it is echoed in the response.
//!
//! It must not put anything from the request into the span but the method,
//! the route pattern and that checked id: paths hold channel ids and
//! conversation keys, headers hold secrets.

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";

/// The caller's id when it is 1-128 characters of `A-Z a-z 0-9 . _ : -`;
/// anything else could forge log lines, so it is replaced.
pub fn accepted(value: &str) -> Option<&str> {
    let ok = (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    ok.then_some(value)
}

/// A new id: 128 random bits in hex.
pub fn new_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}

/// The pattern actix would match for a webhook path, found without walking
/// the route table.
fn webhook_route(path: &str) -> Option<&'static str> {
    crate::webhook::webhook_segments(path).map(|_| "/webhooks/{platform}/{channel}")
}

/// Middleware body (`actix_web::middleware::from_fn`).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(accepted)
        .map_or_else(new_id, str::to_owned);
    // Matching the route pattern walks the whole route table with regexes
    // (about 5% of a webhook's CPU in the profile): only when a subscriber
    // will see the span, and never for webhooks, the bulk of the traffic.
    let span = if tracing::level_enabled!(tracing::Level::INFO) {
        let route = webhook_route(req.path()).map_or_else(
            || {
                req.match_pattern()
                    .unwrap_or_else(|| "unmatched".to_owned())
            },
            str::to_owned,
        );
        let name = format!("{} {route}", req.method());
        tracing::info_span!(
            "request",
            otel.name = %name,
            otel.kind = "server",
            request_id = %id,
            http.request.method = %req.method(),
            http.route = %route,
            http.response.status_code = tracing::field::Empty,
        )
    } else {
        tracing::Span::none()
    };
    let mut response = next.call(req).instrument(span.clone()).await?;
    span.record("http.response.status_code", response.status().as_u16());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(HEADER), value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use actix_web::middleware::from_fn;
    use actix_web::test as actix_test;
    use actix_web::{App, HttpResponse, web};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[actix_web::test]
    async fn every_log_line_of_a_request_names_its_id_and_the_answer_carries_it() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let app = actix_test::init_service(App::new().wrap(from_fn(middleware)).route(
            "/webhooks/{platform}/{channel}",
            web::post().to(|| async {
                tracing::info!("inside the handler");
                HttpResponse::Ok().finish()
            }),
        ))
        .await;

        let given = actix_test::TestRequest::post()
            .uri("/webhooks/telegram/shop")
            .insert_header((HEADER, "lb-7f3a.42"))
            .to_request();
        let response = actix_test::call_service(&app, given).await;
        assert_eq!(response.headers().get(HEADER).unwrap(), "lb-7f3a.42");

        let forged = actix_test::TestRequest::post()
            .uri("/webhooks/telegram/shop")
            .insert_header((HEADER, "x\" injected=\"1"))
            .to_request();
        let response = actix_test::call_service(&app, forged).await;
        let fresh = response.headers().get(HEADER).unwrap().to_str().unwrap();
        assert_eq!(fresh.len(), 32, "a forged id is replaced: {fresh}");

        let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("inside the handler"))
            .collect();
        assert_eq!(lines.len(), 2, "{logs}");
        assert!(lines[0].contains("request_id=lb-7f3a.42"), "{}", lines[0]);
        assert!(
            lines[0].contains("http.route=/webhooks/{platform}/{channel}"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].contains(&format!("request_id={fresh}")),
            "{}",
            lines[1]
        );
        assert!(!logs.contains("injected"), "{logs}");
    }

    #[test]
    fn webhook_paths_name_their_route_as_actix_would() {
        for (path, expected) in [
            (
                "/webhooks/telegram/shop",
                Some("/webhooks/{platform}/{channel}"),
            ),
            (
                "/webhooks/whatsapp/wa-1",
                Some("/webhooks/{platform}/{channel}"),
            ),
            ("/webhooks/telegram/", None),
            ("/webhooks//shop", None),
            ("/webhooks/telegram/shop/extra", None),
            ("/webhooks/telegram", None),
            ("/healthz", None),
        ] {
            assert_eq!(webhook_route(path), expected, "{path}");
        }
    }

    #[test]
    fn only_plain_caller_ids_are_kept() {
        assert_eq!(accepted("abc-123_x.y:z"), Some("abc-123_x.y:z"));
        for bad in ["", "a b", "a\nb", "a\"b", &"x".repeat(129), "ä"] {
            assert_eq!(accepted(bad), None, "{bad:?}");
        }
        let id = new_id();
        assert_eq!(id.len(), 32);
        assert!(accepted(&id).is_some());
        assert_ne!(id, new_id());
    }
}
