//! A simulated gateway for scenario tests: runs the assistant's effects
//! against the demo backend and an in-memory code ledger, the way the real
//! gateway does, and feeds the results back.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use switchboard_core::backend::{BackendRequest, BackendResponse, DemoBackend};
use switchboard_core::model::{
    Capabilities, ChannelId, ChatId, Command, ConversationKey, EventId, EventKind, Formatting,
    InboundEvent, Message, MessageContent, OutboundBody, PayloadEvent, PayloadKind, Platform,
    Sender,
};
use switchboard_core::otp::{self, LinkCodeRecord};
use switchboard_core::shop::Shop;
use switchboard_core::state::ConversationState;
use switchboard_core::{
    Assistant, AssistantSettings, Effect, EffectResult, HandoffSummary, Input, LinkCodeFailure,
    Step, StepContext,
};

/// Berlin wall-clock time as epoch milliseconds.
pub fn berlin_ms(y: i16, m: i8, d: i8, h: i8, min: i8) -> i64 {
    let tz = TimeZone::get("Europe/Berlin").unwrap();
    DateTime::new(y, m, d, h, min, 0, 0)
        .unwrap()
        .to_zoned(tz)
        .unwrap()
        .timestamp()
        .as_millisecond()
}

/// Wednesday 11 June 2025, 10:30 in Berlin: both demo stores are open.
pub fn wednesday_morning() -> i64 {
    berlin_ms(2025, 6, 11, 10, 30)
}

pub fn roomy() -> Capabilities {
    Capabilities {
        max_text_chars: 4096,
        max_buttons: 10,
        max_quick_replies: 10,
        max_button_title_chars: 40,
        max_list_rows: 0,
        supports_lists: false,
        max_payload_bytes: 64,
        supports_typing: true,
        supports_location_request: true,
        formatting: Formatting::Plain,
        reply_window_hours: None,
    }
}

/// WhatsApp-like: three reply buttons, ten list rows, 20-character titles.
pub fn whatsapp_like() -> Capabilities {
    Capabilities {
        max_text_chars: 1024,
        max_buttons: 3,
        max_quick_replies: 3,
        max_button_title_chars: 20,
        max_list_rows: 10,
        supports_lists: true,
        max_payload_bytes: 200,
        supports_typing: false,
        supports_location_request: false,
        formatting: Formatting::Plain,
        reply_window_hours: Some(24),
    }
}

/// No buttons at all: options become a numbered menu.
pub fn text_only() -> Capabilities {
    Capabilities {
        max_text_chars: 640,
        max_buttons: 0,
        max_quick_replies: 0,
        max_button_title_chars: 20,
        max_list_rows: 0,
        supports_lists: false,
        max_payload_bytes: 64,
        supports_typing: false,
        supports_location_request: false,
        formatting: Formatting::Plain,
        reply_window_hours: None,
    }
}

/// The shared side of the gateway: backend, code ledger, clock.
pub struct World {
    pub assistant: Assistant,
    pub backend: DemoBackend,
    /// One record per account, as the gateway keeps them.
    pub records: RefCell<HashMap<String, LinkCodeRecord>>,
    /// Which account each (conversation, user) asked a code for.
    pub asked: RefCell<HashMap<(String, String), String>>,
    pub handoffs: RefCell<Vec<HandoffSummary>>,
    pub erased: RefCell<Vec<String>>,
    pub now_ms: Cell<i64>,
    seed: Cell<u8>,
}

impl World {
    pub fn new() -> Self {
        Self::with_shop(Shop::demo())
    }

    pub fn with_shop(shop: Shop) -> Self {
        Self {
            assistant: Assistant::new(Arc::new(shop), AssistantSettings::default()),
            backend: DemoBackend::new(),
            records: RefCell::default(),
            asked: RefCell::default(),
            handoffs: RefCell::default(),
            erased: RefCell::default(),
            now_ms: Cell::new(wednesday_morning()),
            seed: Cell::new(1),
        }
    }

    pub fn advance_minutes(&self, minutes: i64) {
        self.now_ms.set(self.now_ms.get() + minutes * 60_000);
    }

