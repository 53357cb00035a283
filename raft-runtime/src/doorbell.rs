//! A queue from a plain thread (the disk thread) to the driver task that can wake the
//! driver through the tokio reactor: a send writes one byte to a socket pair the driver's
//! runtime watches.
//!
//! Why: a task woken from a thread outside the runtime is handed to a parked worker, which
//! wakes as a "searching" worker, and tokio then wakes a second idle worker in case more
//! work follows; on a quiet node that second wake-up finds nothing. A readiness event
//! wakes only the worker that polls the reactor. But a busy worker polls the reactor only
//! every `event_interval` task polls, so on a busy runtime (a leader serving many clients)
//! the completion, and with it the next group commit, would wait: there the driver asks
//! for the ordinary wake-up ([`BellReceiver::ring_through_reactor`]). Measured on a 3-node
//! cluster on 2 cores (BENCHMARKS.md, branch perf-crossings).

use std::io::{ErrorKind, Write};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};

use tokio::net::UnixStream;
use tokio::sync::Notify;

/// How the sender wakes the receiver, chosen by the receiver.
#[derive(Debug, Default)]
struct Wake {
    /// Through the reactor (a byte on the socket) rather than [`Wake::notify`].
    through_reactor: AtomicBool,
    notify: Notify,
}

/// The sending half, for a plain thread.
pub(crate) struct BellSender<T> {
    queue: Sender<T>,
    bell: StdUnixStream,
    wake: Arc<Wake>,
}

/// The receiving half, for the driver task.
pub(crate) struct BellReceiver<T> {
    queue: Receiver<T>,
    bell: UnixStream,
    wake: Arc<Wake>,
    /// False once the sender is gone and everything it sent was taken.
    open: bool,
}

/// A new queue; must be called within a tokio runtime (the receiver registers with its
/// reactor).
pub(crate) fn channel<T>() -> std::io::Result<(BellSender<T>, BellReceiver<T>)> {
    let (sender_end, receiver_end) = StdUnixStream::pair()?;
    // Never block the sender: a full socket buffer already holds unread rings.
    sender_end.set_nonblocking(true)?;
    receiver_end.set_nonblocking(true)?;
    let bell = UnixStream::from_std(receiver_end)?;
    let (queue, receiver) = std::sync::mpsc::channel();
    let wake = Arc::new(Wake::default());
    Ok((
        BellSender {
            queue,
            bell: sender_end,
            wake: Arc::clone(&wake),
        },
        BellReceiver {
            queue: receiver,
            bell,
            wake,
            open: true,
        },
    ))
}

impl<T> BellSender<T> {
    /// Queues `item` and rings; false if the receiver is gone.
    pub(crate) fn send(&self, item: T) -> bool {
        if self.queue.send(item).is_err() {
            return false;
        }
        // Rung after the item is queued, so the receiver that hears it finds the item.
        if self.wake.through_reactor.load(Ordering::Relaxed) {
            // `WouldBlock` means unread rings are pending, which wake the receiver anyway.
            let _ = (&self.bell).write(&[1]);
        } else {
            // Stores a permit if the receiver is not waiting: no wake-up is lost.
            self.wake.notify.notify_one();
        }
        true
    }
}

impl<T> BellReceiver<T> {
    /// Whether the sender should wake the receiver through the reactor (for a runtime
    /// that is mostly idle) or as tokio wakes a task from another thread (busy runtime).
    pub(crate) fn ring_through_reactor(&self, yes: bool) {
        self.wake.through_reactor.store(yes, Ordering::Relaxed);
    }

    /// Waits until the sender wakes the receiver either way (or the sender is gone), then
    /// clears the rings heard. Take the items with [`BellReceiver::try_recv`] afterwards.
    pub(crate) async fn rung(&mut self) {
        if !self.open {
            return self.wake.notify.notified().await;
        }
        tokio::select! {
            biased;
            () = self.wake.notify.notified() => return,
            readable = self.bell.readable() => if readable.is_err() {
                self.open = false;
                return;
            },
        }
        let mut rings = [0u8; 64];
        loop {
            match self.bell.try_read(&mut rings) {
                // The sender is gone: what it sent is still queued for try_recv.
                Ok(0) => {
                    self.open = false;
                    return;
                }
                Ok(_) => {}
                Err(error) if error.kind() == ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.open = false;
                    return;
                }
            }
        }
    }

    /// The next queued item, if any.
    pub(crate) fn try_recv(&self) -> Option<T> {
        self.queue.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends 1,000 items from a plain thread, woken as `through_reactor` says, and checks
    /// each wait ends after a ring and the items arrive in order; returns the receiver.
    async fn thousand_in_order(through_reactor: bool) -> BellReceiver<u32> {
        let (sender, mut receiver) = channel::<u32>().expect("socket pair");
        receiver.ring_through_reactor(through_reactor);
        let thread = std::thread::spawn(move || {
            for item in 0..1000 {
                assert!(sender.send(item));
            }
        });
        let mut next = 0;
        while next < 1000 {
            receiver.rung().await;
            while let Some(item) = receiver.try_recv() {
                assert_eq!(item, next);
                next += 1;
            }
        }
        thread.join().expect("sender thread");
        receiver
    }

    /// Goal: every item sent from a plain thread is received in order, each wait ends
    /// after a ring, and a gone sender ends the waits without losing what it sent.
    #[tokio::test]
    async fn items_from_a_thread_arrive_in_order() {
        let mut receiver = thousand_in_order(true).await;
        // Rings left over, then the end of the stream.
        while receiver.open {
            receiver.rung().await;
        }
        assert_eq!(receiver.try_recv(), None);
    }

    /// Goal: the same holds when the receiver asks to be woken without the reactor.
    #[tokio::test]
    async fn items_arrive_without_the_reactor_too() {
        thousand_in_order(false).await;
    }

    /// Goal: a sender whose receiver is gone learns it.
    #[tokio::test]
    async fn send_after_the_receiver_is_gone_fails() {
        let (sender, receiver) = channel::<u32>().expect("socket pair");
        drop(receiver);
        assert!(!sender.send(1));
    }
}
