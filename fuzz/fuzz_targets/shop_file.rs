//! The shop file loader over arbitrary TOML. A file it accepts must also
//! serve: the assistant answers a round of customer questions about its
//! stores, products and FAQ at a time taken from the input, every reply
//! renders on every platform, and the conversation state survives the JSON
//! round trip through the store.
#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use switchboard_core::shop::Shop;
use switchboard_core::{Assistant, AssistantSettings, ConversationState, Input, StepContext};
use switchboard_fuzz::{messenger, telegram, whatsapp};
use switchboard_messenger::MessengerAdapter;
use switchboard_model::{
    ChatId, ConversationKey, EventId, EventKind, InboundEvent, Location, Message, MessageContent,
    OutboundMessage, Platform, PlatformAdapter, Sender,
};
use switchboard_telegram::TelegramAdapter;
use switchboard_whatsapp::WhatsAppAdapter;

static ADAPTERS: LazyLock<(MessengerAdapter, WhatsAppAdapter, TelegramAdapter)> =
    LazyLock::new(|| (messenger(), whatsapp(), telegram()));

/// Milliseconds between 2000-01-01 and 2100-01-01, picked by the input.
fn clock(data: &[u8]) -> i64 {
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    const START: i64 = 946_684_800_000;
    const SPAN: u64 = 3_155_760_000_000;
    START + i64::try_from(hash % SPAN).unwrap_or(0)
}

fn questions(shop: &Shop) -> Vec<MessageContent> {
    let text = |t: String| MessageContent::Text {
        text: t,
        command: None,
    };
    let mut asked = vec![
        text("hi".to_owned()),
        text("when are you open tomorrow?".to_owned()),
        text("opening hours on sunday".to_owned()),
        text("where is your nearest store?".to_owned()),
        text("I want to talk to a person".to_owned()),
    ];
    let store = shop
        .stores
        .first()
        .map(|s| s.name.clone())
        .unwrap_or_default();
    for product in shop.products.iter().take(2) {
        let size = product.sizes.first().cloned().unwrap_or_default();
        asked.push(text(format!(
            "is the {} in stock in {size} at {store}?",
            product.name
        )));
        asked.push(text(format!("how much is the {}?", product.name)));
    }
    for entry in shop.faq.iter().take(2) {
        if let Some(keyword) = entry.keywords.first() {
            asked.push(text(keyword.clone()));
        }
    }
    if let Some(store) = shop.stores.first() {
        asked.push(text(format!("is {} open now?", store.name)));
        asked.push(MessageContent::Location(Location {
            latitude: store.latitude + 0.01,
            longitude: store.longitude - 0.01,
            name: None,
            address: None,
        }));
    }
    asked
}

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(shop) = Shop::from_toml_str(source) else {
        return;
    };
    let now_ms = clock(data);
    let asked = questions(&shop);
    let assistant = Assistant::new(Arc::new(shop), AssistantSettings::default());
    let (ms, wa, tg) = &*ADAPTERS;
    let adapters: [&dyn PlatformAdapter; 3] = [ms, wa, tg];
    for adapter in adapters {
        let conversation = ConversationKey::new(
            adapter.platform(),
            adapter.channel().clone(),
            match adapter.platform() {
                Platform::Telegram => ChatId::Int(4242),
                Platform::Messenger | Platform::WhatsApp => ChatId::Str("4242".to_owned()),
            },
        );
        let mut state = ConversationState::new(now_ms);
        for (n, content) in asked.iter().enumerate() {
            let event = InboundEvent {
                platform: adapter.platform(),
                channel: adapter.channel().clone(),
                event_id: EventId(format!("update:{n}")),
                conversation: conversation.clone(),
                sender: Sender {
                    id: "4242".to_owned(),
                    ..Sender::default()
                },
                business_id: None,
                timestamp_ms: now_ms,
                kind: EventKind::Message(Message {
                    message_id: n.to_string(),
                    content: content.clone(),
                    reply_to: None,
                    forwarded: false,
                    thread_id: None,
                    referral: None,
                }),
            };
            let ctx = StepContext {
                now_ms,
                capabilities: adapter.capabilities(),
                conversation: &conversation,
                sender_id: "4242",
            };
            let step = assistant.step(state, &Input::Event(event), &ctx);
            for body in step.replies {
                let message = OutboundMessage::new(conversation.clone(), body);
                if let Err(error) = adapter.render(&message) {
                    // Templates exist only on WhatsApp; everything else the
                    // assistant says must fit the platform it asked about.
                    panic!(
                        "{} cannot render a reply ({error}): {message:?}",
                        adapter.platform()
                    );
                }
            }
            let json = serde_json::to_vec(&step.state).expect("state serialises");
            state = serde_json::from_slice(&json).unwrap_or_else(|error| {
                panic!(
                    "state does not read back ({error}): {}",
                    String::from_utf8_lossy(&json)
                )
            });
            assert_eq!(
                serde_json::to_value(&state).expect("serialises"),
                serde_json::to_value(&step.state).expect("serialises"),
                "state changed in the JSON round trip"
            );
        }
    }
});
