//! What the checker sees of one host: the engine's observation feed (writes handed out,
//! entries applied, role changes, stops), the messages it sends, its answers to clients,
//! and its commit index after every step.

use raft_core::{EntryPayload, Message, MessageBody, Node, NodeId, Role, StateMachine, Term};
use raft_host::{Observation, Reply as EngineReply, RequestId};

use crate::checker::{Fingerprint, ViolationKind};
use crate::host::{Ctx, Effect, Host, Liveness};
use crate::workload::{Reply, SimMachine};

/// A message leaves `from`, whose core is `node`: votes and acknowledgements are promises
/// the checker holds the node to after a restart.
pub(crate) fn sent<M: StateMachine>(
    from: NodeId,
    message: &Message,
    node: &Node,
    ctx: &mut Ctx<'_, M>,
) {
    if let MessageBody::AppendResponse {
        success: true,
        match_index,
        ..
    } = message.body
        && let Some(term) = node.entry_term(match_index)
    {
        ctx.checker.durable.acknowledged(from, match_index, term);
    }
    match &message.body {
        MessageBody::VoteResponse {
            pre_vote: false,
            granted: true,
        } => ctx
            .checker
            .observe_vote(ctx.now_us, from, message.term, message.to),
        MessageBody::VoteRequest {
            pre_vote: false, ..
        }
        | MessageBody::AppendResponse { success: true, .. } => {
            ctx.checker.promise(from, message.term)
        }
        _ => {}
    }
}

/// An append reaches `to`, whose core is `node`: if it names as predecessor an entry `to`
/// claimed durable and no longer holds, `to` rejects it because it lost that entry.
pub(crate) fn received<M: StateMachine>(
    to: NodeId,
    message: &Message,
    node: &Node,
    ctx: &mut Ctx<'_, M>,
) {
    let MessageBody::Append {
        prev_log_index,
        prev_log_term,
        ..
    } = message.body
    else {
        return;
    };
    let held = node.entry_term(prev_log_index);
    let snapshot = node.snapshot_meta().index;
    if ctx
        .checker
        .durable
        .lost_prev(to, prev_log_index, prev_log_term, snapshot, held)
    {
        ctx.checker.report(
            ctx.now_us,
            ViolationKind::DurabilityLost,
            format!(
                "n{to} rejects n{}'s append after entry {prev_log_index}@t{prev_log_term}, \
                 which it had acknowledged or reported durable: it holds {} there now",
                message.from,
                describe_held(held)
            ),
        );
    }
}

/// `id` restarted from its store with core `node`: its log must still hold every entry it
/// claimed durable before the crash.
pub(crate) fn restored<M: StateMachine>(id: NodeId, node: &Node, ctx: &mut Ctx<'_, M>) {
    let snapshot = node.snapshot_meta().index;
    let lost = ctx
        .checker
        .durable
        .restored(id, snapshot, |index| node.entry_term(index));
    if let Some((index, term, held)) = lost {
        ctx.checker.report(
            ctx.now_us,
            ViolationKind::DurabilityLost,
            format!(
                "n{id} restarted without entry {index}@t{term}, which it had acknowledged or \
                 reported durable: its restored log (snapshot {snapshot}, last index {}) \
                 holds {} there",
                node.last_index(),
                describe_held(held)
            ),
        );
    }
}

/// What a node's log holds at an index, for a violation message.
fn describe_held(held: Option<Term>) -> String {
    held.map_or_else(|| "nothing".to_string(), |term| format!("term {term}"))
}

/// The digest the workload keys a write by: of the command's own bytes. The engine's log
/// record is `postcard(LogRecord::Command(c))`, i.e. the variant index 0 and then
/// `postcard(c)`, which are exactly the bytes the client encoded.
fn command_digest(bytes: &[u8]) -> Option<u64> {
    match bytes.split_first() {
        Some((0, command)) => Some(crate::checker::fnv1a(command)),
        _ => None,
    }
}

impl<M: SimMachine> Host<M> {
    /// Acts on one observation of the engine.
    pub(crate) fn watch(&mut self, observation: Observation<M>, ctx: &mut Ctx<'_, M>) {
        match observation {
            Observation::Persist {
                truncate_from,
                entries,
                prev_term,
                token,
                ..
            } => {
                ctx.checker
                    .durable
                    .persist(self.id, truncate_from, &entries, token.sequence());
                if !entries.is_empty() {
                    ctx.checker
                        .observe_append(ctx.now_us, self.id, prev_term, &entries);
                }
            }
            Observation::Applied {
                index,
                term,
                payload,
                response,
            } => self.watch_apply(index, term, payload, response, ctx),
            Observation::Restored { index, has_state } => {
                ctx.note(|| {
                    format!(
                        "n{} restored its state machine from snapshot {index}",
                        self.id
                    )
                });
                self.applied = index;
                // A snapshot without state is a witness's: the state it leaves is not the
                // cluster's.
                self.replica_incomplete = !has_state && index > 0;
                self.held_witness_data |= self.replica_incomplete;
            }
            Observation::Role { role, term, .. } => self.watch_role(role, term, ctx),
            Observation::Stopped { reason, core: true } => {
                ctx.effects
                    .push(Effect::Note(format!("n{} halted: {reason}", self.id)));
                ctx.checker.report(
                    ctx.now_us,
                    ViolationKind::UnexpectedHalt,
                    format!("n{} halted itself: {reason}", self.id),
                );
                self.liveness = Liveness::Halted(reason);
                self.engine = None;
            }
            Observation::Stopped {
                reason,
                core: false,
            } => {
                // A failed fsync or a full disk: the process exits and is restarted, as
                // an operator's supervisor would; the store recovers what is durable.
                ctx.effects
                    .push(Effect::CrashNow(format!("storage failed: {reason}")));
            }
            Observation::Durable { token, .. } => {
                ctx.checker.durable.durable(self.id, token.sequence());
            }
            Observation::Answered { .. } => {}
        }
    }

