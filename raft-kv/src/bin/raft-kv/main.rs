//! `raft-kv`: the replicated key-value store's server, local dev cluster, CLI client and
//! load generator in one binary. Run `raft-kv --help` (or `raft-kv <command> --help`).

// A command-line tool: its output is printed on stdout by design.
#![allow(clippy::print_stdout)]

mod cli;
mod failover;
mod run;
mod watch_cmd;

use std::io::IsTerminal;

use clap::Parser;

/// mimalloc instead of the system allocator: the server allocates small buffers per request
/// and per message on several threads, where glibc malloc spent ~10% of the leader's CPU
/// (free-list consolidation and locking) in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    // A server logs its milestones at info (started, role changes, URL registered,
    // stopped); per-peer bookkeeping that repeats for every peer and every address record
    // stays at debug unless RUST_LOG asks for it.
    let default_level = if args.command.is_server() {
        "info,raft_transport_tcp::tcp=warn,raft_runtime::apply=warn,raft_storage_file=warn"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run::run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
