//! `switchboard healthcheck`: the container's own probe, so an image needs
//! no curl or wget. Liveness GETs the public listener's `/healthz`;
//! `--ready` GETs the admin listener's `/readyz` with an admin token (a
//! read-only one is enough). Exit status 0 when the answer is 200.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// Liveness URL (the public listener's /healthz).
    #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
    pub url: String,
    /// Check readiness instead: GET {admin-url}/readyz with the admin token.
    #[arg(long)]
    pub ready: bool,
    /// The admin listener (for --ready).
    #[arg(
        long,
        env = "SWITCHBOARD_ADMIN_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub admin_url: String,
    /// Admin token for --ready, or @FILE (e.g. @/run/secrets/probe_token).
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Accept a self-signed certificate (an https:// listener on loopback).
    #[arg(long)]
    pub insecure: bool,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3)]
    pub timeout: u64,
}

/// Probes once; `Ok(message)` when healthy.
pub async fn probe(args: &HealthcheckArgs) -> anyhow::Result<String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout.max(1)))
        .danger_accept_invalid_certs(args.insecure)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot build an HTTP client")?;
    let (url, request) = if args.ready {
        let token = match &args.admin_token {
            Some(value) => match value.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("--admin-token @{path}: cannot read the file"))?
                    .trim()
                    .to_owned(),
                None => value.trim().to_owned(),
            },
            None => bail!("--ready needs --admin-token (or @FILE, or SWITCHBOARD_ADMIN_TOKEN)"),
        };
        let url = format!("{}/readyz", args.admin_url.trim_end_matches('/'));
        (url.clone(), http.get(url).bearer_auth(token))
    } else {
        (args.url.clone(), http.get(&args.url))
    };
    let response = request.send().await.map_err(|e| {
        anyhow::anyhow!(
            "{url}: no answer ({})",
            if e.is_timeout() {
                "timed out"
            } else {
                "connection failed"
            }
        )
    })?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let body = body.trim();
    if status.is_success() {
        Ok(format!("{url}: {} {body}", status.as_u16()))
    } else {
        bail!("{url}: {} {body}", status.as_u16())
    }
}

#[allow(clippy::print_stdout, clippy::print_stderr)] // A probe's one line.
pub fn run(args: &HealthcheckArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("unhealthy: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(probe(args)) {
        Ok(message) => {
            println!("healthy: {message}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("unhealthy: {error:#}");
            ExitCode::FAILURE
        }
    }
}
