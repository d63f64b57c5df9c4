//! One turn in progress: replies within the platform's limits, effects,
//! and the offered options remembered for numbered answers.

use crate::model::text::{TextUnit, numbered_menu, split_text, truncate};
use crate::model::{ChoiceOption, ChoiceStyle, OutboundBody};
use crate::state::{ConversationState, OfferedOption, PendingEffect, Speaker, TranscriptLine};
use crate::texts::Text;

use super::{Assistant, Effect, Step, StepContext};

pub(super) struct Turn<'a> {
    pub a: &'a Assistant,
    pub ctx: &'a StepContext<'a>,
    pub state: ConversationState,
    pub replies: Vec<OutboundBody>,
    pub effects: Vec<Effect>,
    pub customer_name: Option<String>,
    /// Set when this turn found the account link lapsed.
    pub link_lapsed: bool,
    /// The options of this turn's last choice; `None` until it speaks.
    offered: Option<Vec<OfferedOption>>,
    /// Whether anything changed that should refresh `updated_ms`.
    touched: bool,
}

impl<'a> Turn<'a> {
    pub fn new(a: &'a Assistant, ctx: &'a StepContext<'a>, state: ConversationState) -> Self {
        Self {
            a,
            ctx,
            state,
            replies: Vec::new(),
            effects: Vec::new(),
            customer_name: None,
            link_lapsed: false,
            offered: None,
            touched: true,
        }
    }

    pub fn t(&self, text: Text) -> String {
        self.a.shop.texts.get(text).to_owned()
    }

    pub fn render(&self, text: Text, args: &[(&str, &str)]) -> String {
        self.a.shop.texts.render(text, args)
    }

    pub fn linked_account(&self) -> Option<String> {
        self.state
            .linked_account(self.ctx.sender_id, self.ctx.now_ms)
            .map(str::to_owned)
    }

    /// Plain text, split over the platform's text limit.
    pub fn say(&mut self, text: impl Into<String>) {
        let text = text.into();
        let max = self.ctx.capabilities.max_text_chars.max(1);
        self.remember_reply(&text);
        for chunk in split_text(&text, max, TextUnit::Chars) {
            self.replies.push(OutboundBody::Text { text: chunk });
        }
        self.offered = Some(Vec::new());
    }

    /// Text with options, shaped to what the platform can show: quick
    /// replies, a list, buttons, or a numbered menu as the last resort.
    pub fn ask(&mut self, text: impl Into<String>, options: Vec<ChoiceOption>) {
        let text = text.into();
        let caps = self.ctx.capabilities;
        if options.is_empty() {
            self.say(text);
            return;
        }
        let options: Vec<ChoiceOption> = options
            .into_iter()
            .filter(|option| option.payload.len() <= caps.max_payload_bytes)
            .map(|mut option| {
                option.title = truncate(
                    &option.title,
                    caps.max_button_title_chars.max(1),
                    TextUnit::Chars,
                );
                option
            })
            .collect();
        self.remember_reply(&text);
        self.offered = Some(
            options
                .iter()
                .map(|option| OfferedOption {
                    title: option.title.clone(),
                    payload: option.payload.clone(),
                })
                .collect(),
        );
        let style = if options.len() <= caps.max_quick_replies {
            Some(ChoiceStyle::QuickReplies)
        } else if caps.supports_lists && options.len() <= caps.max_list_rows {
            Some(ChoiceStyle::List {
                button: truncate(
                    &self.t(Text::MenuButton),
                    caps.max_button_title_chars.max(1),
                    TextUnit::Chars,
                ),
            })
        } else if options.len() <= caps.max_buttons {
            Some(ChoiceStyle::Buttons)
        } else {
            None
        };
        let max_text = caps.max_text_chars.max(1);
        match style {
            Some(style) if !options.is_empty() => self.replies.push(OutboundBody::Choice {
                text: truncate(&text, max_text, TextUnit::Chars),
                options,
                style,
            }),
            _ => {
                let menu = numbered_menu(&text, &options);
                for chunk in split_text(&menu, max_text, TextUnit::Chars) {
                    self.replies.push(OutboundBody::Text { text: chunk });
                }
            }
        }
    }

    pub fn push_raw(&mut self, body: OutboundBody) {
        self.replies.push(body);
    }

    pub fn effect(&mut self, effect: Effect, pending: Option<PendingEffect>) {
        self.effects.push(effect);
        if pending.is_some() {
            self.state.pending = pending;
        }
    }

    /// Leaves the state as it was: nothing worth remembering happened.
    pub fn untouched(&mut self) {
        self.touched = false;
    }

    pub fn remember_customer(&mut self, text: &str) {
        let keep = self.a.settings.transcript_lines;
        let line = TranscriptLine {
            at_ms: self.ctx.now_ms,
            from: Speaker::Customer,
            text: clip(text),
        };
        self.state.remember(line, keep);
    }

    fn remember_reply(&mut self, text: &str) {
        let keep = self.a.settings.transcript_lines;
        let line = TranscriptLine {
            at_ms: self.ctx.now_ms,
            from: Speaker::Assistant,
            text: clip(text),
        };
        self.state.remember(line, keep);
    }

    pub fn finish(mut self) -> Step {
        if let Some(offered) = self.offered {
            self.state.offered = offered;
        }
        if self.touched {
            self.state.updated_ms = self.ctx.now_ms;
        }
        Step {
            state: self.state,
            replies: self.replies,
            effects: self.effects,
        }
    }
}

fn clip(text: &str) -> String {
    truncate(text, 500, TextUnit::Chars)
}
