//! Observability that cannot drift: every metric a running gateway exposes
//! is documented with its labels in docs/OBSERVABILITY.md (and nothing
//! documented is missing), labels are closed sets, the alert rules and the
//! Grafana dashboard only query series that exist, every alert has a
//! runbook section, and every response carries a request id.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

fn repo_file(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// A gateway that has seen an accepted webhook, a forged one, an
/// unparseable one (dead letter) and sent a reply, so labelled families
/// have samples.
async fn busy_app() -> (TestApp, String) {
    let app = spawn_app().await;
    app.post_telegram("tg", Some(TG_SECRET), &telegram_text(9, "hi"))
        .await;
    app.post_telegram("tg", Some("forged"), &telegram_text(9, "hi"))
        .await;
    app.post_telegram("tg", Some(TG_SECRET), b"{\"update_id\": \"x\"")
        .await;
    app.fake.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let metrics = app.admin_get("/metrics").await.text().await.unwrap();
    (app, metrics)
}

/// Family name -> (type, label names seen on its samples).
fn families(metrics: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut families: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let name = parts.next().unwrap().to_owned();
            let kind = parts.next().unwrap().to_owned();
            families.insert(name, (kind, BTreeSet::new()));
        }
    }
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, labels)) = line.split_once('{') else {
            continue;
        };
        let family = families
            .keys()
            .filter(|f| series.starts_with(f.as_str()))
            .max_by_key(|f| f.len())
            .cloned();
        let Some(family) = family else { continue };
        let labels = labels.split('}').next().unwrap();
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let name = pair.split('=').next().unwrap().trim();
            if name != "le" {
                families.get_mut(&family).unwrap().1.insert(name.to_owned());
            }
        }
    }
    families
}

/// The names a query may use: counters with `_total`, histograms with
/// `_bucket`, `_sum`, `_count`, others as they are.
fn series_names(families: &BTreeMap<String, (String, BTreeSet<String>)>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (family, (kind, _)) in families {
        match kind.as_str() {
            "counter" => {
                names.insert(format!("{family}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{family}{suffix}"));
                }
            }
            _ => {
                names.insert(family.clone());
            }
        }
    }
    names
}

/// The documented name as exposed (`_total` for counters).
fn exposed_name(family: &str, kind: &str) -> String {
    if kind == "counter" {
        format!("{family}_total")
    } else {
        family.to_owned()
    }
}

/// Every `switchboard_*` identifier in a query.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("switchboard_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[tokio::test]
async fn every_exposed_metric_is_documented_with_its_type_and_labels() {
    let (app, metrics) = busy_app().await;
    let families = families(&metrics);
    assert!(families.len() >= 10, "{metrics}");

    let doc = repo_file("docs/OBSERVABILITY.md");
    let mut documented: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for line in doc.lines().filter(|l| l.starts_with("| `switchboard_")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_owned();
        let kind = cells[2].to_owned();
        let labels = cells[3]
            .split(',')
            .map(|l| l.trim().trim_matches('`').to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        documented.insert(name, (kind, labels));
    }

    let mut problems = Vec::new();
    for (family, (kind, labels)) in &families {
        let name = exposed_name(family, kind);
        match documented.get(&name) {
            None => problems.push(format!("{name} ({kind}) is not in docs/OBSERVABILITY.md")),
            Some((doc_kind, doc_labels)) => {
                if doc_kind != kind {
                    problems.push(format!("{name}: documented as {doc_kind}, is {kind}"));
                }
                if !labels.is_subset(doc_labels) {
                    problems.push(format!(
                        "{name}: labels {labels:?}, documented {doc_labels:?}"
                    ));
                }
            }
        }
    }
    let exposed: BTreeSet<String> = families
        .iter()
        .map(|(f, (k, _))| exposed_name(f, k))
        .collect();
    for name in documented.keys() {
        if !exposed.contains(name) {
            problems.push(format!("{name} is documented but not exposed"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");

    // Closed label sets only: nothing that could hold an id or a secret.
    let allowed: BTreeSet<&str> = ["platform", "result", "reason", "queue", "source"].into();
    for (family, (_, labels)) in &families {
        for label in labels {
            assert!(
                allowed.contains(label.as_str()),
                "{family} has label {label}"
            );
        }
    }
    for secret in ALL_SECRETS {
        assert!(!metrics.contains(secret), "secret in /metrics");
    }
    assert!(!metrics.contains("\"tg\""), "a channel id is a label value");
    app.stop().await;
}

#[tokio::test]
async fn alert_rules_and_the_dashboard_query_only_real_series_and_alerts_have_runbooks() {
    let (app, metrics) = busy_app().await;
    let names = series_names(&families(&metrics));
    let runbook = repo_file("docs/RUNBOOK.md").to_lowercase();

    let rules: serde_norway::Value =
        serde_norway::from_str(&repo_file("deploy/prometheus/alerts.yaml")).unwrap();
    let mut exprs = Vec::new();
    let mut alerts = 0;
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let alert = rule["alert"].as_str().unwrap();
            alerts += 1;
            let expr = rule["expr"].as_str().unwrap();
            exprs.push((alert.to_owned(), expr.to_owned()));
            let severity = rule["labels"]["severity"].as_str().unwrap();
            assert!(
                ["critical", "warning", "info"].contains(&severity),
                "{alert}: {severity}"
            );
            let url = rule["annotations"]["runbook_url"].as_str().unwrap();
            let anchor = url.split('#').nth(1).unwrap();
            assert_eq!(anchor, alert.to_lowercase(), "{alert}: {url}");
            assert!(
                runbook.contains(&format!("## {anchor}\n")),
                "docs/RUNBOOK.md has no section for {alert}"
            );
        }
    }
    assert!(alerts >= 8, "{alerts} alerts");
    for topic in [
        "switchboard_webhook_verification_failures_total",
        "switchboard_outbound_sends_total",
        "switchboard_queue_depth",
        "switchboard_dead_letters_total",
    ] {
        assert!(
            exprs.iter().any(|(_, e)| e.contains(topic)),
            "no alert on {topic}"
        );
    }

    let dashboard: Value =
        serde_json::from_str(&repo_file("deploy/grafana/dashboard.json")).unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            exprs.push((
                panel["title"].as_str().unwrap().to_owned(),
                target["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    for (owner, expr) in &exprs {
        for name in metric_names(expr) {
            assert!(
                names.contains(&name),
                "{owner} queries {name}, which /metrics does not expose; known: {names:#?}"
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_keeps_a_callers_one() {
    let app = spawn_app().await;
    let health = app
        .client
        .get(format!("{}/healthz", app.public))
        .send()
        .await
        .unwrap();
    let id = health.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 32, "{id}");

    let given = app
        .client
        .post(format!("{}/webhooks/telegram/tg", app.public))
        .header("X-Request-Id", "edge-lb-0042")
        .header("X-Telegram-Bot-Api-Secret-Token", "forged")
        .body(telegram_text(3, "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(given.status(), 401);
    assert_eq!(given.headers()["x-request-id"], "edge-lb-0042");

    // Also on the admin listener, even when the token is refused.
    let refused = app
        .client
        .get(format!("{}/metrics", app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().contains_key("x-request-id"));
    app.stop().await;
}
