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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;
    use switchboard_model::{ChannelId, ConversationKey, ExposeSecret, HttpMethod};

    use super::*;

    const PSID: &str = "1412611362105802";
    const TOKEN: &str = "EAAG-secret-page-token";

    fn to(body: OutboundBody) -> OutboundMessage {
        OutboundMessage::new(
            ConversationKey::new(
                Platform::Messenger,
                ChannelId::new("shop-messenger").unwrap(),
                ChatId::Str(PSID.into()),
            ),
            body,
        )
    }

    fn render_ok(message: &OutboundMessage) -> Vec<PlatformRequest> {
        render(message, &SecretString::from(TOKEN)).unwrap()
    }

    /// The JSON bodies, after checking every request is a bearer-authorised
    /// POST to `/me/messages` with the token nowhere else.
    fn bodies(message: &OutboundMessage) -> Vec<Value> {
        render_ok(message)
            .into_iter()
            .map(|request| {
                assert_eq!(request.method, HttpMethod::Post);
                assert_eq!(request.path, "/me/messages");
                assert_eq!(request.bearer_token(), Some(TOKEN));
                assert_eq!(
                    request
                        .url("https://graph.facebook.com/v25.0")
                        .expose_secret(),
                    "https://graph.facebook.com/v25.0/me/messages"
                );
                let body = request.body.unwrap();
                assert!(!body.to_string().contains(TOKEN));
                body
            })
            .collect()
    }

    fn text_body(text: &str) -> Value {
        json!({"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": text}})
    }

    fn options(titles: &[&str]) -> Vec<ChoiceOption> {
        titles
            .iter()
            .map(|title| ChoiceOption::new(*title, title.to_uppercase()))
            .collect()
    }

    fn choice(text: &str, titles: &[&str], style: ChoiceStyle) -> OutboundMessage {
        to(OutboundBody::Choice {
            text: text.into(),
            options: options(titles),
            style,
        })
    }

    #[test]
    fn text_is_a_response_message_to_the_psid() {
        assert_eq!(
            bodies(&to(OutboundBody::Text {
                text: "We open at 9.".into()
            })),
            vec![text_body("We open at 9.")]
        );
    }

    #[test]
    fn text_over_2000_chars_is_split_into_several_messages() {
        let text = format!("{} {}", "a".repeat(1500), "b".repeat(1500));
        assert_eq!(
            bodies(&to(OutboundBody::Text { text })),
            vec![text_body(&"a".repeat(1500)), text_body(&"b".repeat(1500))]
        );
    }

    #[test]
    fn blank_text_is_refused_as_empty() {
        let message = to(OutboundBody::Text {
            text: "  \n ".into(),
        });
        assert_eq!(
            render(&message, &SecretString::from(TOKEN)).unwrap_err(),
            RenderError::Empty
        );
    }

    #[test]
    fn a_message_tag_makes_it_a_tagged_message() {
        let mut message = to(OutboundBody::Text {
            text: "Your order shipped.".into(),
        });
        message.message_tag = Some("POST_PURCHASE_UPDATE".into());
        assert_eq!(
            bodies(&message),
            vec![json!({
                "recipient": {"id": PSID},
                "messaging_type": "MESSAGE_TAG",
                "tag": "POST_PURCHASE_UPDATE",
                "message": {"text": "Your order shipped."}
            })]
        );
        message.message_tag = Some("  ".into());
        assert_eq!(bodies(&message), vec![text_body("Your order shipped.")]);
    }

    #[test]
    fn the_tag_goes_on_every_part_of_a_split_message() {
        let mut message = choice(
            &"x ".repeat(1500),
            &["Yes", "No"],
            ChoiceStyle::QuickReplies,
        );
        message.message_tag = Some("HUMAN_AGENT".into());
        let bodies = bodies(&message);
        assert_eq!(bodies.len(), 2);
        for body in bodies {
            assert_eq!(body["messaging_type"], "MESSAGE_TAG");
            assert_eq!(body["tag"], "HUMAN_AGENT");
        }
    }

    #[test]
    fn quick_replies_carry_title_and_payload() {
        assert_eq!(
            bodies(&choice(
                "Anything else?",
                &["Hours", "Stores"],
                ChoiceStyle::QuickReplies
            )),
            vec![json!({
                "recipient": {"id": PSID},
                "messaging_type": "RESPONSE",
                "message": {
                    "text": "Anything else?",
                    "quick_replies": [
                        {"content_type": "text", "title": "Hours", "payload": "HOURS"},
                        {"content_type": "text", "title": "Stores", "payload": "STORES"}
                    ]
                }
            })]
        );
    }

    #[test]
    fn a_list_is_shown_as_quick_replies() {
        let titles = [
            "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13",
        ];
        let bodies = bodies(&choice(
            "Pick a store",
            &titles,
            ChoiceStyle::List {
                button: "Stores".into(),
            },
        ));
        assert_eq!(bodies.len(), 1);
        assert_eq!(bodies[0]["message"]["text"], "Pick a store");
        assert_eq!(
            bodies[0]["message"]["quick_replies"]
                .as_array()
                .unwrap()
                .len(),
            13
        );
    }

    #[test]
    fn up_to_three_buttons_are_a_button_template_of_postbacks() {
        assert_eq!(
            bodies(&choice(
                "How can I help?",
                &["Order status", "Refund"],
                ChoiceStyle::Buttons
            )),
            vec![json!({
                "recipient": {"id": PSID},
                "messaging_type": "RESPONSE",
                "message": {
                    "attachment": {
                        "type": "template",
                        "payload": {
                            "template_type": "button",
                            "text": "How can I help?",
                            "buttons": [
                                {"type": "postback", "title": "Order status", "payload": "ORDER STATUS"},
                                {"type": "postback", "title": "Refund", "payload": "REFUND"}
                            ]
                        }
                    }
                }
            })]
        );
    }

    #[test]
    fn more_than_three_buttons_fall_back_to_quick_replies() {
        let bodies = bodies(&choice("Pick", &["A", "B", "C", "D"], ChoiceStyle::Buttons));
        assert_eq!(
            bodies,
            vec![json!({
                "recipient": {"id": PSID},
                "messaging_type": "RESPONSE",
                "message": {
                    "text": "Pick",
                    "quick_replies": [
                        {"content_type": "text", "title": "A", "payload": "A"},
                        {"content_type": "text", "title": "B", "payload": "B"},
                        {"content_type": "text", "title": "C", "payload": "C"},
                        {"content_type": "text", "title": "D", "payload": "D"}
                    ]
                }
            })]
        );
    }

    #[test]
    fn more_than_thirteen_options_fall_back_to_a_numbered_menu() {
        let titles: Vec<String> = (1..=14).map(|n| format!("Store {n}")).collect();
        let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
        let bodies = bodies(&choice("Pick a store:", &titles, ChoiceStyle::QuickReplies));
        let menu = format!(
            "Pick a store:\n\n{}\n\nReply with a number.",
            (1..=14)
                .map(|n| format!("{n}. Store {n}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert_eq!(bodies, vec![text_body(&menu)]);
    }

    #[test]
    fn a_title_over_20_chars_falls_back_to_a_numbered_menu() {
        let bodies = bodies(&choice(
            "Which one?",
            &["Short", "A title that is far too long"],
            ChoiceStyle::Buttons,
        ));
        assert_eq!(
            bodies,
            vec![text_body(
                "Which one?\n\n1. Short\n2. A title that is far too long\n\nReply with a number."
            )]
        );
    }

    #[test]
    fn an_empty_or_oversized_payload_falls_back_to_a_numbered_menu() {
        for payload in [String::new(), "p".repeat(1001)] {
            let message = to(OutboundBody::Choice {
                text: "Sure?".into(),
                options: vec![ChoiceOption::new("Yes", payload)],
                style: ChoiceStyle::QuickReplies,
            });
            assert_eq!(
                bodies(&message),
                vec![text_body("Sure?\n\n1. Yes\n\nReply with a number.")]
            );
        }
        // 1000 bytes exactly still fits.
        let message = to(OutboundBody::Choice {
            text: "Sure?".into(),
            options: vec![ChoiceOption::new("Yes", "p".repeat(1000))],
            style: ChoiceStyle::QuickReplies,
        });
        assert!(bodies(&message)[0]["message"]["quick_replies"].is_array());
    }

    #[test]
    fn options_without_text_become_a_bare_numbered_menu() {
        assert_eq!(
            bodies(&choice(" ", &["Yes", "No"], ChoiceStyle::QuickReplies)),
            vec![text_body("1. Yes\n2. No\n\nReply with a number.")]
        );
    }

    #[test]
    fn a_choice_without_options_is_plain_text() {
        assert_eq!(
            bodies(&choice("Noted.", &[], ChoiceStyle::Buttons)),
            vec![text_body("Noted.")]
        );
    }

    #[test]
    fn long_text_before_quick_replies_goes_first_and_the_options_stay_on_the_last_message() {
        let text = format!("{} {}", "a".repeat(1990), "b".repeat(30));
        let bodies = bodies(&choice(&text, &["Yes"], ChoiceStyle::QuickReplies));
        assert_eq!(bodies.len(), 2);
        assert_eq!(bodies[0], text_body(&"a".repeat(1990)));
        assert_eq!(bodies[1]["message"]["text"], "b".repeat(30));
        assert_eq!(bodies[1]["message"]["quick_replies"][0]["title"], "Yes");
    }

    #[test]
    fn button_template_text_over_640_chars_moves_to_earlier_messages() {
        let text = format!("{} {}", "a".repeat(600), "b".repeat(600));
        let bodies = bodies(&choice(&text, &["Yes", "No"], ChoiceStyle::Buttons));
        assert_eq!(bodies.len(), 2);
        assert_eq!(bodies[0], text_body(&"a".repeat(600)));
        let payload = &bodies[1]["message"]["attachment"]["payload"];
        assert_eq!(payload["template_type"], "button");
        assert_eq!(payload["text"], "b".repeat(600));
    }

    #[test]
    fn an_image_goes_by_url_and_its_caption_follows_as_text() {
        let message = to(OutboundBody::Media {
            kind: OutboundMediaKind::Image,
            url: "https://shop.example/jacket.jpg".into(),
            caption: Some("The blue jacket".into()),
        });
        assert_eq!(
            bodies(&message),
            vec![
                json!({
                    "recipient": {"id": PSID},
                    "messaging_type": "RESPONSE",
                    "message": {"attachment": {"type": "image", "payload": {"url": "https://shop.example/jacket.jpg", "is_reusable": true}}}
                }),
                text_body("The blue jacket"),
            ]
        );
    }

    #[test]
    fn a_file_without_caption_is_one_request() {
        let message = to(OutboundBody::Media {
            kind: OutboundMediaKind::File,
            url: "https://shop.example/invoice.pdf".into(),
            caption: None,
        });
        assert_eq!(
            bodies(&message),
            vec![json!({
                "recipient": {"id": PSID},
                "messaging_type": "RESPONSE",
                "message": {"attachment": {"type": "file", "payload": {"url": "https://shop.example/invoice.pdf", "is_reusable": true}}}
            })]
        );
        let no_url = to(OutboundBody::Media {
            kind: OutboundMediaKind::File,
            url: " ".into(),
            caption: None,
        });
        assert_eq!(
            render(&no_url, &SecretString::from(TOKEN)).unwrap_err(),
            RenderError::Empty
        );
    }

    #[test]
    fn a_location_request_is_plain_text() {
        assert_eq!(
            bodies(&to(OutboundBody::LocationRequest {
                text: "Send me your location to find the nearest store.".into()
            })),
            vec![text_body(
                "Send me your location to find the nearest store."
            )]
        );
    }

    #[test]
    fn typing_and_mark_read_are_sender_actions_without_a_message() {
        let mut typing = to(OutboundBody::Typing);
        // Sender actions take no messaging type, tagged or not.
        typing.message_tag = Some("HUMAN_AGENT".into());
        assert_eq!(
            bodies(&typing),
            vec![json!({"recipient": {"id": PSID}, "sender_action": "typing_on"})]
        );
        assert_eq!(
            bodies(&to(OutboundBody::MarkRead {
                message_id: "m_1".into()
            })),
            vec![json!({"recipient": {"id": PSID}, "sender_action": "mark_seen"})]
        );
    }

    #[test]
    fn answering_a_callback_sends_nothing() {
        assert!(
            render_ok(&to(OutboundBody::AnswerCallback {
                callback_id: "1".into(),
                text: None
            }))
            .is_empty()
        );
    }

    #[test]
    fn whatsapp_templates_are_unsupported() {
        let message = to(OutboundBody::Template {
            name: "order_update".into(),
            language: "en_US".into(),
            parameters: vec![],
        });
        assert!(matches!(
            render(&message, &SecretString::from(TOKEN)),
            Err(RenderError::Unsupported(_))
        ));
    }

    #[test]
    fn other_platforms_and_integer_or_empty_chats_are_refused() {
        let mut message = to(OutboundBody::Typing);
        message.conversation.platform = Platform::Telegram;
        assert_eq!(
            render(&message, &SecretString::from(TOKEN)).unwrap_err(),
            RenderError::WrongPlatform {
                expected: "messenger",
                found: "telegram"
            }
        );
        let mut message = to(OutboundBody::Typing);
        message.conversation.chat = ChatId::Int(-100123);
        assert_eq!(
            render(&message, &SecretString::from(TOKEN)).unwrap_err(),
            RenderError::InvalidChat("-100123".into())
        );
        message.conversation.chat = ChatId::Str(String::new());
        assert_eq!(
            render(&message, &SecretString::from(TOKEN)).unwrap_err(),
            RenderError::InvalidChat(String::new())
        );
    }

    #[test]
    fn the_token_never_shows_in_a_logged_request() {
        for request in render_ok(&choice("Pick", &["A"], ChoiceStyle::Buttons)) {
            assert!(!format!("{request:?}").contains(TOKEN));
        }
    }

    fn style() -> impl Strategy<Value = ChoiceStyle> {
        prop_oneof![
            Just(ChoiceStyle::QuickReplies),
            Just(ChoiceStyle::Buttons),
            Just(ChoiceStyle::List {
                button: "Menu".into()
            }),
        ]
    }

    fn option() -> impl Strategy<Value = ChoiceOption> {
        ("[a-zé😀 ]{0,24}", "[A-Z_é]{0,12}")
            .prop_map(|(title, payload)| ChoiceOption::new(title, payload))
    }

    fn non_space(text: &str) -> String {
        text.chars().filter(|c| !c.is_whitespace()).collect()
    }

    proptest! {
        #[test]
        fn rendered_choices_stay_inside_every_messenger_limit_and_lose_no_character(
            text in "[a-zé😀 \n]{0,4500}",
            options in proptest::collection::vec(option(), 0..16),
            style in style(),
        ) {
            let message = to(OutboundBody::Choice { text: text.clone(), options, style });
            let Ok(requests) = render(&message, &SecretString::from(TOKEN)) else {
                // Only a choice with neither text nor options is refused.
                prop_assert!(text.trim().is_empty());
                return Ok(());
            };
            let mut shown = String::new();
            for request in requests {
                let body = request.body.unwrap_or_default();
                let message = &body["message"];
                if let Some(text) = message["text"].as_str() {
                    prop_assert!(!text.trim().is_empty());
                    prop_assert!(text.chars().count() <= MAX_TEXT_CHARS);
                    shown.push_str(text);
                }
                if let Some(replies) = message["quick_replies"].as_array() {
                    prop_assert!(replies.len() <= MAX_QUICK_REPLIES);
                    for reply in replies {
                        let title = reply["title"].as_str().unwrap_or_default();
                        let payload = reply["payload"].as_str().unwrap_or_default();
                        prop_assert!((1..=MAX_TITLE_CHARS).contains(&title.chars().count()));
                        prop_assert!((1..=MAX_PAYLOAD_BYTES).contains(&payload.len()));
                    }
                }
                let template = &message["attachment"]["payload"];
                if let Some(buttons) = template["buttons"].as_array() {
                    let text = template["text"].as_str().unwrap_or_default();
                    prop_assert!(!text.trim().is_empty());
                    prop_assert!(text.chars().count() <= MAX_BUTTON_TEMPLATE_TEXT_CHARS);
                    prop_assert!((1..=MAX_BUTTONS).contains(&buttons.len()));
                    for button in buttons {
                        let title = button["title"].as_str().unwrap_or_default();
                        prop_assert!((1..=MAX_TITLE_CHARS).contains(&title.chars().count()));
                    }
                    shown.push_str(text);
                }
            }
            // Every character of the text arrives, in order, whole.
            prop_assert!(non_space(&shown).starts_with(&non_space(&text)));
        }

        #[test]
        fn rendered_text_is_split_without_exceeding_2000_chars_or_losing_a_character(
            text in "\\PC{1,3000}|[é😀\n ]{2001,4100}",
        ) {
            let Ok(requests) = render(&to(OutboundBody::Text { text: text.clone() }), &SecretString::from(TOKEN)) else {
                prop_assert!(text.trim().is_empty());
                return Ok(());
            };
            let mut shown = String::new();
            for request in requests {
                let body = request.body.unwrap_or_default();
                let chunk = body["message"]["text"].as_str().unwrap_or_default();
                prop_assert!(!chunk.is_empty());
                prop_assert!(chunk.chars().count() <= MAX_TEXT_CHARS);
                shown.push_str(chunk);
            }
            prop_assert_eq!(non_space(&shown), non_space(&text));
        }
    }
}
