//! Abuse controls: a flooding sender gets one "slow down" and is otherwise
//! ignored (the platform still gets its 200s); overlong text is cut; rotated
//! secrets are accepted old and new during the change-over; one-time codes
//! are capped per account and hour across replicas.

use std::time::Duration;

use switchboard_testkit::RedisServer;

use crate::helpers::*;

const FLOOD_LIMITS: [(&str, &str); 2] = [
    ("SWITCHBOARD__ABUSE__SENDER_MESSAGES_PER_MINUTE", "1"),
    ("SWITCHBOARD__ABUSE__SENDER_BURST", "2"),
];

#[tokio::test]
async fn a_flooding_sender_gets_one_slow_down_and_the_rest_is_dropped() {
    let app = spawn_app_with("", &FLOOD_LIMITS).await;
    flood(&[&app]).await;
    app.stop().await;
}

/// On Redis a flood spread over two replicas gets the same answer as one:
/// the replica holding the conversation's partition handles (and counts)
/// every message of that sender, whichever replica took the webhook.
#[tokio::test]
async fn a_flood_spread_over_replicas_on_redis_gets_one_slow_down_too() {
    let server = RedisServer::start();
    let store = format!(
        "[store]\nurl = \"{}\"\nencryption_keys = [\"k1:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\"]\n",
        server.url()
    );
    let first = spawn_app_with(&store, &FLOOD_LIMITS).await;
    let second = spawn_app_with(&store, &FLOOD_LIMITS).await;
    // A partition moving mid-flood would start its sender's count afresh
    // on the new holder (as a deploy does): flood once the two replicas
    // have shared the inbox out.
    inbox_shared_by(&server, 2).await;
    flood(&[&first, &second]).await;
    first.stop().await;
    second.stop().await;
}