    /// The last code the demo backend "sent".
    pub fn last_code(&self) -> String {
        self.backend
            .outbox()
            .last()
            .expect("a code was sent")
            .code
            .clone()
    }

    pub fn chat(&self, chat: i64, user: &str) -> Chat<'_> {
        self.chat_with(chat, user, roomy())
    }

    pub fn chat_with(&self, chat: i64, user: &str, caps: Capabilities) -> Chat<'_> {
        Chat {
            world: self,
            key: ConversationKey::new(
                Platform::Telegram,
                ChannelId::new("demo-telegram").unwrap(),
                ChatId::Int(chat),
            ),
            user: user.to_owned(),
            name: Some("Jane Doe".to_owned()),
            state: ConversationState::new(self.now_ms.get()),
            caps,
            effects: Vec::new(),
            log: Vec::new(),
            next_id: 0,
        }
    }

    fn carry_out(
        &self,
        key: &ConversationKey,
        user: &str,
        effect: &Effect,
    ) -> Option<EffectResult> {
        let now = self.now_ms.get();
        match effect {
            Effect::Backend(request) => {
                Some(EffectResult::Backend(self.backend.handle(request.clone())))
            }
            Effect::IssueLinkCode { identifier } => {
                let resolved = self.backend.handle(BackendRequest::ResolveAccount {
                    identifier: identifier.clone(),
                });
                let Ok(BackendResponse::AccountResolved {
                    account_id,
                    destination,
                }) = resolved
                else {
                    return Some(EffectResult::LinkCodeFailed(
                        LinkCodeFailure::UnknownAccount,
                    ));
                };
                let existing = self.records.borrow().get(&account_id).cloned();
                if let Err(failure) = otp::may_issue(existing.as_ref(), now) {
                    return Some(EffectResult::LinkCodeFailed(failure.into()));
                }
                let seed = self.seed.get();
                self.seed.set(seed.wrapping_add(1));
                let (record, code) = otp::issue(&account_id, key, user, now, [seed; 32]);
                self.records.borrow_mut().insert(account_id.clone(), record);
                self.asked
                    .borrow_mut()
                    .insert((key.to_string(), user.to_owned()), account_id.clone());
                self.backend
                    .handle(BackendRequest::SendLinkCode { account_id, code })
                    .unwrap();
                Some(EffectResult::LinkCodeIssued {
                    destination_masked: destination,
                })
            }
            Effect::CheckLinkCode { code } => {
                let account = self
                    .asked
                    .borrow()
                    .get(&(key.to_string(), user.to_owned()))
                    .cloned();
                let Some(account) = account else {
                    return Some(EffectResult::LinkCodeFailed(LinkCodeFailure::NoPendingCode));
                };
                let mut records = self.records.borrow_mut();
                let Some(record) = records.get_mut(&account) else {
                    return Some(EffectResult::LinkCodeFailed(LinkCodeFailure::NoPendingCode));
                };
                Some(match otp::check(record, code, key, user, now) {
                    Ok(()) => EffectResult::Linked {
                        account_id: account,
                    },
                    Err(failure) => EffectResult::LinkCodeFailed(failure.into()),
                })
            }
            Effect::Handoff { summary } => {
                self.handoffs.borrow_mut().push(summary.clone());
                None
            }
            Effect::EraseUserData => {
                self.erased.borrow_mut().push(key.to_string());
                Some(EffectResult::Erased)
            }
        }
    }
}

/// One conversation, driven like the gateway's worker drives it.
pub struct Chat<'w> {
    pub world: &'w World,
    pub key: ConversationKey,
    pub user: String,
    pub name: Option<String>,
    pub state: ConversationState,
    pub caps: Capabilities,
    /// Every effect the assistant asked for, in order.
    pub effects: Vec<Effect>,
    /// Every reply sent, in order.
    pub log: Vec<OutboundBody>,
    next_id: u64,
}

