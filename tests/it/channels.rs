//! Channel registration at run time, driven through the real CLI code and
//! the admin API against the fake Telegram and Graph APIs on loopback:
//! one command per platform, clear failures that leave nothing behind,
//! config channels left alone, and every replica picking up a change
//! through Redis without a restart.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};
use switchboard::cli::{Cli, Command};
use switchboard_testkit::RedisServer;

use crate::helpers::*;

const PUBLIC: &str = "https://bot.example.test";
const NEW_TG_TOKEN: &str = "222333:NEW-bot-token_abc";
const NEW_MS_SECRET: &str = "new-ms-app-secret";
const NEW_MS_PAGE_TOKEN: &str = "new-ms-page-token";
const NEW_MS_PAGE: &str = "200000000000001";
const NEW_WA_SECRET: &str = "new-wa-app-secret";
const NEW_WA_TOKEN: &str = "new-wa-access-token";
const NEW_WA_NUMBER: &str = "300000000000001";
const NEW_WA_WABA: &str = "300000000000009";

/// Runs `switchboard channels --admin-url ... --admin-token ... <args>`
/// in-process; returns the exit status and what it printed.
async fn cli(app: &TestApp, args: &[&str]) -> (ExitCode, String) {
    let mut argv = vec![
        "switchboard",
        "channels",
        "--admin-url",
        &app.admin,
        "--admin-token",
        ADMIN_TOKEN,
    ];
    argv.extend_from_slice(args);
    let Some(Command::Channels(channels)) = Cli::try_parse_from(&argv).unwrap().command else {
        panic!("not a channels command");
    };
    let mut out = Vec::new();
    let code = switchboard::channels::client::run(&channels, &mut out)
        .await
        .unwrap();
    (code, String::from_utf8(out).unwrap())
}

fn registration(extra: &str) -> String {
    format!("[registration]\npublic_url = \"{PUBLIC}\"\nrefresh_secs = 1\n{extra}")
}

