//! The reply catalogue: every text the assistant sends comes from here, so
//! a shop can translate or reword any of them in its shop file.
//!
//! Defaults live in the embedded `data/texts.en.toml`. Overrides may only
//! name known keys and may only use the placeholders the default uses, so a
//! typo in a shop file is refused at start instead of showing `{nmae}` to a
//! customer.

use std::collections::{BTreeMap, BTreeSet};

const DEFAULTS: &str = include_str!("../data/texts.en.toml");

macro_rules! text_keys {
    ($($variant:ident => $key:literal,)*) => {
        /// One reply text. The names match the keys of the catalogue file.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Text {
            $($variant,)*
        }

        impl Text {
            pub const ALL: &'static [Text] = &[$(Text::$variant,)*];

            pub fn key(self) -> &'static str {
                match self {
                    $(Text::$variant => $key,)*
                }
            }

            pub fn from_key(key: &str) -> Option<Text> {
                match key {
                    $($key => Some(Text::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

text_keys! {
    Greeting => "greeting",
    GreetingBack => "greeting_back",
    Goodbye => "goodbye",
    Thanks => "thanks",
    Help => "help",
    MenuPrompt => "menu_prompt",
    MenuButton => "menu_button",
    OutOfScope => "out_of_scope",
    OutOfScopeAgain => "out_of_scope_again",
    MediaUnsupported => "media_unsupported",
    Cancelled => "cancelled",
    NothingToCancel => "nothing_to_cancel",
    BackendUnavailable => "backend_unavailable",
    SlowDown => "slow_down",
    NameFallback => "name_fallback",
    OptionHours => "option_hours",
    OptionStores => "option_stores",
    OptionStock => "option_stock",
    OptionOrder => "option_order",
    OptionRefund => "option_refund",
    OptionHuman => "option_human",
    OptionYes => "option_yes",
    OptionNo => "option_no",
    OptionNoThanks => "option_no_thanks",
    OptionBuy => "option_buy",
    OptionCheckout => "option_checkout",
    OptionKeepShopping => "option_keep_shopping",
    OptionClearCart => "option_clear_cart",
    OptionVerify => "option_verify",
    OptionAnyStore => "option_any_store",
    OptionDeleteYes => "option_delete_yes",
    OptionDeleteNo => "option_delete_no",
    OptionMenu => "option_menu",
    DayToday => "day_today",
    DayTomorrow => "day_tomorrow",
    DayMonday => "day_monday",
    DayTuesday => "day_tuesday",
    DayWednesday => "day_wednesday",
    DayThursday => "day_thursday",
    DayFriday => "day_friday",
    DaySaturday => "day_saturday",
    DaySunday => "day_sunday",
    WeekdayMonday => "weekday_monday",
    WeekdayTuesday => "weekday_tuesday",
    WeekdayWednesday => "weekday_wednesday",
    WeekdayThursday => "weekday_thursday",
    WeekdayFriday => "weekday_friday",
    WeekdaySaturday => "weekday_saturday",
    WeekdaySunday => "weekday_sunday",
    ClosedWord => "closed_word",
    DateOn => "date_on",
    Month1 => "month_1",
    Month2 => "month_2",
    Month3 => "month_3",
    Month4 => "month_4",
    Month5 => "month_5",
    Month6 => "month_6",
    Month7 => "month_7",
    Month8 => "month_8",
    Month9 => "month_9",
    Month10 => "month_10",
    Month11 => "month_11",
    Month12 => "month_12",
    DistanceM => "distance_m",
    DistanceKm => "distance_km",
    CodePrompt => "code_prompt",
    StockAskWhat => "stock_ask_what",
    HoursDayOpen => "hours_day_open",
    HoursDayOpenNote => "hours_day_open_note",
    HoursDayClosed => "hours_day_closed",
    HoursDayClosedNote => "hours_day_closed_note",
    HoursOpenNow => "hours_open_now",
    HoursClosedNow => "hours_closed_now",
    HoursClosedIndefinitely => "hours_closed_indefinitely",
    HoursWeekHeading => "hours_week_heading",
    AskStore => "ask_store",
    AskStoreForStock => "ask_store_for_stock",
    StoresIntro => "stores_intro",
    StoreLine => "store_line",
    AskLocation => "ask_location",
    NearestStore => "nearest_store",
    StoreUnknown => "store_unknown",
    AskProduct => "ask_product",
    ProductNotFound => "product_not_found",
    AskSize => "ask_size",
    SizeNotAvailable => "size_not_available",
    StockIn => "stock_in",
    StockOut => "stock_out",
    StockElsewhere => "stock_elsewhere",
    StockNone => "stock_none",
    StockHeading => "stock_heading",
    StockLineIn => "stock_line_in",
    StockLineOut => "stock_line_out",
    CartAdded => "cart_added",
    CartOutOfStock => "cart_out_of_stock",
    CartEmpty => "cart_empty",
    CartCleared => "cart_cleared",
    CartSummary => "cart_summary",
    CheckoutLink => "checkout_link",
    CheckoutFailed => "checkout_failed",
    AskOrderNumber => "ask_order_number",
    OrderStatus => "order_status",
    OrderStatusUnlinkedHint => "order_status_unlinked_hint",
    OrderNotFound => "order_not_found",
    OrderNotOnAccount => "order_not_on_account",
    OrderDetails => "order_details",
    StatusPlaced => "status_placed",
    StatusPaid => "status_paid",
    StatusShipped => "status_shipped",
    StatusDelivered => "status_delivered",
    StatusCancelled => "status_cancelled",
    StatusRefunded => "status_refunded",
    StatusUnknown => "status_unknown",
    LinkIntro => "link_intro",
    LinkRequired => "link_required",
    LinkSent => "link_sent",
    LinkUnknownAccount => "link_unknown_account",
    LinkBadIdentifier => "link_bad_identifier",
    LinkWrongCode => "link_wrong_code",
    LinkLocked => "link_locked",
    LinkTooManyCodes => "link_too_many_codes",
    LinkExpired => "link_expired",
    LinkUsed => "link_used",
    LinkWrongRequester => "link_wrong_requester",
    LinkFailed => "link_failed",
    LinkOk => "link_ok",
    LinkAlready => "link_already",
    LinkNoPending => "link_no_pending",
    LinkNewDestinationRefused => "link_new_destination_refused",
    LinkExpiredSession => "link_expired_session",
    RefundAskOrder => "refund_ask_order",
    RefundAskItem => "refund_ask_item",
    RefundAskReason => "refund_ask_reason",
    RefundConfirm => "refund_confirm",
    RefundDone => "refund_done",
    RefundCancelled => "refund_cancelled",
    RefundRejected => "refund_rejected",
    RefundNoItems => "refund_no_items",
    ReasonDamaged => "reason_damaged",
    ReasonWrongSize => "reason_wrong_size",
    ReasonNotAsDescribed => "reason_not_as_described",
    ReasonChangedMind => "reason_changed_mind",
    ComplaintAsk => "complaint_ask",
    ComplaintRecorded => "complaint_recorded",
    ComplaintOfferPerson => "complaint_offer_person",
    ComplaintNoPerson => "complaint_no_person",
    HandoffStarted => "handoff_started",
    HandoffUnavailable => "handoff_unavailable",
    HandoffEnded => "handoff_ended",
    DeleteConfirm => "delete_confirm",
    DeleteDone => "delete_done",
    DeleteCancelled => "delete_cancelled",
    CardWarning => "card_warning",
    PasswordWarning => "password_warning",
    AuthorityNotice => "authority_notice",
}

/// Why a text override was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    #[error("unknown text key `{key}`")]
    UnknownKey { key: String },
    #[error("text `{key}` uses placeholder `{{{placeholder}}}`, which this text does not have")]
    UnknownPlaceholder { key: String, placeholder: String },
    #[error("text `{key}` is empty")]
    Empty { key: String },
}

/// The texts in force: English defaults with the shop's overrides applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    texts: Vec<String>,
}

impl Default for Catalogue {
    fn default() -> Self {
        Self::english()
    }
}

impl Catalogue {
    /// The embedded English texts. A key missing from the embedded file
    /// (a build mistake the tests catch) shows as its key rather than failing.
    pub fn english() -> Self {
        let parsed: BTreeMap<String, String> = toml::from_str(DEFAULTS).unwrap_or_default();
        let texts = Text::ALL
            .iter()
            .map(|text| {
                parsed
                    .get(text.key())
                    .cloned()
                    .unwrap_or_else(|| text.key().to_owned())
            })
            .collect();
        Self { texts }
    }

    /// English defaults with `overrides` (key -> text) applied.
    pub fn with_overrides<'a>(
        overrides: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, CatalogueError> {
        let mut catalogue = Self::english();
        for (key, value) in overrides {
            let text = Text::from_key(key).ok_or_else(|| CatalogueError::UnknownKey {
                key: key.to_owned(),
            })?;
            if value.trim().is_empty() {
                return Err(CatalogueError::Empty {
                    key: key.to_owned(),
                });
            }
            let allowed = placeholders(catalogue.get(text));
            if let Some(unknown) = placeholders(value)
                .into_iter()
                .find(|name| !allowed.contains(name))
            {
                return Err(CatalogueError::UnknownPlaceholder {
                    key: key.to_owned(),
                    placeholder: unknown.to_owned(),
                });
            }
            catalogue.texts[text as usize] = value.to_owned();
        }
        Ok(catalogue)
    }

    pub fn get(&self, text: Text) -> &str {
        self.texts.get(text as usize).map_or("", String::as_str)
    }

    /// The text with each `{name}` replaced by its value. Unknown
    /// placeholders stay as they are; values are inserted verbatim and never
    /// re-expanded, so customer input cannot smuggle in placeholders.
    pub fn render(&self, text: Text, args: &[(&str, &str)]) -> String {
        fill(self.get(text), args)
    }
}

fn fill(template: &str, args: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if is_placeholder_name(&after[..close]) => {
                let name = &after[..close];
                match args.iter().find(|(key, _)| *key == name) {
                    Some((_, value)) => out.push_str(value),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_placeholder_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// The `{name}` placeholders a template uses.
pub fn placeholders(template: &str) -> BTreeSet<&str> {
    let mut found = BTreeSet::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if is_placeholder_name(&after[..close]) => {
                found.insert(&after[..close]);
                rest = &after[close + 1..];
            }
            _ => rest = after,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalogue_has_exactly_the_known_keys() {
        let parsed: BTreeMap<String, String> = toml::from_str(DEFAULTS).unwrap();
        for text in Text::ALL {
            assert!(parsed.contains_key(text.key()), "missing {}", text.key());
        }
        for key in parsed.keys() {
            assert!(Text::from_key(key).is_some(), "unused key {key}");
        }
    }

    #[test]
    fn render_fills_placeholders_without_re_expanding_values() {
        let catalogue = Catalogue::english();
        let text = catalogue.render(Text::OrderStatus, &[("order", "{status}"), ("status", "x")]);
        assert_eq!(text, "Order {status} is x.");
    }

    #[test]
    fn overrides_replace_defaults() {
        let catalogue = Catalogue::with_overrides([("thanks", "Gern geschehen!")]).unwrap();
        assert_eq!(catalogue.get(Text::Thanks), "Gern geschehen!");
    }

    #[test]
    fn unknown_keys_and_placeholders_are_refused() {
        assert_eq!(
            Catalogue::with_overrides([("thankz", "x")]),
            Err(CatalogueError::UnknownKey {
                key: "thankz".into()
            })
        );
        assert_eq!(
            Catalogue::with_overrides([("order_status", "Order {nmae}")]),
            Err(CatalogueError::UnknownPlaceholder {
                key: "order_status".into(),
                placeholder: "nmae".into()
            })
        );
    }
}
