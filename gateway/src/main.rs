//! `switchboard`: see `switchboard --help`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = switchboard::cli::Cli::parse();
    switchboard::cli::run(cli)
}
