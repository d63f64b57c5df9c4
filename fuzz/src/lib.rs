//! What the fuzz targets share: one adapter per platform with known secrets,
//! the split of a fuzz input into request headers and body, and the checks
//! that every parsed event and rendered request must pass.
//!
//! A crash is a panic (index, overflow with debug assertions, `expect`) or
//! one of the assertions here failing; the assertions state properties the
//! gateway relies on, so a finding is a bug even when nothing panicked.
//! This crate must not be a dependency of anything: it exists for
//! `cargo fuzz` only, and `arbitrary` stays out of the production crates by
//! mirroring the outbound model here ([`FuzzOutbound`]).

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use arbitrary::Arbitrary;
use serde_json::Value;
use switchboard_messenger::{MessengerAdapter, MessengerChannel};
use switchboard_model::{
    ChannelId, ChatId, ChoiceOption, ChoiceStyle, ConversationKey, HandshakeQuery, Headers,
    InboundEvent, OutboundBody, OutboundMediaKind, OutboundMessage, Platform, PlatformAdapter,
    RawWebhook, SecretString,
};
use switchboard_telegram::{TelegramAdapter, TelegramChannel};
use switchboard_whatsapp::{WhatsAppAdapter, WhatsAppChannel};

pub const META_APP_SECRET: &str = "fuzz-meta-app-secret";
pub const META_OTHER_SECRET: &str = "fuzz-some-other-secret";
pub const META_VERIFY_TOKEN: &str = "fuzz-verify-token";
pub const PAGE_TOKEN: &str = "fuzz-page-access-token";
pub const WA_ACCESS_TOKEN: &str = "fuzz-wa-access-token";
pub const WA_PHONE_NUMBER_ID: &str = "106540352242922";
pub const TG_BOT_TOKEN: &str = "123456:FUZZ-bot-token";
pub const TG_SECRET_TOKEN: &str = "fuzz-telegram-secret-token";

/// Values that must never show up in a rendered request or a Debug string.
pub const SECRETS: &[&str] = &[
    META_APP_SECRET,
    META_VERIFY_TOKEN,
    PAGE_TOKEN,
    WA_ACCESS_TOKEN,
    TG_BOT_TOKEN,
    TG_SECRET_TOKEN,
];

fn channel_id(id: &str) -> ChannelId {
    ChannelId::new(id).expect("a valid channel id")
}

pub fn messenger() -> MessengerAdapter {
    MessengerAdapter::new(MessengerChannel {
        id: channel_id("fuzz-messenger"),
        app_secrets: vec![SecretString::from(META_APP_SECRET)],
        verify_tokens: vec![SecretString::from(META_VERIFY_TOKEN)],
        page_access_token: SecretString::from(PAGE_TOKEN),
        page_id: Some("100000000000001".to_owned()),
    })
}

pub fn whatsapp() -> WhatsAppAdapter {
    WhatsAppAdapter::new(WhatsAppChannel {
        id: channel_id("fuzz-whatsapp"),
        app_secrets: vec![SecretString::from(META_APP_SECRET)],
        verify_tokens: vec![SecretString::from(META_VERIFY_TOKEN)],
        access_token: SecretString::from(WA_ACCESS_TOKEN),
        phone_number_id: WA_PHONE_NUMBER_ID.to_owned(),
    })
}

pub fn telegram() -> TelegramAdapter {
    TelegramAdapter::new(TelegramChannel {
        id: channel_id("fuzz-telegram"),
        bot_token: SecretString::from(TG_BOT_TOKEN),
        secret_tokens: vec![SecretString::from(TG_SECRET_TOKEN)],
    })
}

/// How the request carrying the body proves itself, chosen by the first
/// byte of the fuzz input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Signed with the channel's secret (or its secret token): verify must
    /// accept it, so every such input reaches `parse`.
    Correct,
    /// No authentication header at all: verify must refuse.
    Missing,
    /// The header holds whatever the fuzzer chose. Verify may accept only
    /// if the fuzzer found the secret, so no verdict is asserted.
    Arbitrary(String),
    /// Signed, but with another secret: verify must refuse.
    WrongSecret,
}

