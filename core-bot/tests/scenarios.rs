//! Scripts of customer turns with the replies and effects they must get.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::{World, all_text, berlin_ms, payloads, text_only, whatsapp_like};
use switchboard_core::backend::BackendRequest;
use switchboard_core::model::{
    ChoiceStyle, EventKind, Location, Media, MediaKind, Membership, Message, MessageContent,
    OrderItem, OutboundBody, PayloadEvent, PayloadKind, Reaction, Receipt, ReceiptKind, Referral,
};
use switchboard_core::state::{ConversationState, Dialogue, HandoffReason};
use switchboard_core::{Effect, Input};

#[test]
fn a_greeting_gets_a_welcome_and_the_menu() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    let replies = chat.say("hi");
    let text = all_text(&replies);
    assert!(text.contains("Hi Jane!"), "{text}");
    assert!(text.contains("Demo Outfitters"), "{text}");
    let options = payloads(&replies);
    assert!(options.contains(&"INTENT:store_hours".to_owned()));
    assert!(options.contains(&"INTENT:human_handoff".to_owned()));
}

#[test]
fn goodbye_thanks_and_help_get_short_answers() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    assert!(all_text(&chat.say("thanks!")).contains("You're welcome"));
    assert!(all_text(&chat.say("bye")).contains("Bye for now"));
    let help = chat.say("what can you do?");
    assert!(all_text(&help).contains("never ask for passwords or card numbers"));
    assert!(payloads(&help).contains(&"INTENT:refund_request".to_owned()));
}

#[test]
fn opening_hours_for_today_come_from_the_stores_time_zone() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    let text = all_text(&chat.say("when does downtown close today?"));
    assert_eq!(text, "Downtown is open today: 09:00–19:00.");
    // 18:30 UTC is 20:30 in Berlin: closed, opens tomorrow.
    world.now_ms.set(berlin_ms(2025, 6, 11, 20, 30));
    let text = all_text(&chat.say("is downtown open now?"));
    assert_eq!(
        text,
        "Downtown is closed right now and opens tomorrow at 09:00."
    );
}

#[test]
fn hours_without_a_store_answer_for_every_store() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    let replies = chat.say("r u open on sunday");
    let text = all_text(&replies);
    assert!(text.contains("Downtown is closed on Sunday."), "{text}");
    assert!(
        text.contains("Harbour is open on Sunday: 12:00–16:00."),
        "{text}"
    );
    // Picking a store then shows its week.
    let text = all_text(&chat.tap("STORE:harbour"));
    assert!(text.contains("Harbour is open on Sunday"), "{text}");
}

#[test]
fn holidays_override_the_weekly_hours() {
    let world = World::new();
    world.now_ms.set(berlin_ms(2025, 12, 23, 12, 0));
    let mut chat = world.chat(1, "u1");
    let text = all_text(&chat.say("are you open on christmas eve at downtown"));
    assert_eq!(
        text,
        "Downtown is open tomorrow (Christmas Eve): 10:00–14:00."
    );
    let text = all_text(&chat.say("downtown hours on christmas day"));
    assert_eq!(text, "Downtown is closed on Thursday (Christmas Day).");
}

#[test]
fn a_store_without_a_day_shows_its_status_and_usual_week() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    let text = all_text(&chat.say("opening hours downtown"));
    assert!(
        text.starts_with("Downtown is open now, until 19:00."),
        "{text}"
    );
    assert!(text.contains("Mon–Wed 09:00–19:00"), "{text}");
    assert!(text.contains("Sun closed"), "{text}");
}

#[test]
fn store_location_lists_stores_and_asks_for_a_location() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    let replies = chat.say("where are your stores?");
    let text = all_text(&replies);
    assert!(text.contains("12 Market Street, 10178 Berlin"), "{text}");
    assert!(
        replies
            .iter()
            .any(|reply| matches!(reply, OutboundBody::LocationRequest { .. }))
    );
}

