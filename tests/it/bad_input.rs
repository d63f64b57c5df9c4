//! Hostile and broken requests against the running server: each gets a
//! clear 4xx (or a closed connection), never a 5xx other than the
//! documented 503s, and afterwards the service still answers a normal
//! webhook end to end. Requests the HTTP client would refuse to send
//! (bad framing, CR/LF in headers, trickled bytes) go over a raw socket.
//!
//! Decisions these tests pin down (docs/SECURITY.md, "Bad input"):
//! - The content type decides nothing: a correctly signed body is taken
//!   whatever it says (Meta and Telegram send `application/json`, and the
//!   signature, not a header anyone can set, proves the origin); an
//!   unsigned one is 401 whatever it says.
//! - Bodies are never decompressed: `Content-Encoding: gzip` is not
//!   something Meta or Telegram send, so a gzip body is opaque bytes; a
//!   gzip bomb costs only its compressed size.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

fn socket(app: &TestApp) -> SocketAddr {
    app.public.trim_start_matches("http://").parse().unwrap()
}

/// What came back on a raw connection.
#[derive(Debug)]
struct Answer {
    /// `None` when nothing that looks like an HTTP answer came back.
    status: Option<u16>,
    /// The server closed the connection (rather than the wait running out).
    closed: bool,
    text: String,
}

/// Reads until the server closes the connection or `limit` passes.
async fn read_answer(stream: &mut TcpStream, limit: Duration) -> Answer {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    let closed = loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Err(_) => break false,
            Ok(Ok(n)) => bytes.extend_from_slice(&chunk[..n]),
        }
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    Answer {
        status,
        closed,
        text,
    }
}

/// Sends `request` as is on a new connection and reads the answer.
async fn send_raw(app: &TestApp, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(socket(app)).await.unwrap();
    // The server may refuse and close before reading everything.
    let _ = stream.write_all(request).await;
    read_answer(&mut stream, Duration::from_secs(10)).await
}

