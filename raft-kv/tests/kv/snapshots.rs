//! Snapshot write and restore: round trips, point-in-time views, and refusal of damaged
//! input with the state left as it was.

use std::io::ErrorKind;

use raft_core::StateMachine;
use raft_kv::{Command, Condition, KvStateMachine};

use crate::support::machine;

/// A small machine with keys, a deleted key and two sessions (one holding an empty response).
fn populated() -> KvStateMachine {
    let mut kv = machine();
    kv.apply(1, Command::put("alpha", "1", 100).with_session(1, 1));
    kv.apply(2, Command::put("beta", "2", 110));
    kv.apply(
        3,
        Command::put("alpha", "3", 120).with_condition(Condition::ModRevision(1)),
    );
    kv.apply(4, Command::delete("beta", 130));
    kv.apply(5, Command::delete("gamma", 140).with_session(2, 1));
    kv.apply(6, Command::put("delta", vec![9u8; 40], 150));
    kv
}

fn written(kv: &KvStateMachine) -> Vec<u8> {
    let mut bytes = Vec::new();
    KvStateMachine::write_snapshot(kv.snapshot(), &mut bytes)
        .expect("writing to a Vec cannot fail");
    bytes
}

#[test]
fn restore_reproduces_the_state_and_later_applies_agree() {
    let source = populated();
    let mut target = machine();
    target
        .restore(&mut written(&source).as_slice())
        .expect("a fresh snapshot restores");
    assert_eq!(target, source);
    assert_eq!(target.session_count(), 2);
    // Session caches came along: a retry after the restore is still recognised on both.
    let mut source = source;
    let retry = Command::delete("gamma", 200).with_session(2, 1);
    assert_eq!(target.apply(7, retry.clone()), source.apply(7, retry));
    let next = Command::put("omega", "z", 210);
    assert_eq!(target.apply(8, next.clone()), source.apply(8, next));
    assert_eq!(target, source);
}

#[test]
fn a_snapshot_view_is_frozen_while_applies_go_on() {
    let mut kv = populated();
    let frozen = kv.clone();
    let view = kv.snapshot();
    kv.apply(7, Command::put("alpha", "changed", 300));
    kv.apply(8, Command::delete("delta", 300));
    let mut bytes = Vec::new();
    KvStateMachine::write_snapshot(view, &mut bytes).expect("Vec write");
    let mut restored = machine();
    restored.restore(&mut bytes.as_slice()).expect("restores");
    assert_eq!(restored, frozen);
    assert_ne!(restored, kv);
}

#[test]
fn every_single_byte_corruption_is_refused_and_leaves_the_state_unchanged() {
    let bytes = written(&populated());
    let mut target = machine();
    target.apply(1, Command::put("keep", "me", 1));
    let before = target.clone();
    for position in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[position] ^= 0x5a;
        let result = target.restore(&mut damaged.as_slice());
        assert!(result.is_err(), "flipping byte {position} went unnoticed");
        assert_eq!(
            target, before,
            "a failed restore changed the state (byte {position})"
        );
    }
}

#[test]
fn every_truncation_is_refused_and_leaves_the_state_unchanged() {
    let bytes = written(&populated());
    let mut target = machine();
    target.apply(1, Command::put("keep", "me", 1));
    let before = target.clone();
    for length in 0..bytes.len() {
        let error = target
            .restore(&mut &bytes[..length])
            .expect_err("a truncated snapshot restored");
        assert_eq!(
            error.kind(),
            ErrorKind::UnexpectedEof,
            "truncated to {length} bytes: {error}"
        );
        assert_eq!(target, before);
    }
}

#[test]
fn foreign_and_future_snapshots_are_refused_with_a_clear_error() {
    let mut target = machine();
    let error = target
        .restore(&mut &b"not a snapshot at all"[..])
        .expect_err("bad magic");
    assert!(error.to_string().contains("magic"), "{error}");
    let mut future = written(&populated());
    future[8] = 3;
    let error = target
        .restore(&mut future.as_slice())
        .expect_err("future version");
    assert!(error.to_string().contains("version 3"), "{error}");
}

#[test]
fn a_huge_frame_length_is_refused_before_allocating() {
    let mut bytes = written(&populated());
    // The first frame's length field follows the 12-byte preamble.
    bytes[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    let error = machine()
        .restore(&mut bytes.as_slice())
        .expect_err("huge frame");
    assert_eq!(error.kind(), ErrorKind::InvalidData);
    assert!(error.to_string().contains("64 MiB"), "{error}");
}

#[test]
fn a_dropped_frame_is_caught_even_though_each_frame_is_intact() {
    // Remove the frame of the first key: every remaining frame checks, the stream does not.
    let bytes = written(&populated());
    let frame_length = |at: usize| {
        let length = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        8 + length as usize
    };
    let header_end = 12 + frame_length(12);
    let key_end = header_end + frame_length(header_end);
    let spliced: Vec<u8> = bytes[..header_end]
        .iter()
        .chain(&bytes[key_end..])
        .copied()
        .collect();
    let mut target = machine();
    assert!(target.restore(&mut spliced.as_slice()).is_err());
    assert_eq!(target, machine());
}