#[test]
fn a_shared_location_gets_the_nearest_store_with_its_distance() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    // Alexanderplatz, about 400 m from the Downtown store.
    let event = chat.message(MessageContent::Location(Location {
        latitude: 52.5219,
        longitude: 13.4132,
        name: None,
        address: None,
    }));
    let text = all_text(&chat.send(event));
    assert!(
        text.starts_with("Your nearest store is Downtown, 12 Market Street"),
        "{text}"
    );
    assert!(
        text.contains("about 260 m away") || text.contains(" m away"),
        "{text}"
    );
    assert!(text.contains("open now"), "{text}");
}

#[test]
fn stock_check_asks_for_size_then_store() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    let replies = chat.say("do you have the rain jacket?");
    assert!(all_text(&replies).contains("Which size of the Rain Jacket?"));
    assert!(payloads(&replies).contains(&"SIZE:M".to_owned()));
    let replies = chat.say("M");
    assert!(all_text(&replies).contains("Which store should I check?"));
    assert!(payloads(&replies).contains(&"STORE:all".to_owned()));
    let replies = chat.tap("STORE:downtown");
    let text = all_text(&replies);
    assert!(
        text.contains("Rain Jacket (M) is in stock at Downtown (3 left)"),
        "{text}"
    );
    assert!(text.contains("€89.00"), "{text}");
    assert!(payloads(&replies).contains(&"INTENT:purchase".to_owned()));
}

#[test]
fn out_of_stock_points_to_other_stores() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    let text = all_text(&chat.say("rain jacket in L at downtown?"));
    assert!(text.contains("out of stock at Downtown"), "{text}");
    assert!(text.contains("Harbour"), "{text}");
    let text = all_text(&chat.say("any wool beanies at harbour"));
    assert!(text.contains("out of stock everywhere"), "{text}");
}

#[test]
fn context_carries_over_to_is_it_in_stock() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    chat.say("how much is the daypack?");
    chat.tap("STORE:downtown");
    let text = all_text(&chat.say("is it in stock at harbour?"));
    assert!(
        text.contains("Daypack 20L is out of stock at Harbour"),
        "{text}"
    );
    let text = all_text(&chat.say("how much is it?"));
    assert!(text.contains("Daypack 20L"), "{text}");
}

#[test]
fn purchase_builds_a_cart_and_hands_checkout_to_the_payment_link() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    let replies = chat.say("i want to buy a rain jacket");
    assert!(all_text(&replies).contains("Which size"));
    let replies = chat.say("medium");
    let text = all_text(&replies);
    assert!(
        text.contains("Added 1 × Rain Jacket (M) to your cart. Cart total: €89.00."),
        "{text}"
    );
    assert!(payloads(&replies).contains(&"CART:checkout".to_owned()));
    chat.say("and 2 water bottles");
    assert_eq!(chat.state.cart.len(), 2);
    assert_eq!(chat.state.cart_total_minor(), 8900 + 2 * 2450);
    let text = all_text(&chat.tap("CART:checkout"));
    assert!(
        text.contains("https://demo-outfitters.example/checkout/c-0001"),
        "{text}"
    );
    assert!(text.contains("never take card details"), "{text}");
    assert!(chat.state.cart.is_empty());
    assert!(chat.effects.iter().any(|effect| matches!(
        effect,
        Effect::Backend(BackendRequest::CreateCheckout { items, account_id: None }) if items.len() == 2
    )));
}

#[test]
fn buy_it_after_a_stock_check_uses_the_product_and_size() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    chat.say("trail shoes size 42 at downtown");
    let text = all_text(&chat.tap("INTENT:purchase"));
    assert!(
        text.contains("Added 1 × Trail Running Shoes (42)"),
        "{text}"
    );
}

