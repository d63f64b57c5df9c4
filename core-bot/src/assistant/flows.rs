//! The dialogues: what the assistant does with each input.

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

fn customer_text(event: &InboundEvent) -> Option<String> {
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
fn refresh_link(turn: &mut Turn<'_>) {
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

fn order_from_reference(reference: &str) -> Option<String> {
    let lower = reference.to_ascii_lowercase();
    let digits = lower
        .strip_prefix("order")?
        .trim_start_matches(['-', '_', ':']);
    (digits.len() >= 4 && digits.len() <= 10 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.to_owned())
}

fn on_command(turn: &mut Turn<'_>, command: &Command) {
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

fn media_unsupported(turn: &mut Turn<'_>) {
    turn.remember_customer("[attachment]");
    show_menu(turn, Text::MediaUnsupported);
}

fn on_location(turn: &mut Turn<'_>, latitude: f64, longitude: f64) {
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

fn on_catalog_order(turn: &mut Turn<'_>, items: &[OrderItem]) {
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

fn on_text(turn: &mut Turn<'_>, text: &str) {
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
fn offered_choice(state: &ConversationState, text: &str) -> Option<String> {
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

fn cancel(turn: &mut Turn<'_>) {
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

fn is_task(understanding: &Understanding) -> bool {
    let intent = understanding.intent;
    !intent.is_small_talk() && intent != Intent::OutOfScope && intent != Intent::Help
}

/// Fills the slots of the dialogue in progress. False when the message is
/// about something else, so it is handled as a new request.
fn continue_dialogue(turn: &mut Turn<'_>, u: &Understanding) -> bool {
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
            if !contributes
                || (is_task(u) && u.intent != Intent::ProductStock && entities.product.is_none())
            {
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

fn on_payload(turn: &mut Turn<'_>, payload: &str, title: Option<&str>) {
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
fn run_intent(turn: &mut Turn<'_>, intent: Intent, u: &Understanding, from_text: bool) {
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

fn out_of_scope(turn: &mut Turn<'_>, u: &Understanding, from_text: bool) {
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

fn main_menu(turn: &Turn<'_>) -> Vec<ChoiceOption> {
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

fn show_menu(turn: &mut Turn<'_>, text: Text) {
    let options = main_menu(turn);
    turn.ask(turn.t(text), options);
}

fn greet(turn: &mut Turn<'_>) {
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

// ----------------------------------------------------------- stores, hours

fn store_options(turn: &Turn<'_>, with_all: bool) -> Vec<ChoiceOption> {
    let mut options: Vec<ChoiceOption> = turn
        .a
        .shop
        .stores
        .iter()
        .map(|store| ChoiceOption::new(store.name.clone(), format!("STORE:{}", store.id)))
        .collect();
    if with_all {
        options.push(ChoiceOption::new(
            turn.t(Text::OptionAnyStore),
            format!("STORE:{ALL_STORES}"),
        ));
    }
    options
}

fn store_hours(turn: &mut Turn<'_>, entities: &Entities) {
    let shop = turn.a.shop.clone();
    let store_id = entities
        .store
        .clone()
        .or_else(|| (shop.stores.len() == 1).then(|| shop.stores[0].id.clone()));
    if let Some(store_id) = store_id {
        answer_for_store(turn, &store_id, &StorePurpose::Hours { day: entities.day });
        return;
    }
    if shop.stores.len() <= 3 {
        let lines: Vec<String> = shop
            .stores
            .iter()
            .map(|store| match entities.day {
                Some(day) => day_line(turn, store, day),
                None => status_line(turn, store),
            })
            .collect();
        let options = store_options(turn, false);
        turn.state.dialogue = Dialogue::ChooseStore {
            purpose: StorePurpose::Hours { day: entities.day },
        };
        turn.ask(lines.join("\n"), options);
        return;
    }
    turn.state.dialogue = Dialogue::ChooseStore {
        purpose: StorePurpose::Hours { day: entities.day },
    };
    let options = store_options(turn, false);
    turn.ask(turn.t(Text::AskStore), options);
}

fn store_location(turn: &mut Turn<'_>, entities: &Entities) {
    if let Some(store_id) = entities.store.clone() {
        answer_for_store(turn, &store_id, &StorePurpose::Location);
        return;
    }
    let shop = turn.a.shop.clone();
    let mut lines = vec![turn.t(Text::StoresIntro)];
    for store in &shop.stores {
        lines.push(turn.render(
            Text::StoreLine,
            &[("store", &store.name), ("address", &store.address)],
        ));
    }
    turn.state.dialogue = Dialogue::ChooseStore {
        purpose: StorePurpose::Location,
    };
    if turn.ctx.capabilities.supports_location_request {
        turn.say(lines.join("\n"));
        let ask = turn.t(Text::AskLocation);
        turn.push_raw(OutboundBody::LocationRequest { text: ask });
    } else {
        let options = store_options(turn, false);
        turn.ask(lines.join("\n"), options);
    }
}

fn answer_for_store(turn: &mut Turn<'_>, store_id: &str, purpose: &StorePurpose) {
    let shop = turn.a.shop.clone();
    let Some(store) = shop.store(store_id) else {
        let names: Vec<&str> = shop
            .stores
            .iter()
            .map(|store| store.name.as_str())
            .collect();
        turn.say(turn.render(Text::StoreUnknown, &[("stores", &names.join(", "))]));
        return;
    };
    turn.state.context.last_store = Some(store.id.clone());
    match purpose {
        StorePurpose::Hours { day: Some(day) } => {
            let line = day_line(turn, store, *day);
            turn.say(line);
        }
        StorePurpose::Hours { day: None } => {
            let text = format!(
                "{}\n\n{}",
                status_line(turn, store),
                week_summary(turn, store)
            );
            turn.say(text);
        }
        StorePurpose::Location => {
            let mut text = turn.render(
                Text::StoreLine,
                &[("store", &store.name), ("address", &store.address)],
            );
            text.push('\n');
            text.push_str(&status_line(turn, store));
            turn.say(text);
        }
    }
}

// --------------------------------------------------------- stock, purchase

/// The product a request is about: named in it, or (typed text only) the
/// one the conversation was just about.
fn product_in_focus(
    turn: &Turn<'_>,
    entities: &Entities,
    from_text: bool,
) -> (Option<String>, Option<String>) {
    match &entities.product {
        Some(product) => (Some(product.sku.clone()), entities.size.clone()),
        None if from_text => (
            turn.state.context.last_product.clone(),
            entities
                .size
                .clone()
                .or_else(|| turn.state.context.last_size.clone()),
        ),
        None => (None, None),
    }
}

fn product_options(turn: &Turn<'_>) -> Vec<ChoiceOption> {
    turn.a
        .shop
        .products
        .iter()
        .map(|product| ChoiceOption::new(product.name.clone(), format!("PRODUCT:{}", product.sku)))
        .collect()
}

fn size_options(product: &Product) -> Vec<ChoiceOption> {
    product
        .sizes
        .iter()
        .map(|size| ChoiceOption::new(size.clone(), format!("SIZE:{size}")))
        .collect()
}

fn item_label(product: &Product, size: Option<&str>) -> String {
    match size {
        Some(size) => format!("{} ({size})", product.name),
        None => product.name.clone(),
    }
}

/// Resolves the size against the product; asks when it is missing or wrong.
/// `Err(())` means a question was asked.
fn settle_size(
    turn: &mut Turn<'_>,
    product: &Product,
    size: Option<String>,
    dialogue: Dialogue,
) -> Result<Option<String>, ()> {
    if !product.has_sizes() {
        return Ok(None);
    }
    let sizes = product.sizes.join(", ");
    match size {
        Some(size) => match product.size(&size) {
            Some(known) => Ok(Some(known.to_owned())),
            None => {
                turn.state.dialogue = dialogue;
                let text = turn.render(
                    Text::SizeNotAvailable,
                    &[
                        ("product", &product.name),
                        ("size", &size),
                        ("sizes", &sizes),
                    ],
                );
                turn.ask(text, size_options(product));
                Err(())
            }
        },
        None => {
            turn.state.dialogue = dialogue;
            let text = turn.render(
                Text::AskSize,
                &[("product", &product.name), ("sizes", &sizes)],
            );
            turn.ask(text, size_options(product));
            Err(())
        }
    }
}

fn continue_stock(
    turn: &mut Turn<'_>,
    sku: Option<String>,
    size: Option<String>,
    store: Option<String>,
) {
    let shop = turn.a.shop.clone();
    let Some(product) = sku.and_then(|sku| shop.product(&sku)) else {
        turn.state.dialogue = Dialogue::Stock {
            sku: None,
            size,
            store,
        };
        let options = product_options(turn);
        turn.ask(turn.t(Text::StockAskWhat), options);
        return;
    };
    let waiting = Dialogue::Stock {
        sku: Some(product.sku.clone()),
        size: None,
        store: store.clone(),
    };
    let Ok(size) = settle_size(turn, product, size, waiting) else {
        return;
    };
    turn.state.context.last_product = Some(product.sku.clone());
    turn.state.context.last_size = size.clone();
    let store = store.or_else(|| (shop.stores.len() == 1).then(|| shop.stores[0].id.clone()));
    let Some(store_id) = store else {
        turn.state.dialogue = Dialogue::Stock {
            sku: Some(product.sku.clone()),
            size,
            store: None,
        };
        let options = store_options(turn, true);
        turn.ask(turn.t(Text::AskStoreForStock), options);
        return;
    };
    turn.state.dialogue = Dialogue::Idle;
    let item = item_label(product, size.as_deref());
    let price = shop.format_price(product.price_minor);
    let buy = vec![
        ChoiceOption::new(turn.t(Text::OptionBuy), "INTENT:purchase"),
        ChoiceOption::new(turn.t(Text::OptionStock), "INTENT:product_stock"),
    ];
    let with_stock: Vec<(&Store, u32)> = shop
        .stores
        .iter()
        .map(|store| (store, product.stock_at(&store.id, size.as_deref())))
        .filter(|(_, count)| *count > 0)
        .collect();
    match shop.store(&store_id) {
        Some(store) => {
            turn.state.context.last_store = Some(store.id.clone());
            let count = product.stock_at(&store.id, size.as_deref());
            if count > 0 {
                let text = turn.render(
                    Text::StockIn,
                    &[
                        ("item", &item),
                        ("store", &store.name),
                        ("count", &count.to_string()),
                        ("price", &price),
                    ],
                );
                turn.ask(text, buy);
            } else if with_stock.is_empty() {
                turn.say(turn.render(Text::StockNone, &[("item", &item)]));
            } else {
                let elsewhere: Vec<&str> = with_stock
                    .iter()
                    .map(|(store, _)| store.name.as_str())
                    .collect();
                let text = format!(
                    "{} {}",
                    turn.render(Text::StockOut, &[("item", &item), ("store", &store.name)]),
                    turn.render(Text::StockElsewhere, &[("stores", &elsewhere.join(", "))])
                );
                turn.ask(text, buy);
            }
        }
        // "All stores".
        None => {
            if with_stock.is_empty() {
                turn.say(turn.render(Text::StockNone, &[("item", &item)]));
                return;
            }
            let mut lines =
                vec![turn.render(Text::StockHeading, &[("item", &item), ("price", &price)])];
            for store in &shop.stores {
                let count = product.stock_at(&store.id, size.as_deref());
                lines.push(if count > 0 {
                    turn.render(
                        Text::StockLineIn,
                        &[("store", &store.name), ("count", &count.to_string())],
                    )
                } else {
                    turn.render(Text::StockLineOut, &[("store", &store.name)])
                });
            }
            turn.ask(lines.join("\n"), buy);
        }
    }
}

fn continue_purchase(
    turn: &mut Turn<'_>,
    sku: Option<String>,
    size: Option<String>,
    quantity: u32,
) {
    let shop = turn.a.shop.clone();
    let quantity = quantity.clamp(1, 20);
    let Some(product) = sku.and_then(|sku| shop.product(&sku)) else {
        turn.state.dialogue = Dialogue::Purchase {
            sku: None,
            size,
            quantity,
        };
        let options = product_options(turn);
        turn.ask(turn.t(Text::AskProduct), options);
        return;
    };
    let waiting = Dialogue::Purchase {
        sku: Some(product.sku.clone()),
        size: None,
        quantity,
    };
    let Ok(size) = settle_size(turn, product, size, waiting) else {
        return;
    };
    turn.state.dialogue = Dialogue::Idle;
    turn.state.context.last_product = Some(product.sku.clone());
    turn.state.context.last_size = size.clone();
    let available: u32 = shop
        .stores
        .iter()
        .map(|store| product.stock_at(&store.id, size.as_deref()))
        .sum();
    let item = item_label(product, size.as_deref());
    if available == 0 {
        turn.say(turn.render(Text::CartOutOfStock, &[("item", &item)]));
        return;
    }
    add_to_cart(turn, product, size, quantity);
    let total = shop.format_price(turn.state.cart_total_minor());
    let text = turn.render(
        Text::CartAdded,
        &[
            ("quantity", &quantity.to_string()),
            ("item", &item),
            ("total", &total),
        ],
    );
    let options = cart_options(turn);
    turn.ask(text, options);
}

fn add_to_cart(turn: &mut Turn<'_>, product: &Product, size: Option<String>, quantity: u32) {
    match turn
        .state
        .cart
        .iter_mut()
        .find(|line| line.sku == product.sku && line.size == size)
    {
        Some(line) => line.quantity = line.quantity.saturating_add(quantity).min(99),
        None => turn.state.cart.push(CartLine {
            sku: product.sku.clone(),
            name: product.name.clone(),
            size,
            quantity,
            unit_price_minor: product.price_minor,
        }),
    }
}

fn cart_options(turn: &Turn<'_>) -> Vec<ChoiceOption> {
    vec![
        ChoiceOption::new(turn.t(Text::OptionCheckout), "CART:checkout"),
        ChoiceOption::new(turn.t(Text::OptionKeepShopping), "INTENT:product_stock"),
        ChoiceOption::new(turn.t(Text::OptionClearCart), "CART:clear"),
    ]
}

fn show_cart(turn: &mut Turn<'_>) {
    if turn.state.cart.is_empty() {
        turn.say(turn.t(Text::CartEmpty));
        return;
    }
    let items: Vec<String> = turn
        .state
        .cart
        .iter()
        .map(|line| match &line.size {
            Some(size) => format!("{} × {} ({size})", line.quantity, line.name),
            None => format!("{} × {}", line.quantity, line.name),
        })
        .collect();
    let total = turn.a.shop.format_price(turn.state.cart_total_minor());
    let text = turn.render(
        Text::CartSummary,
        &[("items", &items.join(", ")), ("total", &total)],
    );
    let options = cart_options(turn);
    turn.ask(text, options);
}

fn checkout(turn: &mut Turn<'_>) {
    if turn.state.cart.is_empty() {
        turn.say(turn.t(Text::CartEmpty));
        return;
    }
    let request = BackendRequest::CreateCheckout {
        items: turn.state.cart.clone(),
        account_id: turn.linked_account(),
    };
    turn.effect(Effect::Backend(request), Some(PendingEffect::Checkout));
}

// ------------------------------------------------------------------ orders

fn ask_order_number(turn: &mut Turn<'_>, purpose: OrderPurpose) {
    turn.state.dialogue = Dialogue::OrderNumber { purpose };
    turn.say(turn.t(Text::AskOrderNumber));
}

/// Status for anyone; details only for the verified owner.
fn order_lookup(turn: &mut Turn<'_>, order_number: &str) {
    turn.state.context.last_order = Some(order_number.to_owned());
    turn.state.dialogue = Dialogue::Idle;
    match turn.linked_account() {
        Some(account_id) => turn.effect(
            Effect::Backend(BackendRequest::OrderDetails {
                order_number: order_number.to_owned(),
                account_id,
            }),
            Some(PendingEffect::OrderDetails {
                order_number: order_number.to_owned(),
                for_refund: false,
            }),
        ),
        None => turn.effect(
            Effect::Backend(BackendRequest::OrderStatus {
                order_number: order_number.to_owned(),
            }),
            Some(PendingEffect::OrderStatus {
                order_number: order_number.to_owned(),
            }),
        ),
    }
}

fn status_word(turn: &Turn<'_>, status: OrderState) -> String {
    turn.t(match status {
        OrderState::Placed => Text::StatusPlaced,
        OrderState::Paid => Text::StatusPaid,
        OrderState::Shipped => Text::StatusShipped,
        OrderState::Delivered => Text::StatusDelivered,
        OrderState::Cancelled => Text::StatusCancelled,
        OrderState::Refunded => Text::StatusRefunded,
        OrderState::Unknown => Text::StatusUnknown,
    })
}

fn show_order_details(turn: &mut Turn<'_>, order: &OrderDetails) {
    let shop = turn.a.shop.clone();
    let items: Vec<String> = order
        .items
        .iter()
        .map(|line| match &line.size {
            Some(size) => format!("{} × {} ({size})", line.quantity, line.name),
            None => format!("{} × {}", line.quantity, line.name),
        })
        .collect();
    let text = turn.render(
        Text::OrderDetails,
        &[
            ("order", &order.order_number),
            ("status", &status_word(turn, order.status)),
            ("items", &items.join(", ")),
            ("total", &shop.format_price(order.total_minor)),
            ("address", &mask_address(&order.shipping_address)),
            ("email", &mask_email(&order.email)),
        ],
    );
    turn.say(text);
}

// ----------------------------------------------------------------- linking

fn start_linking(turn: &mut Turn<'_>, resume: Option<Resume>, entities: &Entities, required: bool) {
    if turn.link_lapsed {
        turn.say(turn.t(Text::LinkExpiredSession));
    } else if required {
        turn.say(turn.t(Text::LinkRequired));
    }
    let identifier = entities.email.clone().or_else(|| {
        // An order number can identify the account, but for a refund it is
        // the order to refund, and the customer still has to name their
        // own email or order.
        if resume.is_none() {
            entities.order_number.clone()
        } else {
            None
        }
    });
    match identifier {
        Some(identifier) => issue_code(turn, identifier, resume),
        None => {
            turn.state.dialogue = Dialogue::Linking {
                stage: LinkStage::AwaitingIdentifier,
                resume,
            };
            turn.say(turn.t(Text::LinkIntro));
        }
    }
}

fn issue_code(turn: &mut Turn<'_>, identifier: String, resume: Option<Resume>) {
    turn.state.dialogue = Dialogue::Linking {
        stage: LinkStage::AwaitingIdentifier,
        resume,
    };
    turn.state.pending_link = Some(PendingLink {
        user_id: turn.ctx.sender_id.to_owned(),
        requested_ms: turn.ctx.now_ms,
        destination_masked: None,
    });
    turn.effect(
        Effect::IssueLinkCode { identifier },
        Some(PendingEffect::IssueLinkCode),
    );
}

// ----------------------------------------------------------------- refunds

fn start_refund(turn: &mut Turn<'_>, order_number: Option<String>) {
    let Some(account_id) = turn.linked_account() else {
        start_linking(
            turn,
            Some(Resume::Refund { order_number }),
            &Entities::default(),
            true,
        );
        return;
    };
    match order_number {
        Some(order_number) => {
            turn.state.context.last_order = Some(order_number.clone());
            turn.state.dialogue = Dialogue::Refund(RefundDraft {
                order_number: Some(order_number.clone()),
                ..RefundDraft::default()
            });
            turn.effect(
                Effect::Backend(BackendRequest::OrderDetails {
                    order_number: order_number.clone(),
                    account_id,
                }),
                Some(PendingEffect::OrderDetails {
                    order_number,
                    for_refund: true,
                }),
            );
        }
        None => {
            turn.state.dialogue = Dialogue::Refund(RefundDraft::default());
            turn.say(turn.t(Text::RefundAskOrder));
        }
    }
}

fn continue_refund(turn: &mut Turn<'_>, mut draft: RefundDraft, u: &Understanding) -> bool {
    match draft.stage {
        RefundStage::AwaitingOrder => match u.entities.order_number.clone() {
            Some(number) => {
                start_refund(turn, Some(number));
                true
            }
            None if is_task(u) && u.intent != Intent::RefundRequest => {
                turn.state.dialogue = Dialogue::Idle;
                false
            }
            None => {
                turn.say(turn.t(Text::RefundAskOrder));
                true
            }
        },
        RefundStage::AwaitingItem => {
            let text = u.masked_text.to_lowercase();
            let chosen = draft
                .items
                .iter()
                .find(|line| {
                    u.entities
                        .product
                        .as_ref()
                        .is_some_and(|product| product.sku == line.sku)
                        || (!text.is_empty() && text.contains(&line.name.to_lowercase()))
                })
                .map(|line| line.sku.clone());
            match chosen {
                Some(sku) => {
                    draft.item = Some(sku);
                    ask_reason(turn, draft);
                    true
                }
                None if is_task(u) && u.entities.product.is_none() => {
                    turn.state.dialogue = Dialogue::Idle;
                    false
                }
                None => {
                    ask_item(turn, draft);
                    true
                }
            }
        }
        RefundStage::AwaitingReason => {
            draft.reason = Some(reason_code(&u.masked_text));
            confirm_refund(turn, draft);
            true
        }
        RefundStage::AwaitingConfirmation => match u.answer {
            Some(Answer::Yes) => {
                let (Some(account_id), Some(order_number), Some(item), Some(reason)) = (
                    turn.linked_account(),
                    draft.order_number.clone(),
                    draft.item.clone(),
                    draft.reason.clone(),
                ) else {
                    // The link lapsed while confirming: verify again first.
                    start_linking(
                        turn,
                        Some(Resume::Refund {
                            order_number: draft.order_number,
                        }),
                        &Entities::default(),
                        true,
                    );
                    return true;
                };
                turn.state.dialogue = Dialogue::Idle;
                turn.effect(
                    Effect::Backend(BackendRequest::RequestRefund {
                        account_id,
                        order_number,
                        item,
                        reason,
                    }),
                    Some(PendingEffect::Refund),
                );
                true
            }
            Some(Answer::No) => {
                turn.state.dialogue = Dialogue::Idle;
                turn.say(turn.t(Text::RefundCancelled));
                true
            }
            None if is_task(u) => {
                turn.state.dialogue = Dialogue::Idle;
                false
            }
            None => {
                confirm_refund(turn, draft);
                true
            }
        },
    }
}

fn reason_code(text: &str) -> String {
    let lower = text.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|word| lower.contains(word));
    if has(&[
        "damag", "broke", "fault", "defect", "ripped", "torn", "hole", "stain",
    ]) {
        "damaged".to_owned()
    } else if has(&["size", "fit", "small", "big", "large", "tight", "loose"]) {
        "wrong_size".to_owned()
    } else if has(&[
        "described",
        "different",
        "photo",
        "picture",
        "colour",
        "color",
        "expected",
    ]) {
        "not_as_described".to_owned()
    } else if has(&[
        "changed my mind",
        "change my mind",
        "don't want",
        "dont want",
        "don't like",
        "dont like",
        "no longer",
    ]) {
        "changed_mind".to_owned()
    } else {
        let clipped: String = text.trim().chars().take(200).collect();
        format!("other: {clipped}")
    }
}

fn reason_label(turn: &Turn<'_>, reason: &str) -> String {
    REASONS
        .iter()
        .find(|(code, _)| *code == reason)
        .map(|(_, text)| turn.t(*text))
        .unwrap_or_else(|| reason.trim_start_matches("other: ").to_owned())
}

fn item_name(draft: &RefundDraft) -> String {
    draft
        .items
        .iter()
        .find(|line| Some(&line.sku) == draft.item.as_ref())
        .map(|line| match &line.size {
            Some(size) => format!("{} ({size})", line.name),
            None => line.name.clone(),
        })
        .unwrap_or_default()
}

fn ask_item(turn: &mut Turn<'_>, mut draft: RefundDraft) {
    draft.stage = RefundStage::AwaitingItem;
    let order = draft.order_number.clone().unwrap_or_default();
    let options = draft
        .items
        .iter()
        .filter(|line| line.refundable)
        .map(|line| ChoiceOption::new(line.name.clone(), format!("ITEM:{}", line.sku)))
        .collect();
    turn.state.dialogue = Dialogue::Refund(draft);
    turn.ask(
        turn.render(Text::RefundAskItem, &[("order", &order)]),
        options,
    );
}

fn ask_reason(turn: &mut Turn<'_>, mut draft: RefundDraft) {
    draft.stage = RefundStage::AwaitingReason;
    turn.state.dialogue = Dialogue::Refund(draft);
    let options = REASONS
        .iter()
        .map(|(code, text)| ChoiceOption::new(turn.t(*text), format!("REASON:{code}")))
        .collect();
    turn.ask(turn.t(Text::RefundAskReason), options);
}

fn confirm_refund(turn: &mut Turn<'_>, mut draft: RefundDraft) {
    draft.stage = RefundStage::AwaitingConfirmation;
    let text = turn.render(
        Text::RefundConfirm,
        &[
            ("item", &item_name(&draft)),
            ("order", draft.order_number.as_deref().unwrap_or_default()),
            (
                "reason",
                &reason_label(turn, draft.reason.as_deref().unwrap_or_default()),
            ),
        ],
    );
    turn.state.dialogue = Dialogue::Refund(draft);
    let options = vec![
        ChoiceOption::new(turn.t(Text::OptionYes), "CONFIRM:yes"),
        ChoiceOption::new(turn.t(Text::OptionNo), "CONFIRM:no"),
    ];
    turn.ask(text, options);
}

fn refund_with_order(turn: &mut Turn<'_>, order: &OrderDetails) {
    let draft = RefundDraft {
        order_number: Some(order.order_number.clone()),
        items: order.items.clone(),
        ..RefundDraft::default()
    };
    let refundable: Vec<_> = order.items.iter().filter(|line| line.refundable).collect();
    match refundable.as_slice() {
        [] => {
            turn.state.dialogue = Dialogue::Idle;
            turn.say(turn.render(Text::RefundNoItems, &[("order", &order.order_number)]));
        }
        [only] => {
            let sku = only.sku.clone();
            ask_reason(
                turn,
                RefundDraft {
                    item: Some(sku),
                    ..draft
                },
            );
        }
        _ => ask_item(turn, draft),
    }
}

// --------------------------------------------- complaints, hand-off, erase

fn record_complaint(turn: &mut Turn<'_>, text: &str, order_number: Option<String>) {
    let request = BackendRequest::RecordComplaint {
        conversation: turn.ctx.conversation.to_string(),
        account_id: turn.linked_account(),
        order_number: order_number.or_else(|| turn.state.context.last_order.clone()),
        text: text.to_owned(),
    };
    turn.effect(Effect::Backend(request), Some(PendingEffect::Complaint));
}

fn start_handoff(turn: &mut Turn<'_>, reason: HandoffReason) {
    let settings = turn.a.shop.handoff.clone();
    turn.state.dialogue = Dialogue::Idle;
    if !settings.enabled {
        turn.say(turn.render(Text::HandoffUnavailable, &[("contact", &settings.contact)]));
        return;
    }
    let text = turn.render(
        Text::HandoffStarted,
        &[
            ("team", &settings.team),
            ("availability", &settings.availability),
        ],
    );
    turn.say(text.trim_end().to_owned());
    let summary = HandoffSummary {
        reason,
        customer_name: turn.customer_name.clone(),
        linked_account: turn.linked_account(),
        last_order: turn.state.context.last_order.clone(),
        cart: turn.state.cart.clone(),
        transcript: turn.state.transcript.clone(),
    };
    let now = turn.ctx.now_ms;
    turn.state.handoff = Some(HandoffStatus {
        since_ms: now,
        reason,
        resume_after_ms: now.saturating_add(i64::from(settings.resume_after_minutes) * 60_000),
    });
    turn.effect(Effect::Handoff { summary }, None);
}

fn erase(turn: &mut Turn<'_>) {
    // Forget at once; the gateway then deletes what it holds elsewhere.
    turn.state = ConversationState::new(turn.ctx.now_ms);
    turn.effect(Effect::EraseUserData, Some(PendingEffect::Erase));
}

pub(super) fn on_handoff_ended(turn: &mut Turn<'_>) {
    if turn.state.handoff.is_none() {
        turn.untouched();
        return;
    }
    turn.state.end_handoff();
    turn.say(turn.render(Text::HandoffEnded, &[("shop", &turn.a.shop.name)]));
}

// ---------------------------------------------------------- effect results

pub(super) fn on_effect(turn: &mut Turn<'_>, result: &EffectResult) {
    let pending = turn.state.pending.take();
    if turn.state.handoff.is_some() && !matches!(result, EffectResult::Erased) {
        // A person has the conversation; late results stay unspoken.
        return;
    }
    match result {
        EffectResult::Backend(Ok(response)) => {
            on_backend_response(turn, response, pending.as_ref());
        }
        EffectResult::Backend(Err(error)) => on_backend_error(turn, error, pending),
        EffectResult::LinkCodeIssued { destination_masked } => {
            let destination = mask_if_plain(destination_masked);
            if let Some(pending_link) = &mut turn.state.pending_link {
                pending_link.destination_masked = Some(destination.clone());
            }
            let resume = match &turn.state.dialogue {
                Dialogue::Linking { resume, .. } => resume.clone(),
                _ => None,
            };
            turn.state.dialogue = Dialogue::Linking {
                stage: LinkStage::AwaitingCode,
                resume,
            };
            turn.say(turn.render(Text::LinkSent, &[("destination", &destination)]));
        }
        EffectResult::LinkCodeFailed(failure) => on_link_failure(turn, *failure),
        EffectResult::Linked { account_id } => on_linked(turn, account_id),
        EffectResult::Erased => {
            turn.state = ConversationState::new(turn.ctx.now_ms);
            turn.say(turn.t(Text::DeleteDone));
        }
    }
}

/// The gateway should pass a masked destination; a plain email is masked
/// here all the same.
fn mask_if_plain(destination: &str) -> String {
    if destination.contains('@') && !destination.contains('*') {
        mask_email(destination)
    } else {
        destination.to_owned()
    }
}

fn on_linked(turn: &mut Turn<'_>, account_id: &str) {
    let now = turn.ctx.now_ms;
    turn.state.pending_link = None;
    turn.state.link = Some(LinkStatus {
        account_id: account_id.to_owned(),
        user_id: turn.ctx.sender_id.to_owned(),
        linked_ms: now,
        linked_until_ms: now.saturating_add(turn.a.settings.link_idle_ms),
    });
    let resume = match std::mem::take(&mut turn.state.dialogue) {
        Dialogue::Linking { resume, .. } => resume,
        _ => None,
    };
    turn.say(turn.t(Text::LinkOk));
    match resume {
        Some(Resume::Refund { order_number }) => start_refund(turn, order_number),
        Some(Resume::OrderDetails { order_number }) => order_lookup(turn, &order_number),
        None => show_menu(turn, Text::MenuPrompt),
    }
}

fn on_link_failure(turn: &mut Turn<'_>, failure: LinkCodeFailure) {
    let resume = match &turn.state.dialogue {
        Dialogue::Linking { resume, .. } => resume.clone(),
        _ => None,
    };
    let back_to_identifier = |turn: &mut Turn<'_>| {
        turn.state.pending_link = None;
        turn.state.dialogue = Dialogue::Linking {
            stage: LinkStage::AwaitingIdentifier,
            resume: resume.clone(),
        };
    };
    match failure {
        LinkCodeFailure::UnknownAccount => {
            back_to_identifier(turn);
            turn.say(turn.t(Text::LinkUnknownAccount));
        }
        LinkCodeFailure::NoPendingCode => {
            turn.state.pending_link = None;
            turn.state.dialogue = Dialogue::Idle;
            turn.say(turn.t(Text::LinkNoPending));
        }
        LinkCodeFailure::Unavailable => {
            turn.state.pending_link = None;
            turn.state.dialogue = Dialogue::Idle;
            turn.say(turn.t(Text::LinkFailed));
        }
        LinkCodeFailure::Code(LinkFailure::Wrong { remaining }) => {
            turn.say(turn.render(
                Text::LinkWrongCode,
                &[("remaining", &remaining.to_string())],
            ));
        }
        LinkCodeFailure::Code(LinkFailure::Locked { until_ms }) => {
            turn.state.pending_link = None;
            turn.state.dialogue = Dialogue::Idle;
            let until = local_clock(turn, until_ms);
            let options = vec![
                ChoiceOption::new(turn.t(Text::OptionHuman), "INTENT:human_handoff"),
                ChoiceOption::new(turn.t(Text::OptionMenu), "MENU"),
            ];
            turn.ask(turn.render(Text::LinkLocked, &[("until", &until)]), options);
        }
        LinkCodeFailure::Code(LinkFailure::Expired) => {
            back_to_identifier(turn);
            turn.say(turn.t(Text::LinkExpired));
        }
        LinkCodeFailure::Code(LinkFailure::Used) => {
            back_to_identifier(turn);
            turn.say(turn.t(Text::LinkUsed));
        }
        LinkCodeFailure::Code(LinkFailure::WrongRequester) => {
            back_to_identifier(turn);
            turn.say(turn.t(Text::LinkWrongRequester));
        }
    }
}

/// `HH:MM` in the first store's time zone, the shop's own clock.
fn local_clock(turn: &Turn<'_>, at_ms: i64) -> String {
    turn.a
        .shop
        .stores
        .first()
        .and_then(|store| local_date_minute(&store.time_zone, at_ms))
        .map_or_else(String::new, |(_, minute)| format_clock(minute))
}

fn on_backend_response(
    turn: &mut Turn<'_>,
    response: &BackendResponse,
    pending: Option<&PendingEffect>,
) {
    match response {
        BackendResponse::OrderStatus {
            order_number,
            status,
        } => {
            let text = turn.render(
                Text::OrderStatus,
                &[
                    ("order", order_number),
                    ("status", &status_word(turn, *status)),
                ],
            );
            let hint = turn.t(Text::OrderStatusUnlinkedHint);
            let options = vec![
                ChoiceOption::new(turn.t(Text::OptionVerify), "INTENT:account_link"),
                ChoiceOption::new(turn.t(Text::OptionMenu), "MENU"),
            ];
            turn.ask(format!("{text} {hint}"), options);
        }
        BackendResponse::OrderDetails(order) => {
            // Defence in depth: show nothing unless the order belongs to the
            // account this user verified, whatever the backend sent.
            let owner_ok = turn
                .linked_account()
                .is_some_and(|account| account == order.account_id);
            if !owner_ok {
                turn.state.dialogue = Dialogue::Idle;
                if turn.state.link.is_none() {
                    turn.say(turn.t(Text::LinkExpiredSession));
                } else {
                    turn.say(
                        turn.render(Text::OrderNotOnAccount, &[("order", &order.order_number)]),
                    );
                }
                return;
            }
            let for_refund = matches!(
                pending,
                Some(PendingEffect::OrderDetails {
                    for_refund: true,
                    ..
                })
            ) || matches!(turn.state.dialogue, Dialogue::Refund(_));
            if for_refund {
                refund_with_order(turn, order);
            } else {
                show_order_details(turn, order);
            }
        }
        BackendResponse::RefundRequested { reference } => {
            turn.state.dialogue = Dialogue::Idle;
            turn.say(turn.render(Text::RefundDone, &[("reference", reference)]));
        }
        BackendResponse::CheckoutCreated { url } => {
            turn.state.cart.clear();
            turn.say(turn.render(Text::CheckoutLink, &[("url", url)]));
        }
        BackendResponse::ComplaintRecorded { reference } => {
            turn.say(turn.render(Text::ComplaintRecorded, &[("reference", reference)]));
            offer_person_after_complaint(turn);
        }
        // Steps of linking the gateway runs itself; nothing to say.
        BackendResponse::AccountResolved { .. } | BackendResponse::LinkCodeSent => turn.untouched(),
    }
}

fn offer_person_after_complaint(turn: &mut Turn<'_>) {
    if !turn.a.shop.handoff.enabled {
        return;
    }
    turn.state.dialogue = Dialogue::Complaint {
        stage: ComplaintStage::OfferPerson,
    };
    let options = vec![
        ChoiceOption::new(turn.t(Text::OptionHuman), "CONFIRM:yes"),
        ChoiceOption::new(turn.t(Text::OptionNoThanks), "CONFIRM:no"),
    ];
    turn.ask(turn.t(Text::ComplaintOfferPerson), options);
}

fn on_backend_error(turn: &mut Turn<'_>, error: &BackendError, pending: Option<PendingEffect>) {
    match (pending, error) {
        (Some(PendingEffect::OrderStatus { order_number }), BackendError::NotFound) => {
            turn.say(turn.render(Text::OrderNotFound, &[("order", &order_number)]));
        }
        (Some(PendingEffect::OrderDetails { order_number, .. }), BackendError::NotFound) => {
            turn.state.dialogue = Dialogue::Idle;
            turn.say(turn.render(Text::OrderNotOnAccount, &[("order", &order_number)]));
        }
        (Some(PendingEffect::Refund), BackendError::Rejected { reason }) => {
            turn.state.dialogue = Dialogue::Idle;
            turn.say(turn.render(Text::RefundRejected, &[("reason", reason)]));
        }
        (Some(PendingEffect::Refund), BackendError::NotFound) => {
            turn.state.dialogue = Dialogue::Idle;
            let order = turn.state.context.last_order.clone().unwrap_or_default();
            turn.say(turn.render(Text::OrderNotOnAccount, &[("order", &order)]));
        }
        (Some(PendingEffect::Checkout), BackendError::Rejected { reason }) => {
            turn.say(turn.render(Text::CheckoutFailed, &[("reason", reason)]));
        }
        (Some(PendingEffect::Complaint), _) => {
            // The complaint could not be filed: a person is the best help.
            turn.say(turn.t(Text::BackendUnavailable));
            offer_person_after_complaint(turn);
        }
        _ => {
            turn.state.dialogue = Dialogue::Idle;
            let mut options = Vec::new();
            if turn.a.shop.handoff.enabled {
                options.push(ChoiceOption::new(
                    turn.t(Text::OptionHuman),
                    "INTENT:human_handoff",
                ));
            }
            options.push(ChoiceOption::new(turn.t(Text::OptionMenu), "MENU"));
            turn.ask(turn.t(Text::BackendUnavailable), options);
        }
    }
}
