//! The sender: retry-after, transient retries, permanent failures to dead
//! letters, and the 24-hour window on Meta platforms.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_then_sent() {
    let app = spawn_app().await;
    app.fake.script([Scripted {
        status: 429,
        retry_after: None,
        body: json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}}),
    }]);
    app.post_telegram("tg", Some(TG_SECRET), &telegram_text(1001, "hi"))
        .await;
    let requests = app.fake.wait_for(2, Duration::from_secs(8)).await;
    let gap = requests[1].at.duration_since(requests[0].at);
    assert!(
        gap >= Duration::from_millis(950),
        "retried after {gap:?}, before retry_after"
    );
    assert_eq!(
        requests[0].body, requests[1].body,
        "the same message is retried"
    );
    app.stop().await;
}

#[tokio::test]
async fn transient_errors_are_retried_with_backoff() {
    let app = spawn_app().await;
    let error = Scripted {
        status: 502,
        retry_after: None,
        body: json!({"ok": false, "error_code": 502, "description": "Bad Gateway"}),
    };
    app.fake.script([error.clone(), error]);
    app.post_telegram("tg", Some(TG_SECRET), &telegram_text(1002, "hi"))
        .await;
    let requests = app.fake.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(requests[0].body, requests[2].body);
    app.stop().await;
}

#[tokio::test]
async fn a_blocked_user_is_a_dead_letter_not_a_retry_loop() {
    let app = spawn_app().await;
    app.fake.script([Scripted {
        status: 403,
        retry_after: None,
        body: json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
    }]);
    app.post_telegram("tg", Some(TG_SECRET), &telegram_text(1003, "hi"))
        .await;
    let letter = app
        .wait_for_dead_letter("send_failed:recipient_unreachable", Duration::from_secs(5))
        .await;
    assert_eq!(letter["conversation"], "telegram:tg:1003");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.fake.to_chat("1003").len(),
        1,
        "no retry after 'blocked'"
    );
    app.stop().await;
}

#[tokio::test]
async fn replies_outside_the_24_hour_window_are_not_sent_and_the_reason_is_recorded() {
    let app = spawn_app().await;
    let body = whatsapp_text("15557770000", "hi", 25 * 3600);
    assert_eq!(
        app.post_meta("whatsapp", "wa", Some(WA_SECRET), &body)
            .await
            .status(),
        200
    );
    let letter = app
        .wait_for_dead_letter("outside_window", Duration::from_secs(5))
        .await;
    // The admin API masks personal data: a WhatsApp chat id is a phone number.
    assert_eq!(letter["conversation"], "whatsapp:wa:[phone]");
    assert!(app.fake.to_chat("15557770000").is_empty());
    app.stop().await;
}

#[tokio::test]
async fn outside_the_window_a_configured_template_is_sent_instead() {
    let extra = format!(
        r#"
[[channels]]
id = "wa-template"
platform = "whatsapp"
app_secret = "other-wa-secret"
verify_token = "v"
access_token = "{WA_TOKEN}"
phone_number_id = "15550002222"
outside_window_template = {{ name = "we_are_back", language = "en_US" }}
"#
    );
    let app = spawn_app_with(&extra, &[]).await;
    let body = String::from_utf8(whatsapp_text("15557770001", "hi", 25 * 3600))
        .unwrap()
        .replace(WA_NUMBER, "15550002222");
    assert_eq!(
        app.post_meta(
            "whatsapp",
            "wa-template",
            Some("other-wa-secret"),
            body.as_bytes()
        )
        .await
        .status(),
        200
    );
    app.fake.wait_for(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = app.fake.to_chat("15557770001");
    assert!(!sent.is_empty());
    for request in &sent {
        assert_eq!(request.body["type"], "template", "{:?}", request.body);
        assert_eq!(request.body["template"]["name"], "we_are_back");
        assert_eq!(request.path, "/whatsapp/15550002222/messages");
    }
    app.stop().await;
}

#[tokio::test]
async fn messenger_outside_the_window_uses_the_configured_tag() {
    let extra = r#"
[[channels]]
id = "ms-tagged"
platform = "messenger"
app_secret = "tagged-secret"
verify_token = "v"
page_access_token = "tagged-token"
outside_window_tag = "HUMAN_AGENT"
"#;
    let app = spawn_app_with(extra, &[]).await;
    let now_ms = (now_secs() - 25 * 3600) * 1000;
    let body = serde_json::to_vec(&json!({
        "object": "page",
        "entry": [{"id": "P9", "time": now_ms, "messaging": [{
            "sender": {"id": "psid-old"}, "recipient": {"id": "P9"}, "timestamp": now_ms,
            "message": {"mid": "m_old_1", "text": "hi"}
        }]}]
    }))
    .unwrap();
    assert_eq!(
        app.post_meta("messenger", "ms-tagged", Some("tagged-secret"), &body)
            .await
            .status(),
        200
    );
    app.fake.wait_for(1, Duration::from_secs(5)).await;
    let sent = app.fake.to_chat("psid-old");
    assert!(!sent.is_empty());
    for request in sent.iter().filter(|r| r.body.get("message").is_some()) {
        assert_eq!(request.body["messaging_type"], "MESSAGE_TAG");
        assert_eq!(request.body["tag"], "HUMAN_AGENT");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_channels_send_rate_is_configurable_and_paces_the_replies() {
    let app = spawn_app_with("", &[("SWITCHBOARD__SENDER__TELEGRAM_PER_SECOND", "2")]).await;
    for chat in 8100..8106 {
        app.post_telegram("tg", Some(TG_SECRET), &telegram_text(chat, "/order 10023"))
            .await;
    }
    app.fake.wait_for(6, Duration::from_secs(10)).await;
    let mut at: Vec<_> = app.fake.requests().iter().map(|r| r.at).collect();
    at.sort();
    let spread = at[at.len() - 1].duration_since(at[0]);
    // A burst of two, then one every half second.
    assert!(
        spread >= Duration::from_millis(1500),
        "six replies at 2/s went out within {spread:?}"
    );
    app.stop().await;
}
