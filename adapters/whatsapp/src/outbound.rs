//! [`OutboundMessage`]s into Cloud API requests:
//! `POST /{phone-number-id}/messages` with a bearer token and a body
//! `{messaging_product: "whatsapp", recipient_type: "individual", to, type, <type>: {...}}`
//! (WA-OAS `MessageRequest`).
//!
//! Every limit below is enforced here, so a message that would be refused by
//! Meta is reshaped before it leaves: long text is split, options that do not
//! fit reply buttons go into a list, options that fit neither become a
//! numbered text menu, and a body too long for an interactive message is sent
//! as text first.

use std::collections::HashSet;

use serde_json::{Map, Value, json};
use switchboard_model::text::{TextUnit, numbered_menu, split_text, truncate};
use switchboard_model::{
    ChatId, ChoiceOption, ChoiceStyle, OutboundBody, OutboundMediaKind, OutboundMessage, Platform,
    PlatformRequest, RenderError, RequestAuth, SecretString,
};

/// WhatsApp's limits, in characters (WA-OAS `MessageRequest` schemas;
/// PLATFORMS.md §2.6).
pub mod limits {
    /// `text.body`.
    pub const TEXT_CHARS: usize = 4096;
    /// `interactive.body.text`.
    pub const INTERACTIVE_BODY_CHARS: usize = 1024;
    /// `image.caption`, `document.caption`.
    pub const CAPTION_CHARS: usize = 1024;
    /// Reply buttons on one interactive message.
    pub const BUTTONS: usize = 3;
    /// `reply.title`.
    pub const BUTTON_TITLE_CHARS: usize = 20;
    /// `reply.id`.
    pub const BUTTON_ID_CHARS: usize = 256;
    /// Rows in one list message, counted over all sections.
    pub const LIST_ROWS: usize = 10;
    /// `rows[].title`.
    pub const ROW_TITLE_CHARS: usize = 24;
    /// `rows[].id`.
    pub const ROW_ID_CHARS: usize = 200;
    /// `rows[].description`.
    pub const ROW_DESCRIPTION_CHARS: usize = 72;
    /// `action.button`, the label that opens the list.
    pub const LIST_BUTTON_CHARS: usize = 20;
}

use limits::*;

/// The list opener label when the assistant did not choose one.
const DEFAULT_LIST_BUTTON: &str = "Options";

pub(crate) fn render(
    phone_number_id: &str,
    access_token: &SecretString,
    message: &OutboundMessage,
) -> Result<Vec<PlatformRequest>, RenderError> {
    let conversation = &message.conversation;
    if conversation.platform != Platform::WhatsApp {
        return Err(RenderError::WrongPlatform {
            expected: "whatsapp",
            found: conversation.platform.as_str(),
        });
    }
    let to = match &conversation.chat {
        ChatId::Str(to) if !to.trim().is_empty() => to.trim(),
        other => return Err(RenderError::InvalidChat(other.to_string())),
    };
    // The id becomes a path segment; anything but a plain id would send the
    // request somewhere else on the Graph API.
    if phone_number_id.is_empty()
        || !phone_number_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(RenderError::Unsupported(
            "the channel's phone_number_id is not a Graph id",
        ));
    }
    let path = format!("/{phone_number_id}/messages");
    Ok(bodies(to, &message.body)?
        .into_iter()
        .map(|body| {
            PlatformRequest::post_json(
                path.clone(),
                RequestAuth::Bearer(access_token.clone()),
                body,
            )
        })
        .collect())
}

fn bodies(to: &str, body: &OutboundBody) -> Result<Vec<Value>, RenderError> {
    match body {
        OutboundBody::Text { text } => non_empty(texts(to, text)),
        OutboundBody::Choice {
            text,
            options,
            style,
        } => choice(to, text, options, style),
        OutboundBody::Media { kind, url, caption } => media(to, *kind, url, caption.as_deref()),
        OutboundBody::LocationRequest { text } => {
            if text.trim().is_empty() {
                return Err(RenderError::Empty);
            }
            let (mut out, body) = interactive_body(to, text);
            out.push(envelope(
                to,
                "interactive",
                json!({
                    "type": "location_request_message",
                    "body": {"text": body},
                    "action": {"name": "send_location"},
                }),
            ));
            Ok(out)
        }
        OutboundBody::MarkRead { message_id } => {
            let message_id = message_id.trim();
            if message_id.is_empty() {
                return Err(RenderError::Empty);
            }
            Ok(vec![json!({
                "messaging_product": "whatsapp",
                "status": "read",
                "message_id": message_id,
            })])
        }
        // WhatsApp's typing indicator is not a request of its own: it rides
        // on marking one received message read (`typing_indicator` next to
        // `status: read`) and needs that message's id, which `Typing` does
        // not carry. Showing nothing is the honest rendering.
        OutboundBody::Typing => Ok(vec![]),
        // Telegram only: WhatsApp replies need no acknowledgement.
        OutboundBody::AnswerCallback { .. } => Ok(vec![]),
        OutboundBody::Template {
            name,
            language,
            parameters,
        } => template(to, name, language, parameters),
    }
}

