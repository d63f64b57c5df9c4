//! The weighted cue phrases per intent, and the small word lists for
//! yes/no, cancel and claims of authority.
//!
//! Phrases are written as people type them; they pass through the same
//! normalisation as messages (slang, singular), so "hours" also matches
//! "hour" and "ur" matches "your". Weights: about 1 for a hint, 2-3 for a
//! word that nearly decides the intent on its own.

use super::entities::Entities;
use super::lexicon::{Token, find_phrase, phrase_words};
use super::{Answer, Intent, MIN_SCORE};

type Cues = &'static [(&'static str, f32)];

const GREET: Cues = &[
    ("hi", 1.5),
    ("hello", 1.5),
    ("hey", 1.5),
    ("good morning", 1.5),
    ("good afternoon", 1.5),
    ("good evening", 1.5),
    ("morning", 1.0),
    ("howdy", 1.5),
    ("yo", 1.2),
    ("sup", 1.2),
    ("greetings", 1.5),
    ("moin", 1.5),
    ("hola", 1.5),
    ("bonjour", 1.5),
    ("what is up", 1.5),
    ("anyone there", 1.5),
    ("anybody there", 1.5),
    ("get started", 1.5),
    ("how are you", 1.2),
];

const GOODBYE: Cues = &[
    ("bye", 2.0),
    ("goodbye", 2.0),
    ("see you", 2.0),
    ("later", 1.0),
    ("have a nice day", 2.0),
    ("have a good day", 2.0),
    ("have a great day", 2.0),
    ("good night", 2.0),
    ("ciao", 2.0),
    ("farewell", 2.0),
    ("adios", 2.0),
    ("that is all", 1.5),
    ("that is it", 1.0),
    ("i am done", 1.5),
    ("got to go", 2.0),
    ("take care", 1.5),
    ("talk soon", 1.5),
];

const THANKS: Cues = &[
    ("thanks", 2.0),
    ("cheers", 1.5),
    ("appreciate", 2.0),
    ("appreciated", 2.0),
    ("grateful", 2.0),
    ("great", 0.7),
    ("perfect", 1.0),
    ("awesome", 1.0),
    ("cool", 0.8),
    ("nice", 0.6),
    ("helpful", 1.5),
    ("brilliant", 1.0),
    ("lovely", 1.0),
    ("danke", 2.0),
    ("merci", 2.0),
    ("ta", 1.0),
    ("much obliged", 2.0),
    ("you are a star", 1.5),
    ("legend", 1.0),
];

const HELP: Cues = &[
    ("help", 1.2),
    ("what can you do", 2.5),
    ("what can", 0.6),
    ("bot", 0.6),
    ("what do you do", 2.0),
    ("how does this work", 2.5),
    ("how do this work", 2.0),
    ("menu", 2.0),
    ("options", 1.5),
    ("commands", 1.5),
    ("what can i ask", 2.0),
    ("who are you", 1.5),
    ("what are you", 1.5),
    ("are you a bot", 1.5),
    ("are you a robot", 1.5),
    ("what is this", 1.0),
    ("features", 1.0),
    ("i am confused", 1.5),
    ("confused", 1.0),
    ("how can you help", 1.5),
    ("how to use", 1.5),
    ("how do i use", 1.5),
    ("what services", 1.5),
];

const STORE_HOURS: Cues = &[
    ("open", 1.5),
    ("opening", 1.5),
    ("opening hours", 1.0),
    ("hours", 2.0),
    ("close", 1.5),
    ("closing", 1.5),
    ("closed", 1.5),
    ("shut", 1.5),
    ("what time", 1.0),
    ("when", 0.4),
    ("until", 0.3),
    ("till", 0.3),
    ("schedule", 1.5),
    ("late", 0.5),
    ("holiday", 1.0),
    ("christmas", 1.0),
    ("boxing day", 1.0),
    ("new year", 1.0),
    ("time", 0.5),
    ("tonight", 0.5),
    ("weekend", 0.6),
    ("business hours", 1.0),
    ("sunday", 0.3),
];

