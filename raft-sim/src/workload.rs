//! What clients do: the [`Workload`] trait a user implements for their state machine, and
//! the simulated clients ([`Clients`]) that run it.
//!
//! Each client issues one operation at a time, sends it to a node, follows redirects,
//! resends through timeouts and refusals (to another node), and records the history the
//! linearizability checker reads. During the fault phase a client gives up on an operation
//! unanswered for too long (its outcome becomes unknown); after healing it never gives up.
//! A resent command carries the very same bytes, so a state machine that must apply a
//! retried write once needs a session in its commands (as `raft-kv` has).
//!
//! The simulator owns time and delivery; this module decides what a client does next.

use std::collections::HashMap;
use std::fmt::Debug;

use bytes::Bytes;
use raft_core::{NodeId, StateMachine};

use crate::checker::fnv1a;
use crate::linearizability::Operation;
use crate::model::Model;
use crate::rng::SimRng;

/// The input type of a workload's model.
pub type InputOf<W> = <<W as Workload>::Model as Model>::Input;
/// The output type of a workload's model.
pub type OutputOf<W> = <<W as Workload>::Model as Model>::Output;
/// One recorded operation of a workload's history.
pub type OperationOf<W> = Operation<InputOf<W>, OutputOf<W>>;
/// A node's answer to a client of a workload's state machine.
pub type ReplyOf<M> = Reply<<M as StateMachine>::Response, <M as StateMachine>::QueryResponse>;

/// A [`StateMachine`] the simulator can run: its responses, queries and query answers are
/// `Debug` (the readable trace prints them) and its queries and answers `Clone` (clients
/// resend queries, answers wait in the simulated network). Implemented for every such
/// state machine.
///
/// Each node runs its own instance through the production host engine (`raft-host`):
/// commands are applied in log order, queries answered once their read index is applied,
/// snapshots taken, sent and restored. A snapshot must hold at least one byte: an empty one
/// is a witness's, and a node holding it serves no client.
pub trait SimMachine:
    StateMachine<Response: Debug, Query: Clone + Debug, QueryResponse: Clone + Debug>
{
}

impl<M> SimMachine for M where
    M: StateMachine<Response: Debug, Query: Clone + Debug, QueryResponse: Clone + Debug>
{
}

/// The system under test, from the clients' side: the state machine every node runs, what
/// clients ask of it, how they read its answers, and the sequential model the answers are
/// checked against.
pub trait Workload {
    /// The replicated state machine (see [`SimMachine`] for what it must allow).
    type Machine: SimMachine;
    /// The sequential specification of the answers.
    type Model: Model;

    /// A new, empty state machine: every node starts (and restarts, before restoring its
    /// snapshot) from one.
    fn machine(&self) -> Self::Machine;

    /// The model the history is checked against.
    fn model(&self) -> &Self::Model;

    /// The next operation of `client` (numbered from 0), issued at `now_us`: what the model
    /// sees, and the command or query sent. `None` skips the operation. Every random
    /// choice must come from `rng`, so that a seed replays the same run.
    fn next_call(
        &mut self,
        client: usize,
        now_us: u64,
        rng: &mut SimRng,
    ) -> Option<Call<Self::Machine, InputOf<Self>>>;

    /// What a client learns from its command's response; `None` when the response does not
    /// tell whether the command took effect (the outcome is then unknown).
    fn command_output(
        &mut self,
        client: usize,
        input: &InputOf<Self>,
        response: &<Self::Machine as StateMachine>::Response,
    ) -> Option<OutputOf<Self>>;

    /// What a client learns from its query's answer; `None`: unknown.
    fn query_output(
        &mut self,
        client: usize,
        input: &InputOf<Self>,
        response: &<Self::Machine as StateMachine>::QueryResponse,
    ) -> Option<OutputOf<Self>>;
}

/// One operation a client issues: what the model sees and what is sent.
pub struct Call<M: StateMachine, I> {
    /// The operation as the model sees it.
    pub input: I,
    /// What the client sends to a node.
    pub request: Request<M>,
}

/// A command (proposed through the log) or a query (a linearizable or lease read, as the
/// run's profile draws).
pub enum Request<M: StateMachine> {
    /// Propose this command.
    Command(M::Command),
    /// Read with this query.
    Query(M::Query),
}

