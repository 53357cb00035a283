//! The node's inbound queue, bounded in messages (the channel) and in bytes (a ledger).
//!
//! The channel alone bounds the count, so with 16 MiB frames a full queue of 4096 could
//! hold 64 GiB. The node reads a plain `mpsc::Receiver`, which says nothing when a message
//! is taken, so the ledger infers it: the channel's free capacity tells how many messages
//! are still queued, and since all deliveries go through the ledger in channel order, the
//! oldest ledger entries beyond that count are the ones taken. Readers over budget wait
//! (TCP backpressure) until the node catches up.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use raft_core::Message;
use tokio::sync::mpsc;

/// How often a reader over budget looks again; the wait only happens while the node is
/// behind, so a millisecond of extra latency is not noticed.
const BUDGET_RECHECK: Duration = Duration::from_millis(1);

/// The receiver is gone: the node is shutting down.
#[derive(Debug)]
pub(crate) struct Closed;

/// The sending side of the node's inbound queue.
#[derive(Debug)]
pub(crate) struct InboundQueue {
    sender: mpsc::Sender<Message>,
    max_bytes: u64,
    ledger: Mutex<Ledger>,
}

/// Sizes of the messages possibly still in the channel, oldest first.
#[derive(Debug, Default)]
struct Ledger {
    sizes: VecDeque<u64>,
    bytes: u64,
}

impl Ledger {
    /// Forgets the oldest entries until at most `queued` remain.
    fn forget_taken(&mut self, queued: usize) {
        while self.sizes.len() > queued {
            let size = self.sizes.pop_front().unwrap_or(0);
            self.bytes -= size;
        }
    }
}

impl InboundQueue {
    /// A queue of at most `capacity_messages` messages and `max_bytes` bytes (one message
    /// larger than `max_bytes` is still let through when the queue is empty).
    pub(crate) fn new(
        capacity_messages: usize,
        max_bytes: u64,
    ) -> (InboundQueue, mpsc::Receiver<Message>) {
        let (sender, receiver) = mpsc::channel(capacity_messages);
        let queue = InboundQueue {
            sender,
            max_bytes,
            ledger: Mutex::new(Ledger::default()),
        };
        (queue, receiver)
    }

    /// Hands `message` (`size_bytes` on the wire) to the node, waiting while the queue is
    /// full in messages or in bytes.
    pub(crate) async fn deliver(&self, message: Message, size_bytes: u64) -> Result<(), Closed> {
        let permit = self.sender.reserve().await.map_err(|_| Closed)?;
        loop {
            {
                let mut ledger = self
                    .ledger
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner());
                // Free slots exclude our own permit and any other reader's, so `queued`
                // may overcount; the ledger then keeps too much, never too little.
                let used = self.sender.max_capacity() - self.sender.capacity();
                ledger.forget_taken(used.saturating_sub(1));
                if ledger.sizes.is_empty() || ledger.bytes + size_bytes <= self.max_bytes {
                    ledger.sizes.push_back(size_bytes);
                    ledger.bytes += size_bytes;
                    // Sent under the lock so the ledger's order is the channel's order.
                    permit.send(message);
                    return Ok(());
                }
            }
            if self.sender.is_closed() {
                return Err(Closed);
            }
            tokio::time::sleep(BUDGET_RECHECK).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use raft_core::MessageBody;

    use super::*;

    fn message(round: u64) -> Message {
        Message {
            from: 1,
            to: 2,
            term: 1,
            body: MessageBody::Heartbeat { commit: 0, round },
        }
    }

    /// Goal: deliveries stop at the byte budget while the node does not read, resume as it
    /// reads, and lose or reorder nothing.
    #[tokio::test]
    async fn byte_budget_holds_back_until_the_node_reads() {
        let (queue, mut receiver) = InboundQueue::new(100, 300);
        let queue = std::sync::Arc::new(queue);
        let writer = {
            let queue = std::sync::Arc::clone(&queue);
            tokio::spawn(async move {
                for round in 0..10 {
                    queue.deliver(message(round), 100).await.expect("open");
                }
            })
        };
        while receiver.len() < 3 {
            tokio::task::yield_now().await;
        }
        // Gives a broken budget the chance to let a fourth in; cannot fail spuriously, as
        // nobody reads and a correct budget never admits more.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            receiver.len(),
            3,
            "the budget admits three 100-byte messages"
        );
        for round in 0..10 {
            assert_eq!(receiver.recv().await, Some(message(round)));
        }
        writer.await.expect("writer");
    }

    /// Goal: a message larger than the whole budget still passes when the queue is empty,
    /// so an oversized-but-legal frame cannot wedge a connection.
    #[tokio::test]
    async fn oversized_message_passes_alone() {
        let (queue, mut receiver) = InboundQueue::new(10, 50);
        queue.deliver(message(1), 1000).await.expect("open");
        assert_eq!(receiver.recv().await, Some(message(1)));
        queue.deliver(message(2), 1000).await.expect("open");
        assert_eq!(receiver.recv().await, Some(message(2)));
    }
}