/// A fuzz input as a webhook request: byte 0 picks [`Auth`]; for
/// `Arbitrary`, byte 1 is the header's length and the header follows; the
/// rest is the body. Seed files are `\x00` + a fixture: a correctly signed
/// real payload.
#[derive(Debug)]
pub struct WebhookInput<'a> {
    pub auth: Auth,
    pub body: &'a [u8],
    /// A status code for the `classify` pass over the same bytes.
    pub status: u16,
}

impl<'a> WebhookInput<'a> {
    pub fn split(data: &'a [u8]) -> Option<Self> {
        let (&first, rest) = data.split_first()?;
        let status = [200, 400, 401, 403, 404, 429, 500, 503][usize::from(first >> 5)];
        let (auth, body) = match first % 4 {
            0 => (Auth::Correct, rest),
            1 => (Auth::Missing, rest),
            2 => {
                let (&len, rest) = rest.split_first()?;
                let len = usize::from(len).min(rest.len());
                let (header, body) = rest.split_at(len);
                (
                    Auth::Arbitrary(String::from_utf8_lossy(header).into_owned()),
                    body,
                )
            }
            _ => (Auth::WrongSecret, rest),
        };
        Some(Self { auth, body, status })
    }
}

/// The header a platform authenticates with, and how to make its value.
pub struct Scheme {
    pub header: &'static str,
    pub correct: fn(&[u8]) -> String,
    pub wrong: fn(&[u8]) -> String,
}

pub const META_SCHEME: Scheme = Scheme {
    header: switchboard_meta::SIGNATURE_HEADER,
    correct: |body| switchboard_meta::sign(META_APP_SECRET, body),
    wrong: |body| switchboard_meta::sign(META_OTHER_SECRET, body),
};

pub const TELEGRAM_SCHEME: Scheme = Scheme {
    header: switchboard_telegram::SECRET_TOKEN_HEADER,
    correct: |_| TG_SECRET_TOKEN.to_owned(),
    wrong: |_| "fuzz-not-the-secret-token".to_owned(),
};

/// One webhook through verify, parse and the checks on its events, then
/// the same bytes through `classify` as if they were the platform's answer
/// to a send.
pub fn webhook(adapter: &dyn PlatformAdapter, scheme: &Scheme, data: &[u8]) {
    let Some(input) = WebhookInput::split(data) else {
        return;
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    match &input.auth {
        Auth::Correct => headers.push((scheme.header.to_owned(), (scheme.correct)(input.body))),
        Auth::Missing => {}
        Auth::Arbitrary(value) => headers.push((scheme.header.to_owned(), value.clone())),
        Auth::WrongSecret => headers.push((scheme.header.to_owned(), (scheme.wrong)(input.body))),
    }
    // A content type never decides anything; send one to show it.
    headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
    // Errors may quote the body (serde does); a secret the fuzzer wrote
    // into the request is not a leak.
    let written = vec![
        String::from_utf8_lossy(input.body).into_owned(),
        format!("{:?}", input.auth),
    ];
    let assert_no_secret = |text: &str, what: &str| assert_no_secret(&written, text, what);
    let raw = RawWebhook::new(&headers as &dyn Headers, input.body);
    let verdict = adapter.verify(raw);
    match (&input.auth, &verdict) {
        (Auth::Correct, Err(error)) => {
            panic!("a correctly authenticated body was refused: {error}")
        }
        (Auth::Missing | Auth::WrongSecret, Ok(_)) => {
            panic!("{:?} was accepted", input.auth)
        }
        _ => {}
    }
    if let Err(error) = &verdict {
        assert_no_secret(&error.to_string(), "a verify error");
        assert_no_secret(&format!("{error:?}"), "a verify error's Debug");
    }
    if let Ok(verified) = verdict {
        match adapter.parse(&verified) {
            Ok(events) => {
                for event in &events {
                    check_event(adapter, event);
                }
            }
            Err(error) => assert_no_secret(&error.to_string(), "a parse error"),
        }
    }
    let retry_after = std::str::from_utf8(input.body)
        .ok()
        .and_then(|text| text.lines().next());
    let outcome = adapter.classify(input.status, retry_after, input.body);
    assert_no_secret(&format!("{outcome:?}"), "a send outcome");
}

/// The gateway's assumptions about a parsed event: it belongs to the
/// channel that verified it, and it survives the JSON round trip through
/// the Redis inbox unchanged (an event that cannot be read back after a
/// 200 would be acknowledged and lost).
pub fn check_event(adapter: &dyn PlatformAdapter, event: &InboundEvent) {
    assert_eq!(event.platform, adapter.platform());
    assert_eq!(&event.channel, adapter.channel());
    assert_eq!(event.conversation.platform, adapter.platform());
    assert_eq!(&event.conversation.channel, adapter.channel());
    assert!(!event.event_id.as_str().is_empty(), "empty event id");
    if event.platform == Platform::Telegram {
        assert!(
            matches!(event.conversation.chat, ChatId::Int(_)),
            "a Telegram chat id that is not an integer: {:?}",
            event.conversation.chat
        );
    }
    // The conversation key's string form is what admin URLs and stores use.
    let key = event.conversation.to_string();
    assert_eq!(
        ConversationKey::parse(&key).as_ref(),
        Some(&event.conversation),
        "conversation key {key:?} does not parse back"
    );
    let json = serde_json::to_vec(event).expect("an event serialises");
    let back: InboundEvent = serde_json::from_slice(&json).unwrap_or_else(|error| {
        panic!(
            "an event does not deserialise from its own JSON ({error}): {}",
            String::from_utf8_lossy(&json)
        )
    });
    let (before, after) = (
        serde_json::to_value(event).expect("serialises"),
        serde_json::to_value(&back).expect("serialises"),
    );
    assert!(
        same_json(&before, &after),
        "an event changed in the JSON round trip:\n{before}\n{after}"
    );
}

/// JSON equality, except that floats may differ in the last bit: serde_json
/// parses them fast rather than exactly (no `float_roundtrip`), which can
/// move an unmodelled float kept in `Unsupported { raw }` by one ulp.
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || ((x - y) / x).abs() < 1e-15,
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, x)| y.get(key).is_some_and(|y| same_json(x, y)))
        }
        _ => a == b,
    }
}

