//! The dialogues: what the assistant does with each input. This module
//! reads events and routes them; the dialogues live in its children.

mod account;
mod outcomes;
mod shopping;

use crate::backend::{
    BackendError, BackendRequest, BackendResponse, CartLine, OrderDetails, OrderState,
};
use crate::guards::{mask_address, mask_email};
use crate::model::{
    ChoiceOption, Command, EventKind, InboundEvent, MessageContent, OrderItem, OutboundBody,
};
use crate::nlu::{Answer, Entities, Intent, ProductMatch, Understanding, understand_with};
use crate::otp::{LinkFailure, is_code_shaped};
use crate::shop::{Product, Store, format_clock, local_date_minute};
use crate::state::{
    ComplaintStage, ConversationState, Dialogue, HandoffReason, HandoffStatus, LinkStage,
    LinkStatus, OrderPurpose, PendingEffect, PendingLink, RefundDraft, RefundStage, Resume,
    StorePurpose,
};
use crate::texts::Text;

use super::hours::{day_line, distance_text, status_line, week_summary};
use super::turn::Turn;
use super::{Effect, EffectResult, HandoffSummary, LinkCodeFailure};

use account::*;
use shopping::*;

use outcomes::*;
pub(super) use outcomes::{on_agent_took_over, on_effect, on_handoff_ended};

const REASONS: [(&str, Text); 4] = [
    ("damaged", Text::ReasonDamaged),
    ("wrong_size", Text::ReasonWrongSize),
    ("not_as_described", Text::ReasonNotAsDescribed),
    ("changed_mind", Text::ReasonChangedMind),
];

/// The store id that stands for "every store" in stock checks.
const ALL_STORES: &str = "all";

fn means_all_stores(text: &str) -> bool {
    let lower = text.trim().to_lowercase();
    lower == "all"
        || lower.starts_with("all store")
        || lower.starts_with("any store")
        || lower.contains("everywhere")
        || lower.contains("all shops")
}

// ---------------------------------------------------------------- events

pub(super) fn on_event(turn: &mut Turn<'_>, event: &InboundEvent) {
    let now = turn.ctx.now_ms;
    turn.customer_name = event
        .sender
        .display_name
        .as_deref()
        .and_then(|name| name.split_whitespace().next())
        .map(str::to_owned);
    // A tapped Telegram button spins until answered, hand-off or not.
    if let EventKind::Payload(payload) = &event.kind
        && let Some(callback_id) = &payload.callback_id
    {
        turn.push_raw(OutboundBody::AnswerCallback {
            callback_id: callback_id.clone(),
            text: None,
        });
    }
    turn.state.last_customer_message_ms = Some(now);

    if let Some(handoff) = &turn.state.handoff {
        if now < handoff.resume_after_ms {
            // A person is answering: keep the transcript, say nothing.
            if let Some(text) = customer_text(event) {
                let masked = crate::guards::mask_sensitive(&text).text;
                turn.remember_customer(&masked);
            }
            return;
        }
        turn.state.handoff = None;
    }

    refresh_link(turn);

    match &event.kind {
        EventKind::Message(message) | EventKind::Edited(message) => match &message.content {
            MessageContent::Text {
                command: Some(command),
                ..
            } => on_command(turn, command),
            MessageContent::Text {
                text,
                command: None,
            } => on_text(turn, text),
            MessageContent::Media(media) => match media.caption.as_deref().map(str::trim) {
                Some(caption) if !caption.is_empty() => on_text(turn, caption),
                _ => media_unsupported(turn),
            },
            MessageContent::Location(location) => {
                on_location(turn, location.latitude, location.longitude);
            }
            MessageContent::Contacts { .. } => media_unsupported(turn),
            MessageContent::Order { items, .. } => on_catalog_order(turn, items),
        },
        EventKind::Payload(payload) => {
            let title = payload.title.clone();
            on_payload(turn, &payload.payload, title.as_deref());
        }
        EventKind::Referral(referral) => {
            match referral.reference.as_deref().and_then(order_from_reference) {
                Some(order) => order_lookup(turn, &order),
                None => greet(turn),
            }
        }
        _ => turn.untouched(),
    }
}

