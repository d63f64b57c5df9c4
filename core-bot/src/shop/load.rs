//! Shop file parsing: raw TOML shapes, checked field by field while they are
//! read (so errors carry a span), then cross-checked (ids, stock tables).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::{Deserialize, Deserializer, de};
use toml::Spanned;

use super::{
    DayHours, FaqEntry, HandoffSettings, HoursException, OpeningHours, Product, Shop, ShopError,
    Stock, Store,
};
use crate::texts::Catalogue;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    shop: RawShop,
    #[serde(default)]
    handoff: RawHandoff,
    stores: Vec<RawStore>,
    #[serde(default)]
    products: Vec<RawProduct>,
    #[serde(default)]
    faq: Vec<RawFaq>,
    #[serde(default)]
    texts: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShop {
    name: NonEmpty,
    currency: Currency,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHandoff {
    enabled: bool,
    team: String,
    availability: String,
    contact: String,
    resume_after_minutes: u32,
}

impl Default for RawHandoff {
    fn default() -> Self {
        let defaults = HandoffSettings::default();
        Self {
            enabled: defaults.enabled,
            team: defaults.team,
            availability: defaults.availability,
            contact: defaults.contact,
            resume_after_minutes: defaults.resume_after_minutes,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    id: Spanned<Ident>,
    name: NonEmpty,
    #[serde(default)]
    aliases: Vec<String>,
    address: NonEmpty,
    latitude: Latitude,
    longitude: Longitude,
    time_zone: Zone,
    #[serde(default)]
    phone: Option<String>,
    hours: RawWeek,
    #[serde(default)]
    exceptions: Vec<RawException>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeek {
    monday: Hours,
    tuesday: Hours,
    wednesday: Hours,
    thursday: Hours,
    friday: Hours,
    saturday: Hours,
    sunday: Hours,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawException {
    date: Spanned<CivilDate>,
    hours: Hours,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProduct {
    sku: Spanned<Ident>,
    name: NonEmpty,
    #[serde(default)]
    aliases: Vec<String>,
    price: Price,
    #[serde(default)]
    sizes: Vec<String>,
    #[serde(default)]
    stock: BTreeMap<String, Spanned<RawStock>>,
}

#[derive(Deserialize)]
#[serde(untagged, expecting = "a number, or a table of size = number")]
enum RawStock {
    Total(u32),
    BySize(BTreeMap<String, u32>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFaq {
    id: Spanned<Ident>,
    keywords: Vec<String>,
    answer: NonEmpty,
}

/// Builds a newtype that checks a string while it is deserialised, so a bad
/// value is reported at its own line.
macro_rules! checked_string {
    ($name:ident, $target:ty, $check:expr) => {
        struct $name($target);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                let check: fn(&str) -> Result<$target, String> = $check;
                check(&raw).map($name).map_err(de::Error::custom)
            }
        }
    };
}

checked_string!(NonEmpty, String, |raw| {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(trimmed.to_owned())
    }
});

checked_string!(Ident, String, |raw| {
    let valid = !raw.is_empty()
        && raw.len() <= 40
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(format!(
            "`{raw}` is not a valid id: use 1-40 characters of A-Z, a-z, 0-9, '-' or '_'"
        ))
    }
});

checked_string!(Currency, String, |raw| {
    if raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(raw.to_owned())
    } else {
        Err(format!("`{raw}` is not an ISO 4217 code such as EUR"))
    }
});

checked_string!(Zone, (TimeZone, String), |raw| {
    TimeZone::get(raw)
        .map(|zone| (zone, raw.to_owned()))
        .map_err(|_| format!("`{raw}` is not an IANA time zone such as Europe/Berlin"))
});

checked_string!(Hours, DayHours, |raw| DayHours::from_str(raw)
    .map_err(|error| error.to_string()));

checked_string!(CivilDate, Date, |raw| {
    Date::from_str(raw).map_err(|_| format!("`{raw}` is not a date like 2025-12-24"))
});

checked_string!(Price, u64, parse_price);

fn parse_price(raw: &str) -> Result<u64, String> {
    let bad = || format!("`{raw}` is not a price like \"89.00\"");
    let (whole, fraction) = raw.trim().split_once('.').unwrap_or((raw.trim(), "00"));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > 2
        || fraction.is_empty()
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let mut cents: u64 = fraction.parse().map_err(|_| bad())?;
    if fraction.len() == 1 {
        cents *= 10;
    }
    whole
        .checked_mul(100)
        .and_then(|value| value.checked_add(cents))
        .ok_or_else(bad)
}

struct Latitude(f64);
struct Longitude(f64);

fn coordinate<'de, D: Deserializer<'de>>(deserializer: D, limit: f64) -> Result<f64, D::Error> {
    let value = f64::deserialize(deserializer)?;
    if value.is_finite() && value.abs() <= limit {
        Ok(value)
    } else {
        Err(de::Error::custom(format!(
            "must be between -{limit} and {limit}"
        )))
    }
}

impl<'de> Deserialize<'de> for Latitude {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        coordinate(deserializer, 90.0).map(Latitude)
    }
}

impl<'de> Deserialize<'de> for Longitude {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        coordinate(deserializer, 180.0).map(Longitude)
    }
}

pub(super) fn parse(source: &str) -> Result<Shop, ShopError> {
    let deserializer = toml::Deserializer::parse(source).map_err(|error| {
        let (line, column) = error
            .span()
            .map_or((1, 1), |span| line_column(source, span.start));
        ShopError::Invalid {
            line,
            column,
            field: key_on_line(source, line).unwrap_or_else(|| "(syntax)".to_owned()),
            message: error.message().to_owned(),
        }
    })?;
    let raw: RawFile = serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let field = error.path().to_string();
        let inner = error.into_inner();
        let (line, column) = inner
            .span()
            .map_or((1, 1), |span| line_column(source, span.start));
        ShopError::Invalid {
            line,
            column,
            field,
            message: inner.message().to_owned(),
        }
    })?;
    build(source, raw)
}