/// Panics when `text` shows a configured secret that the input (`written`)
/// did not carry itself.
pub fn assert_no_secret(written: &[String], text: &str, what: &str) {
    for secret in SECRETS {
        assert!(
            mentions(written, secret) || !text.contains(secret),
            "{what} shows a secret: {text}"
        );
    }
}

// ---------------------------------------------------------------------------
// Outbound messages: a mirror of the model with `Arbitrary`, so the derive
// stays out of the production crates.

#[derive(Arbitrary, Debug)]
pub struct FuzzOutbound {
    pub chat: FuzzChat,
    pub body: FuzzBody,
    pub thread_id: Option<i64>,
    pub message_tag: Option<String>,
}

#[derive(Arbitrary, Debug)]
pub enum FuzzChat {
    Int(i64),
    Str(String),
}

#[derive(Arbitrary, Debug)]
pub enum FuzzBody {
    Text {
        text: String,
    },
    Choice {
        text: String,
        options: Vec<FuzzOption>,
        style: FuzzStyle,
    },
    Media {
        image: bool,
        url: String,
        caption: Option<String>,
    },
    LocationRequest {
        text: String,
    },
    Typing,
    MarkRead {
        message_id: String,
    },
    AnswerCallback {
        callback_id: String,
        text: Option<String>,
    },
    Template {
        name: String,
        language: String,
        parameters: Vec<String>,
    },
}

#[derive(Arbitrary, Debug)]
pub struct FuzzOption {
    pub title: String,
    pub payload: String,
    pub description: Option<String>,
}

#[derive(Arbitrary, Debug)]
pub enum FuzzStyle {
    QuickReplies,
    Buttons,
    List { button: String },
}