async fn post_channel(app: &TestApp, body: &Value) -> (u16, Value) {
    let response = app
        .client
        .post(format!("{}/admin/channels", app.admin))
        .bearer_auth(ADMIN_TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn last_call(app: &TestApp, suffix: &str) -> Recorded {
    app.fake
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path.ends_with(suffix))
        .unwrap_or_else(|| panic!("no call to {suffix}: {:#?}", app.fake.requests()))
}

#[tokio::test]
async fn a_telegram_bot_is_registered_with_one_command_and_answers_at_once() {
    let app = spawn_app_with(&registration(""), &[]).await;
    let (code, out) = cli(
        &app,
        &[
            "add",
            "telegram",
            "--id",
            "tg-new",
            "--bot-token",
            NEW_TG_TOKEN,
        ],
    )
    .await;
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    for line in [
        "[ok]      getMe: the token belongs to @fake_shop_bot",
        "[ok]      store:",
        "[ok]      setWebhook:",
        "Webhook URL:    https://bot.example.test/webhooks/telegram/tg-new",
        "matches gateway:  yes",
        "Healthy.",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    assert!(
        !out.contains(NEW_TG_TOKEN),
        "the bot token is printed:\n{out}"
    );

    let set = last_call(&app, "/setWebhook");
    assert_eq!(set.path, format!("/telegram/bot{NEW_TG_TOKEN}/setWebhook"));
    assert_eq!(
        set.body["url"],
        "https://bot.example.test/webhooks/telegram/tg-new"
    );
    assert_eq!(
        set.body["allowed_updates"],
        json!([
            "message",
            "edited_message",
            "callback_query",
            "my_chat_member"
        ])
    );
    assert_eq!(set.body["max_connections"], 40);
    let secret = set.body["secret_token"].as_str().unwrap().to_owned();
    assert!(
        (1..=256).contains(&secret.len())
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "secret_token breaks Telegram's rule: {secret}"
    );
    assert!(!out.contains(&secret), "the secret token is printed");

    // Telegram's next delivery is verified with the generated secret and
    // answered through the new bot's token.
    let forged = app
        .post_telegram("tg-new", Some(TG_SECRET), &telegram_text(31, "hi"))
        .await;
    assert_eq!(forged.status(), 401);
    let response = app
        .post_telegram("tg-new", Some(&secret), &telegram_text(31, "hi"))
        .await;
    assert_eq!(response.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app.fake.to_chat("31").iter().any(|r| {
        r.path
            .starts_with(&format!("/telegram/bot{NEW_TG_TOKEN}/send"))
    }) {
        assert!(Instant::now() < deadline, "no reply through the new bot");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let (code, out) = cli(&app, &["list"]).await;
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(out.contains("tg-new") && out.contains("store"), "{out}");
    assert!(out.contains("tg ") && out.contains("config"), "{out}");

    let (code, out) = cli(&app, &["remove", "tg-new", "--drop-pending-updates"]).await;
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    assert!(out.contains("[ok]      deleteWebhook"), "{out}");
    assert_eq!(
        last_call(&app, "/deleteWebhook").body["drop_pending_updates"],
        true
    );
    assert!(app.fake.telegram_webhook(NEW_TG_TOKEN).is_none());
    let gone = app
        .post_telegram("tg-new", Some(&secret), &telegram_text(31, "hi"))
        .await;
    assert_eq!(gone.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn a_rejected_bot_token_or_webhook_leaves_nothing_behind() {
    let app = spawn_app_with(&registration(""), &[]).await;
    app.fake.script([Scripted {
        status: 401,
        retry_after: None,
        body: json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
    }]);
    let (code, out) = cli(
        &app,
        &[
            "add",
            "telegram",
            "--id",
            "tg-bad",
            "--bot-token",
            NEW_TG_TOKEN,
        ],
    )
    .await;
    assert_eq!(code, ExitCode::FAILURE);
    assert!(out.contains("[FAILED]  getMe"), "{out}");
    assert!(
        out.contains("hint: the bot token is wrong or revoked"),
        "{out}"
    );

    // The token is fine but Telegram refuses the webhook: rolled back.
    app.fake.script([
        Scripted {
            status: 200,
            retry_after: None,
            body: json!({"ok": true, "result": {"id": 222333, "is_bot": true, "username": "x_bot"}}),
        },
        Scripted {
            status: 400,
            retry_after: None,
            body: json!({"ok": false, "error_code": 400, "description": "Bad Request: bad webhook: Failed to resolve host"}),
        },
    ]);
    let (code, out) = cli(
        &app,
        &[
            "add",
            "telegram",
            "--id",
            "tg-bad",
            "--bot-token",
            NEW_TG_TOKEN,
        ],
    )
    .await;
    assert_eq!(code, ExitCode::FAILURE);
    for line in [
        "[ok]      store",
        "[FAILED]  setWebhook: telegram refused setWebhook (HTTP 400, code 400): Bad Request: bad webhook",
        "[ok]      roll back: nothing was kept",
        "hint: Telegram refused the webhook",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    let listed = app.admin_get("/admin/channels").await.text().await.unwrap();
    assert!(!listed.contains("tg-bad"), "{listed}");
    let response = app
        .post_telegram("tg-bad", Some("x"), &telegram_text(1, "hi"))
        .await;
    assert_eq!(response.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn a_messenger_page_gets_its_callback_url_verify_token_and_subscription() {
    let app = spawn_app_with(&registration(""), &[]).await;
    let (code, out) = cli(
        &app,
        &[
            "add",
            "messenger",
            "--id",
            "ms-new",
            "--app-secret",
            NEW_MS_SECRET,
            "--page-access-token",
            NEW_MS_PAGE_TOKEN,
            "--page-id",
            NEW_MS_PAGE,
        ],
    )
    .await;
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    assert!(
        out.contains("Callback URL:   https://bot.example.test/webhooks/messenger/ms-new"),
        "{out}"
    );
    assert!(out.contains("[ok]      subscribed_apps"), "{out}");
    assert!(out.contains("Verify and save"), "{out}");
    let verify = out
        .lines()
        .find_map(|l| l.strip_prefix("Verify token:   "))
        .unwrap()
        .to_owned();
    assert!(verify.len() >= 24, "{verify}");
    assert_eq!(
        app.fake.subscription("messenger", NEW_MS_PAGE).unwrap(),
        [
            "messages",
            "messaging_postbacks",
            "messaging_optins",
            "messaging_referrals"
        ]
    );
    let subscribe = last_call(&app, "/subscribed_apps");
    assert_eq!(
        subscribe.authorization.as_deref(),
        Some(format!("Bearer {NEW_MS_PAGE_TOKEN}").as_str())
    );

    // Meta's dashboard handshake with the printed token, then a message.
    let handshake = app
        .client
        .get(format!(
            "{}/webhooks/messenger/ms-new?hub.mode=subscribe&hub.verify_token={verify}&hub.challenge=4242",
            app.public
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(handshake.status(), 200);
    assert_eq!(handshake.text().await.unwrap(), "4242");
    let body = messenger_text(NEW_MS_PAGE, "psid-77", "hello");
    let response = app
        .post_meta("messenger", "ms-new", Some(NEW_MS_SECRET), &body)
        .await;
    assert_eq!(response.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let replies = app.fake.to_chat("psid-77");
        if let Some(reply) = replies.first() {
            assert_eq!(
                reply.authorization.as_deref(),
                Some(format!("Bearer {NEW_MS_PAGE_TOKEN}").as_str())
            );
            break;
        }
        assert!(Instant::now() < deadline, "no reply through the new page");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let (code, out) = cli(&app, &["check", "ms-new"]).await;
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    assert!(out.contains("subscribed:       yes"), "{out}");
    assert!(out.contains("Healthy."), "{out}");

    let (code, out) = cli(&app, &["remove", "ms-new"]).await;
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    assert!(app.fake.subscription("messenger", NEW_MS_PAGE).is_none());
    let (code, out) = cli(&app, &["check", "ms-new"]).await;
    assert_eq!(code, ExitCode::FAILURE);
    assert!(out.contains("there is no channel 'ms-new'"), "{out}");
    app.stop().await;
}

#[tokio::test]
async fn a_whatsapp_number_subscribes_its_business_account_and_check_reports_it() {
    let app = spawn_app_with(&registration(""), &[]).await;
    let (code, out) = cli(
        &app,
        &[
            "add",
            "whatsapp",
            "--id",
            "wa-new",
            "--app-secret",
            NEW_WA_SECRET,
            "--access-token",
            NEW_WA_TOKEN,
            "--phone-number-id",
            NEW_WA_NUMBER,
            "--waba-id",
            NEW_WA_WABA,
            "--verify-token",
            "my-chosen-verify-token",
        ],
    )
    .await;
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    assert!(
        out.contains("Verify token:   my-chosen-verify-token"),
        "{out}"
    );
    assert!(out.contains("WhatsApp > Configuration"), "{out}");
    assert!(app.fake.subscription("whatsapp", NEW_WA_WABA).is_some());
    assert_eq!(
        last_call(&app, "/subscribed_apps").path,
        format!("/whatsapp/{NEW_WA_WABA}/subscribed_apps")
    );

    let (code, out) = cli(&app, &["check", "wa-new"]).await;
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    assert!(
        out.contains("subscribed:       yes") && out.contains("app Fake App"),
        "{out}"
    );

    // Unsubscribed behind Switchboard's back: check says so and fails.
    app.fake
        .state
        .subscriptions
        .lock()
        .unwrap()
        .remove(&format!("whatsapp/{NEW_WA_WABA}"));
    let (code, out) = cli(&app, &["check", "wa-new"]).await;
    assert_eq!(code, ExitCode::FAILURE, "{out}");
    assert!(out.contains("no app is subscribed"), "{out}");

    let (code, out) = cli(&app, &["remove", "wa-new"]).await;
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    app.stop().await;
}

#[tokio::test]
async fn check_reports_a_foreign_webhook_url_and_failing_deliveries() {
    let app = spawn_app_with(&registration(""), &[]).await;
    let (code, _) = cli(
        &app,
        &[
            "add",
            "telegram",
            "--id",
            "tg-chk",
            "--bot-token",
            NEW_TG_TOKEN,
        ],
    )
    .await;
    assert_eq!(code, ExitCode::SUCCESS);
    app.fake.fail_telegram_deliveries(
        NEW_TG_TOKEN,
        "Wrong response from the webhook: 503 Service Unavailable",
        17,
    );
    app.fake
        .state
        .telegram_webhooks
        .lock()
        .unwrap()
        .get_mut(NEW_TG_TOKEN)
        .unwrap()["url"] = json!("https://elsewhere.example.test/hook");
    let (code, out) = cli(&app, &["check", "tg-chk"]).await;
    assert_eq!(code, ExitCode::FAILURE, "{out}");
    for line in [
        "pending updates:  17",
        "matches gateway:  NO (expected https://bot.example.test/webhooks/telegram/tg-chk)",
        "the webhook points at https://elsewhere.example.test/hook",
        "Wrong response from the webhook: 503",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    app.stop().await;
}

#[tokio::test]
async fn config_file_channels_cannot_be_replaced_or_removed_through_the_api() {
    let app = spawn_app_with(&registration(""), &[]).await;
    let (status, answer) = post_channel(
        &app,
        &json!({"platform": "telegram", "id": "tg", "bot_token": NEW_TG_TOKEN, "replace": true}),
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("config file"));
    let (code, out) = cli(&app, &["remove", "tg"]).await;
    assert_eq!(code, ExitCode::FAILURE);
    assert!(out.contains("defined in the config file"), "{out}");
    // The config channel still works.
    let response = app
        .post_telegram("tg", Some(TG_SECRET), &telegram_text(5, "hi"))
        .await;
    assert_eq!(response.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn bad_registrations_say_what_to_fix_and_never_echo_a_secret() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"platform": "telegram", "id": "x", "bot_token": NEW_TG_TOKEN}),
            400,
            "no public URL",
        ),
        (
            json!({"platform": "telegram", "id": "x", "bot_token": NEW_TG_TOKEN, "public_url": "http://bot.example.test"}),
            400,
            "must be https://",
        ),
        (
            json!({"platform": "telegram", "id": "bad id!", "bot_token": NEW_TG_TOKEN, "public_url": PUBLIC}),
            400,
            "id channel id must be 1-64 characters",
        ),
        (
            json!({"platform": "telegram", "id": "x", "bot_token": "not-a-token-SECRET1", "public_url": PUBLIC}),
            400,
            "bot_token is not a bot token",
        ),
        (
            json!({"platform": "messenger", "id": "x", "app_secret": "s", "page_access_token": "SECRET2", "public_url": PUBLIC}),
            400,
            "page_id is required",
        ),
        (
            json!({"platform": "whatsapp", "id": "x", "app_secret": "s", "access_token": "SECRET3", "phone_number_id": "1", "public_url": PUBLIC}),
            400,
            "waba_id is required",
        ),
        (
            json!({"platform": "telegram", "id": "x", "bot_token": NEW_TG_TOKEN, "max_connections": "SECRET4", "public_url": PUBLIC}),
            400,
            "at 'max_connections': a value has the wrong type",
        ),
        (
            json!({"platform": "telegram", "id": "x", "bot_tokn": "SECRET5"}),
            400,
            "unknown field `bot_tokn`",
        ),
        // Found by the API scan: a token that cannot be sent in a header
        // failed at the first platform call with a 502.
        (
            json!({"platform": "whatsapp", "id": "x", "app_secret": "s", "access_token": "SECRET6 \u{ff}", "phone_number_id": "1", "waba_id": "2", "public_url": PUBLIC}),
            400,
            "access_token must be the token exactly as Meta shows it",
        ),
        (
            json!({"platform": "messenger", "id": "x", "app_secret": "s", "page_access_token": "SECRET7\n", "page_id": "1", "public_url": PUBLIC}),
            400,
            "page_access_token must be the token exactly as Meta shows it",
        ),
        (
            json!({"platform": "telegram", "id": "x", "bot_token": NEW_TG_TOKEN, "max_connections": 400.0, "public_url": PUBLIC}),
            400,
            "max_connections must be between 1 and 100",
        ),
    ];
    for (body, status, message) in cases {
        let (got, answer) = post_channel(&app, &body).await;
        assert_eq!(got, status, "{body}: {answer}");
        let text = answer.to_string();
        assert!(
            text.contains(message),
            "{body}: expected {message:?} in {text}"
        );
        for secret in [
            "SECRET1",
            "SECRET2",
            "SECRET3",
            "SECRET4",
            "SECRET5",
            "SECRET6",
            "SECRET7",
            NEW_TG_TOKEN,
        ] {
            assert!(!text.contains(secret), "{secret} echoed: {text}");
        }
    }
    // Nothing was called on the platforms for any of them.
    assert!(app.fake.requests().is_empty(), "{:#?}", app.fake.requests());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_added_on_one_replica_reaches_the_others_through_redis_sealed() {
    let server = RedisServer::start();
    let store = format!(
        "[store]\nurl = \"{}\"\ntimeout_ms = 1000\nencryption_keys = [\"k1:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\"]\n{}",
        server.url(),
        registration("")
    );
    let a = spawn_app_with(&store, &[]).await;
    let b = spawn_app_with(&store, &[]).await;
    let (status, answer) = post_channel(
        &a,
        &json!({"platform": "telegram", "id": "tg-shared", "bot_token": NEW_TG_TOKEN}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let secret = last_call(&a, "/setWebhook").body["secret_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Replica B never saw the request; it finds the channel in Redis.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = b
            .post_telegram("tg-shared", Some(&secret), &telegram_text(44, "hi"))
            .await;
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 404);
        assert!(
            Instant::now() < deadline,
            "replica B never picked up the channel"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Sealed at rest: neither the bot token nor the secret is readable.
    let mut connection = server.connection();
    let stored: Vec<Vec<u8>> = redis::cmd("HGETALL")
        .arg("sb:v1:channels")
        .query(&mut connection)
        .unwrap();
    assert!(stored.len() >= 4, "channel record and version expected");
    for value in &stored {
        for secret in [NEW_TG_TOKEN, secret.as_str()] {
            assert!(
                !value.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a secret is readable in Redis"
            );
        }
    }

    let removed = a
        .client
        .delete(format!("{}/admin/channels/tg-shared", a.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = b
            .post_telegram("tg-shared", Some(&secret), &telegram_text(45, "hi"))
            .await;
        if response.status() == 404 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replica B kept the removed channel"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.stop().await;
    b.stop().await;
}
