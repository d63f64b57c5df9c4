//! Words: normalisation, slang, plurals, spelling correction, and the
//! shop's own vocabulary (products, stores, sizes, FAQ keywords).

use std::collections::{BTreeMap, BTreeSet};

use super::cues;
use crate::shop::Shop;

/// One word of a message: as typed (lowercased) and as understood
/// (slang expanded, corrected, singular).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub raw: String,
    pub word: String,
}

/// A name made of words, with what it stands for.
#[derive(Debug, Clone)]
pub(super) struct Term {
    pub id: String,
    pub words: Vec<String>,
}

/// Everything the scorer matches against, built once per shop.
#[derive(Debug, Clone)]
pub struct Lexicon {
    /// Known surface words, for spelling correction.
    vocabulary: BTreeSet<String>,
    /// Known words in singular form.
    stems: BTreeSet<String>,
    /// Run-together names split again ("rainjacket" -> rain jacket).
    compounds: BTreeMap<String, Vec<String>>,
    pub(super) products: Vec<Term>,
    pub(super) stores: Vec<Term>,
    /// Every size any product comes in, lowercased.
    pub(super) sizes: BTreeSet<String>,
    faq: Vec<Term>,
    pub(super) cues: cues::Prepared,
}

/// Short forms and slang, expanded before anything else.
const SLANG: &[(&str, &str)] = &[
    ("u", "you"),
    ("ya", "you"),
    ("yu", "you"),
    ("r", "are"),
    ("ur", "your"),
    ("urs", "yours"),
    ("pls", "please"),
    ("plz", "please"),
    ("plox", "please"),
    ("thx", "thanks"),
    ("thnx", "thanks"),
    ("thanx", "thanks"),
    ("tnx", "thanks"),
    ("ty", "thank you"),
    ("tysm", "thank you"),
    ("tyvm", "thank you"),
    ("hrs", "hours"),
    ("hr", "hour"),
    ("wat", "what"),
    ("wut", "what"),
    ("wot", "what"),
    ("whats", "what is"),
    ("wats", "what is"),
    ("wheres", "where is"),
    ("whens", "when is"),
    ("hows", "how is"),
    ("wen", "when"),
    ("wer", "where"),
    ("im", "i am"),
    ("ive", "i have"),
    ("id", "i would"),
    ("ill", "i will"),
    ("youre", "you are"),
    ("theres", "there is"),
    ("thats", "that is"),
    ("its", "it is"),
    ("dont", "do not"),
    ("doesnt", "does not"),
    ("didnt", "did not"),
    ("cant", "can not"),
    ("cannot", "can not"),
    ("wont", "will not"),
    ("isnt", "is not"),
    ("hasnt", "has not"),
    ("havent", "have not"),
    ("aint", "is not"),
    ("2day", "today"),
    ("tdy", "today"),
    ("tmrw", "tomorrow"),
    ("tmr", "tomorrow"),
    ("tmw", "tomorrow"),
    ("tmrow", "tomorrow"),
    ("2moro", "tomorrow"),
    ("2morrow", "tomorrow"),
    ("tomoz", "tomorrow"),
    ("gimme", "give me"),
    ("wanna", "want to"),
    ("gonna", "going to"),
    ("gotta", "got to"),
    ("lemme", "let me"),
    ("cya", "see you"),
    ("bb", "bye"),
    ("l8r", "later"),
    ("ppl", "people"),
    ("smth", "something"),
    ("sth", "something"),
    ("abt", "about"),
    ("bc", "because"),
    ("cuz", "because"),
    ("coz", "because"),
    ("w", "with"),
    ("n", "and"),
    ("nr", "number"),
    ("num", "number"),
    ("acct", "account"),
    ("pw", "password"),
    ("info", "information"),
    ("hiya", "hi"),
    ("heya", "hey"),
    ("hii", "hi"),
    ("hiii", "hi"),
    ("heyy", "hey"),
    ("helo", "hello"),
    ("hallo", "hello"),
    ("ok", "okay"),
    ("k", "okay"),
    ("kk", "okay"),
    ("okey", "okay"),
    ("yep", "yes"),
    ("yup", "yes"),
    ("yeah", "yes"),
    ("yea", "yes"),
    ("ye", "yes"),
    ("nope", "no"),
    ("nah", "no"),
];

