//! No secret and no customer's personal data leaves the service through
//! its logs, metrics, error answers or admin API, over a scenario that
//! touches every path that prints: three platforms, forged and replayed
//! webhooks, handshakes, a run-time channel registration, admin calls with
//! wrong tokens, platform 401/403 answers, dead letters, a Redis outage,
//! an erasure and a metrics scrape.
//!
//! Logs are captured in-process: this module installs the test binary's
//! global tracing subscriber (once) with the same formatters the service
//! uses (pretty and JSON), at debug level for every crate and trace for
//! Switchboard's, so it also sees what an operator would see with
//! `RUST_LOG=debug`. Events from other tests running meanwhile are captured
//! too; a secret they print is a leak just the same.

use std::io::Write;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_testkit::RedisServer;
use tracing_subscriber::fmt::MakeWriter;

use crate::helpers::*;

/// Every formatted event, one string each, as the service wrote it before
/// its log redaction.
static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

struct EventBuffer(Vec<u8>);

impl Write for EventBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventBuffer {
    fn drop(&mut self) {
        let event = String::from_utf8_lossy(&self.0).into_owned();
        EVENTS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(event);
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = EventBuffer;

    fn make_writer(&'a self) -> EventBuffer {
        EventBuffer(Vec::with_capacity(256))
    }
}

fn capture_logs() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new(
                "debug,switchboard=trace,switchboard_core=trace,switchboard_messenger=trace,\
                 switchboard_whatsapp=trace,switchboard_telegram=trace,switchboard_meta=trace",
            ))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(Capture),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(Capture),
            );
        tracing::subscriber::set_global_default(subscriber)
            .expect("nothing else in this test binary installs a global subscriber");
    });
}

