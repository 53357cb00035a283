//! The network between nodes: delays with a long tail, loss, duplication, reordering (from
//! random delays), very old messages delivered again, symmetric and one-way partitions, and
//! clogged links whose messages are held and then released at once.

use std::collections::BTreeMap;

use raft_core::{Message, NodeId};

use crate::profile::FaultProfile;
use crate::rng::SimRng;

/// How many past messages are kept for late redelivery.
const HISTORY_CAPACITY: usize = 256;
/// Only every n-th message is remembered for redelivery (cloning every append would cost
/// more than it finds).
const HISTORY_SAMPLE: u64 = 4;

/// A message on its way, with its delivery time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// Virtual delivery time.
    pub deliver_at_us: u64,
    /// The message.
    pub message: Message,
}

/// Network state: active cuts and clogs, held messages and a sample of past traffic.
#[derive(Debug, Default)]
pub struct Network {
    /// Directed links cut, with the number of active faults cutting each.
    cut: BTreeMap<(NodeId, NodeId), u32>,
    /// Directed links clogged, with the number of active clogs.
    clogged: BTreeMap<(NodeId, NodeId), u32>,
    /// Messages held on clogged links, in send order.
    held: BTreeMap<(NodeId, NodeId), Vec<Message>>,
    /// A sample of past messages for "very old message" redelivery.
    history: Vec<Message>,
    history_next: usize,
    sent: u64,
    /// After healing, the network is reliable (small delays only).
    healed: bool,
}

impl Network {
    /// Sends `message`; returns the deliveries it causes (none, one, or more).
    pub fn send(
        &mut self,
        message: Message,
        now_us: u64,
        profile: &FaultProfile,
        rng: &mut SimRng,
        out: &mut Vec<InFlight>,
    ) {
        let link = (message.from, message.to);
        if self.cut.contains_key(&link) {
            return;
        }
        if self.clogged.contains_key(&link) {
            self.held.entry(link).or_default().push(message);
            return;
        }
        self.sent += 1;
        if self.healed {
            let delay = rng.delay_us(profile.delay_base_us, 0.0, 0);
            out.push(InFlight {
                deliver_at_us: now_us + delay,
                message,
            });
            return;
        }
        if rng.chance(profile.replay_old) && !self.history.is_empty() {
            let old = self.history[rng.index(self.history.len())].clone();
            let delay = rng.delay_us(profile.delay_base_us, 0.0, 0);
            out.push(InFlight {
                deliver_at_us: now_us + delay,
                message: old,
            });
        }
        if rng.chance(profile.loss) {
            return;
        }
        if self.sent.is_multiple_of(HISTORY_SAMPLE) {
            self.remember(&message);
        }
        if rng.chance(profile.duplicate) {
            let delay = rng.delay_us(
                profile.delay_base_us,
                profile.delay_tail,
                profile.delay_tail_max_us,
            );
            out.push(InFlight {
                deliver_at_us: now_us + delay,
                message: message.clone(),
            });
        }
        let delay = rng.delay_us(
            profile.delay_base_us,
            profile.delay_tail,
            profile.delay_tail_max_us,
        );
        out.push(InFlight {
            deliver_at_us: now_us + delay,
            message,
        });
    }

    fn remember(&mut self, message: &Message) {
        if self.history.len() < HISTORY_CAPACITY {
            self.history.push(message.clone());
        } else {
            self.history[self.history_next] = message.clone();
            self.history_next = (self.history_next + 1) % HISTORY_CAPACITY;
        }
    }

    /// Cuts the directed links.
    pub fn cut(&mut self, links: &[(NodeId, NodeId)]) {
        for link in links {
            *self.cut.entry(*link).or_default() += 1;
        }
    }

    /// Undoes one [`Network::cut`] of the same links.
    pub fn uncut(&mut self, links: &[(NodeId, NodeId)]) {
        for link in links {
            if let Some(count) = self.cut.get_mut(link) {
                *count -= 1;
                if *count == 0 {
                    self.cut.remove(link);
                }
            }
        }
    }

