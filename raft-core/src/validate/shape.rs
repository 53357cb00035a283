//! Checks that need only the message, not the node: envelope ranges, the shape of entries,
//! snapshot chunks and configurations, and the highest term an answer may carry.

use super::{MAX_INDEX, MAX_TERM, PeerMisbehaved};
use crate::membership::Membership;
use crate::message::{Message, MessageBody};
use crate::types::{Entry, EntryPayload, Index, SnapshotMeta, Term};

pub(super) fn leader_kind(body: &MessageBody) -> bool {
    matches!(
        body,
        MessageBody::Append { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::SnapshotChunk { .. }
            | MessageBody::TimeoutNow
    )
}

pub(super) fn check_index(field: &'static str, got: Index) -> Result<(), PeerMisbehaved> {
    check_index_range(field, 0, got)
}

pub(super) fn check_index_range(
    field: &'static str,
    min: Index,
    got: Index,
) -> Result<(), PeerMisbehaved> {
    if got < min || got > MAX_INDEX {
        return Err(PeerMisbehaved::IndexOutOfRange {
            field,
            min,
            max: MAX_INDEX,
            got,
        });
    }
    Ok(())
}

pub(super) fn check_term_range(
    field: &'static str,
    min: Term,
    max: Term,
    got: Term,
) -> Result<(), PeerMisbehaved> {
    if got < min || got > max {
        return Err(PeerMisbehaved::TermOutOfRange {
            field,
            min,
            max,
            got,
        });
    }
    Ok(())
}

/// Rules of a configuration that every membership change preserves.
pub(crate) fn check_membership(membership: &Membership) -> Result<(), PeerMisbehaved> {
    let invalid = |expected| Err(PeerMisbehaved::InvalidMembership { expected });
    let sets = [
        &membership.incoming,
        &membership.outgoing,
        &membership.learners,
        &membership.witnesses,
    ];
    if sets.iter().any(|set| set.contains(&0)) {
        return invalid("no node id 0");
    }
    if !membership
        .witnesses
        .iter()
        .all(|&id| membership.is_voter(id))
    {
        return invalid("every witness to be a voter");
    }
    if membership
        .learners
        .iter()
        .any(|id| membership.incoming.contains(id))
    {
        return invalid("learners outside the incoming voters");
    }
    Ok(())
}

/// Append entries: contiguous from `prev_log_index + 1`, terms non-decreasing from
/// `prev_log_term` and at most the message term, configurations sane.
pub(super) fn check_entries(
    message_term: Term,
    prev_log_index: Index,
    prev_log_term: Term,
    entries: &[Entry],
) -> Result<(), PeerMisbehaved> {
    check_index("prev_log_index", prev_log_index)?;
    let prev_min = u64::from(prev_log_index > 0);
    let prev_max = if prev_log_index == 0 { 0 } else { message_term };
    check_term_range("prev_log_term", prev_min, prev_max, prev_log_term)?;
    let mut expected = prev_log_index;
    let mut min_term = prev_log_term.max(1);
    for (position, entry) in entries.iter().enumerate() {
        // Cannot overflow: `expected` starts at most MAX_INDEX and each step is checked
        // against MAX_INDEX below before the next increment.
        expected += 1;
        if entry.index != expected {
            return Err(PeerMisbehaved::EntryIndexGap {
                position,
                expected,
                got: entry.index,
            });
        }
        check_index("entry index", entry.index)?;
        check_term_range("entry term", min_term, message_term, entry.term)?;
        min_term = entry.term;
        if let EntryPayload::Membership(membership) = &entry.payload {
            check_membership(membership)?;
        }
    }
    Ok(())
}

pub(super) fn check_snapshot_chunk(
    message_term: Term,
    meta: &SnapshotMeta,
    offset: u64,
    len_bytes: usize,
) -> Result<(), PeerMisbehaved> {
    check_index_range("snapshot index", 1, meta.index)?;
    check_term_range("snapshot term", 1, message_term, meta.term)?;
    let len_bytes = len_bytes as u64;
    if offset.checked_add(len_bytes).is_none() {
        return Err(PeerMisbehaved::SnapshotChunkOverflow { offset, len_bytes });
    }
    check_membership(&meta.membership)
}

/// Rules that depend on the message alone.
pub(super) fn check_shape(message: &Message) -> Result<(), PeerMisbehaved> {
    let term = message.term;
    if term > MAX_TERM {
        return Err(PeerMisbehaved::TermTooHigh {
            field: "term",
            max: MAX_TERM,
            got: term,
        });
    }
    if leader_kind(&message.body) {
        check_term_range("term of a leader's message", 1, MAX_TERM, term)?;
    }
    match &message.body {
        MessageBody::VoteRequest {
            last_log_index,
            last_log_term,
            ..
        } => {
            check_index("last_log_index", *last_log_index)?;
            check_term_range("last_log_term", 0, term, *last_log_term)
        }
        MessageBody::Append {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        } => {
            check_index("leader_commit", *leader_commit)?;
            check_entries(term, *prev_log_index, *prev_log_term, entries)
        }
        MessageBody::AppendResponse {
            match_index, hint, ..
        } => {
            check_index("match_index", *match_index)?;
            match hint {
                Some(hint) => {
                    check_index("hint index", hint.index)?;
                    check_term_range("hint term", 0, MAX_TERM, hint.term)
                }
                None => Ok(()),
            }
        }
        MessageBody::Heartbeat { commit, .. } => check_index("commit", *commit),
        MessageBody::SnapshotChunk {
            meta, offset, data, ..
        } => check_snapshot_chunk(term, meta, *offset, data.len()),
        MessageBody::SnapshotResponse { index, .. } => check_index("snapshot index", *index),
        MessageBody::ForwardProposalResponse {
            result: Ok((index, entry_term)),
            ..
        } => {
            check_index("proposal index", *index)?;
            check_term_range("proposal term", 1, term, *entry_term)
        }
        MessageBody::ReadIndexResponse {
            result: Ok(index), ..
        } => check_index("read index", *index),
        _ => Ok(()),
    }
}

/// The highest term `body` can carry when it reaches a node in `own_term`, for messages that
/// only answer (or follow) something that node sent in its own term; `None` if any term can
/// come (it may announce a newer term).
pub(super) fn highest_answer_term(body: &MessageBody, own_term: Term) -> Option<Term> {
    match body {
        MessageBody::VoteRequest { .. }
        | MessageBody::Append { .. }
        | MessageBody::Heartbeat { .. }
        | MessageBody::SnapshotChunk { .. } => None,
        // A refused pre-vote carries the refuser's term, which may be newer.
        MessageBody::VoteResponse {
            pre_vote: true,
            granted: false,
        } => None,
        // A granted pre-vote carries the term we asked about: ours + 1 at the time.
        MessageBody::VoteResponse {
            pre_vote: true,
            granted: true,
        } => Some(own_term.saturating_add(1)),
        // The bare answer to a stale leader announces the follower's newer term.
        MessageBody::AppendResponse {
            success: false,
            hint: None,
            ..
        } => None,
        // A leader fails the reads it holds for followers when it loses leadership, in
        // whatever term it has moved to by then.
        MessageBody::ReadIndexResponse { .. } => None,
        _ => Some(own_term),
    }
}