#[test]
fn order_status_without_verification_shows_only_the_status_word() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    let replies = chat.say("where is my order 10023");
    let text = all_text(&replies);
    assert!(text.contains("Order 10023 is on its way."), "{text}");
    assert!(text.contains("first need to check it's you"), "{text}");
    assert!(
        !text.contains("Elm Street") && !text.contains("jane@"),
        "{text}"
    );
    assert!(matches!(
        chat.effects.last(),
        Some(Effect::Backend(BackendRequest::OrderStatus { order_number })) if order_number == "10023"
    ));
    let text = all_text(&chat.say("order 99999"));
    assert!(text.contains("couldn't find order 99999"), "{text}");
}

#[test]
fn order_status_asks_for_the_number_when_missing() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    let text = all_text(&chat.say("track my order"));
    assert!(text.contains("What's your order number?"), "{text}");
    let text = all_text(&chat.say("it's 10024"));
    assert!(text.contains("Order 10024 is delivered."), "{text}");
}

#[test]
fn a_verified_customer_sees_masked_order_details() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    chat.verify("jane@example.com");
    let text = all_text(&chat.say("status of order 10023"));
    assert!(text.contains("Order 10023 is on its way."), "{text}");
    assert!(text.contains("1 × Rain Jacket (M)"), "{text}");
    assert!(text.contains("** Elm Street, 10115 Berlin"), "{text}");
    assert!(text.contains("j***@example.com"), "{text}");
    assert!(
        !text.contains("12 Elm") && !text.contains("jane@"),
        "{text}"
    );
}

#[test]
fn refund_links_the_account_then_asks_order_item_reason_and_confirmation() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    let text = all_text(&chat.say("I want a refund"));
    assert!(text.contains("check it's you first"), "{text}");
    assert!(text.contains("email address or order number"), "{text}");

    let text = all_text(&chat.say("jane@example.com"));
    assert!(
        text.contains("sent a 6-digit code to j***@example.com"),
        "{text}"
    );
    assert!(matches!(
        chat.effects.last(),
        Some(Effect::IssueLinkCode { .. })
    ));

    let code = world.last_code();
    let text = all_text(&chat.say(&code));
    assert!(text.contains("you're verified"), "{text}");
    assert!(text.contains("Which order is the refund for?"), "{text}");
    let state_json = serde_json::to_string(&chat.state).unwrap();
    assert!(!state_json.contains(&code), "the code must not be stored");

    let replies = chat.say("10025");
    assert!(all_text(&replies).contains("Which item from order 10025?"));
    assert_eq!(
        payloads(&replies),
        vec!["ITEM:TEE-MERINO", "ITEM:SOCK-HIKE"]
    );

    let replies = chat.tap("ITEM:TEE-MERINO");
    assert!(all_text(&replies).contains("What's the reason"));
    let replies = chat.tap("REASON:damaged");
    let text = all_text(&replies);
    assert!(
        text.contains(
            "refund for Merino T-Shirt (S) from order 10025 (reason: Damaged or faulty)?"
        ),
        "{text}"
    );
    let text = all_text(&chat.say("yes"));
    assert!(text.contains("refund request R-5001 is in"), "{text}");
    let refunds = world.backend.refunds();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].account_id, "acc-1001");
    assert_eq!(refunds[0].item, "TEE-MERINO");
}

#[test]
fn a_refund_the_shop_rejects_is_explained() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    chat.verify("jane@example.com");
    chat.say("refund for order 10023");
    chat.tap("ITEM:JKT-RAIN");
    chat.say("it doesn't fit, too small");
    let text = all_text(&chat.tap("CONFIRM:yes"));
    assert!(text.contains("hasn't been delivered yet"), "{text}");
}

#[test]
fn saying_no_at_the_confirmation_requests_nothing() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    chat.verify("10024");
    chat.say("return order 10024");
    chat.say("changed my mind");
    let text = all_text(&chat.say("no"));
    assert!(text.contains("haven't requested a refund"), "{text}");
    assert!(world.backend.refunds().is_empty());
}