    /// Clogs a directed link: messages are held until it is released.
    pub fn clog(&mut self, link: (NodeId, NodeId)) {
        *self.clogged.entry(link).or_default() += 1;
    }

    /// Releases one clog of the link; when none remain, the held messages are delivered
    /// (all at once, with fresh small delays).
    pub fn unclog(
        &mut self,
        link: (NodeId, NodeId),
        now_us: u64,
        profile: &FaultProfile,
        rng: &mut SimRng,
        out: &mut Vec<InFlight>,
    ) {
        let Some(count) = self.clogged.get_mut(&link) else {
            return;
        };
        *count -= 1;
        if *count > 0 {
            return;
        }
        self.clogged.remove(&link);
        for message in self.held.remove(&link).unwrap_or_default() {
            let delay = rng.delay_us(profile.delay_base_us, 0.0, 0);
            out.push(InFlight {
                deliver_at_us: now_us + delay,
                message,
            });
        }
    }

    /// True if the directed link is cut.
    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.cut.contains_key(&(from, to))
    }

    /// Ends every fault: cuts and clogs are removed (held messages delivered) and the
    /// network becomes reliable.
    pub fn heal(
        &mut self,
        now_us: u64,
        profile: &FaultProfile,
        rng: &mut SimRng,
        out: &mut Vec<InFlight>,
    ) {
        self.healed = true;
        self.cut.clear();
        let links: Vec<(NodeId, NodeId)> = self.clogged.keys().copied().collect();
        for link in links {
            self.clogged.insert(link, 1);
            self.unclog(link, now_us, profile, rng, out);
        }
        self.history.clear();
    }

    /// Whether the network was healed.
    pub fn is_healed(&self) -> bool {
        self.healed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;
    use raft_core::MessageBody;

    fn message(from: NodeId, to: NodeId) -> Message {
        Message {
            from,
            to,
            term: 1,
            body: MessageBody::TimeoutNow,
        }
    }

    #[test]
    fn cut_links_drop_and_clogged_links_hold_until_release() {
        let profile = FaultProfile::calm();
        let mut rng = SimRng::new(1, Stream::Network);
        let mut net = Network::default();
        let mut out = Vec::new();
        net.cut(&[(1, 2)]);
        net.send(message(1, 2), 0, &profile, &mut rng, &mut out);
        assert!(out.is_empty(), "cut link delivered");
        net.send(message(2, 1), 0, &profile, &mut rng, &mut out);
        assert_eq!(
            out.len(),
            1,
            "one-way cut must not drop the reverse direction"
        );
        out.clear();
        net.uncut(&[(1, 2)]);
        net.clog((1, 3));
        net.send(message(1, 3), 0, &profile, &mut rng, &mut out);
        net.send(message(1, 3), 10, &profile, &mut rng, &mut out);
        assert!(out.is_empty());
        net.unclog((1, 3), 1_000, &profile, &mut rng, &mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|m| m.deliver_at_us >= 1_000));
    }

    #[test]
    fn lossy_profile_loses_some_and_duplicates_some() {
        let mut profile = FaultProfile::calm();
        profile.loss = 0.3;
        profile.duplicate = 0.3;
        let mut rng = SimRng::new(2, Stream::Network);
        let mut net = Network::default();
        let mut out = Vec::new();
        for _ in 0..1000 {
            net.send(message(1, 2), 0, &profile, &mut rng, &mut out);
        }
        assert!(out.len() > 700 && out.len() < 1100, "{}", out.len());
        let mut healed = Network::default();
        let mut healed_out = Vec::new();
        healed.heal(0, &profile, &mut rng, &mut healed_out);
        for _ in 0..100 {
            healed.send(message(1, 2), 0, &profile, &mut rng, &mut healed_out);
        }
        assert_eq!(healed_out.len(), 100, "a healed network is reliable");
    }
}
