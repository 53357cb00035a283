//! `raft-kv watch PREFIX [--from-revision R]`: prints every change under a prefix as it
//! happens, following the stream to another node when one fails.

use std::io::Write;
use std::time::Duration;

use raft_kv::server::client::ClientOptions;
use raft_kv::server::watch_client::Watcher;
use raft_kv::server::wire::{WatchEvent, WatchEventKind};

use crate::cli::ClientArgs;
use crate::run::CommandError;

/// Runs until interrupted, or until no node can serve the watch for `--retry-secs`.
pub(crate) async fn watch(
    args: &ClientArgs,
    prefix: &str,
    from_revision: Option<u64>,
) -> Result<(), CommandError> {
    let options = ClientOptions {
        retry_for: Duration::from_secs(args.retry_secs),
        ..ClientOptions::default()
    };
    let mut watcher = Watcher::new(&args.endpoints, prefix, from_revision, options)?;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let event = tokio::select! {
            event = watcher.next() => event,
            _ = &mut interrupted => return Ok(()),
        };
        let event = event.map_err(|error| -> CommandError {
            let resume = watcher.next_revision().map_or(String::new(), |r| {
                format!(" (resume with --from-revision {r})")
            });
            format!("{error}{resume}").into()
        })?;
        print_event(args.json, &event)?;
    }
}

fn print_event(json: bool, event: &WatchEvent) -> Result<(), CommandError> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, event)?;
        out.write_all(b"\n")?;
    } else {
        let key = event.key.as_ref().or(event.key_base64.as_ref());
        let key = key.map_or("", String::as_str);
        match event.kind {
            WatchEventKind::Put => {
                let value = event.value.as_ref().or(event.value_base64.as_ref());
                let value = value.map_or("", String::as_str);
                writeln!(out, "{}\tput\t{key}\t{value}", event.revision)?;
            }
            _ => writeln!(out, "{}\tdelete\t{key}", event.revision)?,
        }
    }
    out.flush()?;
    Ok(())
}
