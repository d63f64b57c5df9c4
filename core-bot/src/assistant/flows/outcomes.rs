//! Complaints, hand-off, erasure, and the results of effects.

use super::*;

// --------------------------------------------- complaints, hand-off, erase

pub(super) fn record_complaint(turn: &mut Turn<'_>, text: &str, order_number: Option<String>) {
    let request = BackendRequest::RecordComplaint {
        conversation: turn.ctx.conversation.to_string(),
        account_id: turn.linked_account(),
        order_number: order_number.or_else(|| turn.state.context.last_order.clone()),
        text: text.to_owned(),
    };
    turn.effect(Effect::Backend(request), Some(PendingEffect::Complaint));
}

pub(super) fn start_handoff(turn: &mut Turn<'_>, reason: HandoffReason) {
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
    hand_to_a_person(turn, reason);
}

/// Marks the conversation as a person's and asks for the hand-off record.
fn hand_to_a_person(turn: &mut Turn<'_>, reason: HandoffReason) {
    let settings = turn.a.shop.handoff.clone();
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

/// A person takes over unasked: whatever the bot was in the middle of
/// ends, and it says nothing (the person speaks next).
pub(in crate::assistant) fn on_agent_took_over(turn: &mut Turn<'_>) {
    if turn.state.handoff.is_some() {
        turn.untouched();
        return;
    }
    turn.state.dialogue = Dialogue::Idle;
    hand_to_a_person(turn, HandoffReason::Agent);
}

pub(super) fn erase(turn: &mut Turn<'_>) {
    // Forget at once; the gateway then deletes what it holds elsewhere.
    turn.state = ConversationState::new(turn.ctx.now_ms);
    turn.effect(Effect::EraseUserData, Some(PendingEffect::Erase));
}

pub(in crate::assistant) fn on_handoff_ended(turn: &mut Turn<'_>) {
    if turn.state.handoff.is_none() {
        turn.untouched();
        return;
    }
    turn.state.end_handoff();
    turn.say(turn.render(Text::HandoffEnded, &[("shop", &turn.a.shop.name)]));
}

// ---------------------------------------------------------- effect results

pub(in crate::assistant) fn on_effect(turn: &mut Turn<'_>, result: &EffectResult) {
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
pub(super) fn mask_if_plain(destination: &str) -> String {
    if destination.contains('@') && !destination.contains('*') {
        mask_email(destination)
    } else {
        destination.to_owned()
    }
}

pub(super) fn on_linked(turn: &mut Turn<'_>, account_id: &str) {
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

pub(super) fn on_link_failure(turn: &mut Turn<'_>, failure: LinkCodeFailure) {
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
        LinkCodeFailure::TooManyCodes => {
            turn.state.pending_link = None;
            turn.state.dialogue = Dialogue::Idle;
            let options = vec![
                ChoiceOption::new(turn.t(Text::OptionHuman), "INTENT:human_handoff"),
                ChoiceOption::new(turn.t(Text::OptionMenu), "MENU"),
            ];
            turn.ask(turn.t(Text::LinkTooManyCodes), options);
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
pub(super) fn local_clock(turn: &Turn<'_>, at_ms: i64) -> String {
    turn.a
        .shop
        .stores
        .first()
        .and_then(|store| local_date_minute(&store.time_zone, at_ms))
        .map_or_else(String::new, |(_, minute)| format_clock(minute))
}

pub(super) fn on_backend_response(
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

pub(super) fn offer_person_after_complaint(turn: &mut Turn<'_>) {
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

pub(super) fn on_backend_error(
    turn: &mut Turn<'_>,
    error: &BackendError,
    pending: Option<PendingEffect>,
) {
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
