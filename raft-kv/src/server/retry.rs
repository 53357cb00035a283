//! Which proposals a follower may re-send to a new leader ([`raft_core::Config::retry_safe`]):
//! writes carrying a client session, since the state machine applies a session's write
//! once however often it is proposed.

use serde::Deserialize;

use crate::SessionRequest;

/// The head of a runtime log record holding a [`crate::Command`]: the record's variant
/// (0: a command, in `raft-runtime`'s envelope), then the command's first two fields. Postcard
/// encodes structs and tuples as the concatenation of their fields, so the head decodes from
/// the front of the entry without reading the rest.
#[derive(Deserialize)]
struct CommandHead {
    variant: u32,
    _now_ms: u64,
    session: Option<SessionRequest>,
}

/// True for a log entry that is a key-value write under a client session. Anything else
/// (undecodable bytes, address book records, writes without a session) is not re-sent.
pub fn carries_session(entry: &[u8]) -> bool {
    postcard::take_from_bytes::<CommandHead>(entry)
        .is_ok_and(|(head, _)| head.variant == 0 && head.session.is_some())
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::*;
    use crate::Command;

    /// The shape of `raft-runtime`'s log record (its envelope is crate-private).
    #[derive(Serialize)]
    enum Record<'a> {
        Command(&'a Command),
        #[allow(dead_code)]
        Peers(Vec<u64>),
    }

    /// Goal: session writes are retry-safe, sessionless writes and other records are not.
    #[test]
    fn only_session_writes_are_retry_safe() {
        let plain = Command::put("k", "v", 7);
        let session = plain.clone().with_session(42, 3);
        let encode = |c: &Command| postcard::to_stdvec(&Record::Command(c)).unwrap();
        assert!(carries_session(&encode(&session)));
        assert!(!carries_session(&encode(&plain)));
        let peers = postcard::to_stdvec(&Record::Peers(vec![1, 2])).unwrap();
        assert!(!carries_session(&peers));
        assert!(!carries_session(b""));
        assert!(!carries_session(&[0xff; 3]));
    }
}
