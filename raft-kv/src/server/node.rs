//! [`RuntimeBackend`]: the [`KvBackend`] over a real replicated node
//! ([`raft_runtime::RaftNode`] with file storage and TCP transport).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use raft_core::{Membership, MembershipError, PeerState, Role, TransferError};
use raft_runtime::{Consistency, Error as RuntimeError, Lifecycle, PeerInfo, RaftNode};
use raft_transport_tcp::{ConnectionState, TcpTransport, Transport};

use crate::server::backend::KvBackend;
use crate::server::error::{ApiError, ErrorCode};
use crate::server::prom::PromWriter;
use crate::server::wire::{
    AddMemberBody, LeaderRef, MemberBody, MemberRole, MembersBody, ProgressBody, ReadConsistency,
    StatusBody,
};
use crate::{Command, KvStateMachine, Query, QueryResponse, Response};

/// The node type the server runs.
pub type KvNode = RaftNode<KvStateMachine, TcpTransport>;

/// A running node, seen through the HTTP layer's interface.
pub struct RuntimeBackend {
    node: KvNode,
    /// A handle on the node's transport, for per-peer network metrics.
    transport: TcpTransport,
}

impl RuntimeBackend {
    /// Wraps a started node and (a clone of) its transport.
    pub fn new(node: KvNode, transport: TcpTransport) -> Self {
        RuntimeBackend { node, transport }
    }

    /// The node.
    pub fn node(&self) -> &KvNode {
        &self.node
    }

    fn leader_ref(&self, leader: Option<u64>) -> Option<LeaderRef> {
        leader.map(|id| LeaderRef {
            id,
            url: self
                .node
                .peers()
                .get(&id)
                .and_then(|p| p.client_url.clone()),
        })
    }

    fn members_body(&self, membership: &Membership) -> MembersBody {
        let book = self.node.peers();
        let members = membership
            .members()
            .into_iter()
            .map(|id| {
                let info = book.get(&id);
                MemberBody {
                    id,
                    role: role_in(membership, id).to_string(),
                    raft_addr: info.map(|i| i.address.to_string()),
                    url: info.and_then(|i| i.client_url.clone()),
                }
            })
            .collect();
        MembersBody {
            members,
            joint: membership.is_joint(),
        }
    }

    fn error(&self, error: RuntimeError) -> ApiError {
        runtime_error(error, |id| self.leader_ref(id))
    }
}

/// A member's role in `membership`, for people.
fn role_in(membership: &Membership, id: u64) -> &'static str {
    if membership.is_witness(id) {
        "witness"
    } else if membership.incoming.contains(&id) {
        "voter"
    } else if membership.outgoing.contains(&id) {
        "voter (leaving)"
    } else {
        "learner"
    }
}

/// Classifies a runtime error for HTTP; `leader` resolves a leader id to its URL.
fn runtime_error(
    error: RuntimeError,
    leader: impl Fn(Option<u64>) -> Option<LeaderRef>,
) -> ApiError {
    let message = error.to_string();
    match error {
        RuntimeError::NotLeader {
            leader_hint,
            leader_client_url,
            ..
        } => {
            let mut leader = leader(leader_hint);
            if let (Some(l), Some(url)) = (leader.as_mut(), leader_client_url) {
                l.url = Some(url);
            }
            if leader.is_none() {
                let message = "no leader known: an election is in progress, or too few \
                               nodes are reachable for a quorum; retry";
                return ApiError::new(ErrorCode::Unavailable, message);
            }
            ApiError::new(ErrorCode::NotLeader, message).with_leader(leader)
        }
        RuntimeError::Dropped
        | RuntimeError::TransferInProgress
        | RuntimeError::LeadershipLost
        | RuntimeError::LeaseDisabled
        | RuntimeError::Witness => ApiError::new(ErrorCode::Unavailable, message),
        RuntimeError::Overloaded => ApiError::new(ErrorCode::Overloaded, message),
        RuntimeError::OutcomeUnknown { .. } | RuntimeError::ResponseUnavailable { .. } => {
            ApiError::new(ErrorCode::OutcomeUnknown, message)
        }
        RuntimeError::Timeout { .. } => ApiError::new(ErrorCode::Timeout, message),
        RuntimeError::TooLarge { .. } => ApiError::new(ErrorCode::ValueTooLarge, message),
        // Changes that finish on their own, or a lost leadership: retrying shortly works.
        RuntimeError::Membership(
            MembershipError::ChangeInProgress | MembershipError::LeadershipLost,
        )
        | RuntimeError::Transfer(TransferError::InProgress) => {
            ApiError::new(ErrorCode::Unavailable, message)
        }
        RuntimeError::Membership(_) => ApiError::new(ErrorCode::MembershipRefused, message),
        RuntimeError::Transfer(_) => ApiError::new(ErrorCode::TransferFailed, message),
        RuntimeError::Shutdown => ApiError::new(ErrorCode::ShuttingDown, message),
        RuntimeError::InvalidCommand { .. }
        | RuntimeError::Encode { .. }
        | RuntimeError::Stopped { .. }
        | RuntimeError::SnapshotFailed { .. } => ApiError::new(ErrorCode::Internal, message),
    }
}

