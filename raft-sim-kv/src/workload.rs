//! The key-value workload: clients get, put, delete and compare-and-set on a small key
//! space, with a client session on every write so that a retried write applies once.

use std::collections::BTreeMap;

use raft_kv::{CommandError, KvStateMachine, QueryResponse, Response};
use raft_sim::{Call, Request, SimRng, Workload};

use crate::machine::{get_query, new_store, read_output, write_command, write_output};
use crate::model::{Key, KvInput, KvModel, KvOp, KvOutput, Value};

/// A client's session and what it saw.
#[derive(Clone, Debug, Default)]
struct Session {
    /// Bumped when the store forgot the session; part of the session id.
    epoch: u64,
    next_sequence: u64,
    /// The last value seen per key, to aim compare-and-sets at.
    last_seen: BTreeMap<Key, Value>,
}

/// Clients of the key-value store.
#[derive(Clone, Debug)]
pub struct KvWorkload {
    keys: u64,
    no_sessions: bool,
    sessions: Vec<Session>,
    next_value: Value,
}

impl KvWorkload {
    /// Clients on keys `0..keys`; with `no_sessions`, writes carry no session (the
    /// `no-sessions` broken variant: a retried write may apply twice).
    pub fn new(keys: u64, no_sessions: bool) -> Self {
        KvWorkload {
            keys: keys.max(1),
            no_sessions,
            sessions: Vec::new(),
            next_value: 1,
        }
    }

    fn session(&mut self, client: usize) -> &mut Session {
        if self.sessions.len() <= client {
            self.sessions.resize_with(client + 1, || Session {
                next_sequence: 1,
                ..Session::default()
            });
        }
        &mut self.sessions[client]
    }

    /// Notes what a client saw once its operation completed.
    fn saw(&mut self, client: usize, op: &KvOp, output: Option<KvOutput>) {
        let seen = match (op.input, output) {
            (_, Some(KvOutput::Get(Some(v)))) => v,
            (KvInput::Put(v), Some(_))
            | (KvInput::Cas { new: v, .. }, Some(KvOutput::Cas { swapped: true })) => v,
            _ => return,
        };
        self.session(client).last_seen.insert(op.key, seen);
    }
}

impl Workload for KvWorkload {
    type Machine = KvStateMachine;
    type Model = KvModel;

    fn machine(&self) -> KvStateMachine {
        new_store()
    }

    fn model(&self) -> &KvModel {
        &KvModel
    }

    fn next_call(
        &mut self,
        client: usize,
        now_us: u64,
        rng: &mut SimRng,
    ) -> Option<Call<KvStateMachine, KvOp>> {
        let key = rng.range(0, self.keys);
        let next_value = self.next_value;
        let no_sessions = self.no_sessions;
        self.session(client);
        let session = &mut self.sessions[client];
        let input = match rng.range(0, 10) {
            0..=3 => KvInput::Get,
            4..=6 => KvInput::Put(next_value),
            7 => KvInput::Delete,
            _ => {
                // Compare against a value this client saw, so swaps succeed now and then.
                let expected = session.last_seen.get(&key).copied().unwrap_or(next_value);
                KvInput::Cas {
                    expected,
                    new: next_value,
                }
            }
        };
        self.next_value += 1;
        let request = match input {
            KvInput::Get => Request::Query(get_query(key)),
            _ => {
                let session = (!no_sessions).then(|| {
                    let sequence = session.next_sequence;
                    session.next_sequence += 1;
                    (client as u64 + 1 + 1_000 * session.epoch, sequence)
                });
                Request::Command(write_command(key, input, session, now_us / 1000)?)
            }
        };
        Some(Call {
            input: KvOp { key, input },
            request,
        })
    }

    fn command_output(
        &mut self,
        client: usize,
        op: &KvOp,
        response: &Response,
    ) -> Option<KvOutput> {
        if let Response::Rejected(CommandError::SessionUnknown { .. }) = response {
            // The session was lost (its first write never applied): the outcome is
            // unknown and later writes need a fresh session.
            let session = self.session(client);
            session.epoch += 1;
            session.next_sequence = 1;
            return None;
        }
        let output = write_output(op.input, response);
        self.saw(client, op, output);
        output
    }

    fn query_output(
        &mut self,
        client: usize,
        op: &KvOp,
        response: &QueryResponse,
    ) -> Option<KvOutput> {
        let output = read_output(response);
        self.saw(client, op, output);
        output
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_sim::rng::Stream;
    use raft_sim::workload::{ClientConfig, ClientStep, Clients, Reply, RequestBody};

    fn clients() -> Clients<KvWorkload> {
        let config = ClientConfig {
            clients: 2,
            operations: 5,
            think_mean_us: 100,
            request_timeout_us: 1000,
            give_up_us: 5000,
        };
        Clients::new(config, KvWorkload::new(2, false), 3)
    }

    #[test]
    fn budget_is_split_and_one_operation_is_pending_per_client() {
        let mut rng = SimRng::new(1, Stream::Clients);
        let mut w = clients();
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
        let mut w = clients();
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
            w.on_reply(1, request.op_serial, Reply::Retry, 9100, &mut rng),
            ClientStep::Nothing
        );
    }

    #[test]
    fn answers_complete_the_operation_and_redirects_follow_the_hint() {
        let mut rng = SimRng::new(3, Stream::Clients);
        let mut w = clients();
        let ClientStep::Send { request, .. } = w.issue(0, 10, &mut rng) else {
            panic!("expected a send");
        };
        match w.on_reply(0, request.op_serial, Reply::Redirect(Some(3)), 20, &mut rng) {
            ClientStep::Send { to, .. } => assert_eq!(to, 3),
            other => panic!("{other:?}"),
        }
        let reply = match request.body {
            RequestBody::Read(_) => Reply::Read(QueryResponse::Get(raft_kv::GetResponse {
                entry: None,
                revision: 0,
            })),
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
        assert!(w.history()[0].output.is_some());
    }

    #[test]
    fn a_forgotten_session_makes_the_outcome_unknown_and_starts_a_new_one() {
        let mut w = KvWorkload::new(1, false);
        let op = KvOp {
            key: 0,
            input: KvInput::Put(1),
        };
        let rejected = Response::Rejected(CommandError::SessionUnknown {
            client_id: 1,
            sequence: 3,
        });
        assert_eq!(w.command_output(0, &op, &rejected), None);
        assert_eq!(w.sessions[0].epoch, 1);
        assert_eq!(w.sessions[0].next_sequence, 1);
    }
}
