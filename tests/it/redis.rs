//! The gateway on a real, private redis-server: `[store] url` is the only
//! switch, a Redis outage answers 503 and heals by itself, and nothing
//! secret or said in a conversation is readable in Redis.

use std::time::{Duration, Instant};

use switchboard_testkit::RedisServer;

use crate::helpers::*;

/// A test-only encryption key (`openssl rand -base64 32` makes real ones).
const KEY: &str = "k1:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";

fn store_section(server: &RedisServer) -> String {
    format!(
        "[store]\nurl = \"{}\"\ntimeout_ms = 500\nencryption_keys = [\"{KEY}\"]\n",
        server.url()
    )
}

/// Every key in Redis and every value in it as raw bytes, whatever the type.
fn dump(server: &RedisServer) -> Vec<(String, Vec<Vec<u8>>)> {
    let mut connection = server.connection();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut connection).unwrap();
    keys.into_iter()
        .map(|key| {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut connection).unwrap();
            let query = |name: &str, args: &[&str], connection: &mut redis::Connection| {
                let mut command = redis::cmd(name);
                command.arg(&key);
                for arg in args {
                    command.arg(*arg);
                }
                command.query::<redis::Value>(connection).unwrap()
            };
            let value = match kind.as_str() {
                "string" => query("GET", &[], &mut connection),
                "list" => query("LRANGE", &["0", "-1"], &mut connection),
                "hash" => query("HGETALL", &[], &mut connection),
                "set" => query("SMEMBERS", &[], &mut connection),
                "zset" => query("ZRANGE", &["0", "-1", "WITHSCORES"], &mut connection),
                "stream" => query("XRANGE", &["-", "+"], &mut connection),
                "none" => redis::Value::Nil,
                other => panic!("unexpected Redis type {other} at {key}"),
            };
            let mut values = Vec::new();
            flatten(&value, &mut values);
            (key, values)
        })
        .collect()
}

fn flatten(value: &redis::Value, out: &mut Vec<Vec<u8>>) {
    match value {
        redis::Value::BulkString(bytes) => out.push(bytes.clone()),
        redis::Value::SimpleString(text) => out.push(text.clone().into_bytes()),
        redis::Value::Int(n) => out.push(n.to_string().into_bytes()),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            items.iter().for_each(|item| flatten(item, out));
        }
        redis::Value::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            flatten(k, out);
            flatten(v, out);
        }),
        _ => {}
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Waits until the fake platform got a reply for `chat`.
/// Waits (10 s at most) until no inbox entry is left in Redis: every
/// acknowledged event was finished with, none left pending.
async fn wait_for_an_empty_inbox(server: &RedisServer) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let backlog: u64 = dump(server)
            .iter()
            .filter(|(key, _)| key.starts_with("sb:v1:inbox:"))
            .map(|(_, entries)| entries.len() as u64)
            .sum();
        if backlog == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{backlog} inbox values left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_reply_to(app: &TestApp, chat: &str, at_least: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let texts: Vec<String> = app.fake.to_chat(chat).iter().map(sent_text).collect();
        if texts.len() >= at_least {
            return texts;
        }
        assert!(
            Instant::now() < deadline,
            "expected {at_least} replies to {chat}, got {texts:#?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_redis_url_in_the_environment_is_all_it_takes() {
    let server = RedisServer::start();
    let app = spawn_app_with(
        "",
        &[
            ("SWITCHBOARD__STORE__URL", server.url()),
            ("SWITCHBOARD__STORE__ENCRYPTION_KEYS", KEY),
        ],
    )
    .await;
    assert_eq!(app.admin_get("/readyz").await.status(), 200);
    let chat = 9101;
    let body = telegram_text(chat, "/order 10023");
    assert_eq!(
        app.post_telegram("tg", Some(TG_SECRET), &body)
            .await
            .status(),
        200
    );
    let replies = wait_for_reply_to(&app, "9101", 1).await;
    assert!(
        replies.iter().any(|t| t.contains("10023")),
        "the order was looked up: {replies:#?}"
    );
    // The same delivery again is a duplicate: Redis remembers it.
    assert_eq!(
        app.post_telegram("tg", Some(TG_SECRET), &body)
            .await
            .status(),
        200
    );
    let keys: Vec<String> = dump(&server).into_iter().map(|(k, _)| k).collect();
    assert!(
        keys.iter()
            .any(|k| k.starts_with("sb:v1:seen:telegram:tg:")),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .any(|k| k.starts_with("sb:v1:state:") && k.contains("9101")),
        "the conversation state lives in Redis: {keys:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.fake.to_chat("9101").len(),
        replies.len(),
        "the duplicate got no second answer"
    );
    app.stop().await;
}

#[tokio::test]
async fn conversation_state_survives_a_gateway_restart_on_the_same_redis() {
    let server = RedisServer::start();
    let section = store_section(&server);
    let first = spawn_app_with(&section, &[]).await;
    let chat = 9202;
    first
        .post_telegram("tg", Some(TG_SECRET), &telegram_text(chat, "/order 10023"))
        .await;
    wait_for_reply_to(&first, "9202", 1).await;
    first.stop().await;

    let keys_before: Vec<String> = dump(&server).into_iter().map(|(k, _)| k).collect();
    let second = spawn_app_with(&section, &[]).await;
    let state: serde_json::Value = second
        .admin_get("/admin/conversations/telegram:tg:9202")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        state.to_string().contains("10023"),
        "a new process reads the state the first one wrote: {state} (keys {keys_before:?})"
    );
    second.stop().await;
}

