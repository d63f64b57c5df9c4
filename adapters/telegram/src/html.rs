//! Escaping for Telegram's `parse_mode: HTML`. Every outgoing text is sent in
//! that mode, so a `<` or `&` in a product name or a customer's own words
//! would otherwise fail the whole send with "can't parse entities".

/// `text` with `&`, `<` and `>` replaced by the only named entities
/// Telegram's HTML mode knows, so it shows exactly as written.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
pub(crate) fn unescape_html(text: &str) -> String {
    // `&amp;` last, so an escaped `&lt;` (`&amp;lt;`) is not decoded twice.
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn markup_characters_become_entities() {
        assert_eq!(escape_html("<b>&"), "&lt;b&gt;&amp;");
    }

    #[test]
    fn text_without_markup_characters_is_unchanged() {
        assert_eq!(
            escape_html("Öffnungszeiten: 9–18 Uhr 😀 \"quoted\""),
            "Öffnungszeiten: 9–18 Uhr 😀 \"quoted\""
        );
    }

    #[test]
    fn an_existing_entity_is_escaped_rather_than_trusted() {
        assert_eq!(escape_html("&lt;"), "&amp;lt;");
        assert_eq!(unescape_html(&escape_html("&lt;")), "&lt;");
    }

    proptest! {
        #[test]
        fn escaping_round_trips_and_leaves_no_bare_markup(text in "[<>&a-z;# é😀]{0,64}|\\PC{0,64}") {
            let escaped = escape_html(&text);
            prop_assert_eq!(unescape_html(&escaped), text);
            prop_assert!(!escaped.contains('<') && !escaped.contains('>'));
            // Every `&` starts one of the three entities this escaper writes.
            for (at, _) in escaped.match_indices('&') {
                let rest = &escaped[at..];
                prop_assert!(
                    rest.starts_with("&amp;") || rest.starts_with("&lt;") || rest.starts_with("&gt;"),
                    "bare & in {}", escaped
                );
            }
        }
    }
}