#[test]
fn a_complaint_is_recorded_apologised_for_and_a_person_offered() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    let replies = chat.say("the jacket arrived damaged and the zip is broken");
    let text = all_text(&replies);
    assert!(text.contains("really sorry"), "{text}");
    assert!(text.contains("C-7001"), "{text}");
    assert!(text.contains("talk to a person"), "{text}");
    assert_eq!(
        world.backend.complaints()[0].text,
        "the jacket arrived damaged and the zip is broken"
    );
    let text = all_text(&chat.say("yes please"));
    assert!(
        text.contains("connecting you with our customer care team"),
        "{text}"
    );
    assert!(chat.state.is_handed_off());
}

#[test]
fn announcing_a_complaint_asks_what_happened() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    assert!(all_text(&chat.say("I want to complain")).contains("tell me what happened"));
    let text = all_text(&chat.say("your cashier was rude"));
    assert!(text.contains("C-7001"), "{text}");
    assert_eq!(world.backend.complaints()[0].text, "your cashier was rude");
}

#[test]
fn hand_off_silences_the_bot_until_it_ends() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    chat.say("hi");
    let text = all_text(&chat.say("talk to a human"));
    assert!(text.contains("connecting you"), "{text}");
    let summary = world.handoffs.borrow()[0].clone();
    assert!(
        summary
            .transcript
            .iter()
            .any(|line| line.text == "talk to a human")
    );
    assert!(chat.say("hello? where are my shoes").is_empty());
    assert!(chat.tap("INTENT:store_hours").is_empty());
    assert!(
        chat.state
            .transcript
            .iter()
            .any(|line| line.text == "hello? where are my shoes")
    );

    let step = chat.step(&Input::HandoffEnded);
    assert!(all_text(&step.replies).contains("back with the Demo Outfitters assistant"));
    assert!(!chat.state.is_handed_off());
    assert!(!chat.say("opening hours downtown").is_empty());
}

#[test]
fn an_agent_can_take_over_mid_dialogue_and_the_bot_falls_silent() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    chat.say("is the blue jacket in stock?");
    let step = chat.step(&Input::AgentTookOver);
    assert!(step.replies.is_empty(), "the bot says nothing: {step:?}");
    assert!(chat.state.is_handed_off());
    let [Effect::Handoff { summary }] = step.effects.as_slice() else {
        panic!("one hand-off record asked for: {:?}", step.effects);
    };
    assert_eq!(summary.reason, HandoffReason::Agent);
    assert!(
        summary
            .transcript
            .iter()
            .any(|line| line.text.contains("blue jacket"))
    );
    assert!(chat.say("size M please").is_empty());
    // Taking over twice changes nothing and opens no second record.
    let again = chat.step(&Input::AgentTookOver);
    assert!(again.replies.is_empty() && again.effects.is_empty());
    let step = chat.step(&Input::HandoffEnded);
    assert!(!step.replies.is_empty());
    assert!(!chat.state.is_handed_off());
}

#[test]
fn a_forgotten_hand_off_resumes_after_the_shops_limit() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    chat.say("agent please");
    world.advance_minutes(23 * 60);
    assert!(chat.say("hello?").is_empty());
    world.advance_minutes(2 * 60);
    assert!(!chat.say("hello?").is_empty());
}

#[test]
fn delete_my_data_confirms_then_erases_everything() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    chat.verify("jane@example.com");
    chat.say("buy 2 water bottles");
    assert!(!chat.state.cart.is_empty());
    let replies = chat.say("delete my data");
    assert!(all_text(&replies).contains("Are you sure?"));
    assert_eq!(payloads(&replies), vec!["CONFIRM:yes", "CONFIRM:no"]);
    let text = all_text(&chat.say("yes"));
    assert!(text.contains("erased your data"), "{text}");
    assert!(chat.effects.contains(&Effect::EraseUserData));
    assert!(chat.state.cart.is_empty());
    assert!(chat.state.link.is_none());
    assert!(chat.state.transcript.len() <= 1);
    assert_eq!(world.erased.borrow().len(), 1);
}

