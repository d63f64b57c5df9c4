//! `switchboard chat`: a person types as a customer. Each line goes to the
//! running gateway as a correctly signed webhook of the chosen platform; the
//! bot's replies are read back from the sandbox and shown the way the
//! platform would show them, buttons as numbered choices to pick.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use switchboard_model::Platform;

use crate::cli::ChatArgs;
use crate::config::demo;

/// One tappable option the bot offered.
#[derive(Debug, Clone)]
struct Choice {
    title: String,
    payload: String,
    kind: ChoiceKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ChoiceKind {
    TelegramCallback,
    MessengerQuickReply,
    MessengerPostback,
    WhatsAppButton,
    WhatsAppList,
}

/// What the person sends next.
enum Outgoing {
    Text(String),
    Tap(Choice),
    Location(f64, f64),
}

struct Session {
    platform: Platform,
    gateway: String,
    channel: String,
    secret: String,
    user: String,
    name: String,
    counter: u64,
    seen: u64,
    choices: Vec<Choice>,
    last_bot_message: i64,
    http: reqwest::Client,
}

fn now_ms() -> i64 {
    crate::sender::now_ms()
}

/// Writes non-ASCII as `\uXXXX`, the way Meta sends (and signs) bodies.
fn escape_non_ascii(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut units = [0u16; 2];
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

impl Session {
    fn webhook_body(&mut self, outgoing: &Outgoing) -> Value {
        self.counter += 1;
        let n = self.counter;
        let now = now_ms();
        match self.platform {
            Platform::Telegram => {
                let user_id: i64 = self.user.parse().unwrap_or(42);
                let from = json!({"id": user_id, "is_bot": false, "first_name": self.name, "language_code": "en"});
                let chat = json!({"id": user_id, "type": "private", "first_name": self.name});
                let update_id = now / 1000 * 1000 + i64::try_from(n % 1000).unwrap_or(0);
                match outgoing {
                    Outgoing::Text(text) => {
                        let mut message = json!({
                            "message_id": n, "from": from, "chat": chat, "date": now / 1000, "text": text,
                        });
                        if text.starts_with('/') {
                            let len = text
                                .split_whitespace()
                                .next()
                                .map_or(0, |c| c.encode_utf16().count());
                            message["entities"] =
                                json!([{"type": "bot_command", "offset": 0, "length": len}]);
                        }
                        json!({"update_id": update_id, "message": message})
                    }
                    Outgoing::Tap(choice) => json!({
                        "update_id": update_id,
                        "callback_query": {
                            "id": format!("cb-{now}-{n}"),
                            "from": from,
                            "message": {"message_id": self.last_bot_message, "chat": chat, "date": now / 1000, "text": "…"},
                            "chat_instance": "switchboard-chat",
                            "data": choice.payload,
                        }
                    }),
                    Outgoing::Location(lat, lon) => json!({
                        "update_id": update_id,
                        "message": {"message_id": n, "from": from, "chat": chat, "date": now / 1000,
                                    "location": {"latitude": lat, "longitude": lon}}
                    }),
                }
            }
            Platform::Messenger => {
                let mid = format!("m_chat_{now}_{n}");
                let item = match outgoing {
                    Outgoing::Text(text) => json!({"message": {"mid": mid, "text": text}}),
                    Outgoing::Tap(choice) if choice.kind == ChoiceKind::MessengerPostback => {
                        json!({"postback": {"mid": mid, "title": choice.title, "payload": choice.payload}})
                    }
                    Outgoing::Tap(choice) => {
                        json!({"message": {"mid": mid, "text": choice.title, "quick_reply": {"payload": choice.payload}}})
                    }
                    Outgoing::Location(lat, lon) => json!({"message": {"mid": mid, "attachments": [
                        {"type": "location", "payload": {"coordinates": {"lat": lat, "long": lon}}}
                    ]}}),
                };
                let mut item = item;
                item["sender"] = json!({"id": self.user});
                item["recipient"] = json!({"id": demo::MESSENGER_PAGE_ID});
                item["timestamp"] = json!(now);
                json!({"object": "page", "entry": [{"id": demo::MESSENGER_PAGE_ID, "time": now, "messaging": [item]}]})
            }
            Platform::WhatsApp => {
                let id = format!("wamid.chat.{now}.{n}");
                let mut message =
                    json!({"from": self.user, "id": id, "timestamp": (now / 1000).to_string()});
                match outgoing {
                    Outgoing::Text(text) => {
                        message["type"] = json!("text");
                        message["text"] = json!({"body": text});
                    }
                    Outgoing::Tap(choice) => {
                        message["type"] = json!("interactive");
                        message["interactive"] = if choice.kind == ChoiceKind::WhatsAppList {
                            json!({"type": "list_reply", "list_reply": {"id": choice.payload, "title": choice.title}})
                        } else {
                            json!({"type": "button_reply", "button_reply": {"id": choice.payload, "title": choice.title}})
                        };
                    }
                    Outgoing::Location(lat, lon) => {
                        message["type"] = json!("location");
                        message["location"] = json!({"latitude": lat, "longitude": lon});
                    }
                }
                json!({"object": "whatsapp_business_account", "entry": [{"id": "100000000000003", "changes": [{
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {"display_phone_number": "15550000000", "phone_number_id": demo::WHATSAPP_PHONE_NUMBER_ID},
                        "contacts": [{"profile": {"name": self.name}, "wa_id": self.user}],
                        "messages": [message],
                    }
                }]}]})
            }
        }
    }

    async fn send(&mut self, outgoing: &Outgoing) -> anyhow::Result<()> {
        let body = self.webhook_body(outgoing);
        let serialized = serde_json::to_string(&body)?;
        let bytes = match self.platform {
            Platform::Telegram => serialized.into_bytes(),
            Platform::Messenger | Platform::WhatsApp => escape_non_ascii(&serialized).into_bytes(),
        };
        let url = format!(
            "{}/webhooks/{}/{}",
            self.gateway, self.platform, self.channel
        );
        let mut request = self
            .http
            .post(&url)
            .header("Content-Type", "application/json");
        request = match self.platform {
            Platform::Telegram => request.header("X-Telegram-Bot-Api-Secret-Token", &self.secret),
            Platform::Messenger | Platform::WhatsApp => request.header(
                "X-Hub-Signature-256",
                switchboard_meta::sign(&self.secret, &bytes),
            ),
        };
        let response = request.body(bytes).send().await.with_context(|| {
            format!(
                "cannot reach the gateway at {}; is `switchboard serve` running?",
                self.gateway
            )
        })?;
        let status = response.status();
        if !status.is_success() {
            bail!(
                "the gateway answered {status} to the webhook; check --channel and --secret match its configuration"
            );
        }
        Ok(())
    }

    /// Collects replies for up to `wait`, returning early once they stop.
    async fn replies(&mut self, wait: Duration) -> anyhow::Result<Vec<Value>> {
        let mut found = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                break;
            }
            let poll = if found.is_empty() {
                remaining
            } else {
                remaining.min(Duration::from_millis(700))
            };
            let url = format!(
                "{}/sandbox/messages?platform={}&chat={}&after={}&wait_ms={}",
                self.gateway,
                self.platform,
                self.user,
                self.seen,
                poll.as_millis()
            );
            let response = self.http.get(&url).send().await.with_context(|| {
                format!(
                    "cannot read replies from {}/sandbox; is the gateway running the demo sandbox?",
                    self.gateway
                )
            })?;
            if response.status() == reqwest::StatusCode::NOT_FOUND {
                bail!(
                    "the gateway has no sandbox; `switchboard chat` works with the demo or sandbox.enabled = true"
                );
            }
            let page: Value = response
                .json()
                .await
                .context("the sandbox answered something unexpected")?;
            let batch = page["messages"].as_array().cloned().unwrap_or_default();
            if let Some(next) = page["next"].as_u64() {
                self.seen = self.seen.max(next);
            }
            if batch.is_empty() && !found.is_empty() {
                break;
            }
            found.extend(batch);
        }
        Ok(found)
    }

    /// Turns one recorded platform request into lines for the terminal and
    /// the choices it offers.
    fn show(&mut self, message: &Value) -> Vec<String> {
        let body = &message["body"];
        let method = message["method"].as_str().unwrap_or("");
        let mut lines = Vec::new();
        let mut choices = Vec::new();
        match self.platform {
            Platform::Telegram => {
                if method == "sendChatAction" || method == "answerCallbackQuery" {
                    if let Some(text) = body["text"].as_str() {
                        lines.push(format!("  ({text})"));
                    }
                    return lines;
                }
                if let Some(id) = message["seq"].as_i64() {
                    self.last_bot_message = id;
                }
                if let Some(text) = body["text"].as_str().or(body["caption"].as_str()) {
                    lines.push(unescape_html(text));
                }
                if let Some(url) = body["photo"].as_str().or(body["document"].as_str()) {
                    lines.push(format!(
                        "[{}] {url}",
                        if method == "sendPhoto" {
                            "image"
                        } else {
                            "file"
                        }
                    ));
                }
                for row in body["reply_markup"]["inline_keyboard"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    for button in row.as_array().into_iter().flatten() {
                        choices.push(Choice {
                            title: button["text"].as_str().unwrap_or("?").to_owned(),
                            payload: button["callback_data"].as_str().unwrap_or("").to_owned(),
                            kind: ChoiceKind::TelegramCallback,
                        });
                    }
                }
                if body["reply_markup"]["keyboard"].is_array() {
                    lines.push(
                        "[the bot asks for your location: type :location LAT LON]".to_owned(),
                    );
                }
            }
            Platform::Messenger => {
                if body.get("sender_action").is_some() {
                    return lines;
                }
                let msg = &body["message"];
                if let Some(text) = msg["text"].as_str() {
                    lines.push(text.to_owned());
                }
                for quick in msg["quick_replies"].as_array().into_iter().flatten() {
                    choices.push(Choice {
                        title: quick["title"].as_str().unwrap_or("?").to_owned(),
                        payload: quick["payload"].as_str().unwrap_or("").to_owned(),
                        kind: ChoiceKind::MessengerQuickReply,
                    });
                }
                let attachment = &msg["attachment"];
                match attachment["type"].as_str() {
                    Some("template") => {
                        if let Some(text) = attachment["payload"]["text"].as_str() {
                            lines.push(text.to_owned());
                        }
                        for button in attachment["payload"]["buttons"]
                            .as_array()
                            .into_iter()
                            .flatten()
                        {
                            choices.push(Choice {
                                title: button["title"].as_str().unwrap_or("?").to_owned(),
                                payload: button["payload"].as_str().unwrap_or("").to_owned(),
                                kind: ChoiceKind::MessengerPostback,
                            });
                        }
                    }
                    Some(kind) => lines.push(format!(
                        "[{kind}] {}",
                        attachment["payload"]["url"].as_str().unwrap_or("")
                    )),
                    None => {}
                }
            }
            Platform::WhatsApp => {
                if body.get("status").is_some() {
                    return lines;
                }
                match body["type"].as_str() {
                    Some("text") => {
                        lines.push(body["text"]["body"].as_str().unwrap_or("").to_owned());
                    }
                    Some("image") | Some("document") => {
                        let kind = body["type"].as_str().unwrap_or("");
                        let media = &body[kind];
                        lines.push(format!("[{kind}] {}", media["link"].as_str().unwrap_or("")));
                        if let Some(caption) = media["caption"].as_str() {
                            lines.push(caption.to_owned());
                        }
                    }
                    Some("template") => lines.push(format!(
                        "[template {}]",
                        body["template"]["name"].as_str().unwrap_or("?")
                    )),
                    Some("interactive") => {
                        let interactive = &body["interactive"];
                        if let Some(text) = interactive["body"]["text"].as_str() {
                            lines.push(text.to_owned());
                        }
                        match interactive["type"].as_str() {
                            Some("button") => {
                                for button in interactive["action"]["buttons"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                {
                                    choices.push(Choice {
                                        title: button["reply"]["title"]
                                            .as_str()
                                            .unwrap_or("?")
                                            .to_owned(),
                                        payload: button["reply"]["id"]
                                            .as_str()
                                            .unwrap_or("")
                                            .to_owned(),
                                        kind: ChoiceKind::WhatsAppButton,
                                    });
                                }
                            }
                            Some("list") => {
                                lines.push(format!(
                                    "[list: {}]",
                                    interactive["action"]["button"]
                                        .as_str()
                                        .unwrap_or("Options")
                                ));
                                for section in interactive["action"]["sections"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                {
                                    for row in section["rows"].as_array().into_iter().flatten() {
                                        choices.push(Choice {
                                            title: row["title"].as_str().unwrap_or("?").to_owned(),
                                            payload: row["id"].as_str().unwrap_or("").to_owned(),
                                            kind: ChoiceKind::WhatsAppList,
                                        });
                                    }
                                }
                            }
                            Some("location_request_message") => {
                                lines.push(
                                    "[the bot asks for your location: type :location LAT LON]"
                                        .to_owned(),
                                );
                            }
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
        }
        for (index, choice) in choices.iter().enumerate() {
            lines.push(format!("  [{}] {}", index + 1, choice.title));
        }
        if !choices.is_empty() {
            self.choices = choices;
        }
        lines
    }

    fn interpret(&self, line: &str) -> Outgoing {
        if let Some(rest) = line.strip_prefix(":location") {
            let numbers: Vec<f64> = rest
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .filter_map(|s| s.parse().ok())
                .collect();
            if let [lat, lon] = numbers[..] {
                return Outgoing::Location(lat, lon);
            }
        }
        if let Ok(pick) = line.parse::<usize>()
            && let Some(choice) = pick.checked_sub(1).and_then(|i| self.choices.get(i))
        {
            return Outgoing::Tap(choice.clone());
        }
        Outgoing::Text(line.to_owned())
    }
}

fn unescape_html(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

#[allow(clippy::print_stdout)] // An interactive terminal program.
pub async fn run(args: ChatArgs) -> anyhow::Result<ExitCode> {
    let platform: Platform = args.platform.into();
    let (channel, secret, user) = match platform {
        Platform::Telegram => (
            demo::TELEGRAM_CHANNEL,
            demo::TELEGRAM_SECRET_TOKEN,
            "424242",
        ),
        Platform::Messenger => (
            demo::MESSENGER_CHANNEL,
            demo::MESSENGER_APP_SECRET,
            "2000000000000042",
        ),
        Platform::WhatsApp => (
            demo::WHATSAPP_CHANNEL,
            demo::WHATSAPP_APP_SECRET,
            "15550000042",
        ),
    };
    let mut session = Session {
        platform,
        gateway: args.gateway.trim_end_matches('/').to_owned(),
        channel: args.channel.unwrap_or_else(|| channel.to_owned()),
        secret: args.secret.unwrap_or_else(|| secret.to_owned()),
        user: args.user.unwrap_or_else(|| user.to_owned()),
        name: args.name,
        counter: 0,
        seen: 0,
        choices: Vec::new(),
        last_bot_message: 0,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(40))
            .build()?,
    };
    // Skip what earlier sessions left in the sandbox for this chat.
    let _ = session.replies(Duration::from_millis(1)).await;
    println!(
        "Chatting on {platform} as {} (channel {}). Type a message; a number picks a button; \
         `:location LAT LON` shares a location; Ctrl-D quits.",
        session.name, session.channel
    );
    let stdin = std::io::stdin();
    let wait = Duration::from_secs(args.wait.max(1));
    loop {
        print!("you> ");
        std::io::stdout().flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            println!();
            break;
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let outgoing = session.interpret(line);
        if let Outgoing::Tap(choice) = &outgoing {
            println!("  (tapped \"{}\")", choice.title);
        }
        session.send(&outgoing).await?;
        let replies = session.replies(wait).await?;
        if replies.is_empty() {
            println!("bot> (no reply yet)");
        }
        for reply in &replies {
            let lines: Vec<String> = session
                .show(reply)
                .iter()
                .flat_map(|l| l.lines().map(str::to_owned).collect::<Vec<_>>())
                .collect();
            let mut lines = lines.into_iter();
            if let Some(first) = lines.next() {
                println!("bot> {first}");
            }
            for line in lines {
                println!("     {line}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_is_escaped_like_meta_does() {
        assert_eq!(
            escape_non_ascii(r#"{"t":"pâtes 😀"}"#),
            r#"{"t":"p\u00e2tes \ud83d\ude00"}"#
        );
    }
}
