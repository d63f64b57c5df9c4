//! Three gateway processes on one Redis, as in production: a webhook
//! delivered to two replicas is handled once; one conversation spread over
//! replicas is answered in order; a replica killed with SIGKILL under load
//! and a Redis restart lose no acknowledged event, and none is answered
//! twice, checked against the fake platform API's log.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_testkit::RedisServer;
use switchboard_testkit::fake::{FakePlatform, Recorded, spawn_fake_platform};

const SECRET: &str = "replica-test-secret";
const KEY: &str = "k1:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Replica {
    child: Child,
    public: String,
    log: PathBuf,
}

impl Replica {
    fn spawn(config: &std::path::Path, dir: &std::path::Path, name: &str) -> Replica {
        let (public, admin) = (free_port(), free_port());
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["serve", "--config", config.to_str().unwrap()])
            .env("SWITCHBOARD__SERVER__BIND", format!("127.0.0.1:{public}"))
            .env(
                "SWITCHBOARD__SERVER__ADMIN_BIND",
                format!("127.0.0.1:{admin}"),
            )
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Replica {
            child,
            public: format!("http://127.0.0.1:{public}"),
            log,
        }
    }

    async fn wait_healthy(&mut self, client: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(response) = client.get(format!("{}/healthz", self.public)).send().await
                && response.status() == 200
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "replica exited with {status}:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "replica did not start:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill9(&mut self) {
        // std's kill is SIGKILL on Unix: no shutdown, no cleanup.
        self.child.kill().unwrap();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Cluster {
    replicas: Vec<Replica>,
    fake: FakePlatform,
    client: reqwest::Client,
    _dir: Dir,
}

/// A failed test shows what the replicas logged (at `warn`), which is
/// the only trace of why an event went missing.
impl Drop for Cluster {
    #[allow(clippy::print_stderr)]
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for (n, replica) in self.replicas.iter().enumerate() {
            let log = std::fs::read_to_string(&replica.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(200)..];
            eprintln!("---- replica-{n} log (last {} lines) ----", tail.len());
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start_cluster(redis: &RedisServer, count: usize) -> Cluster {
    let fake = spawn_fake_platform().await;
    let dir = std::env::temp_dir().join(format!(
        "switchboard-replicas-{}-{}",
        std::process::id(),
        fastrand_u64()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("switchboard.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
admin_token = "replica-admin-token"
shutdown_grace_secs = 5

[store]
url = "{url}"
timeout_ms = 1000
encryption_keys = ["{KEY}"]

[pipeline]
partitions = 8

[sender]
timeout_ms = 2000
max_attempts = 8

[platforms.telegram]
api_base = "{fake}/telegram"

[[channels]]
id = "tg"
platform = "telegram"
bot_token = "222:REPLICA-TOKEN"
secret_token = "{SECRET}"
"#,
            url = redis.url(),
            fake = fake.base
        ),
    )
    .unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut replicas = Vec::new();
    for n in 0..count {
        replicas.push(Replica::spawn(&config, &dir, &format!("replica-{n}")));
    }
    for replica in &mut replicas {
        replica.wait_healthy(&client).await;
    }
    Cluster {
        replicas,
        fake,
        client,
        _dir: Dir(dir),
    }
}

fn fastrand_u64() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn update(update_id: i64, chat: i64, text: &str) -> Vec<u8> {
    let mut message = json!({
        "message_id": update_id,
        "from": {"id": chat, "is_bot": false, "first_name": "Ada"},
        "chat": {"id": chat, "type": "private", "first_name": "Ada"},
        "date": 1_700_000_000,
        "text": text,
    });
    if text.starts_with('/') {
        let len = text.split_whitespace().next().unwrap().len();
        message["entities"] = json!([{"type": "bot_command", "offset": 0, "length": len}]);
    }
    serde_json::to_vec(&json!({"update_id": update_id, "message": message})).unwrap()
}

impl Cluster {
    async fn post(&self, replica: usize, body: &[u8]) -> Option<u16> {
        let response = self
            .client
            .post(format!(
                "{}/webhooks/telegram/tg",
                self.replicas[replica].public
            ))
            .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
            .header("Content-Type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .ok()?;
        Some(response.status().as_u16())
    }

    /// Posts like a platform does: retries until it gets a 200.
    async fn deliver(&self, replicas: &[usize], body: &[u8]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut attempt = 0;
        loop {
            let replica = replicas[attempt % replicas.len()];
            if self.post(replica, body).await == Some(200) {
                return;
            }
            attempt += 1;
            assert!(Instant::now() < deadline, "webhook never acknowledged");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn delivered_to(&self, chat: i64) -> Vec<Recorded> {
        self.fake
            .delivered()
            .into_iter()
            .filter(|r| r.body.get("chat_id") == Some(&json!(chat)))
            .collect()
    }

    /// Waits until every chat got `expected` delivered messages, then makes
    /// sure none gets more.
    async fn expect_each_answered(&self, chats: &[i64], expected: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let delivered = self.fake.delivered();
            let mut counts: HashMap<i64, usize> = HashMap::new();
            for request in &delivered {
                if let Some(chat) = request.body.get("chat_id").and_then(Value::as_i64) {
                    *counts.entry(chat).or_default() += 1;
                }
            }
            let missing: Vec<i64> = chats
                .iter()
                .copied()
                .filter(|c| counts.get(c).copied().unwrap_or(0) < expected)
                .collect();
            let doubled: Vec<(i64, usize)> = chats
                .iter()
                .filter_map(|c| counts.get(c).filter(|n| **n > expected).map(|n| (*c, *n)))
                .collect();
            assert!(doubled.is_empty(), "answered more than once: {doubled:?}");
            if missing.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {} acknowledged events never answered, e.g. {:?}",
                missing.len(),
                chats.len(),
                &missing[..missing.len().min(10)]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Late duplicates (a second replica handling the same entry) would
        // show up shortly after.
        tokio::time::sleep(Duration::from_secs(2)).await;
        for chat in chats {
            let n = self.delivered_to(*chat).len();
            assert_eq!(
                n, expected,
                "chat {chat} got {n} messages, expected {expected}"
            );
        }
    }

    /// How many messages one "/order N" gets, measured on a control chat.
    async fn messages_per_order_question(&self) -> usize {
        let chat = 9_000_000;
        self.deliver(&[0], &update(9_000_000, chat, "/order 55555"))
            .await;
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.delivered_to(chat).is_empty() {
            assert!(
                Instant::now() < deadline,
                "the control chat was never answered"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.delivered_to(chat).len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_webhook_delivered_to_two_replicas_is_handled_once() {
    let redis = RedisServer::start();
    let cluster = start_cluster(&redis, 3).await;
    let expected = cluster.messages_per_order_question().await;
    let chats: Vec<i64> = (1..=20).collect();
    for chat in &chats {
        let body = update(1000 + chat, *chat, "/order 12345");
        assert_eq!(cluster.post(0, &body).await, Some(200));
        assert_eq!(cluster.post(1, &body).await, Some(200));
        assert_eq!(cluster.post(2, &body).await, Some(200));
    }
    cluster
        .expect_each_answered(&chats, expected, Duration::from_secs(20))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_conversation_spread_over_replicas_is_answered_in_order() {
    let redis = RedisServer::start();
    let cluster = start_cluster(&redis, 3).await;
    let chat = 4242;
    let orders: Vec<String> = (0..9).map(|n| format!("7000{n}")).collect();
    for (n, order) in orders.iter().enumerate() {
        let body = update(2000 + n as i64, chat, &format!("/order {order}"));
        assert_eq!(cluster.post(n % 3, &body).await, Some(200));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let texts: Vec<String> = cluster
            .delivered_to(chat)
            .iter()
            .filter_map(|r| {
                r.body
                    .get("text")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect();
        let mut seen: Vec<&str> = Vec::new();
        for text in &texts {
            if let Some(order) = orders.iter().find(|o| text.contains(o.as_str()))
                && !seen.contains(&order.as_str())
            {
                seen.push(order);
            }
        }
        if seen.len() == orders.len() {
            let expected: Vec<&str> = orders.iter().map(String::as_str).collect();
            assert_eq!(seen, expected, "answered out of order");
            break;
        }
        assert!(Instant::now() < deadline, "not all answered: {texts:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_loses_no_acknowledged_event() {
    let redis = RedisServer::start();
    let mut cluster = start_cluster(&redis, 3).await;
    let expected = cluster.messages_per_order_question().await;
    let total = 150i64;
    let chats: Vec<i64> = (100_000..100_000 + total).collect();
    for (n, chat) in chats.iter().enumerate() {
        let n = n as i64;
        if n == total / 2 {
            // Kill one replica while it holds partitions with work in them.
            // The platform API is made to fail around the kill, so no send is
            // half-way (delivered by the platform but not yet recorded as
            // delivered) at the instant of the kill: that window, where no
            // platform offers an idempotency key, is the one duplicate a
            // crash can still cause (docs/ARCHITECTURE.md).
            cluster.fake.set_outage(true);
            tokio::time::sleep(Duration::from_millis(300)).await;
            cluster.replicas[1].kill9();
            cluster.fake.set_outage(false);
        }
        let targets: &[usize] = if n >= total / 2 { &[0, 2] } else { &[0, 1, 2] };
        let body = update(300_000 + n, *chat, "/order 12345");
        cluster
            .deliver(&[targets[(n as usize) % targets.len()]], &body)
            .await;
    }
    // The dead replica's leases expire (5 s) and its pending entries are
    // claimed and handled by the others.
    cluster
        .expect_each_answered(&chats, expected, Duration::from_secs(60))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_mid_run_loses_no_acknowledged_event() {
    // Durability across a Redis restart needs Redis persistence; production
    // runs with AOF (docs/REDIS.md), and so does this test.
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let cluster = start_cluster(&redis, 2).await;
    let expected = cluster.messages_per_order_question().await;
    let total = 60i64;
    let chats: Vec<i64> = (200_000..200_000 + total).collect();
    for (n, chat) in chats.iter().enumerate() {
        let n = n as i64;
        if n == total / 2 {
            redis.stop();
            // Webhooks during the outage get 503; `deliver` retries like a
            // platform would, after Redis is back.
            let restart = tokio::task::spawn_blocking(move || {
                std::thread::sleep(Duration::from_millis(1500));
                redis.restart();
                redis
            });
            let body = update(400_000 + n, *chat, "/order 12345");
            cluster.deliver(&[0, 1], &body).await;
            redis = restart.await.unwrap();
            continue;
        }
        let body = update(400_000 + n, *chat, "/order 12345");
        cluster.deliver(&[(n as usize) % 2], &body).await;
    }
    cluster
        .expect_each_answered(&chats, expected, Duration::from_secs(60))
        .await;
    drop(redis);
}