#[test]
fn delete_my_data_can_be_called_off() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    chat.say("buy a water bottle");
    chat.say("forget me");
    let text = all_text(&chat.tap("CONFIRM:no"));
    assert!(text.contains("nothing was deleted"), "{text}");
    assert!(!chat.effects.contains(&Effect::EraseUserData));
    assert_eq!(chat.state.cart.len(), 1);
}

#[test]
fn account_link_by_itself_verifies_and_knows_when_done() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    chat.verify("max@example.org");
    assert_eq!(chat.state.link.as_ref().unwrap().account_id, "acc-1002");
    assert!(all_text(&chat.say("link my account")).contains("already verified"));
}

#[test]
fn out_of_scope_gets_the_menu_and_then_the_offer_of_a_person() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    let replies = chat.say("what's the weather like");
    assert!(all_text(&replies).contains("can't help with that"));
    assert!(payloads(&replies).contains(&"INTENT:store_hours".to_owned()));
    let replies = chat.say("tell me a joke");
    assert!(all_text(&replies).contains("talk to a person"));
    let text = all_text(&chat.say("yes"));
    assert!(text.contains("connecting you"), "{text}");
}

#[test]
fn faq_entries_answer_matching_questions() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    let text = all_text(&chat.say("what's your return policy?"));
    assert!(text.contains("within 30 days"), "{text}");
    let text = all_text(&chat.say("do you take paypal"));
    assert!(text.contains("PayPal"), "{text}");
}

#[test]
fn media_without_a_caption_gets_a_polite_note_and_the_menu() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    let event = chat.message(MessageContent::Media(Media {
        kind: MediaKind::Image,
        media_id: Some("abc".into()),
        url: None,
        mime_type: None,
        caption: None,
        file_name: None,
    }));
    let replies = chat.send(event);
    assert!(all_text(&replies).contains("I can only read text messages"));
    assert!(!payloads(&replies).is_empty());
    // With a caption, the caption is read.
    let event = chat.message(MessageContent::Media(Media {
        kind: MediaKind::Image,
        media_id: Some("abc".into()),
        url: None,
        mime_type: None,
        caption: Some("do you have this jacket in xl?".into()),
        file_name: None,
    }));
    assert!(all_text(&chat.send(event)).contains("Which store"));
}

#[test]
fn an_edited_message_is_read_as_a_new_one() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    let event = chat.event(EventKind::Edited(Message {
        message_id: "5".into(),
        content: MessageContent::Text {
            text: "when do you open tomorrow".into(),
            command: None,
        },
        reply_to: None,
        forwarded: false,
        thread_id: None,
        referral: None,
    }));
    assert!(all_text(&chat.send(event)).contains("open tomorrow"));
}

#[test]
fn receipts_reactions_statuses_echoes_and_membership_get_no_reply_and_change_nothing() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    chat.say("hi");
    let before = chat.state.clone();
    world.advance_minutes(1);
    let kinds = vec![
        EventKind::Reaction(Reaction {
            message_id: "1".into(),
            emoji: Some("👍".into()),
            removed: false,
        }),
        EventKind::Receipt(Receipt {
            kind: ReceiptKind::Read,
            watermark_ms: Some(1),
            message_ids: vec![],
        }),
        EventKind::Echo {
            message_id: "m".into(),
            app_id: None,
        },
        EventKind::Membership(Membership::BotBlocked),
        EventKind::Unsupported {
            kind: "poll".into(),
            raw: serde_json::json!({}),
        },
    ];
    for kind in kinds {
        let event = chat.event(kind);
        assert!(chat.send(event).is_empty());
        assert_eq!(chat.state, before);
        assert!(chat.effects.is_empty());
    }
}

