//! Abuse controls: a flooding sender gets one "slow down" and is otherwise
//! ignored (the platform still gets its 200s); overlong text is cut; rotated
//! secrets are accepted old and new during the change-over.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn a_flooding_sender_gets_one_slow_down_and_the_rest_is_dropped() {
    let app = spawn_app_with(
        "",
        &[
            ("SWITCHBOARD__ABUSE__SENDER_MESSAGES_PER_MINUTE", "1"),
            ("SWITCHBOARD__ABUSE__SENDER_BURST", "2"),
        ],
    )
    .await;
    for n in 0..8 {
        let body = telegram_text(7070, &format!("/order 1000{n}"));
        assert_eq!(
            app.post_telegram("tg", Some(TG_SECRET), &body)
                .await
                .status(),
            200
        );
    }
    // Someone else is not affected.
    app.post_telegram("tg", Some(TG_SECRET), &telegram_text(7071, "/order 10001"))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while app.fake.to_chat("7071").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "another customer was slowed down too"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let texts: Vec<String> = app.fake.to_chat("7070").iter().map(sent_text).collect();
    let answered = texts.iter().filter(|t| t.contains("1000")).count();
    let slow_downs = texts
        .iter()
        .filter(|t| t.to_lowercase().contains("faster than i can answer"))
        .count();
    assert_eq!(answered, 2, "the burst is answered: {texts:#?}");
    assert_eq!(slow_downs, 1, "exactly one slow-down: {texts:#?}");
    assert_eq!(texts.len(), 3, "nothing else: {texts:#?}");
    app.stop().await;
}

#[tokio::test]
async fn an_overlong_text_is_cut_before_it_reaches_the_state() {
    let app = spawn_app().await;
    let long = format!("my email is someone@example.com {}", "blah ".repeat(40_000));
    let body = telegram_text(7072, &long);
    assert_eq!(
        app.post_telegram("tg", Some(TG_SECRET), &body)
            .await
            .status(),
        200
    );
    app.fake.wait_for(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let state = app
        .admin_get("/admin/conversations/telegram:tg:7072")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        state.len() < 64 * 1024,
        "state grew to {} bytes",
        state.len()
    );
    app.stop().await;
}

#[tokio::test]
async fn rotated_secrets_are_accepted_old_and_new_during_the_change_over() {
    let extra = r#"
[[channels]]
id = "tg-rotating"
platform = "telegram"
bot_token = "333:ROTATING"
secret_token = "new-secret-token"
previous_secret_token = "old-secret-token"

[[channels]]
id = "wa-rotating"
platform = "whatsapp"
app_secret = "new-app-secret"
previous_app_secret = "old-app-secret"
verify_token = "v"
access_token = "t"
phone_number_id = "15550009999"
"#;
    let app = spawn_app_with(extra, &[]).await;
    for secret in ["new-secret-token", "old-secret-token"] {
        let response = app
            .post_telegram("tg-rotating", Some(secret), &telegram_text(7073, "hi"))
            .await;
        assert_eq!(response.status(), 200, "{secret}");
    }
    assert_eq!(
        app.post_telegram(
            "tg-rotating",
            Some("other-token"),
            &telegram_text(7073, "hi")
        )
        .await
        .status(),
        401
    );
    let body = String::from_utf8(whatsapp_text("15551110000", "hi", 0))
        .unwrap()
        .replace(WA_NUMBER, "15550009999");
    for secret in ["new-app-secret", "old-app-secret"] {
        let response = app
            .post_meta("whatsapp", "wa-rotating", Some(secret), body.as_bytes())
            .await;
        assert_eq!(response.status(), 200, "{secret}");
    }
    assert_eq!(
        app.post_meta("whatsapp", "wa-rotating", Some("stale"), body.as_bytes())
            .await
            .status(),
        401
    );
    app.stop().await;
}
