//! Settings of a [`crate::RaftNode`]: the core's [`raft_core::Config`] plus what the host
//! adds (clock, snapshot policy, client timeouts, queue bounds).

use std::time::Duration;

pub use raft_host::SnapshotPolicy;
use thiserror::Error;

/// Configuration of one runtime node.
///
/// Defaults and why:
/// * `tick_interval` 10 ms. With raft-core's defaults (heartbeat every tick, election after
///   10-19 idle ticks) a leader heartbeats every 10 ms and a failed leader is replaced after
///   100-200 ms. tokio's timer has 1 ms granularity (it wakes ~2 ms late at the median on
///   the project's machines), which is 10-20% of a tick: coarse enough to keep the jitter
///   out of election decisions, fine enough for sub-second failover on a LAN. The driver
///   counts ticks from the clock, not from timer wake-ups, so a late wake-up delivers every
///   tick that was due. For WAN clusters raise it to 50-100 ms.
/// * snapshots every 100,000 entries or 256 MiB of applied commands, whichever first:
///   bounds replay time after a restart and log disk usage, while a snapshot (a full write
///   of the state) stays rare under steady load.
/// * `request_timeout` 5 s: far above a healthy commit (sub-millisecond on loopback) and an
///   election (hundreds of ms), so a client only times out when the cluster is really
///   unavailable.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The protocol's settings, including this node's id.
    pub raft: raft_core::Config,
    /// Wall-clock length of one logical tick. Shorter: faster failover and heartbeats, more
    /// idle traffic and more sensitivity to scheduling delays.
    pub tick_interval: Duration,
    /// When to take snapshots of the state machine automatically.
    pub snapshot_policy: SnapshotPolicy,
    /// How long a client call (`propose`, `read`, membership, transfer) waits before it
    /// fails with [`crate::Error::Timeout`]. The request may still take effect afterwards.
    pub request_timeout: Duration,
    /// Client requests queued for the driver before callers wait (backpressure).
    pub request_queue_capacity: usize,
    /// Most inbound messages or client requests the driver takes per wake-up before it lets
    /// the core produce output; bounds latency of one batch while keeping batches large.
    pub batch_inputs_max: usize,
}

impl RuntimeConfig {
    /// Defaults (see the type docs) around the core configuration `raft`.
    pub fn new(raft: raft_core::Config) -> Self {
        RuntimeConfig {
            raft,
            tick_interval: Duration::from_millis(10),
            snapshot_policy: SnapshotPolicy::default(),
            request_timeout: Duration::from_secs(5),
            request_queue_capacity: 4096,
            batch_inputs_max: 1024,
        }
    }

    /// Checks the configuration, the core's included.
    pub fn validate(&self) -> Result<(), RuntimeConfigError> {
        self.raft.validate()?;
        if self.tick_interval.is_zero() {
            return Err(RuntimeConfigError::Zero("tick_interval"));
        }
        if self.request_timeout.is_zero() {
            return Err(RuntimeConfigError::Zero("request_timeout"));
        }
        if self.request_queue_capacity == 0 {
            return Err(RuntimeConfigError::Zero("request_queue_capacity"));
        }
        if self.batch_inputs_max == 0 {
            return Err(RuntimeConfigError::Zero("batch_inputs_max"));
        }
        if self.snapshot_policy.every_entries == Some(0)
            || self.snapshot_policy.every_bytes == Some(0)
        {
            return Err(RuntimeConfigError::Zero("snapshot_policy"));
        }
        Ok(())
    }
}

/// A configuration that cannot work; each variant names the field to fix.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RuntimeConfigError {
    /// The core configuration is invalid.
    #[error("raft config: {0}")]
    Raft(#[from] raft_core::ConfigError),
    /// A duration, capacity or threshold is zero; use a positive value (or `None` for a
    /// snapshot trigger to disable it).
    #[error("`{0}` must be greater than zero")]
    Zero(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: defaults validate and each mistake names its field.
    #[test]
    fn validate_names_the_field() {
        let config = RuntimeConfig::new(raft_core::Config::new(1, 1));
        assert_eq!(config.validate(), Ok(()));
        let mut zero_tick = config.clone();
        zero_tick.tick_interval = Duration::ZERO;
        assert_eq!(
            zero_tick.validate(),
            Err(RuntimeConfigError::Zero("tick_interval"))
        );
        let mut zero_snapshot = config.clone();
        zero_snapshot.snapshot_policy.every_entries = Some(0);
        assert_eq!(
            zero_snapshot.validate(),
            Err(RuntimeConfigError::Zero("snapshot_policy"))
        );
        let mut bad_core = config;
        bad_core.raft.id = 0;
        assert_eq!(
            bad_core.validate(),
            Err(RuntimeConfigError::Raft(raft_core::ConfigError::ZeroId))
        );
    }
}