#[test]
fn telegram_commands_work() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    assert!(all_text(&chat.command("start", "")).contains("Hi Jane!"));
    assert!(all_text(&chat.command("help", "")).contains("I can tell you our opening hours"));
    assert!(all_text(&chat.command("hours", "")).contains("Downtown is open now"));
    assert!(all_text(&chat.command("stores", "")).contains("3 Quay Road"));
    assert!(all_text(&chat.command("order", "10024")).contains("Order 10024 is delivered."));
    assert!(all_text(&chat.command("order", "")).contains("What's your order number?"));
    assert!(all_text(&chat.command("start", "order-10023")).contains("Order 10023 is on its way."));
}

#[test]
fn referrals_and_get_started_greet_with_the_menu() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    let event = chat.event(EventKind::Referral(Referral {
        reference: Some("summer-ad".into()),
        source: Some("ADS".into()),
        ad_id: None,
    }));
    let replies = chat.send(event);
    assert!(all_text(&replies).contains("Hi Jane!"));
    let event = chat.event(EventKind::Payload(PayloadEvent {
        kind: PayloadKind::Postback,
        payload: "GET_STARTED".into(),
        title: Some("Get Started".into()),
        message_id: None,
        in_reply_to: None,
        callback_id: None,
        referral: None,
    }));
    assert!(!payloads(&chat.send(event)).is_empty());
}

#[test]
fn a_tapped_telegram_button_is_acknowledged_first() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    let event = chat.event(EventKind::Payload(PayloadEvent {
        kind: PayloadKind::CallbackQuery,
        payload: "INTENT:store_location".into(),
        title: None,
        message_id: None,
        in_reply_to: None,
        callback_id: Some("cb-1".into()),
        referral: None,
    }));
    let replies = chat.send(event);
    assert_eq!(
        replies[0],
        OutboundBody::AnswerCallback {
            callback_id: "cb-1".into(),
            text: None
        }
    );
    assert!(all_text(&replies).contains("Our stores"));
}

#[test]
fn button_payloads_map_to_intents_exactly() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    assert!(all_text(&chat.tap("INTENT:order_status")).contains("order number"));
    assert!(all_text(&chat.tap("INTENT:delete_my_data")).contains("Are you sure?"));
    assert!(all_text(&chat.tap("INTENT:account_link")).contains("one-time code"));
    assert!(all_text(&chat.tap("INTENT:product_stock")).contains("Which product"));
    assert!(all_text(&chat.tap("INTENT:goodbye")).contains("Bye"));
}

#[test]
fn a_number_picks_from_the_options_last_offered() {
    let world = World::new();
    let mut chat = world.chat_with(1, "u1", text_only());
    let replies = chat.say("hello");
    let text = all_text(&replies);
    assert!(text.contains("1. Opening hours"), "{text}");
    assert!(text.contains("Reply with a number."), "{text}");
    assert!(
        replies
            .iter()
            .all(|reply| matches!(reply, OutboundBody::Text { .. }))
    );
    let text = all_text(&chat.say("4"));
    assert!(text.contains("order number"), "{text}");
}