pub(super) fn customer_text(event: &InboundEvent) -> Option<String> {
    match &event.kind {
        EventKind::Message(message) | EventKind::Edited(message) => {
            message.content.text().map(str::to_owned)
        }
        EventKind::Payload(payload) => Some(payload.title.clone().unwrap_or_default()),
        _ => None,
    }
}

/// A link lapses after its idle time and serves only the user who made it;
/// each of that user's messages keeps it alive.
pub(super) fn refresh_link(turn: &mut Turn<'_>) {
    let now = turn.ctx.now_ms;
    let idle = turn.a.settings.link_idle_ms;
    let sender = turn.ctx.sender_id;
    if let Some(link) = &mut turn.state.link {
        if now >= link.linked_until_ms {
            turn.state.link = None;
            turn.link_lapsed = true;
        } else if link.user_id == sender {
            link.linked_until_ms = now.saturating_add(idle);
        }
    }
}

pub(super) fn order_from_reference(reference: &str) -> Option<String> {
    let lower = reference.to_ascii_lowercase();
    let digits = lower
        .strip_prefix("order")?
        .trim_start_matches(['-', '_', ':']);
    (digits.len() >= 4 && digits.len() <= 10 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.to_owned())
}

pub(super) fn on_command(turn: &mut Turn<'_>, command: &Command) {
    let args = command.args.trim();
    turn.remember_customer(&format!("/{} {}", command.name, args));
    match command.name.as_str() {
        "start" => match order_from_reference(args) {
            Some(order) => order_lookup(turn, &order),
            None => greet(turn),
        },
        "help" => run_intent(
            turn,
            Intent::Help,
            &Understanding::bare(Intent::Help),
            false,
        ),
        "hours" => run_intent(
            turn,
            Intent::StoreHours,
            &understand_with(&turn.a.lexicon, args),
            true,
        ),
        "stores" | "location" | "locations" => {
            run_intent(
                turn,
                Intent::StoreLocation,
                &Understanding::bare(Intent::StoreLocation),
                false,
            );
        }
        "order" | "status" => {
            let number = args.trim_start_matches('#');
            if number.len() >= 4 && number.bytes().all(|b| b.is_ascii_digit()) {
                order_lookup(turn, number);
            } else {
                ask_order_number(turn, OrderPurpose::Status);
            }
        }
        "menu" => show_menu(turn, Text::MenuPrompt),
        "cancel" | "stop" => cancel(turn),
        "human" | "agent" => start_handoff(turn, HandoffReason::Requested),
        "delete" | "forget" => run_intent(
            turn,
            Intent::DeleteMyData,
            &Understanding::bare(Intent::DeleteMyData),
            false,
        ),
        _ => run_intent(
            turn,
            Intent::Help,
            &Understanding::bare(Intent::Help),
            false,
        ),
    }
}

pub(super) fn media_unsupported(turn: &mut Turn<'_>) {
    turn.remember_customer("[attachment]");
    show_menu(turn, Text::MediaUnsupported);
}

pub(super) fn on_location(turn: &mut Turn<'_>, latitude: f64, longitude: f64) {
    turn.remember_customer("[shared a location]");
    let shop = &turn.a.shop;
    let Some((store, km)) = shop.nearest_store(latitude, longitude) else {
        show_menu(turn, Text::OutOfScope);
        return;
    };
    let mut text = turn.render(
        Text::NearestStore,
        &[
            ("store", &store.name),
            ("address", &store.address),
            ("distance", &distance_text(turn, km)),
        ],
    );
    text.push(' ');
    text.push_str(&status_line(turn, store));
    turn.state.context.last_store = Some(store.id.clone());
    if matches!(turn.state.dialogue, Dialogue::ChooseStore { .. }) {
        turn.state.dialogue = Dialogue::Idle;
    }
    turn.say(text);
}

