//! [`OutboundMessage`] into Bot API calls.
//!
//! Every text goes out with `parse_mode: HTML`, escaped, so customer or shop
//! data can never inject markup or break a send with "can't parse
//! entities". Limits are measured on the text as Telegram counts it after
//! parsing: the unescaped text, in UTF-16 units. So text is split first and
//! each chunk escaped afterwards; an entity like `&amp;` is never cut.

use serde_json::{Map, Value, json};
use switchboard_model::text::{TextUnit, numbered_menu, split_text, truncate};
use switchboard_model::{
    ChatId, ChoiceOption, ConversationKey, OutboundBody, OutboundMediaKind, OutboundMessage,
    Platform, PlatformRequest, RenderError, RequestAuth, SecretString,
};

use crate::html::escape_html;

/// `sendMessage` text: 1-4096 characters after entity parsing.
pub(crate) const MAX_TEXT_UNITS: usize = 4096;
/// `sendPhoto` / `sendDocument` caption: 0-1024 characters after parsing.
const MAX_CAPTION_UNITS: usize = 1024;
/// `InlineKeyboardButton.callback_data`: 1-64 bytes.
pub(crate) const MAX_CALLBACK_DATA_BYTES: usize = 64;
/// Telegram's limit for one inline keyboard.
pub(crate) const MAX_BUTTONS: usize = 100;
pub(crate) const MAX_BUTTON_TITLE_CHARS: usize = 64;
/// `answerCallbackQuery.text`: 0-200 characters.
const MAX_CALLBACK_ANSWER_UNITS: usize = 200;

pub(crate) fn render(
    bot_token: &SecretString,
    message: &OutboundMessage,
) -> Result<Vec<PlatformRequest>, RenderError> {
    let chat = Chat {
        id: target_chat(&message.conversation)?,
        thread_id: message.thread_id,
        bot_token,
    };
    match &message.body {
        OutboundBody::Text { text } => chat.texts(text, None),
        OutboundBody::Choice { text, options, .. } => chat.choice(text, options),
        OutboundBody::Media { kind, url, caption } => chat.media(*kind, url, caption.as_deref()),
        OutboundBody::LocationRequest { text } => chat.texts(text, Some(location_keyboard())),
        OutboundBody::Typing => Ok(vec![
            chat.request("/sendChatAction", json!({"action": "typing"})),
        ]),
        // Telegram has no read receipts for bots to send.
        OutboundBody::MarkRead { .. } => Ok(Vec::new()),
        OutboundBody::AnswerCallback { callback_id, text } => {
            Ok(vec![chat.answer_callback(callback_id, text.as_deref())?])
        }
        OutboundBody::Template { .. } => Err(RenderError::Unsupported(
            "Telegram has no message templates",
        )),
    }
}

fn target_chat(conversation: &ConversationKey) -> Result<i64, RenderError> {
    if conversation.platform != Platform::Telegram {
        return Err(RenderError::WrongPlatform {
            expected: Platform::Telegram.as_str(),
            found: conversation.platform.as_str(),
        });
    }
    match &conversation.chat {
        ChatId::Int(id) => Ok(*id),
        ChatId::Str(other) => Err(RenderError::InvalidChat(other.clone())),
    }
}

/// The chat (and forum topic) every request of one message goes to.
struct Chat<'a> {
    id: i64,
    thread_id: Option<i64>,
    bot_token: &'a SecretString,
}