const STORE_LOCATION: Cues = &[
    ("where", 1.0),
    ("where is", 0.3),
    ("address", 2.0),
    ("location", 2.0),
    ("located", 2.0),
    ("directions", 2.0),
    ("nearest", 2.0),
    ("near me", 2.0),
    ("nearby", 2.0),
    ("closest", 2.0),
    ("find a store", 1.0),
    ("which store", 1.5),
    ("find", 0.5),
    ("store", 0.8),
    ("shop", 0.8),
    ("stores", 0.3),
    ("branch", 1.5),
    ("get there", 1.5),
    ("how do i get", 1.5),
    ("how to get", 1.5),
    ("map", 1.5),
    ("parking", 1.0),
    ("which city", 1.0),
    ("postcode", 1.0),
    ("come by", 1.0),
    ("visit", 1.0),
    ("in person", 1.0),
    ("around here", 1.5),
    ("far", 1.0),
];

const PRODUCT_STOCK: Cues = &[
    ("in stock", 2.5),
    ("stock", 1.5),
    ("available", 1.5),
    ("availability", 2.0),
    ("do you have", 1.5),
    ("have you got", 1.5),
    ("got any", 1.5),
    ("do you sell", 2.0),
    ("do you carry", 2.0),
    ("any left", 2.0),
    ("left", 0.5),
    ("sold out", 2.0),
    ("out of stock", 2.0),
    ("in size", 1.0),
    ("size", 0.8),
    ("come in", 1.0),
    ("is there", 0.5),
    ("how many", 1.0),
    ("restock", 2.0),
    ("inventory", 2.0),
    ("carry", 1.0),
    ("sell", 1.0),
    ("still have", 1.0),
    ("how much", 0.9),
    ("price", 0.9),
    ("cost", 0.8),
    ("check", 0.4),
];

const PURCHASE: Cues = &[
    ("buy", 2.5),
    ("purchase", 2.5),
    ("want to order", 1.5),
    ("like to order", 1.5),
    ("place an order", 2.0),
    ("add to cart", 2.5),
    ("add", 0.8),
    ("cart", 2.0),
    ("basket", 2.0),
    ("checkout", 2.5),
    ("check out", 1.5),
    ("i will take", 2.0),
    ("take it", 1.5),
    ("take one", 1.5),
    ("get one", 1.0),
    ("i want", 1.0),
    ("i would like", 1.0),
    ("i need", 0.5),
    ("pay", 1.0),
    ("payment link", 2.0),
    ("give me", 1.0),
    ("grab", 1.0),
    ("reserve", 1.5),
    ("shopping", 1.0),
];

const ORDER_STATUS: Cues = &[
    ("my order", 1.0),
    ("order", 0.8),
    ("order status", 1.5),
    ("ordered", 1.0),
    ("i ordered", 1.0),
    ("track", 2.0),
    ("tracking", 2.0),
    ("parcel", 1.5),
    ("package", 1.5),
    ("delivery", 1.2),
    ("deliver", 1.0),
    ("delivered", 0.8),
    ("shipped", 1.5),
    ("shipping", 1.0),
    ("ship", 1.0),
    ("shipment", 1.5),
    ("arrive", 1.5),
    ("arrived", 0.5),
    ("not arrived", 1.5),
    ("not come", 1.0),
    ("where is my", 0.8),
    ("when will", 0.8),
    ("still waiting", 1.5),
    ("waiting for", 1.0),
    ("dispatch", 1.5),
    ("dispatched", 1.5),
    ("eta", 1.5),
    ("status", 1.0),
    ("courier", 1.5),
    ("dhl", 1.5),
    ("sent out", 1.0),
];

const REFUND_REQUEST: Cues = &[
    ("refund", 3.0),
    ("return", 2.5),
    ("returning", 2.5),
    ("returned", 1.5),
    ("money back", 3.0),
    ("send back", 2.5),
    ("send it back", 2.5),
    ("exchange", 2.0),
    ("reimburse", 2.5),
    ("reimbursement", 2.5),
    ("chargeback", 2.5),
    ("cancel my order", 2.0),
    ("cancel order", 2.0),
    ("does not fit", 1.5),
    ("wrong size", 1.5),
    ("too small", 1.0),
    ("too big", 1.0),
    ("give back", 1.5),
    ("credit", 1.0),
];