pub(super) fn on_catalog_order(turn: &mut Turn<'_>, items: &[OrderItem]) {
    turn.remember_customer("[sent a catalogue order]");
    let shop = turn.a.shop.clone();
    let mut added = false;
    for item in items {
        if let Some(product) = shop
            .products
            .iter()
            .find(|product| product.sku.eq_ignore_ascii_case(&item.product_id))
        {
            add_to_cart(turn, product, None, item.quantity.max(1));
            added = true;
        }
    }
    if added {
        show_cart(turn);
    } else {
        show_menu(turn, Text::OutOfScope);
    }
}

// ------------------------------------------------------------------ text

pub(super) fn on_text(turn: &mut Turn<'_>, text: &str) {
    let understanding = understand_with(&turn.a.lexicon, text);
    let awaiting_code = matches!(
        turn.state.dialogue,
        Dialogue::Linking {
            stage: LinkStage::AwaitingCode,
            ..
        }
    );
    // A one-time code is a secret: the transcript keeps only its shape.
    let remembered = if awaiting_code && understanding.entities.code.is_some() {
        understanding
            .masked_text
            .split_whitespace()
            .map(|word| if is_code_shaped(word) { "[code]" } else { word })
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        understanding.masked_text.clone()
    };
    turn.remember_customer(&remembered);

    if understanding.flags.card_number {
        turn.say(turn.t(Text::CardWarning));
    }
    if understanding.flags.password {
        turn.say(turn.t(Text::PasswordWarning));
    }
    if understanding.flags.authority_claim {
        turn.say(turn.t(Text::AuthorityNotice));
    }
    if understanding.flags.cancel {
        cancel(turn);
        return;
    }
    if let Some(payload) = offered_choice(&turn.state, text) {
        on_payload(turn, &payload, None);
        return;
    }
    if continue_dialogue(turn, &understanding) {
        return;
    }
    let warned = understanding.flags.card_number || understanding.flags.password;
    if warned && understanding.intent == Intent::OutOfScope {
        return;
    }
    run_intent(turn, understanding.intent, &understanding, true);
}

/// "2" after a menu picks its second option.
pub(super) fn offered_choice(state: &ConversationState, text: &str) -> Option<String> {
    let trimmed = text.trim().trim_end_matches('.');
    if trimmed.is_empty() || trimmed.len() > 2 {
        return None;
    }
    let index: usize = trimmed.parse().ok()?;
    state
        .offered
        .get(index.checked_sub(1)?)
        .map(|option| option.payload.clone())
}

pub(super) fn cancel(turn: &mut Turn<'_>) {
    let busy = turn.state.dialogue != Dialogue::Idle || turn.state.pending_link.is_some();
    turn.state.dialogue = Dialogue::Idle;
    turn.state.pending_link = None;
    turn.state.pending = None;
    if busy {
        show_menu(turn, Text::Cancelled);
    } else {
        show_menu(turn, Text::NothingToCancel);
    }
}

pub(super) fn is_task(understanding: &Understanding) -> bool {
    let intent = understanding.intent;
    !intent.is_small_talk() && intent != Intent::OutOfScope && intent != Intent::Help
}

