//! Graceful shutdown: acknowledged events are answered before the process
//! ends, and the listener stops taking webhooks.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn acknowledged_events_are_answered_before_shutdown_completes() {
    let app = spawn_app().await;
    let chats: Vec<i64> = (0..20).map(|i| 5000 + i).collect();
    for chat in &chats {
        assert_eq!(
            app.post_telegram("tg", Some(TG_SECRET), &telegram_text(*chat, "hi"))
                .await
                .status(),
            200
        );
    }
    let fake = app.fake.clone();
    let public = app.public.clone();
    app.stop().await;
    for chat in &chats {
        assert!(
            !fake.to_chat(&chat.to_string()).is_empty(),
            "chat {chat} acknowledged but never answered"
        );
    }
    // The listener is closed.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    assert!(
        client
            .get(format!("{public}/healthz"))
            .send()
            .await
            .is_err()
    );
}