impl Chat<'_> {
    fn auth(&self) -> RequestAuth {
        RequestAuth::PathToken {
            prefix: "bot",
            token: self.bot_token.clone(),
        }
    }

    /// A call addressed to this chat: `body` plus `chat_id` and the topic.
    fn request(&self, path: &str, body: Value) -> PlatformRequest {
        let mut fields = match body {
            Value::Object(fields) => fields,
            _ => Map::new(),
        };
        fields.insert("chat_id".into(), self.id.into());
        if let Some(thread_id) = self.thread_id {
            fields.insert("message_thread_id".into(), thread_id.into());
        }
        PlatformRequest::post_json(path, self.auth(), Value::Object(fields))
    }

    /// `text` as one `sendMessage` per chunk, `reply_markup` on the last so
    /// the buttons sit under the end of what they answer.
    fn texts(
        &self,
        text: &str,
        reply_markup: Option<Value>,
    ) -> Result<Vec<PlatformRequest>, RenderError> {
        let chunks = split_text(text, MAX_TEXT_UNITS, TextUnit::Utf16);
        let last = chunks.len().checked_sub(1).ok_or(RenderError::Empty)?;
        let mut reply_markup = reply_markup;
        Ok(chunks
            .iter()
            .enumerate()
            .map(|(index, chunk)| {
                let mut body = json!({"text": escape_html(chunk), "parse_mode": "HTML"});
                if index == last
                    && let Some(markup) = reply_markup.take()
                {
                    body["reply_markup"] = markup;
                }
                self.request("/sendMessage", body)
            })
            .collect())
    }

    fn choice(
        &self,
        text: &str,
        options: &[ChoiceOption],
    ) -> Result<Vec<PlatformRequest>, RenderError> {
        if text.trim().is_empty() {
            return Err(RenderError::Empty);
        }
        if !fits_inline_keyboard(options) {
            return self.texts(&numbered_menu(text, options), None);
        }
        let rows: Vec<Value> = options
            .iter()
            .map(|option| {
                json!([{
                    "text": truncate(option.title.trim(), MAX_BUTTON_TITLE_CHARS, TextUnit::Chars),
                    "callback_data": option.payload,
                }])
            })
            .collect();
        self.texts(text, Some(json!({"inline_keyboard": rows})))
    }

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
        let (path, field) = match kind {
            OutboundMediaKind::Image => ("/sendPhoto", "photo"),
            OutboundMediaKind::File => ("/sendDocument", "document"),
        };
        let mut body = Map::new();
        body.insert(field.into(), url.into());
        let mut follow_up = Vec::new();
        match caption.map(str::trim).filter(|c| !c.is_empty()) {
            Some(caption) if TextUnit::Utf16.len(caption) <= MAX_CAPTION_UNITS => {
                body.insert("caption".into(), escape_html(caption).into());
                body.insert("parse_mode".into(), "HTML".into());
            }
            // Cutting a caption would lose words the shop meant to send.
            Some(caption) => follow_up = self.texts(caption, None)?,
            None => {}
        }
        let mut requests = vec![self.request(path, Value::Object(body))];
        requests.extend(follow_up);
        Ok(requests)
    }

    fn answer_callback(
        &self,
        callback_id: &str,
        text: Option<&str>,
    ) -> Result<PlatformRequest, RenderError> {
        if callback_id.is_empty() {
            return Err(RenderError::Empty);
        }
        // Not chat-addressed, and shown as a plain toast: no chat_id, no
        // parse_mode, no escaping.
        let mut body = json!({"callback_query_id": callback_id});
        if let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) {
            body["text"] = truncate(text, MAX_CALLBACK_ANSWER_UNITS, TextUnit::Utf16).into();
        }
        Ok(PlatformRequest::post_json(
            "/answerCallbackQuery",
            self.auth(),
            body,
        ))
    }
}

/// Whether the options can be inline buttons. Otherwise the whole set
/// degrades to a numbered text menu: dropping or cutting some options would
/// leave the customer a different choice than the assistant offered, and a
/// cut `callback_data` would come back as a payload nobody issued.
fn fits_inline_keyboard(options: &[ChoiceOption]) -> bool {
    !options.is_empty()
        && options.len() <= MAX_BUTTONS
        && options.iter().all(|option| {
            !option.title.trim().is_empty()
                && (1..=MAX_CALLBACK_DATA_BYTES).contains(&option.payload.len())
        })
}