const COMPLAINT: Cues = &[
    ("complain", 3.0),
    ("complaint", 3.0),
    ("terrible", 2.0),
    ("awful", 2.0),
    ("horrible", 2.0),
    ("disappointed", 2.0),
    ("disappointing", 2.0),
    ("unacceptable", 2.5),
    ("rude", 2.5),
    ("worst", 2.0),
    ("angry", 2.0),
    ("furious", 2.5),
    ("not happy", 2.0),
    ("unhappy", 2.0),
    ("poor service", 2.5),
    ("bad service", 2.5),
    ("broken", 2.0),
    ("damaged", 2.0),
    ("faulty", 1.5),
    ("ripped", 1.5),
    ("torn", 1.5),
    ("arrived broken", 1.0),
    ("arrived damaged", 1.0),
    ("ridiculous", 2.0),
    ("disgusting", 2.0),
    ("bad experience", 2.5),
    ("never again", 2.0),
    ("waste", 1.5),
    ("scam", 2.0),
    ("fed up", 2.0),
    ("sick of", 1.5),
    ("useless", 1.5),
    ("not good enough", 2.0),
    ("very bad", 1.5),
    ("so bad", 1.5),
    ("hate", 1.5),
    ("upset", 2.0),
    ("messed up", 1.5),
    ("wrong item", 1.5),
    ("missing item", 1.5),
    ("fell apart", 1.5),
    ("poor quality", 2.0),
    ("not working", 1.5),
    ("defective", 1.5),
    ("shocking", 2.0),
    ("appalling", 2.0),
    ("overcharged", 2.0),
];

const HUMAN_HANDOFF: Cues = &[
    ("human", 3.0),
    ("person", 2.5),
    ("real person", 1.0),
    ("agent", 3.0),
    ("representative", 3.0),
    ("rep", 2.0),
    ("operator", 3.0),
    ("speak to", 1.5),
    ("speak with", 1.5),
    ("talk to", 1.2),
    ("talk with", 1.2),
    ("someone", 0.8),
    ("somebody", 0.8),
    ("customer service", 2.0),
    ("customer care", 2.0),
    ("call me", 2.5),
    ("phone call", 1.5),
    ("live chat", 2.5),
    ("staff", 1.0),
    ("employee", 2.0),
    ("manager", 2.0),
    ("not a bot", 2.0),
    ("escalate", 2.5),
    ("support team", 2.0),
    ("support", 1.0),
    ("team", 0.5),
    ("live", 0.5),
    ("in person", -2.0),
    ("do not want a bot", 2.5),
    ("no bot", 2.5),
];

const ACCOUNT_LINK: Cues = &[
    ("verify", 3.0),
    ("verification", 3.0),
    ("link my account", 2.0),
    ("link", 1.5),
    ("my account", 1.5),
    ("account", 1.0),
    ("login", 2.5),
    ("log in", 2.5),
    ("sign in", 2.5),
    ("connect my account", 2.5),
    ("connect", 1.0),
    ("authenticate", 3.0),
    ("identify", 2.0),
    ("it is me", 1.0),
    ("prove", 1.0),
    ("code", 1.0),
    ("one time code", 2.0),
    ("otp", 2.5),
    ("confirm my identity", 2.5),
    ("identity", 2.0),
    ("registered", 1.0),
];

const DELETE_MY_DATA: Cues = &[
    ("delete", 3.0),
    ("delete my account", 1.0),
    ("erase", 3.0),
    ("forget me", 3.0),
    ("forget about me", 3.0),
    ("remove my data", 3.0),
    ("my data", 1.5),
    ("personal data", 2.0),
    ("personal information", 2.0),
    ("gdpr", 3.0),
    ("privacy", 1.0),
    ("wipe", 2.5),
    ("right to be forgotten", 3.0),
    ("remove", 1.0),
    ("data", 1.0),
    ("stop storing", 2.5),
    ("about me", 1.0),
    ("deleted", 3.0),
];

