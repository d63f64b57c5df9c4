//! Webhook bodies as the platforms send them (the shapes of
//! `switchboard chat`, which follow the fixtures), and their signatures.

use serde_json::{Value, json};
use switchboard_model::Platform;

/// What one simulated customer does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// Asks for an order; the bot's answer names the order number, which is
    /// the event's token.
    Ask {
        token: u64,
    },
    /// Taps a button (the menu).
    Tap,
    Share {
        lat: f64,
        lon: f64,
    },
}

impl Action {
    pub fn token(&self) -> Option<u64> {
        match self {
            Action::Ask { token } => Some(*token),
            Action::Tap | Action::Share { .. } => None,
        }
    }
}

/// One event of one chat; `id` is unique within the run.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub id: u64,
    pub action: Action,
    pub at_ms: i64,
}

/// Where the simulated customers write to.
#[derive(Debug, Clone)]
pub struct Target {
    pub platform: Platform,
    pub channel: String,
    pub secret: String,
    /// Messenger page id or WhatsApp phone number id (unused on Telegram).
    pub account: String,
}

/// The chat's id on its platform, derived from its index.
pub fn chat_id(platform: Platform, index: u32) -> String {
    match platform {
        Platform::Telegram => (700_000_000u64 + u64::from(index)).to_string(),
        Platform::Messenger => (3_000_000_000_000_000u64 + u64::from(index)).to_string(),
        Platform::WhatsApp => format!("1555{index:07}"),
    }
}

/// Builds the body of one POST carrying `events` of one chat (Meta batches
/// several; Telegram sends one update per POST, so pass one).
pub fn body(target: &Target, run: u64, chat: &str, events: &[Event]) -> Vec<u8> {
    let value = match target.platform {
        Platform::Telegram => events
            .first()
            .map(|event| telegram(run, chat, event))
            .unwrap_or(Value::Null),
        Platform::Messenger => {
            let items: Vec<Value> = events
                .iter()
                .map(|event| messenger(run, chat, &target.account, event))
                .collect();
            let time = events.last().map_or(0, |e| e.at_ms);
            json!({"object": "page", "entry": [{"id": target.account, "time": time, "messaging": items}]})
        }
        Platform::WhatsApp => {
            let messages: Vec<Value> = events
                .iter()
                .map(|event| whatsapp(run, chat, event))
                .collect();
            json!({"object": "whatsapp_business_account", "entry": [{"id": "100000000000003", "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550000000", "phone_number_id": target.account},
                    "contacts": [{"profile": {"name": "Sim Customer"}, "wa_id": chat}],
                    "messages": messages,
                }
            }]}]})
        }
    };
    // Serialising a Value cannot fail; the texts are ASCII, so this is
    // also the byte form Meta signs.
    serde_json::to_vec(&value).unwrap_or_default()
}

/// The header that authenticates `body` for `target`'s platform.
pub fn auth_header(target: &Target, body: &[u8]) -> (&'static str, String) {
    match target.platform {
        Platform::Telegram => ("X-Telegram-Bot-Api-Secret-Token", target.secret.clone()),
        Platform::Messenger | Platform::WhatsApp => (
            "X-Hub-Signature-256",
            switchboard_meta::sign(&target.secret, body),
        ),
    }
}