impl FuzzOutbound {
    /// The model message for `adapter`'s platform and channel.
    pub fn to_model(&self, adapter: &dyn PlatformAdapter) -> OutboundMessage {
        let chat = match &self.chat {
            FuzzChat::Int(id) => ChatId::Int(*id),
            FuzzChat::Str(id) => ChatId::Str(id.clone()),
        };
        let body = match &self.body {
            FuzzBody::Text { text } => OutboundBody::Text { text: text.clone() },
            FuzzBody::Choice {
                text,
                options,
                style,
            } => OutboundBody::Choice {
                text: text.clone(),
                options: options
                    .iter()
                    .map(|o| ChoiceOption {
                        title: o.title.clone(),
                        payload: o.payload.clone(),
                        description: o.description.clone(),
                    })
                    .collect(),
                style: match style {
                    FuzzStyle::QuickReplies => ChoiceStyle::QuickReplies,
                    FuzzStyle::Buttons => ChoiceStyle::Buttons,
                    FuzzStyle::List { button } => ChoiceStyle::List {
                        button: button.clone(),
                    },
                },
            },
            FuzzBody::Media {
                image,
                url,
                caption,
            } => OutboundBody::Media {
                kind: if *image {
                    OutboundMediaKind::Image
                } else {
                    OutboundMediaKind::File
                },
                url: url.clone(),
                caption: caption.clone(),
            },
            FuzzBody::LocationRequest { text } => {
                OutboundBody::LocationRequest { text: text.clone() }
            }
            FuzzBody::Typing => OutboundBody::Typing,
            FuzzBody::MarkRead { message_id } => OutboundBody::MarkRead {
                message_id: message_id.clone(),
            },
            FuzzBody::AnswerCallback { callback_id, text } => OutboundBody::AnswerCallback {
                callback_id: callback_id.clone(),
                text: text.clone(),
            },
            FuzzBody::Template {
                name,
                language,
                parameters,
            } => OutboundBody::Template {
                name: name.clone(),
                language: language.clone(),
                parameters: parameters.clone(),
            },
        };
        OutboundMessage {
            conversation: ConversationKey::new(adapter.platform(), adapter.channel().clone(), chat),
            body,
            thread_id: self.thread_id,
            message_tag: self.message_tag.clone(),
        }
    }
}

/// Renders `message` and checks what a platform would refuse or what would
/// leak: limits per platform (PLATFORMS.md), paths, secrets.
pub fn check_render(adapter: &dyn PlatformAdapter, message: &OutboundMessage) {
    // The outbox stores messages as JSON (Redis): they must read back.
    let json = serde_json::to_vec(message).expect("a message serialises");
    let back: OutboundMessage = serde_json::from_slice(&json).unwrap_or_else(|error| {
        panic!(
            "an outbound message does not deserialise from its own JSON ({error}): {}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(
        &back, message,
        "an outbound message changed in the JSON round trip"
    );

    // The fuzzer may type a secret, or part of one, into the message
    // itself; only a secret the message did not carry counts as a leak.
    let mut input = Vec::new();
    strings(
        &serde_json::to_value(message).expect("serialises"),
        &mut input,
    );
    let unexplained: Vec<&str> = SECRETS
        .iter()
        .copied()
        .filter(|secret| !mentions(&input, secret))
        .collect();
    let requests = match adapter.render(message) {
        Ok(requests) => requests,
        Err(error) => {
            let shown = format!("{error} {error:?}");
            for secret in &unexplained {
                assert!(
                    !shown.contains(secret),
                    "a render error shows a secret: {shown}"
                );
            }
            return;
        }
    };
    for request in &requests {
        assert!(is_plain_path(&request.path), "path {:?}", request.path);
        let debug = format!("{request:?}");
        let mut output = Vec::new();
        if let Some(body) = &request.body {
            strings(body, &mut output);
        }
        for secret in &unexplained {
            assert!(!request.path.contains(secret), "a secret in the path");
            assert!(
                !output.iter().any(|text| text.contains(secret)),
                "a secret in the body: {:?}",
                request.body
            );
            assert!(!debug.contains(secret), "a secret in Debug: {debug}");
        }
        if let Some(body) = &request.body {
            match adapter.platform() {
                Platform::Telegram => check_telegram_limits(body),
                Platform::Messenger => check_messenger_limits(body),
                Platform::WhatsApp => check_whatsapp_limits(body),
            }
        }
    }
}

/// The sender requests only plain paths below the configured API base
/// (`is_plain_path` in gateway/src/sender.rs); a rendered path that is not
/// one would make a reply unsendable, and would mean message data reached
/// the URL.
pub fn is_plain_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains("..")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~'))
}

/// Every string in a JSON value, keys included, decoded (a JSON escape
/// such as `\u0012` followed by `3456` must not read as `123456`).
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(text) => out.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| strings(item, out)),
        Value::Object(map) => {
            for (key, item) in map {
                out.push(key.clone());
                strings(item, out);
            }
        }
        _ => {}
    }
}

