//! Settings of an [`crate::Engine`]: the core's [`raft_core::Config`] plus what the host
//! adds (the length of a tick, the snapshot policy).

use std::time::Duration;

use thiserror::Error;

/// Configuration of one engine.
///
/// Defaults and why:
/// * `tick_interval` 10 ms. With raft-core's defaults (heartbeat every tick, election after
///   10-19 idle ticks) a leader heartbeats every 10 ms and a failed leader is replaced after
///   100-200 ms; coarse enough to keep timer jitter out of election decisions, fine enough
///   for sub-second failover on a LAN. For WAN clusters raise it to 50-100 ms.
/// * snapshots per [`SnapshotPolicy::default`].
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The protocol's settings, including this node's id.
    pub raft: raft_core::Config,
    /// Length of one logical tick in the driver's time. Shorter: faster failover and
    /// heartbeats, more idle traffic and more sensitivity to scheduling delays.
    pub tick_interval: Duration,
    /// When to snapshot the state machine automatically.
    pub snapshot_policy: SnapshotPolicy,
}

impl EngineConfig {
    /// Defaults (see the type docs) around the core configuration `raft`.
    pub fn new(raft: raft_core::Config) -> Self {
        EngineConfig {
            raft,
            tick_interval: Duration::from_millis(10),
            snapshot_policy: SnapshotPolicy::default(),
        }
    }

    /// Checks the configuration, the core's included.
    pub fn validate(&self) -> Result<(), EngineConfigError> {
        self.raft.validate()?;
        if self.tick_interval.is_zero() {
            return Err(EngineConfigError::Zero("tick_interval"));
        }
        if self.snapshot_policy.every_entries == Some(0)
            || self.snapshot_policy.every_bytes == Some(0)
        {
            return Err(EngineConfigError::Zero("snapshot_policy"));
        }
        Ok(())
    }
}

/// A configuration that cannot work; each variant names the field to fix.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum EngineConfigError {
    /// The core configuration is invalid.
    #[error("raft config: {0}")]
    Raft(#[from] raft_core::ConfigError),
    /// A duration or threshold is zero; use a positive value (or `None` for a snapshot
    /// trigger to disable it).
    #[error("`{0}` must be greater than zero")]
    Zero(&'static str),
}

/// When the engine snapshots the state machine and compacts the log. A snapshot starts
/// when either threshold is reached since the last snapshot.
///
/// The default, every 100,000 entries or 256 MiB of applied commands, bounds replay time
/// after a restart and log size (the core keeps the log since the last snapshot in memory),
/// while a snapshot (a full write of the state) stays rare under steady load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Entries applied since the last snapshot; `None` disables this trigger.
    pub every_entries: Option<u64>,
    /// Bytes of applied entries (as counted by [`raft_core::Entry::size_bytes`]) since the
    /// last snapshot; `None` disables this trigger.
    pub every_bytes: Option<u64>,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        SnapshotPolicy {
            every_entries: Some(100_000),
            every_bytes: Some(256 << 20),
        }
    }
}

impl SnapshotPolicy {
    /// Never snapshot automatically (the log grows without bound; for tests).
    pub fn disabled() -> Self {
        SnapshotPolicy {
            every_entries: None,
            every_bytes: None,
        }
    }

    /// True once enough has been applied since the last snapshot.
    pub fn is_due(&self, entries: u64, bytes: u64) -> bool {
        self.every_entries.is_some_and(|limit| entries >= limit)
            || self.every_bytes.is_some_and(|limit| bytes >= limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: either threshold triggers a snapshot; disabled never does; zero is refused.
    #[test]
    fn snapshot_policy_triggers_on_either_threshold() {
        let policy = SnapshotPolicy {
            every_entries: Some(10),
            every_bytes: Some(1000),
        };
        assert!(!policy.is_due(9, 999));
        assert!(policy.is_due(10, 0));
        assert!(policy.is_due(0, 1000));
        assert!(!SnapshotPolicy::disabled().is_due(u64::MAX, u64::MAX));
        let mut config = EngineConfig::new(raft_core::Config::new(1, 1));
        assert_eq!(config.validate(), Ok(()));
        config.snapshot_policy.every_bytes = Some(0);
        assert_eq!(
            config.validate(),
            Err(EngineConfigError::Zero("snapshot_policy"))
        );
    }
}
