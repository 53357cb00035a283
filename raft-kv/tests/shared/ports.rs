//! Ports for test nodes, shared by the test targets that start `raft-kv serve` processes.
//!
//! They come from below Linux's ephemeral range (32768-60999), so the kernel never hands
//! one of them to a client socket, a proxy or another test's `bind(0)` between our check
//! and the node's bind (a port taken that way left a node unable to listen, and its test
//! waiting for a leader that could not appear). Each test process starts at its own offset
//! and counts up; a port some other process holds is skipped.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

const PORTS_FIRST: u32 = 20_000;
const PORTS_COUNT: u32 = 12_000;
static NEXT_PORT: AtomicU32 = AtomicU32::new(0);

/// A port outside the ephemeral range that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    let offset = std::process::id().wrapping_mul(7919) % PORTS_COUNT;
    loop {
        let n = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        let candidate = PORTS_FIRST + (offset + n) % PORTS_COUNT;
        // PORTS_FIRST + PORTS_COUNT = 32,000 fits a u16.
        let port = u16::try_from(candidate).expect("below 32000");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
