//! Behaviour tests of the key-value state machine, as a client or the host would observe it.

mod history;
mod model;
mod operations;
mod sessions;
mod snapshots;
mod support;