/// Client timing.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientConfig {
    /// Number of clients.
    pub clients: u64,
    /// Total operations over all clients.
    pub operations: u64,
    /// Mean think time between a client's operations.
    pub think_mean_us: u64,
    /// A request without an answer for this long is sent again (to another node).
    pub request_timeout_us: u64,
    /// During the fault phase, an operation unanswered for this long is abandoned (its
    /// outcome becomes unknown). After healing, clients never give up.
    pub give_up_us: u64,
}

/// What a node is asked to do for a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestBody<Q> {
    /// Propose this command (postcard bytes).
    Write(Bytes),
    /// Read with this query.
    Read(Q),
}

/// A client request on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRequest<Q> {
    /// Index of the client.
    pub client: usize,
    /// The client's operation serial number (for matching answers).
    pub op_serial: u64,
    /// The request.
    pub body: RequestBody<Q>,
}

/// A node's answer to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply<R, Q> {
    /// The command's response from the state machine.
    Write(R),
    /// The query's answer.
    Read(Q),
    /// Not the leader; try the hinted node.
    Redirect(Option<NodeId>),
    /// Could not be served now (lost leadership, overload, unknown outcome); retry.
    Retry,
}

/// What the simulator must do after a client decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientStep<Q> {
    /// Send a request to a node (and arm a timeout).
    Send {
        /// The node.
        to: NodeId,
        /// The request.
        request: ClientRequest<Q>,
    },
    /// The operation finished; issue the next one after `think_us` if any remain.
    Finished {
        /// Think time before the next operation.
        think_us: u64,
    },
    /// Nothing to do (a stale answer or timeout).
    Nothing,
}

#[derive(Clone, Debug)]
struct Pending<Q> {
    op_serial: u64,
    history_index: usize,
    body: RequestBody<Q>,
    started_us: u64,
}

#[derive(Clone, Debug)]
struct Client<Q> {
    target: NodeId,
    remaining: u64,
    next_op_serial: u64,
    pending: Option<Pending<Q>>,
}

type QueryOf<W> = <<W as Workload>::Machine as StateMachine>::Query;

/// The simulated clients of one run, the workload they run and the recorded history.
pub struct Clients<W: Workload> {
    config: ClientConfig,
    workload: W,
    clients: Vec<Client<QueryOf<W>>>,
    history: Vec<OperationOf<W>>,
    /// Digest of a command's bytes -> history index, to recognise a command in the log
    /// whatever node applied it. Lookup only.
    writes: HashMap<u64, usize>,
    max_node: NodeId,
}