    fn watch_apply(
        &mut self,
        index: raft_core::Index,
        term: Term,
        payload: EntryPayload,
        response: Option<M::Response>,
        ctx: &mut Ctx<'_, M>,
    ) {
        if index != self.applied + 1 {
            ctx.checker.report(
                ctx.now_us,
                ViolationKind::StateMachineSafety,
                format!(
                    "n{} applied entry {index} after applying through {}: entries skipped or \
                     applied twice",
                    self.id, self.applied
                ),
            );
        }
        if index > ctx.checker.max_committed() {
            ctx.checker.report(
                ctx.now_us,
                ViolationKind::StateMachineSafety,
                format!(
                    "n{} applied entry {index}@t{term} before any node committed it (highest \
                     committed index {})",
                    self.id,
                    ctx.checker.max_committed()
                ),
            );
        }
        self.applied = index;
        ctx.checker
            .observe_apply(ctx.now_us, self.id, index, term, Fingerprint::of(&payload));
        match &payload {
            EntryPayload::Elided => {
                self.replica_incomplete = true;
                self.held_witness_data = true;
            }
            EntryPayload::Command(bytes) => {
                // A witness (or a node becoming one) may get a mix of elided and full
                // payloads around the configuration change; its state machine never serves.
                let full_member = self.node().is_some_and(|n| {
                    n.membership().contains(self.id) && !n.membership().is_witness(self.id)
                });
                if self.replica_incomplete && full_member {
                    ctx.checker.report(
                        ctx.now_us,
                        ViolationKind::StateMachineSafety,
                        format!(
                            "n{} applies command {index} onto a state machine that skipped \
                             elided payloads (it was a witness and got full entries again \
                             without a snapshot)",
                            self.id
                        ),
                    );
                }
                match (response, command_digest(bytes)) {
                    (Some(response), Some(digest)) => {
                        ctx.note(|| format!("n{} applied {index}: {response:?}", self.id));
                        ctx.effects.push(Effect::Applied {
                            index,
                            digest,
                            response,
                        });
                    }
                    _ => ctx.checker.report(
                        ctx.now_us,
                        ViolationKind::StateMachineSafety,
                        format!("n{} applied undecodable command at {index}", self.id),
                    ),
                }
            }
            EntryPayload::Noop | EntryPayload::Membership(_) => {}
        }
    }

    fn watch_role(&mut self, role: Role, term: Term, ctx: &mut Ctx<'_, M>) {
        ctx.effects.push(Effect::Role { role, term });
        if role != Role::Leader {
            return;
        }
        let Some(node) = self.node() else {
            return;
        };
        ctx.checker.observe_leader(ctx.now_us, self.id, term);
        let elided = node
            .entries(node.first_index(), node.last_index() + 1)
            .iter()
            .find(|e| e.payload == EntryPayload::Elided)
            .map(|e| e.index);
        if let Some(index) = elided {
            ctx.checker.report(
                ctx.now_us,
                ViolationKind::LeaderCompleteness,
                format!(
                    "n{} leads term {term} but holds only an elided payload at index {index} \
                     (it was a witness once); its log and state machine are incomplete",
                    self.id
                ),
            );
        }
        ctx.checker.observe_new_leader(
            ctx.now_us,
            self.id,
            term,
            node.last_index(),
            node.first_index(),
            |index| node.entry_term(index),
        );
    }

    /// The engine's one answer to a request, as the client sees it.
    pub(crate) fn answer(
        &mut self,
        request: RequestId,
        result: Result<EngineReply<M>, raft_host::Error>,
        ctx: &mut Ctx<'_, M>,
    ) {
        let Some(waiter) = self.waiters.remove(&request) else {
            // Membership changes and transfers: only a note.
            ctx.note(|| format!("n{} request {} answered: {result:?}", self.id, request.0));
            return;
        };
        let leader = self.node().and_then(|n| n.leader());
        let reply = match result {
            Ok(EngineReply::Response(response)) => Reply::Write(response),
            Ok(EngineReply::Query(response)) => Reply::Read(response),
            Ok(_) => Reply::Retry,
            Err(raft_host::Error::NotLeader { leader_hint, .. }) => Reply::Redirect(leader_hint),
            // A node with a witness's data serves no client: ask the leader.
            Err(raft_host::Error::Witness) => Reply::Redirect(leader),
            Err(_) => Reply::Retry,
        };
        self.reply_to(&waiter, reply, "", self.applied, ctx);
    }

    /// After the engine went quiet: the commit index the checker follows, and what the
    /// node's data says about witnesses.
    pub(crate) fn after_drive(&mut self, ctx: &mut Ctx<'_, M>) {
        let id = self.id;
        let Some(node) = self.node() else {
            return;
        };
        let witness = node.membership().is_witness(id) || node.has_incomplete_state();
        ctx.checker
            .durable
            .snapshot_seen(id, node.snapshot_meta().index, |index| {
                node.entry_term(index)
            });
        ctx.checker
            .observe_commit(ctx.now_us, id, node.term(), node.commit_index(), |index| {
                let term = node.entry_term(index)?;
                if index < node.first_index() {
                    return None;
                }
                let entry = node.entries(index, index + 1).first()?;
                Some((term, Fingerprint::of(&entry.payload)))
            });
        if witness {
            self.held_witness_data = true;
        }
    }
}
