//! Outbound messages as Send API requests: `POST /me/messages` with
//! `{recipient:{id}, messaging_type, [tag], message}` or
//! `{recipient:{id}, sender_action}`.
//!
//! Every limit is enforced here, so the platform never refuses a message for
//! its size: text is split at 2000 characters, options that do not fit a
//! button template or quick replies degrade to a numbered text menu.

use serde_json::{Map, Value, json};
use switchboard_model::text::{TextUnit, numbered_menu, split_text};
use switchboard_model::{
    ChatId, ChoiceOption, ChoiceStyle, OutboundBody, OutboundMediaKind, OutboundMessage, Platform,
    PlatformRequest, RenderError, RequestAuth, SecretString,
};

use crate::{
    MAX_BUTTON_TEMPLATE_TEXT_CHARS, MAX_BUTTONS, MAX_PAYLOAD_BYTES, MAX_QUICK_REPLIES,
    MAX_TEXT_CHARS, MAX_TITLE_CHARS,
};

const SEND_PATH: &str = "/me/messages";

pub(crate) fn render(
    message: &OutboundMessage,
    page_access_token: &SecretString,
) -> Result<Vec<PlatformRequest>, RenderError> {
    let conversation = &message.conversation;
    if conversation.platform != Platform::Messenger {
        return Err(RenderError::WrongPlatform {
            expected: Platform::Messenger.as_str(),
            found: conversation.platform.as_str(),
        });
    }
    let psid = match &conversation.chat {
        ChatId::Str(psid) if !psid.trim().is_empty() => psid.as_str(),
        other => return Err(RenderError::InvalidChat(other.to_string())),
    };
    let send = Send {
        psid,
        // A blank tag means nothing to Meta; without one the message is an
        // ordinary response.
        tag: message
            .message_tag
            .as_deref()
            .map(str::trim)
            .filter(|tag| !tag.is_empty()),
        token: page_access_token,
    };

    match &message.body {
        OutboundBody::Text { text } => send.texts(text),
        OutboundBody::Choice {
            text,
            options,
            style,
        } => send.choice(text, options, style),
        OutboundBody::Media { kind, url, caption } => send.media(*kind, url, caption.as_deref()),
        // Meta removed the location quick reply: the question goes as text
        // and the customer may answer with a location attachment.
        OutboundBody::LocationRequest { text } => send.texts(text),
        OutboundBody::Typing => Ok(vec![send.action("typing_on")]),
        // Messenger marks the whole thread seen; it takes no message id.
        OutboundBody::MarkRead { .. } => Ok(vec![send.action("mark_seen")]),
        // Telegram's spinner has no Messenger counterpart.
        OutboundBody::AnswerCallback { .. } => Ok(Vec::new()),
        OutboundBody::Template { .. } => Err(RenderError::Unsupported(
            "message templates are WhatsApp's; Messenger reaches a customer outside the window \
             with a message tag",
        )),
    }
}

/// Builds the requests for one recipient.
struct Send<'a> {
    psid: &'a str,
    tag: Option<&'a str>,
    token: &'a SecretString,
}

