//! Entities: product, size, quantity, order number, day, store, email.

use serde::{Deserialize, Serialize};

use super::lexicon::{Lexicon, Term, Token, find_phrase, phrase_words};
use crate::guards;

/// A day a customer asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DayRef {
    /// "now", "right now", "at the moment".
    Now,
    Today,
    Tomorrow,
    /// The next such weekday, today included; Monday is 0.
    Weekday {
        index: u8,
    },
    /// The next such calendar date, today included (holidays).
    Date {
        month: i8,
        day: i8,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductMatch {
    pub sku: String,
    /// How many words of the name or alias matched; longer is surer.
    pub words: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entities {
    pub product: Option<ProductMatch>,
    /// Canonical size as the shop spells it in general ("M", "XL", "42").
    pub size: Option<String>,
    pub quantity: Option<u32>,
    pub order_number: Option<String>,
    pub day: Option<DayRef>,
    /// Store id.
    pub store: Option<String>,
    pub email: Option<String>,
    /// Exactly six digits, as a code would be typed.
    pub code: Option<String>,
}

const NUMBER_WORDS: &[(&str, u32)] = &[
    ("one", 1),
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
    ("ten", 10),
    ("couple", 2),
    ("pair", 1),
];

const WEEKDAYS: &[(&str, u8)] = &[
    ("monday", 0),
    ("mon", 0),
    ("tuesday", 1),
    ("tue", 1),
    ("tues", 1),
    ("wednesday", 2),
    ("wed", 2),
    ("thursday", 3),
    ("thu", 3),
    ("thur", 3),
    ("thurs", 3),
    ("friday", 4),
    ("fri", 4),
    ("saturday", 5),
    ("sunday", 6),
    ("weekend", 5),
];

const HOLIDAYS: &[(&str, i8, i8)] = &[
    ("christmas eve", 12, 24),
    ("xmas eve", 12, 24),
    ("christmas day", 12, 25),
    ("christmas", 12, 25),
    ("xmas", 12, 25),
    ("boxing day", 12, 26),
    ("new year eve", 12, 31),
    ("new years eve", 12, 31),
    ("new year day", 1, 1),
    ("new years day", 1, 1),
    ("new year", 1, 1),
    ("new years", 1, 1),
];

/// Letter sizes and the words people use for them.
const SIZE_WORDS: &[(&str, &str)] = &[
    ("xxs", "XXS"),
    ("xs", "XS"),
    ("s", "S"),
    ("m", "M"),
    ("l", "L"),
    ("xl", "XL"),
    ("xxl", "XXL"),
    ("small", "S"),
    ("medium", "M"),
    ("large", "L"),
];

/// Words entities are made of, so spelling correction knows them.
pub(super) fn vocabulary() -> impl Iterator<Item = &'static str> {
    NUMBER_WORDS
        .iter()
        .map(|(word, _)| *word)
        .chain(WEEKDAYS.iter().map(|(word, _)| *word))
        .chain(HOLIDAYS.iter().map(|(phrase, _, _)| *phrase))
        .chain(SIZE_WORDS.iter().map(|(word, _)| *word))
        .chain([
            "extra large",
            "tonight",
            "tomorrow",
            "today",
            "now",
            "currently",
            "size",
        ])
}

pub(super) fn extract(lexicon: &Lexicon, text: &str, tokens: &[Token]) -> Entities {
    let words: Vec<&str> = tokens.iter().map(|token| token.word.as_str()).collect();
    let size = find_size(lexicon, tokens, &words);
    let numbers: Vec<&str> = tokens
        .iter()
        .map(|token| token.raw.as_str())
        .filter(|raw| raw.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    let order_number = numbers
        .iter()
        .find(|number| (4..=10).contains(&number.len()))
        .map(|number| (*number).to_owned());
    let code = numbers
        .iter()
        .find(|number| number.len() == 6)
        .map(|number| (*number).to_owned());
    Entities {
        product: best_term(&lexicon.products, &words).map(|(sku, words)| ProductMatch {
            sku: sku.to_owned(),
            words,
        }),
        quantity: find_quantity(tokens, size.as_deref()),
        size,
        order_number,
        day: find_day(&words),
        store: best_term(&lexicon.stores, &words).map(|(id, _)| id.to_owned()),
        email: guards::first_email(text),
        code,
    }
}

/// The term with the most words found in the message.
fn best_term<'a>(terms: &'a [Term], words: &[&str]) -> Option<(&'a str, usize)> {
    terms
        .iter()
        .filter(|term| find_phrase(words, &term.words).is_some())
        .fold(None, |best: Option<&Term>, term| match best {
            Some(best) if best.words.len() >= term.words.len() => Some(best),
            _ => Some(term),
        })
        .map(|term| (term.id.as_str(), term.words.len()))
}

fn find_size(lexicon: &Lexicon, tokens: &[Token], words: &[&str]) -> Option<String> {
    let known = |size: &str| lexicon.sizes.contains(&size.to_lowercase());
    if find_phrase(words, &phrase_words("extra large")).is_some() && known("xl") {
        return Some("XL".to_owned());
    }
    for (index, token) in tokens.iter().enumerate() {
        let raw = token.raw.as_str();
        let after_size_word =
            index > 0 && matches!(tokens[index - 1].raw.as_str(), "size" | "sz" | "eu" | "in");
        if raw.bytes().all(|b| b.is_ascii_digit()) {
            // Shoe sizes are numbers too: only after "size", or when some
            // product comes in that size and it is too big for a quantity.
            let plausible =
                raw.len() <= 3 && (after_size_word || raw.parse::<u32>().is_ok_and(|n| n >= 30));
            if plausible && known(raw) {
                return Some(raw.to_owned());
            }
            continue;
        }
        if let Some((_, size)) = SIZE_WORDS.iter().find(|(word, _)| *word == raw)
            && known(size)
        {
            // A lone "s"/"m"/"l" is only a size in a sizing context.
            let single_letter = raw.len() == 1;
            if !single_letter || after_size_word || tokens.len() <= 2 || index + 1 == tokens.len() {
                return Some((*size).to_owned());
            }
        }
    }
    None
}

fn find_quantity(tokens: &[Token], size: Option<&str>) -> Option<u32> {
    for (index, token) in tokens.iter().enumerate() {
        let raw = token.raw.as_str();
        let after_size_word =
            index > 0 && matches!(tokens[index - 1].raw.as_str(), "size" | "sz" | "eu");
        if after_size_word || Some(raw) == size {
            continue;
        }
        let digits = raw
            .strip_prefix('x')
            .or_else(|| raw.strip_suffix('x'))
            .unwrap_or(raw);
        if !digits.is_empty()
            && digits.len() <= 2
            && digits.bytes().all(|b| b.is_ascii_digit())
            && let Ok(quantity) = digits.parse::<u32>()
            && (1..=20).contains(&quantity)
        {
            return Some(quantity);
        }
        if let Some((_, quantity)) = NUMBER_WORDS.iter().find(|(word, _)| *word == raw) {
            return Some(*quantity);
        }
    }
    None
}

fn find_day(words: &[&str]) -> Option<DayRef> {
    for (phrase, month, day) in HOLIDAYS {
        if find_phrase(words, &phrase_words(phrase)).is_some() {
            return Some(DayRef::Date {
                month: *month,
                day: *day,
            });
        }
    }
    for (index, word) in words.iter().enumerate() {
        match *word {
            "today" | "tonight" | "todays" => return Some(DayRef::Today),
            "tomorrow" | "tomorrows" => return Some(DayRef::Tomorrow),
            "now" | "currently" => return Some(DayRef::Now),
            "sat" | "sun" if index > 0 && words[index - 1] == "on" => {
                let index = if *word == "sat" { 5 } else { 6 };
                return Some(DayRef::Weekday { index });
            }
            _ => {}
        }
        if let Some((_, index)) = WEEKDAYS.iter().find(|(name, _)| name == word) {
            return Some(DayRef::Weekday { index: *index });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::understand;
    use super::*;
    use crate::shop::Shop;

    fn entities(text: &str) -> Entities {
        understand(text, &Shop::demo()).entities
    }

    #[test]
    fn products_match_names_aliases_typos_and_plurals() {
        for text in [
            "rain jacket",
            "Raincoats",
            "rain jackit",
            "RAIN COAT",
            "a waterproof jacket",
        ] {
            assert_eq!(
                entities(text).product.map(|p| p.sku),
                Some("JKT-RAIN".into()),
                "{text}"
            );
        }
        assert_eq!(
            entities("trail shoes").product.map(|p| p.sku),
            Some("SHOE-TRAIL".into())
        );
        assert_eq!(
            entities("a tshirt").product.map(|p| p.sku),
            Some("TEE-MERINO".into())
        );
        assert_eq!(entities("the weather").product, None);
    }

    #[test]
    fn sizes_quantities_and_orders_are_told_apart() {
        let found = entities("2 rain jackets in size M");
        assert_eq!(found.quantity, Some(2));
        assert_eq!(found.size.as_deref(), Some("M"));
        let found = entities("trail shoes size 42");
        assert_eq!(found.size.as_deref(), Some("42"));
        assert_eq!(found.quantity, None);
        let found = entities("where is order #10023");
        assert_eq!(found.order_number.as_deref(), Some("10023"));
        assert_eq!(found.quantity, None);
        assert_eq!(entities("medium please").size.as_deref(), Some("M"));
        assert_eq!(entities("extra large").size.as_deref(), Some("XL"));
    }

    #[test]
    fn days_and_stores_are_found() {
        assert_eq!(entities("open tmrw?").day, Some(DayRef::Tomorrow));
        assert_eq!(
            entities("on saturdays").day,
            Some(DayRef::Weekday { index: 5 })
        );
        assert_eq!(
            entities("christmas eve").day,
            Some(DayRef::Date { month: 12, day: 24 })
        );
        assert_eq!(
            entities("the harbor store").store.as_deref(),
            Some("harbour")
        );
        assert_eq!(entities("downtown").store.as_deref(), Some("downtown"));
    }

    #[test]
    fn emails_and_codes_are_found() {
        let found = entities("it's Jane@Example.com");
        assert_eq!(found.email.as_deref(), Some("jane@example.com"));
        assert_eq!(entities("123456").code.as_deref(), Some("123456"));
    }
}