fn telegram(run: u64, chat: &str, event: &Event) -> Value {
    let user: i64 = chat.parse().unwrap_or(42);
    let from = json!({"id": user, "is_bot": false, "first_name": "Sim", "language_code": "en"});
    let chat_value = json!({"id": user, "type": "private", "first_name": "Sim"});
    // Update ids must be unique per bot across runs: the run id is the
    // start time in seconds.
    let update_id = i64::try_from((run % 1_000_000) * 100_000_000 + event.id).unwrap_or(i64::MAX);
    let date = event.at_ms / 1000;
    let message_id = i64::try_from(event.id).unwrap_or(i64::MAX);
    match event.action {
        Action::Ask { token } => {
            let text = format!("/order {token}");
            json!({"update_id": update_id, "message": {
                "message_id": message_id, "from": from, "chat": chat_value, "date": date, "text": text,
                "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
            }})
        }
        Action::Tap => json!({"update_id": update_id, "callback_query": {
            "id": format!("sim-{run}-{}", event.id),
            "from": from,
            "message": {"message_id": 1, "chat": chat_value, "date": date, "text": "menu"},
            "chat_instance": "switchboard-simulate",
            "data": "MENU",
        }}),
        Action::Share { lat, lon } => json!({"update_id": update_id, "message": {
            "message_id": message_id, "from": from, "chat": chat_value, "date": date,
            "location": {"latitude": lat, "longitude": lon},
        }}),
    }
}

fn messenger(run: u64, chat: &str, page: &str, event: &Event) -> Value {
    let mid = format!("m_sim_{run}_{}", event.id);
    let mut item = match event.action {
        Action::Ask { token } => {
            json!({"message": {"mid": mid, "text": format!("where is order {token}?")}})
        }
        Action::Tap => json!({"postback": {"mid": mid, "title": "Menu", "payload": "MENU"}}),
        Action::Share { lat, lon } => json!({"message": {"mid": mid, "attachments": [
            {"type": "location", "payload": {"coordinates": {"lat": lat, "long": lon}}}
        ]}}),
    };
    item["sender"] = json!({"id": chat});
    item["recipient"] = json!({"id": page});
    item["timestamp"] = json!(event.at_ms);
    item
}

fn whatsapp(run: u64, chat: &str, event: &Event) -> Value {
    let mut message = json!({
        "from": chat,
        "id": format!("wamid.sim.{run}.{}", event.id),
        "timestamp": (event.at_ms / 1000).to_string(),
    });
    match event.action {
        Action::Ask { token } => {
            message["type"] = json!("text");
            message["text"] = json!({"body": format!("where is order {token}?")});
        }
        Action::Tap => {
            message["type"] = json!("interactive");
            message["interactive"] =
                json!({"type": "button_reply", "button_reply": {"id": "MENU", "title": "Menu"}});
        }
        Action::Share { lat, lon } => {
            message["type"] = json!("location");
            message["location"] = json!({"latitude": lat, "longitude": lon});
        }
    }
    message
}

/// Tokens are eight digits (an order number to the assistant: 4 to 10
/// digits, and not 6, which reads as a one-time code).
pub const TOKEN_DIGITS: usize = 8;

/// Every eight-digit run in `text`: the candidates for a token.
pub fn tokens_in(text: &str) -> impl Iterator<Item = u64> + '_ {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|run| run.len() == TOKEN_DIGITS)
        .filter_map(|run| run.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(platform: Platform) -> Target {
        Target {
            platform,
            channel: "c".into(),
            secret: "s".into(),
            account: "100000000000001".into(),
        }
    }

    #[test]
    fn a_batched_meta_body_carries_every_event_in_order() {
        let events = [1, 2].map(|id| Event {
            id,
            action: Action::Ask {
                token: 10_000_000 + id,
            },
            at_ms: 1_700_000_000_000,
        });
        let body: Value = serde_json::from_slice(&body(
            &target(Platform::WhatsApp),
            1,
            "15550000001",
            &events,
        ))
        .unwrap();
        let messages = body.pointer("/entry/0/changes/0/value/messages").unwrap();
        assert_eq!(messages[0]["text"]["body"], "where is order 10000001?");
        assert_eq!(messages[1]["text"]["body"], "where is order 10000002?");
    }

    #[test]
    fn tokens_are_found_in_a_reply_and_nothing_else_is() {
        let found: Vec<u64> =
            tokens_in("I couldn't find order 12345678. Call 123456 or 1234567890.").collect();
        assert_eq!(found, vec![12_345_678]);
    }
}
