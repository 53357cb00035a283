//! Reads, leadership transfer, membership changes, learners and witnesses, driven through
//! the in-memory cluster. Each test states the behaviour a user relies on.

mod batching;
#[path = "../common/mod.rs"]
mod common;
mod membership;
mod reads;
mod snapshots;
mod transfer;
mod witnesses;

use common::{Cluster, Disk, config};
use raft_core::{
    Action, Config, EntryPayload, MembershipChange, MembershipError, MessageBody, NodeId,
    ReadConsistency, ReadError, ReadId, Role, TransferError, TransferId,
};

fn read_outcomes(cluster: &Cluster, node: NodeId, id: ReadId) -> Vec<Result<u64, ReadError>> {
    cluster
        .events
        .iter()
        .filter_map(|(n, a)| match a {
            Action::ReadOutcome { id: got, result } if *n == node && *got == id => {
                Some(result.clone())
            }
            _ => None,
        })
        .collect()
}

fn transfer_outcomes(cluster: &Cluster) -> Vec<(NodeId, Result<(), TransferError>)> {
    transfer_outcomes_with_ids(cluster)
        .into_iter()
        .map(|(_, target, result)| (target, result))
        .collect()
}

fn transfer_outcomes_with_ids(
    cluster: &Cluster,
) -> Vec<(TransferId, NodeId, Result<(), TransferError>)> {
    cluster
        .events
        .iter()
        .filter_map(|(_, a)| match a {
            Action::TransferOutcome { id, target, result } => Some((*id, *target, result.clone())),
            _ => None,
        })
        .collect()
}

fn membership_outcomes(cluster: &Cluster) -> Vec<Result<raft_core::Membership, MembershipError>> {
    cluster
        .events
        .iter()
        .filter_map(|(_, a)| match a {
            Action::MembershipOutcome { result, .. } => Some(result.clone().map(|m| *m)),
            _ => None,
        })
        .collect()
}

/// Asks node `node` to change the membership and carries out its actions.
fn change(cluster: &mut Cluster, node: NodeId, changes: Vec<MembershipChange>) {
    let _ = cluster.node_mut(node).change_membership(changes);
    cluster.process(node);
}

fn tick_rounds(cluster: &mut Cluster, rounds: usize) {
    for _ in 0..rounds {
        cluster.tick_all();
        cluster.settle();
    }
}

fn read(cluster: &mut Cluster, node: NodeId, consistency: ReadConsistency) -> ReadId {
    let id = cluster.node_mut(node).read(consistency);
    cluster.process(node);
    id
}

/// A node that joins later: it knows no membership and waits to be contacted.
fn add_empty_node(cluster: &mut Cluster, id: NodeId) {
    cluster.add_node(id, config(id), Disk::default());
}
