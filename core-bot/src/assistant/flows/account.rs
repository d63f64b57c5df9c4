//! Orders, account linking and refunds: everything that needs to know
//! whose account it is.

use super::*;

// ------------------------------------------------------------------ orders

pub(super) fn ask_order_number(turn: &mut Turn<'_>, purpose: OrderPurpose) {
    turn.state.dialogue = Dialogue::OrderNumber { purpose };
    turn.say(turn.t(Text::AskOrderNumber));
}

/// Status for anyone; details only for the verified owner.
pub(super) fn order_lookup(turn: &mut Turn<'_>, order_number: &str) {
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

pub(super) fn status_word(turn: &Turn<'_>, status: OrderState) -> String {
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

pub(super) fn show_order_details(turn: &mut Turn<'_>, order: &OrderDetails) {
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

pub(super) fn start_linking(
    turn: &mut Turn<'_>,
    resume: Option<Resume>,
    entities: &Entities,
    required: bool,
) {
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

pub(super) fn issue_code(turn: &mut Turn<'_>, identifier: String, resume: Option<Resume>) {
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

pub(super) fn start_refund(turn: &mut Turn<'_>, order_number: Option<String>) {
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

pub(super) fn continue_refund(
    turn: &mut Turn<'_>,
    mut draft: RefundDraft,
    u: &Understanding,
) -> bool {
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

pub(super) fn reason_code(text: &str) -> String {
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

pub(super) fn reason_label(turn: &Turn<'_>, reason: &str) -> String {
    REASONS
        .iter()
        .find(|(code, _)| *code == reason)
        .map(|(_, text)| turn.t(*text))
        .unwrap_or_else(|| reason.trim_start_matches("other: ").to_owned())
}

pub(super) fn item_name(draft: &RefundDraft) -> String {
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

pub(super) fn ask_item(turn: &mut Turn<'_>, mut draft: RefundDraft) {
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

pub(super) fn ask_reason(turn: &mut Turn<'_>, mut draft: RefundDraft) {
    draft.stage = RefundStage::AwaitingReason;
    turn.state.dialogue = Dialogue::Refund(draft);
    let options = REASONS
        .iter()
        .map(|(code, text)| ChoiceOption::new(turn.t(*text), format!("REASON:{code}")))
        .collect();
    turn.ask(turn.t(Text::RefundAskReason), options);
}

pub(super) fn confirm_refund(turn: &mut Turn<'_>, mut draft: RefundDraft) {
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

pub(super) fn refund_with_order(turn: &mut Turn<'_>, order: &OrderDetails) {
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
