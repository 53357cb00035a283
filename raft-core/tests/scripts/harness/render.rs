//! Renders messages, actions and node state as one-line text for transcripts.
//!
//! Request ids (proposals, reads, membership changes) are random numbers drawn by the core;
//! transcripts name them `p1`, `r1`, `c1` in order of first appearance, so that output does
//! not depend on the generator.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use raft_core::{Action, Entry, EntryPayload, Message, MessageBody, Node, NodeId, PeerState, Role};

/// Short names for request ids, per (node, kind, id).
#[derive(Default)]
pub(crate) struct Aliases {
    names: BTreeMap<(NodeId, char, u64), String>,
    counters: BTreeMap<char, u64>,
}

impl Aliases {
    /// The name of request `id` of `kind` ('p', 'r', 'c' or 't') made by `node`.
    pub(crate) fn name(&mut self, node: NodeId, kind: char, id: u64) -> String {
        if let Some(name) = self.names.get(&(node, kind, id)) {
            return name.clone();
        }
        let counter = self.counters.entry(kind).or_insert(0);
        *counter += 1;
        let name = format!("{kind}{counter}");
        self.names.insert((node, kind, id), name.clone());
        name
    }
}

pub(crate) fn node_name(id: Option<NodeId>) -> String {
    id.map_or("-".to_string(), |id| format!("n{id}"))
}

pub(crate) fn render_entry(entry: &Entry) -> String {
    let payload = match &entry.payload {
        EntryPayload::Noop => "noop".to_string(),
        EntryPayload::Command(data) => String::from_utf8_lossy(data).into_owned(),
        EntryPayload::Membership(m) => format!("conf({})", m.describe()),
        EntryPayload::Elided => "elided".to_string(),
    };
    format!("{}@{} {payload}", entry.index, entry.term)
}

pub(crate) fn render_entries(entries: &[Entry]) -> String {
    let list: Vec<String> = entries.iter().map(render_entry).collect();
    format!("[{}]", list.join(", "))
}

fn yes_no(flag: bool, yes: &str, no: &str) -> String {
    if flag { yes } else { no }.to_string()
}

/// `n1@2 → n2 Append prev=3@1 [4@2 noop] commit=3`.
pub(crate) fn render_message(message: &Message, aliases: &mut Aliases) -> String {
    let (from, to) = (message.from, message.to);
    let body = match &message.body {
        MessageBody::VoteRequest {
            pre_vote,
            last_log_index,
            last_log_term,
            transfer,
        } => format!(
            "{} last={last_log_index}@{last_log_term}{}",
            yes_no(*pre_vote, "PreVote", "Vote"),
            yes_no(*transfer, " transfer", "")
        ),
        MessageBody::VoteResponse { pre_vote, granted } => format!(
            "{} {}",
            yes_no(*pre_vote, "PreVoteResponse", "VoteResponse"),
            yes_no(*granted, "granted", "rejected")
        ),
        MessageBody::Append {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        } => format!(
            "Append prev={prev_log_index}@{prev_log_term} {} commit={leader_commit}",
            render_entries(entries)
        ),
        MessageBody::AppendResponse {
            success: true,
            match_index,
            ..
        } => format!("AppendResponse ok match={match_index}"),
        MessageBody::AppendResponse {
            match_index, hint, ..
        } => {
            let hint = hint.map_or(String::new(), |h| format!(" hint={}@{}", h.index, h.term));
            format!("AppendResponse reject prev={match_index}{hint}")
        }
        MessageBody::Heartbeat { commit, round } => {
            format!("Heartbeat commit={commit} round={round}")
        }
        MessageBody::HeartbeatResponse { round } => format!("HeartbeatResponse round={round}"),
        MessageBody::SnapshotChunk {
            meta,
            offset,
            data,
            done,
        } => format!(
            "SnapshotChunk snap={}@{} offset={offset} len={}{}",
            meta.index,
            meta.term,
            data.len(),
            yes_no(*done, " done", "")
        ),
        MessageBody::SnapshotResponse {
            index,
            next_offset,
            installed,
        } => format!(
            "SnapshotResponse snap={index} next_offset={next_offset}{}",
            yes_no(*installed, " installed", "")
        ),
        MessageBody::TimeoutNow => "TimeoutNow".to_string(),
        MessageBody::ForwardProposal { id, data } => format!(
            "ForwardProposal {} {}",
            aliases.name(from, 'p', *id),
            String::from_utf8_lossy(data)
        ),
        MessageBody::ForwardProposalResponse { id, result } => {
            let result = match result {
                Ok((index, term)) => format!("appended at {index}@{term}"),
                Err(error) => format!("refused: {error}"),
            };
            format!(
                "ForwardProposalResponse {} {result}",
                aliases.name(to, 'p', *id)
            )
        }
        MessageBody::ReadIndexRequest { id } => {
            format!("ReadIndexRequest {}", aliases.name(from, 'r', *id))
        }
        MessageBody::ReadIndexResponse { id, result } => {
            let result = match result {
                Ok(index) => format!("ready at {index}"),
                Err(error) => format!("failed: {error}"),
            };
            format!("ReadIndexResponse {} {result}", aliases.name(to, 'r', *id))
        }
    };
    format!("n{from}@{} → n{to} {body}", message.term)
}

