//! # raft-kv
//!
//! The replicated key-value store's state machine, [`KvStateMachine`], implementing
//! [`raft_core::StateMachine`]. The library is free of tokio and IO crates so that the
//! simulator (`raft-sim`) and the runtime can both host it; the cluster server binary lives
//! beside it later and adds its own dependencies.
//!
//! ## Data model
//! Keys and values are byte strings ([`bytes::Bytes`]). Every applied mutation takes the log
//! index of its command as its *revision*, so revisions are deterministic, identical on every
//! replica and strictly increasing. The store's global [`KvStateMachine::revision`] is the
//! revision of the last mutation. Each key carries a [`KeyRevision`], as in etcd:
//! `create_revision` (revision that created it since it was last absent), `mod_revision`
//! (revision of its last change) and `version` (number of changes since creation, 1 after
//! creation). A deleted key is gone entirely; writing it again starts a new version count.
//!
//! ## Commands
//! A [`Command`] is `put` or `delete`, each with an optional [`Condition`] (always, key
//! absent, key's mod revision equals `n`, key's value equals `v`): compare-and-set on
//! revision or on value is a conditional put. Each [`Response`] says what happened:
//! `Put`/`Delete` with the new global revision, `ConditionFailed` with the current global
//! revision and the key's current [`KeyRevision`], or `Rejected` with a [`CommandError`] for a
//! command that cannot be carried out (empty key, key or value over the configured limits,
//! session errors). A bad command never panics and never stops the apply loop.
//!
//! ## Client sessions (exactly-once writes)
//! A command may carry a [`SessionRequest`] `(client_id, sequence)`; sequences start at 1 and
//! increase by any step, with one write in flight per client. The state machine keeps, per
//! client, the last applied sequence and its response:
//! - `sequence > last`: the command is applied and its response (whatever it is, including a
//!   `ConditionFailed`, a `Delete` of an absent key or a validation `Rejected`) is stored;
//! - `sequence == last`: a retry; the stored response is returned and nothing is applied
//!   again, even when that response was "empty";
//! - `sequence < last`: [`CommandError::StaleSequence`], nothing applied;
//! - unknown client: a session starts only with `sequence == 1`; any other sequence gets
//!   [`CommandError::SessionUnknown`] (the session expired or was evicted, so a retry can no
//!   longer be recognised: the client must treat that write's outcome as unknown and open a
//!   new session under a new client id).
//!
//! Time comes only from the log: every command carries its proposer's clock in `now_ms`, and
//! the state machine's clock is the maximum `now_ms` applied so far (never a local clock, so
//! every replica expires the same sessions at the same index). Before each command, sessions
//! idle for more than [`KvConfig::session_ttl_ms`] of that clock are dropped. The table holds
//! at most [`KvConfig::sessions_max`] sessions; starting one more evicts the least recently
//! active (ties broken by the smaller client id). Limitation: a retry of a session's very
//! first write (sequence 1) that arrives after its session expired is applied again; keep the
//! TTL far above the clients' retry window. All replicas must run with the same [`KvConfig`].
//!
//! ## Queries
//! [`Query::Get`] returns the value and its [`KeyRevision`]; [`Query::Range`] lists keys with
//! a prefix in key order, at most `limit` of them (clamped to [`KvConfig::range_limit_max`]),
//! optionally after a given key for paging, and says whether more remain.
//!
//! ## Watch history
//! Every change (a put, or a delete of an existing key) is also recorded in a bounded
//! history inside the replicated state ([`history`]), limited by
//! [`KvConfig::history_changes_max`] and [`KvConfig::history_bytes_max`] and saved in
//! snapshots, so every replica holds the same history at the same applied index.
//! [`Query::Changes`] reads it; the server's watch API streams it.
//!
//! ## Snapshots
//! The whole state lives in persistent maps ([`imbl::OrdMap`]), so [`KvStateMachine`]'s
//! `snapshot()` is an O(1) clone that shares structure with the live maps; later applies copy
//! only the O(log n) paths they touch, so writing a snapshot never blocks or slows the apply
//! loop (a `BTreeMap` behind an `Arc` with `make_mut` would instead clone the whole map on
//! the first write after each snapshot). The byte format is described in [`snapshot`].
#![forbid(unsafe_code)]

pub mod command;
mod command_shared;
pub mod config;
pub mod history;
pub mod machine;
pub mod query;
#[cfg(feature = "server")]
pub mod server;
mod session;
pub mod snapshot;
mod store;
mod store_key;

pub use command::{Command, CommandError, Condition, KeyRevision, Op, Response, SessionRequest};
pub use config::{ConfigError, KvConfig};
pub use history::{Change, ChangeKind};
pub use machine::{KvSnapshot, KvStateMachine};
pub use query::{ChangesResponse, GetResponse, KeyValue, Query, QueryResponse, RangeResponse};
