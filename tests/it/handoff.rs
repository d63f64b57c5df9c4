//! Human hand-off over real HTTP: the lifecycle (complaint, hand-off, bot
//! silent, agent reply, hand back), the console's session, CSRF and
//! security headers, the signed help-desk webhook and reply API.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

pub const READ_ONLY_TOKEN: &str = "test-read-only-token-456";
pub const HOOK_SECRET: &str = "hand-off-hook-secret";

/// A Telegram text update from a customer with the given first name.
pub fn telegram_from(chat: i64, name: &str, text: &str) -> Vec<u8> {
    let n = fastrand::i64(1..1_000_000_000);
    serde_json::to_vec(&json!({"update_id": n, "message": {
        "message_id": n,
        "from": {"id": chat, "is_bot": false, "first_name": name, "language_code": "en"},
        "chat": {"id": chat, "type": "private", "first_name": name},
        "date": now_secs(),
        "text": text,
    }}))
    .unwrap()
}

/// Sends one customer message and waits until the bot's answers settle
/// (the send count stops growing).
pub async fn say(app: &TestApp, chat: i64, name: &str, text: &str) {
    let before = app.fake.requests().len();
    let response = app
        .post_telegram("tg", Some(TG_SECRET), &telegram_from(chat, name, text))
        .await;
    assert_eq!(response.status(), 200);
    app.fake.wait_for(before + 1, Duration::from_secs(8)).await;
    settle(app).await;
}

async fn settle(app: &TestApp) {
    let mut count = app.fake.requests().len();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = app.fake.requests().len();
        if now == count {
            return;
        }
        count = now;
    }
}

/// Walks the demo shop's complaint dialogue up to the offer of a person
/// and accepts it.
pub async fn complain(app: &TestApp, chat: i64, name: &str) {
    say(app, chat, name, "I want to make a complaint").await;
    say(
        app,
        chat,
        name,
        "My parcel for order 1001 arrived broken. Card 4111 1111 1111 1111",
    )
    .await;
    say(app, chat, name, "yes").await;
}

