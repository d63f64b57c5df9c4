//! Every real payload in shared/fixtures, posted with a correct signature,
//! is acknowledged with 200 (and the service keeps working).

use std::time::Duration;

use switchboard_model::testing::{fixture_files, fixtures_dir};

use crate::helpers::*;

#[tokio::test]
async fn every_fixture_posted_with_a_correct_signature_is_acknowledged() {
    let app = spawn_app().await;
    let dir = fixtures_dir(env!("CARGO_MANIFEST_DIR"));
    let mut failures = Vec::new();
    let mut count = 0;
    for platform in ["telegram", "messenger", "whatsapp"] {
        for (name, body) in fixture_files(&dir.join(platform)) {
            count += 1;
            let response = match platform {
                "telegram" => app.post_telegram("tg", Some(TG_SECRET), &body).await,
                "messenger" => {
                    app.post_meta("messenger", "ms", Some(MS_SECRET), &body)
                        .await
                }
                _ => {
                    app.post_meta("whatsapp", "wa", Some(WA_SECRET), &body)
                        .await
                }
            };
            if response.status() != 200 {
                failures.push(format!("{platform}/{name}: {}", response.status()));
            }
        }
    }
    assert!(count >= 80, "expected the shared fixtures, found {count}");
    assert!(
        failures.is_empty(),
        "fixtures not acknowledged: {failures:#?}"
    );
    // None of them was unparseable: all are the platforms' real JSON.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let letters = app.dead_letters().await;
    assert!(
        !letters.iter().any(|l| l["reason"] == "unparseable_webhook"),
        "{letters:#?}"
    );
    // Still healthy and answering.
    app.post_telegram("tg", Some(TG_SECRET), &telegram_text(31337, "hi"))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while app.fake.to_chat("31337").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "gateway stopped answering after the fixtures"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
}
