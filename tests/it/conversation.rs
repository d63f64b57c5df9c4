//! A conversation through the whole path: order of replies within a chat,
//! state carried across turns.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn one_chats_messages_are_answered_in_order() {
    let app = spawn_app().await;
    let chat = 6060;
    let orders = ["10023", "99991", "10024", "99992"];
    for order in orders {
        let body = telegram_text(chat, &format!("/order {order}"));
        assert_eq!(
            app.post_telegram("tg", Some(TG_SECRET), &body)
                .await
                .status(),
            200
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let texts: Vec<String> = app.fake.to_chat("6060").iter().map(sent_text).collect();
        let mentioned: Vec<&str> = texts
            .iter()
            .filter_map(|t| orders.iter().find(|o| t.contains(**o)).copied())
            .collect();
        if mentioned.len() >= orders.len() {
            let mut firsts = Vec::new();
            for m in mentioned {
                if !firsts.contains(&m) {
                    firsts.push(m);
                }
            }
            assert_eq!(firsts, orders, "replies out of order: {texts:#?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not every order was answered: {texts:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}
