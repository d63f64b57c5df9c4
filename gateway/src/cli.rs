//! Command line: `serve` (the default), `chat`, `bot eval`. The binary's
//! edge, so errors are `anyhow` here and printed with what to do next.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use switchboard_model::Platform;

use crate::config::Settings;
use crate::startup::Application;

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Webhook bot gateway for shops: Messenger, WhatsApp, Telegram"
)]
pub struct Cli {
    /// Configuration file (TOML). Without one the demo runs on embedded defaults.
    #[arg(long, short, global = true, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Chat with a running gateway as a customer on one platform.
    Chat(ChatArgs),
    /// Stand in for the platforms: signed webhooks in, fake send APIs out, checked replies.
    Simulate(crate::simulate::SimulateArgs),
    /// Assistant tools.
    Bot {
        #[command(subcommand)]
        command: BotCommand,
    },
    /// Admin access tools.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Register, check and remove channels on a running gateway (through
    /// its admin API).
    Channels(crate::channels::client::ChannelsArgs),
    /// Probe a running gateway (container health checks): exit 0 when healthy.
    Healthcheck(crate::healthcheck::HealthcheckArgs),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Make a new random admin token and print it with the config lines
    /// that hold its SHA-256 (the config never needs the token itself).
    Token {
        /// Name shown in the audit log.
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value_t = RoleArg::ReadOnly)]
        role: RoleArg,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    ReadOnly,
    Operator,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PlatformArg {
    Telegram,
    Messenger,
    Whatsapp,
}

impl From<PlatformArg> for Platform {
    fn from(value: PlatformArg) -> Self {
        match value {
            PlatformArg::Telegram => Platform::Telegram,
            PlatformArg::Messenger => Platform::Messenger,
            PlatformArg::Whatsapp => Platform::WhatsApp,
        }
    }
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    #[arg(long, value_enum)]
    pub platform: PlatformArg,
    /// Public URL of the running gateway.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
    /// Channel id to write to (default: the demo channel of the platform).
    #[arg(long)]
    pub channel: Option<String>,
    /// Secret that signs the webhooks (Meta app secret or Telegram secret
    /// token; default: the demo channel's development secret).
    #[arg(long, env = "SWITCHBOARD_CHAT_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Customer id to chat as (default: a fixed demo customer).
    #[arg(long)]
    pub user: Option<String>,
    /// Customer display name.
    #[arg(long, default_value = "Demo Customer")]
    pub name: String,
    /// Seconds to wait for replies after each message.
    #[arg(long, default_value_t = 3)]
    pub wait: u64,
}

#[derive(Debug, Subcommand)]
pub enum BotCommand {
    /// Measure intent accuracy on labelled utterances (`text<TAB>intent`).
    Eval(EvalArgs),
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Labelled data: one `text<TAB>intent` per line, `#` for comments.
    #[arg(long)]
    pub data: PathBuf,
    /// Exit non-zero when accuracy is below this (0..1).
    #[arg(long)]
    pub min_accuracy: Option<f64>,
    /// Shop file whose products and stores the utterances mention (default: the demo shop).
    #[arg(long)]
    pub shop: Option<PathBuf>,
}

pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config.as_deref()),
        Command::Chat(args) => runtime().and_then(|rt| rt.block_on(crate::chat::run(args))),
        Command::Simulate(args) => runtime().and_then(|rt| rt.block_on(crate::simulate::run(args))),
        Command::Admin {
            command: AdminCommand::Token { name, role },
        } => admin_token(&name, role),
        Command::Bot {
            command: BotCommand::Eval(args),
        } => eval(&args),
        Command::Channels(args) => runtime().and_then(|rt| {
            rt.block_on(crate::channels::client::run(&args, &mut std::io::stdout()))
        }),
        Command::Healthcheck(args) => Ok(crate::healthcheck::run(&args)),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            #[allow(clippy::print_stderr)] // The binary's edge: tell the person.
            {
                eprintln!("error: {error:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn serve(config: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(config)?;
    crate::telemetry::init(settings.server.log_format, &settings.server.log_level);
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    if settings.demo {
        tracing::info!(
            "no channels configured: running the demo (demo channels, demo shop, sandbox); \
             try `switchboard chat --platform whatsapp` in another terminal"
        );
    }
    let runtime = runtime()?;
    runtime.block_on(async move {
        let app = Application::build(settings).await?;
        app.run_until_stopped().await
    })?;
    crate::otel::shutdown();
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)] // Output for a person to copy.
fn admin_token(name: &str, role: RoleArg) -> anyhow::Result<ExitCode> {
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("no randomness available: {e}"))?;
    let token = format!("sbat_{}", hex::encode(random));
    let digest = hex::encode(crate::config::AdminToken::digest(&token));
    let role = match role {
        RoleArg::ReadOnly => "read-only",
        RoleArg::Operator => "operator",
    };
    println!("token (give it to the client; it is not stored anywhere):\n  {token}\n");
    println!("config (add to the [server] section's file):\n");
    println!(
        "[[server.admin_tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{digest}\""
    );
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)] // A report for a person.
fn eval(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let data = std::fs::read_to_string(&args.data)
        .with_context(|| format!("cannot read --data {}", args.data.display()))?;
    let shop = match &args.shop {
        Some(path) => switchboard_core::shop::Shop::from_path(path)
            .with_context(|| format!("--shop {} is not a valid shop file", path.display()))?,
        None => switchboard_core::shop::Shop::demo(),
    };
    let report = switchboard_core::eval::evaluate(&data, &shop).with_context(|| {
        format!(
            "--data {} is not labelled data (text<TAB>intent per line)",
            args.data.display()
        )
    })?;
    println!("{report}");
    if let Some(min) = args.min_accuracy {
        if report.accuracy < min {
            println!(
                "FAIL: accuracy {:.4} is below --min-accuracy {min:.4}",
                report.accuracy
            );
            return Ok(ExitCode::FAILURE);
        }
        println!("OK: accuracy {:.4} >= {min:.4}", report.accuracy);
    }
    Ok(ExitCode::SUCCESS)
}
