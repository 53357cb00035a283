//! Simulated clients: each issues one operation at a time (get, put, delete,
//! compare-and-set) on a small key space, retries through timeouts and redirects with a
//! client session (so a retried write applies once), and records the history that the
//! linearizability checker reads.
//!
//! The simulator owns time and delivery; this module decides what a client does next.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use raft_core::NodeId;
use raft_kv::{CommandError, Response};

use crate::checker::fnv1a;
use crate::kv::{encode_write, write_output};
use crate::linearizability::{Key, KvInput, KvOutput, Operation, Value};
use crate::rng::SimRng;

/// Client timing and mix.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadConfig {
    /// Number of clients.
    pub clients: u64,
    /// Total operations over all clients.
    pub operations: u64,
    /// Keys are `0..keys`.
    pub keys: u64,
    /// Mean think time between a client's operations.
    pub think_mean_us: u64,
    /// A request without an answer for this long is sent again (to another node).
    pub request_timeout_us: u64,
    /// During the fault phase, an operation unanswered for this long is abandoned (its
    /// outcome becomes unknown). After healing, clients never give up.
    pub give_up_us: u64,
    /// Retries do not carry a session (the `no-sessions` broken variant).
    pub no_sessions: bool,
}

/// What a node is asked to do for a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestBody {
    /// Propose this write command.
    Write(Bytes),
    /// Read a key (linearizable or lease read, as the run is configured).
    Read(Key),
}

/// A client request on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRequest {
    /// Index of the client.
    pub client: usize,
    /// The client's operation serial number (for matching answers).
    pub op_serial: u64,
    /// The request.
    pub body: RequestBody,
}

/// A node's answer to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The write's response from the state machine.
    Write(Response),
    /// The value read.
    Read(Option<Value>),
    /// Not the leader; try the hinted node.
    Redirect(Option<NodeId>),
    /// Could not be served now (lost leadership, overload, unknown outcome); retry.
    Retry,
}

