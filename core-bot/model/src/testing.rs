//! Test helpers shared by the adapters' and gateway's tests (feature
//! `testing`). Not for production code.

use std::path::{Path, PathBuf};

/// The `shared/fixtures` folder: `$SWITCHBOARD_FIXTURES` when set, else the
/// first `shared/fixtures` found walking up from `manifest_dir` (the
/// checkout's sibling `../shared` in development and CI). Panics with a
/// message saying what to do when there is none, so fixture tests can never
/// pass by finding nothing.
#[allow(clippy::panic)]
pub fn fixtures_dir(manifest_dir: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("SWITCHBOARD_FIXTURES") {
        return PathBuf::from(dir);
    }
    for ancestor in Path::new(manifest_dir).ancestors() {
        let candidate = ancestor.join("shared").join("fixtures");
        if candidate.is_dir() {
            return candidate;
        }
    }
    panic!(
        "shared/fixtures not found above {manifest_dir}; place the shared/ folder beside the \
         checkout or set SWITCHBOARD_FIXTURES"
    );
}

/// Every `*.json` file in `dir`, sorted, as (file stem, raw bytes).
#[allow(clippy::panic)]
pub fn fixture_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read fixtures in {}: {e}", dir.display()));
    let mut files: Vec<(String, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            (stem, bytes)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

/// Compares `actual` with the expected JSON file `expected_dir/name.json`.
/// With `SWITCHBOARD_UPDATE_EXPECTED=1` the file is (re)written instead, so
/// a new fixture gets its expected form after a human reads it. Returns a
/// description of the difference, or `None` when equal.
#[allow(clippy::panic)]
pub fn check_expected(
    expected_dir: &Path,
    name: &str,
    actual: &serde_json::Value,
) -> Option<String> {
    let path = expected_dir.join(format!("{name}.json"));
    let pretty = serde_json::to_string_pretty(actual).unwrap_or_default() + "\n";
    if std::env::var_os("SWITCHBOARD_UPDATE_EXPECTED").is_some() {
        std::fs::create_dir_all(expected_dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", expected_dir.display()));
        std::fs::write(&path, &pretty)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return None;
    }
    let Ok(expected) = std::fs::read_to_string(&path) else {
        return Some(format!(
            "{name}: no expected file {}; run with SWITCHBOARD_UPDATE_EXPECTED=1, then review it",
            path.display()
        ));
    };
    let expected: serde_json::Value = match serde_json::from_str(&expected) {
        Ok(value) => value,
        Err(e) => return Some(format!("{name}: {} is not JSON: {e}", path.display())),
    };
    if &expected == actual {
        None
    } else {
        Some(format!(
            "{name}: normalised form differs from {}:\n{pretty}",
            path.display()
        ))
    }
}