fn build(source: &str, raw: RawFile) -> Result<Shop, ShopError> {
    let invalid = |span: std::ops::Range<usize>, field: String, message: String| {
        let (line, column) = line_column(source, span.start);
        ShopError::Invalid {
            line,
            column,
            field,
            message,
        }
    };

    if raw.stores.is_empty() {
        return Err(ShopError::Invalid {
            line: 1,
            column: 1,
            field: "stores".to_owned(),
            message: "a shop needs at least one [[stores]] entry".to_owned(),
        });
    }

    let mut stores = Vec::with_capacity(raw.stores.len());
    let mut store_ids = BTreeSet::new();
    for (index, store) in raw.stores.into_iter().enumerate() {
        let id_span = store.id.span();
        let id = store.id.into_inner().0;
        if !store_ids.insert(id.clone()) {
            return Err(invalid(
                id_span,
                format!("stores[{index}].id"),
                format!("store id `{id}` is used twice"),
            ));
        }
        let mut exceptions = BTreeMap::new();
        for (number, exception) in store.exceptions.into_iter().enumerate() {
            let span = exception.date.span();
            let date = exception.date.into_inner().0;
            let previous = exceptions.insert(
                date,
                HoursException {
                    hours: exception.hours.0,
                    note: exception.note.filter(|note| !note.trim().is_empty()),
                },
            );
            if previous.is_some() {
                return Err(invalid(
                    span,
                    format!("stores[{index}].exceptions[{number}].date"),
                    format!("{date} is listed twice"),
                ));
            }
        }
        let week = store.hours;
        let (time_zone, time_zone_name) = store.time_zone.0;
        stores.push(Store {
            id,
            name: store.name.0,
            aliases: clean_list(store.aliases),
            address: store.address.0,
            latitude: store.latitude.0,
            longitude: store.longitude.0,
            time_zone,
            time_zone_name,
            phone: store.phone.filter(|phone| !phone.trim().is_empty()),
            hours: OpeningHours {
                weekly: [
                    week.monday.0,
                    week.tuesday.0,
                    week.wednesday.0,
                    week.thursday.0,
                    week.friday.0,
                    week.saturday.0,
                    week.sunday.0,
                ],
                exceptions,
            },
        });
    }

    let mut products = Vec::with_capacity(raw.products.len());
    let mut skus = BTreeSet::new();
    for (index, product) in raw.products.into_iter().enumerate() {
        let sku_span = product.sku.span();
        let sku = product.sku.into_inner().0;
        if !skus.insert(sku.to_ascii_lowercase()) {
            return Err(invalid(
                sku_span,
                format!("products[{index}].sku"),
                format!("sku `{sku}` is used twice"),
            ));
        }
        let sizes = clean_list(product.sizes);
        let mut stock = BTreeMap::new();
        for (store_id, entry) in product.stock {
            let span = entry.span();
            let field = format!("products[{index}].stock.{store_id}");
            if !store_ids.contains(&store_id) {
                return Err(invalid(
                    span,
                    field,
                    format!("there is no store with id `{store_id}`"),
                ));
            }
            let entry = match entry.into_inner() {
                RawStock::Total(count) if sizes.is_empty() => Stock::Total(count),
                RawStock::Total(_) => {
                    return Err(invalid(
                        span,
                        field,
                        "this product has sizes: give stock per size, like { S = 2, M = 0 }"
                            .to_owned(),
                    ));
                }
                RawStock::BySize(by_size) => {
                    if let Some(unknown) = by_size.keys().find(|size| !sizes.contains(size)) {
                        return Err(invalid(
                            span,
                            field,
                            format!("size `{unknown}` is not in this product's sizes"),
                        ));
                    }
                    Stock::BySize(by_size)
                }
            };
            stock.insert(store_id, entry);
        }
        products.push(Product {
            sku,
            name: product.name.0,
            aliases: clean_list(product.aliases),
            price_minor: product.price.0,
            sizes,
            stock,
        });
    }

    let mut faq = Vec::with_capacity(raw.faq.len());
    for (index, entry) in raw.faq.into_iter().enumerate() {
        let span = entry.id.span();
        let keywords: Vec<String> = clean_list(entry.keywords)
            .into_iter()
            .map(|keyword| keyword.to_lowercase())
            .collect();
        if keywords.is_empty() {
            return Err(invalid(
                span,
                format!("faq[{index}].keywords"),
                "an FAQ entry needs at least one keyword".to_owned(),
            ));
        }
        faq.push(FaqEntry {
            id: entry.id.into_inner().0,
            keywords,
            answer: entry.answer.0,
        });
    }

    let texts = Catalogue::with_overrides(
        raw.texts
            .iter()
            .map(|(key, value)| (key.as_str(), value.get_ref().as_str())),
    )
    .map_err(|error| {
        let key = match &error {
            crate::texts::CatalogueError::UnknownKey { key }
            | crate::texts::CatalogueError::UnknownPlaceholder { key, .. }
            | crate::texts::CatalogueError::Empty { key } => key.clone(),
        };
        let span = raw.texts.get(&key).map_or(0..0, Spanned::span);
        invalid(span, format!("texts.{key}"), error.to_string())
    })?;

    let handoff = raw.handoff;
    Ok(Shop {
        name: raw.shop.name.0,
        currency: raw.shop.currency.0,
        stores,
        products,
        faq,
        handoff: HandoffSettings {
            enabled: handoff.enabled,
            team: handoff.team,
            availability: handoff.availability,
            contact: handoff.contact,
            resume_after_minutes: handoff.resume_after_minutes,
        },
        texts,
    })
}