fn non_empty(bodies: Vec<Value>) -> Result<Vec<Value>, RenderError> {
    if bodies.is_empty() {
        Err(RenderError::Empty)
    } else {
        Ok(bodies)
    }
}

/// The common envelope around one message object.
fn envelope(to: &str, kind: &str, payload: Value) -> Value {
    let mut body = Map::new();
    body.insert("messaging_product".into(), "whatsapp".into());
    body.insert("recipient_type".into(), "individual".into());
    body.insert("to".into(), to.into());
    body.insert("type".into(), kind.into());
    body.insert(kind.into(), payload);
    Value::Object(body)
}

fn chars(text: &str) -> usize {
    TextUnit::Chars.len(text)
}

/// `text` as text messages of at most [`TEXT_CHARS`]; none when blank.
fn texts(to: &str, text: &str) -> Vec<Value> {
    split_text(text, TEXT_CHARS, TextUnit::Chars)
        .into_iter()
        .map(|chunk| {
            envelope(
                to,
                "text",
                // Link previews fetch whatever URL is in the text from
                // Meta's side; the assistant does not ask for them.
                json!({"preview_url": false, "body": chunk}),
            )
        })
        .collect()
}

/// The body of an interactive message, and the text messages that must go
/// before it when `text` is longer than an interactive body may be: the
/// last paragraph stays with the options, the rest goes first as text.
fn interactive_body(to: &str, text: &str) -> (Vec<Value>, String) {
    let text = text.trim();
    if chars(text) <= INTERACTIVE_BODY_CHARS {
        return (vec![], text.to_owned());
    }
    let (head, last) = text
        .rsplit_once("\n\n")
        .or_else(|| text.rsplit_once('\n'))
        .map_or(("", text), |(head, last)| (head.trim(), last.trim()));
    if !head.is_empty() && !last.is_empty() && chars(last) <= INTERACTIVE_BODY_CHARS {
        return (texts(to, head), last.to_owned());
    }
    // No paragraph short enough to stand alone: send everything as text and
    // repeat the start of the last part next to the options, so nothing is
    // lost and the options keep some context.
    let tail = if last.is_empty() { text } else { last };
    (
        texts(to, text),
        truncate(tail, INTERACTIVE_BODY_CHARS, TextUnit::Chars),
    )
}

fn choice(
    to: &str,
    text: &str,
    options: &[ChoiceOption],
    style: &ChoiceStyle,
) -> Result<Vec<Value>, RenderError> {
    if options.is_empty() {
        return non_empty(texts(to, text));
    }
    // An interactive message needs a body; a bare option list reads better
    // as a numbered menu than with an invented prompt.
    if text.trim().is_empty() {
        return non_empty(texts(to, &numbered_menu(text, options)));
    }
    let prefer_list = matches!(style, ChoiceStyle::List { .. }) || options.len() > BUTTONS;
    let label = list_label(style);
    let as_buttons = || buttons_action(options).map(|action| ("button", action));
    let as_list = || list_action(options, &label).map(|action| ("list", action));
    let interactive = if prefer_list {
        as_list().or_else(as_buttons)
    } else {
        as_buttons().or_else(as_list)
    };
    let Some((kind, action)) = interactive else {
        return non_empty(texts(to, &numbered_menu(text, options)));
    };
    let (mut out, body) = interactive_body(to, text);
    out.push(envelope(
        to,
        "interactive",
        json!({"type": kind, "body": {"text": body}, "action": action}),
    ));
    Ok(out)
}

/// The label is only the list's opener, so shortening it loses nothing the
/// customer chooses by; titles and ids, in contrast, are never altered.
fn list_label(style: &ChoiceStyle) -> String {
    match style {
        ChoiceStyle::List { button } if !button.trim().is_empty() => {
            truncate(button.trim(), LIST_BUTTON_CHARS, TextUnit::Chars)
        }
        _ => DEFAULT_LIST_BUTTON.to_owned(),
    }
}

fn fits(text: &str, max_chars: usize) -> bool {
    !text.trim().is_empty() && chars(text) <= max_chars
}

/// Titles and ids must be unique: Meta refuses duplicates, and a customer
/// could not tell two equal titles apart anyway.
fn all_distinct<'a>(items: impl Iterator<Item = &'a str>) -> bool {
    let mut seen = HashSet::new();
    items.into_iter().all(|item| seen.insert(item))
}

fn distinct_titles_and_ids(options: &[ChoiceOption]) -> bool {
    all_distinct(options.iter().map(|o| o.title.as_str()))
        && all_distinct(options.iter().map(|o| o.payload.as_str()))
}