/// One line per action (messages are rendered by [`render_message`]).
pub(crate) fn render_action(id: NodeId, action: &Action, aliases: &mut Aliases) -> String {
    let text = match action {
        Action::Persist(batch) => {
            let mut text = format!("write #{}", batch.token.sequence());
            if let Some(hs) = batch.hard_state {
                let _ = write!(
                    text,
                    " term={} vote={} commit={}",
                    hs.term,
                    node_name(hs.vote),
                    hs.commit
                );
            }
            if let Some(from) = batch.truncate_from {
                let _ = write!(text, " truncate>={from}");
            }
            if !batch.entries.is_empty() {
                let _ = write!(text, " {}", render_entries(&batch.entries));
            }
            if !batch.sync_required {
                text.push_str(" nosync");
            }
            text
        }
        Action::WriteSnapshotChunk(chunk) => format!(
            "write #{} snapshot {}@{} offset={} len={}{}",
            chunk.token.sequence(),
            chunk.meta.index,
            chunk.meta.term,
            chunk.offset,
            chunk.data.len(),
            yes_no(chunk.done, " done", "")
        ),
        Action::CompactLog { through_index } => format!("compact log through {through_index}"),
        Action::Apply(entries) => {
            let first = entries.first().map_or(0, |e| e.index);
            let last = entries.last().map_or(0, |e| e.index);
            format!("apply {first}..{last}")
        }
        Action::RestoreStateMachine { meta } => {
            format!(
                "restore state machine from snapshot {}@{}",
                meta.index, meta.term
            )
        }
        Action::ProposalOutcome { id: p, result } => {
            let name = aliases.name(id, 'p', p.0);
            match result {
                Ok(index) => format!("proposal {name} committed at {index}"),
                Err(error) => format!("proposal {name} failed: {error}"),
            }
        }
        Action::ReadOutcome { id: r, result } => {
            let name = aliases.name(id, 'r', r.0);
            match result {
                Ok(index) => format!("read {name} ready at {index}"),
                Err(error) => format!("read {name} failed: {error}"),
            }
        }
        Action::MembershipOutcome { id: c, result } => {
            let name = aliases.name(id, 'c', c.0);
            match result {
                Ok(membership) => format!("change {name} done: {}", membership.describe()),
                Err(error) => format!("change {name} failed: {error}"),
            }
        }
        Action::TransferOutcome {
            id: t,
            target,
            result,
        } => {
            let name = aliases.name(id, 't', t.0);
            match result {
                Ok(()) => format!("transfer {name} to n{target} done"),
                Err(error) => format!("transfer {name} to n{target} failed: {error}"),
            }
        }
        Action::RoleChanged { role, term, leader } => {
            format!("{} @{term} leader={}", role_name(*role), node_name(*leader))
        }
        Action::Halted { reason } => format!("HALTED: {reason}"),
        Action::Send(_) | Action::SendSnapshotChunk { .. } => "send".to_string(),
    };
    format!("n{id}: {text}")
}

pub(crate) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Follower => "follower",
        Role::PreCandidate => "pre-candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

/// `n1: leader @2 vote=n1 leader=n1 commit=5 applied=5 last=5@2 voters=[1 2 3]`.
pub(crate) fn render_status(node: &Node, crashed: bool) -> String {
    let hs = node.hard_state();
    let last = node.last_index();
    let mut text = format!(
        "n{}: {} @{} vote={} leader={} commit={} applied={} last={}@{}",
        node.id(),
        role_name(node.role()),
        node.term(),
        node_name(hs.vote),
        node_name(node.leader()),
        node.commit_index(),
        node.applied_index(),
        last,
        node.entry_term(last).unwrap_or(0),
    );
    let snapshot = node.snapshot_meta();
    if snapshot.index > 0 {
        let _ = write!(text, " snapshot={}@{}", snapshot.index, snapshot.term);
    }
    let _ = write!(text, " {}", node.membership().describe());
    if let Some(reason) = node.status().halted {
        let _ = write!(text, " HALTED({reason})");
    }
    if crashed {
        text.push_str(" [crashed]");
    }
    text
}

/// `n1 log: [1@1 noop, 2@1 x]`, with the snapshot base if there is one.
pub(crate) fn render_log(node: &Node) -> String {
    let entries = node.entries(node.first_index(), node.last_index() + 1);
    let snapshot = node.snapshot_meta();
    let base = if snapshot.index > 0 {
        format!("snapshot={}@{} ", snapshot.index, snapshot.term)
    } else {
        String::new()
    };
    format!("n{} log: {base}{}", node.id(), render_entries(entries))
}

/// One line per peer of a leader; a note for any other role.
pub(crate) fn render_progress(node: &Node) -> Vec<String> {
    if node.role() != Role::Leader {
        return vec![format!("n{}: not the leader", node.id())];
    }
    let mut lines = Vec::new();
    for (peer, progress) in node.status().progress {
        let state = match progress.state {
            PeerState::Probe => "probe",
            PeerState::Replicate => "replicate",
            PeerState::Snapshot => "snapshot",
        };
        lines.push(format!(
            "n{} → n{peer}: {state} match={} next={} inflight={}{}",
            node.id(),
            progress.match_index,
            progress.next_index,
            progress.inflight_appends,
            yes_no(progress.recently_active, " active", "")
        ));
    }
    lines
}
