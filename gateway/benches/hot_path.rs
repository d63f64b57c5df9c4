//! The hot path of one webhook, stage by stage, for each adapter: verify
//! (secret or HMAC over the raw bytes), parse (JSON to `InboundEvent`),
//! the assistant's step, render (reply to platform request) and the state
//! encoding the pipeline stores. `cargo bench -p switchboard --bench hot_path`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::json;
use switchboard_core::shop::Shop;
use switchboard_core::{Assistant, AssistantSettings, ConversationState, Input, StepContext};
use switchboard_messenger::{MessengerAdapter, MessengerChannel};
use switchboard_model::{
    ChannelId, Headers, InboundEvent, OutboundMessage, PlatformAdapter, RawWebhook, SecretString,
};
use switchboard_telegram::{TelegramAdapter, TelegramChannel};
use switchboard_whatsapp::{WhatsAppAdapter, WhatsAppChannel};

const SECRET: &str = "bench-secret";
const NOW: i64 = 1_764_000_000_000;

fn secret() -> SecretString {
    SecretString::from(SECRET.to_owned())
}

struct Case {
    name: &'static str,
    adapter: Box<dyn PlatformAdapter>,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn cases() -> Vec<Case> {
    let telegram = serde_json::to_vec(&json!({"update_id": 900000001, "message": {
        "message_id": 17, "date": NOW / 1000,
        "from": {"id": 700000001, "is_bot": false, "first_name": "Sim", "language_code": "en"},
        "chat": {"id": 700000001, "type": "private", "first_name": "Sim"},
        "text": "is the blue jacket in stock in M?"
    }}))
    .unwrap();
    let messenger = serde_json::to_vec(&json!({"object": "page", "entry": [{"id": "100000000000001", "time": NOW, "messaging": [{
        "sender": {"id": "3000000000000001"}, "recipient": {"id": "100000000000001"}, "timestamp": NOW,
        "message": {"mid": "m_bench_1", "text": "is the blue jacket in stock in M?"}
    }]}]}))
    .unwrap();
    let whatsapp = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "100000000000003", "changes": [{
        "field": "messages",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": "100000000000002"},
            "contacts": [{"profile": {"name": "Sim"}, "wa_id": "15550000001"}],
            "messages": [{"from": "15550000001", "id": "wamid.bench.1", "timestamp": (NOW / 1000).to_string(),
                          "type": "text", "text": {"body": "is the blue jacket in stock in M?"}}]
        }
    }]}]}))
    .unwrap();
    vec![
        Case {
            name: "telegram",
            adapter: Box::new(TelegramAdapter::new(TelegramChannel {
                id: ChannelId::new("tg").unwrap(),
                bot_token: SecretString::from("123:bench".to_owned()),
                secret_tokens: vec![secret()],
            })),
            headers: vec![("X-Telegram-Bot-Api-Secret-Token", SECRET.to_owned())],
            body: telegram,
        },
        Case {
            name: "messenger",
            adapter: Box::new(MessengerAdapter::new(MessengerChannel {
                id: ChannelId::new("ms").unwrap(),
                app_secrets: vec![secret()],
                verify_tokens: vec![secret()],
                page_access_token: secret(),
                page_id: Some("100000000000001".to_owned()),
            })),
            headers: vec![(
                "X-Hub-Signature-256",
                switchboard_meta::sign(SECRET, &messenger),
            )],
            body: messenger,
        },
        Case {
            name: "whatsapp",
            adapter: Box::new(WhatsAppAdapter::new(WhatsAppChannel {
                id: ChannelId::new("wa").unwrap(),
                app_secrets: vec![secret()],
                verify_tokens: vec![secret()],
                access_token: secret(),
                phone_number_id: "100000000000002".to_owned(),
            })),
            headers: vec![(
                "X-Hub-Signature-256",
                switchboard_meta::sign(SECRET, &whatsapp),
            )],
            body: whatsapp,
        },
    ]
}

/// Request headers as the gateway hands them to an adapter.
struct HeaderList<'a>(&'a [(&'static str, String)]);

impl Headers for HeaderList<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn parse_one(case: &Case) -> InboundEvent {
    let headers = HeaderList(&case.headers);
    let verified = case
        .adapter
        .verify(RawWebhook::new(&headers, &case.body))
        .unwrap();
    case.adapter.parse(&verified).unwrap().remove(0)
}

fn adapters(c: &mut Criterion) {
    let assistant = Assistant::new(Arc::new(Shop::demo()), AssistantSettings::default());
    for case in cases() {
        let headers = HeaderList(&case.headers);
        let raw = RawWebhook::new(&headers, &case.body);
        c.bench_function(&format!("{}/verify", case.name), |b| {
            b.iter(|| case.adapter.authenticate(black_box(&raw)).unwrap());
        });
        let verified = case.adapter.verify(raw).unwrap();
        c.bench_function(&format!("{}/parse", case.name), |b| {
            b.iter(|| case.adapter.parse(black_box(&verified)).unwrap());
        });

        let event = parse_one(&case);
        let ctx = StepContext {
            now_ms: NOW,
            capabilities: case.adapter.capabilities(),
            conversation: &event.conversation,
            sender_id: &event.sender.id,
        };
        let input = Input::Event(event.clone());
        c.bench_function(&format!("{}/assistant_step", case.name), |b| {
            b.iter_batched(
                || ConversationState::new(NOW),
                |state| assistant.step(state, black_box(&input), &ctx),
                BatchSize::SmallInput,
            );
        });
        let step = assistant.step(ConversationState::new(NOW), &input, &ctx);
        let messages: Vec<OutboundMessage> = step
            .replies
            .iter()
            .map(|body| OutboundMessage::new(event.conversation.clone(), body.clone()))
            .collect();
        assert!(
            !messages.is_empty(),
            "the assistant answers the stock question"
        );
        c.bench_function(&format!("{}/render", case.name), |b| {
            b.iter(|| {
                for message in &messages {
                    black_box(case.adapter.render(black_box(message)).unwrap());
                }
            });
        });
        c.bench_function(&format!("{}/state_roundtrip", case.name), |b| {
            b.iter(|| {
                let bytes = serde_json::to_vec(black_box(&step.state)).unwrap();
                black_box(serde_json::from_slice::<ConversationState>(&bytes).unwrap())
            });
        });
    }
}

criterion_group!(benches, adapters);
criterion_main!(benches);
