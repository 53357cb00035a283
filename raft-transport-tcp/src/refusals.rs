//! Refused inbound connections: which counter each refusal goes to, and logging them once
//! per change of state per remote address rather than once per attempt (a misconfigured
//! peer retries every couple of seconds; a scanner may try thousands of times).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use crate::error::{ConnectionError, HandshakeError};
use crate::metrics::TransportCounters;

/// Addresses remembered; beyond it the memory is cleared, so a flood of addresses costs a
/// few extra log lines, never unbounded memory.
const REMEMBERED_ADDRESSES_MAX: usize = 1024;

/// What kind of refusal an error is, for the log and the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The TLS handshake failed.
    Tls,
    /// A TLS peer claimed an id its certificate does not name.
    IdentityMismatch,
    /// Too slow.
    TimedOut,
    /// Closed to make room.
    Evicted,
    /// No room for this connection.
    OverCapacity,
    /// Anything else: a bad or unacceptable hello, or the connection failed.
    Other,
}

impl Refusal {
    /// Classifies a handshake error.
    pub(crate) fn of(error: &ConnectionError) -> Refusal {
        match error {
            ConnectionError::Tls(_) => Refusal::Tls,
            ConnectionError::Handshake(HandshakeError::IdentityMismatch { .. }) => {
                Refusal::IdentityMismatch
            }
            ConnectionError::Handshake(HandshakeError::PeerLaneFull { .. }) => {
                Refusal::OverCapacity
            }
            ConnectionError::Timeout(_) => Refusal::TimedOut,
            ConnectionError::Evicted => Refusal::Evicted,
            _ => Refusal::Other,
        }
    }

    /// Counts the refusal: in `handshakes_rejected` and in its own counter, if any.
    pub(crate) fn count(self, counters: &TransportCounters) {
        crate::metrics::bump(&counters.handshakes_rejected);
        let specific: Option<&AtomicU64> = match self {
            Refusal::Tls => Some(&counters.tls_handshakes_failed),
            Refusal::IdentityMismatch => Some(&counters.identity_mismatches),
            Refusal::TimedOut => Some(&counters.handshakes_timed_out),
            Refusal::Evicted => Some(&counters.handshakes_evicted),
            Refusal::OverCapacity => Some(&counters.connections_over_capacity),
            Refusal::Other => None,
        };
        if let Some(counter) = specific {
            crate::metrics::bump(counter);
        }
    }
}

/// The last refusal logged per remote address.
#[derive(Debug, Default)]
pub(crate) struct RefusalLog {
    last: Mutex<BTreeMap<IpAddr, Refusal>>,
}

impl RefusalLog {
    /// Whether a refusal of `kind` from `ip` is news (log it at warn) or a repeat of the
    /// last one logged for that address (log it at debug).
    pub(crate) fn is_news(&self, ip: IpAddr, kind: Refusal) -> bool {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if last.len() >= REMEMBERED_ADDRESSES_MAX && !last.contains_key(&ip) {
            last.clear();
        }
        last.insert(ip, kind) != Some(kind)
    }

    /// A connection from `ip` was admitted: its next refusal is news again.
    pub(crate) fn admitted(&self, ip: IpAddr) {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        last.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: repeated refusals of one kind from one address are logged once; a new kind,
    /// or a refusal after a success, is logged again.
    #[test]
    fn refusals_are_news_once_per_state_change() {
        let log = RefusalLog::default();
        let (a, b) = (IpAddr::from([127, 0, 0, 2]), IpAddr::from([127, 0, 0, 3]));
        assert!(log.is_news(a, Refusal::Tls));
        assert!(!log.is_news(a, Refusal::Tls));
        assert!(log.is_news(b, Refusal::Tls));
        assert!(log.is_news(a, Refusal::IdentityMismatch));
        log.admitted(a);
        assert!(log.is_news(a, Refusal::IdentityMismatch));
    }

    /// Goal: each refusal lands in the total and in its own counter.
    #[test]
    fn refusals_are_counted_by_kind() {
        let counters = TransportCounters::default();
        Refusal::of(&ConnectionError::Evicted).count(&counters);
        Refusal::of(&ConnectionError::Timeout("handshake")).count(&counters);
        let metrics = counters.snapshot(BTreeMap::new());
        assert_eq!(metrics.handshakes_rejected, 2);
        assert_eq!(metrics.handshakes_evicted, 1);
        assert_eq!(metrics.handshakes_timed_out, 1);
        assert_eq!(metrics.tls_handshakes_failed, 0);
    }
}
