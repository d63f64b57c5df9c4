//! Bot commands (`/start`, `/order@ShopBot 1234`) at the start of a text.

use switchboard_model::Command;

use crate::wire::Entity;

/// The command a text starts with. Telegram marks commands with a
/// `bot_command` entity; when a message has entities, only an entity at
/// offset 0 counts (Telegram decided the rest is no command). Old payloads
/// carry no entities at all, so then a leading `/` word is taken if it looks
/// like a command name.
pub(crate) fn parse_command(text: &str, entities: &[Entity]) -> Option<Command> {
    let token = if entities.is_empty() {
        let end = text.find(char::is_whitespace).unwrap_or(text.len());
        let token = &text[..end];
        let name = token.strip_prefix('/')?.split('@').next()?;
        if name.is_empty()
            || name.len() > 32
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return None;
        }
        token
    } else {
        let entity = entities
            .iter()
            .find(|e| e.kind == "bot_command" && e.offset == 0)?;
        &text[..utf16_prefix_end(text, entity.length)]
    };
    let (name, bot) = match token.strip_prefix('/')?.split_once('@') {
        Some((name, bot)) => (name, (!bot.is_empty()).then(|| bot.to_owned())),
        None => (token.strip_prefix('/')?, None),
    };
    if name.is_empty() {
        return None;
    }
    Some(Command {
        name: name.to_lowercase(),
        args: text[token.len()..].trim().to_owned(),
        bot,
    })
}

/// Byte index after the first `units` UTF-16 code units of `text` (entity
/// offsets and lengths are counted in them), never inside a character.
fn utf16_prefix_end(text: &str, units: usize) -> usize {
    let mut used = 0;
    for (index, c) in text.char_indices() {
        if used >= units {
            return index;
        }
        used += c.len_utf16();
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command_entity(length: usize) -> Entity {
        Entity {
            kind: "bot_command".into(),
            offset: 0,
            length,
        }
    }

    fn command(name: &str, args: &str, bot: Option<&str>) -> Option<Command> {
        Some(Command {
            name: name.into(),
            args: args.into(),
            bot: bot.map(str::to_owned),
        })
    }

    #[test]
    fn a_command_entity_gives_name_bot_and_payload() {
        let text = "/Start@ShopBot  order-42 ";
        assert_eq!(
            parse_command(text, &[command_entity(14)]),
            command("start", "order-42", Some("ShopBot"))
        );
    }

    #[test]
    fn without_entities_a_leading_slash_word_is_a_command() {
        assert_eq!(parse_command("/start", &[]), command("start", "", None));
        assert_eq!(
            parse_command("/start abc_123", &[]),
            command("start", "abc_123", None)
        );
        assert_eq!(
            parse_command("/help@ShopBot", &[]),
            command("help", "", Some("ShopBot"))
        );
    }

    #[test]
    fn slashes_that_are_not_commands_are_left_alone() {
        assert_eq!(parse_command("hello /start", &[]), None);
        assert_eq!(parse_command("/", &[]), None);
        assert_eq!(parse_command("/path/to/file", &[]), None);
        assert_eq!(parse_command("/ start", &[]), None);
    }

    #[test]
    fn with_entities_only_a_command_at_offset_zero_counts() {
        let later = Entity {
            kind: "bot_command".into(),
            offset: 6,
            length: 6,
        };
        assert_eq!(parse_command("hello /start", &[later]), None);
        let bold = Entity {
            kind: "bold".into(),
            offset: 0,
            length: 6,
        };
        assert_eq!(parse_command("/start", &[bold]), None);
    }

    #[test]
    fn entity_lengths_are_counted_in_utf16_units() {
        assert_eq!(utf16_prefix_end("😀ab", 2), "😀".len());
        assert_eq!(utf16_prefix_end("😀ab", 3), "😀a".len());
        // A length that ends inside a surrogate pair keeps the whole char.
        assert_eq!(utf16_prefix_end("😀ab", 1), "😀".len());
        assert_eq!(utf16_prefix_end("ab", 10), 2);
    }
}