/// Fills the slots of the dialogue in progress. False when the message is
/// about something else, so it is handled as a new request.
pub(super) fn continue_dialogue(turn: &mut Turn<'_>, u: &Understanding) -> bool {
    let entities = &u.entities;
    match turn.state.dialogue.clone() {
        Dialogue::Idle => false,
        Dialogue::Linking { stage, resume } => {
            let identifier = entities.email.clone().or_else(|| {
                entities
                    .order_number
                    .clone()
                    .filter(|number| stage == LinkStage::AwaitingIdentifier || number.len() != 6)
            });
            if stage == LinkStage::AwaitingCode
                && let Some(code) = &entities.code
                && u.masked_text.split_whitespace().count() <= 4
            {
                turn.effect(
                    Effect::CheckLinkCode { code: code.clone() },
                    Some(PendingEffect::CheckLinkCode),
                );
                return true;
            }
            if let Some(identifier) = identifier {
                // "10023" given to verify a refund is also the order to refund.
                let resume = match resume {
                    Some(Resume::Refund { order_number: None }) if entities.email.is_none() => {
                        Some(Resume::Refund {
                            order_number: Some(identifier.clone()),
                        })
                    }
                    other => other,
                };
                issue_code(turn, identifier, resume);
                return true;
            }
            if is_task(u) && u.intent != Intent::AccountLink {
                turn.state.dialogue = Dialogue::Idle;
                return false;
            }
            match stage {
                LinkStage::AwaitingIdentifier => turn.say(turn.t(Text::LinkBadIdentifier)),
                LinkStage::AwaitingCode => {
                    let destination = turn
                        .state
                        .pending_link
                        .as_ref()
                        .and_then(|pending| pending.destination_masked.clone())
                        .unwrap_or_default();
                    turn.say(turn.render(Text::CodePrompt, &[("destination", &destination)]));
                }
            }
            true
        }
        Dialogue::ChooseStore { purpose } => {
            let Some(store) = entities.store.clone() else {
                turn.state.dialogue = Dialogue::Idle;
                return false;
            };
            turn.state.dialogue = Dialogue::Idle;
            answer_for_store(turn, &store, &purpose);
            true
        }
        Dialogue::Stock { sku, size, store } => {
            let all_stores = means_all_stores(&u.masked_text);
            let contributes = entities.product.is_some()
                || entities.size.is_some()
                || entities.store.is_some()
                || all_stores;
            if u.intent == Intent::Purchase {
                let sku = entities.product.as_ref().map(|p| p.sku.clone()).or(sku);
                let size = entities.size.clone().or(size);
                turn.state.dialogue = Dialogue::Idle;
                continue_purchase(turn, sku, size, entities.quantity.unwrap_or(1));
                return true;
            }
            // A clear new question ("when do you close at harbour?") leaves
            // the stock check; a bare store or size fills it.
            let asks_something_else = is_task(u)
                && u.intent != Intent::ProductStock
                && u.score >= 2.0
                && entities.product.is_none()
                && entities.size.is_none();
            if !contributes || asks_something_else {
                turn.state.dialogue = Dialogue::Idle;
                return false;
            }
            let changed_product = entities
                .product
                .as_ref()
                .is_some_and(|product| Some(&product.sku) != sku.as_ref());
            let sku = entities.product.as_ref().map(|p| p.sku.clone()).or(sku);
            let size = match (&entities.size, changed_product) {
                (Some(size), _) => Some(size.clone()),
                (None, true) => None,
                (None, false) => size,
            };
            let store = entities
                .store
                .clone()
                .or_else(|| all_stores.then(|| ALL_STORES.to_owned()))
                .or(store);
            continue_stock(turn, sku, size, store);
            true
        }
        Dialogue::Purchase {
            sku,
            size,
            quantity,
        } => {
            let contributes = entities.product.is_some() || entities.size.is_some();
            if !contributes {
                turn.state.dialogue = Dialogue::Idle;
                return false;
            }
            let sku = entities.product.as_ref().map(|p| p.sku.clone()).or(sku);
            let size = entities.size.clone().or(size);
            continue_purchase(turn, sku, size, entities.quantity.unwrap_or(quantity));
            true
        }
        Dialogue::OrderNumber { purpose } => {
            if let Some(number) = entities.order_number.clone() {
                turn.state.dialogue = Dialogue::Idle;
                match purpose {
                    OrderPurpose::Status => order_lookup(turn, &number),
                    OrderPurpose::Refund => start_refund(turn, Some(number)),
                }
                return true;
            }
            if is_task(u) || u.intent.is_small_talk() {
                turn.state.dialogue = Dialogue::Idle;
                return false;
            }
            turn.say(turn.t(Text::AskOrderNumber));
            true
        }
        Dialogue::Refund(draft) => continue_refund(turn, draft, u),
        Dialogue::Complaint { stage } => match stage {
            ComplaintStage::AwaitingText => {
                turn.state.dialogue = Dialogue::Idle;
                record_complaint(turn, &u.masked_text, entities.order_number.clone());
                true
            }
            ComplaintStage::OfferPerson => {
                turn.state.dialogue = Dialogue::Idle;
                match u.answer {
                    Some(Answer::Yes) => {
                        start_handoff(turn, HandoffReason::Complaint);
                        true
                    }
                    Some(Answer::No) => {
                        turn.say(turn.t(Text::ComplaintNoPerson));
                        true
                    }
                    None => false,
                }
            }
        },
        Dialogue::ConfirmErase => {
            turn.state.dialogue = Dialogue::Idle;
            match u.answer {
                Some(Answer::Yes) => {
                    erase(turn);
                    true
                }
                Some(Answer::No) => {
                    turn.say(turn.t(Text::DeleteCancelled));
                    true
                }
                None if u.intent == Intent::DeleteMyData => {
                    erase(turn);
                    true
                }
                None => false,
            }
        }
        Dialogue::OfferPerson => {
            turn.state.dialogue = Dialogue::Idle;
            match u.answer {
                Some(Answer::Yes) => {
                    start_handoff(turn, HandoffReason::NotUnderstood);
                    true
                }
                Some(Answer::No) => {
                    show_menu(turn, Text::NothingToCancel);
                    true
                }
                None => false,
            }
        }
    }
}