fn captured() -> Vec<String> {
    EVENTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// Personal data the customers type in the scenario (unique to this test).
const EMAIL: &str = "rosa.quintero.7401@example.net";
const PHONE_TYPED: &str = "+34 612 740 188";
const CARD: &str = "4111 1111 1111 1111";
const WA_EMAIL: &str = "pau.ferrer.7402@example.org";
/// The WhatsApp customer's number: their chat id on that platform.
const WA_CUSTOMER: &str = "34612740199";
const MS_CUSTOMER: &str = "7403740374037403";
const TG_CUSTOMER: i64 = 7401;

const REDIS_PASSWORD: &str = "redis-pass-Xq7401";
/// Test-only encryption key; the base64 part is the secret.
const KEY_SECRET: &str = "Zm9vYmFyLXNlY3JldHMtdGVzdC1rZXktNzQwMS4uLi4=";
const NEW_TG_TOKEN: &str = "740100:SECRETS-new-bot-token";
const PUBLIC_URL: &str = "https://bot.example.test";

/// Everything the service answered, by where it came from.
#[derive(Default)]
struct Answers(Vec<(String, String)>);

impl Answers {
    async fn keep(&mut self, what: impl Into<String>, response: reqwest::Response) -> u16 {
        let status = response.status().as_u16();
        let headers = format!("{:?}", response.headers());
        let body = response.text().await.unwrap();
        self.0
            .push((what.into(), format!("{status} {headers}\n{body}")));
        status
    }
}

async fn admin(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let mut request = app.client.request(method, format!("{}{path}", app.admin));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn wait_for_reply(app: &TestApp, chat: &str, after: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.fake.to_chat(chat).len() <= after {
        assert!(Instant::now() < deadline, "chat {chat} got no reply");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends a customer's text on `platform` and waits for an answer.
async fn say(app: &TestApp, answers: &mut Answers, platform: &str, text: &str) {
    let (chat, response) = match platform {
        "telegram" => (
            TG_CUSTOMER.to_string(),
            app.post_telegram("tg", Some(TG_SECRET), &telegram_text(TG_CUSTOMER, text))
                .await,
        ),
        "whatsapp" => (
            WA_CUSTOMER.to_owned(),
            app.post_meta(
                "whatsapp",
                "wa",
                Some(WA_SECRET),
                &whatsapp_text(WA_CUSTOMER, text, 0),
            )
            .await,
        ),
        _ => (
            MS_CUSTOMER.to_owned(),
            app.post_meta(
                "messenger",
                "ms",
                Some(MS_SECRET),
                &messenger_text("PAGE1", MS_CUSTOMER, text),
            )
            .await,
        ),
    };
    let before = app.fake.to_chat(&chat).len();
    assert_eq!(
        answers.keep(format!("{platform} webhook"), response).await,
        200
    );
    wait_for_reply(app, &chat, before).await;
}

#[tokio::test]
async fn nothing_secret_or_personal_leaks_through_logs_metrics_errors_or_admin_answers() {
    capture_logs();
    let redis = RedisServer::start();
    let mut connection = redis.connection();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(REDIS_PASSWORD)
        .query::<()>(&mut connection)
        .unwrap();
    let url = redis
        .url()
        .replacen("redis://", &format!("redis://:{REDIS_PASSWORD}@"), 1);
    let extra = format!(
        "[store]\nurl = \"{url}\"\ntimeout_ms = 500\nencryption_keys = [\"k1:{KEY_SECRET}\"]\n\
         [registration]\npublic_url = \"{PUBLIC_URL}\"\nrefresh_secs = 1\n"
    );
    let app = spawn_app_with(&extra, &[]).await;
    let mut answers = Answers::default();

    // Customers on all three platforms, typing personal data.
    say(&app, &mut answers, "telegram", "hi").await;
    say(
        &app,
        &mut answers,
        "telegram",
        &format!("my email is {EMAIL} and my phone is {PHONE_TYPED}"),
    )
    .await;
    say(
        &app,
        &mut answers,
        "telegram",
        &format!("I paid with card {CARD}, where is order 10023?"),
    )
    .await;
    say(&app, &mut answers, "telegram", "link my account").await;
    say(&app, &mut answers, "telegram", "jane@example.com").await;
    say(&app, &mut answers, "telegram", "000000").await;
    say(&app, &mut answers, "whatsapp", "hello").await;
    say(
        &app,
        &mut answers,
        "whatsapp",
        &format!("write to {WA_EMAIL} or call {PHONE_TYPED}"),
    )
    .await;
    say(
        &app,
        &mut answers,
        "messenger",
        &format!("hi, I'm at {EMAIL}"),
    )
    .await;

    // Forged, unsigned, legacy-signed and replayed webhooks.
    let body = telegram_text(TG_CUSTOMER, &format!("forged {EMAIL}"));
    let forged = app
        .post_telegram("tg", Some("wrong-secret-token"), &body)
        .await;
    assert_eq!(answers.keep("forged telegram", forged).await, 401);
    let unsigned = app.post_telegram("tg", None, &body).await;
    assert_eq!(answers.keep("unsigned telegram", unsigned).await, 401);
    let replayed = app.post_telegram("tg", Some(TG_SECRET), &body).await;
    assert_eq!(answers.keep("telegram", replayed).await, 200);
    let again = app.post_telegram("tg", Some(TG_SECRET), &body).await;
    assert_eq!(answers.keep("replayed telegram", again).await, 200);
    let wa = whatsapp_text(WA_CUSTOMER, "forged", 0);
    let forged = app.post_meta("whatsapp", "wa", Some(MS_SECRET), &wa).await;
    assert_eq!(answers.keep("forged whatsapp", forged).await, 401);
    let ms = messenger_text("PAGE1", MS_CUSTOMER, "forged");
    let forged = app.post_meta("messenger", "ms", None, &ms).await;
    assert_eq!(answers.keep("unsigned messenger", forged).await, 401);

    // Handshakes, right and wrong.
    for (platform, channel, token, expected) in [
        ("whatsapp", "wa", WA_VERIFY, 200),
        ("messenger", "ms", "not-the-verify-token", 403),
        ("messenger", "ms", WA_VERIFY, 403),
    ] {
        let response = app
            .client
            .get(format!(
                "{}/webhooks/{platform}/{channel}?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=4711",
                app.public
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(
            answers
                .keep(format!("{platform} handshake"), response)
                .await,
            expected
        );
    }

    // Signed bodies that are not JSON become dead letters; one carries a
    // customer's text, as a truncated delivery would.
    let unparseable = app
        .post_meta("whatsapp", "wa", Some(WA_SECRET), b"{\"object\": not json")
        .await;
    assert_eq!(answers.keep("unparseable whatsapp", unparseable).await, 200);
    let cut = whatsapp_text(
        WA_CUSTOMER,
        &format!("mail {WA_EMAIL}, call {PHONE_TYPED}"),
        0,
    );
    let cut = &cut[..cut.len() - 3];
    let unparseable = app.post_meta("whatsapp", "wa", Some(WA_SECRET), cut).await;
    assert_eq!(answers.keep("truncated whatsapp", unparseable).await, 200);

    // The platforms refuse the tokens: Telegram 401, Graph 403.
    app.fake.script([Scripted {
        status: 401,
        retry_after: None,
        body: json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
    }]);
    let response = app
        .post_telegram(
            "tg",
            Some(TG_SECRET),
            &telegram_text(TG_CUSTOMER, "opening hours?"),
        )
        .await;
    assert_eq!(answers.keep("telegram webhook", response).await, 200);
    app.wait_for_dead_letter("send_failed:bad_credentials", Duration::from_secs(10))
        .await;
    app.fake.script([Scripted {
        status: 403,
        retry_after: None,
        body: json!({"error": {"message": "(#200) Requires whatsapp_business_messaging permission", "type": "OAuthException", "code": 200, "fbtrace_id": "AbC"}}),
    }]);
    let response = app
        .post_meta(
            "whatsapp",
            "wa",
            Some(WA_SECRET),
            &whatsapp_text(WA_CUSTOMER, "opening hours?", 0),
        )
        .await;
    assert_eq!(answers.keep("whatsapp webhook", response).await, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while app
        .dead_letters()
        .await
        .iter()
        .filter(|l| l["reason"] == "send_failed:bad_credentials")
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "no second bad_credentials letter: {:#?}",
            app.dead_letters().await
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // A channel registered at run time with a new bot token; the secret
    // token it generates for setWebhook is a secret too.
    let response = app
        .client
        .post(format!("{}/admin/channels", app.admin))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"platform": "telegram", "id": "tg-new", "bot_token": NEW_TG_TOKEN}))
        .send()
        .await
        .unwrap();
    assert_eq!(answers.keep("POST /admin/channels", response).await, 201);
    let generated = app
        .fake
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/setWebhook"))
        .and_then(|r| r.body["secret_token"].as_str().map(str::to_owned))
        .expect("setWebhook carried a secret_token");
    // The same with secrets in fields of the wrong type.
    let response = app
        .client
        .post(format!("{}/admin/channels", app.admin))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"platform": "whatsapp", "id": "wa-bad", "app_secret": [WA_SECRET], "access_token": {"t": WA_TOKEN}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        answers.keep("bad POST /admin/channels", response).await,
        400
    );

    // A Redis outage: errors on every path, and the webhook asks for a retry.
    redis.pause();
    let response = app
        .post_telegram("tg", Some(TG_SECRET), &telegram_text(TG_CUSTOMER + 1, "hi"))
        .await;
    assert_eq!(
        answers
            .keep("telegram webhook during outage", response)
            .await,
        503
    );
    let response = admin(
        &app,
        reqwest::Method::GET,
        "/admin/dead-letters",
        Some(ADMIN_TOKEN),
    )
    .await;
    answers.keep("dead letters during outage", response).await;
    let response = admin(&app, reqwest::Method::GET, "/readyz", Some(ADMIN_TOKEN)).await;
    answers.keep("readyz during outage", response).await;
    redis.resume();

    // Admin calls: wrong tokens first, then every read with the right one.
    let wrong_tokens = [
        None,
        Some("not-the-admin-token"),
        Some(&ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1]),
        Some(TG_SECRET),
    ];
    for token in wrong_tokens {
        for path in ["/admin/channels", "/metrics", "/admin/dead-letters"] {
            let response = admin(&app, reqwest::Method::GET, path, token).await;
            assert_eq!(
                answers
                    .keep(format!("{path} with a wrong token"), response)
                    .await,
                401
            );
        }
    }
    let tg_key = format!("telegram:tg:{TG_CUSTOMER}");
    let wa_key = format!("whatsapp:wa:{WA_CUSTOMER}");
    let ms_key = format!("messenger:ms:{MS_CUSTOMER}");
    for path in [
        "/readyz".to_owned(),
        "/metrics".to_owned(),
        "/admin/channels".to_owned(),
        "/admin/channels/tg-new/check".to_owned(),
        "/admin/dead-letters?limit=1000".to_owned(),
        format!("/admin/conversations/{tg_key}"),
        format!("/admin/conversations/{wa_key}"),
        format!("/admin/conversations/{ms_key}"),
        "/admin/conversations/telegram:tg:not-a-number".to_owned(),
    ] {
        let response = admin(&app, reqwest::Method::GET, &path, Some(ADMIN_TOKEN)).await;
        answers.keep(format!("GET {path}"), response).await;
    }
    let response = admin(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/conversations/{ms_key}"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(answers.keep("DELETE conversation", response).await, 204);
    // The demo backend's outbox stands in for the email/SMS channel: it
    // carries the linking destination by design, so it is checked for
    // secrets only.
    let dev_outbox = admin(
        &app,
        reqwest::Method::GET,
        "/admin/dev-outbox",
        Some(ADMIN_TOKEN),
    )
    .await
    .text()
    .await
    .unwrap();
    let public_health = app
        .client
        .get(format!("{}/healthz", app.public))
        .send()
        .await
        .unwrap();
    answers.keep("healthz", public_health).await;
    app.stop().await;

    let mut secrets: Vec<&str> = ALL_SECRETS.to_vec();
    secrets.extend([REDIS_PASSWORD, KEY_SECRET, NEW_TG_TOKEN, generated.as_str()]);
    // The token's secret half alone, too (Telegram tokens are id:secret).
    for token in [TG_TOKEN, NEW_TG_TOKEN] {
        secrets.push(token.split_once(':').unwrap().1);
    }
    let typed = [
        EMAIL,
        PHONE_TYPED,
        CARD,
        WA_EMAIL,
        "612 740 188",
        "4111111111111111",
    ];

    let events = captured();
    assert!(
        events.iter().any(|e| e.contains("webhook refused")),
        "the capture saw none of the service's events"
    );
    let mut leaks = Vec::new();
    for event in &events {
        for secret in &secrets {
            if event.contains(secret) {
                leaks.push(format!("log shows secret {secret:?}: {event}"));
            }
        }
        // What the service writes is redacted line by line (telemetry.rs);
        // typed personal data must not survive that.
        let written = switchboard_core::guards::redact_pii(event);
        for pii in typed.iter().chain([&WA_CUSTOMER]) {
            if written.contains(pii) {
                leaks.push(format!("log shows {pii:?}: {written}"));
            }
        }
    }
    for (what, answer) in &answers.0 {
        for secret in &secrets {
            if answer.contains(secret) {
                leaks.push(format!("{what} shows secret {secret:?}: {answer}"));
            }
        }
        for pii in typed {
            if answer.contains(pii) {
                leaks.push(format!("{what} shows {pii:?}: {answer}"));
            }
        }
        // The customer's number is the WhatsApp chat id, so it is part of
        // conversation keys; metrics must not have it at all.
        if what.contains("metrics") && answer.contains(WA_CUSTOMER) {
            leaks.push(format!("{what} shows the customer's number: {answer}"));
        }
    }
    for secret in &secrets {
        if dev_outbox.contains(secret) {
            leaks.push(format!("dev outbox shows secret {secret:?}: {dev_outbox}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n\n")
    );
}
