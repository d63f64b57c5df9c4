//! "Delete my data" through the chat, on Redis: afterwards nothing in Redis
//! names the customer's chat.

use std::time::{Duration, Instant};

use switchboard_testkit::RedisServer;

use crate::helpers::*;

const KEY: &str = "k1:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";

async fn wait_for_text(app: &TestApp, chat: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if app
            .fake
            .to_chat(chat)
            .iter()
            .map(sent_text)
            .any(|t| t.contains(needle))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no reply containing {needle:?}: {:#?}",
            app.fake
                .to_chat(chat)
                .iter()
                .map(sent_text)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn delete_my_data_leaves_nothing_about_the_chat_in_redis() {
    let server = RedisServer::start();
    let app = spawn_app_with(
        "",
        &[
            ("SWITCHBOARD__STORE__URL", server.url()),
            ("SWITCHBOARD__STORE__ENCRYPTION_KEYS", KEY),
        ],
    )
    .await;
    let chat = 950_123_477;
    let chat_text = chat.to_string();
    for text in [
        "hi, I'm Jane, jane.doe@example.com",
        "/order 10023",
        "delete my data",
    ] {
        assert_eq!(
            app.post_telegram("tg", Some(TG_SECRET), &telegram_text(chat, text))
                .await
                .status(),
            200
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_for_text(&app, &chat_text, "Are you sure").await;
    // Something stored names the chat before the erasure.
    let mut connection = server.connection();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut connection).unwrap();
    assert!(
        keys.iter().any(|k| k.contains(&chat_text)),
        "the conversation should be stored: {keys:?}"
    );

    assert_eq!(
        app.post_telegram("tg", Some(TG_SECRET), &telegram_text(chat, "yes"))
            .await
            .status(),
        200
    );
    wait_for_text(&app, &chat_text, "erased").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut connection).unwrap();
    let naming: Vec<&String> = keys.iter().filter(|k| k.contains(&chat_text)).collect();
    assert!(
        naming.is_empty(),
        "keys still name the chat after erasure: {naming:?}"
    );
    // No value holds it either (values are sealed; stream entries are gone).
    for key in &keys {
        let kind: String = redis::cmd("TYPE").arg(key).query(&mut connection).unwrap();
        if kind == "string" {
            let value: Vec<u8> = redis::cmd("GET").arg(key).query(&mut connection).unwrap();
            assert!(
                !value
                    .windows(chat_text.len())
                    .any(|w| w == chat_text.as_bytes()),
                "{key} holds the chat id"
            );
        }
    }
    assert_eq!(
        app.admin_get(&format!("/admin/conversations/telegram:tg:{chat}"))
            .await
            .status(),
        404
    );
    app.stop().await;
}