/// Words never "corrected": short and common, they would otherwise be
/// bent into a shop word ("that" -> "hat").
const COMMON: &[&str] = &[
    "a", "an", "the", "i", "you", "me", "my", "your", "it", "is", "are", "was", "were", "do",
    "does", "did", "can", "could", "would", "will", "to", "of", "in", "on", "at", "for", "with",
    "and", "or", "but", "not", "no", "yes", "what", "when", "where", "which", "who", "how", "why",
    "that", "this", "these", "those", "there", "here", "have", "has", "had", "be", "been", "get",
    "got", "some", "any", "all", "just", "so", "if", "then", "than", "too", "very", "please", "hi",
    "hey", "its", "they", "them", "we", "us", "our", "she", "he", "her", "him", "his", "from",
    "by", "about", "into", "out", "up", "down", "over", "again", "more", "most", "much", "many",
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "like", "need",
    "want", "know", "see", "think", "make", "go", "going", "come", "take", "good", "great", "new",
    "old", "big", "small", "day", "time", "way", "thing", "things", "still", "also", "only",
    "even", "now", "well", "back", "after", "before", "should", "may", "might", "must", "shall",
    "okay", "ok", "sure", "today", "man", "guys", "mate", "lol", "hat", "bag", "tee", "cap",
    "that's", "then", "them", "give", "gave", "look", "long", "last",
];

pub(super) fn stem(word: &str) -> String {
    let len = word.chars().count();
    if len > 4 && word.ends_with("ies") {
        return format!("{}y", &word[..word.len() - 3]);
    }
    if len > 3
        && word.ends_with('s')
        && !word.ends_with("ss")
        && !word.ends_with("us")
        && !word.ends_with("is")
    {
        return word[..word.len() - 1].to_owned();
    }
    word.to_owned()
}

