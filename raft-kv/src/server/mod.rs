//! The cluster server and its clients (feature `server`, on by default): the HTTP API over
//! a replicated node, the CLI client, the load generator and the local dev cluster.
//!
//! - [`backend`]: the [`backend::KvBackend`] trait the HTTP layer is written against.
//! - [`http`]: routes, limits and error mapping ([`error`]), JSON bodies ([`wire`]).
//! - [`node`]: the backend over a real `raft-runtime` node; [`serve`] runs one.
//! - [`config`]: `serve` settings from flags, environment and a TOML file.
//! - [`client`]: keep-alive connections and a leader-following, retrying cluster client.
//! - [`bench`](mod@bench): the load generator; [`devcluster`]: three local nodes as child processes.
//! - [`failover`]: the failover benchmark (`bench --kill-leader-every`).
//! - [`prom`]: Prometheus text output.
//! - Security: [`auth`] (bearer tokens, roles, session ownership), [`tls`] (rustls
//!   configurations), [`limits`] (connections, timeouts, body memory), [`credentials`] (what
//!   clients present, and where the CLI finds it), [`devcerts`] (throwaway dev credentials).
//! - [`retry`]: which forwarded writes a follower re-sends to a new leader.
//! - [`sabotage`]: the planted bug of the test-only `--unsafe-ack-before-fsync`.
//! - [`watch`]: the watch API, streaming changes from the replicated history;
//!   [`watch_client`]: a watcher that follows the stream across nodes.

pub mod auth;
pub mod backend;
pub mod bench;
pub mod bench_errors;
pub mod client;
pub mod config;
pub mod cpu;
pub mod credentials;
pub mod devcerts;
pub mod devcluster;
pub mod diagnose;
pub mod error;
pub mod failover;
mod forward;
pub mod http;
pub mod limits;
pub mod members;
pub mod newline;
pub mod node;
pub mod prom;
pub mod retry;
pub mod sabotage;
pub mod serve;
pub mod tls;
pub mod watch;
pub mod watch_client;
pub mod wire;

#[cfg(test)]
mod tests;