/// A POST to the Telegram test channel, framed by hand.
fn telegram_request(extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST /webhooks/telegram/tg HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nX-Telegram-Bot-Api-Secret-Token: {TG_SECRET}\r\n\
         {extra_headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// A refusal: one of `allowed`, or the connection closed without an answer.
fn assert_refused(answer: &Answer, allowed: &[u16], what: &str) {
    match answer.status {
        Some(status) => assert!(
            allowed.contains(&status),
            "{what}: expected one of {allowed:?} or a closed connection, got {}",
            answer.text
        ),
        None => assert!(
            answer.closed,
            "{what}: no answer, and the connection is still open"
        ),
    }
}

/// The proof that the service survived: health check, then a fresh
/// customer message answered through the fake platform.
/// A fresh client each time: a pooled keep-alive connection the server
/// closed while idle would fail for reasons that are not under test.
async fn assert_serves_normal_traffic(app: &TestApp) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let health = client
        .get(format!("{}/healthz", app.public))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let chat = fastrand::i64(1_000_000..2_000_000);
    let response = client
        .post(format!("{}/webhooks/telegram/tg", app.public))
        .header("X-Telegram-Bot-Api-Secret-Token", TG_SECRET)
        .body(telegram_text(chat, "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    wait_for_reply(app, &chat.to_string(), Duration::from_secs(10)).await;
}

async fn wait_for_reply(app: &TestApp, chat: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while app.fake.to_chat(chat).is_empty() {
        assert!(
            Instant::now() < deadline,
            "chat {chat} got no reply within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn unparseable_letters(app: &TestApp) -> usize {
    app.dead_letters()
        .await
        .iter()
        .filter(|l| l["reason"] == "unparseable_webhook")
        .count()
}

/// Waits until `n` unparseable-webhook dead letters are stored.
async fn wait_for_unparseable(app: &TestApp, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while unparseable_letters(app).await < n {
        assert!(
            Instant::now() < deadline,
            "expected {n} unparseable_webhook dead letters: {:#?}",
            app.dead_letters().await
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_400_and_nothing_is_stored() {
    let app = spawn_app().await;
    let body = telegram_text(31, "hi");
    let mut request = telegram_request("", &body);
    // Declared length kept, last 20 bytes never sent; the client then
    // closes its side so the server sees the end of the stream.
    request.truncate(request.len() - 20);
    let mut stream = TcpStream::connect(socket(&app)).await.unwrap();
    stream.write_all(&request).await.unwrap();
    stream.shutdown().await.unwrap();
    let answer = read_answer(&mut stream, Duration::from_secs(15)).await;
    assert_refused(&answer, &[400], "truncated body");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.fake.to_chat("31").is_empty());
    assert!(app.dead_letters().await.is_empty());
    assert_serves_normal_traffic(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn truncated_json_is_a_dead_letter_when_signed_and_401_when_not() {
    let app = spawn_app().await;
    let body = telegram_text(32, "hi");
    let cut = &body[..body.len() / 2];
    assert_eq!(app.post_telegram("tg", None, cut).await.status(), 401);
    assert_eq!(
        app.post_telegram("tg", Some(TG_SECRET), cut).await.status(),
        200
    );
    let body = whatsapp_text("15550000032", "hi", 0);
    let cut = &body[..body.len() - 1];
    assert_eq!(
        app.post_meta("whatsapp", "wa", Some(MS_SECRET), cut)
            .await
            .status(),
        401
    );
    assert_eq!(
        app.post_meta("whatsapp", "wa", Some(WA_SECRET), cut)
            .await
            .status(),
        200
    );
    wait_for_unparseable(&app, 2).await;
    assert!(app.fake.to_chat("32").is_empty());
    assert_serves_normal_traffic(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn content_type_decides_nothing_the_signature_decides() {
    let app = spawn_app().await;
    for (n, content_type) in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin1",
        "",
    ]
    .into_iter()
    .enumerate()
    {
        let chat = 33_000 + i64::try_from(n).unwrap();
        let body = telegram_text(chat, "hi");
        let unsigned = app
            .client
            .post(format!("{}/webhooks/telegram/tg", app.public))
            .header("Content-Type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(unsigned.status(), 401, "unsigned, {content_type:?}");
        let signed = app
            .client
            .post(format!("{}/webhooks/telegram/tg", app.public))
            .header("Content-Type", content_type)
            .header("X-Telegram-Bot-Api-Secret-Token", TG_SECRET)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(signed.status(), 200, "signed, {content_type:?}");
        wait_for_reply(&app, &chat.to_string(), Duration::from_secs(10)).await;
    }
    // Meta too: the signature over the bytes is the proof.
    let body = whatsapp_text("15550000033", "hi", 0);
    let response = app
        .client
        .post(format!("{}/webhooks/whatsapp/wa", app.public))
        .header("Content-Type", "text/html")
        .header(
            "X-Hub-Signature-256",
            switchboard_meta::sign(WA_SECRET, &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    wait_for_reply(&app, "15550000033", Duration::from_secs(10)).await;
    assert_serves_normal_traffic(&app).await;
    app.stop().await;
}

/// A gzip member that inflates to `1 + 258 * repeats` zero bytes: one
/// literal zero, then back-references of 258 bytes at distance 1, in
/// fixed-Huffman deflate (RFC 1951 §3.2.6). About 1000:1.
fn gzip_bomb(repeats: usize) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u32,
        used: u32,
    }
    impl Bits {
        fn put(&mut self, value: u32, count: u32) {
            for i in 0..count {
                self.acc |= ((value >> i) & 1) << self.used;
                self.used += 1;
                if self.used == 8 {
                    self.out.push(self.acc as u8);
                    self.acc = 0;
                    self.used = 0;
                }
            }
        }
        /// Huffman codes go most significant bit first.
        fn code(&mut self, code: u32, len: u32) {
            for i in (0..len).rev() {
                self.put((code >> i) & 1, 1);
            }
        }
    }
    let mut bits = Bits {
        out: Vec::new(),
        acc: 0,
        used: 0,
    };
    bits.put(1, 1); // last block
    bits.put(1, 2); // fixed Huffman codes
    bits.code(0x30, 8); // literal 0
    for _ in 0..repeats {
        bits.code(0xC0 + 5, 8); // length 258 (symbol 285)
        bits.code(0, 5); // distance 1
    }
    bits.code(0, 7); // end of block
    if bits.used > 0 {
        bits.out.push(bits.acc as u8);
    }
    let size = 1 + 258 * repeats;
    let mut crc_table = [0u32; 256];
    for (n, entry) in crc_table.iter_mut().enumerate() {
        let mut c = n as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *entry = c;
    }
    let mut crc = !0u32;
    for _ in 0..size {
        crc = crc_table[(crc & 0xff) as usize] ^ (crc >> 8);
    }
    let mut gzip = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    gzip.extend_from_slice(&bits.out);
    gzip.extend_from_slice(&(!crc).to_le_bytes());
    gzip.extend_from_slice(&(size as u32).to_le_bytes());
    gzip
}

#[tokio::test]
async fn gzip_bodies_are_never_inflated_signed_is_a_dead_letter_unsigned_is_401() {
    let app = spawn_app().await;
    // 10 MB of zeros in 65 KB: far over the 1 MB body limit if inflated.
    let bomb = gzip_bomb(40_000);
    assert!(bomb.len() < 100_000);
    let post = |signature: Option<String>| {
        let mut request = app
            .client
            .post(format!("{}/webhooks/whatsapp/wa", app.public))
            .header("Content-Type", "application/json")
            .header("Content-Encoding", "gzip")
            .body(bomb.clone());
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        request.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 401);
    assert_eq!(
        post(Some(switchboard_meta::sign("not-the-secret", &bomb)))
            .await
            .unwrap()
            .status(),
        401
    );
    // Signed over the compressed bytes: authentic, but not JSON.
    assert_eq!(
        post(Some(switchboard_meta::sign(WA_SECRET, &bomb)))
            .await
            .unwrap()
            .status(),
        200
    );
    wait_for_unparseable(&app, 1).await;
    // A real update, gzipped and signed over the JSON as Meta would sign
    // it, does not verify: the gateway hashes the bytes it received.
    let body = whatsapp_text("15550000034", "hi", 0);
    let response = app
        .client
        .post(format!("{}/webhooks/whatsapp/wa", app.public))
        .header("Content-Encoding", "gzip")
        .header(
            "X-Hub-Signature-256",
            switchboard_meta::sign(WA_SECRET, &body),
        )
        .body(gzip_bomb(10))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_serves_normal_traffic(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off_while_others_are_served() {
    let app = spawn_app().await;
    let started = Instant::now();
    let mut slow = TcpStream::connect(socket(&app)).await.unwrap();
    slow.write_all(b"POST /webhooks/telegram/tg HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        // One byte a second, never finishing the headers.
        for _ in 0..30 {
            if slow.write_all(b"a").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        read_answer(&mut slow, Duration::from_secs(2)).await
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Meanwhile everyone else is served promptly.
    let before = Instant::now();
    assert_serves_normal_traffic(&app).await;
    assert!(before.elapsed() < Duration::from_secs(3));
    let answer = trickle.await.unwrap();
    assert_refused(&answer, &[408], "trickled headers");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the slow client was held for {:?}",
        started.elapsed()
    );
    app.stop().await;
}

/// How the server dealt with a client that sends `head`, then `piece`
/// once a second for up to 30 s while reading whatever comes back.
#[derive(Debug)]
struct Trickle {
    status: Option<u16>,
    answered_after: Option<Duration>,
    closed_after: Option<Duration>,
}

async fn trickle(app: &TestApp, head: String, piece: &'static [u8]) -> Trickle {
    let stream = TcpStream::connect(socket(app)).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let sender = tokio::spawn(async move {
        for _ in 0..30 {
            if writer.write_all(piece).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut result = Trickle {
        status: None,
        answered_after: None,
        closed_after: None,
    };
    let mut seen = Vec::new();
    let mut chunk = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(32);
    loop {
        match tokio::time::timeout_at(deadline, reader.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                result.closed_after = Some(started.elapsed());
                break;
            }
            Ok(Ok(n)) => {
                seen.extend_from_slice(&chunk[..n]);
                if result.answered_after.is_none() {
                    result.answered_after = Some(started.elapsed());
                    result.status = String::from_utf8_lossy(&seen)
                        .strip_prefix("HTTP/1.1 ")
                        .and_then(|rest| rest.get(..3))
                        .and_then(|code| code.parse().ok());
                }
            }
            Err(_) => break,
        }
    }
    sender.abort();
    result
}

fn slow_body_head(framing: &str) -> String {
    format!(
        "POST /webhooks/telegram/tg HTTP/1.1\r\nHost: localhost\r\n\
         X-Telegram-Bot-Api-Secret-Token: {TG_SECRET}\r\n{framing}\r\n"
    )
}

#[tokio::test]
async fn a_client_trickling_its_body_gets_408_and_is_let_go_while_others_are_served() {
    let app = spawn_app().await;
    let slow = trickle(&app, slow_body_head("Content-Length: 1000\r\n"), b"{");
    let (slow, ()) = tokio::join!(slow, async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_serves_normal_traffic(&app).await;
    });
    assert_eq!(slow.status, Some(408), "{slow:?}");
    assert!(
        slow.answered_after.unwrap() < Duration::from_secs(12),
        "{slow:?}"
    );
    assert!(
        slow.closed_after
            .is_some_and(|t| t < Duration::from_secs(15)),
        "{slow:?}"
    );
    assert!(app.dead_letters().await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_client_trickling_a_chunked_body_gets_408_and_is_let_go() {
    let app = spawn_app().await;
    let slow = trickle(
        &app,
        slow_body_head("Transfer-Encoding: chunked\r\n"),
        b"1\r\n{\r\n",
    );
    let (slow, ()) = tokio::join!(slow, async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_serves_normal_traffic(&app).await;
    });
    assert_eq!(slow.status, Some(408), "{slow:?}");
    assert!(
        slow.answered_after.unwrap() < Duration::from_secs(12),
        "{slow:?}"
    );
    // actix keeps reading (and discarding) a chunked body its handler
    // dropped for as long as the client sends (actix-web #3936); the
    // webhook handler must keep the unread body alive until its answer is
    // out, so actix closes the connection instead.
    assert!(
        slow.closed_after
            .is_some_and(|t| t < Duration::from_secs(16)),
        "the connection was held after the 408 while the client kept sending: {slow:?}"
    );
    // The same for a chunked body to an unknown channel, refused unread.
    let head = slow_body_head("Transfer-Encoding: chunked\r\n")
        .replace("/webhooks/telegram/tg", "/webhooks/telegram/nope");
    let slow = trickle(&app, head, b"1\r\n{\r\n").await;
    assert_eq!(slow.status, Some(404), "{slow:?}");
    assert!(
        slow.closed_after
            .is_some_and(|t| t < Duration::from_secs(6)),
        "the connection was held after the 404 while the client kept sending: {slow:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_chunked_body_growing_past_the_limit_is_413() {
    let app = spawn_app_with("", &[("SWITCHBOARD__SERVER__MAX_BODY_BYTES", "4096")]).await;
    let mut request = format!(
        "POST /webhooks/telegram/tg HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         X-Telegram-Bot-Api-Secret-Token: {TG_SECRET}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..10 {
        request.extend_from_slice(b"400\r\n");
        request.extend_from_slice(&[b' '; 0x400]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let answer = send_raw(&app, &request).await;
    assert_eq!(answer.status, Some(413), "{}", answer.text);
    assert!(app.dead_letters().await.is_empty());
    assert_serves_normal_traffic(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn deeply_nested_json_is_a_dead_letter_not_a_crash() {
    let app = spawn_app().await;
    let nested = "[".repeat(100_000);
    assert_eq!(
        app.post_telegram("tg", None, nested.as_bytes())
            .await
            .status(),
        401
    );
    assert_eq!(
        app.post_telegram("tg", Some(TG_SECRET), nested.as_bytes())
            .await
            .status(),
        200
    );
    // Deep inside an otherwise valid update, and in a Meta body.
    let inner = format!(
        r#"{{"update_id":77,"message":{{"message_id":1,"date":1,"chat":{{"id":35,"type":"private"}},"text":"hi","x":{}{}}}}}"#,
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    assert_eq!(
        app.post_telegram("tg", Some(TG_SECRET), inner.as_bytes())
            .await
            .status(),
        200
    );
    let meta = format!(
        r#"{{"object":"page","entry":[{}]}}"#,
        "{\"a\":".repeat(50_000) + "1" + &"}".repeat(50_000)
    );
    assert_eq!(
        app.post_meta("messenger", "ms", Some(MS_SECRET), meta.as_bytes())
            .await
            .status(),
        200
    );
    wait_for_unparseable(&app, 3).await;
    assert!(app.fake.to_chat("35").is_empty());
    assert_serves_normal_traffic(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn huge_arrays_within_the_body_limit_are_handled() {
    let app = spawn_app().await;
    // 100 000 entities on one Telegram message (about 900 KB).
    let mut update: serde_json::Value = serde_json::from_slice(&telegram_text(36, "hi")).unwrap();
    update["message"]["entities"] = json!(vec![json!([0]); 100_000]);
    let body = serde_json::to_vec(&update).unwrap();
    assert!(body.len() < 1_048_576, "{}", body.len());
    assert_eq!(app.post_telegram("tg", None, &body).await.status(), 401);
    assert_eq!(
        app.post_telegram("tg", Some(TG_SECRET), &body)
            .await
            .status(),
        200
    );
    // 20 000 entries of a shape nobody models in one WhatsApp body.
    let entries = vec![json!({"id": "WABA1", "changes": []}); 20_000];
    let body = serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": entries
    }))
    .unwrap();
    let response = app
        .post_meta("whatsapp", "wa", Some(WA_SECRET), &body)
        .await;
    assert_eq!(response.status(), 200);
    // And a big array of numbers where a string belongs.
    let body = format!(
        r#"{{"update_id":{},"message":{{"message_id":1,"date":1,"chat":{{"id":37,"type":"private"}},"text":[{}]}}}}"#,
        fastrand::u32(..),
        vec!["1"; 200_000].join(",")
    );
    let response = app
        .post_telegram("tg", Some(TG_SECRET), body.as_bytes())
        .await;
    assert_eq!(response.status(), 200);
    assert_serves_normal_traffic(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn invalid_utf8_in_the_body_or_a_header_is_refused_cleanly() {
    let app = spawn_app().await;
    let mut body = telegram_text(38, "hi");
    let at = body.windows(4).position(|w| w == b"\"hi\"").unwrap();
    body[at + 1] = 0xff;
    body[at + 2] = 0xfe;
    assert_eq!(app.post_telegram("tg", None, &body).await.status(), 401);
    assert_eq!(
        app.post_telegram("tg", Some(TG_SECRET), &body)
            .await
            .status(),
        200
    );
    wait_for_unparseable(&app, 1).await;
    // The letter's id survives the admin API's masking (digits in it are
    // not a phone number), so an operator can refer to it.
    for letter in app.dead_letters().await {
        let id = letter["id"].as_str().unwrap();
        let parts: Vec<&str> = id.split('-').collect();
        assert!(
            parts.len() == 3
                && parts[0] == "dl"
                && parts[1].bytes().all(|b| b.is_ascii_digit())
                && parts[2].len() == 16,
            "{id}"
        );
    }
    // The secret token header with bytes that are not ASCII: not a token.
    let mut request =
        b"POST /webhooks/telegram/tg HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
X-Telegram-Bot-Api-Secret-Token: tg-secret-token\xff\xfe\r\n"
            .to_vec();
    let body = telegram_text(39, "hi");
    request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(&body);
    let answer = send_raw(&app, &request).await;
    assert_refused(&answer, &[400, 401], "non-ASCII secret header");
    // A path that percent-decodes to invalid UTF-8.
    let answer = send_raw(
        &app,
        &telegram_request("", &body).replace_path("/webhooks/telegram/%ff%fe"),
    )
    .await;
    assert_refused(&answer, &[400, 404], "invalid UTF-8 in the path");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.fake.to_chat("38").is_empty());
    assert!(app.fake.to_chat("39").is_empty());
    assert_serves_normal_traffic(&app).await;
    app.stop().await;
}

trait ReplacePath {
    fn replace_path(self, path: &str) -> Vec<u8>;
}

impl ReplacePath for Vec<u8> {
    fn replace_path(self, path: &str) -> Vec<u8> {
        let text = String::from_utf8(self).unwrap();
        text.replacen("/webhooks/telegram/tg", path, 1).into_bytes()
    }
}

#[tokio::test]
async fn duplicate_json_keys_are_not_a_way_around_anything() {
    let app = spawn_app().await;
    // Two update_ids and two chats: whatever the parser keeps, the body
    // was signed, is answered at most once, and never crashes anything.
    let update_id = fastrand::u32(1..u32::MAX / 2);
    let body = format!(
        r#"{{"update_id":{update_id},"message":{{"message_id":1,"date":{now},"chat":{{"id":40,"type":"private"}},"chat":{{"id":41,"type":"private"}},"from":{{"id":40,"is_bot":false,"first_name":"A"}},"text":"hi","text":"hours"}},"update_id":{other}}}"#,
        now = now_secs(),
        other = update_id + 1
    );
    assert_eq!(
        app.post_telegram("tg", None, body.as_bytes())
            .await
            .status(),
        401
    );
    for _ in 0..2 {
        assert_eq!(
            app.post_telegram("tg", Some(TG_SECRET), body.as_bytes())
                .await
                .status(),
            200
        );
    }
    assert_serves_normal_traffic(&app).await;
    // Either the update was refused as unparseable, or exactly one of the
    // two chats got one answer: a retry of the same bytes is a duplicate.
    let answered: Vec<_> = ["40", "41"]
        .iter()
        .filter(|chat| !app.fake.to_chat(chat).is_empty())
        .collect();
    let letters = unparseable_letters(&app).await;
    assert!(
        (letters == 1 && answered.is_empty()) || (letters == 0 && answered.len() == 1),
        "dead letters {letters}, answered {answered:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn numbers_out_of_range_are_refused_or_kept_never_wrapped() {
    let app = spawn_app().await;
    let now = now_secs();
    let bodies = [
        // update_id beyond any float.
        format!(
            r#"{{"update_id":1e400,"message":{{"message_id":1,"date":{now},"chat":{{"id":42,"type":"private"}},"text":"hi"}}}}"#
        ),
        // A chat id one past i64::MAX: must not wrap to a negative chat.
        format!(
            r#"{{"update_id":{},"message":{{"message_id":1,"date":{now},"chat":{{"id":9223372036854775808,"type":"private"}},"text":"hi"}}}}"#,
            fastrand::u32(..)
        ),
        format!(
            r#"{{"update_id":{},"message":{{"message_id":1,"date":{now},"chat":{{"id":-9223372036854775809,"type":"private"}},"text":"hi"}}}}"#,
            fastrand::u32(..)
        ),
        // A date no clock can hold.
        format!(
            r#"{{"update_id":{},"message":{{"message_id":1,"date":99999999999999999999999,"chat":{{"id":43,"type":"private"}},"text":"hi"}}}}"#,
            fastrand::u32(..)
        ),
    ];
    for body in &bodies {
        let response = app
            .post_telegram("tg", Some(TG_SECRET), body.as_bytes())
            .await;
        assert_eq!(response.status(), 200, "{body}");
    }
    // WhatsApp and Messenger timestamps out of range.
    let wa = whatsapp_text("15550000044", "hi", 0);
    let wa = String::from_utf8(wa).unwrap();
    let start = wa.find("\"timestamp\":\"").unwrap() + 13;
    let end = start + wa[start..].find('"').unwrap();
    let wa = format!("{}1e400{}", &wa[..start], &wa[end..]);
    assert_eq!(
        app.post_meta("whatsapp", "wa", Some(WA_SECRET), wa.as_bytes())
            .await
            .status(),
        200
    );
    let ms = String::from_utf8(messenger_text("PAGE1", "45", "hi")).unwrap();
    let ms = ms.replace(&format!("{}", now_secs() * 1000), "1e400");
    assert_eq!(
        app.post_meta("messenger", "ms", Some(MS_SECRET), ms.as_bytes())
            .await
            .status(),
        200
    );
    assert_serves_normal_traffic(&app).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for wrapped in ["-9223372036854775808", "9223372036854775807", "0"] {
        assert!(
            app.fake.to_chat(wrapped).is_empty(),
            "a reply went to chat {wrapped}"
        );
    }
    assert!(
        app.fake.to_chat("42").is_empty(),
        "update_id 1e400 was accepted"
    );
    app.stop().await;
}

#[tokio::test]
async fn header_injection_and_request_smuggling_attempts_are_refused() {
    let app = spawn_app().await;
    let body = telegram_text(46, "hi");
    let len = body.len();
    let attempts: Vec<(&str, Vec<u8>)> = vec![
        (
            "bare CR inside a header value",
            telegram_request("X-Note: a\rX-Admin: 1\r\n", &body),
        ),
        (
            "NUL inside a header value",
            telegram_request("X-Note: a\0b\r\n", &body),
        ),
        (
            "obsolete line folding",
            telegram_request("X-Note: a\r\n folded: yes\r\n", &body),
        ),
        (
            "space inside a header name",
            telegram_request("X Note: a\r\n", &body),
        ),
        (
            "two different Content-Lengths",
            telegram_request(&format!("Content-Length: {}\r\n", len + 5), &body),
        ),
        (
            "Content-Length and chunked together",
            telegram_request("Transfer-Encoding: chunked\r\n", &body),
        ),
        (
            "an unknown transfer coding",
            telegram_request("Transfer-Encoding: gzip, identity\r\n", &body),
        ),
        ("a space in the request target", {
            let mut r = telegram_request("", &body);
            let at = r.iter().position(|b| *b == b'/').unwrap();
            r.splice(at..at, b"/x y".iter().copied());
            r
        }),
    ];
    for (what, request) in attempts {
        let answer = send_raw(&app, &request).await;
        assert_refused(&answer, &[400, 404, 501], what);
        assert_ne!(
            answer.status,
            Some(200),
            "{what} was accepted: {}",
            answer.text
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.fake.to_chat("46").is_empty());
    assert_serves_normal_traffic(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn very_long_urls_and_headers_get_4xx() {
    let app = spawn_app().await;
    let body = telegram_text(47, "hi");
    let long_path = format!("/webhooks/telegram/{}", "a".repeat(100_000));
    let answer = send_raw(&app, &telegram_request("", &body).replace_path(&long_path)).await;
    assert_refused(&answer, &[400, 404, 414, 431], "100 KB URL");
    // Long but inside the head limit: just an unknown channel.
    let path = format!("/webhooks/telegram/{}", "a".repeat(4_000));
    let answer = send_raw(&app, &telegram_request("", &body).replace_path(&path)).await;
    assert_eq!(answer.status, Some(404), "{}", answer.text);
    // actix takes heads up to its read buffer and refuses bigger ones.
    let answer = send_raw(
        &app,
        &telegram_request(&format!("X-Long: {}\r\n", "b".repeat(1_000_000)), &body),
    )
    .await;
    assert_refused(&answer, &[400, 431], "1 MB header");
    let many: String = (0..500).map(|n| format!("X-H{n}: v\r\n")).collect();
    let answer = send_raw(&app, &telegram_request(&many, &body)).await;
    assert_refused(&answer, &[400, 431], "500 headers");
    // The same request without the padding is taken: the refusals above
    // were for the size alone.
    let answer = send_raw(&app, &telegram_request("", &body)).await;
    assert_eq!(answer.status, Some(200), "{}", answer.text);
    // A 20 KB secret token is no token.
    let huge_secret = format!(
        "X-Telegram-Bot-Api-Secret-Token: {}\r\n",
        "c".repeat(20_000)
    );
    let mut request = format!(
        "POST /webhooks/telegram/tg HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{huge_secret}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let answer = send_raw(&app, &request).await;
    assert_refused(&answer, &[400, 401, 431], "20 KB secret token");
    assert_serves_normal_traffic(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn garbage_and_wrong_methods_get_4xx() {
    let app = spawn_app().await;
    for request in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage-tls-hello\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"POST /webhooks/telegram/tg HTTP/9.9\r\nHost: x\r\n\r\n",
        b"BREW /webhooks/telegram/tg HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"PUT /webhooks/telegram/tg HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        b"DELETE /webhooks/telegram/tg HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"POST /webhooks/telegram/../../admin/channels HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        b"POST /webhooks/telegram/tg/extra HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        b"POST /webhooks/telegram/%2e%2e HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        b"POST http://evil.example/webhooks/telegram/tg HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
    ] {
        let answer = send_raw(&app, request).await;
        assert_refused(
            &answer,
            &[400, 401, 404, 405, 505],
            &String::from_utf8_lossy(request),
        );
    }
    assert_serves_normal_traffic(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn many_concurrent_webhooks_are_all_acknowledged_and_answered() {
    let app = spawn_app().await;
    let chats: Vec<i64> = (0..300).map(|n| 48_000 + n).collect();
    let mut sends = tokio::task::JoinSet::new();
    for chat in chats.clone() {
        let client = app.client.clone();
        let url = format!("{}/webhooks/telegram/tg", app.public);
        sends.spawn(async move {
            let response = client
                .post(url)
                .header("X-Telegram-Bot-Api-Secret-Token", TG_SECRET)
                .body(telegram_text(chat, "hi"))
                .send()
                .await
                .unwrap();
            (
                chat,
                response.status().as_u16(),
                response.headers().contains_key("retry-after"),
            )
        });
    }
    let mut acknowledged = Vec::new();
    while let Some(result) = sends.join_next().await {
        let (chat, status, retry_after) = result.unwrap();
        match status {
            200 => acknowledged.push(chat),
            503 => assert!(retry_after, "503 without Retry-After"),
            other => panic!("chat {chat}: {other}"),
        }
    }
    assert!(
        acknowledged.len() >= 250,
        "only {} acknowledged",
        acknowledged.len()
    );
    // Nothing acknowledged is lost.
    for chat in acknowledged {
        wait_for_reply(&app, &chat.to_string(), Duration::from_secs(20)).await;
    }
    assert_serves_normal_traffic(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn hundreds_of_idle_or_half_open_connections_do_not_block_normal_traffic() {
    let app = spawn_app().await;
    let mut idle = Vec::new();
    for n in 0..400 {
        let mut stream = TcpStream::connect(socket(&app)).await.unwrap();
        if n % 2 == 0 {
            stream
                .write_all(b"POST /webhooks/telegram/tg HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        }
        idle.push(stream);
    }
    let before = Instant::now();
    assert_serves_normal_traffic(&app).await;
    assert!(
        before.elapsed() < Duration::from_secs(5),
        "{:?}",
        before.elapsed()
    );
    // The server lets go of them: each is answered 408 or closed in time.
    let deadline = Duration::from_secs(15);
    let mut closes = tokio::task::JoinSet::new();
    for mut stream in idle {
        closes.spawn(async move { read_answer(&mut stream, deadline).await });
    }
    let started = Instant::now();
    while let Some(answer) = closes.join_next().await {
        assert_refused(&answer.unwrap(), &[408], "idle connection");
    }
    assert!(
        started.elapsed() < deadline,
        "idle connections held for {:?}",
        started.elapsed()
    );
    assert_serves_normal_traffic(&app).await;
    app.stop().await;
}
