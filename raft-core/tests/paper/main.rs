//! One test per rule of the Raft paper's section 5, named after the rule. Each drives real
//! nodes, either directly with crafted messages or through the in-memory cluster.

#[path = "../common/mod.rs"]
mod common;
mod election;
mod log_replication;
mod restarts;

use bytes::Bytes;
use common::{Cluster, config};
use raft_core::{
    Action, Config, Entry, EntryPayload, HardState, Membership, Message, MessageBody, Node, NodeId,
    RestoredState, Role, SnapshotMeta, Term,
};

fn plain_config(id: NodeId) -> Config {
    Config {
        pre_vote: false,
        check_quorum: false,
        ..config(id)
    }
}

fn node_with_log(id: NodeId, voters: &[NodeId], term: Term, log_terms: &[Term]) -> Node {
    let entries = log_terms
        .iter()
        .enumerate()
        .map(|(i, &t)| Entry {
            index: i as u64 + 1,
            term: t,
            payload: EntryPayload::Noop,
        })
        .collect();
    let restored = RestoredState {
        hard_state: HardState {
            term,
            vote: None,
            commit: 0,
        },
        snapshot: SnapshotMeta {
            index: 0,
            term: 0,
            membership: Membership::with_voters(voters.iter().copied()),
        },
        entries,
    };
    Node::new(plain_config(id), restored).unwrap()
}

fn message(from: NodeId, to: NodeId, term: Term, body: MessageBody) -> Message {
    Message {
        from,
        to,
        term,
        body,
    }
}

/// Drains actions, making every write durable at once; returns the rest.
fn drain_persisting(node: &mut Node) -> Vec<Action> {
    let mut all = Vec::new();
    for _ in 0..8 {
        let mut actions = Vec::new();
        node.drain_actions(&mut actions);
        if actions.is_empty() {
            break;
        }
        for action in actions {
            if let Action::Persist(batch) = &action {
                node.on_persisted(batch.token);
            }
            all.push(action);
        }
    }
    all
}

fn sent(actions: &[Action]) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn tick_until_campaign(node: &mut Node) {
    for _ in 0..100 {
        node.tick();
        if node.role() != Role::Follower {
            return;
        }
    }
    panic!("no campaign");
}

fn make_leader(voters: &[NodeId]) -> Node {
    let mut node = node_with_log(1, voters, 0, &[]);
    tick_until_campaign(&mut node);
    drain_persisting(&mut node);
    for &peer in voters.iter().filter(|&&p| p != 1) {
        node.step(message(
            peer,
            1,
            node.term(),
            MessageBody::VoteResponse {
                pre_vote: false,
                granted: true,
            },
        ));
    }
    assert_eq!(node.role(), Role::Leader);
    drain_persisting(&mut node);
    node
}