fn buttons_action(options: &[ChoiceOption]) -> Option<Value> {
    let fit = options.len() <= BUTTONS
        && options
            .iter()
            .all(|o| fits(&o.title, BUTTON_TITLE_CHARS) && fits(&o.payload, BUTTON_ID_CHARS))
        && distinct_titles_and_ids(options);
    if !fit {
        return None;
    }
    let buttons: Vec<Value> = options
        .iter()
        .map(|o| json!({"type": "reply", "reply": {"id": o.payload, "title": o.title}}))
        .collect();
    Some(json!({"buttons": buttons}))
}

fn list_action(options: &[ChoiceOption], label: &str) -> Option<Value> {
    let fit = options.len() <= LIST_ROWS
        && options
            .iter()
            .all(|o| fits(&o.title, ROW_TITLE_CHARS) && fits(&o.payload, ROW_ID_CHARS))
        && distinct_titles_and_ids(options);
    if !fit {
        return None;
    }
    let rows: Vec<Value> = options
        .iter()
        .map(|o| {
            let mut row = json!({"id": o.payload, "title": o.title});
            let description = o.description.as_deref().map(str::trim).unwrap_or("");
            if !description.is_empty() {
                // Secondary text: shortened rather than giving up the list.
                row["description"] =
                    truncate(description, ROW_DESCRIPTION_CHARS, TextUnit::Chars).into();
            }
            row
        })
        .collect();
    // One untitled section: a section title is only required with several.
    Some(json!({"button": label, "sections": [{"rows": rows}]}))
}

fn media(
    to: &str,
    kind: OutboundMediaKind,
    url: &str,
    caption: Option<&str>,
) -> Result<Vec<Value>, RenderError> {
    let url = url.trim();
    if url.is_empty() {
        return Err(RenderError::Empty);
    }
    let caption = caption.map(str::trim).filter(|c| !c.is_empty());
    // A caption over the limit is sent as text after the media instead of
    // being cut.
    let (inline, after) = match caption {
        Some(c) if chars(c) <= CAPTION_CHARS => (Some(c), None),
        other => (None, other),
    };
    let mut payload = json!({"link": url});
    if let Some(caption) = inline {
        payload["caption"] = caption.into();
    }
    let kind = match kind {
        OutboundMediaKind::Image => "image",
        OutboundMediaKind::File => {
            // WhatsApp shows documents without a name as "Untitled" and
            // picks the file icon from the name's extension.
            if let Some(name) = file_name_from_url(url) {
                payload["filename"] = name.into();
            }
            "document"
        }
    };
    let mut out = vec![envelope(to, kind, payload)];
    if let Some(caption) = after {
        out.extend(texts(to, caption));
    }
    Ok(out)
}

/// The last path segment of `url` when it looks like a file name
/// (`https://shop.example/docs/Invoice%2042.pdf?x=1` -> `Invoice 42.pdf`).
fn file_name_from_url(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (_host, path) = rest.split_once('/')?;
    let path = path.split(['?', '#']).next()?;
    let segment = path.rsplit('/').next()?;
    let name = percent_decode(segment)?;
    let usable = name.contains('.')
        && !name.starts_with('.')
        && !name.ends_with('.')
        && chars(&name) <= 240
        && !name.chars().any(char::is_control);
    usable.then_some(name)
}

fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = segment.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn template(
    to: &str,
    name: &str,
    language: &str,
    parameters: &[String],
) -> Result<Vec<Value>, RenderError> {
    if name.trim().is_empty() || language.trim().is_empty() {
        return Err(RenderError::Unsupported(
            "a template needs a name and a language code",
        ));
    }
    // Meta answers an empty parameter with a permanent error; refusing here
    // says so before a send is spent on it.
    if parameters.iter().any(|p| p.trim().is_empty()) {
        return Err(RenderError::Unsupported(
            "template parameters must not be empty",
        ));
    }
    let mut payload = json!({"name": name.trim(), "language": {"code": language.trim()}});
    if !parameters.is_empty() {
        let parameters: Vec<Value> = parameters
            .iter()
            .map(|text| json!({"type": "text", "text": text}))
            .collect();
        payload["components"] = json!([{"type": "body", "parameters": parameters}]);
    }
    Ok(vec![envelope(to, "template", payload)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use switchboard_model::{ChannelId, ConversationKey, ExposeSecret, HttpMethod};

    const PHONE_NUMBER_ID: &str = "106540352242922";
    const TO: &str = "16505551234";

    fn conversation() -> ConversationKey {
        ConversationKey::new(
            Platform::WhatsApp,
            ChannelId::new("shop-wa").unwrap(),
            ChatId::Str(TO.into()),
        )
    }

    fn render_body(body: OutboundBody) -> Result<Vec<Value>, RenderError> {
        let message = OutboundMessage::new(conversation(), body);
        let requests = render(PHONE_NUMBER_ID, &SecretString::from("TOKEN"), &message)?;
        Ok(requests
            .into_iter()
            .map(|request| {
                assert_eq!(request.method, HttpMethod::Post);
                assert_eq!(request.path, "/106540352242922/messages");
                assert_eq!(request.bearer_token(), Some("TOKEN"));
                request.body.unwrap()
            })
            .collect())
    }

    fn rendered(body: OutboundBody) -> Vec<Value> {
        render_body(body).unwrap()
    }

    fn text_message(body: &str) -> Value {
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": TO,
            "type": "text",
            "text": {"preview_url": false, "body": body},
        })
    }

    fn options(titles: &[&str]) -> Vec<ChoiceOption> {
        titles
            .iter()
            .map(|t| ChoiceOption::new(*t, t.to_uppercase().replace(' ', "_")))
            .collect()
    }

    fn choice(text: &str, titles: &[&str], style: ChoiceStyle) -> Vec<Value> {
        rendered(OutboundBody::Choice {
            text: text.into(),
            options: options(titles),
            style,
        })
    }

    #[test]
    fn text_is_a_text_message_without_link_preview() {
        assert_eq!(
            rendered(OutboundBody::Text {
                text: "We open at 9:00.".into()
            }),
            vec![text_message("We open at 9:00.")]
        );
    }

    #[test]
    fn long_text_is_split_into_messages_of_at_most_4096_chars() {
        let text = "stock ".repeat(1000); // 6000 chars
        let bodies = rendered(OutboundBody::Text { text: text.clone() });
        let expected: Vec<Value> = split_text(&text, 4096, TextUnit::Chars)
            .iter()
            .map(|chunk| text_message(chunk))
            .collect();
        assert_eq!(bodies, expected);
        assert_eq!(bodies.len(), 2);
        assert_eq!(
            chars(bodies[0]["text"]["body"].as_str().unwrap()),
            4091 // 682 words of 6 chars, minus the trailing space
        );
    }

    #[test]
    fn blank_text_is_refused_as_empty() {
        assert_eq!(
            render_body(OutboundBody::Text {
                text: " \n ".into()
            }),
            Err(RenderError::Empty)
        );
    }

    #[test]
    fn up_to_three_buttons_become_reply_buttons() {
        assert_eq!(
            choice(
                "How can I help?",
                &["Hours", "Stores", "My order"],
                ChoiceStyle::Buttons
            ),
            vec![json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": TO,
                "type": "interactive",
                "interactive": {
                    "type": "button",
                    "body": {"text": "How can I help?"},
                    "action": {"buttons": [
                        {"type": "reply", "reply": {"id": "HOURS", "title": "Hours"}},
                        {"type": "reply", "reply": {"id": "STORES", "title": "Stores"}},
                        {"type": "reply", "reply": {"id": "MY_ORDER", "title": "My order"}},
                    ]},
                },
            })]
        );
    }

    #[test]
    fn quick_replies_use_reply_buttons_too() {
        let bodies = choice("Yes or no?", &["Yes", "No"], ChoiceStyle::QuickReplies);
        assert_eq!(
            bodies[0]["interactive"],
            json!({
                "type": "button",
                "body": {"text": "Yes or no?"},
                "action": {"buttons": [
                    {"type": "reply", "reply": {"id": "YES", "title": "Yes"}},
                    {"type": "reply", "reply": {"id": "NO", "title": "No"}},
                ]},
            })
        );
    }

    #[test]
    fn list_style_becomes_a_list_with_the_chosen_label_and_descriptions() {
        let mut opts = options(&["Paris", "Lyon"]);
        opts[0].description = Some("12 rue de Rivoli, open until 20:00".into());
        let bodies = rendered(OutboundBody::Choice {
            text: "Pick a store".into(),
            options: opts,
            style: ChoiceStyle::List {
                button: "Stores".into(),
            },
        });
        assert_eq!(
            bodies,
            vec![json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": TO,
                "type": "interactive",
                "interactive": {
                    "type": "list",
                    "body": {"text": "Pick a store"},
                    "action": {
                        "button": "Stores",
                        "sections": [{"rows": [
                            {"id": "PARIS", "title": "Paris", "description": "12 rue de Rivoli, open until 20:00"},
                            {"id": "LYON", "title": "Lyon"},
                        ]}],
                    },
                },
            })]
        );
    }

    #[test]
    fn four_to_ten_quick_replies_become_a_list_labelled_options() {
        let titles = ["A", "B", "C", "D", "E"];
        let bodies = choice("Choose", &titles, ChoiceStyle::QuickReplies);
        assert_eq!(bodies.len(), 1);
        let interactive = &bodies[0]["interactive"];
        assert_eq!(interactive["type"], "list");
        assert_eq!(interactive["action"]["button"], "Options");
        let rows = interactive["action"]["sections"][0]["rows"]
            .as_array()
            .unwrap();
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[4], json!({"id": "E", "title": "E"}));
    }

    #[test]
    fn buttons_with_titles_too_long_for_a_button_fall_back_to_a_list() {
        // 22 chars: too long for a button (20), fine for a row (24).
        let bodies = choice(
            "Which one?",
            &["Track my latest order", "Hours"],
            ChoiceStyle::Buttons,
        );
        assert_eq!(
            bodies[0]["interactive"]["action"],
            json!({
                "button": "Options",
                "sections": [{"rows": [
                    {"id": "TRACK_MY_LATEST_ORDER", "title": "Track my latest order"},
                    {"id": "HOURS", "title": "Hours"},
                ]}],
            })
        );
    }

    #[test]
    fn options_fitting_neither_buttons_nor_a_list_become_a_numbered_menu() {
        let long = "Tell me about the refund policy"; // 31 chars
        assert_eq!(
            choice("Pick one:", &[long, "Hours"], ChoiceStyle::Buttons),
            vec![text_message(
                "Pick one:\n\n1. Tell me about the refund policy\n2. Hours\n\nReply with a number."
            )]
        );
    }

    #[test]
    fn more_than_ten_options_become_a_numbered_menu() {
        let titles: Vec<String> = (1..=11).map(|n| format!("Store {n}")).collect();
        let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
        let bodies = choice(
            "Stores:",
            &titles,
            ChoiceStyle::List {
                button: "Stores".into(),
            },
        );
        assert_eq!(bodies.len(), 1);
        assert_eq!(bodies[0]["type"], "text");
        let text = bodies[0]["text"]["body"].as_str().unwrap();
        assert!(
            text.starts_with("Stores:\n\n1. Store 1\n2. Store 2\n"),
            "{text}"
        );
        assert!(
            text.contains("\n11. Store 11\n\nReply with a number."),
            "{text}"
        );
    }

    #[test]
    fn duplicate_titles_or_ids_and_oversized_ids_become_a_numbered_menu() {
        let same_title = vec![ChoiceOption::new("Yes", "A"), ChoiceOption::new("Yes", "B")];
        let same_id = vec![ChoiceOption::new("Yes", "A"), ChoiceOption::new("No", "A")];
        let huge_id = vec![ChoiceOption::new("Yes", "x".repeat(257))];
        for options in [same_title, same_id, huge_id] {
            let bodies = rendered(OutboundBody::Choice {
                text: "Sure?".into(),
                options: options.clone(),
                style: ChoiceStyle::Buttons,
            });
            assert_eq!(
                bodies,
                vec![text_message(&numbered_menu("Sure?", &options))],
                "{options:?}"
            );
        }
    }

    #[test]
    fn an_id_too_long_for_a_row_but_fine_for_a_button_keeps_buttons_in_list_style() {
        let options = vec![ChoiceOption::new("Yes", "y".repeat(230))];
        let bodies = rendered(OutboundBody::Choice {
            text: "Sure?".into(),
            options,
            style: ChoiceStyle::List {
                button: "Answer".into(),
            },
        });
        assert_eq!(bodies[0]["interactive"]["type"], "button");
    }

    #[test]
    fn list_label_and_descriptions_are_shortened_not_refused() {
        let mut opts = options(&["Paris"]);
        opts[0].description = Some("d".repeat(100));
        let bodies = rendered(OutboundBody::Choice {
            text: "Pick".into(),
            options: opts,
            style: ChoiceStyle::List {
                button: "Choose one of our stores".into(),
            },
        });
        let action = &bodies[0]["interactive"]["action"];
        assert_eq!(action["button"], "Choose one of our s…");
        let description = action["sections"][0]["rows"][0]["description"]
            .as_str()
            .unwrap();
        assert_eq!(description, format!("{}…", "d".repeat(71)));
        let blank_label = rendered(OutboundBody::Choice {
            text: "Pick".into(),
            options: options(&["Paris"]),
            style: ChoiceStyle::List { button: " ".into() },
        });
        assert_eq!(blank_label[0]["interactive"]["action"]["button"], "Options");
    }

    #[test]
    fn a_choice_without_options_is_plain_text() {
        assert_eq!(
            choice("Anything else?", &[], ChoiceStyle::Buttons),
            vec![text_message("Anything else?")]
        );
    }

    #[test]
    fn a_choice_without_text_is_a_numbered_menu() {
        assert_eq!(
            choice("", &["Hours", "Stores"], ChoiceStyle::Buttons),
            vec![text_message("1. Hours\n2. Stores\n\nReply with a number.")]
        );
    }

    #[test]
    fn a_body_over_1024_chars_goes_first_as_text_and_the_last_paragraph_stays_with_the_buttons() {
        let intro = "Our stores are open every day. ".repeat(40); // 1240 chars
        let text = format!("{intro}\n\nWhich store?");
        let bodies = choice(&text, &["Paris", "Lyon"], ChoiceStyle::Buttons);
        assert_eq!(bodies.len(), 2);
        assert_eq!(bodies[0], text_message(intro.trim()));
        assert_eq!(bodies[1]["interactive"]["body"]["text"], "Which store?");
        assert_eq!(bodies[1]["interactive"]["type"], "button");
    }

    #[test]
    fn a_body_over_1024_chars_without_paragraphs_is_sent_whole_and_repeated_shortened() {
        let text = "word ".repeat(300); // 1500 chars, no line break
        let bodies = choice(&text, &["Yes", "No"], ChoiceStyle::Buttons);
        assert_eq!(bodies.len(), 2);
        assert_eq!(bodies[0], text_message(text.trim()));
        let body = bodies[1]["interactive"]["body"]["text"].as_str().unwrap();
        assert_eq!(body, format!("{}wor…", "word ".repeat(204)));
        assert_eq!(chars(body), 1024);
    }

    #[test]
    fn image_and_file_are_sent_by_link_with_caption_and_file_name() {
        assert_eq!(
            rendered(OutboundBody::Media {
                kind: OutboundMediaKind::Image,
                url: "https://cdn.shop.example/jacket.jpg".into(),
                caption: Some("The blue jacket".into()),
            }),
            vec![json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": TO,
                "type": "image",
                "image": {"link": "https://cdn.shop.example/jacket.jpg", "caption": "The blue jacket"},
            })]
        );
        assert_eq!(
            rendered(OutboundBody::Media {
                kind: OutboundMediaKind::File,
                url: "https://shop.example/invoices/Invoice%2042.pdf?sig=abc".into(),
                caption: None,
            }),
            vec![json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": TO,
                "type": "document",
                "document": {
                    "link": "https://shop.example/invoices/Invoice%2042.pdf?sig=abc",
                    "filename": "Invoice 42.pdf",
                },
            })]
        );
    }

    #[test]
    fn a_file_url_without_a_file_name_sends_no_filename() {
        for url in [
            "https://shop.example",
            "https://shop.example/download?id=3",
            "https://shop.example/files/%ZZ.pdf",
        ] {
            let bodies = rendered(OutboundBody::Media {
                kind: OutboundMediaKind::File,
                url: url.into(),
                caption: None,
            });
            assert_eq!(bodies[0]["document"], json!({"link": url}), "{url}");
        }
    }

    #[test]
    fn a_caption_over_1024_chars_follows_the_media_as_text() {
        let caption = "c".repeat(1500);
        let bodies = rendered(OutboundBody::Media {
            kind: OutboundMediaKind::Image,
            url: "https://cdn.shop.example/a.png".into(),
            caption: Some(caption.clone()),
        });
        assert_eq!(bodies.len(), 2);
        assert_eq!(
            bodies[0]["image"],
            json!({"link": "https://cdn.shop.example/a.png"})
        );
        assert_eq!(bodies[1], text_message(&caption));
    }

    #[test]
    fn media_without_a_url_is_empty() {
        assert_eq!(
            render_body(OutboundBody::Media {
                kind: OutboundMediaKind::Image,
                url: " ".into(),
                caption: None,
            }),
            Err(RenderError::Empty)
        );
    }

    #[test]
    fn location_request_is_an_interactive_send_location_message() {
        assert_eq!(
            rendered(OutboundBody::LocationRequest {
                text: "Share your location to find the nearest store.".into()
            }),
            vec![json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": TO,
                "type": "interactive",
                "interactive": {
                    "type": "location_request_message",
                    "body": {"text": "Share your location to find the nearest store."},
                    "action": {"name": "send_location"},
                },
            })]
        );
        assert_eq!(
            render_body(OutboundBody::LocationRequest { text: "".into() }),
            Err(RenderError::Empty)
        );
    }

    #[test]
    fn a_long_location_request_sends_its_text_first() {
        let intro = "x".repeat(1100);
        let bodies = rendered(OutboundBody::LocationRequest {
            text: format!("{intro}\n\nWhere are you?"),
        });
        assert_eq!(bodies.len(), 2);
        assert_eq!(bodies[0], text_message(&intro));
        assert_eq!(bodies[1]["interactive"]["body"]["text"], "Where are you?");
    }

    #[test]
    fn mark_read_names_the_message() {
        assert_eq!(
            rendered(OutboundBody::MarkRead {
                message_id: "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=".into()
            }),
            vec![json!({
                "messaging_product": "whatsapp",
                "status": "read",
                "message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
            })]
        );
        assert_eq!(
            render_body(OutboundBody::MarkRead {
                message_id: String::new()
            }),
            Err(RenderError::Empty)
        );
    }

    #[test]
    fn typing_and_callback_answers_send_nothing() {
        assert_eq!(rendered(OutboundBody::Typing), Vec::<Value>::new());
        assert_eq!(
            rendered(OutboundBody::AnswerCallback {
                callback_id: "1".into(),
                text: Some("ok".into())
            }),
            Vec::<Value>::new()
        );
    }

    #[test]
    fn template_fills_body_parameters_in_order() {
        assert_eq!(
            rendered(OutboundBody::Template {
                name: "order_update".into(),
                language: "en_US".into(),
                parameters: vec!["Ada".into(), "#1042".into()],
            }),
            vec![json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": TO,
                "type": "template",
                "template": {
                    "name": "order_update",
                    "language": {"code": "en_US"},
                    "components": [{"type": "body", "parameters": [
                        {"type": "text", "text": "Ada"},
                        {"type": "text", "text": "#1042"},
                    ]}],
                },
            })]
        );
    }

    #[test]
    fn template_without_parameters_has_no_components() {
        assert_eq!(
            rendered(OutboundBody::Template {
                name: "hello_world".into(),
                language: "en_US".into(),
                parameters: vec![],
            })[0]["template"],
            json!({"name": "hello_world", "language": {"code": "en_US"}})
        );
    }

    #[test]
    fn template_without_name_or_with_an_empty_parameter_is_refused() {
        for (name, parameters) in [("", vec![]), ("order_update", vec![String::new()])] {
            assert!(matches!(
                render_body(OutboundBody::Template {
                    name: name.into(),
                    language: "en_US".into(),
                    parameters,
                }),
                Err(RenderError::Unsupported(_))
            ));
        }
    }

    #[test]
    fn other_platforms_and_non_string_chats_are_refused() {
        let token = SecretString::from("TOKEN");
        let text = OutboundBody::Text { text: "hi".into() };
        let telegram = ConversationKey::new(
            Platform::Telegram,
            ChannelId::new("tg").unwrap(),
            ChatId::Int(42),
        );
        assert_eq!(
            render(
                PHONE_NUMBER_ID,
                &token,
                &OutboundMessage::new(telegram, text.clone())
            )
            .unwrap_err(),
            RenderError::WrongPlatform {
                expected: "whatsapp",
                found: "telegram"
            }
        );
        for chat in [ChatId::Int(16505551234), ChatId::Str(String::new())] {
            let mut key = conversation();
            key.chat = chat;
            assert!(matches!(
                render(
                    PHONE_NUMBER_ID,
                    &token,
                    &OutboundMessage::new(key, text.clone())
                ),
                Err(RenderError::InvalidChat(_))
            ));
        }
    }

    #[test]
    fn a_phone_number_id_that_is_not_a_plain_id_is_refused() {
        let message =
            OutboundMessage::new(conversation(), OutboundBody::Text { text: "hi".into() });
        for bad in ["", "123/../me", "123?x=1"] {
            assert!(matches!(
                render(bad, &SecretString::from("T"), &message),
                Err(RenderError::Unsupported(_))
            ));
        }
    }

    #[test]
    fn the_token_travels_only_as_a_bearer_header() {
        let message =
            OutboundMessage::new(conversation(), OutboundBody::Text { text: "hi".into() });
        let requests = render(
            PHONE_NUMBER_ID,
            &SecretString::from("SECRET-TOKEN"),
            &message,
        )
        .unwrap();
        let request = &requests[0];
        assert_eq!(
            request
                .url("https://graph.facebook.com/v23.0")
                .expose_secret(),
            "https://graph.facebook.com/v23.0/106540352242922/messages"
        );
        assert!(!format!("{request:?}").contains("SECRET-TOKEN"));
        assert!(
            !request
                .body
                .as_ref()
                .unwrap()
                .to_string()
                .contains("SECRET-TOKEN")
        );
    }

    /// Text with astral emoji, accents and combining marks, long enough to be
    /// split.
    fn long_text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                "[a-z]{1,12}",
                Just(" ".to_owned()),
                Just("\n".to_owned()),
                Just("\n\n".to_owned()),
                Just("😀".to_owned()),
                Just("é".to_owned()),
                Just("e\u{301}".to_owned()),
                "[a-zé😀]{200,400}",
            ],
            0..60,
        )
        .prop_map(|parts| parts.concat())
    }

    fn option_strategy() -> impl Strategy<Value = ChoiceOption> {
        // Mostly options that fit, some that do not, so every path is taken.
        let title = prop_oneof![8 => "[A-Za-z😀é ]{1,20}", 2 => "[A-Za-z😀é ]{21,30}"];
        let payload = prop_oneof![9 => "[a-z0-9_]{1,40}", 1 => "[a-z0-9_]{190,300}"];
        (title, payload, proptest::option::of("[a-z ]{0,90}")).prop_map(
            |(title, payload, description)| ChoiceOption {
                title,
                payload,
                description,
            },
        )
    }

    fn style_strategy() -> impl Strategy<Value = ChoiceStyle> {
        prop_oneof![
            Just(ChoiceStyle::Buttons),
            Just(ChoiceStyle::QuickReplies),
            "[A-Za-z ]{0,30}".prop_map(|button| ChoiceStyle::List { button }),
        ]
    }

    /// Every string in a rendered body, concatenated: what the customer may see.
    fn strings(value: &Value) -> String {
        match value {
            Value::String(s) => s.clone(),
            Value::Array(items) => items.iter().map(strings).collect(),
            Value::Object(map) => map.values().map(strings).collect(),
            _ => String::new(),
        }
    }

    fn without_whitespace(text: &str) -> String {
        text.chars().filter(|c| !c.is_whitespace()).collect()
    }

    /// Checks every WhatsApp limit on one rendered body.
    fn assert_within_limits(body: &Value) -> Result<(), TestCaseError> {
        let len = |v: &Value| chars(v.as_str().unwrap_or(""));
        match body["type"].as_str() {
            Some("text") => prop_assert!(len(&body["text"]["body"]) <= TEXT_CHARS),
            Some("interactive") => {
                let interactive = &body["interactive"];
                let text = &interactive["body"]["text"];
                prop_assert!(len(text) >= 1 && len(text) <= INTERACTIVE_BODY_CHARS);
                let action = &interactive["action"];
                match interactive["type"].as_str() {
                    Some("button") => {
                        let buttons = action["buttons"].as_array().unwrap();
                        prop_assert!(!buttons.is_empty() && buttons.len() <= BUTTONS);
                        for button in buttons {
                            prop_assert!(len(&button["reply"]["title"]) <= BUTTON_TITLE_CHARS);
                            prop_assert!(len(&button["reply"]["id"]) <= BUTTON_ID_CHARS);
                        }
                    }
                    Some("list") => {
                        prop_assert!(len(&action["button"]) <= LIST_BUTTON_CHARS);
                        let rows = action["sections"][0]["rows"].as_array().unwrap();
                        prop_assert!(!rows.is_empty() && rows.len() <= LIST_ROWS);
                        for row in rows {
                            prop_assert!(len(&row["title"]) <= ROW_TITLE_CHARS);
                            prop_assert!(len(&row["id"]) <= ROW_ID_CHARS);
                            prop_assert!(len(&row["description"]) <= ROW_DESCRIPTION_CHARS);
                        }
                    }
                    Some("location_request_message") => {}
                    other => prop_assert!(false, "unexpected interactive type {other:?}"),
                }
            }
            other => prop_assert!(false, "unexpected message type {other:?}"),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn text_is_never_over_4096_chars_and_never_loses_or_splits_a_char(text in long_text()) {
            match render_body(OutboundBody::Text { text: text.clone() }) {
                Err(RenderError::Empty) => prop_assert!(text.trim().is_empty()),
                Err(other) => prop_assert!(false, "{other}"),
                Ok(bodies) => {
                    let mut joined = String::new();
                    for body in &bodies {
                        assert_within_limits(body)?;
                        joined.push_str(body["text"]["body"].as_str().unwrap());
                    }
                    prop_assert_eq!(without_whitespace(&joined), without_whitespace(&text));
                }
            }
        }

        #[test]
        fn choices_always_stay_within_whatsapp_limits_and_keep_every_option(
            text in long_text(),
            options in prop::collection::vec(option_strategy(), 0..13),
            style in style_strategy(),
        ) {
            let result = render_body(OutboundBody::Choice {
                text: text.clone(),
                options: options.clone(),
                style,
            });
            let bodies = match result {
                Err(RenderError::Empty) => {
                    prop_assert!(text.trim().is_empty() && options.is_empty());
                    return Ok(());
                }
                Err(other) => return Err(TestCaseError::fail(other.to_string())),
                Ok(bodies) => bodies,
            };
            for body in &bodies {
                assert_within_limits(body)?;
            }
            // Only the last message may be interactive, and every option is
            // offered: as a button, a row or a numbered line.
            for body in &bodies[..bodies.len() - 1] {
                prop_assert_eq!(body["type"].as_str(), Some("text"));
            }
            let shown: String = bodies.iter().map(|b| without_whitespace(&strings(b))).collect();
            for option in &options {
                let title = without_whitespace(&option.title);
                prop_assert!(shown.contains(&title), "{:?} missing from {}", option.title, shown);
            }
        }

        #[test]
        fn location_requests_and_captions_stay_within_limits(text in long_text()) {
            if let Ok(bodies) = render_body(OutboundBody::LocationRequest { text: text.clone() }) {
                for body in &bodies {
                    assert_within_limits(body)?;
                }
            }
            let bodies = render_body(OutboundBody::Media {
                kind: OutboundMediaKind::Image,
                url: "https://cdn.example/a.png".into(),
                caption: Some(text),
            }).unwrap();
            prop_assert!(chars(bodies[0]["image"]["caption"].as_str().unwrap_or("")) <= CAPTION_CHARS);
            for body in &bodies[1..] {
                assert_within_limits(body)?;
            }
        }
    }
}
