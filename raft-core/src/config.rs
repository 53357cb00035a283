//! Node configuration. Every field states what it trades off; the defaults suit a LAN
//! cluster ticked every 10-100 ms.

use thiserror::Error;

use crate::types::NodeId;

/// Configuration of one node.
///
/// Defaults: elections after 10-19 idle ticks and a heartbeat every tick (a leader failure
/// is noticed after 10 ticks, a ten-fold margin over heartbeat loss); pre-vote and
/// check-quorum on (a partitioned node cannot disrupt the cluster and a partitioned leader
/// steps down); flow-control windows large enough for loopback throughput while bounding the
/// memory a slow follower can cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node's id; never 0.
    pub id: NodeId,
    /// Base election timeout in ticks. Each timeout is drawn uniformly from
    /// `[election_ticks, 2 * election_ticks)`. Larger: fewer spurious elections, slower
    /// failover.
    pub election_ticks: u32,
    /// Ticks between leader heartbeats; must be less than `election_ticks`.
    pub heartbeat_ticks: u32,
    /// Seed of the node's random generator (election timeouts, request ids). Give each node
    /// its own, and a fresh one each time the node restarts (the OS random generator, or a
    /// counter a simulator derives): request ids of two incarnations must not collide, or a
    /// late answer to a forwarded request of the previous life could be taken for an answer
    /// to a new one.
    pub seed: u64,
    /// Ask for pre-votes before campaigning, so a node that was partitioned does not force
    /// a term change when it returns (thesis section 9.6).
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum within an election timeout steps down, and
    /// followers that heard from a leader recently ignore vote requests (thesis 6.2, 9.6).
    pub check_quorum: bool,
    /// How long, in ticks, a leader may go without hearing from a quorum before
    /// check-quorum steps it down; `None`: `election_ticks`, at least `election_ticks`
    /// otherwise. Longer: a leader rides out followers that fall silent together for a
    /// while (syncs stalled on a disk they share) instead of stepping down and costing
    /// an election, but a leader cut off from the majority keeps its role longer (it
    /// cannot commit meanwhile, and its lease still ends an election timeout after the
    /// last round a quorum acknowledged). Followers still elect a new leader after their
    /// own election timeout, so failover does not wait for it.
    pub check_quorum_ticks: Option<u32>,
    /// Most appends in flight to one follower before waiting for acknowledgements.
    pub max_inflight_appends: usize,
    /// Most bytes of entries in flight to one follower.
    pub max_inflight_bytes: u64,
    /// Most bytes of entries in one append message (at least one entry is always sent).
    pub max_append_bytes: u64,
    /// Largest command accepted by `propose`.
    pub max_entry_bytes: u64,
    /// Most bytes of appended but uncommitted commands on the leader; proposals beyond it
    /// are refused with `Overloaded` (backpressure instead of unbounded memory).
    pub max_uncommitted_bytes: u64,
    /// Most bytes of committed entries handed out for apply but not yet reported applied.
    pub max_apply_bytes: u64,
    /// Most reads waiting for confirmation.
    pub max_pending_reads: usize,
    /// Most proposals waiting for an outcome.
    pub max_pending_proposals: usize,
    /// A follower forwards proposals to the leader (true) or refuses them with `NotLeader`.
    pub forward_proposals: bool,
    /// A read or forwarded proposal without an answer after this many ticks fails.
    pub request_timeout_ticks: u32,
    /// Tells whether a command may be proposed twice with the effect of once (for example
    /// it carries a client session that the state machine deduplicates). When the leader
    /// changes before answering a forwarded proposal, a retry-safe one is re-sent to the new
    /// leader; any other gets [`crate::ProposalError::Unknown`] at once. The default says
    /// no to every command.
    pub retry_safe: RetrySafe,
    /// Bytes per snapshot chunk.
    pub snapshot_chunk_bytes: u64,
    /// Ticks without progress after which a snapshot transfer restarts from the last
    /// acknowledged offset.
    pub snapshot_retry_ticks: u32,
    /// Enable lease reads (requires `check_quorum`). See the crate docs for the clock
    /// assumption that makes them safe.
    pub lease_reads: bool,
    /// How many ticks shorter than `election_ticks` the lease is, to absorb the worst
    /// clock-rate difference between any two nodes over one election timeout.
    pub lease_drift_ticks: u32,
    /// A new voter must catch up (as a learner) within this many ticks, or the membership
    /// change is abandoned.
    pub catch_up_timeout_ticks: u32,
    /// A learner counts as caught up when its match index is within this many entries of
    /// the leader's last index.
    pub catch_up_max_lag: u64,
    /// The leader proposes promoting a caught-up learner to voter on its own.
    pub auto_promote_learners: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            id: 1,
            election_ticks: 10,
            heartbeat_ticks: 1,
            seed: 0,
            pre_vote: true,
            check_quorum: true,
            check_quorum_ticks: None,
            max_inflight_appends: 64,
            max_inflight_bytes: 8 << 20,
            max_append_bytes: 1 << 20,
            max_entry_bytes: 4 << 20,
            max_uncommitted_bytes: 64 << 20,
            max_apply_bytes: 16 << 20,
            max_pending_reads: 10_000,
            max_pending_proposals: 100_000,
            forward_proposals: true,
            request_timeout_ticks: 30,
            retry_safe: RetrySafe::NEVER,
            snapshot_chunk_bytes: 1 << 20,
            snapshot_retry_ticks: 20,
            lease_reads: false,
            lease_drift_ticks: 2,
            catch_up_timeout_ticks: 200,
            catch_up_max_lag: 64,
            auto_promote_learners: false,
        }
    }
}

