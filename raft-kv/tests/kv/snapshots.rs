//! Snapshot write and restore.
