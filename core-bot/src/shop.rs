//! Shop data: stores with opening hours, products with stock, FAQ entries,
//! hand-off settings and reply texts, loaded from one TOML file
//! (docs/SHOP_FILE.md). A bad file is refused with the line and the field.

mod hours;
mod load;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;

pub use hours::{
    DayHours, DaySchedule, HoursException, Interval, InvalidHours, Minutes, OpenStatus,
    OpeningHours, format_clock, local_date_minute, weekday_index,
};

use crate::texts::Catalogue;

const DEMO_SHOP: &str = include_str!("../data/demo_shop.toml");

/// Why a shop file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    #[error("cannot read shop file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `field` is a path such as `stores[0].hours.monday`; `line` and
    /// `column` are 1-based.
    #[error("shop file line {line}, column {column}, field `{field}`: {message}")]
    Invalid {
        line: usize,
        column: usize,
        field: String,
        message: String,
    },
}

#[derive(Debug, Clone)]
pub struct Shop {
    pub name: String,
    /// ISO 4217 code; prices are in its minor unit (cents).
    pub currency: String,
    pub stores: Vec<Store>,
    pub products: Vec<Product>,
    pub faq: Vec<FaqEntry>,
    pub handoff: HandoffSettings,
    pub texts: Catalogue,
}

#[derive(Debug, Clone)]
pub struct Store {
    /// Stable id used in payloads (`STORE:downtown`) and stock tables.
    pub id: String,
    pub name: String,
    /// Other names customers use for it ("city centre").
    pub aliases: Vec<String>,
    pub address: String,
    pub latitude: f64,
    pub longitude: f64,
    pub time_zone: TimeZone,
    pub time_zone_name: String,
    pub phone: Option<String>,
    pub hours: OpeningHours,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub aliases: Vec<String>,
    /// Price in the currency's minor unit.
    pub price_minor: u64,
    /// Empty when the product comes in one size.
    pub sizes: Vec<String>,
    /// Stock per store id.
    pub stock: BTreeMap<String, Stock>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stock {
    Total(u32),
    BySize(BTreeMap<String, u32>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaqEntry {
    pub id: String,
    /// Phrases that, found in a message, select this answer.
    pub keywords: Vec<String>,
    pub answer: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffSettings {
    pub enabled: bool,
    /// Who takes over, as it reads in "I'm connecting you with {team}".
    pub team: String,
    pub availability: String,
    /// Where customers go when no person is available.
    pub contact: String,
    /// The bot answers again after this long, even if no agent ended the
    /// hand-off, so a forgotten conversation does not go silent for ever.
    pub resume_after_minutes: u32,
}

impl Default for HandoffSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            team: "our team".to_owned(),
            availability: String::new(),
            contact: String::new(),
            resume_after_minutes: 24 * 60,
        }
    }
}

impl Shop {
    /// The embedded demo shop.
    pub fn demo() -> Shop {
        match Self::from_toml_str(DEMO_SHOP) {
            Ok(shop) => shop,
            // The embedded file is checked by tests; an empty shop is the
            // least surprising stand-in should that ever slip.
            Err(_) => Shop {
                name: "Demo shop".to_owned(),
                currency: "EUR".to_owned(),
                stores: Vec::new(),
                products: Vec::new(),
                faq: Vec::new(),
                handoff: HandoffSettings::default(),
                texts: Catalogue::english(),
            },
        }
    }

    /// The embedded demo shop file, for docs and `--print-demo-shop`.
    pub fn demo_source() -> &'static str {
        DEMO_SHOP
    }

    pub fn from_toml_str(source: &str) -> Result<Shop, ShopError> {
        load::parse(source)
    }

    pub fn from_path(path: &Path) -> Result<Shop, ShopError> {
        let source = std::fs::read_to_string(path).map_err(|source| ShopError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&source)
    }

    pub fn store(&self, id: &str) -> Option<&Store> {
        self.stores.iter().find(|store| store.id == id)
    }

    pub fn product(&self, sku: &str) -> Option<&Product> {
        self.products.iter().find(|product| product.sku == sku)
    }

    /// The closest store to a point and its distance in kilometres.
    pub fn nearest_store(&self, latitude: f64, longitude: f64) -> Option<(&Store, f64)> {
        self.stores
            .iter()
            .map(|store| (store, store.distance_km(latitude, longitude)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// `€89.00`, `$5.50`, `12.00 CHF`.
    pub fn format_price(&self, minor: u64) -> String {
        let amount = format!("{}.{:02}", minor / 100, minor % 100);
        match self.currency.as_str() {
            "EUR" => format!("€{amount}"),
            "USD" => format!("${amount}"),
            "GBP" => format!("£{amount}"),
            other => format!("{amount} {other}"),
        }
    }
}

impl Store {
    /// Great-circle distance (haversine) in kilometres.
    pub fn distance_km(&self, latitude: f64, longitude: f64) -> f64 {
        haversine_km(self.latitude, self.longitude, latitude, longitude)
    }
}

pub fn haversine_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0088;
    let (phi1, phi2) = (lat1.to_radians(), lat2.to_radians());
    let d_phi = (lat2 - lat1).to_radians();
    let d_lambda = (lon2 - lon1).to_radians();
    let a = (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

impl Product {
    /// Units at one store, for one size or all sizes together.
    pub fn stock_at(&self, store_id: &str, size: Option<&str>) -> u32 {
        match (self.stock.get(store_id), size) {
            (None, _) => 0,
            (Some(Stock::Total(count)), _) => *count,
            (Some(Stock::BySize(sizes)), Some(size)) => sizes
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(size))
                .map_or(0, |(_, count)| *count),
            (Some(Stock::BySize(sizes)), None) => sizes.values().sum(),
        }
    }

    pub fn has_sizes(&self) -> bool {
        !self.sizes.is_empty()
    }

    /// The product's own spelling of `size`, if it comes in it.
    pub fn size(&self, size: &str) -> Option<&str> {
        self.sizes
            .iter()
            .find(|known| known.eq_ignore_ascii_case(size))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_shop_loads() {
        let shop = Shop::from_toml_str(DEMO_SHOP).unwrap();
        assert_eq!(shop.stores.len(), 2);
        assert!(shop.product("JKT-RAIN").is_some());
        assert_eq!(
            shop.product("JKT-RAIN")
                .unwrap()
                .stock_at("downtown", Some("m")),
            3
        );
        assert_eq!(shop.format_price(8900), "€89.00");
    }

    #[test]
    fn haversine_matches_a_known_distance() {
        // Berlin to Hamburg is about 255 km as the crow flies.
        let distance = haversine_km(52.5200, 13.4050, 53.5511, 9.9937);
        assert!((distance - 255.0).abs() < 3.0, "{distance}");
    }
}
