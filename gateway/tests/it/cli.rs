//! The binary's command line: `bot eval` exit codes and output, config
//! errors that name the key.

use std::process::Command;

fn switchboard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
}

fn eval_data() -> String {
    format!(
        "{}/../core-bot/data/nlu_eval.tsv",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn bot_eval_reports_accuracy_and_passes_the_shipped_threshold() {
    let output = switchboard()
        .args([
            "bot",
            "eval",
            "--data",
            &eval_data(),
            "--min-accuracy",
            "0.95",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.to_lowercase().contains("accuracy"), "{stdout}");
    assert!(
        stdout.contains("store_hours"),
        "per-intent lines expected: {stdout}"
    );
}

#[test]
fn bot_eval_exits_non_zero_below_the_threshold() {
    let dir = std::env::temp_dir().join(format!("switchboard-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("wrong.tsv");
    // Deliberately mislabelled: the assistant is right, the labels are not.
    std::fs::write(
        &data,
        "when do you open tomorrow\tcomplaint\nhello there\trefund_request\n",
    )
    .unwrap();
    let output = switchboard()
        .args([
            "bot",
            "eval",
            "--data",
            data.to_str().unwrap(),
            "--min-accuracy",
            "0.5",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bot_eval_on_a_missing_file_says_which() {
    let output = switchboard()
        .args(["bot", "eval", "--data", "/nonexistent/x.tsv"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/x.tsv"));
}

#[test]
fn an_invalid_config_stops_start_up_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("switchboard-cli-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[server]\nbind = \"not an address\"\n").unwrap();
    let output = switchboard()
        .args(["serve", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("server.bind"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