// --------------------------------------------------------------- payloads

pub(super) fn on_payload(turn: &mut Turn<'_>, payload: &str, title: Option<&str>) {
    if let Some(title) = title {
        turn.remember_customer(title);
    }
    let (kind, value) = payload.split_once(':').unwrap_or((payload, ""));
    let mut synthetic = Understanding::bare(Intent::OutOfScope);
    match kind {
        "INTENT" => match Intent::from_name(value) {
            Some(intent) => {
                turn.state.dialogue = Dialogue::Idle;
                // "Buy it" under a stock answer buys what was just shown.
                let use_context = intent == Intent::Purchase;
                run_intent(turn, intent, &Understanding::bare(intent), use_context);
            }
            None => show_menu(turn, Text::MenuPrompt),
        },
        "MENU" => {
            turn.state.dialogue = Dialogue::Idle;
            show_menu(turn, Text::MenuPrompt);
        }
        "CONFIRM" => {
            synthetic.answer = Some(if value == "yes" {
                Answer::Yes
            } else {
                Answer::No
            });
            if !continue_dialogue(turn, &synthetic) {
                show_menu(turn, Text::MenuPrompt);
            }
        }
        "STORE" => {
            if value == ALL_STORES {
                synthetic.masked_text = ALL_STORES.to_owned();
            } else {
                synthetic.entities.store = turn.a.shop.store(value).map(|store| store.id.clone());
            }
            if !continue_dialogue(turn, &synthetic) {
                match turn.a.shop.store(value).map(|store| store.id.clone()) {
                    Some(id) => answer_for_store(turn, &id, &StorePurpose::Location),
                    None => show_menu(turn, Text::MenuPrompt),
                }
            }
        }
        "SIZE" => {
            synthetic.entities.size = Some(value.to_owned());
            if !continue_dialogue(turn, &synthetic) {
                show_menu(turn, Text::MenuPrompt);
            }
        }
        "PRODUCT" | "ITEM" => {
            synthetic.entities.product = Some(ProductMatch {
                sku: value.to_owned(),
                words: 1,
            });
            if !continue_dialogue(turn, &synthetic) {
                match turn
                    .a
                    .shop
                    .product(value)
                    .map(|product| product.sku.clone())
                {
                    Some(sku) => continue_stock(turn, Some(sku), None, None),
                    None => show_menu(turn, Text::MenuPrompt),
                }
            }
        }
        "REASON" => match turn.state.dialogue.clone() {
            Dialogue::Refund(mut draft) if draft.stage == RefundStage::AwaitingReason => {
                draft.reason = Some(value.to_owned());
                confirm_refund(turn, draft);
            }
            _ => show_menu(turn, Text::MenuPrompt),
        },
        "CART" => match value {
            "checkout" => checkout(turn),
            "clear" => {
                turn.state.cart.clear();
                turn.say(turn.t(Text::CartCleared));
            }
            _ => show_cart(turn),
        },
        // Messenger "Get Started" and anything unknown: read the title as
        // text when there is one, otherwise greet.
        _ => match title.filter(|title| !title.trim().is_empty()) {
            Some(title) if !payload.eq_ignore_ascii_case("get_started") => on_text(turn, title),
            _ => greet(turn),
        },
    }
}