fn consistency(c: ReadConsistency) -> Consistency {
    match c {
        ReadConsistency::Linearizable => Consistency::Linearizable,
        ReadConsistency::Lease => Consistency::Lease,
        ReadConsistency::Stale => Consistency::Stale,
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::PreCandidate => "precandidate",
    }
}

fn lifecycle_name(lifecycle: &Lifecycle) -> String {
    match lifecycle {
        Lifecycle::Running => "running".into(),
        Lifecycle::Stopped => "stopped".into(),
        Lifecycle::Failed { reason } => format!("failed: {reason}"),
    }
}

#[async_trait]
impl KvBackend for RuntimeBackend {
    fn id(&self) -> u64 {
        self.node.id()
    }

    async fn write(&self, command: Command) -> Result<Response, ApiError> {
        self.node.propose(command).await.map_err(|e| self.error(e))
    }

    async fn read(&self, query: Query, level: ReadConsistency) -> Result<QueryResponse, ApiError> {
        self.node
            .read(query, consistency(level))
            .await
            .map_err(|e| self.error(e))
    }

    async fn wait_applied_beyond(&self, index: u64, timeout: Duration) -> Result<bool, ApiError> {
        let mut status = self.node.watch_status();
        let applied = status.wait_for(|s| s.raft.applied > index);
        match tokio::time::timeout(timeout, applied).await {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(_)) => Err(ApiError::new(ErrorCode::ShuttingDown, "the node stopped")),
            Err(_) => Ok(false),
        }
    }

    fn status(&self) -> StatusBody {
        let status = self.node.status();
        let raft = &status.raft;
        let progress = raft
            .progress
            .iter()
            .map(|(id, p)| {
                let state = match p.state {
                    PeerState::Probe => "probe",
                    PeerState::Replicate => "replicate",
                    PeerState::Snapshot => "snapshot",
                };
                let body = ProgressBody {
                    match_index: p.match_index,
                    next_index: p.next_index,
                    state: state.to_string(),
                    active: p.recently_active,
                };
                (*id, body)
            })
            .collect::<BTreeMap<_, _>>();
        StatusBody {
            id: raft.id,
            role: role_name(raft.role).to_string(),
            term: raft.term,
            leader: self.leader_ref(raft.leader),
            commit: raft.commit,
            applied: raft.applied,
            last_index: raft.last_index,
            snapshot_index: raft.snapshot_index,
            members: self.members_body(&raft.membership).members,
            progress,
            lifecycle: lifecycle_name(&status.lifecycle),
        }
    }

    fn members(&self) -> MembersBody {
        self.members_body(&self.node.status().raft.membership)
    }

    async fn add_member(&self, add: AddMemberBody) -> Result<MembersBody, ApiError> {
        let membership = self.node.status().raft.membership;
        let peer = || -> Result<PeerInfo<SocketAddr>, ApiError> {
            let address = add
                .raft_addr
                .as_deref()
                .ok_or_else(|| ApiError::bad_request("raft_addr is required to add a node"))?
                .parse::<SocketAddr>()
                .map_err(|e| ApiError::bad_request(format!("bad raft_addr: {e}")))?;
            let mut info = PeerInfo::new(address);
            info.client_url = add.url.clone();
            Ok(info)
        };
        let result = match add.role {
            MemberRole::Voter if membership.is_learner(add.id) => {
                self.node.promote_learner(add.id).await
            }
            MemberRole::Voter => self.node.add_voter(add.id, peer()?).await,
            MemberRole::Learner => self.node.add_learner(add.id, peer()?).await,
            MemberRole::Witness => self.node.add_witness(add.id, peer()?).await,
        };
        let membership = result.map_err(|e| self.error(e))?;
        tracing::info!(node = add.id, role = ?add.role, membership = %membership.describe(), "member added");
        Ok(self.members_body(&membership))
    }

    async fn remove_member(&self, id: u64) -> Result<MembersBody, ApiError> {
        let membership = self.node.remove_node(id).await.map_err(|e| self.error(e))?;
        tracing::info!(node = id, membership = %membership.describe(), "member removed");
        Ok(self.members_body(&membership))
    }

    async fn transfer_leader(&self, target: Option<u64>) -> Result<u64, ApiError> {
        let leader = match self.node.transfer_leadership(target).await {
            Ok(leader) => leader,
            // Asking the leader to hand over to itself: already done, not a conflict.
            Err(RuntimeError::Transfer(TransferError::AlreadyLeader)) => {
                return Ok(self.node.id());
            }
            Err(error) => return Err(self.error(error)),
        };
        tracing::info!(leader, "leadership transferred");
        Ok(leader)
    }

    fn render_metrics(&self, out: &mut String) {
        render_node_metrics(&self.node, &self.transport, &mut PromWriter::new(out));
    }

    fn health(&self) -> Result<(), String> {
        match self.node.status().lifecycle {
            Lifecycle::Running => Ok(()),
            other => Err(lifecycle_name(&other)),
        }
    }
}