fn clean_list(items: Vec<String>) -> Vec<String> {
    items
        .into_iter()
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect()
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |at| at + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The `key` of a `key = value` line, for syntax errors that carry no path.
fn key_on_line(source: &str, line: usize) -> Option<String> {
    let text = source.lines().nth(line.checked_sub(1)?)?;
    let (key, _) = text.split_once('=')?;
    let key = key.trim();
    (!key.is_empty()).then(|| key.to_owned())
}

impl fmt::Debug for RawFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawFile")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(source: &str) -> (usize, String, String) {
        match parse(source) {
            Err(ShopError::Invalid {
                line,
                field,
                message,
                ..
            }) => (line, field, message),
            other => panic!("expected an invalid-file error, got {other:?}"),
        }
    }

    fn minimal(store_extra: &str, product: &str) -> String {
        format!(
            r#"[shop]
name = "Test"
currency = "EUR"

[[stores]]
id = "main"
name = "Main"
address = "1 High Street"
latitude = 51.5
longitude = -0.1
time_zone = "Europe/London"
{store_extra}
[stores.hours]
monday = "09:00-17:00"
tuesday = "09:00-17:00"
wednesday = "09:00-17:00"
thursday = "09:00-17:00"
friday = "09:00-17:00"
saturday = "closed"
sunday = "closed"
{product}"#
        )
    }

    #[test]
    fn a_minimal_shop_loads() {
        let shop = parse(&minimal("", "")).unwrap();
        assert_eq!(shop.stores[0].time_zone_name, "Europe/London");
    }

    #[test]
    fn a_bad_time_zone_names_its_line_and_field() {
        let source = minimal("", "").replace("Europe/London", "Mars/Olympus");
        let (line, field, message) = error_of(&source);
        assert_eq!(line, 11);
        assert_eq!(field, "stores[0].time_zone");
        assert!(message.contains("Mars/Olympus"), "{message}");
    }

    #[test]
    fn bad_opening_hours_name_the_weekday() {
        let source = minimal("", "").replace("friday = \"09:00-17:00\"", "friday = \"9 to 5\"");
        let (line, field, _) = error_of(&source);
        assert_eq!(line, 18);
        assert_eq!(field, "stores[0].hours.friday");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let (line, field, message) = error_of(&minimal("colour = \"red\"", ""));
        assert_eq!(line, 12);
        assert!(
            field.contains("colour") || message.contains("colour"),
            "{field} {message}"
        );
    }

    #[test]
    fn stock_for_an_unknown_store_is_refused() {
        let product =
            "\n[[products]]\nsku = \"A\"\nname = \"A\"\nprice = \"1.00\"\nstock.nowhere = 3\n";
        let (line, field, message) = error_of(&minimal("", product));
        assert_eq!(line, 26);
        assert_eq!(field, "products[0].stock.nowhere");
        assert!(message.contains("nowhere"));
    }

    #[test]
    fn prices_must_be_decimal_strings() {
        assert_eq!(parse_price("89.00"), Ok(8900));
        assert_eq!(parse_price("5.5"), Ok(550));
        assert_eq!(parse_price("12"), Ok(1200));
        assert!(parse_price("1.234").is_err());
        assert!(parse_price("-1").is_err());
        let product = "\n[[products]]\nsku = \"A\"\nname = \"A\"\nprice = \"cheap\"\n";
        let (line, field, _) = error_of(&minimal("", product));
        assert_eq!((line, field.as_str()), (25, "products[0].price"));
    }

    #[test]
    fn unknown_text_keys_are_refused_at_their_line() {
        let source = format!(
            "{}\n[texts]\nthanks = \"Danke\"\ngreting = \"Hallo\"\n",
            minimal("", "")
        );
        let (line, field, message) = error_of(&source);
        assert_eq!(line, 24);
        assert_eq!(field, "texts.greting");
        assert!(message.contains("unknown text key"), "{message}");
    }

    #[test]
    fn syntax_errors_give_a_line() {
        let source = minimal("", "").replace("name = \"Main\"", "name = \"Main");
        let (line, _, _) = error_of(&source);
        assert_eq!(line, 7);
    }

    #[test]
    fn duplicate_store_ids_are_refused() {
        let mut source = minimal("", "");
        source.push_str(
            &minimal("", "").replace("[shop]\nname = \"Test\"\ncurrency = \"EUR\"\n", ""),
        );
        let (line, field, _) = error_of(&source);
        assert_eq!(field, "stores[1].id");
        assert_eq!(line, 23);
    }
}