fn location_keyboard() -> Value {
    json!({
        "keyboard": [[{"text": "Share location", "request_location": true}]],
        "one_time_keyboard": true,
        "resize_keyboard": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::html::unescape_html;
    use proptest::prelude::*;
    use switchboard_model::{ChannelId, ChoiceStyle, ExposeSecret, HttpMethod};

    const TOKEN: &str = "123456:AAE-test-token";

    fn telegram_chat(id: i64) -> ConversationKey {
        ConversationKey::new(
            Platform::Telegram,
            ChannelId::new("shop-telegram").unwrap(),
            ChatId::Int(id),
        )
    }

    fn render_body(body: OutboundBody) -> Result<Vec<PlatformRequest>, RenderError> {
        render(
            &SecretString::from(TOKEN),
            &OutboundMessage::new(telegram_chat(42), body),
        )
    }

    /// (path, body) of each request, after checking what every request shares.
    fn calls(requests: &[PlatformRequest]) -> Vec<(String, Value)> {
        requests
            .iter()
            .map(|request| {
                assert_eq!(request.method, HttpMethod::Post);
                match &request.auth {
                    RequestAuth::PathToken { prefix, token } => {
                        assert_eq!(*prefix, "bot");
                        assert_eq!(token.expose_secret(), TOKEN);
                    }
                    other => panic!("expected the token in the path, got {other:?}"),
                }
                assert!(!request.path.contains(TOKEN));
                (
                    request.path.clone(),
                    request.body.clone().unwrap_or(Value::Null),
                )
            })
            .collect()
    }

    fn text(text: &str) -> OutboundBody {
        OutboundBody::Text { text: text.into() }
    }

    fn choice(text: &str, options: Vec<ChoiceOption>) -> OutboundBody {
        OutboundBody::Choice {
            text: text.into(),
            options,
            style: ChoiceStyle::QuickReplies,
        }
    }

    #[test]
    fn text_is_sent_escaped_in_html_mode() {
        let requests = render_body(text("Tea & <biscuits>")).unwrap();
        assert_eq!(
            calls(&requests),
            vec![(
                "/sendMessage".to_owned(),
                json!({"chat_id": 42, "text": "Tea &amp; &lt;biscuits&gt;", "parse_mode": "HTML"})
            )]
        );
        assert_eq!(
            requests[0].url("https://api.telegram.org").expose_secret(),
            format!("https://api.telegram.org/bot{TOKEN}/sendMessage")
        );
        assert!(!format!("{requests:?}").contains("AAE-test-token"));
    }

    #[test]
    fn a_forum_topic_and_a_negative_group_id_are_kept() {
        let mut message = OutboundMessage::new(telegram_chat(-1001241558182), text("hi"));
        message.thread_id = Some(134545);
        let requests = render(&SecretString::from(TOKEN), &message).unwrap();
        assert_eq!(
            calls(&requests)[0].1,
            json!({"chat_id": -1001241558182_i64, "message_thread_id": 134545,
                   "text": "hi", "parse_mode": "HTML"})
        );
    }

    #[test]
    fn long_text_is_split_on_the_unescaped_length() {
        // 4000 `&`s: 4000 units for Telegram, 20000 bytes once escaped.
        let long = format!("{} {}", "&".repeat(4000), "b".repeat(200));
        let calls = calls(&render_body(text(&long)).unwrap());
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].1["text"], "&amp;".repeat(4000));
        assert_eq!(calls[1].1["text"], "b".repeat(200));
    }

    #[test]
    fn empty_text_is_refused() {
        assert_eq!(render_body(text(" \n ")).unwrap_err(), RenderError::Empty);
        assert_eq!(
            render_body(choice("", vec![ChoiceOption::new("A", "A")])).unwrap_err(),
            RenderError::Empty
        );
    }

    #[test]
    fn options_become_an_inline_keyboard_one_button_per_row() {
        let requests = render_body(choice(
            "What do you need?",
            vec![
                ChoiceOption::new("Opening hours", "HOURS"),
                ChoiceOption::new("Track <my> order", "ORDER:track"),
            ],
        ))
        .unwrap();
        assert_eq!(
            calls(&requests),
            vec![(
                "/sendMessage".to_owned(),
                json!({
                    "chat_id": 42,
                    "text": "What do you need?",
                    "parse_mode": "HTML",
                    "reply_markup": {"inline_keyboard": [
                        [{"text": "Opening hours", "callback_data": "HOURS"}],
                        [{"text": "Track <my> order", "callback_data": "ORDER:track"}]
                    ]}
                })
            )]
        );
    }

    #[test]
    fn long_button_titles_are_cut_to_the_declared_limit() {
        let title = "x".repeat(80);
        let calls =
            calls(&render_body(choice("Pick", vec![ChoiceOption::new(title, "X")])).unwrap());
        let shown = calls[0].1["reply_markup"]["inline_keyboard"][0][0]["text"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(shown.chars().count(), 64);
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn the_keyboard_goes_under_the_last_chunk_of_a_long_text() {
        let long = format!("{} {}", "a".repeat(4095), "tail");
        let calls =
            calls(&render_body(choice(&long, vec![ChoiceOption::new("OK", "OK")])).unwrap());
        assert_eq!(calls.len(), 2);
        assert!(calls[0].1.get("reply_markup").is_none());
        assert_eq!(calls[1].1["text"], "tail");
        assert_eq!(
            calls[1].1["reply_markup"],
            json!({"inline_keyboard": [[{"text": "OK", "callback_data": "OK"}]]})
        );
    }

    #[test]
    fn options_that_cannot_be_buttons_degrade_to_a_numbered_menu() {
        let expected_menu = "Pick one:\n\n1. Hours\n2. Stores\n\nReply with a number.";
        let cases = [
            vec![
                ChoiceOption::new("Hours", "HOURS"),
                ChoiceOption::new("Stores", ""),
            ],
            vec![
                ChoiceOption::new("Hours", "HOURS"),
                ChoiceOption::new("Stores", "é".repeat(33)),
            ],
        ];
        for options in cases {
            let calls = calls(&render_body(choice("Pick one:", options)).unwrap());
            assert_eq!(
                calls,
                vec![(
                    "/sendMessage".to_owned(),
                    json!({"chat_id": 42, "text": expected_menu, "parse_mode": "HTML"})
                )]
            );
        }
        let too_many: Vec<ChoiceOption> = (0..101)
            .map(|i| ChoiceOption::new(format!("Item {i}"), format!("ITEM:{i}")))
            .collect();
        let calls = calls(&render_body(choice("Pick one:", too_many)).unwrap());
        assert!(
            calls
                .iter()
                .all(|(_, body)| body.get("reply_markup").is_none())
        );
        assert!(
            calls[0].1["text"]
                .as_str()
                .unwrap()
                .contains("101. Item 100")
        );
    }

    #[test]
    fn exactly_64_bytes_of_payload_still_fit_a_button() {
        let payload = "é".repeat(32);
        let calls = calls(
            &render_body(choice(
                "Pick",
                vec![ChoiceOption::new("A", payload.clone())],
            ))
            .unwrap(),
        );
        assert_eq!(
            calls[0].1["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
            payload
        );
    }

    #[test]
    fn an_image_is_sent_by_url_with_an_escaped_caption() {
        let requests = render_body(OutboundBody::Media {
            kind: OutboundMediaKind::Image,
            url: "https://shop.example/jacket.jpg".into(),
            caption: Some("Jacket <blue> & warm".into()),
        })
        .unwrap();
        assert_eq!(
            calls(&requests),
            vec![(
                "/sendPhoto".to_owned(),
                json!({"chat_id": 42, "photo": "https://shop.example/jacket.jpg",
                       "caption": "Jacket &lt;blue&gt; &amp; warm", "parse_mode": "HTML"})
            )]
        );
    }

    #[test]
    fn a_file_without_caption_is_a_bare_send_document() {
        let requests = render_body(OutboundBody::Media {
            kind: OutboundMediaKind::File,
            url: "https://shop.example/invoice.pdf".into(),
            caption: None,
        })
        .unwrap();
        assert_eq!(
            calls(&requests),
            vec![(
                "/sendDocument".to_owned(),
                json!({"chat_id": 42, "document": "https://shop.example/invoice.pdf"})
            )]
        );
    }

    #[test]
    fn a_caption_over_1024_units_follows_the_media_as_text() {
        let caption = "😀".repeat(513); // 1026 UTF-16 units
        let calls = calls(
            &render_body(OutboundBody::Media {
                kind: OutboundMediaKind::Image,
                url: "https://shop.example/a.jpg".into(),
                caption: Some(caption.clone()),
            })
            .unwrap(),
        );
        assert_eq!(
            calls,
            vec![
                (
                    "/sendPhoto".to_owned(),
                    json!({"chat_id": 42, "photo": "https://shop.example/a.jpg"})
                ),
                (
                    "/sendMessage".to_owned(),
                    json!({"chat_id": 42, "text": caption, "parse_mode": "HTML"})
                ),
            ]
        );
    }

    #[test]
    fn a_location_request_shows_a_one_time_share_button() {
        let calls = calls(
            &render_body(OutboundBody::LocationRequest {
                text: "Where are you?".into(),
            })
            .unwrap(),
        );
        assert_eq!(
            calls,
            vec![(
                "/sendMessage".to_owned(),
                json!({
                    "chat_id": 42, "text": "Where are you?", "parse_mode": "HTML",
                    "reply_markup": {
                        "keyboard": [[{"text": "Share location", "request_location": true}]],
                        "one_time_keyboard": true,
                        "resize_keyboard": true
                    }
                })
            )]
        );
    }

    #[test]
    fn typing_is_a_chat_action_and_mark_read_sends_nothing() {
        assert_eq!(
            calls(&render_body(OutboundBody::Typing).unwrap()),
            vec![(
                "/sendChatAction".to_owned(),
                json!({"chat_id": 42, "action": "typing"})
            )]
        );
        assert!(
            render_body(OutboundBody::MarkRead {
                message_id: "7".into()
            })
            .unwrap()
            .is_empty()
        );
    }

    #[test]
    fn a_callback_answer_has_plain_text_within_200_units() {
        let calls = calls(
            &render_body(OutboundBody::AnswerCallback {
                callback_id: "4382bfdwdsb323b2d9".into(),
                text: Some("Saved <3".into()),
            })
            .unwrap(),
        );
        assert_eq!(
            calls,
            vec![(
                "/answerCallbackQuery".to_owned(),
                json!({"callback_query_id": "4382bfdwdsb323b2d9", "text": "Saved <3"})
            )]
        );
        let long = answer_body(&"y".repeat(300));
        assert_eq!(TextUnit::Utf16.len(long["text"].as_str().unwrap()), 200);
        assert_eq!(answer_body(" "), json!({"callback_query_id": "1"}));
    }

    fn answer_body(text: &str) -> Value {
        let requests = render_body(OutboundBody::AnswerCallback {
            callback_id: "1".into(),
            text: Some(text.into()),
        })
        .unwrap();
        calls(&requests).remove(0).1
    }

    #[test]
    fn a_whatsapp_template_is_unsupported() {
        assert_eq!(
            render_body(OutboundBody::Template {
                name: "order_update".into(),
                language: "en_US".into(),
                parameters: vec!["1234".into()],
            })
            .unwrap_err(),
            RenderError::Unsupported("Telegram has no message templates")
        );
    }

    #[test]
    fn other_platforms_and_string_chats_are_refused() {
        let messenger = ConversationKey::new(
            Platform::Messenger,
            ChannelId::new("shop-fb").unwrap(),
            ChatId::Str("1254459154682919".into()),
        );
        assert_eq!(
            render(
                &SecretString::from(TOKEN),
                &OutboundMessage::new(messenger, text("hi"))
            )
            .unwrap_err(),
            RenderError::WrongPlatform {
                expected: "telegram",
                found: "messenger"
            }
        );
        let named = ConversationKey::new(
            Platform::Telegram,
            ChannelId::new("tg").unwrap(),
            ChatId::Str("@shopchannel".into()),
        );
        assert_eq!(
            render(
                &SecretString::from(TOKEN),
                &OutboundMessage::new(named, text("hi"))
            )
            .unwrap_err(),
            RenderError::InvalidChat("@shopchannel".into())
        );
    }

    /// Every text a customer is shown by one request, unescaped, as
    /// Telegram measures it.
    fn shown_texts(body: &Value) -> Vec<String> {
        ["text", "caption"]
            .iter()
            .filter_map(|field| body.get(*field).and_then(Value::as_str))
            .map(unescape_html)
            .collect()
    }

    fn callback_data(body: &Value) -> Vec<String> {
        body.pointer("/reply_markup/inline_keyboard")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|button| button.get("callback_data").and_then(Value::as_str))
            .map(str::to_owned)
            .collect()
    }

    fn no_whitespace(text: &str) -> String {
        text.chars().filter(|c| !c.is_whitespace()).collect()
    }

    fn long_text() -> impl Strategy<Value = String> {
        // Words of markup characters, astral emoji and CJK, so escaping
        // grows the bytes and UTF-16 counts differ from chars; long runs
        // without spaces force hard cuts; most cases need splitting.
        let word = prop_oneof![
            8 => "[a-z<>&😀中é]{1,40}",
            1 => "[<>&😀a]{300,900}",
            1 => Just("\n".to_owned()),
            1 => Just("\n\n".to_owned()),
        ];
        prop::collection::vec(word, 0..600).prop_map(|words| words.join(" "))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn text_chunks_stay_within_4096_units_and_keep_every_character(text in long_text()) {
            match render_body(OutboundBody::Text { text: text.clone() }) {
                Err(RenderError::Empty) => prop_assert!(text.trim().is_empty()),
                Err(other) => prop_assert!(false, "unexpected error {other:?}"),
                Ok(requests) => {
                    let mut shown = String::new();
                    for (_, body) in calls(&requests) {
                        for chunk in shown_texts(&body) {
                            prop_assert!(!chunk.is_empty());
                            prop_assert!(TextUnit::Utf16.len(&chunk) <= MAX_TEXT_UNITS);
                            shown.push_str(&chunk);
                        }
                    }
                    prop_assert_eq!(no_whitespace(&shown), no_whitespace(&text));
                }
            }
        }

        #[test]
        fn captions_and_texts_of_media_stay_within_their_limits(caption in long_text()) {
            let requests = render_body(OutboundBody::Media {
                kind: OutboundMediaKind::Image,
                url: "https://shop.example/a.jpg".into(),
                caption: Some(caption.clone()),
            }).unwrap();
            let mut shown = String::new();
            for (path, body) in calls(&requests) {
                for chunk in shown_texts(&body) {
                    let limit = if path == "/sendPhoto" { MAX_CAPTION_UNITS } else { MAX_TEXT_UNITS };
                    prop_assert!(TextUnit::Utf16.len(&chunk) <= limit);
                    shown.push_str(&chunk);
                }
            }
            prop_assert_eq!(no_whitespace(&shown), no_whitespace(&caption));
        }

        #[test]
        fn callback_data_never_exceeds_64_bytes(
            text in "[a-z&][a-z &]{0,29}",
            options in prop::collection::vec(("[a-zA-Z é😀]{0,20}", "[a-z0-9é😀:_]{0,40}"), 0..120),
        ) {
            let options: Vec<ChoiceOption> = options
                .into_iter()
                .map(|(title, payload)| ChoiceOption::new(title, payload))
                .collect();
            let requests = render_body(choice(&text, options.clone())).unwrap();
            let mut buttons = Vec::new();
            for (_, body) in calls(&requests) {
                buttons.extend(callback_data(&body));
            }
            for data in &buttons {
                prop_assert!((1..=MAX_CALLBACK_DATA_BYTES).contains(&data.len()), "{data:?}");
            }
            // Buttons are all or nothing: never a silently shortened menu.
            prop_assert!(buttons.is_empty() || buttons.len() == options.len());
            prop_assert!(buttons.len() <= MAX_BUTTONS);
        }
    }
}
