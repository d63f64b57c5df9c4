//! docs/CONFIGURATION.md cannot drift from the code: its tables list
//! exactly the keys the config structs accept (read from their source), the
//! documented defaults are the ones the gateway runs with, and every TOML
//! example in it loads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use switchboard::config::Settings;

use crate::helpers::TempDir;

fn read(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Where each deserialised config struct's fields live. A new struct in
/// config.rs needs a line here (and its keys in docs/CONFIGURATION.md).
fn prefix(structure: &str) -> Option<&'static str> {
    Some(match structure {
        "RawServer" => "server.",
        "RawAdminToken" => "server.admin_tokens[].",
        "RawStore" => "store.",
        "RawPlatform" => "platforms.<platform>.",
        "RawChannel" => "channels[].",
        "TemplateSettings" => "channels[].outside_window_template.",
        "RawShop" => "shop.",
        "RawBackend" => "backend.",
        "RawPipeline" => "pipeline.",
        "RawSender" => "sender.",
        "RawSandbox" => "sandbox.",
        "AbuseSettings" => "abuse.",
        "HandoffSettings" => "handoff.",
        "RegistrationSettings" => "registration.",
        _ => return None,
    })
}

/// Structs that only hold sections, not keys.
const CONTAINERS: &[&str] = &["RawSettings", "RawPlatforms"];

/// `struct name -> field names` for every struct deriving `Deserialize`.
fn deserialized_structs(source: &str) -> BTreeMap<String, Vec<String>> {
    let mut structs = BTreeMap::new();
    let lines: Vec<&str> = source.lines().collect();
    let mut index = 0;
    while index < lines.len() {
        let line = lines[index].trim();
        index += 1;
        if !(line.starts_with("#[derive(") && line.contains("Deserialize")) {
            continue;
        }
        // Skip further attributes and doc comments up to the item.
        while index < lines.len() && lines[index].trim().starts_with("#[") {
            index += 1;
        }
        let item = lines[index].trim();
        let Some(rest) = item
            .strip_prefix("pub struct ")
            .or_else(|| item.strip_prefix("struct "))
        else {
            continue;
        };
        let name = rest.split([' ', '{', '<']).next().unwrap().to_owned();
        let mut fields = Vec::new();
        let mut rename: Option<String> = None;
        index += 1;
        while index < lines.len() && lines[index] != "}" {
            let field = lines[index].trim();
            index += 1;
            if let Some(attr) = field.strip_prefix("#[serde(")
                && let Some(value) = attr.split("rename = \"").nth(1)
            {
                rename = Some(value.split('"').next().unwrap().to_owned());
            }
            if field.starts_with("//") || field.starts_with('#') || field.is_empty() {
                continue;
            }
            let field = field.strip_prefix("pub ").unwrap_or(field);
            if let Some((key, _)) = field.split_once(':') {
                fields.push(rename.take().unwrap_or_else(|| key.trim().to_owned()));
            }
        }
        structs.insert(name, fields);
    }
    structs
}

/// `key -> default cell` from every table row of the doc.
fn documented(doc: &str) -> BTreeMap<String, String> {
    doc.lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_owned(), cells[2].to_owned())
        })
        .collect()
}

fn toml_blocks(doc: &str) -> Vec<String> {
    doc.split("```toml\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().to_owned())
        .collect()
}

/// Loads `toml` with every `/run/secrets/switchboard/NAME` it names
/// present as a test file.
fn load(toml: &str) -> Result<Settings, String> {
    let dir = TempDir::new();
    let mut text = toml.to_owned();
    for part in toml.split("/run/secrets/switchboard/").skip(1) {
        let name = part.split('"').next().unwrap();
        let content = if name.contains("encryption_keys") {
            "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
        } else {
            "secret-from-a-file-0123456789\n"
        };
        std::fs::write(dir.0.join(name), content).unwrap();
    }
    text = text.replace(
        "/run/secrets/switchboard/",
        &format!("{}/", dir.0.display()),
    );
    let path = dir.0.join("switchboard.toml");
    std::fs::write(&path, text).unwrap();
    Settings::load_from(Some(&path), &[]).map_err(|e| e.to_string())
}

/// A TOML scalar as written in a file.
fn render(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => format!("\"{text}\""),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(n) => n.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => panic!("no scalar: {other:?}"),
    }
}

