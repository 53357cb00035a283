//! One open store per directory: a second open, in this process or another, fails with a
//! clear error naming the directory, and the directory is free again once the first store
//! is dropped or its process exits.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use raft_storage_file::{FileStorage, StorageError};

#[test]
fn a_second_open_of_one_directory_fails_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let first = FileStorage::open(dir.path()).unwrap();
    match FileStorage::open(dir.path()) {
        Err(error @ StorageError::Locked { .. }) => {
            let StorageError::Locked { dir: named } = &error else {
                unreachable!()
            };
            assert_eq!(named, dir.path());
            let message = error.to_string();
            assert!(
                message.contains(&dir.path().display().to_string()),
                "the error does not name the directory: {message}"
            );
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(first);
    FileStorage::open(dir.path()).expect("open after the first store was dropped");
}

#[test]
fn another_process_holding_the_lock_keeps_the_store_closed() {
    // Method: flock(1) from util-linux takes the same kind of lock (flock(2)) in another
    // process, as a second node started on the same directory would.
    let dir = tempfile::tempdir().unwrap();
    drop(FileStorage::open(dir.path()).unwrap());
    let lock_path = dir.path().join("LOCK");
    let holder = Command::new("flock")
        .arg("--exclusive")
        .arg(&lock_path)
        .args(["sh", "-c", "echo held; read line"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let Ok(mut holder) = holder else {
        eprintln!("flock(1) is not installed; cross-process case skipped");
        return;
    };
    let mut said = String::new();
    let stdout = holder.stdout.take().unwrap();
    BufReader::new(stdout).read_line(&mut said).unwrap();
    assert_eq!(said.trim(), "held");
    let opened = FileStorage::open(dir.path());
    assert!(
        matches!(opened, Err(StorageError::Locked { .. })),
        "opened while another process held the lock: {opened:?}"
    );
    drop(holder.stdin.take()); // the holder's `read` ends, and with it the process
    holder.wait().unwrap();
    FileStorage::open(dir.path()).expect("open after the other process exited");
}