#[tokio::test]
async fn a_state_sealed_with_a_retired_key_is_recorded_and_leaves_no_entry_stuck() {
    let server = RedisServer::start();
    let first = spawn_app_with(&store_section(&server), &[]).await;
    first
        .post_telegram("tg", Some(TG_SECRET), &telegram_text(9404, "/order 10023"))
        .await;
    wait_for_reply_to(&first, "9404", 1).await;
    first.stop().await;

    // Only a new key: the state the first process sealed cannot be opened.
    let section = format!(
        "[store]\nurl = \"{}\"\ntimeout_ms = 500\nencryption_keys = \
         [\"k2:HxAbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgEAAAA=\"]\n",
        server.url()
    );
    let second = spawn_app_with(&section, &[]).await;
    let answer = second
        .post_telegram("tg", Some(TG_SECRET), &telegram_text(9404, "hello again"))
        .await;
    assert_eq!(answer.status(), 200);
    let letter = second
        .wait_for_dead_letter("processing_failed", Duration::from_secs(10))
        .await;
    assert_eq!(letter["conversation"], "telegram:tg:9404", "{letter}");
    // Another chat is answered, and no inbox entry is left pending.
    second
        .post_telegram("tg", Some(TG_SECRET), &telegram_text(9405, "/order 10023"))
        .await;
    wait_for_reply_to(&second, "9405", 1).await;
    wait_for_an_empty_inbox(&server).await;
    second.stop().await;
}

#[tokio::test]
async fn an_event_whose_done_mark_was_sealed_with_a_retired_key_counts_as_handled() {
    let server = RedisServer::start();
    let first = spawn_app_with(&store_section(&server), &[]).await;
    let update = telegram_text(9406, "/order 10023");
    first.post_telegram("tg", Some(TG_SECRET), &update).await;
    wait_for_reply_to(&first, "9406", 1).await;
    first.stop().await;

    // The same event comes again after the keys changed (say, replayed by
    // a replica that crashed before acknowledging it): its dedupe mark is
    // gone, and its done mark can no longer be opened.
    let mut connection = server.connection();
    let seen: Vec<String> = redis::cmd("KEYS")
        .arg("sb:v1:seen:*")
        .query(&mut connection)
        .unwrap();
    assert!(!seen.is_empty(), "the first delivery left a dedupe mark");
    for key in seen {
        let _: i64 = redis::cmd("DEL").arg(key).query(&mut connection).unwrap();
    }
    let section = format!(
        "[store]\nurl = \"{}\"\ntimeout_ms = 500\nencryption_keys = \
         [\"k2:HxAbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgEAAAA=\"]\n",
        server.url()
    );
    let second = spawn_app_with(&section, &[]).await;
    let answer = second.post_telegram("tg", Some(TG_SECRET), &update).await;
    assert_eq!(answer.status(), 200);
    // The mark's presence says it was handled: acknowledged, not answered
    // again, and not left pending (which would retry it for ever).
    wait_for_an_empty_inbox(&server).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(second.fake.to_chat("9406").len(), 0, "answered again");
    second.stop().await;
}

