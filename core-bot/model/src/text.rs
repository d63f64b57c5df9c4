//! Text helpers shared by every adapter's `render`: measuring, splitting at
//! word boundaries without breaking UTF-8, truncating, and the numbered menu
//! options degrade to when a platform cannot show them as buttons.

use crate::outbound::ChoiceOption;

/// The unit a platform counts its text limits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextUnit {
    /// Unicode scalar values (`char`s).
    Chars,
    /// UTF-16 code units: Telegram counts lengths and entity offsets this way,
    /// so an emoji outside the BMP costs two.
    Utf16,
    /// UTF-8 bytes (Telegram `callback_data`).
    Bytes,
}

impl TextUnit {
    pub fn len(self, text: &str) -> usize {
        match self {
            TextUnit::Chars => text.chars().count(),
            TextUnit::Utf16 => text.encode_utf16().count(),
            TextUnit::Bytes => text.len(),
        }
    }

    fn char_len(self, c: char) -> usize {
        match self {
            TextUnit::Chars => 1,
            TextUnit::Utf16 => c.len_utf16(),
            TextUnit::Bytes => c.len_utf8(),
        }
    }
}

/// Byte index of the longest prefix of `text` that is at most `max` units.
fn fitting_prefix(text: &str, max: usize, unit: TextUnit) -> usize {
    let mut used = 0;
    for (index, c) in text.char_indices() {
        used += unit.char_len(c);
        if used > max {
            return index;
        }
    }
    text.len()
}

/// Splits `text` into chunks of at most `max` units, breaking at a paragraph
/// end, a line end or a space when one lies in the second half of the chunk,
/// and at a character boundary otherwise. Whitespace at a break is dropped;
/// no chunk is empty. `max` of 0 is treated as 1.
pub fn split_text(text: &str, max: usize, unit: TextUnit) -> Vec<String> {
    let max = max.max(1);
    let mut chunks = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        if unit.len(rest) <= max {
            chunks.push(rest.to_owned());
            break;
        }
        let hard = fitting_prefix(rest, max, unit);
        // A character wider than `max` units (only possible for tiny limits)
        // still has to go somewhere: take it whole rather than loop forever.
        let hard = if hard == 0 {
            rest.chars().next().map_or(rest.len(), char::len_utf8)
        } else {
            hard
        };
        let window = &rest[..hard];
        // Only break at whitespace in the back half, so chunks stay full.
        let min_break = hard / 2;
        let line_break = ["\n\n", "\n"]
            .iter()
            .find_map(|sep| window.rfind(sep).filter(|&at| at > 0 && at >= min_break));
        let at = match line_break {
            Some(at) => at,
            // The hard cut already falls on a word boundary.
            None if rest[hard..].starts_with(char::is_whitespace) => hard,
            None => window
                .rfind(' ')
                .filter(|&at| at > 0 && at >= min_break)
                .unwrap_or(hard),
        };
        let (chunk, next) = rest.split_at(at);
        let chunk = chunk.trim_end();
        if !chunk.is_empty() {
            chunks.push(chunk.to_owned());
        }
        rest = next.trim_start();
    }
    chunks
}

/// `text` cut to at most `max` units, ending in `…` when it was cut.
pub fn truncate(text: &str, max: usize, unit: TextUnit) -> String {
    if unit.len(text) <= max {
        return text.to_owned();
    }
    let ellipsis = '…';
    let room = max.saturating_sub(unit.char_len(ellipsis));
    if room == 0 {
        return text[..fitting_prefix(text, max, unit)].to_owned();
    }
    let cut = fitting_prefix(text, room, unit);
    let mut out = text[..cut].trim_end().to_owned();
    out.push(ellipsis);
    out
}

/// Options as a numbered list under the text, for platforms (or option sets)
/// that cannot be shown as buttons. The customer answers with the number;
/// the assistant maps `1..=n` back to the options it offered.
pub fn numbered_menu(text: &str, options: &[ChoiceOption]) -> String {
    let mut out = String::with_capacity(text.len() + options.len() * 24);
    out.push_str(text.trim_end());
    if !options.is_empty() {
        out.push_str("\n\n");
        for (index, option) in options.iter().enumerate() {
            if index > 0 {
                out.push('\n');
            }
            out.push_str(&format!("{}. {}", index + 1, option.title));
        }
        out.push_str("\n\nReply with a number.");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_text_is_one_chunk() {
        assert_eq!(
            split_text("hello there", 20, TextUnit::Chars),
            vec!["hello there"]
        );
    }

    #[test]
    fn long_text_breaks_at_the_last_space_that_fits() {
        let chunks = split_text("the blue jacket is in stock", 12, TextUnit::Chars);
        assert_eq!(chunks, vec!["the blue", "jacket is in", "stock"]);
    }

    #[test]
    fn paragraphs_are_preferred_over_spaces() {
        let chunks = split_text("aaaa bbbb\n\ncccc dddd", 15, TextUnit::Chars);
        assert_eq!(chunks, vec!["aaaa bbbb", "cccc dddd"]);
    }

    #[test]
    fn a_word_longer_than_the_limit_is_cut_at_a_char_boundary() {
        let chunks = split_text("ééééé", 2, TextUnit::Chars);
        assert_eq!(chunks, vec!["éé", "éé", "é"]);
    }

    #[test]
    fn utf16_counts_astral_emoji_as_two() {
        assert_eq!(TextUnit::Utf16.len("😀a"), 3);
        let chunks = split_text("😀😀😀", 3, TextUnit::Utf16);
        assert_eq!(chunks, vec!["😀", "😀", "😀"]);
    }

    #[test]
    fn truncate_adds_an_ellipsis_within_the_limit() {
        assert_eq!(truncate("Opening hours", 8, TextUnit::Chars), "Opening…");
        assert_eq!(truncate("short", 8, TextUnit::Chars), "short");
    }

    #[test]
    fn numbered_menu_lists_options_in_order() {
        let menu = numbered_menu(
            "Pick one:",
            &[
                ChoiceOption::new("Hours", "HOURS"),
                ChoiceOption::new("Stores", "STORES"),
            ],
        );
        assert_eq!(
            menu,
            "Pick one:\n\n1. Hours\n2. Stores\n\nReply with a number."
        );
    }

    proptest! {
        #[test]
        fn chunks_never_exceed_the_limit_and_keep_every_word(
            text in "[a-zé😀 \n]{0,300}",
            max in 1usize..50,
            utf16 in any::<bool>(),
        ) {
            let unit = if utf16 { TextUnit::Utf16 } else { TextUnit::Chars };
            let chunks = split_text(&text, max, unit);
            for chunk in &chunks {
                // A single astral char may exceed a limit of 1 UTF-16 unit.
                prop_assert!(unit.len(chunk) <= max.max(2));
                prop_assert!(!chunk.is_empty());
            }
            let original: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            let joined: String = chunks.concat().chars().filter(|c| !c.is_whitespace()).collect();
            prop_assert_eq!(original, joined);
        }

        #[test]
        fn truncate_never_exceeds_the_limit(text in "\\PC{0,80}", max in 1usize..40) {
            prop_assert!(TextUnit::Chars.len(&truncate(&text, max, TextUnit::Chars)) <= max);
            prop_assert!(TextUnit::Bytes.len(&truncate(&text, max, TextUnit::Bytes)) <= max);
        }
    }
}
