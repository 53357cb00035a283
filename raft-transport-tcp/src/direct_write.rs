//! Writes from the sender's own thread: while a lane's writer task is idle, a small
//! message is encoded and written to the connection by whoever sends it (the node's
//! driver), without waking the writer task.
//!
//! Why: a lone put crosses two appends and an ack, and each went through a writer task's
//! wake-up; with two peers the second writer task was stolen by the other worker thread,
//! which tokio wakes for it (BENCHMARKS.md, branch perf-lone2). The write never blocks: it
//! polls the stream with a waker that does nothing, and whatever the socket does not take
//! at once (or a failure) is left for the writer task, which is then woken.
//!
//! Order: a message takes the direct path only while the writer task has the stream
//! parked here and no earlier message waits in the lane's queue (`queued`, counted under
//! the same lock; the writer task takes the stream out before it forgets the messages it
//! took from the queue). So frames reach the socket in the order they were sent.

use std::io;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use raft_core::Message;
use tokio::io::{AsyncWrite, WriteHalf};
use tokio::sync::Notify;

use crate::frame::{body_size_hint, encode_frame};
use crate::stream::BoxedStream;

/// Messages whose body is larger than this go through the writer task: encrypting and
/// copying them would hold up the sender, and the writer task does it beside it.
pub(crate) const DIRECT_MAX_BYTES: usize = 16 << 10;

/// The stream of one lane while its writer task is idle, shared with the sender.
#[derive(Default)]
pub(crate) struct Direct {
    state: Mutex<DirectState>,
    /// Wakes the writer task to finish (or fail) what a direct write left.
    pub(crate) leftover: Notify,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct DirectState {
    /// Present while the writer task is connected and idle.
    writer: Option<WriteHalf<BoxedStream>>,
    /// Messages put in the lane's queue and not yet taken out by the writer task.
    queued: usize,
    /// Bytes of direct writes the socket has not taken yet, for the writer task.
    rest: Vec<u8>,
    /// A direct write's bytes may sit in the TLS layer: the writer task must flush.
    needs_flush: bool,
    /// A direct write failed; the writer task reports it and reconnects.
    failed: Option<io::Error>,
    /// Reused for encoding.
    buffer: Vec<u8>,
}

/// What the writer task must do with a stream it takes back.
pub(crate) struct Leftover {
    pub(crate) rest: Vec<u8>,
    pub(crate) needs_flush: bool,
    pub(crate) failed: Option<io::Error>,
}

/// What became of a message offered to [`Direct::try_write`].
pub(crate) enum Offer {
    /// Written (all of it, or the rest handed to the writer task): count it as sent.
    Written { bytes: usize },
    /// It cannot be encoded: count it as dropped.
    Unencodable(crate::error::FrameError),
    /// Not now: queue it for the writer task.
    Queue(Message),
}

fn lock(mutex: &Mutex<DirectState>) -> MutexGuard<'_, DirectState> {
    // Each critical section leaves the state whole: a panic elsewhere loses nothing here.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl Direct {
    /// Writes `message` now if the writer task is idle with nothing queued; otherwise hands
    /// it back to be queued, and `queue` must then be called with what became of it.
    pub(crate) fn try_write(&self, message: Message, max_frame_bytes: u32) -> Offer {
        let mut state = lock(&self.state);
        let state = &mut *state;
        let idle = state.queued == 0
            && state.rest.is_empty()
            && !state.needs_flush
            && state.failed.is_none()
            && body_size_hint(&message) <= DIRECT_MAX_BYTES;
        let writer = match state.writer.as_mut() {
            Some(writer) if idle => writer,
            _ => {
                // Counted before the lock is let go, so a later message cannot overtake it.
                state.queued += 1;
                return Offer::Queue(message);
            }
        };
        state.buffer.clear();
        let bytes = match encode_frame(&message, max_frame_bytes, &mut state.buffer) {
            Ok(bytes) => bytes,
            Err(error) => return Offer::Unencodable(error),
        };
        let mut context = Context::from_waker(Waker::noop());
        let mut written = 0;
        while written < bytes {
            match Pin::new(&mut *writer).poll_write(&mut context, &state.buffer[written..]) {
                Poll::Ready(Ok(0)) => {
                    state.failed = Some(io::ErrorKind::WriteZero.into());
                    break;
                }
                Poll::Ready(Ok(n)) => written += n,
                Poll::Ready(Err(error)) => {
                    state.failed = Some(error);
                    break;
                }
                Poll::Pending => break,
            }
        }
        if state.failed.is_none() {
            if written < bytes {
                state.rest.extend_from_slice(&state.buffer[written..]);
            } else {
                match Pin::new(writer).poll_flush(&mut context) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(error)) => state.failed = Some(error),
                    Poll::Pending => state.needs_flush = true,
                }
            }
        }
        if !state.rest.is_empty() || state.needs_flush || state.failed.is_some() {
            self.leftover.notify_one();
        }
        Offer::Written { bytes }
    }

    /// The queue refused a message `try_write` counted as queued (full or closed).
    pub(crate) fn not_queued(&self) {
        let mut state = lock(&self.state);
        state.queued = state.queued.saturating_sub(1);
    }

    /// The writer task took `count` messages out of the queue.
    pub(crate) fn taken(&self, count: usize) {
        let mut state = lock(&self.state);
        state.queued = state.queued.saturating_sub(count);
    }

    /// Parks the writer task's stream here while it waits.
    pub(crate) fn park(&self, writer: WriteHalf<BoxedStream>) {
        lock(&self.state).writer = Some(writer);
    }

    /// Takes the stream back, with what direct writes left for the writer task to do.
    /// `None` if it is not parked here.
    pub(crate) fn unpark(&self) -> Option<(WriteHalf<BoxedStream>, Leftover)> {
        let mut state = lock(&self.state);
        let writer = state.writer.take()?;
        let leftover = Leftover {
            rest: std::mem::take(&mut state.rest),
            needs_flush: std::mem::take(&mut state.needs_flush),
            failed: state.failed.take(),
        };
        Some((writer, leftover))
    }
}
