//! Every row of the status-code table in DESIGN.md.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/healthz", app.public))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn valid_telegram_update_is_acknowledged_and_answered() {
    let app = spawn_app().await;
    let response = app
        .post_telegram("tg", Some(TG_SECRET), &telegram_text(4242, "hi"))
        .await;
    assert_eq!(response.status(), 200);
    let requests = app.fake.wait_for(1, Duration::from_secs(5)).await;
    let reply = requests
        .iter()
        .find(|r| r.path.ends_with("/sendMessage"))
        .expect("a sendMessage");
    assert_eq!(reply.path, format!("/telegram/bot{TG_TOKEN}/sendMessage"));
    assert_eq!(reply.body["chat_id"], 4242);
    assert!(!sent_text(reply).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn forged_or_missing_telegram_secret_is_rejected_with_401_and_nothing_happens() {
    let app = spawn_app().await;
    let body = telegram_text(7, "hi");
    assert_eq!(
        app.post_telegram("tg", Some("wrong-secret"), &body)
            .await
            .status(),
        401
    );
    assert_eq!(app.post_telegram("tg", None, &body).await.status(), 401);
    // The same update with the right secret is still new: nothing was stored.
    assert_eq!(
        app.post_telegram("tg", Some(TG_SECRET), &body)
            .await
            .status(),
        200
    );
    app.fake.wait_for(1, Duration::from_secs(5)).await;
    let metrics = app.admin_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("switchboard_webhook_verification_failures_total"),
        "{metrics}"
    );
    assert!(app.dead_letters().await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn forged_meta_signatures_are_rejected_with_401() {
    let app = spawn_app().await;
    let body = whatsapp_text("15551234567", "hi", 0);
    assert_eq!(
        app.post_meta("whatsapp", "wa", Some("not-the-secret"), &body)
            .await
            .status(),
        401
    );
    assert_eq!(
        app.post_meta("whatsapp", "wa", None, &body).await.status(),
        401
    );
    let legacy = app
        .client
        .post(format!("{}/webhooks/whatsapp/wa", app.public))
        .header(
            "X-Hub-Signature",
            "sha1=3daa41999293ff66c3eb313e04bcf77861bb0276",
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), 401);
    let body = messenger_text("PAGE1", "123", "hi");
    assert_eq!(
        app.post_meta("messenger", "ms", Some(WA_SECRET), &body)
            .await
            .status(),
        401
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.fake.requests().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn unknown_channel_or_platform_is_404() {
    let app = spawn_app().await;
    let body = telegram_text(1, "hi");
    assert_eq!(
        app.post_telegram("nope", Some(TG_SECRET), &body)
            .await
            .status(),
        404
    );
    // A channel exists, but for another platform.
    assert_eq!(
        app.post_meta("messenger", "tg", Some(MS_SECRET), &body)
            .await
            .status(),
        404
    );
    let response = app
        .client
        .post(format!("{}/webhooks/sms/tg", app.public))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let app = spawn_app_with("", &[("SWITCHBOARD__SERVER__MAX_BODY_BYTES", "2048")]).await;
    let text = "x".repeat(4096);
    let body = telegram_text(1, &text);
    assert_eq!(
        app.post_telegram("tg", Some(TG_SECRET), &body)
            .await
            .status(),
        413
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.fake.requests().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn signed_but_unparseable_body_is_200_and_kept_as_a_dead_letter() {
    let app = spawn_app().await;
    let body = b"this is not json";
    assert_eq!(
        app.post_meta("whatsapp", "wa", Some(WA_SECRET), body)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post_telegram("tg", Some(TG_SECRET), b"[1,2,3]")
            .await
            .status(),
        200
    );
    let letters = app.dead_letters().await;
    let reasons: Vec<_> = letters
        .iter()
        .map(|l| l["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        reasons
            .iter()
            .filter(|r| *r == "unparseable_webhook")
            .count(),
        2,
        "{letters:#?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn platform_retries_are_processed_once() {
    let app = spawn_app().await;
    let body = telegram_text(99, "hi");
    for _ in 0..3 {
        assert_eq!(
            app.post_telegram("tg", Some(TG_SECRET), &body)
                .await
                .status(),
            200
        );
    }
    app.fake.wait_for(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first_batch = app.fake.to_chat("99").len();
    // One answer (maybe several messages), not three.
    let body2 = telegram_text(98, "hi");
    app.post_telegram("tg", Some(TG_SECRET), &body2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        first_batch,
        app.fake.to_chat("98").len(),
        "a retried update was answered more than once"
    );
    app.stop().await;
}

#[tokio::test]
async fn meta_handshake_echoes_the_challenge_or_refuses() {
    let app = spawn_app().await;
    let url = format!(
        "{}/webhooks/whatsapp/wa?hub.mode=subscribe&hub.verify_token={WA_VERIFY}&hub.challenge=1158201444",
        app.public
    );
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "1158201444");

    let url = format!(
        "{}/webhooks/messenger/ms?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
        app.public
    );
    assert_eq!(app.client.get(url).send().await.unwrap().status(), 403);
    let url = format!(
        "{}/webhooks/messenger/ms?hub.mode=subscribe&hub.verify_token={MS_VERIFY}&hub.challenge=abc",
        app.public
    );
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "abc");
    let url = format!(
        "{}/webhooks/messenger/nope?hub.mode=subscribe&hub.verify_token={MS_VERIFY}&hub.challenge=1",
        app.public
    );
    assert_eq!(app.client.get(url).send().await.unwrap().status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn a_batch_of_meta_messages_is_all_processed() {
    let app = spawn_app().await;
    let now = now_secs();
    let body = serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "1", "phone_number_id": WA_NUMBER},
            "messages": [
                {"from": "15550000001", "id": "wamid.batch.1", "timestamp": now.to_string(), "type": "text", "text": {"body": "hi"}},
                {"from": "15550000002", "id": "wamid.batch.2", "timestamp": now.to_string(), "type": "text", "text": {"body": "hi"}}
            ]
        }}]}]
    }))
    .unwrap();
    assert_eq!(
        app.post_meta("whatsapp", "wa", Some(WA_SECRET), &body)
            .await
            .status(),
        200
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while app.fake.to_chat("15550000001").is_empty() || app.fake.to_chat("15550000002").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "both customers should be answered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_full_inbox_answers_503_with_retry_after_and_the_retry_is_processed_later() {
    // One lane each, room for one item: a platform that says "wait 3 s"
    // stalls the sender, the outbox fills, the worker waits, the inbox fills.
    let env = [
        ("SWITCHBOARD__PIPELINE__WORKERS", "1"),
        ("SWITCHBOARD__PIPELINE__INBOX_CAPACITY", "1"),
        ("SWITCHBOARD__SENDER__WORKERS", "1"),
        ("SWITCHBOARD__SENDER__OUTBOX_CAPACITY", "1"),
    ];
    let app = spawn_app_with("", &env).await;
    app.fake.script([Scripted {
        status: 429,
        retry_after: None,
        body: json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 3", "parameters": {"retry_after": 3}}),
    }]);
    let mut refused = None;
    for chat in 0..40 {
        let body = telegram_text(8000 + chat, "hi");
        let response = app.post_telegram("tg", Some(TG_SECRET), &body).await;
        if response.status() == 503 {
            assert!(response.headers().contains_key("retry-after"));
            refused = Some((8000 + chat, body));
            break;
        }
        assert_eq!(response.status(), 200);
    }
    let (refused_chat, refused) = refused.expect("the inbox never filled up");
    // Nothing was acknowledged, so the platform's retry is new, not a duplicate.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let response = app.post_telegram("tg", Some(TG_SECRET), &refused).await;
        if response.status() == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the inbox never drained"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    while app.fake.to_chat(&refused_chat.to_string()).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the retried update was never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn other_methods_on_a_served_path_get_405_with_allow_and_unknown_paths_404() {
    // Found by the API scan: actix answered 404 for TRACE /healthz.
    let app = spawn_app().await;
    let cases = [
        (&app.public, "TRACE", "/healthz", 405, Some("GET")),
        (
            &app.public,
            "PUT",
            "/webhooks/telegram/tg",
            405,
            Some("GET, POST"),
        ),
        (&app.public, "GET", "/no/such/route", 404, None),
        (&app.admin, "POST", "/readyz", 405, Some("GET")),
        (
            &app.admin,
            "PATCH",
            "/admin/conversations/telegram:tg:1",
            405,
            Some("GET, DELETE"),
        ),
        (&app.admin, "GET", "/console/api/login", 405, Some("POST")),
        (&app.admin, "GET", "/admin/nothing-here", 404, None),
    ];
    for (base, method, path, status, allow) in cases {
        let response = app
            .client
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        assert_eq!(
            response
                .headers()
                .get("allow")
                .map(|v| v.to_str().unwrap().to_owned())
                .as_deref(),
            allow,
            "{method} {path}"
        );
    }
    // Without a token the admin listener still says nothing about routes.
    let response = app
        .client
        .post(format!("{}/readyz", app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn the_sandbox_plays_the_registration_calls_without_keeping_secrets_in_its_log() {
    // Found by the API scan: `channels add` against the demo's sandbox got
    // a 502, because it answered getMe with `true` and had no Graph GET.
    let app = spawn_app_with("[sandbox]\nenabled = true\n", &[]).await;
    let call = |method: &str, path: &str, body: Option<serde_json::Value>| {
        let mut request = app.client.request(
            method.parse().unwrap(),
            format!("{}/sandbox/{path}", app.public),
        );
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let tg = "telegram/bot4242:SANDBOX-TOKEN";
    let me: serde_json::Value = call("POST", &format!("{tg}/getMe"), None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["result"]["id"], 4242);
    assert_eq!(me["result"]["is_bot"], true);
    let set = call(
        "POST",
        &format!("{tg}/setWebhook"),
        Some(json!({"url": "https://bot.example.com/webhooks/telegram/x", "secret_token": "HOOK-SECRET", "max_connections": 7})),
    )
    .await
    .unwrap();
    assert_eq!(set.status(), 200);
    let info: serde_json::Value = call("POST", &format!("{tg}/getWebhookInfo"), None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        info["result"]["url"],
        "https://bot.example.com/webhooks/telegram/x"
    );
    assert_eq!(info["result"]["max_connections"], 7);
    call("POST", &format!("{tg}/deleteWebhook"), None)
        .await
        .unwrap();
    let info: serde_json::Value = call("POST", &format!("{tg}/getWebhookInfo"), None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["result"]["url"], "");

    for platform in ["messenger", "whatsapp"] {
        let apps = |app: serde_json::Value| app["data"].as_array().unwrap().len();
        let before: serde_json::Value =
            call("GET", &format!("{platform}/1055/subscribed_apps"), None)
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        assert_eq!(apps(before), 0);
        let subscribed = call(
            "POST",
            &format!("{platform}/1055/subscribed_apps"),
            Some(json!({"subscribed_fields": "messages,messaging_postbacks"})),
        )
        .await
        .unwrap();
        assert_eq!(subscribed.status(), 200);
        let after: serde_json::Value =
            call("GET", &format!("{platform}/1055/subscribed_apps"), None)
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        assert_eq!(
            after["data"][0]["subscribed_fields"][1],
            "messaging_postbacks"
        );
        call("DELETE", &format!("{platform}/1055/subscribed_apps"), None)
            .await
            .unwrap();
        let gone: serde_json::Value =
            call("GET", &format!("{platform}/1055/subscribed_apps"), None)
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        assert_eq!(apps(gone), 0);
        let bad = call("GET", &format!("{platform}/page-x/subscribed_apps"), None)
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);
    }
    // None of that is a message, and no token or secret shows.
    let log = call("GET", "messages", None)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !log.contains("HOOK-SECRET") && !log.contains("SANDBOX-TOKEN"),
        "{log}"
    );
    assert!(!log.contains("setWebhook"), "{log}");
    app.stop().await;
}

#[tokio::test]
async fn a_webhook_path_with_percent_escapes_is_answered_as_the_plain_one() {
    // Plain webhook paths skip actix's router; escaped ones go through it.
    // Both must reach the same handler with the same decoded segments.
    let app = spawn_app().await;
    let post = |path: String, secret: &'static str, chat: i64| {
        app.client
            .post(format!("{}{path}", app.public))
            .header("Content-Type", "application/json")
            .header("X-Telegram-Bot-Api-Secret-Token", secret)
            .body(telegram_text(chat, "hi"))
            .send()
    };
    for (n, (platform, channel, unknown)) in
        [("telegram", "tg", "nope"), ("telegr%61m", "t%67", "n%6Fpe")]
            .into_iter()
            .enumerate()
    {
        let chat = 9100 + n as i64;
        let path = format!("/webhooks/{platform}/{channel}");
        let status = |r: reqwest::Response| r.status().as_u16();
        assert_eq!(
            status(post(path.clone(), "wrong", chat).await.unwrap()),
            401,
            "{path}"
        );
        let unknown = format!("/webhooks/{platform}/{unknown}");
        assert_eq!(
            status(post(unknown, TG_SECRET, chat).await.unwrap()),
            404,
            "{path}"
        );
        assert_eq!(
            status(post(path.clone(), TG_SECRET, chat).await.unwrap()),
            200,
            "{path}"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while app.fake.to_chat(&chat.to_string()).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "{path}: never answered"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    app.stop().await;
}