#[tokio::test]
async fn secrets_and_conversation_text_never_reach_redis_in_plain_text() {
    let server = RedisServer::start();
    let app = spawn_app_with(&store_section(&server), &[]).await;
    let said = [
        "Where is my order 10023 please zebra-marmalade",
        "my email is ada.lovelace@example.org",
    ];
    for text in said {
        app.post_telegram("tg", Some(TG_SECRET), &telegram_text(9303, text))
            .await;
        app.post_meta(
            "messenger",
            "ms",
            Some(MS_SECRET),
            &messenger_text("PAGE1", "PSID9303", text),
        )
        .await;
        app.post_meta(
            "whatsapp",
            "wa",
            Some(WA_SECRET),
            &whatsapp_text("15559303", text, 0),
        )
        .await;
    }
    wait_for_reply_to(&app, "9303", 2).await;
    wait_for_reply_to(&app, "PSID9303", 2).await;
    wait_for_reply_to(&app, "15559303", 2).await;
    // Start linking an account too: the one-time code record is sensitive.
    app.post_telegram(
        "tg",
        Some(TG_SECRET),
        &telegram_text(9303, "link my account"),
    )
    .await;
    wait_for_reply_to(&app, "9303", 3).await;
    app.post_telegram(
        "tg",
        Some(TG_SECRET),
        &telegram_text(9303, "jane@example.com"),
    )
    .await;
    wait_for_reply_to(&app, "9303", 4).await;
    let keys: Vec<String> = dump(&server).into_iter().map(|(k, _)| k).collect();
    assert!(
        keys.iter().any(|k| k.starts_with("sb:v1:otp:")),
        "a code record was stored: {keys:?}"
    );

    let dump = dump(&server);
    assert!(!dump.is_empty());
    let needles: Vec<&str> = ALL_SECRETS
        .iter()
        .copied()
        .chain([
            "zebra-marmalade",
            "ada.lovelace",
            "Where is my order",
            "jane@example.com",
        ])
        .collect();
    for (key, values) in &dump {
        for needle in &needles {
            assert!(!key.contains(needle), "{needle} in the key name {key}");
            for value in values {
                assert!(
                    !contains(value, needle),
                    "{needle} readable in Redis at {key}"
                );
            }
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn with_redis_down_webhooks_and_readyz_answer_503_and_both_recover_by_themselves() {
    let mut server = RedisServer::start();
    let app = spawn_app_with(&store_section(&server), &[]).await;
    assert_eq!(app.admin_get("/readyz").await.status(), 200);
    app.post_telegram("tg", Some(TG_SECRET), &telegram_text(9404, "hi"))
        .await;
    wait_for_reply_to(&app, "9404", 1).await;

    server.stop();
    let started = Instant::now();
    let during = telegram_text(9404, "/order 10024");
    let response = app.post_telegram("tg", Some(TG_SECRET), &during).await;
    assert_eq!(response.status(), 503, "the platform must retry");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered within the store timeout, took {:?}",
        started.elapsed()
    );
    let not_ready = app.admin_get("/readyz").await;
    assert_eq!(not_ready.status(), 503);
    assert_eq!(
        not_ready.headers()["content-type"],
        "text/plain; charset=utf-8",
        "a 503 says what it is"
    );

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.admin_get("/readyz").await.status() != 200 {
        assert!(Instant::now() < deadline, "/readyz did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The platform's retry of the refused delivery now goes through.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = app
            .post_telegram("tg", Some(TG_SECRET), &during)
            .await
            .status();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "webhooks did not recover: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let replies = wait_for_reply_to(&app, "9404", 2).await;
    assert!(
        replies.iter().any(|t| t.contains("10024")),
        "the retried message was answered: {replies:#?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_whole_pipeline_runs_on_a_three_master_redis_cluster() {
    let cluster = switchboard_testkit::RedisCluster::start(3);
    let url = cluster.url();
    let app = spawn_app_with(
        "",
        &[
            ("SWITCHBOARD__STORE__URL", url.as_str()),
            ("SWITCHBOARD__STORE__ENCRYPTION_KEYS", KEY),
        ],
    )
    .await;
    assert_eq!(app.admin_get("/readyz").await.status(), 200);
    // Several conversations, so the streams of several partitions (spread
    // over the masters by their hash tags) are used.
    let chats: Vec<i64> = (9301..9309).collect();
    for chat in &chats {
        let body = telegram_text(*chat, "/order 10023");
        assert_eq!(
            app.post_telegram("tg", Some(TG_SECRET), &body)
                .await
                .status(),
            200
        );
    }
    for chat in &chats {
        let replies = wait_for_reply_to(&app, &chat.to_string(), 1).await;
        assert!(replies.iter().any(|t| t.contains("10023")), "{replies:#?}");
    }
    app.stop().await;
}

/// A lane with an event waiting behind the one it handles reads that
/// event's done mark, state and inbound charge in the same round trip as
/// the commit before it (`switchboard_inbox_reads_ahead_total`), and the
/// read sees the commit: one conversation's messages, handled back to back
/// in a lane that never runs dry, each build on the state the one before
/// left, and every event is answered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_reads_its_next_event_behind_the_commit_before_it_and_sees_that_commit() {
    let server = RedisServer::start();
    // One lane: every event queued while another is handled waits in it.
    let section = format!("{}\n[pipeline]\nworkers = 1\n", store_section(&server));
    let app = spawn_app_with(
        &section,
        &[
            ("SWITCHBOARD__ABUSE__SENDER_BURST", "1000"),
            ("SWITCHBOARD__ABUSE__SENDER_MESSAGES_PER_MINUTE", "100000"),
            ("SWITCHBOARD__SENDER__CHAT_PER_SECOND", "1000"),
        ],
    )
    .await;
    let words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];
    let others: Vec<i64> = (0..60).map(|n| 9_500_000 + n).collect();
    // Sixty other customers ask at once, around the conversation under
    // test, so the lane always has something queued.
    let burst = |chats: &[i64]| {
        let mut posts = tokio::task::JoinSet::new();
        for chat in chats {
            let request = app
                .client
                .post(format!("{}/webhooks/telegram/tg", app.public))
                .header("Content-Type", "application/json")
                .header("X-Telegram-Bot-Api-Secret-Token", TG_SECRET)
                .body(telegram_text(*chat, "What are your opening hours?"));
            posts.spawn(async move { request.send().await.unwrap().status() });
        }
        posts
    };
    let (first, second) = others.split_at(30);
    let before = burst(first);
    for word in words {
        let body = telegram_text(9401, &format!("opening hours {word}"));
        let status = app
            .post_telegram("tg", Some(TG_SECRET), &body)
            .await
            .status();
        assert_eq!(status, 200);
    }
    let after = burst(second);
    for status in before
        .join_all()
        .await
        .into_iter()
        .chain(after.join_all().await)
    {
        assert_eq!(status, 200);
    }

    wait_for_reply_to(&app, "9401", words.len()).await;
    for chat in &others {
        wait_for_reply_to(&app, &chat.to_string(), 1).await;
    }
    wait_for_an_empty_inbox(&server).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.fake.to_chat("9401").len(),
        words.len(),
        "one answer each"
    );
    for chat in &others {
        assert_eq!(app.fake.to_chat(&chat.to_string()).len(), 1, "chat {chat}");
    }

    let state = app
        .admin_get("/admin/conversations/telegram:tg:9401")
        .await
        .text()
        .await
        .unwrap();
    let places: Vec<usize> = words
        .iter()
        .map(|word| {
            state
                .find(&format!("opening hours {word}"))
                .unwrap_or_else(|| panic!("{word} missing from the state: {state}"))
        })
        .collect();
    assert!(
        places.windows(2).all(|pair| pair[0] < pair[1]),
        "each message was added to the state the one before left: {state}"
    );

    let metrics = app.admin_get("/metrics").await.text().await.unwrap();
    let ahead: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("switchboard_inbox_reads_ahead_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(
        ahead > 0.0,
        "a backed-up lane reads ahead with its commits:\n{metrics}"
    );
    app.stop().await;
}

/// A webhook's intake script goes over a Redis connection of its HTTP
/// worker's own, opened on the first webhook, not over the connection the
/// lanes share (where it would queue behind their commits).
#[tokio::test]
async fn webhooks_reach_redis_over_their_http_workers_own_connection() {
    let server = RedisServer::start();
    assert!(server.is_private(), "counts this Redis's clients");
    let app = spawn_app_with(&store_section(&server), &[]).await;
    let mut admin = server.connection();
    let clients = |admin: &mut redis::Connection| -> Vec<String> {
        let list: String = redis::cmd("CLIENT").arg("LIST").query(admin).unwrap();
        list.lines().map(str::to_owned).collect()
    };
    // Let the replica settle (leases taken, readers blocked in XREAD).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = clients(&mut admin);
    let chat = 9501;
    let status = app
        .post_telegram("tg", Some(TG_SECRET), &telegram_text(chat, "/order 10023"))
        .await
        .status();
    assert_eq!(status, 200);
    wait_for_reply_to(&app, "9501", 1).await;
    let after = clients(&mut admin);
    let id = |line: &String| {
        line.split(' ')
            .find_map(|field| field.strip_prefix("id="))
            .unwrap_or_default()
            .to_owned()
    };
    let known: Vec<String> = before.iter().map(id).collect();
    let new: Vec<&String> = after.iter().filter(|c| !known.contains(&id(c))).collect();
    assert!(
        new.iter().any(|c| c.contains("cmd=evalsha")),
        "a new connection ran the intake script: {new:#?}\nbefore: {before:#?}"
    );
    app.stop().await;
}
