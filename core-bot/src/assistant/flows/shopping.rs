//! Stores, opening hours, stock checks, the cart and checkout.

use super::*;

// ----------------------------------------------------------- stores, hours

pub(super) fn store_options(turn: &Turn<'_>, with_all: bool) -> Vec<ChoiceOption> {
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

pub(super) fn store_hours(turn: &mut Turn<'_>, entities: &Entities) {
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

pub(super) fn store_location(turn: &mut Turn<'_>, entities: &Entities) {
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

pub(super) fn answer_for_store(turn: &mut Turn<'_>, store_id: &str, purpose: &StorePurpose) {
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
pub(super) fn product_in_focus(
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

pub(super) fn product_options(turn: &Turn<'_>) -> Vec<ChoiceOption> {
    turn.a
        .shop
        .products
        .iter()
        .map(|product| ChoiceOption::new(product.name.clone(), format!("PRODUCT:{}", product.sku)))
        .collect()
}

pub(super) fn size_options(product: &Product) -> Vec<ChoiceOption> {
    product
        .sizes
        .iter()
        .map(|size| ChoiceOption::new(size.clone(), format!("SIZE:{size}")))
        .collect()
}

pub(super) fn item_label(product: &Product, size: Option<&str>) -> String {
    match size {
        Some(size) => format!("{} ({size})", product.name),
        None => product.name.clone(),
    }
}

/// Resolves the size against the product; asks when it is missing or wrong.
/// `Err(())` means a question was asked.
pub(super) fn settle_size(
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

pub(super) fn continue_stock(
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

pub(super) fn continue_purchase(
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

pub(super) fn add_to_cart(
    turn: &mut Turn<'_>,
    product: &Product,
    size: Option<String>,
    quantity: u32,
) {
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

pub(super) fn cart_options(turn: &Turn<'_>) -> Vec<ChoiceOption> {
    vec![
        ChoiceOption::new(turn.t(Text::OptionCheckout), "CART:checkout"),
        ChoiceOption::new(turn.t(Text::OptionKeepShopping), "INTENT:product_stock"),
        ChoiceOption::new(turn.t(Text::OptionClearCart), "CART:clear"),
    ]
}

pub(super) fn show_cart(turn: &mut Turn<'_>) {
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

pub(super) fn checkout(turn: &mut Turn<'_>) {
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
