//! Builds a message from script arguments, for injecting forged or malformed messages:
//!
//! ```text
//! send from=2 to=1 term=3 append prev=0@0 entries="1@1:x 2@1 3@2:conf" commit=0
//! send from=2 to=1 term=3 vote last=5@2 [transfer=true] [prevote=true]
//! send from=2 to=1 term=3 vote_response granted=true [prevote=true]
//! send from=2 to=1 term=3 append_response success=true match=4 [hint=3@1]
//! send from=2 to=1 term=3 heartbeat commit=2 round=1
//! send from=2 to=1 term=3 heartbeat_response round=1
//! send from=2 to=1 term=3 timeout_now
//! send from=1 to=2 term=3 snapshot_chunk snap=5@2 offset=0 data="sm:2=x;" done=true
//! ```
//!
//! An entry is `index@term` (a no-op) or `index@term:command`.

use bytes::Bytes;
use goldenscript::Command;
use raft_core::{
    ConflictHint, Entry, EntryPayload, Index, Message, MessageBody, SnapshotMeta, Term,
};

fn parse<T: std::str::FromStr>(value: &str, what: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("bad {what}: {value}"))
}

/// Parses `index@term`.
pub(crate) fn index_at_term(value: &str) -> Result<(Index, Term), String> {
    let (index, term) = value
        .split_once('@')
        .ok_or_else(|| format!("expected index@term, got {value}"))?;
    Ok((parse(index, "index")?, parse(term, "term")?))
}

fn entries(value: &str) -> Result<Vec<Entry>, String> {
    value
        .split_whitespace()
        .map(|item| {
            let (position, command) = match item.split_once(':') {
                Some((position, command)) => (position, Some(command)),
                None => (item, None),
            };
            let (index, term) = index_at_term(position)?;
            let payload = match command {
                Some(command) => EntryPayload::Command(Bytes::from(command.to_string())),
                None => EntryPayload::Noop,
            };
            Ok(Entry {
                index,
                term,
                payload,
            })
        })
        .collect()
}

pub(crate) fn message(command: &Command) -> Result<Message, String> {
    let mut args = command.consume_args();
    let kind = args.next_pos().ok_or("message type missing")?;
    let mut key = |name: &str| args.take_key(name).map(str::to_string);
    let from = parse(&key("from").ok_or("from= missing")?, "from")?;
    let to = parse(&key("to").ok_or("to= missing")?, "to")?;
    let term = parse(&key("term").ok_or("term= missing")?, "term")?;
    let flag = |value: Option<String>| value.is_some_and(|v| v == "true");
    let number = |value: Option<String>| value.map_or(Ok(0), |v| parse::<u64>(&v, "number"));
    let prevote = flag(key("prevote"));
    let body = match kind {
        "vote" => {
            let (last_log_index, last_log_term) =
                index_at_term(&key("last").unwrap_or("0@0".into()))?;
            MessageBody::VoteRequest {
                pre_vote: prevote,
                last_log_index,
                last_log_term,
                transfer: flag(key("transfer")),
            }
        }
        "vote_response" => MessageBody::VoteResponse {
            pre_vote: prevote,
            granted: flag(key("granted")),
        },
        "append" => {
            let (prev_log_index, prev_log_term) =
                index_at_term(&key("prev").unwrap_or("0@0".into()))?;
            MessageBody::Append {
                prev_log_index,
                prev_log_term,
                entries: entries(&key("entries").unwrap_or_default())?,
                leader_commit: number(key("commit"))?,
            }
        }
        "append_response" => {
            let hint = match key("hint") {
                Some(hint) => {
                    let (index, term) = index_at_term(&hint)?;
                    Some(ConflictHint { index, term })
                }
                None => None,
            };
            MessageBody::AppendResponse {
                success: flag(key("success")),
                match_index: number(key("match"))?,
                hint,
            }
        }
        "heartbeat" => MessageBody::Heartbeat {
            commit: number(key("commit"))?,
            round: number(key("round"))?,
        },
        "heartbeat_response" => MessageBody::HeartbeatResponse {
            round: number(key("round"))?,
        },
        "timeout_now" => MessageBody::TimeoutNow,
        "snapshot_chunk" => {
            let (index, term) = index_at_term(&key("snap").ok_or("snap= missing")?)?;
            let data = key("data").unwrap_or_default();
            MessageBody::SnapshotChunk {
                // The runner fills in the receiver's membership.
                meta: Box::new(SnapshotMeta {
                    index,
                    term,
                    membership: Default::default(),
                }),
                offset: number(key("offset"))?,
                data: Bytes::from(data),
                done: flag(key("done")),
            }
        }
        other => return Err(format!("unknown message type {other}")),
    };
    args.reject_next().map_err(|e| e.to_string())?;
    Ok(Message {
        from,
        to,
        term,
        body,
    })
}