/// A node counter: name, help, and how to read it from the runtime's metrics.
type NodeCounter = (
    &'static str,
    &'static str,
    fn(&raft_runtime::Metrics) -> u64,
);

/// The runtime's counters, as Prometheus counters.
const NODE_COUNTERS: [NodeCounter; 20] = [
    (
        "raft_proposals_submitted_total",
        "Proposals submitted here.",
        |m| m.proposals_submitted,
    ),
    ("raft_proposals_applied_total", "Proposals answered.", |m| {
        m.proposals_applied
    }),
    (
        "raft_proposals_failed_total",
        "Proposals that failed.",
        |m| m.proposals_failed,
    ),
    ("raft_reads_submitted_total", "Reads submitted here.", |m| {
        m.reads_submitted
    }),
    ("raft_reads_failed_total", "Reads that failed.", |m| {
        m.reads_failed
    }),
    (
        "raft_reads_lease_fast_total",
        "Lease reads answered beside the driver.",
        |m| m.reads_lease_fast,
    ),
    (
        "raft_reads_lease_fallback_total",
        "Lease reads sent through the driver.",
        |m| m.reads_lease_fallback,
    ),
    ("raft_entries_applied_total", "Log entries applied.", |m| {
        m.entries_applied
    }),
    ("raft_fsyncs_total", "Disk syncs.", |m| m.fsyncs),
    ("raft_disk_batches_total", "Disk-lane batches.", |m| {
        m.disk_batches
    }),
    ("raft_disk_ops_total", "Disk-lane operations.", |m| {
        m.disk_ops
    }),
    (
        "raft_messages_sent_total",
        "Messages handed to the transport.",
        |m| m.messages_sent,
    ),
    ("raft_messages_received_total", "Messages received.", |m| {
        m.messages_received
    }),
    (
        "raft_snapshot_chunks_sent_total",
        "Snapshot chunks sent.",
        |m| m.snapshot_chunks_sent,
    ),
    (
        "raft_snapshots_saved_total",
        "Local snapshots saved.",
        |m| m.snapshots_saved,
    ),
    (
        "raft_snapshots_failed_total",
        "Local snapshots failed.",
        |m| m.snapshots_failed,
    ),
    (
        "raft_snapshots_restored_total",
        "Snapshots installed.",
        |m| m.snapshots_restored,
    ),
    ("raft_role_changes_total", "Role changes.", |m| {
        m.role_changes
    }),
    (
        "raft_driver_batches_total",
        "Driver wake-ups with work.",
        |m| m.driver_batches,
    ),
    (
        "raft_commands_invalid_total",
        "Undecodable commands.",
        |m| m.commands_invalid,
    ),
];