impl Send<'_> {
    fn request(&self, body: Map<String, Value>) -> PlatformRequest {
        PlatformRequest::post_json(
            SEND_PATH,
            RequestAuth::Bearer(self.token.clone()),
            Value::Object(body),
        )
    }

    fn message(&self, message: Value) -> PlatformRequest {
        let mut body = Map::new();
        body.insert("recipient".into(), json!({ "id": self.psid }));
        match self.tag {
            Some(tag) => {
                body.insert("messaging_type".into(), "MESSAGE_TAG".into());
                body.insert("tag".into(), tag.into());
            }
            None => {
                body.insert("messaging_type".into(), "RESPONSE".into());
            }
        }
        body.insert("message".into(), message);
        self.request(body)
    }

    fn action(&self, action: &str) -> PlatformRequest {
        let mut body = Map::new();
        body.insert("recipient".into(), json!({ "id": self.psid }));
        body.insert("sender_action".into(), action.into());
        self.request(body)
    }

    fn text_messages(&self, chunks: Vec<String>) -> impl Iterator<Item = PlatformRequest> + '_ {
        chunks
            .into_iter()
            .map(|chunk| self.message(json!({ "text": chunk })))
    }

    fn texts(&self, text: &str) -> Result<Vec<PlatformRequest>, RenderError> {
        let chunks = split_text(text, MAX_TEXT_CHARS, TextUnit::Chars);
        if chunks.is_empty() {
            return Err(RenderError::Empty);
        }
        Ok(self.text_messages(chunks).collect())
    }

    /// Button template when asked for buttons and they fit, else quick
    /// replies when they fit, else a numbered menu. Long text goes first as
    /// plain messages so the options stay on the last one.
    fn choice(
        &self,
        text: &str,
        options: &[ChoiceOption],
        style: &ChoiceStyle,
    ) -> Result<Vec<PlatformRequest>, RenderError> {
        if options.is_empty() {
            return self.texts(text);
        }
        let mut chunks = split_text(text, MAX_TEXT_CHARS, TextUnit::Chars);
        // Both forms need a text to hang on; without one only the menu shows
        // every option.
        let fit = |max: usize| {
            !chunks.is_empty() && options.len() <= max && options.iter().all(option_fits)
        };
        let buttons = matches!(style, ChoiceStyle::Buttons) && fit(MAX_BUTTONS);
        let quick_replies = fit(MAX_QUICK_REPLIES);
        let last = if buttons || quick_replies {
            chunks.pop()
        } else {
            None
        };
        let Some(mut last) = last else {
            return self.texts(&numbered_menu(text, options));
        };

        if buttons {
            if TextUnit::Chars.len(&last) > MAX_BUTTON_TEMPLATE_TEXT_CHARS {
                let mut tail = split_text(&last, MAX_BUTTON_TEMPLATE_TEXT_CHARS, TextUnit::Chars);
                if let Some(shorter) = tail.pop() {
                    last = shorter;
                }
                chunks.extend(tail);
            }
            let buttons: Vec<Value> = options
                .iter()
                .map(|option| {
                    json!({ "type": "postback", "title": option.title, "payload": option.payload })
                })
                .collect();
            let template = json!({
                "attachment": {
                    "type": "template",
                    "payload": { "template_type": "button", "text": last, "buttons": buttons },
                },
            });
            return Ok(self
                .text_messages(chunks)
                .chain([self.message(template)])
                .collect());
        }

        let replies: Vec<Value> = options
            .iter()
            .map(|option| {
                json!({ "content_type": "text", "title": option.title, "payload": option.payload })
            })
            .collect();
        let message = json!({ "text": last, "quick_replies": replies });
        Ok(self
            .text_messages(chunks)
            .chain([self.message(message)])
            .collect())
    }

    /// The attachment by URL, then its caption as text: Messenger
    /// attachments carry no caption.
    fn media(
        &self,
        kind: OutboundMediaKind,
        url: &str,
        caption: Option<&str>,
    ) -> Result<Vec<PlatformRequest>, RenderError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(RenderError::Empty);
        }
        let kind = match kind {
            OutboundMediaKind::Image => "image",
            OutboundMediaKind::File => "file",
        };
        let attachment = json!({
            "attachment": { "type": kind, "payload": { "url": url, "is_reusable": true } },
        });
        let caption = split_text(caption.unwrap_or_default(), MAX_TEXT_CHARS, TextUnit::Chars);
        Ok([self.message(attachment)]
            .into_iter()
            .chain(self.text_messages(caption))
            .collect())
    }
}

/// Meta refuses a quick reply or button whose title is empty or over 20
/// characters, or whose payload is empty or over 1000.
fn option_fits(option: &ChoiceOption) -> bool {
    let title = TextUnit::Chars.len(&option.title);
    !option.title.trim().is_empty()
        && title <= MAX_TITLE_CHARS
        && (1..=MAX_PAYLOAD_BYTES).contains(&option.payload.len())
}