/// Lowercased words of `text`: apostrophes dropped ("what's" -> "whats"),
/// anything else that is not a letter or digit separates words.
pub(super) fn split_words(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut words = Vec::new();
    let mut current = String::new();
    for c in lower.chars() {
        if c == '\'' || c == '’' || c == '`' {
            continue;
        }
        if c.is_alphanumeric() {
            current.push(c);
        } else if !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

fn expand_slang(word: &str) -> Option<&'static str> {
    SLANG
        .iter()
        .find(|(short, _)| *short == word)
        .map(|(_, long)| *long)
}

/// Words of a phrase as the matcher sees them (slang expanded, singular).
pub(super) fn phrase_words(phrase: &str) -> Vec<String> {
    split_words(phrase)
        .iter()
        .flat_map(|word| match expand_slang(word) {
            Some(long) => long.split(' ').map(str::to_owned).collect(),
            None => vec![word.clone()],
        })
        .map(|word| stem(&word))
        .collect()
}

impl Lexicon {
    pub fn new(shop: &Shop) -> Self {
        let cues = cues::Prepared::new();
        let mut vocabulary: BTreeSet<String> = BTreeSet::new();
        let mut compounds = BTreeMap::new();
        let mut remember = |phrase: &str, vocabulary: &mut BTreeSet<String>| {
            let words = split_words(phrase);
            if words.len() > 1 {
                compounds.insert(
                    stem(&words.concat()),
                    words.iter().map(|word| stem(word)).collect::<Vec<_>>(),
                );
            }
            vocabulary.extend(words);
        };
        for phrase in cues::all_phrases().chain(super::entities::vocabulary()) {
            remember(phrase, &mut vocabulary);
        }
        let term = |id: &str, phrases: Vec<&str>| -> Vec<Term> {
            phrases
                .into_iter()
                .map(|phrase| Term {
                    id: id.to_owned(),
                    words: phrase_words(phrase),
                })
                .filter(|term| !term.words.is_empty())
                .collect()
        };
        let mut products = Vec::new();
        let mut sizes = BTreeSet::new();
        for product in &shop.products {
            let mut names = vec![product.name.as_str()];
            names.extend(product.aliases.iter().map(String::as_str));
            for name in &names {
                remember(name, &mut vocabulary);
            }
            products.extend(term(&product.sku, names));
            sizes.extend(product.sizes.iter().map(|size| size.to_lowercase()));
        }
        let mut stores = Vec::new();
        for store in &shop.stores {
            let mut names = vec![store.name.as_str(), store.id.as_str()];
            names.extend(store.aliases.iter().map(String::as_str));
            for name in &names {
                remember(name, &mut vocabulary);
            }
            stores.extend(term(&store.id, names));
        }
        let mut faq = Vec::new();
        for entry in &shop.faq {
            for keyword in &entry.keywords {
                remember(keyword, &mut vocabulary);
            }
            faq.extend(term(
                &entry.id,
                entry.keywords.iter().map(String::as_str).collect(),
            ));
        }
        // Words never corrected are still words the lexicon knows.
        vocabulary.extend(COMMON.iter().map(|word| (*word).to_owned()));
        vocabulary.retain(|word| !word.chars().all(|c| c.is_ascii_digit()));
        let stems = vocabulary.iter().map(|word| stem(word)).collect();
        Self {
            vocabulary,
            stems,
            compounds,
            products,
            stores,
            sizes,
            faq,
            cues,
        }
    }

    /// The words of `text` as the scorer sees them.
    pub fn tokens(&self, text: &str) -> Vec<Token> {
        let mut tokens = Vec::new();
        for raw in split_words(text) {
            let expanded: Vec<String> = match expand_slang(&raw) {
                Some(long) => long.split(' ').map(str::to_owned).collect(),
                None => vec![raw.clone()],
            };
            for word in expanded {
                for word in self.understand_word(&word) {
                    tokens.push(Token {
                        raw: raw.clone(),
                        word,
                    });
                }
            }
        }
        tokens
    }

    fn understand_word(&self, word: &str) -> Vec<String> {
        if word.chars().any(|c| c.is_ascii_digit()) || self.vocabulary.contains(word) {
            return vec![stem(word)];
        }
        let stemmed = stem(word);
        if self.stems.contains(&stemmed) {
            return vec![stemmed];
        }
        if let Some(parts) = self.compounds.get(&stemmed) {
            return parts.clone();
        }
        match self.correct(word) {
            Some(corrected) => {
                let stemmed = stem(corrected);
                match self.compounds.get(&stemmed) {
                    Some(parts) => parts.clone(),
                    None => vec![stemmed],
                }
            }
            None => vec![stemmed],
        }
    }

    /// The closest known word within a small edit distance, if one is
    /// clearly meant.
    fn correct(&self, word: &str) -> Option<&str> {
        let len = word.chars().count();
        if len < 3 {
            return None;
        }
        let first = word.chars().next()?;
        let mut best: Option<(&str, usize, f64)> = None;
        let candidates = self
            .vocabulary
            .iter()
            .chain(self.compounds.keys())
            .map(String::as_str);
        for candidate in candidates {
            let candidate_len = candidate.chars().count();
            if candidate_len < 3 || candidate_len.abs_diff(len) > 2 {
                continue;
            }
            let distance = strsim::osa_distance(word, candidate);
            let same_start = candidate.starts_with(first);
            let allowed = match len {
                0..=4 => usize::from(same_start),
                5 => 1,
                6..=7 => {
                    if same_start && candidate.chars().nth(1) == word.chars().nth(1) {
                        2
                    } else {
                        1
                    }
                }
                _ => 2,
            };
            if distance == 0 || distance > allowed {
                continue;
            }
            let similarity = strsim::jaro_winkler(word, candidate);
            let better = match best {
                None => true,
                Some((_, best_distance, best_similarity)) => {
                    distance < best_distance
                        || (distance == best_distance && similarity > best_similarity)
                }
            };
            if better {
                best = Some((candidate, distance, similarity));
            }
        }
        best.map(|(candidate, _, _)| candidate)
    }

    /// The FAQ entry one of whose keyword phrases appears in the message.
    pub fn faq_match(&self, tokens: &[Token]) -> Option<String> {
        let words: Vec<&str> = tokens.iter().map(|token| token.word.as_str()).collect();
        self.faq
            .iter()
            .filter(|term| contains_phrase(&words, &term.words))
            .max_by_key(|term| term.words.len())
            .map(|term| term.id.clone())
    }
}

/// Whether `words` holds `phrase` as consecutive words.
pub(super) fn contains_phrase(words: &[&str], phrase: &[String]) -> bool {
    find_phrase(words, phrase).is_some()
}

pub(super) fn find_phrase(words: &[&str], phrase: &[String]) -> Option<usize> {
    if phrase.is_empty() || phrase.len() > words.len() {
        return None;
    }
    words
        .windows(phrase.len())
        .position(|window| window.iter().zip(phrase).all(|(a, b)| *a == b.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        Lexicon::new(&Shop::demo())
            .tokens(text)
            .into_iter()
            .map(|token| token.word)
            .collect()
    }

    #[test]
    fn slang_typos_and_plurals_are_normalised() {
        assert_eq!(words("wen r u opn"), ["when", "are", "you", "open"]);
        assert_eq!(words("Rain Jackets"), ["rain", "jacket"]);
        assert_eq!(words("refnud pls"), ["refund", "please"]);
        assert_eq!(words("rainjackets"), ["rain", "jacket"]);
        assert_eq!(words("What's that"), ["what", "is", "that"]);
    }
}
