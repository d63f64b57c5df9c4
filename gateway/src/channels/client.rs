//! `switchboard channels ...`: the operator's side. It talks to a running
//! gateway's admin API (`--admin-url`, `--admin-token`), which does the
//! platform calls and keeps the channel, and prints each step as it is
//! reported, the URLs and tokens to paste into dashboards, and what to do
//! when something fails.
//!
//! Secrets are taken from flags, environment variables, or `@FILE` (the
//! flag's value names a file holding the secret), so they need not appear
//! in shell history or `ps`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

#[derive(Debug, Args)]
pub struct ChannelsArgs {
    /// The running gateway's admin listener.
    #[arg(
        long,
        global = true,
        env = "SWITCHBOARD_ADMIN_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub admin_url: String,
    /// An admin token (role operator to add or remove), or @FILE.
    #[arg(
        long,
        global = true,
        env = "SWITCHBOARD_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,

    #[command(subcommand)]
    pub command: ChannelsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ChannelsCommand {
    /// Register a channel: calls the platform, stores the channel (sealed)
    /// and activates it on every replica.
    Add {
        #[command(subcommand)]
        platform: AddCommand,
    },
    /// List every channel with where it is defined.
    List,
    /// Ask the platform whether the channel's webhook is healthy
    /// (exit status 1 when it is not).
    Check { id: String },
    /// Unregister a channel added with `channels add` (config-file channels
    /// are changed in the file).
    Remove {
        id: String,
        /// Telegram: also drop the updates waiting for delivery.
        #[arg(long)]
        drop_pending_updates: bool,
        /// Leave the webhook / subscription on the platform as it is.
        #[arg(long)]
        keep_webhook: bool,
        /// Remove the channel even if the platform call fails.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct CommonAdd {
    /// Channel id: 1-64 of A-Z a-z 0-9 _ - (appears in the webhook URL).
    #[arg(long)]
    pub id: String,
    /// HTTPS base URL the platform reaches the gateway at (default:
    /// registration.public_url in the gateway's config).
    #[arg(long)]
    pub public_url: Option<String>,
    /// Register again over an existing run-time channel (new secrets).
    #[arg(long)]
    pub replace: bool,
}

#[derive(Debug, Subcommand)]
pub enum AddCommand {
    /// A Telegram bot: calls getMe and setWebhook (secret token generated).
    Telegram {
        #[command(flatten)]
        common: CommonAdd,
        /// The bot token from @BotFather, or @FILE.
        #[arg(long, env = "SWITCHBOARD_BOT_TOKEN", hide_env_values = true)]
        bot_token: String,
        /// Simultaneous connections Telegram may open (1-100).
        #[arg(long)]
        max_connections: Option<u32>,
        /// Drop updates Telegram queued before this registration.
        #[arg(long)]
        drop_pending_updates: bool,
    },
    /// A Facebook Page: subscribes it to the app; prints the callback URL
    /// and verify token for the App Dashboard.
    Messenger {
        #[command(flatten)]
        common: CommonAdd,
        /// The Meta app's App Secret, or @FILE.
        #[arg(long, env = "SWITCHBOARD_APP_SECRET", hide_env_values = true)]
        app_secret: String,
        /// A Page access token, or @FILE.
        #[arg(long, env = "SWITCHBOARD_PAGE_ACCESS_TOKEN", hide_env_values = true)]
        page_access_token: String,
        /// The Page's numeric id.
        #[arg(long)]
        page_id: String,
        /// Verify token for the dashboard (default: a random one), or @FILE.
        #[arg(long)]
        verify_token: Option<String>,
        /// Message tag for human replies after the 24-hour window (e.g. HUMAN_AGENT).
        #[arg(long)]
        outside_window_tag: Option<String>,
        /// Do not call subscribed_apps (the token lacks pages_manage_metadata).
        #[arg(long)]
        no_subscribe: bool,
    },
    /// A WhatsApp number: subscribes its business account to the app;
    /// prints the callback URL and verify token for the App Dashboard.
    Whatsapp {
        #[command(flatten)]
        common: CommonAdd,
        /// The Meta app's App Secret, or @FILE.
        #[arg(long, env = "SWITCHBOARD_APP_SECRET", hide_env_values = true)]
        app_secret: String,
        /// A system-user access token, or @FILE.
        #[arg(long, env = "SWITCHBOARD_ACCESS_TOKEN", hide_env_values = true)]
        access_token: String,
        /// The Phone number ID (WhatsApp > API Setup).
        #[arg(long)]
        phone_number_id: String,
        /// The WhatsApp Business Account ID (WhatsApp > API Setup).
        #[arg(long)]
        waba_id: Option<String>,
        /// Verify token for the dashboard (default: a random one), or @FILE.
        #[arg(long)]
        verify_token: Option<String>,
        /// Approved template sent instead of a free-form reply after 24 h.
        #[arg(long)]
        outside_window_template: Option<String>,
        /// The template's language code.
        #[arg(long, default_value = "en_US")]
        template_language: String,
        /// Do not call subscribed_apps.
        #[arg(long)]
        no_subscribe: bool,
    },
}

/// A flag's value, or the trimmed content of the file it names as `@FILE`.
fn secret(flag: &str, value: &str) -> anyhow::Result<String> {
    let value = match value.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(Path::new(path))
            .with_context(|| format!("--{flag} @{path}: cannot read the file"))?
            .trim()
            .to_owned(),
        None => value.trim().to_owned(),
    };
    if value.is_empty() {
        bail!("--{flag} is empty");
    }
    Ok(value)
}

fn add_body(platform: &AddCommand) -> anyhow::Result<(String, Value)> {
    let mut body = Map::new();
    let common = match platform {
        AddCommand::Telegram {
            common,
            bot_token,
            max_connections,
            drop_pending_updates,
        } => {
            body.insert("platform".into(), json!("telegram"));
            body.insert("bot_token".into(), json!(secret("bot-token", bot_token)?));
            if let Some(max) = max_connections {
                body.insert("max_connections".into(), json!(max));
            }
            body.insert("drop_pending_updates".into(), json!(drop_pending_updates));
            common
        }
        AddCommand::Messenger {
            common,
            app_secret,
            page_access_token,
            page_id,
            verify_token,
            outside_window_tag,
            no_subscribe,
        } => {
            body.insert("platform".into(), json!("messenger"));
            body.insert(
                "app_secret".into(),
                json!(secret("app-secret", app_secret)?),
            );
            body.insert(
                "page_access_token".into(),
                json!(secret("page-access-token", page_access_token)?),
            );
            body.insert("page_id".into(), json!(page_id.trim()));
            if let Some(token) = verify_token {
                body.insert("verify_token".into(), json!(secret("verify-token", token)?));
            }
            if let Some(tag) = outside_window_tag {
                body.insert("outside_window_tag".into(), json!(tag));
            }
            body.insert("subscribe".into(), json!(!no_subscribe));
            common
        }
        AddCommand::Whatsapp {
            common,
            app_secret,
            access_token,
            phone_number_id,
            waba_id,
            verify_token,
            outside_window_template,
            template_language,
            no_subscribe,
        } => {
            body.insert("platform".into(), json!("whatsapp"));
            body.insert(
                "app_secret".into(),
                json!(secret("app-secret", app_secret)?),
            );
            body.insert(
                "access_token".into(),
                json!(secret("access-token", access_token)?),
            );
            body.insert("phone_number_id".into(), json!(phone_number_id.trim()));
            if let Some(waba) = waba_id {
                body.insert("waba_id".into(), json!(waba.trim()));
            }
            if let Some(token) = verify_token {
                body.insert("verify_token".into(), json!(secret("verify-token", token)?));
            }
            if let Some(name) = outside_window_template {
                body.insert(
                    "outside_window_template".into(),
                    json!({"name": name, "language": template_language}),
                );
            }
            body.insert("subscribe".into(), json!(!no_subscribe));
            common
        }
    };
    body.insert("id".into(), json!(common.id));
    if let Some(url) = &common.public_url {
        body.insert("public_url".into(), json!(url));
    }
    body.insert("replace".into(), json!(common.replace));
    Ok((common.id.clone(), Value::Object(body)))
}

struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl AdminClient {
    fn new(args: &ChannelsArgs) -> anyhow::Result<Self> {
        let token = match &args.admin_token {
            Some(token) => secret("admin-token", token)?,
            None => bail!(
                "no admin token: pass --admin-token TOKEN (or @FILE) or set SWITCHBOARD_ADMIN_TOKEN; \
                 adding and removing channels needs a token with role = \"operator\""
            ),
        };
        let base = args.admin_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--admin-url {base} is not an http(s) URL");
        }
        let http = reqwest::Client::builder()
            // Platform calls happen while the request waits.
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("cannot build an HTTP client")?;
        Ok(Self { http, base, token })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|error| {
            let kind = if error.is_connect() {
                "connection refused"
            } else if error.is_timeout() {
                "timed out"
            } else {
                "request failed"
            };
            anyhow::anyhow!(
                "cannot reach the gateway's admin listener at {} ({kind}); is the gateway running, and is --admin-url (server.admin_bind) right?",
                self.base
            )
        })?;
        let status = response.status().as_u16();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        match status {
            401 => bail!(
                "the gateway refused the admin token; pass a valid one with --admin-token or SWITCHBOARD_ADMIN_TOKEN"
            ),
            403 => bail!(
                "the admin token is read-only; adding and removing channels needs a token with role = \"operator\""
            ),
            404 if value.is_null() => bail!(
                "the gateway at {} has no channel registration API; is it an older version?",
                self.base
            ),
            _ => Ok((status, value)),
        }
    }
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