impl Chat<'_> {
    pub fn event(&mut self, kind: EventKind) -> InboundEvent {
        self.next_id += 1;
        InboundEvent {
            platform: self.key.platform,
            channel: self.key.channel.clone(),
            event_id: EventId(format!("update:{}", self.next_id)),
            conversation: self.key.clone(),
            sender: Sender {
                id: self.user.clone(),
                display_name: self.name.clone(),
                ..Sender::default()
            },
            business_id: None,
            timestamp_ms: self.world.now_ms.get(),
            kind,
        }
    }

    pub fn message(&mut self, content: MessageContent) -> InboundEvent {
        let id = self.next_id + 1;
        self.event(EventKind::Message(Message {
            message_id: id.to_string(),
            content,
            reply_to: None,
            forwarded: false,
            thread_id: None,
            referral: None,
        }))
    }

    /// One step without carrying out effects.
    pub fn step(&mut self, input: &Input) -> Step {
        let ctx = StepContext {
            now_ms: self.world.now_ms.get(),
            capabilities: &self.caps,
            conversation: &self.key,
            sender_id: &self.user,
        };
        let step = self.world.assistant.step(self.state.clone(), input, &ctx);
        self.state = step.state.clone();
        step
    }

    /// Sends an event, carries out every effect and returns all replies.
    pub fn send(&mut self, event: InboundEvent) -> Vec<OutboundBody> {
        let mut replies = Vec::new();
        let mut queue = vec![Input::Event(event)];
        while let Some(input) = queue.pop() {
            let step = self.step(&input);
            replies.extend(step.replies.iter().cloned());
            for effect in &step.effects {
                self.effects.push(effect.clone());
                if let Some(result) = self.world.carry_out(&self.key, &self.user, effect) {
                    if matches!(result, EffectResult::Erased) {
                        self.state = ConversationState::new(self.world.now_ms.get());
                    }
                    queue.insert(0, Input::Effect(result));
                }
            }
        }
        self.log.extend(replies.iter().cloned());
        replies
    }

    pub fn say(&mut self, text: &str) -> Vec<OutboundBody> {
        let event = self.message(MessageContent::Text {
            text: text.to_owned(),
            command: None,
        });
        self.send(event)
    }

    pub fn command(&mut self, name: &str, args: &str) -> Vec<OutboundBody> {
        let text = format!("/{name} {args}").trim().to_owned();
        let event = self.message(MessageContent::Text {
            text,
            command: Some(Command {
                name: name.to_owned(),
                args: args.to_owned(),
                bot: None,
            }),
        });
        self.send(event)
    }

    pub fn tap(&mut self, payload: &str) -> Vec<OutboundBody> {
        let event = self.event(EventKind::Payload(PayloadEvent {
            kind: PayloadKind::CallbackQuery,
            payload: payload.to_owned(),
            title: None,
            message_id: None,
            in_reply_to: None,
            callback_id: None,
            referral: None,
        }));
        self.send(event)
    }

    /// Links this chat to the account of `identifier` through the real flow.
    pub fn verify(&mut self, identifier: &str) {
        self.say("verify me");
        self.say(identifier);
        let code = self.world.last_code();
        let replies = self.say(&code);
        assert!(
            all_text(&replies).contains("verified"),
            "{}",
            all_text(&replies)
        );
    }
}

/// Every text shown to the customer, options' titles included.
pub fn all_text(replies: &[OutboundBody]) -> String {
    let mut out = Vec::new();
    for reply in replies {
        match reply {
            OutboundBody::Text { text } | OutboundBody::LocationRequest { text } => {
                out.push(text.clone());
            }
            OutboundBody::Choice { text, options, .. } => {
                out.push(text.clone());
                out.extend(options.iter().map(|option| option.title.clone()));
            }
            OutboundBody::Media { caption, .. } => out.extend(caption.clone()),
            _ => {}
        }
    }
    out.join("\n")
}

pub fn payloads(replies: &[OutboundBody]) -> Vec<String> {
    replies
        .iter()
        .flat_map(|reply| match reply {
            OutboundBody::Choice { options, .. } => options
                .iter()
                .map(|option| option.payload.clone())
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}
