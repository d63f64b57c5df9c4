//! `switchboard`: see `switchboard --help`.

use clap::Parser;

// glibc malloc spent about a quarter of the gateway's CPU under load, in
// lock contention between the HTTP threads that allocate an event and the
// pipeline threads that free it, and fragmented (docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = switchboard::cli::Cli::parse();
    switchboard::cli::run(cli)
}