fn render_node_metrics(node: &KvNode, transport: &TcpTransport, w: &mut PromWriter<'_>) {
    let status = node.status();
    let raft = &status.raft;
    w.single("raft_term", "gauge", "Current term.", raft.term as f64);
    w.family("raft_role", "gauge", "1 for the node's current role.");
    for role in [
        Role::Leader,
        Role::Follower,
        Role::Candidate,
        Role::PreCandidate,
    ] {
        let value = if raft.role == role { 1.0 } else { 0.0 };
        w.sample("raft_role", &[("role", role_name(role))], value);
    }
    w.single(
        "raft_commit_index",
        "gauge",
        "Commit index.",
        raft.commit as f64,
    );
    w.single(
        "raft_applied_index",
        "gauge",
        "Applied index.",
        raft.applied as f64,
    );
    w.single(
        "raft_last_log_index",
        "gauge",
        "Last log index.",
        raft.last_index as f64,
    );
    let snapshot_index = raft.snapshot_index as f64;
    w.single(
        "raft_snapshot_index",
        "gauge",
        "Latest snapshot index.",
        snapshot_index,
    );
    let m = node.metrics();
    for (name, help, get) in NODE_COUNTERS {
        w.single(name, "counter", help, get(&m) as f64);
    }
    let summaries = [
        (
            "raft_fsync_seconds",
            "Latency of disk syncs.",
            m.fsync_latency,
        ),
        (
            "raft_apply_batch_seconds",
            "Latency of apply batches.",
            m.apply_latency,
        ),
    ];
    for (name, help, summary) in summaries {
        w.family(name, "summary", help);
        w.sample(name, &[("quantile", "0.5")], summary.p50_us as f64 / 1e6);
        w.sample(name, &[("quantile", "0.99")], summary.p99_us as f64 / 1e6);
        let sum = summary.mean_us as f64 * summary.count as f64 / 1e6;
        w.sample(&format!("{name}_sum"), &[], sum);
        w.sample(&format!("{name}_count"), &[], summary.count as f64);
    }
    render_peer_metrics(transport, w);
}

/// A per-peer counter family: name, help, and how to read it.
type PeerFamily = (
    &'static str,
    &'static str,
    fn(&raft_transport_tcp::PeerMetrics) -> u64,
);

fn render_peer_metrics(transport: &TcpTransport, w: &mut PromWriter<'_>) {
    let metrics = transport.metrics();
    let peers: Vec<(String, _)> = metrics
        .peers
        .iter()
        .map(|(id, p)| (id.to_string(), p))
        .collect();
    let families: [PeerFamily; 6] = [
        (
            "raft_peer_messages_sent_total",
            "Messages sent to the peer.",
            |p| p.messages_sent,
        ),
        (
            "raft_peer_bytes_sent_total",
            "Bytes sent to the peer.",
            |p| p.bytes_sent,
        ),
        (
            "raft_peer_messages_received_total",
            "Messages received from the peer.",
            |p| p.messages_received,
        ),
        (
            "raft_peer_bytes_received_total",
            "Bytes received from the peer.",
            |p| p.bytes_received,
        ),
        (
            "raft_peer_messages_dropped_total",
            "Messages to the peer dropped.",
            |p| p.messages_dropped(),
        ),
        (
            "raft_peer_reconnects_total",
            "Reconnects to the peer.",
            |p| p.reconnects,
        ),
    ];
    for (name, help, get) in families {
        w.family(name, "counter", help);
        for (id, p) in &peers {
            w.sample(name, &[("peer", id)], get(p) as f64);
        }
    }
    w.family(
        "raft_peer_connected",
        "gauge",
        "1 while the peer's connection is up.",
    );
    for (id, p) in &peers {
        let up = matches!(p.state, ConnectionState::Connected);
        w.sample(
            "raft_peer_connected",
            &[("peer", id)],
            if up { 1.0 } else { 0.0 },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a not-leader error names the leader with its URL, and without a known leader it
    /// becomes a plain "unavailable" (nothing to follow).
    #[test]
    fn not_leader_errors_carry_the_leader() {
        let lookup = |id: Option<u64>| id.map(|id| LeaderRef { id, url: None });
        let error = runtime_error(
            RuntimeError::NotLeader {
                leader_hint: Some(2),
                leader_addr: None,
                leader_client_url: Some("http://127.0.0.1:8002".into()),
            },
            lookup,
        );
        assert_eq!(error.code, ErrorCode::NotLeader);
        assert_eq!(
            error.leader,
            Some(LeaderRef {
                id: 2,
                url: Some("http://127.0.0.1:8002".into())
            })
        );
        let error = runtime_error(
            RuntimeError::NotLeader {
                leader_hint: None,
                leader_addr: None,
                leader_client_url: None,
            },
            lookup,
        );
        assert_eq!(error.code, ErrorCode::Unavailable);
        let timeout = runtime_error(RuntimeError::Timeout { waited_ms: 5 }, lookup);
        assert_eq!(timeout.code.status(), 504);
    }
}