#[test]
fn every_config_key_is_documented_and_every_documented_key_exists() {
    let mut structs = deserialized_structs(&read("gateway/src/config.rs"));
    let registration = deserialized_structs(&read("gateway/src/channels/mod.rs"));
    structs.insert(
        "RegistrationSettings".to_owned(),
        registration["RegistrationSettings"].clone(),
    );
    let mut expected = BTreeSet::new();
    for (name, fields) in &structs {
        if CONTAINERS.contains(&name.as_str()) {
            continue;
        }
        let prefix = prefix(name).unwrap_or_else(|| {
            panic!(
                "config struct {name} is not mapped to a section: add it to prefix() in tests/it/config_docs.rs and document its keys"
            )
        });
        for field in fields {
            expected.insert(format!("{prefix}{field}"));
        }
    }
    let doc = read("docs/CONFIGURATION.md");
    let documented: BTreeSet<String> = documented(&doc).into_keys().collect();
    let missing: Vec<_> = expected.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&expected).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "undocumented keys: {missing:#?}\ndocumented keys the code does not accept: {unknown:#?}"
    );
    // Every section of the file has a heading.
    for section in &structs["RawSettings"] {
        let heading = if section == "channels" {
            "## `[[channels]]`".to_owned()
        } else if section == "platforms" {
            "## `[platforms.<platform>]`".to_owned()
        } else {
            format!("## `[{section}]`")
        };
        assert!(doc.contains(&heading), "no heading {heading}");
    }
}

#[test]
fn documented_defaults_are_the_ones_the_gateway_runs_with() {
    let doc = read("docs/CONFIGURATION.md");
    let documented = documented(&doc);

    // Every key of the embedded defaults is documented with its value.
    let defaults: toml::Table = read("gateway/src/defaults.toml").parse().unwrap();
    for (section, table) in &defaults {
        for (key, value) in table.as_table().unwrap() {
            let name = format!("{section}.{key}");
            let cell = documented
                .get(&name)
                .unwrap_or_else(|| panic!("{name} (in defaults.toml) is not documented"));
            assert_eq!(
                cell.trim_matches('`'),
                render(value),
                "{name}: documented default differs from defaults.toml"
            );
        }
    }

    // Setting a key to its documented default changes nothing (this covers
    // the defaults that live in the code rather than defaults.toml).
    let baseline = format!("{:?}", Settings::load_from(None, &[]).unwrap());
    let mut checked = 0;
    for (key, cell) in &documented {
        let literal = cell.starts_with('`') && cell.ends_with('`');
        if !literal || key.contains("[]") || key.contains('<') {
            continue;
        }
        let (section, name) = key.split_once('.').unwrap();
        let toml = format!("[{section}]\n{name} = {}\n", cell.trim_matches('`'));
        let settings = load(&toml).unwrap_or_else(|e| panic!("{key} = {cell}: {e}"));
        assert_eq!(
            format!("{settings:?}"),
            baseline,
            "{key}: the documented default {cell} is not the default"
        );
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} defaults checked");
}

#[test]
fn every_toml_example_in_the_reference_loads() {
    let doc = read("docs/CONFIGURATION.md");
    let blocks = toml_blocks(&doc);
    assert!(blocks.len() >= 2);
    for block in &blocks {
        let settings =
            load(block).unwrap_or_else(|e| panic!("example does not load: {e}\n{block}"));
        assert!(!settings.demo);
    }
    // The full example sets every documented key outside lists of tables
    // (where one side of each key / key_file pair is shown).
    let full = blocks
        .iter()
        .find(|b| b.contains("[abuse]"))
        .expect("the complete example");
    let table: toml::Table = full.parse().unwrap();
    for key in documented(&doc).keys() {
        if key.contains("[]") || key.contains('<') {
            continue;
        }
        let (section, name) = key.split_once('.').unwrap();
        let present = table
            .get(section)
            .and_then(|s| s.as_table())
            .is_some_and(|s| s.contains_key(name));
        let other_side = name
            .strip_suffix("_file")
            .map(|plain| plain.to_owned())
            .unwrap_or_else(|| format!("{name}_file"));
        let paired = table
            .get(section)
            .and_then(|s| s.as_table())
            .is_some_and(|s| s.contains_key(&other_side));
        assert!(
            present || paired || name == "admin_tokens",
            "{key} is missing from the complete example"
        );
    }
}
