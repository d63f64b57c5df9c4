//! Shop files: the embedded demo, the documented example, and refusals that
//! name the line and field.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use switchboard_core::shop::{Shop, ShopError};

const DOC: &str = include_str!("../../docs/SHOP_FILE.md");

fn example_from_docs() -> &'static str {
    let start = DOC.find("## Example").unwrap();
    let block = &DOC[start..];
    let open = block.find("```toml\n").unwrap() + "```toml\n".len();
    let close = block[open..].find("```").unwrap();
    &block[open..open + close]
}

#[test]
fn the_documented_example_is_a_valid_shop_file() {
    let shop = Shop::from_toml_str(example_from_docs()).unwrap();
    assert_eq!(shop.name, "Demo Outfitters");
    assert_eq!(shop.products.len(), 2);
}

#[test]
fn the_embedded_demo_shop_loads_with_everything_the_docs_promise() {
    let shop = Shop::from_toml_str(Shop::demo_source()).unwrap();
    assert_eq!(shop.stores.len(), 2);
    assert!(shop.products.len() >= 5);
    assert!(!shop.faq.is_empty());
    assert!(shop.handoff.enabled);
}

#[test]
fn a_bad_value_is_refused_with_its_line_and_field() {
    let source = Shop::demo_source().replace("latitude = 52.5206", "latitude = 152.5206");
    let line = source
        .lines()
        .position(|line| line.contains("152.5206"))
        .unwrap()
        + 1;
    match Shop::from_toml_str(&source) {
        Err(ShopError::Invalid {
            line: got, field, ..
        }) => {
            assert_eq!(got, line);
            assert_eq!(field, "stores[0].latitude");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_missing_file_names_its_path() {
    let error = Shop::from_path(std::path::Path::new("/nonexistent/shop.toml")).unwrap_err();
    assert!(
        error.to_string().contains("/nonexistent/shop.toml"),
        "{error}"
    );
}