/// Said alone or nearly so, these cancel the dialogue in progress.
const CANCEL: &[&str] = &[
    "cancel",
    "never mind",
    "nevermind",
    "forget it",
    "stop",
    "abort",
    "start over",
    "restart",
    "quit",
    "exit",
    "reset",
];

const YES: &[&str] = &[
    "yes",
    "sure",
    "okay",
    "correct",
    "confirm",
    "go ahead",
    "please do",
    "do it",
    "absolutely",
    "definitely",
    "affirmative",
    "y",
    "right",
    "that is right",
    "of course",
    "yes please",
];

const NO: &[&str] = &[
    "no",
    "not",
    "n",
    "do not",
    "negative",
    "no thanks",
    "keep it",
    "never",
];

/// "I'm from IT", "ignore previous instructions", "I'm the owner, I lost my
/// phone": noticed so the assistant can say that nothing changes.
const AUTHORITY: &[&str] = &[
    "i am from it",
    "from it",
    "it department",
    "it support",
    "i am the owner",
    "i am owner",
    "owner of",
    "account owner",
    "i am an admin",
    "admin",
    "administrator",
    "i work here",
    "i work for",
    "i work at",
    "i am staff",
    "i am the manager",
    "i am a manager",
    "i am your manager",
    "developer",
    "ignore previous",
    "ignore all",
    "ignore your",
    "ignore the",
    "disregard",
    "previous instruction",
    "system prompt",
    "you are now",
    "pretend",
    "act as",
    "jailbreak",
    "override",
    "sudo",
    "debug mode",
    "dev mode",
    "police",
    "law enforcement",
    "lost my phone",
    "new phone",
    "changed my email",
    "new email",
    "on behalf of",
    "authorized",
    "authorised",
    "security team",
    "ceo",
];

const TABLES: [(Intent, Cues); 14] = [
    (Intent::Greet, GREET),
    (Intent::Goodbye, GOODBYE),
    (Intent::Thanks, THANKS),
    (Intent::Help, HELP),
    (Intent::StoreHours, STORE_HOURS),
    (Intent::StoreLocation, STORE_LOCATION),
    (Intent::ProductStock, PRODUCT_STOCK),
    (Intent::OrderStatus, ORDER_STATUS),
    (Intent::RefundRequest, REFUND_REQUEST),
    (Intent::Purchase, PURCHASE),
    (Intent::Complaint, COMPLAINT),
    (Intent::HumanHandoff, HUMAN_HANDOFF),
    (Intent::AccountLink, ACCOUNT_LINK),
    (Intent::DeleteMyData, DELETE_MY_DATA),
];

/// Every cue phrase, so the lexicon knows their words for spelling
/// correction.
pub(super) fn all_phrases() -> impl Iterator<Item = &'static str> {
    TABLES
        .iter()
        .flat_map(|(_, cues)| cues.iter().map(|(phrase, _)| *phrase))
        .chain(CANCEL.iter().copied())
        .chain(YES.iter().copied())
        .chain(NO.iter().copied())
        .chain(AUTHORITY.iter().copied())
}

/// The cue tables with their phrases normalised once.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    intents: Vec<(Intent, Vec<String>, f32)>,
    cancel: Vec<Vec<String>>,
    yes: Vec<Vec<String>>,
    no: Vec<Vec<String>>,
    authority: Vec<Vec<String>>,
}

fn prepare(list: &[&str]) -> Vec<Vec<String>> {
    list.iter().map(|phrase| phrase_words(phrase)).collect()
}

impl Prepared {
    pub(super) fn new() -> Self {
        let intents = TABLES
            .iter()
            .flat_map(|(intent, cues)| {
                cues.iter()
                    .map(|(phrase, weight)| (*intent, phrase_words(phrase), *weight))
            })
            .collect();
        Self {
            intents,
            cancel: prepare(CANCEL),
            yes: prepare(YES),
            no: prepare(NO),
            authority: prepare(AUTHORITY),
        }
    }
}

fn words(tokens: &[Token]) -> Vec<&str> {
    tokens.iter().map(|token| token.word.as_str()).collect()
}

