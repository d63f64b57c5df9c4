//! Meta routing: one app's callback URL carries several pages; each entry is
//! answered by the channel that claims its page, with that channel's token.

use std::time::Duration;

use crate::helpers::*;

const SECOND_PAGE: &str = r#"
[[channels]]
id = "ms2"
platform = "messenger"
app_secret = "ms-app-secret"
verify_token = "ms2-verify"
page_access_token = "ms2-page-token"
page_id = "PAGE2"
"#;

#[tokio::test]
async fn an_entry_for_another_page_of_the_same_app_is_answered_by_that_pages_channel() {
    let app = spawn_app_with(SECOND_PAGE, &[]).await;
    let body = messenger_text("PAGE2", "psid-2", "hi");
    // Delivered on the first channel's URL, signed with the shared secret.
    assert_eq!(
        app.post_meta("messenger", "ms", Some(MS_SECRET), &body)
            .await
            .status(),
        200
    );
    app.fake.wait_for(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = app.fake.to_chat("psid-2");
    assert!(!sent.is_empty());
    for request in sent {
        assert_eq!(
            request.authorization.as_deref(),
            Some("Bearer ms2-page-token")
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn an_entry_for_an_unclaimed_page_is_acknowledged_recorded_and_never_answered() {
    let app = spawn_app_with(SECOND_PAGE, &[]).await;
    let body = messenger_text("PAGE-NOBODY", "psid-3", "hi");
    // ms2 claims PAGE2 only, so an unknown page arriving on its URL is unclaimed.
    assert_eq!(
        app.post_meta("messenger", "ms2", Some(MS_SECRET), &body)
            .await
            .status(),
        200
    );
    app.wait_for_dead_letter("unclaimed_entry", Duration::from_secs(5))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.fake.to_chat("psid-3").is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_channel_without_page_id_takes_every_page_of_its_app() {
    let app = spawn_app().await;
    let body = messenger_text("ANY-PAGE", "psid-4", "hi");
    assert_eq!(
        app.post_meta("messenger", "ms", Some(MS_SECRET), &body)
            .await
            .status(),
        200
    );
    app.fake.wait_for(1, Duration::from_secs(5)).await;
    let sent = app.fake.to_chat("psid-4");
    assert!(!sent.is_empty());
    assert_eq!(
        sent[0].authorization.as_deref(),
        Some("Bearer ms-page-token")
    );
    assert_eq!(sent[0].path, "/messenger/me/messages");
    app.stop().await;
}

#[tokio::test]
async fn whatsapp_entries_for_another_number_are_not_answered() {
    let app = spawn_app().await;
    let body = String::from_utf8(whatsapp_text("15559990000", "hi", 0))
        .unwrap()
        .replace(WA_NUMBER, "19998887777");
    assert_eq!(
        app.post_meta("whatsapp", "wa", Some(WA_SECRET), body.as_bytes())
            .await
            .status(),
        200
    );
    app.wait_for_dead_letter("unclaimed_entry", Duration::from_secs(5))
        .await;
    assert!(app.fake.to_chat("15559990000").is_empty());
    app.stop().await;
}