/// Whether any of `texts` holds six or more consecutive characters of
/// `secret`: enough to explain the secret showing up in the output.
fn mentions(texts: &[String], secret: &str) -> bool {
    let chars: Vec<char> = secret.chars().collect();
    chars.windows(6).any(|window| {
        let piece: String = window.iter().collect();
        texts.iter().any(|text| text.contains(&piece))
    })
}

fn chars(value: Option<&Value>) -> usize {
    value
        .and_then(Value::as_str)
        .map_or(0, |text| text.chars().count())
}

fn utf16(value: Option<&Value>) -> usize {
    value
        .and_then(Value::as_str)
        .map_or(0, |text| text.encode_utf16().count())
}

fn array(value: Option<&Value>) -> &[Value] {
    value.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// Telegram counts text after entity parsing; the escaped HTML may be
/// longer, so these bounds hold on the unescaped text only. Checking the
/// sent (escaped) text against 4096 would be stricter than Telegram; the
/// rendered text is compared after undoing the three escapes.
fn check_telegram_limits(body: &Value) {
    let unescaped = |value: Option<&Value>| -> usize {
        value.and_then(Value::as_str).map_or(0, |text| {
            text.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&amp;", "&")
                .encode_utf16()
                .count()
        })
    };
    assert!(
        unescaped(body.get("text")) <= 4096,
        "Telegram text over 4096: {body}"
    );
    assert!(
        unescaped(body.get("caption")) <= 1024,
        "Telegram caption over 1024: {body}"
    );
    if body.get("callback_query_id").is_some() {
        assert!(
            utf16(body.get("text")) <= 200,
            "callback answer over 200: {body}"
        );
    }
    let rows = body
        .pointer("/reply_markup/inline_keyboard")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut buttons = 0;
    for row in rows {
        for button in array(Some(row)) {
            buttons += 1;
            let data = button
                .get("callback_data")
                .and_then(Value::as_str)
                .unwrap_or("x");
            assert!(
                (1..=64).contains(&data.len()),
                "callback_data must be 1-64 bytes: {body}"
            );
        }
    }
    assert!(buttons <= 100, "more than 100 inline buttons: {body}");
}

fn check_messenger_limits(body: &Value) {
    let message = body.get("message");
    let text = message.and_then(|m| m.get("text"));
    assert!(chars(text) <= 2000, "Messenger text over 2000: {body}");
    let quick_replies = array(message.and_then(|m| m.get("quick_replies")));
    assert!(
        quick_replies.len() <= 13,
        "more than 13 quick replies: {body}"
    );
    for reply in quick_replies {
        assert!(
            chars(reply.get("title")) <= 20,
            "quick reply title over 20: {body}"
        );
        let payload = reply.get("payload").and_then(Value::as_str).unwrap_or("");
        assert!(
            payload.len() <= 1000,
            "quick reply payload over 1000: {body}"
        );
    }
    if let Some(payload) = body.pointer("/message/attachment/payload")
        && payload.get("template_type").and_then(Value::as_str) == Some("button")
    {
        assert!(
            chars(payload.get("text")) <= 640,
            "button template text over 640: {body}"
        );
        let buttons = array(payload.get("buttons"));
        assert!(buttons.len() <= 3, "more than 3 template buttons: {body}");
        for button in buttons {
            assert!(
                chars(button.get("title")) <= 20,
                "button title over 20: {body}"
            );
            let payload = button.get("payload").and_then(Value::as_str).unwrap_or("");
            assert!(payload.len() <= 1000, "button payload over 1000: {body}");
        }
    }
}

fn check_whatsapp_limits(body: &Value) {
    assert!(
        chars(body.pointer("/text/body")) <= 4096,
        "WhatsApp text over 4096: {body}"
    );
    for kind in ["image", "document"] {
        assert!(
            chars(body.pointer(&format!("/{kind}/caption"))) <= 1024,
            "WhatsApp caption over 1024: {body}"
        );
    }
    let Some(interactive) = body.get("interactive") else {
        return;
    };
    assert!(
        chars(interactive.pointer("/body/text")) <= 1024,
        "interactive body over 1024: {body}"
    );
    let buttons = array(interactive.pointer("/action/buttons"));
    assert!(buttons.len() <= 3, "more than 3 reply buttons: {body}");
    for button in buttons {
        assert!(
            chars(button.pointer("/reply/title")) <= 20,
            "button title over 20: {body}"
        );
        assert!(
            chars(button.pointer("/reply/id")) <= 256,
            "button id over 256: {body}"
        );
    }
    let mut rows = 0;
    for section in array(interactive.pointer("/action/sections")) {
        for row in array(section.get("rows")) {
            rows += 1;
            assert!(chars(row.get("title")) <= 24, "row title over 24: {body}");
            assert!(chars(row.get("id")) <= 200, "row id over 200: {body}");
            assert!(
                chars(row.get("description")) <= 72,
                "row description over 72: {body}"
            );
        }
    }
    assert!(rows <= 10, "more than 10 list rows: {body}");
    assert!(
        chars(interactive.pointer("/action/button")) <= 20,
        "list button over 20: {body}"
    );
}

/// The Meta handshake with a query read from the fuzz input: one line each
/// for `hub.mode`, `hub.verify_token` and `hub.challenge`.
pub fn handshake(adapter: &dyn PlatformAdapter, data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(3, '\n');
    let query = HandshakeQuery {
        mode: lines.next().map(str::to_owned),
        verify_token: lines.next().map(str::to_owned),
        challenge: lines.next().map(str::to_owned),
    };
    match adapter.handshake(&query) {
        Ok(challenge) => {
            assert_eq!(query.verify_token.as_deref(), Some(META_VERIFY_TOKEN));
            assert_eq!(Some(challenge), query.challenge);
        }
        Err(error) => assert_no_secret(
            &[text.into_owned()],
            &format!("{error} {error:?}"),
            "a handshake error",
        ),
    }
}

// ---------------------------------------------------------------------------
// Configuration files.

/// The secret values a configuration text sets, for the leak checks of the
/// config target: string values under keys named like secrets (tokens, app
/// secrets, passwords, encryption keys) and the password in a `store.url`.
///
/// Only values that look like real secrets count (12+ characters of
/// letters, digits, `-` and `_`, with a letter and a digit, written once in
/// the file): a secret such as `expected` could appear in any error
/// message by coincidence, and a value written twice may be shown through
/// its other, non-secret key.
pub fn config_secrets(text: &str) -> Vec<String> {
    let Ok(table) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    collect_secrets(&toml::Value::Table(table), false, &mut found);
    found.retain(|secret| {
        secret.len() >= 12
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && secret.bytes().any(|b| b.is_ascii_alphabetic())
            && secret.bytes().any(|b| b.is_ascii_digit())
            && text.matches(secret.as_str()).count() == 1
    });
    found.sort();
    found.dedup();
    found
}

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    !key.ends_with("_file")
        && !key.contains("hash")
        && !key.starts_with("tls_")
        && ["token", "secret", "password", "encryption_key"]
            .iter()
            .any(|word| key.contains(word))
}

/// `secret` says whether the key this value sits under names a secret. It
/// carries into arrays of strings (`encryption_keys = [...]`) but not into
/// tables, whose own keys decide (`[[server.admin_tokens]]` holds a `name`
/// and a `role`, which are not secret, beside its `token`).
fn collect_secrets(value: &toml::Value, secret: bool, found: &mut Vec<String>) {
    match value {
        toml::Value::String(text) if secret => found.extend(
            text.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|part| !part.is_empty())
                .map(str::to_owned),
        ),
        toml::Value::Array(items) => {
            for item in items {
                collect_secrets(item, secret && !item.is_table(), found);
            }
        }
        toml::Value::Table(table) => {
            for (key, item) in table {
                if key.ends_with("url")
                    && let toml::Value::String(url) = item
                    && let Some(password) = url_password(url)
                {
                    found.push(password.to_owned());
                }
                collect_secrets(item, is_secret_key(key), found);
            }
        }
        _ => {}
    }
}

/// `scheme://user:password@host...` → `password`.
fn url_password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let (userinfo, _) = rest.split_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    Some(password)
}