/// Waits (15 s at most) until `replicas` replicas hold the inbox's
/// partition leases in equal shares.
async fn inbox_shared_by(server: &RedisServer, replicas: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut connection = server.connection();
    loop {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("sb:v1:lease:{inbox-*")
            .query(&mut connection)
            .unwrap();
        let mut holders = std::collections::HashMap::<String, usize>::new();
        for key in &keys {
            let holder: Option<String> = redis::cmd("GET").arg(key).query(&mut connection).unwrap();
            if let Some(holder) = holder {
                *holders.entry(holder).or_default() += 1;
            }
        }
        let share = keys.len() / replicas;
        if holders.len() == replicas && holders.values().all(|held| *held == share) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the inbox was not shared out: {holders:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Eight messages from one customer in a row, over `apps` in turn, then
/// one from someone else. Replies are counted on every app's fake
/// platform: the replica holding the conversation's partition answers.
async fn flood(apps: &[&TestApp]) {
    let to_chat = |chat: &str| -> Vec<String> {
        apps.iter()
            .flat_map(|app| app.fake.to_chat(chat))
            .map(|sent| sent_text(&sent))
            .collect()
    };
    for n in 0..8 {
        let body = telegram_text(7070, &format!("/order 1000{n}"));
        let app = apps[n % apps.len()];
        assert_eq!(
            app.post_telegram("tg", Some(TG_SECRET), &body)
                .await
                .status(),
            200
        );
    }
    // Someone else is not affected.
    apps[0]
        .post_telegram("tg", Some(TG_SECRET), &telegram_text(7071, "/order 10001"))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while to_chat("7071").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "another customer was slowed down too"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let texts = to_chat("7070");
    let answered = texts.iter().filter(|t| t.contains("1000")).count();
    let slow_downs = texts
        .iter()
        .filter(|t| t.to_lowercase().contains("faster than i can answer"))
        .count();
    assert_eq!(answered, 2, "the burst is answered: {texts:#?}");
    assert_eq!(slow_downs, 1, "exactly one slow-down: {texts:#?}");
    assert_eq!(texts.len(), 3, "nothing else: {texts:#?}");
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

/// Waits until `chat` has been sent `count` messages, through any of the
/// replicas (whichever holds the partition answers), and returns the last.
async fn nth_reply(apps: &[&TestApp], chat: &str, count: usize) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut recorded: Vec<_> = apps.iter().flat_map(|app| app.fake.to_chat(chat)).collect();
        recorded.sort_by_key(|r| r.at);
        let texts: Vec<String> = recorded.iter().map(sent_text).collect();
        if texts.len() >= count {
            return texts[count - 1].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{chat} got {} replies, waited for {count}: {texts:#?}",
            texts.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn one_time_codes_for_one_account_are_capped_per_hour_across_replicas() {
    let server = RedisServer::start();
    let store = format!(
        "[store]\nurl = \"{}\"\nencryption_keys = [\"k1:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\"]\n",
        server.url()
    );
    let replicas = [
        spawn_app_with(&store, &[]).await,
        spawn_app_with(&store, &[]).await,
    ];
    // A scammer asks for codes to the same account from new chats, on
    // whichever replica the platform reaches: five are sent, then none.
    let both = [&replicas[0], &replicas[1]];
    let mut outcomes = Vec::new();
    for n in 0..7_i64 {
        let app = &replicas[usize::try_from(n % 2).unwrap()];
        let chat = 7200 + n;
        app.post_telegram("tg", Some(TG_SECRET), &telegram_text(chat, "verify me"))
            .await;
        nth_reply(&both, &chat.to_string(), 1).await;
        app.post_telegram(
            "tg",
            Some(TG_SECRET),
            &telegram_text(chat, "jane@example.com"),
        )
        .await;
        outcomes.push(nth_reply(&both, &chat.to_string(), 2).await);
    }
    let sent = outcomes
        .iter()
        .filter(|t| t.contains("I've sent a 6-digit code"))
        .count();
    let capped = outcomes
        .iter()
        .filter(|t| t.contains("Too many codes have been asked for"))
        .count();
    assert_eq!((sent, capped), (5, 2), "{outcomes:#?}");
    // The refused asker is offered a person instead.
    assert!(outcomes[6].contains("in touch with a person"));
    let mut capped_counted = 0;
    for app in &replicas {
        let metrics = app.admin_get("/metrics").await.text().await.unwrap();
        capped_counted += metrics
            .lines()
            .filter_map(|line| {
                line.strip_prefix("switchboard_link_codes_capped_total{scope=\"account\"} ")
            })
            .map(|value| value.parse::<u64>().unwrap())
            .sum::<u64>();
    }
    assert_eq!(capped_counted, 2, "both refusals are counted");
    for app in replicas {
        app.stop().await;
    }
}

#[tokio::test]
async fn one_chat_cannot_keep_asking_for_codes() {
    let app = spawn_app().await;
    let chat = 7300;
    let mut replies = 0;
    let mut outcomes = Vec::new();
    // Ten codes per conversation and hour, whichever accounts; the account
    // cap (five) comes first when it is one account, so alternate.
    for n in 0..12 {
        let identifier = if n % 2 == 0 {
            "jane@example.com"
        } else {
            "max@example.org"
        };
        // While a code is awaited a new address asks for a new code; after
        // a refusal the chat starts over.
        let awaiting = outcomes
            .last()
            .is_some_and(|t: &String| t.contains("I've sent a 6-digit code"));
        if !awaiting {
            app.post_telegram("tg", Some(TG_SECRET), &telegram_text(chat, "verify me"))
                .await;
            replies += 1;
            nth_reply(&[&app], &chat.to_string(), replies).await;
        }
        app.post_telegram("tg", Some(TG_SECRET), &telegram_text(chat, identifier))
            .await;
        replies += 1;
        outcomes.push(nth_reply(&[&app], &chat.to_string(), replies).await);
    }
    let sent = outcomes
        .iter()
        .filter(|t| t.contains("I've sent a 6-digit code"))
        .count();
    assert_eq!(sent, 10, "{outcomes:#?}");
    assert!(
        outcomes[10..]
            .iter()
            .all(|t| t.contains("Too many codes have been asked for")),
        "{outcomes:#?}"
    );
    app.stop().await;
}