// ---------------------------------------------------------------- intents

/// Handles a request afresh. `from_text` lets a typed "is it in stock?"
/// lean on what the conversation was about.
pub(super) fn run_intent(turn: &mut Turn<'_>, intent: Intent, u: &Understanding, from_text: bool) {
    turn.state.dialogue = Dialogue::Idle;
    if intent != Intent::OutOfScope {
        turn.state.misunderstood = 0;
    }
    if let Some(faq) = &u.faq
        && u.entities.order_number.is_none()
        && u.entities.product.is_none()
        && !matches!(
            intent,
            Intent::DeleteMyData | Intent::HumanHandoff | Intent::Complaint | Intent::AccountLink
        )
        && let Some(entry) = turn.a.shop.faq.iter().find(|entry| &entry.id == faq)
    {
        let answer = entry.answer.clone();
        turn.say(answer);
        return;
    }
    let entities = &u.entities;
    if let Some(product) = &entities.product {
        turn.state.context.last_product = Some(product.sku.clone());
    }
    if let Some(store) = &entities.store {
        turn.state.context.last_store = Some(store.clone());
    }
    match intent {
        Intent::Greet => greet(turn),
        Intent::Goodbye => turn.say(turn.t(Text::Goodbye)),
        Intent::Thanks => turn.say(turn.t(Text::Thanks)),
        Intent::Help => show_menu(turn, Text::Help),
        Intent::StoreHours => store_hours(turn, entities),
        Intent::StoreLocation => store_location(turn, entities),
        Intent::ProductStock => {
            let (sku, size) = product_in_focus(turn, entities, from_text);
            // "is it in stock?" stays with the product and store of the
            // last answer; a newly named product starts afresh.
            let store = entities.store.clone().or_else(|| {
                (entities.product.is_none() && sku.is_some())
                    .then(|| turn.state.context.last_store.clone())
                    .flatten()
            });
            continue_stock(turn, sku, size, store);
        }
        Intent::Purchase => {
            let (sku, size) = product_in_focus(turn, entities, from_text);
            if sku.is_none() && !turn.state.cart.is_empty() && entities.product.is_none() {
                // "checkout" / "I want to pay" with a full cart.
                let words = u.masked_text.to_lowercase();
                if words.contains("check") || words.contains("pay") {
                    checkout(turn);
                    return;
                }
            }
            continue_purchase(turn, sku, size, entities.quantity.unwrap_or(1));
        }
        Intent::OrderStatus => match entities.order_number.clone().or_else(|| {
            from_text
                .then(|| turn.state.context.last_order.clone())
                .flatten()
        }) {
            Some(number) => order_lookup(turn, &number),
            None => ask_order_number(turn, OrderPurpose::Status),
        },
        Intent::RefundRequest => {
            let order = entities.order_number.clone();
            if turn.linked_account().is_some() {
                start_refund(turn, order);
            } else {
                start_linking(
                    turn,
                    Some(Resume::Refund {
                        order_number: order,
                    }),
                    entities,
                    true,
                );
            }
        }
        Intent::Complaint => {
            let words = u.masked_text.split_whitespace().count();
            let just_announcing = words <= 6 && u.masked_text.to_lowercase().contains("complain");
            if just_announcing || u.masked_text.is_empty() {
                turn.state.dialogue = Dialogue::Complaint {
                    stage: ComplaintStage::AwaitingText,
                };
                turn.say(turn.t(Text::ComplaintAsk));
            } else {
                record_complaint(turn, &u.masked_text, entities.order_number.clone());
            }
        }
        Intent::HumanHandoff => start_handoff(turn, HandoffReason::Requested),
        Intent::AccountLink => {
            if u.flags.authority_claim {
                turn.say(turn.t(Text::LinkNewDestinationRefused));
            }
            if turn.linked_account().is_some() {
                turn.say(turn.t(Text::LinkAlready));
            } else {
                start_linking(turn, None, entities, false);
            }
        }
        Intent::DeleteMyData => {
            turn.state.dialogue = Dialogue::ConfirmErase;
            let options = vec![
                ChoiceOption::new(turn.t(Text::OptionDeleteYes), "CONFIRM:yes"),
                ChoiceOption::new(turn.t(Text::OptionDeleteNo), "CONFIRM:no"),
            ];
            turn.ask(turn.t(Text::DeleteConfirm), options);
        }
        Intent::OutOfScope => out_of_scope(turn, u, from_text),
    }
}