impl<W: Workload> Clients<W> {
    /// Clients spread over the nodes `1..=max_node`, running `workload`.
    pub fn new(config: ClientConfig, workload: W, max_node: NodeId) -> Self {
        let clients = (0..config.clients)
            .map(|i| Client {
                target: 1 + i % max_node,
                remaining: config.operations / config.clients
                    + u64::from(i < config.operations % config.clients),
                next_op_serial: 0,
                pending: None,
            })
            .collect();
        Clients {
            config,
            workload,
            clients,
            history: Vec::new(),
            writes: HashMap::new(),
            max_node,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The workload.
    pub fn workload(&self) -> &W {
        &self.workload
    }

    /// Number of clients.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// The recorded history (unfinished operations have no return time).
    pub fn history(&self) -> &[OperationOf<W>] {
        &self.history
    }

    /// The history operation whose command has this digest ([`fnv1a`] of its bytes).
    pub fn write_by_digest(&self, digest: u64) -> Option<usize> {
        self.writes.get(&digest).copied()
    }

    /// Operations not yet finished or abandoned, and operations not yet issued.
    pub fn outstanding(&self) -> (usize, u64) {
        let pending = self.clients.iter().filter(|c| c.pending.is_some()).count();
        let unissued = self.clients.iter().map(|c| c.remaining).sum();
        (pending, unissued)
    }

    /// The serial of a client's pending operation.
    pub fn pending_serial(&self, client: usize) -> Option<u64> {
        self.clients[client].pending.as_ref().map(|p| p.op_serial)
    }

    /// Starts the client's next operation, if it has any left.
    pub fn issue(
        &mut self,
        client: usize,
        now_us: u64,
        rng: &mut SimRng,
    ) -> ClientStep<QueryOf<W>> {
        let c = &mut self.clients[client];
        if c.pending.is_some() || c.remaining == 0 {
            return ClientStep::Nothing;
        }
        c.remaining -= 1;
        let Some(call) = self.workload.next_call(client, now_us, rng) else {
            return ClientStep::Nothing;
        };
        let body = match call.request {
            Request::Query(query) => RequestBody::Read(query),
            Request::Command(command) => {
                // Encoding a command into a Vec fails only for types postcard cannot
                // express (a map with non-string keys is fine; a `serialize_any` type is
                // not): such a workload issues no commands.
                let Ok(bytes) = postcard::to_allocvec(&command) else {
                    tracing::warn!(client, "command does not encode with postcard; skipped");
                    return ClientStep::Nothing;
                };
                let bytes = Bytes::from(bytes);
                self.writes.insert(fnv1a(&bytes), self.history.len());
                RequestBody::Write(bytes)
            }
        };
        let c = &mut self.clients[client];
        let op_serial = c.next_op_serial;
        c.next_op_serial += 1;
        c.pending = Some(Pending {
            op_serial,
            history_index: self.history.len(),
            body: body.clone(),
            started_us: now_us,
        });
        self.history.push(Operation {
            client: client as u64,
            input: call.input,
            output: None,
            call_us: now_us,
            return_us: None,
        });
        ClientStep::Send {
            to: c.target,
            request: ClientRequest {
                client,
                op_serial,
                body,
            },
        }
    }

    /// A node answered.
    pub fn on_reply(
        &mut self,
        client: usize,
        op_serial: u64,
        reply: ReplyOf<W::Machine>,
        now_us: u64,
        rng: &mut SimRng,
    ) -> ClientStep<QueryOf<W>> {
        let max_node = self.max_node;
        let c = &mut self.clients[client];
        let Some(pending) = c.pending.as_ref().filter(|p| p.op_serial == op_serial) else {
            return ClientStep::Nothing;
        };
        let index = pending.history_index;
        let input = &self.history[index].input;
        let output = match reply {
            Reply::Read(answer) => self.workload.query_output(client, input, &answer),
            Reply::Write(response) => self.workload.command_output(client, input, &response),
            Reply::Redirect(hint) => {
                c.target = hint.unwrap_or_else(|| rng.range(1, max_node + 1));
                return resend(c.target, client, op_serial, &pending.body);
            }
            Reply::Retry => {
                // Try elsewhere: the node may be cut off from the cluster for good (e.g.
                // removed from the membership while it still believes in an old leader).
                c.target = rng.range(1, max_node + 1);
                return resend(c.target, client, op_serial, &pending.body);
            }
        };
        c.pending = None;
        let op = &mut self.history[index];
        op.return_us = output.is_some().then_some(now_us);
        op.output = output;
        ClientStep::Finished {
            think_us: rng.range(0, 2 * self.config.think_mean_us + 1),
        }
    }

    /// A request timed out: send it again elsewhere, or give up when allowed.
    pub fn on_timeout(
        &mut self,
        client: usize,
        op_serial: u64,
        now_us: u64,
        may_give_up: bool,
        rng: &mut SimRng,
    ) -> ClientStep<QueryOf<W>> {
        let give_up_us = self.config.give_up_us;
        let max_node = self.max_node;
        let c = &mut self.clients[client];
        let Some(pending) = c.pending.as_ref().filter(|p| p.op_serial == op_serial) else {
            return ClientStep::Nothing;
        };
        if may_give_up && now_us.saturating_sub(pending.started_us) >= give_up_us {
            // The outcome stays unknown (no output, no return time).
            c.pending = None;
            return ClientStep::Finished {
                think_us: rng.range(0, 2 * self.config.think_mean_us + 1),
            };
        }
        c.target = rng.range(1, max_node + 1);
        resend(c.target, client, op_serial, &pending.body)
    }
}

fn resend<Q: Clone>(
    to: NodeId,
    client: usize,
    op_serial: u64,
    body: &RequestBody<Q>,
) -> ClientStep<Q> {
    ClientStep::Send {
        to,
        request: ClientRequest {
            client,
            op_serial,
            body: body.clone(),
        },
    }
}
