//! Limits of the key-value state machine. Every replica must use the same values, since they
//! decide which commands are rejected and which sessions expire.

use serde::{Deserialize, Serialize};

/// The largest frame a snapshot may contain; bounds memory when reading a corrupt length.
pub(crate) const SNAPSHOT_FRAME_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Limits and session policy.
///
/// Defaults suit a general-purpose store: keys up to 4 KiB, values up to 1 MiB (etcd's
/// request limit is 1.5 MiB), sessions idle for an hour expire (far above any client retry
/// window), at most 65,536 sessions (each keeps one small response, so a few MiB), range pages
/// of at most 10,000 keys, and a watch history of the last 100,000 changes or 64 MiB, whichever
/// is smaller (at 6,000 writes/s of 100-byte values that is about 16 s of changes, enough for
/// a watcher to reconnect to another node after a failover).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvConfig {
    /// Longest key accepted. Larger keys cost memory in every index level.
    pub key_bytes_max: u64,
    /// Longest value accepted. Larger values make log entries and snapshot frames larger.
    pub value_bytes_max: u64,
    /// A session idle for longer than this (by log-carried time) is dropped. Longer keeps
    /// retries recognisable longer; shorter frees memory sooner.
    pub session_ttl_ms: u64,
    /// Most sessions kept; starting another evicts the least recently active.
    pub sessions_max: u64,
    /// Most keys a range query returns in one page.
    pub range_limit_max: u32,
    /// Most changes the watch history keeps. More lets a watcher that was away longer resume
    /// without a `compacted` error; each change costs memory and snapshot bytes.
    pub history_changes_max: u64,
    /// Most bytes (keys + values + 32 per change) the watch history keeps; the newest change
    /// is always kept, whatever its size.
    pub history_bytes_max: u64,
}

impl Default for KvConfig {
    fn default() -> Self {
        Self {
            key_bytes_max: 4 * 1024,
            value_bytes_max: 1024 * 1024,
            session_ttl_ms: 60 * 60 * 1000,
            sessions_max: 65_536,
            range_limit_max: 10_000,
            history_changes_max: 100_000,
            history_bytes_max: 64 * 1024 * 1024,
        }
    }
}

/// A [`KvConfig`] that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A key plus a value (plus overhead) must fit in one snapshot frame; lower the limits.
    #[error("key_bytes_max + value_bytes_max = {total_bytes} exceeds {max_bytes}")]
    EntryTooLarge {
        /// The sum of the two limits.
        total_bytes: u64,
        /// The most a snapshot frame allows, minus overhead.
        max_bytes: u64,
    },
    /// `key_bytes_max` must be at least 1.
    #[error("key_bytes_max must be at least 1")]
    ZeroKeyLimit,
    /// `sessions_max` must be at least 1.
    #[error("sessions_max must be at least 1")]
    ZeroSessions,
    /// `history_changes_max` and `history_bytes_max` must be at least 1.
    #[error("history_changes_max and history_bytes_max must be at least 1")]
    ZeroHistory,
}

impl KvConfig {
    /// The history's limits.
    pub(crate) fn history_limits(&self) -> crate::history::HistoryLimits {
        crate::history::HistoryLimits {
            changes_max: self.history_changes_max,
            bytes_max: self.history_bytes_max,
        }
    }

    /// Checks the limits fit together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.key_bytes_max == 0 {
            return Err(ConfigError::ZeroKeyLimit);
        }
        if self.sessions_max == 0 {
            return Err(ConfigError::ZeroSessions);
        }
        if self.history_changes_max == 0 || self.history_bytes_max == 0 {
            return Err(ConfigError::ZeroHistory);
        }
        let total_bytes = self.key_bytes_max.saturating_add(self.value_bytes_max);
        // Room for the record's metadata and varints around key and value.
        let max_bytes = SNAPSHOT_FRAME_BYTES_MAX - 1024;
        if total_bytes > max_bytes {
            return Err(ConfigError::EntryTooLarge {
                total_bytes,
                max_bytes,
            });
        }
        Ok(())
    }
}