#[test]
fn replies_respect_the_declared_capabilities() {
    let world = World::new();
    let caps = whatsapp_like();
    let mut chat = world.chat_with(1, "u1", caps.clone());
    let script = [
        "hi",
        "what are your opening hours",
        "do you have the rain jacket",
        "M",
        "where are you",
        "i want to buy trail shoes",
        "complaint",
        "refund",
        "tell me a joke",
        "tell me another",
    ];
    let mut replies = Vec::new();
    for line in script {
        replies.extend(chat.say(line));
    }
    assert!(replies.iter().any(|reply| matches!(
        reply,
        OutboundBody::Choice {
            style: ChoiceStyle::List { .. },
            ..
        }
    )));
    for reply in &replies {
        match reply {
            OutboundBody::Choice {
                text,
                options,
                style,
            } => {
                assert!(text.chars().count() <= caps.max_text_chars);
                let limit = match style {
                    ChoiceStyle::QuickReplies => caps.max_quick_replies,
                    ChoiceStyle::Buttons => caps.max_buttons,
                    ChoiceStyle::List { button } => {
                        assert!(button.chars().count() <= caps.max_button_title_chars);
                        caps.max_list_rows
                    }
                };
                assert!(options.len() <= limit, "{reply:?}");
                for option in options {
                    assert!(option.title.chars().count() <= caps.max_button_title_chars);
                    assert!(option.payload.len() <= caps.max_payload_bytes);
                }
            }
            OutboundBody::Text { text } => assert!(text.chars().count() <= caps.max_text_chars),
            _ => {}
        }
    }
}

#[test]
fn a_whatsapp_catalogue_order_fills_the_cart() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    let event = chat.message(MessageContent::Order {
        catalog_id: None,
        items: vec![OrderItem {
            product_id: "BTL-STEEL".into(),
            quantity: 3,
            item_price: Some(24.5),
            currency: Some("EUR".into()),
        }],
        text: None,
    });
    let replies = chat.send(event);
    assert!(all_text(&replies).contains("3 × Steel Water Bottle"));
    assert!(payloads(&replies).contains(&"CART:checkout".to_owned()));
}

#[test]
fn state_is_forgotten_after_thirty_idle_days() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    chat.say("buy a daypack");
    assert_eq!(chat.state.cart.len(), 1);
    world.advance_minutes(30 * 24 * 60);
    chat.say("hi");
    assert!(chat.state.cart.is_empty());
}

#[test]
fn a_link_lapses_after_thirty_idle_minutes() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    chat.verify("jane@example.com");
    world.advance_minutes(29);
    assert!(all_text(&chat.say("order 10023")).contains("Elm Street"));
    world.advance_minutes(31);
    let text = all_text(&chat.say("i want a refund"));
    assert!(text.contains("timed out"), "{text}");
    assert!(chat.state.link.is_none());
}

#[test]
fn cancel_leaves_any_dialogue() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    chat.say("do you have the rain jacket");
    assert!(matches!(chat.state.dialogue, Dialogue::Stock { .. }));
    let text = all_text(&chat.say("never mind"));
    assert!(text.contains("stopped that"), "{text}");
    assert_eq!(chat.state.dialogue, Dialogue::Idle);
}

#[test]
fn a_new_question_mid_dialogue_is_answered() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    chat.say("do you have the rain jacket");
    let text = all_text(&chat.say("actually when do you close today at harbour?"));
    assert!(text.contains("Harbour is open today"), "{text}");
}

#[test]
fn old_state_versions_start_afresh() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    let mut state = ConversationState::new(world.now_ms.get());
    state.version = 0;
    state.misunderstood = 7;
    chat.state = state;
    chat.say("hi");
    assert_eq!(chat.state.version, 1);
    assert_eq!(chat.state.misunderstood, 0);
}

#[test]
fn all_stores_answers_a_stock_check_for_every_store() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    chat.say("do you have rain jackets");
    chat.say("XL");
    let text = all_text(&chat.say("all stores"));
    assert!(text.contains("Rain Jacket (XL), €89.00:"), "{text}");
    assert!(text.contains("Downtown: 1 in stock"), "{text}");
    assert!(text.contains("Harbour: 2 in stock"), "{text}");
}

#[test]
fn an_order_number_given_to_verify_a_refund_is_the_order_refunded() {
    let world = World::new();
    let mut chat = world.chat(1, "u1");
    chat.say("i want a refund");
    chat.say("10025");
    let code = world.last_code();
    let replies = chat.say(&code);
    assert!(all_text(&replies).contains("Which item from order 10025?"));
}