pub(super) fn out_of_scope(turn: &mut Turn<'_>, u: &Understanding, from_text: bool) {
    // "how much is it?" right after a product: stay with the product.
    if from_text
        && u.score_of(Intent::ProductStock) >= 0.5
        && let Some(sku) = turn.state.context.last_product.clone()
    {
        let size = turn.state.context.last_size.clone();
        let store = u
            .entities
            .store
            .clone()
            .or_else(|| turn.state.context.last_store.clone());
        continue_stock(turn, Some(sku), size, store);
        return;
    }
    turn.state.misunderstood = turn.state.misunderstood.saturating_add(1);
    if turn.state.misunderstood >= 2 && turn.a.shop.handoff.enabled {
        turn.state.dialogue = Dialogue::OfferPerson;
        let options = vec![
            ChoiceOption::new(turn.t(Text::OptionHuman), "CONFIRM:yes"),
            ChoiceOption::new(turn.t(Text::OptionNoThanks), "CONFIRM:no"),
            ChoiceOption::new(turn.t(Text::OptionMenu), "MENU"),
        ];
        turn.ask(turn.t(Text::OutOfScopeAgain), options);
    } else {
        show_menu(turn, Text::OutOfScope);
    }
}

pub(super) fn main_menu(turn: &Turn<'_>) -> Vec<ChoiceOption> {
    let mut options = vec![
        ChoiceOption::new(turn.t(Text::OptionHours), "INTENT:store_hours"),
        ChoiceOption::new(turn.t(Text::OptionStores), "INTENT:store_location"),
        ChoiceOption::new(turn.t(Text::OptionStock), "INTENT:product_stock"),
        ChoiceOption::new(turn.t(Text::OptionOrder), "INTENT:order_status"),
        ChoiceOption::new(turn.t(Text::OptionRefund), "INTENT:refund_request"),
    ];
    if turn.a.shop.handoff.enabled {
        options.push(ChoiceOption::new(
            turn.t(Text::OptionHuman),
            "INTENT:human_handoff",
        ));
    }
    options
}

pub(super) fn show_menu(turn: &mut Turn<'_>, text: Text) {
    let options = main_menu(turn);
    turn.ask(turn.t(text), options);
}

pub(super) fn greet(turn: &mut Turn<'_>) {
    let name = turn
        .customer_name
        .clone()
        .unwrap_or_else(|| turn.t(Text::NameFallback));
    let returning = turn
        .state
        .transcript
        .iter()
        .filter(|line| line.from == crate::state::Speaker::Assistant)
        .count()
        > 0;
    let text = if returning {
        turn.render(Text::GreetingBack, &[("name", &name)])
    } else {
        turn.render(
            Text::Greeting,
            &[("name", &name), ("shop", &turn.a.shop.name)],
        )
    };
    let options = main_menu(turn);
    turn.ask(text, options);
}