/// What the simulator must do after a client decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientStep {
    /// Send a request to a node (and arm a timeout).
    Send {
        /// The node.
        to: NodeId,
        /// The request.
        request: ClientRequest,
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
struct Pending {
    op_serial: u64,
    history_index: usize,
    body: RequestBody,
    started_us: u64,
}

#[derive(Clone, Debug)]
struct Client {
    target: NodeId,
    session_epoch: u64,
    next_sequence: u64,
    remaining: u64,
    next_op_serial: u64,
    pending: Option<Pending>,
    last_seen: BTreeMap<Key, Value>,
}

/// All clients and the recorded history.
#[derive(Debug)]
pub struct Workload {
    config: WorkloadConfig,
    clients: Vec<Client>,
    history: Vec<Operation>,
    /// Digest of a write's command bytes -> history index, to recognise a command in the
    /// log whatever node applied it. Lookup only.
    writes: HashMap<u64, usize>,
    next_value: Value,
    max_node: NodeId,
}

impl Workload {
    /// Clients spread over the nodes `1..=max_node`.
    pub fn new(config: WorkloadConfig, max_node: NodeId) -> Self {
        let clients = (0..config.clients)
            .map(|i| Client {
                target: 1 + i % max_node,
                session_epoch: 0,
                next_sequence: 1,
                remaining: config.operations / config.clients
                    + u64::from(i < config.operations % config.clients),
                next_op_serial: 0,
                pending: None,
                last_seen: BTreeMap::new(),
            })
            .collect();
        Workload {
            config,
            clients,
            history: Vec::new(),
            writes: HashMap::new(),
            next_value: 1,
            max_node,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &WorkloadConfig {
        &self.config
    }

    /// Number of clients.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// The recorded history (unfinished operations have no return time).
    pub fn history(&self) -> &[Operation] {
        &self.history
    }

    /// The history operation whose write command has this digest.
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
    pub fn issue(&mut self, client: usize, now_us: u64, rng: &mut SimRng) -> ClientStep {
        let keys = self.config.keys.max(1);
        let c = &mut self.clients[client];
        if c.pending.is_some() || c.remaining == 0 {
            return ClientStep::Nothing;
        }
        c.remaining -= 1;
        let key = rng.range(0, keys);
        let input = match rng.range(0, 10) {
            0..=3 => KvInput::Get,
            4..=6 => KvInput::Put(self.next_value),
            7 => KvInput::Delete,
            _ => {
                // Compare against a value this client saw, so swaps succeed now and then.
                let expected = c.last_seen.get(&key).copied().unwrap_or(self.next_value);
                KvInput::Cas {
                    expected,
                    new: self.next_value,
                }
            }
        };
        self.next_value += 1;
        let body = match input {
            KvInput::Get => RequestBody::Read(key),
            _ => {
                let session = (!self.config.no_sessions).then(|| {
                    let sequence = c.next_sequence;
                    c.next_sequence += 1;
                    (client as u64 + 1 + 1_000 * c.session_epoch, sequence)
                });
                let Some(bytes) = encode_write(key, input, session, now_us / 1000) else {
                    return ClientStep::Nothing;
                };
                self.writes.insert(fnv1a(&bytes), self.history.len());
                RequestBody::Write(bytes)
            }
        };
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
            key,
            input,
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
        reply: Reply,
        now_us: u64,
        rng: &mut SimRng,
    ) -> ClientStep {
        let max_node = self.max_node;
        let c = &mut self.clients[client];
        let Some(pending) = c.pending.as_ref().filter(|p| p.op_serial == op_serial) else {
            return ClientStep::Nothing;
        };
        let input = self.history[pending.history_index].input;
        let output = match reply {
            Reply::Read(value) => Some(KvOutput::Get(value)),
            Reply::Write(Response::Rejected(CommandError::SessionUnknown { .. })) => {
                // The session was lost (its first write never applied): the outcome is
                // unknown and later writes need a fresh session.
                c.session_epoch += 1;
                c.next_sequence = 1;
                None
            }
            Reply::Write(response) => write_output(input, &response),
            Reply::Redirect(hint) => {
                c.target = hint.unwrap_or_else(|| rng.range(1, max_node + 1));
                let request = ClientRequest {
                    client,
                    op_serial,
                    body: pending.body.clone(),
                };
                return ClientStep::Send {
                    to: c.target,
                    request,
                };
            }
            Reply::Retry => {
                // Try elsewhere: the node may be cut off from the cluster for good (e.g.
                // removed from the membership while it still believes in an old leader).
                c.target = rng.range(1, max_node + 1);
                let request = ClientRequest {
                    client,
                    op_serial,
                    body: pending.body.clone(),
                };
                return ClientStep::Send {
                    to: c.target,
                    request,
                };
            }
        };
        let index = pending.history_index;
        c.pending = None;
        let key = self.history[index].key;
        match (input, output) {
            (_, Some(KvOutput::Get(Some(v)))) => {
                c.last_seen.insert(key, v);
            }
            (KvInput::Put(v), Some(_))
            | (KvInput::Cas { new: v, .. }, Some(KvOutput::Cas { swapped: true })) => {
                c.last_seen.insert(key, v);
            }
            _ => {}
        }
        let op = &mut self.history[index];
        op.output = output;
        op.return_us = output.map(|_| now_us);
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
    ) -> ClientStep {
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
        ClientStep::Send {
            to: c.target,
            request: ClientRequest {
                client,
                op_serial,
                body: pending.body.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;

    fn config() -> WorkloadConfig {
        WorkloadConfig {
            clients: 2,
            operations: 5,
            keys: 2,
            think_mean_us: 100,
            request_timeout_us: 1000,
            give_up_us: 5000,
            no_sessions: false,
        }
    }

    #[test]
    fn budget_is_split_and_one_operation_is_pending_per_client() {
        let mut rng = SimRng::new(1, Stream::Clients);
        let mut w = Workload::new(config(), 3);
        assert_eq!(w.outstanding(), (0, 5));
        assert!(matches!(w.issue(0, 0, &mut rng), ClientStep::Send { .. }));
        assert_eq!(
            w.issue(0, 0, &mut rng),
            ClientStep::Nothing,
            "second op while one pending"
        );
        assert_eq!(w.outstanding(), (1, 4));
    }

    #[test]
    fn timeouts_resend_then_give_up_leaving_the_outcome_unknown() {
        let mut rng = SimRng::new(2, Stream::Clients);
        let mut w = Workload::new(config(), 3);
        let ClientStep::Send { request, .. } = w.issue(1, 10, &mut rng) else {
            panic!("expected a send");
        };
        let step = w.on_timeout(1, request.op_serial, 1000, true, &mut rng);
        assert!(matches!(step, ClientStep::Send { .. }));
        let step = w.on_timeout(1, request.op_serial, 9000, false, &mut rng);
        assert!(
            matches!(step, ClientStep::Send { .. }),
            "after healing clients never give up"
        );
        assert!(matches!(
            w.on_timeout(1, request.op_serial, 9000, true, &mut rng),
            ClientStep::Finished { .. }
        ));
        assert_eq!(w.history()[0].return_us, None);
        // A late answer to the abandoned operation is ignored.
        assert_eq!(
            w.on_reply(1, request.op_serial, Reply::Read(None), 9100, &mut rng),
            ClientStep::Nothing
        );
    }

    #[test]
    fn answers_complete_the_operation_and_redirects_follow_the_hint() {
        let mut rng = SimRng::new(3, Stream::Clients);
        let mut w = Workload::new(config(), 3);
        let ClientStep::Send { request, .. } = w.issue(0, 10, &mut rng) else {
            panic!("expected a send");
        };
        match w.on_reply(0, request.op_serial, Reply::Redirect(Some(3)), 20, &mut rng) {
            ClientStep::Send { to, .. } => assert_eq!(to, 3),
            other => panic!("{other:?}"),
        }
        let reply = match request.body {
            RequestBody::Read(_) => Reply::Read(Some(4)),
            RequestBody::Write(_) => Reply::Write(Response::Delete {
                revision: 1,
                previous: None,
            }),
        };
        assert!(matches!(
            w.on_reply(0, request.op_serial, reply, 30, &mut rng),
            ClientStep::Finished { .. }
        ));
        assert_eq!(w.history()[0].call_us, 10);
    }
}
