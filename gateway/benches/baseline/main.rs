//! The load test's baseline: the least a Telegram bot can do. One actix-web
//! handler checks the secret token header (constant time), parses the
//! update, makes one reqwest call to `sendMessage` echoing the text, and
//! answers 200. No dedupe, no queue, no state, no retries: what Switchboard
//! is compared against in docs/PERFORMANCE.md.
//!
//! `cargo run --release -p switchboard --example baseline`; environment:
//! BASELINE_BIND (127.0.0.1:8070), BASELINE_API_BASE
//! (http://127.0.0.1:9090/telegram, i.e. `switchboard simulate`'s fake API),
//! BASELINE_SECRET (the demo channel's secret token).
#![allow(clippy::print_stderr)]

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde::Deserialize;
use subtle::ConstantTimeEq;

#[derive(Deserialize)]
struct Update {
    #[allow(dead_code)]
    update_id: i64,
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    chat: Chat,
    text: Option<String>,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
}

struct State {
    secret: String,
    send_url: String,
    client: reqwest::Client,
}

async fn webhook(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let given = req
        .headers()
        .get("x-telegram-bot-api-secret-token")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !bool::from(given.ct_eq(state.secret.as_bytes())) {
        return HttpResponse::Unauthorized().finish();
    }
    let Ok(update) = serde_json::from_slice::<Update>(&body) else {
        return HttpResponse::Ok().finish();
    };
    let Some(message) = update.message else {
        return HttpResponse::Ok().finish();
    };
    let text = message.text.unwrap_or_default();
    let reply =
        serde_json::json!({"chat_id": message.chat.id, "text": format!("You said: {text}")});
    match state.client.post(&state.send_url).json(&reply).send().await {
        Ok(response) if response.status().is_success() => HttpResponse::Ok().finish(),
        // A bot this bare has no retry queue: ask Telegram to redeliver.
        _ => HttpResponse::ServiceUnavailable().finish(),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let var =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let bind = var("BASELINE_BIND", "127.0.0.1:8070");
    let api = var("BASELINE_API_BASE", "http://127.0.0.1:9090/telegram");
    let secret = var(
        "BASELINE_SECRET",
        switchboard::config::demo::TELEGRAM_SECRET_TOKEN,
    );
    let token = switchboard::config::demo::TELEGRAM_BOT_TOKEN;
    let client = reqwest::Client::builder()
        .build()
        .map_err(std::io::Error::other)?;
    let state = web::Data::new(State {
        secret,
        send_url: format!("{}/bot{token}/sendMessage", api.trim_end_matches('/')),
        client,
    });
    eprintln!("baseline listening on http://{bind}/webhooks/telegram/{{channel}}");
    HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/webhooks/telegram/{channel}", web::post().to(webhook))
    })
    .bind(bind)?
    .run()
    .await
}