pub async fn wait_for_handoff(app: &TestApp, conversation: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let queue: Value = app.admin_get("/admin/handoffs").await.json().await.unwrap();
        if let Some(entry) = queue["handoffs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["conversation"] == conversation)
        {
            return entry.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no hand-off for {conversation}: {queue:#}; sent: {:#?}",
            app.fake
                .requests()
                .iter()
                .map(sent_text)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A signed-in console session: cookie header value and CSRF token.
pub struct Console {
    pub cookie: String,
    pub csrf: String,
}

pub async fn sign_in(app: &TestApp, token: &str) -> Console {
    let response = app
        .client
        .post(format!("{}/console/api/login", app.admin))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    Console {
        cookie: set_cookie.split(';').next().unwrap().to_owned(),
        csrf: body["csrf"].as_str().unwrap().to_owned(),
    }
}

impl Console {
    pub async fn post(&self, app: &TestApp, path: &str, body: Value) -> reqwest::Response {
        app.client
            .post(format!("{}/console/api{path}", app.admin))
            .header("Cookie", &self.cookie)
            .header("X-CSRF-Token", &self.csrf)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, app: &TestApp, path: &str) -> reqwest::Response {
        app.client
            .get(format!("{}/console/api{path}", app.admin))
            .header("Cookie", &self.cookie)
            .send()
            .await
            .unwrap()
    }
}

fn texts_to(app: &TestApp, chat: i64) -> Vec<String> {
    app.fake
        .to_chat(&chat.to_string())
        .iter()
        .map(sent_text)
        .collect()
}

async fn wait_for_text(app: &TestApp, chat: i64, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(8);
    while !texts_to(app, chat).iter().any(|t| t.contains(needle)) {
        assert!(
            Instant::now() < deadline,
            "no message containing {needle:?} reached chat {chat}: {:#?}",
            texts_to(app, chat)
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn read_only_config() -> String {
    format!(
        r#"
[[server.admin_tokens]]
name = "viewer"
token = "{READ_ONLY_TOKEN}"
role = "read-only"
"#
    )
}

#[tokio::test]
async fn a_complaint_goes_to_a_person_the_bot_stays_silent_and_comes_back_after_hand_back() {
    let app = spawn_app().await;
    let chat = fastrand::i64(10_000..1_000_000);
    let conversation = format!("telegram:tg:{chat}");
    complain(&app, chat, "Ada").await;

    let entry = wait_for_handoff(&app, &conversation).await;
    assert_eq!(entry["platform"], "telegram");
    assert_eq!(entry["reason"], "complaint");
    let complaint = entry["complaint"].as_str().unwrap();
    assert!(complaint.contains("arrived broken"), "{entry:#}");
    assert!(
        !complaint.contains("4111 1111 1111 1111"),
        "card number not masked: {complaint}"
    );

    // The customer writes during the hand-off: the bot says nothing, the
    // agents see it.
    let before = app.fake.requests().len();
    let response = app
        .post_telegram(
            "tg",
            Some(TG_SECRET),
            &telegram_from(chat, "Ada", "Hello? Anyone there?"),
        )
        .await;
    assert_eq!(response.status(), 200);
    let console = sign_in(&app, ADMIN_TOKEN).await;
    let path = format!("/handoffs/{conversation}");
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let record: Value = console.get(&app, &path).await.json().await.unwrap();
        if record["transcript"]
            .as_array()
            .is_some_and(|lines| lines.iter().any(|l| l["text"] == "Hello? Anyone there?"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "customer line not in the transcript: {record:#}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    settle(&app).await;
    assert_eq!(
        app.fake.requests().len(),
        before,
        "the bot answered during a hand-off"
    );

    // The agent answers through the normal sender.
    let response = console
        .post(
            &app,
            &format!("{path}/reply"),
            json!({"text": "Hi Ada, I am sorry. A new parcel is on its way."}),
        )
        .await;
    assert_eq!(response.status(), 202);
    wait_for_text(&app, chat, "A new parcel is on its way").await;
    let record: Value = console.get(&app, &path).await.json().await.unwrap();
    let last = record["transcript"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["from"], "agent");
    assert!(
        last["agent"].as_str().is_some_and(|a| !a.is_empty()),
        "{last:#}"
    );

    // Hand back: the bot says so, leaves the queue, and answers again.
    let sent_before = texts_to(&app, chat).len();
    let response = console
        .post(&app, &format!("{path}/hand-back"), json!({}))
        .await;
    assert_eq!(response.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(8);
    while texts_to(&app, chat).len() == sent_before {
        assert!(
            Instant::now() < deadline,
            "the bot did not announce its return"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let queue: Value = app.admin_get("/admin/handoffs").await.json().await.unwrap();
    assert!(
        !queue["handoffs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["conversation"] == conversation),
        "{queue:#}"
    );
    let answered = texts_to(&app, chat).len();
    say(&app, chat, "Ada", "What are your opening hours?").await;
    assert!(
        texts_to(&app, chat).len() > answered,
        "the bot stayed silent after hand-back"
    );

    // A reply to a conversation no longer handed off is refused, not lost.
    let response = console
        .post(&app, &format!("{path}/reply"), json!({"text": "late"}))
        .await;
    assert_eq!(response.status(), 409);
    app.stop().await;
}

#[tokio::test]
async fn close_ends_the_hand_off_without_the_bot_speaking() {
    let app = spawn_app().await;
    let chat = fastrand::i64(10_000..1_000_000);
    let conversation = format!("telegram:tg:{chat}");
    say(&app, chat, "Bo", "I want to talk to a human").await;
    wait_for_handoff(&app, &conversation).await;
    let console = sign_in(&app, ADMIN_TOKEN).await;
    let before = texts_to(&app, chat).len();
    let response = console
        .post(&app, &format!("/handoffs/{conversation}/close"), json!({}))
        .await;
    assert_eq!(response.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let record = console
            .get(&app, &format!("/handoffs/{conversation}"))
            .await;
        if record.status() == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "the hand-off was not closed");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    settle(&app).await;
    assert_eq!(texts_to(&app, chat).len(), before);
    say(&app, chat, "Bo", "What are your opening hours?").await;
    assert!(
        texts_to(&app, chat).len() > before,
        "the bot did not answer after close"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_agent_takes_over_a_conversation_the_bot_did_not_hand_off() {
    let app = spawn_app().await;
    let chat = fastrand::i64(10_000..1_000_000);
    let conversation = format!("telegram:tg:{chat}");
    say(&app, chat, "Di", "is the blue jacket in stock in size M?").await;
    let console = sign_in(&app, ADMIN_TOKEN).await;
    let unknown = console
        .post(&app, "/handoffs/telegram:tg:1/take", json!({}))
        .await;
    assert_eq!(unknown.status(), 404, "no such conversation");
    let response = console
        .post(&app, &format!("/handoffs/{conversation}/take"), json!({}))
        .await;
    assert_eq!(response.status(), 202);
    let entry = wait_for_handoff(&app, &conversation).await;
    assert_eq!(entry["reason"], "agent", "{entry}");
    let again = console
        .post(&app, &format!("/handoffs/{conversation}/take"), json!({}))
        .await;
    assert_eq!(again.status(), 409, "a person has it already");

    // The bot is silent now; the customer's words reach the record.
    let before = texts_to(&app, chat).len();
    let response = app
        .post_telegram(
            "tg",
            Some(TG_SECRET),
            &telegram_from(chat, "Di", "hello, anyone there?"),
        )
        .await;
    assert_eq!(response.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    settle(&app).await;
    assert_eq!(texts_to(&app, chat).len(), before, "the bot spoke");
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let record: Value = console
            .get(&app, &format!("/handoffs/{conversation}"))
            .await
            .json()
            .await
            .unwrap();
        if record.to_string().contains("anyone there") {
            assert!(
                record.to_string().contains("blue jacket"),
                "the earlier chat is in the transcript: {record}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "customer line missing: {record}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = console
        .post(
            &app,
            &format!("/handoffs/{conversation}/reply"),
            json!({"text": "Hi Di, yes: two in size M at Harbour."}),
        )
        .await;
    assert_eq!(response.status(), 202);
    wait_for_text(&app, chat, "two in size M at Harbour").await;
    let response = console
        .post(
            &app,
            &format!("/handoffs/{conversation}/hand-back"),
            json!({}),
        )
        .await;
    assert_eq!(response.status(), 202);
    wait_for_text(&app, chat, "back with").await;
    app.stop().await;
}

#[tokio::test]
async fn taking_over_through_the_admin_api_needs_an_operator() {
    let read_only = read_only_config();
    let app = spawn_app_with(&read_only, &[]).await;
    let chat = fastrand::i64(10_000..1_000_000);
    let conversation = format!("telegram:tg:{chat}");
    say(&app, chat, "Ed", "where is order 10023?").await;
    let take = |token: &'static str| {
        app.client
            .post(format!("{}/admin/handoffs/{conversation}/take", app.admin))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(take(READ_ONLY_TOKEN).await.unwrap().status(), 403);
    assert_eq!(take(ADMIN_TOKEN).await.unwrap().status(), 202);
    let entry = wait_for_handoff(&app, &conversation).await;
    assert_eq!(entry["reason"], "agent");
    app.stop().await;
}

#[tokio::test]
async fn a_customer_flooding_a_handed_off_chat_gets_no_slow_down_from_the_bot() {
    let app = spawn_app_with(
        "",
        &[
            ("SWITCHBOARD__ABUSE__SENDER_MESSAGES_PER_MINUTE", "1"),
            ("SWITCHBOARD__ABUSE__SENDER_BURST", "2"),
        ],
    )
    .await;
    let chat = fastrand::i64(10_000..1_000_000);
    let conversation = format!("telegram:tg:{chat}");
    say(&app, chat, "Cy", "I want to talk to a human").await;
    wait_for_handoff(&app, &conversation).await;
    let before = texts_to(&app, chat);
    for n in 0..8 {
        let response = app
            .post_telegram(
                "tg",
                Some(TG_SECRET),
                &telegram_from(chat, "Cy", &format!("hello?? {n}")),
            )
            .await;
        assert_eq!(response.status(), 200, "the platform still gets its 200");
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    settle(&app).await;
    assert_eq!(
        texts_to(&app, chat),
        before,
        "the bot spoke in a conversation a person has"
    );
    app.stop().await;
}

#[tokio::test]
async fn console_sessions_need_a_known_token_the_cookie_and_the_csrf_token() {
    let app = spawn_app_with(&read_only_config(), &[]).await;
    let url = |path: &str| format!("{}/console/api{path}", app.admin);

    let refused = app
        .client
        .post(url("/login"))
        .json(&json!({"token": "not-a-token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().get("set-cookie").is_none());
    let anonymous = app.client.get(url("/queue")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let forged = app
        .client
        .get(url("/queue"))
        .header("Cookie", "sb_console=0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);

    let response = app
        .client
        .post(url("/login"))
        .json(&json!({"token": ADMIN_TOKEN}))
        .send()
        .await
        .unwrap();
    let cookie = response
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/console"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "no TLS here, so no Secure: {cookie}"
    );
    assert!(!cookie.contains(ADMIN_TOKEN));

    // A hand-off to act on.
    let chat = fastrand::i64(10_000..1_000_000);
    let conversation = format!("telegram:tg:{chat}");
    say(&app, chat, "Cy", "I want to talk to a human").await;
    wait_for_handoff(&app, &conversation).await;

    let console = sign_in(&app, ADMIN_TOKEN).await;
    assert_eq!(console.get(&app, "/queue").await.status(), 200);
    let reply = format!("{}/console/api/handoffs/{conversation}/reply", app.admin);
    let no_csrf = app
        .client
        .post(&reply)
        .header("Cookie", &console.cookie)
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), 403);
    // Without a session, a malformed body is not judged: 401, not 400.
    let anonymous = app
        .client
        .post(&reply)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // With a session and its CSRF token, the body is judged as before.
    let malformed = app
        .client
        .post(&reply)
        .header("Cookie", &console.cookie)
        .header("X-CSRF-Token", &console.csrf)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let not_json = app
        .client
        .post(&reply)
        .header("Cookie", &console.cookie)
        .header("X-CSRF-Token", &console.csrf)
        .body("text=hi")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 415);
    let wrong_csrf = app
        .client
        .post(&reply)
        .header("Cookie", &console.cookie)
        .header("X-CSRF-Token", "0".repeat(64))
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_csrf.status(), 403);
    // Another session's CSRF token does not fit this one.
    let other = sign_in(&app, ADMIN_TOKEN).await;
    let crossed = app
        .client
        .post(&reply)
        .header("Cookie", &console.cookie)
        .header("X-CSRF-Token", &other.csrf)
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(crossed.status(), 403);

    // Read-only agents may look but not act.
    let viewer = sign_in(&app, READ_ONLY_TOKEN).await;
    assert_eq!(viewer.get(&app, "/queue").await.status(), 200);
    let session: Value = viewer.get(&app, "/session").await.json().await.unwrap();
    assert_eq!(session["role"], "read-only");
    assert_eq!(
        viewer
            .post(
                &app,
                &format!("/handoffs/{conversation}/reply"),
                json!({"text": "hi"})
            )
            .await
            .status(),
        403
    );
    assert_eq!(
        viewer
            .post(
                &app,
                &format!("/handoffs/{conversation}/hand-back"),
                json!({})
            )
            .await
            .status(),
        403
    );
    assert!(texts_to(&app, chat).iter().all(|t| t != "hi"));

    // Signing out ends the session on the server, not just in the browser.
    let out = console.post(&app, "/logout", json!({})).await;
    assert_eq!(out.status(), 204);
    assert_eq!(console.get(&app, "/queue").await.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn the_console_page_has_a_strict_policy_and_never_inserts_html() {
    let app = spawn_app().await;
    let page = app
        .client
        .get(format!("{}/console/", app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let header = |name: &str| {
        page.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let csp = header("content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "no-referrer");
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>"), "inline script in the page");
    assert!(
        !html.contains(" on") || !html.contains("onclick"),
        "inline handler"
    );

    let js = app
        .client
        .get(format!("{}/console/app.js", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(!js.contains(sink), "app.js uses {sink}");
    }
    assert!(js.contains("textContent"));

    // The API carries a hostile name as data, never as markup.
    let chat = fastrand::i64(10_000..1_000_000);
    let conversation = format!("telegram:tg:{chat}");
    let hostile = "<img src=x onerror=alert(1)>";
    say(&app, chat, hostile, "I want to talk to a human").await;
    let entry = wait_for_handoff(&app, &conversation).await;
    // The assistant keeps the first name: still markup, still data.
    assert_eq!(entry["customer_name"], "<img", "{entry:#}");
    app.stop().await;
}

/// Accepts one HTTP request on a loopback port and answers 500 first, then
/// 200, recording the bodies and signature headers.
async fn help_desk() -> (String, tokio::sync::mpsc::Receiver<(String, Vec<u8>)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/handoff", listener.local_addr().unwrap());
    (url, help_desk_on(listener, 1))
}

/// A help desk on `listener` that refuses the first `refusals` deliveries
/// with a 500; hands on (signature, body) of every delivery.
fn help_desk_on(
    listener: tokio::net::TcpListener,
    refusals: usize,
) -> tokio::sync::mpsc::Receiver<(String, Vec<u8>)> {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        let mut answered = 0;
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body_start, length) = loop {
                let n = socket.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break (String::new(), 0, 0);
                }
                buffer.extend_from_slice(&chunk[..n]);
                if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buffer[..end]).to_string();
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    break (head, end + 4, length);
                }
            };
            while buffer.len() < body_start + length {
                let n = socket.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                buffer.extend_from_slice(&chunk[..n]);
            }
            let signature = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("x-switchboard-signature-256")
                        .then(|| v.trim().to_owned())
                })
                .unwrap_or_default();
            let status = if answered < refusals {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            answered += 1;
            let _ = socket
                .write_all(
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
            let _ = tx.send((signature, buffer[body_start..].to_vec())).await;
        }
    });
    rx
}

#[tokio::test]
async fn a_hand_off_webhook_scheduled_by_a_replica_that_stopped_is_sent_by_another() {
    let server = switchboard_testkit::RedisServer::start();
    // Nothing listens there yet: the help desk is down.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{address}/hooks/handoff");
    let config = format!(
        "\n[store]\nurl = \"{}\"\nencryption_keys = [\"k1:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\"]\n\n[handoff]\nwebhook_url = \"{url}\"\nwebhook_secret = \"{HOOK_SECRET}\"\n",
        server.url()
    );
    let first = spawn_app_with(&config, &[]).await;
    let chat = fastrand::i64(10_000..1_000_000);
    let conversation = format!("telegram:tg:{chat}");
    say(&first, chat, "Flo", "I want to talk to a human").await;
    wait_for_handoff(&first, &conversation).await;
    // Let its courier try (and fail) once or twice, then it goes away.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    first.stop().await;
    let scheduled = |server: &switchboard_testkit::RedisServer| -> (usize, usize) {
        let mut connection = server.connection();
        let due: usize = redis::cmd("ZCARD")
            .arg("sb:v1:handoff-hooks")
            .query(&mut connection)
            .unwrap();
        let bodies: Vec<String> = redis::cmd("KEYS")
            .arg("sb:v1:handoff-hook:*")
            .query(&mut connection)
            .unwrap();
        (due, bodies.len())
    };
    assert_eq!(
        scheduled(&server),
        (1, 1),
        "the delivery waits in Redis, not in the stopped process"
    );

    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let mut hooks = help_desk_on(listener, 0);
    let second = spawn_app_with(&config, &[]).await;
    let (signature, body) = tokio::time::timeout(Duration::from_secs(20), hooks.recv())
        .await
        .expect("the other replica did not deliver the hand-off")
        .unwrap();
    assert_eq!(signature, switchboard_meta::sign(HOOK_SECRET, &body));
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["handoff"]["conversation"], conversation);
    assert_eq!(payload["delivery"].as_str().unwrap().len(), 32);
    // Delivered once: nothing more arrives.
    let again = tokio::time::timeout(Duration::from_secs(3), hooks.recv()).await;
    assert!(again.is_err(), "delivered twice");
    assert_eq!(scheduled(&server), (0, 0), "nothing left scheduled");
    second.stop().await;
}

#[tokio::test]
async fn the_help_desk_gets_a_signed_retried_webhook_and_can_reply_signed() {
    let (url, mut hooks) = help_desk().await;
    let app = spawn_app_with(
        &format!("\n[handoff]\nwebhook_url = \"{url}\"\nwebhook_secret = \"{HOOK_SECRET}\"\n"),
        &[],
    )
    .await;
    let chat = fastrand::i64(10_000..1_000_000);
    let conversation = format!("telegram:tg:{chat}");
    complain(&app, chat, "Di").await;
    wait_for_handoff(&app, &conversation).await;

    // First delivery is refused (500), the retry is accepted; both signed.
    for _ in 0..2 {
        let (signature, body) = tokio::time::timeout(Duration::from_secs(10), hooks.recv())
            .await
            .expect("the hand-off webhook did not arrive")
            .unwrap();
        assert_eq!(signature, switchboard_meta::sign(HOOK_SECRET, &body));
        let payload: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(payload["event"], "handoff.started");
        assert_eq!(payload["handoff"]["conversation"], conversation);
        assert_eq!(payload["handoff"]["reason"], "complaint");
        assert!(!String::from_utf8_lossy(&body).contains("4111 1111 1111 1111"));
    }

    let reply_url = format!("{}/admin/handoffs/{conversation}/reply", app.admin);
    let body =
        serde_json::to_vec(&json!({"text": "Your refund is on its way.", "agent": "zoe"})).unwrap();
    let unsigned = app
        .client
        .post(&reply_url)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    // An anonymous caller is refused on its headers: a body over the
    // 256 KiB limit is not read, so the answer is 401, not 413.
    let anonymous_flood = app
        .client
        .post(&reply_url)
        .body(vec![b'x'; 300 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous_flood.status(), 401);
    let forged = app
        .client
        .post(&reply_url)
        .header(
            "X-Switchboard-Signature-256",
            switchboard_meta::sign("wrong", &body),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let signed = app
        .client
        .post(&reply_url)
        .header(
            "X-Switchboard-Signature-256",
            switchboard_meta::sign(HOOK_SECRET, &body),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 202);
    wait_for_text(&app, chat, "Your refund is on its way.").await;

    // Tools may use an operator bearer token instead.
    let bearer = app
        .client
        .post(&reply_url)
        .bearer_auth(ADMIN_TOKEN)
        .body(serde_json::to_vec(&json!({"text": "Anything else?"})).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 202);
    wait_for_text(&app, chat, "Anything else?").await;
    app.stop().await;
}

#[tokio::test]
async fn an_agent_reply_after_the_messenger_window_carries_the_human_agent_tag() {
    let app = spawn_app().await;
    let psid = format!("{}", fastrand::u64(10_000..1_000_000));
    let conversation = format!("messenger:ms:{psid}");
    // The customer's request is two days old (a late redelivery): the bot's
    // own answer is outside the window, a person's may still go out tagged.
    let now_ms = now_secs() * 1000;
    let old = now_ms - 2 * 24 * 3600 * 1000;
    let body = serde_json::to_vec(&json!({
        "object": "page",
        "entry": [{"id": "PAGE1", "time": old, "messaging": [{
            "sender": {"id": psid}, "recipient": {"id": "PAGE1"}, "timestamp": old,
            "message": {"mid": format!("m_old_{}", fastrand::u64(..)), "text": "I want to talk to a human"}
        }]}]
    }))
    .unwrap();
    let response = app
        .post_meta("messenger", "ms", Some(MS_SECRET), &body)
        .await;
    assert_eq!(response.status(), 200);
    wait_for_handoff(&app, &conversation).await;
    let console = sign_in(&app, ADMIN_TOKEN).await;
    let response = console
        .post(
            &app,
            &format!("/handoffs/{conversation}/reply"),
            json!({"text": "Sorry for the wait!"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(8);
    let sent = loop {
        if let Some(sent) = app
            .fake
            .to_chat(&psid)
            .into_iter()
            .find(|r| sent_text(r) == "Sorry for the wait!")
        {
            break sent;
        }
        assert!(
            Instant::now() < deadline,
            "agent reply not sent: {:#?}",
            app.fake.requests()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(
        sent.body["messaging_type"], "MESSAGE_TAG",
        "{:#}",
        sent.body
    );
    assert_eq!(sent.body["tag"], "HUMAN_AGENT", "{:#}", sent.body);
    app.stop().await;
}

fn sent_to(apps: &[&TestApp], chat: i64) -> Vec<String> {
    apps.iter().flat_map(|app| texts_to(app, chat)).collect()
}

async fn wait_for_sent(
    apps: &[&TestApp],
    chat: i64,
    what: &str,
    check: impl Fn(&[String]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check(&sent_to(apps, chat)) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:#?}",
            sent_to(apps, chat)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn two_replicas_on_one_redis_share_the_queue_and_the_hand_off_with_nothing_readable_in_redis()
{
    let server = switchboard_testkit::RedisServer::start();
    let section = format!(
        "[store]\nurl = \"{}\"\ntimeout_ms = 500\nencryption_keys = [\"k1:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\"]\n",
        server.url()
    );
    let a = spawn_app_with(&section, &[]).await;
    let b = spawn_app_with(&section, &[]).await;
    let apps = [&a, &b];
    let chat = fastrand::i64(10_000..1_000_000);
    let conversation = format!("telegram:tg:{chat}");

    // The customer's messages arrive at replica A, one after the other.
    let steps = [
        "I want to make a complaint",
        "My parcel for order 1001 arrived broken. Card 4111 1111 1111 1111",
        "yes",
    ];
    for (n, text) in steps.iter().enumerate() {
        let response = a
            .post_telegram("tg", Some(TG_SECRET), &telegram_from(chat, "Fay", text))
            .await;
        assert_eq!(response.status(), 200);
        wait_for_sent(&apps, chat, "the bot's answer", |sent| sent.len() > n).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Replica B's console sees the hand-off replica A (or B) recorded.
    wait_for_handoff(&b, &conversation).await;
    // Let the hand-off announcement go out before counting.
    wait_for_sent(&apps, chat, "the hand-off announcement", |sent| {
        sent.iter().any(|t| t.contains("connecting you"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answered = sent_to(&apps, chat).len();

    // Customer writes to A during the hand-off: B's agent sees it, no bot reply.
    let response = a
        .post_telegram(
            "tg",
            Some(TG_SECRET),
            &telegram_from(chat, "Fay", "Still there?"),
        )
        .await;
    assert_eq!(response.status(), 200);
    let console = sign_in(&b, ADMIN_TOKEN).await;
    let path = format!("/handoffs/{conversation}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let record: Value = console.get(&b, &path).await.json().await.unwrap();
        if record["transcript"]
            .as_array()
            .is_some_and(|l| l.iter().any(|l| l["text"] == "Still there?"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "line missing: {record:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = console
        .post(
            &b,
            &format!("{path}/reply"),
            json!({"text": "Yes, Fay. Looking into it."}),
        )
        .await;
    assert_eq!(response.status(), 202);
    wait_for_sent(&apps, chat, "the agent's reply", |sent| {
        sent.iter().any(|t| t == "Yes, Fay. Looking into it.")
    })
    .await;
    assert_eq!(
        sent_to(&apps, chat).len(),
        answered + 1,
        "the bot spoke during the hand-off: {:#?}",
        sent_to(&apps, chat)
    );

    // Nothing the customer said is readable in Redis.
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).unwrap();
        let dumped: Vec<u8> = redis::cmd("DUMP")
            .arg(&key)
            .query(&mut conn)
            .unwrap_or_default();
        for secret in ["arrived broken", "Still there?", "Looking into it", "Fay"] {
            assert!(
                !String::from_utf8_lossy(&dumped).contains(secret),
                "{secret:?} readable in {key} ({kind})"
            );
        }
    }

    // Hand back from B; the next message to A gets the bot again.
    let response = console
        .post(&b, &format!("{path}/hand-back"), json!({}))
        .await;
    assert_eq!(response.status(), 202);
    wait_for_sent(&apps, chat, "the bot's return", |sent| {
        sent.len() > answered + 1
    })
    .await;
    let before = sent_to(&apps, chat).len();
    let response = a
        .post_telegram(
            "tg",
            Some(TG_SECRET),
            &telegram_from(chat, "Fay", "What are your opening hours?"),
        )
        .await;
    assert_eq!(response.status(), 200);
    wait_for_sent(&apps, chat, "the bot answering again", |sent| {
        sent.len() > before
    })
    .await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_whatsapp_customer_is_handed_off_and_the_agent_reply_reaches_the_cloud_api() {
    let app = spawn_app().await;
    let from = format!("4915{}", fastrand::u64(10_000_000..99_999_999));
    let conversation = format!("whatsapp:wa:{from}");
    let response = app
        .post_meta(
            "whatsapp",
            "wa",
            Some(WA_SECRET),
            &whatsapp_text(&from, "I want to talk to a human", 0),
        )
        .await;
    assert_eq!(response.status(), 200);
    let entry = wait_for_handoff(&app, &conversation).await;
    assert_eq!(entry["platform"], "whatsapp");
    let console = sign_in(&app, ADMIN_TOKEN).await;
    let response = console
        .post(
            &app,
            &format!("/handoffs/{conversation}/reply"),
            json!({"text": "Hello from a person at the shop."}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(8);
    while !app
        .fake
        .to_chat(&from)
        .iter()
        .any(|r| sent_text(r) == "Hello from a person at the shop.")
    {
        assert!(
            Instant::now() < deadline,
            "agent reply not sent: {:#?}",
            app.fake.requests()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn the_console_cookie_is_secure_when_the_admin_listener_runs_tls() {
    let dir = TempDir::new();
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("the openssl command is needed (apt-get install openssl)");
    assert!(status.success());
    let app = spawn_app_with(
        "",
        &[
            ("SWITCHBOARD__SERVER__TLS_CERT", cert.to_str().unwrap()),
            ("SWITCHBOARD__SERVER__TLS_KEY", key.to_str().unwrap()),
            ("SWITCHBOARD__SERVER__ADMIN_TLS", "true"),
        ],
    )
    .await;
    // Only the cookie's attributes matter here, not the certificate chain.
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let admin = app.admin.replace("http://", "https://");
    let response = client
        .post(format!("{admin}/console/api/login"))
        .json(&json!({"token": ADMIN_TOKEN}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    app.stop().await;
}