/// Whether a command may be proposed twice with the effect of once: the test behind
/// [`Config::retry_safe`]. Configs compare equal when they hold the same function.
#[derive(Clone, Copy)]
pub struct RetrySafe(pub fn(&[u8]) -> bool);

impl RetrySafe {
    /// No command may be re-sent (the default).
    pub const NEVER: RetrySafe = RetrySafe(|_| false);

    /// Whether `command` may be re-sent.
    pub fn allows(&self, command: &[u8]) -> bool {
        (self.0)(command)
    }
}

impl std::fmt::Debug for RetrySafe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RetrySafe(fn)")
    }
}

impl PartialEq for RetrySafe {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::fn_addr_eq(self.0, other.0)
    }
}

impl Eq for RetrySafe {}

/// A configuration value that cannot work. Each variant names the field to fix.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// `id` must not be 0.
    #[error("node id 0 is reserved")]
    ZeroId,
    /// `heartbeat_ticks` must be at least 1 and below `election_ticks`.
    #[error("heartbeat_ticks ({heartbeat}) must be in 1..election_ticks ({election})")]
    HeartbeatTicks {
        /// The configured heartbeat interval.
        heartbeat: u32,
        /// The configured election timeout.
        election: u32,
    },
    /// A size or count limit is zero.
    #[error("limit `{0}` must be greater than zero")]
    ZeroLimit(&'static str),
    /// `check_quorum_ticks` must not be shorter than the election timeout.
    #[error("check_quorum_ticks ({check_quorum}) must be at least election_ticks ({election})")]
    CheckQuorumTicks {
        /// The configured check-quorum interval.
        check_quorum: u32,
        /// The configured election timeout.
        election: u32,
    },
    /// Lease reads need check-quorum, and a lease shorter than the election timeout.
    #[error("lease reads need check_quorum and lease_drift_ticks < election_ticks")]
    LeaseWithoutCheckQuorum,
}

impl Config {
    /// A default configuration for node `id` with RNG seed `seed`.
    pub fn new(id: NodeId, seed: u64) -> Self {
        Config {
            id,
            seed,
            ..Config::default()
        }
    }

    /// Ticks between a leader's check-quorum tests: `check_quorum_ticks`, or the election
    /// timeout.
    pub fn check_quorum_interval(&self) -> u32 {
        self.check_quorum_ticks.unwrap_or(self.election_ticks)
    }

    /// Checks the configuration; [`crate::Node::new`] calls this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError::ZeroId);
        }
        if self.heartbeat_ticks == 0 || self.heartbeat_ticks >= self.election_ticks {
            return Err(ConfigError::HeartbeatTicks {
                heartbeat: self.heartbeat_ticks,
                election: self.election_ticks,
            });
        }
        if let Some(check_quorum) = self.check_quorum_ticks
            && check_quorum < self.election_ticks
        {
            return Err(ConfigError::CheckQuorumTicks {
                check_quorum,
                election: self.election_ticks,
            });
        }
        let limits = [
            ("max_inflight_appends", self.max_inflight_appends as u64),
            ("max_inflight_bytes", self.max_inflight_bytes),
            ("max_append_bytes", self.max_append_bytes),
            ("max_entry_bytes", self.max_entry_bytes),
            ("max_uncommitted_bytes", self.max_uncommitted_bytes),
            ("max_apply_bytes", self.max_apply_bytes),
            ("max_pending_reads", self.max_pending_reads as u64),
            ("max_pending_proposals", self.max_pending_proposals as u64),
            (
                "request_timeout_ticks",
                u64::from(self.request_timeout_ticks),
            ),
            ("snapshot_chunk_bytes", self.snapshot_chunk_bytes),
            ("snapshot_retry_ticks", u64::from(self.snapshot_retry_ticks)),
        ];
        if let Some((name, _)) = limits.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::ZeroLimit(name));
        }
        if self.lease_reads && (!self.check_quorum || self.lease_drift_ticks >= self.election_ticks)
        {
            return Err(ConfigError::LeaseWithoutCheckQuorum);
        }
        Ok(())
    }
}