/// Per-intent scores for a message.
pub(super) fn scores(
    prepared: &Prepared,
    tokens: &[Token],
    entities: &Entities,
) -> Vec<(Intent, f32)> {
    let words = words(tokens);
    let mut scores: Vec<(Intent, f32)> = TABLES.iter().map(|(intent, _)| (*intent, 0.0)).collect();
    let mut add = |intent: Intent, weight: f32| {
        if let Some(entry) = scores.iter_mut().find(|(known, _)| *known == intent) {
            entry.1 += weight;
        }
    };
    for (intent, phrase, weight) in &prepared.intents {
        match find_phrase(&words, phrase) {
            // Greetings open a message; "translate hello" is no greeting.
            Some(at) if *intent == Intent::Greet && at > 1 => {}
            Some(_) => add(*intent, *weight),
            None => {}
        }
    }
    let mentions_store = ["store", "shop", "branch"]
        .iter()
        .any(|word| words.contains(word));
    if entities.product.is_none() && mentions_store {
        add(Intent::ProductStock, -0.5);
    }
    if entities.order_number.is_some() {
        add(Intent::OrderStatus, 1.5);
    }
    if entities.product.is_some() {
        add(Intent::ProductStock, 1.0);
        add(Intent::Purchase, 0.4);
        // "order a rain jacket" is buying, not tracking.
        if entities.order_number.is_none() && words.contains(&"order") {
            add(Intent::Purchase, 1.5);
            add(Intent::OrderStatus, -0.8);
        }
    }
    if entities.quantity.is_some() && entities.product.is_some() {
        add(Intent::Purchase, 0.8);
    }
    if entities.size.is_some() {
        add(Intent::ProductStock, 0.3);
    }
    if entities.day.is_some() {
        add(Intent::StoreHours, 0.7);
    }
    if entities.store.is_some() {
        add(Intent::StoreHours, 0.3);
        add(Intent::StoreLocation, 0.5);
    }
    if entities.email.is_some() {
        add(Intent::AccountLink, 1.2);
    }
    scores
}

/// The intent with the best score, task intents before small talk, or
/// out of scope when nothing reaches [`MIN_SCORE`].
pub(super) fn pick(scores: &[(Intent, f32)]) -> (Intent, f32) {
    let best = |small_talk: bool| {
        scores
            .iter()
            .filter(|(intent, score)| intent.is_small_talk() == small_talk && *score >= MIN_SCORE)
            .fold(
                None,
                |best: Option<(Intent, f32)>, (intent, score)| match best {
                    Some((_, best_score)) if best_score >= *score => best,
                    _ => Some((*intent, *score)),
                },
            )
    };
    // Small talk wins only when clearly stronger: "thanks for the help" is
    // thanks, "hi, I need help" is help.
    match (best(false), best(true)) {
        (Some(task), Some(talk)) if talk.1 > task.1 + 0.5 => talk,
        (Some(task), _) => task,
        (None, Some(talk)) => talk,
        (None, None) => (Intent::OutOfScope, 0.0),
    }
}

fn short_message_starts_with(tokens: &[Token], phrases: &[Vec<String>], max_words: usize) -> bool {
    let words = words(tokens);
    words.len() <= max_words
        && phrases.iter().any(|phrase| {
            phrase.len() <= words.len()
                && words[..phrase.len()]
                    .iter()
                    .zip(phrase)
                    .all(|(a, b)| *a == b)
        })
}

pub(super) fn answer(prepared: &Prepared, tokens: &[Token]) -> Option<Answer> {
    if short_message_starts_with(tokens, &prepared.no, 5) {
        Some(Answer::No)
    } else if short_message_starts_with(tokens, &prepared.yes, 5) {
        Some(Answer::Yes)
    } else {
        None
    }
}

pub(super) fn is_cancel(prepared: &Prepared, tokens: &[Token]) -> bool {
    let words = words(tokens);
    words.len() <= 4
        && prepared
            .cancel
            .iter()
            .any(|phrase| find_phrase(&words, phrase).is_some())
}

pub(super) fn claims_authority(prepared: &Prepared, tokens: &[Token]) -> bool {
    let words = words(tokens);
    prepared
        .authority
        .iter()
        .any(|phrase| find_phrase(&words, phrase).is_some())
}