fn print_steps(out: &mut dyn Write, answer: &Value) -> std::io::Result<()> {
    for step in answer["steps"].as_array().into_iter().flatten() {
        let mark = match text(&step["status"]) {
            "ok" => "[ok]     ",
            "skipped" => "[skipped]",
            _ => "[FAILED] ",
        };
        writeln!(
            out,
            "  {mark} {}: {}",
            text(&step["step"]),
            text(&step["detail"])
        )?;
    }
    Ok(())
}

fn print_error(out: &mut dyn Write, answer: &Value) -> std::io::Result<()> {
    writeln!(out, "error: {}", text(&answer["error"]))?;
    if let Some(hint) = answer["hint"].as_str() {
        writeln!(out, "hint: {hint}")?;
    }
    Ok(())
}

/// Runs a `channels` command, writing the report to `out`.
pub async fn run(args: &ChannelsArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let client = AdminClient::new(args)?;
    match &args.command {
        ChannelsCommand::Add { platform } => add(&client, platform, out).await,
        ChannelsCommand::List => list(&client, out).await,
        ChannelsCommand::Check { id } => check(&client, id, out).await,
        ChannelsCommand::Remove {
            id,
            drop_pending_updates,
            keep_webhook,
            force,
        } => {
            let path = format!(
                "/admin/channels/{}?drop_pending_updates={drop_pending_updates}&keep_webhook={keep_webhook}&force={force}",
                url_segment(id)
            );
            writeln!(out, "Removing channel '{id}' through {}", client.base)?;
            let (status, answer) = client.call(reqwest::Method::DELETE, &path, None).await?;
            print_steps(out, &answer)?;
            if status != 200 {
                print_error(out, &answer)?;
                return Ok(ExitCode::FAILURE);
            }
            writeln!(out, "Channel '{id}' removed.")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Percent-encodes an id for a path segment (valid ids need none; a typo
/// must not turn into another route).
fn url_segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

async fn add(
    client: &AdminClient,
    platform: &AddCommand,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let (id, body) = add_body(platform)?;
    let name = text(&body["platform"]).to_owned();
    writeln!(
        out,
        "Registering {name} channel '{id}' through the gateway at {}",
        client.base
    )?;
    let (status, answer) = client
        .call(reqwest::Method::POST, "/admin/channels", Some(&body))
        .await?;
    print_steps(out, &answer)?;
    if status != 201 {
        print_error(out, &answer)?;
        return Ok(ExitCode::FAILURE);
    }
    writeln!(out)?;
    if let Some(url) = answer["webhook_url"].as_str() {
        writeln!(out, "Webhook URL:    {url}")?;
    }
    if let Some(url) = answer["callback_url"].as_str() {
        writeln!(out, "Callback URL:   {url}")?;
    }
    if let Some(token) = answer["verify_token"].as_str() {
        writeln!(out, "Verify token:   {token}")?;
    }
    if let Some(next) = answer["next"].as_array() {
        writeln!(out, "\nNext:")?;
        for (n, line) in next.iter().enumerate() {
            writeln!(out, "  {}. {}", n + 1, text(line))?;
        }
    }
    if name == "telegram" {
        writeln!(out)?;
        return check(client, &id, out).await;
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(client: &AdminClient, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let (status, answer) = client
        .call(reqwest::Method::GET, "/admin/channels", None)
        .await?;
    if status != 200 {
        print_error(out, &answer)?;
        return Ok(ExitCode::FAILURE);
    }
    writeln!(
        out,
        "{:<24} {:<10} {:<7} WEBHOOK PATH",
        "ID", "PLATFORM", "SOURCE"
    )?;
    for channel in answer["channels"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "{:<24} {:<10} {:<7} {}",
            text(&channel["id"]),
            text(&channel["platform"]),
            channel["source"].as_str().unwrap_or("config"),
            text(&channel["webhook_path"]),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn check(client: &AdminClient, id: &str, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    writeln!(out, "Checking channel '{id}' with its platform")?;
    let path = format!("/admin/channels/{}/check", url_segment(id));
    let (status, answer) = client.call(reqwest::Method::GET, &path, None).await?;
    print_steps(out, &answer)?;
    if status != 200 {
        print_error(out, &answer)?;
        return Ok(ExitCode::FAILURE);
    }
    if let Some(webhook) = answer.get("webhook").filter(|w| w.is_object()) {
        writeln!(
            out,
            "  webhook url:      {}",
            webhook["url"]
                .as_str()
                .filter(|u| !u.is_empty())
                .unwrap_or("(none)")
        )?;
        match answer["url_matches"].as_bool() {
            Some(true) => writeln!(out, "  matches gateway:  yes")?,
            Some(false) => writeln!(
                out,
                "  matches gateway:  NO (expected {})",
                text(&answer["expected_url"])
            )?,
            None => writeln!(
                out,
                "  matches gateway:  unknown (set registration.public_url to compare)"
            )?,
        }
        writeln!(
            out,
            "  pending updates:  {}",
            webhook["pending_update_count"].as_u64().unwrap_or(0)
        )?;
        writeln!(
            out,
            "  last error:       {}",
            webhook["last_error_message"].as_str().unwrap_or("none")
        )?;
    }
    if let Some(subscribed) = answer["subscribed"].as_bool() {
        writeln!(
            out,
            "  subscribed:       {}",
            if subscribed { "yes" } else { "NO" }
        )?;
        for app in answer["subscribed_apps"].as_array().into_iter().flatten() {
            let name = app["name"]
                .as_str()
                .or_else(|| {
                    app.pointer("/whatsapp_business_api_data/name")
                        .and_then(Value::as_str)
                })
                .unwrap_or("?");
            let fields: Vec<&str> = app["subscribed_fields"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if fields.is_empty() {
                writeln!(out, "    app {name}")?;
            } else {
                writeln!(out, "    app {name}: {}", fields.join(", "))?;
            }
        }
    }
    let problems: Vec<&str> = answer["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if problems.is_empty() {
        writeln!(out, "Healthy.")?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "Problems:")?;
    for problem in problems {
        writeln!(out, "  - {problem}")?;
    }
    Ok(ExitCode::FAILURE)
}
