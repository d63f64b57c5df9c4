//! The gateway's configuration loader over arbitrary TOML files: it must
//! refuse or accept, never panic, and neither its errors nor the `Debug`
//! of what it accepted may show a secret the file configured.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use switchboard::config::Settings;

/// One file per fuzzing process, rewritten for every input.
static PATH: LazyLock<PathBuf> = LazyLock::new(|| {
    std::env::temp_dir().join(format!(
        "switchboard-fuzz-config-{}.toml",
        std::process::id()
    ))
});

fuzz_target!(|data: &[u8]| {
    // `*_file` keys read the named file; /dev/zero or a FIFO would hang the
    // fuzzer rather than find a bug (an operator's own config names them).
    let text = String::from_utf8_lossy(data);
    if ["/dev", "/proc", "/sys", "/run", "\\"]
        .iter()
        .any(|prefix| text.contains(prefix))
    {
        return;
    }
    if std::fs::write(&*PATH, data).is_err() {
        return;
    }
    let secrets = switchboard_fuzz::config_secrets(&text);
    match Settings::load_from(Some(&PATH), &[]) {
        Ok(settings) => {
            let debug = format!("{settings:?}");
            for secret in &secrets {
                assert!(
                    !debug.contains(secret.as_str()),
                    "Settings Debug shows {secret:?}: {debug}"
                );
            }
        }
        Err(error) => {
            let shown = format!("{error} {error:?}");
            for secret in &secrets {
                assert!(
                    !shown.contains(secret.as_str()),
                    "a config error shows {secret:?}: {shown}"
                );
            }
        }
    }
});
