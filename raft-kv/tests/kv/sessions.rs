//! Client sessions: exactly-once writes, expiry by log time, eviction.
