//! Admission control for inbound connections: how many may be pending a handshake, from
//! one address and in all, how many may be open at once, and how many one peer may hold
//! per lane.
//!
//! A stranger costs a slot only while its handshake is pending, and a newcomer over a
//! pending limit evicts the *oldest* pending connection (from the same address first,
//! then from anywhere). Real peers finish their handshake in milliseconds, so they are
//! never the oldest for long; idle strangers are, and cannot hold slots against them.
//! Established connections are authenticated peers, each bounded per lane, so the total
//! is bounded by the peer count; they are never evicted.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use raft_core::NodeId;
use tokio::sync::Notify;

use crate::error::{ConnectionError, HandshakeError};
use crate::handshake::Lane;

/// The limits enforced; see the fields of [`crate::TcpConfig`] of the same names.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) pending_max: usize,
    pub(crate) pending_per_ip_max: usize,
    pub(crate) inbound_max: usize,
    /// Established connections one peer may hold on one lane. More than one, so a peer
    /// that reconnects is let in while its previous connection (maybe half-open after a
    /// crash, until keepalive notices) is still counted; bounded, so that neither a peer nor,
    /// in plaintext mode, someone claiming its id can open connections without end. A
    /// newer connection never closes an older one: that would let anyone who can claim a
    /// peer's id cut that peer's real connection.
    pub(crate) per_peer_lane_max: usize,
}

/// Established connections one peer may hold on one lane; see [`Limits::per_peer_lane_max`].
pub(crate) const PER_PEER_LANE_MAX: usize = 4;

/// The shared books of inbound connections.
#[derive(Debug)]
pub(crate) struct Admission {
    limits: Limits,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_ticket: u64,
    /// Pending handshakes by ticket; tickets increase, so the first is the oldest.
    pending: BTreeMap<u64, Pending>,
    pending_per_ip: BTreeMap<IpAddr, usize>,
    established: usize,
    per_peer_lane: BTreeMap<(NodeId, Lane), usize>,
}

#[derive(Debug)]
struct Pending {
    ip: IpAddr,
    evict: Arc<Notify>,
}

impl State {
    fn remove_pending(&mut self, ticket: u64) -> Option<Pending> {
        let pending = self.pending.remove(&ticket)?;
        if let Some(count) = self.pending_per_ip.get_mut(&pending.ip) {
            *count -= 1;
            if *count == 0 {
                self.pending_per_ip.remove(&pending.ip);
            }
        }
        Some(pending)
    }

    /// Evicts the oldest pending handshake that `matches`; false if there is none.
    fn evict_oldest(&mut self, matches: impl Fn(&Pending) -> bool) -> bool {
        let Some(ticket) = self
            .pending
            .iter()
            .find(|(_, pending)| matches(pending))
            .map(|(ticket, _)| *ticket)
        else {
            return false;
        };
        if let Some(pending) = self.remove_pending(ticket) {
            // `notify_one` keeps a permit, so the task sees it even if not waiting yet.
            pending.evict.notify_one();
        }
        true
    }
}

fn lock(mutex: &Mutex<State>) -> MutexGuard<'_, State> {
    // Every critical section leaves the books consistent at each step.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl Admission {
    pub(crate) fn new(limits: Limits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            state: Mutex::new(State::default()),
        })
    }

    /// Books a new connection from `ip` as pending, evicting the oldest pending ones over
    /// the limits. `None` if the inbound limit is reached and nothing is pending: close it.
    pub(crate) fn arrive(self: &Arc<Self>, ip: IpAddr) -> Option<PendingSlot> {
        let mut state = lock(&self.state);
        if state.pending.len() + state.established >= self.limits.inbound_max
            && !state.evict_oldest(|_| true)
        {
            return None;
        }
        let from_ip = state.pending_per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.limits.pending_per_ip_max {
            state.evict_oldest(|pending| pending.ip == ip);
        }
        if state.pending.len() >= self.limits.pending_max {
            state.evict_oldest(|_| true);
        }
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        let evict = Arc::new(Notify::new());
        let pending = Pending {
            ip,
            evict: Arc::clone(&evict),
        };
        state.pending.insert(ticket, pending);
        *state.pending_per_ip.entry(ip).or_insert(0) += 1;
        Some(PendingSlot {
            admission: Arc::clone(self),
            ticket,
            evict,
        })
    }

    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let state = lock(&self.state);
        (state.pending.len(), state.established)
    }
}

/// A connection whose handshake is pending. Dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct PendingSlot {
    admission: Arc<Admission>,
    ticket: u64,
    evict: Arc<Notify>,
}

impl PendingSlot {
    /// Completes when a newer connection took this slot; the connection must then close.
    pub(crate) async fn evicted(&self) {
        self.evict.notified().await;
    }

    /// Turns the slot into an established connection of `peer` on `lane`, if it was not
    /// evicted and the peer has room on that lane.
    pub(crate) fn establish(
        self,
        peer: NodeId,
        lane: Lane,
    ) -> Result<EstablishedSlot, ConnectionError> {
        let admission = Arc::clone(&self.admission);
        let mut state = lock(&admission.state);
        if state.remove_pending(self.ticket).is_none() {
            return Err(ConnectionError::Evicted);
        }
        let count = state.per_peer_lane.entry((peer, lane)).or_insert(0);
        if *count >= admission.limits.per_peer_lane_max {
            let count = *count;
            return Err(HandshakeError::PeerLaneFull { peer, count }.into());
        }
        *count += 1;
        state.established += 1;
        drop(state);
        Ok(EstablishedSlot {
            admission,
            peer,
            lane,
        })
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        lock(&self.admission.state).remove_pending(self.ticket);
    }
}

/// An established connection of a peer on a lane. Dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct EstablishedSlot {
    admission: Arc<Admission>,
    peer: NodeId,
    lane: Lane,
}

impl Drop for EstablishedSlot {
    fn drop(&mut self) {
        let mut state = lock(&self.admission.state);
        state.established -= 1;
        let key = (self.peer, self.lane);
        if let Some(count) = state.per_peer_lane.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                state.per_peer_lane.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const LIMITS: Limits = Limits {
        pending_max: 4,
        pending_per_ip_max: 2,
        inbound_max: 6,
        per_peer_lane_max: 2,
    };

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    async fn is_evicted(slot: &PendingSlot) -> bool {
        tokio::time::timeout(Duration::from_millis(1), slot.evicted())
            .await
            .is_ok()
    }

    /// Goal: one address cannot hold more than its share: its third pending connection
    /// evicts its first, and other addresses are untouched.
    #[tokio::test]
    async fn per_address_limit_evicts_that_address_oldest() {
        let admission = Admission::new(LIMITS);
        let other = admission.arrive(ip(9)).expect("room");
        let first = admission.arrive(ip(2)).expect("room");
        let second = admission.arrive(ip(2)).expect("room");
        let third = admission.arrive(ip(2)).expect("room");
        assert!(is_evicted(&first).await);
        assert!(!is_evicted(&second).await);
        assert!(!is_evicted(&third).await);
        assert!(!is_evicted(&other).await);
        assert!(matches!(
            first.establish(1, Lane::Ordinary),
            Err(ConnectionError::Evicted)
        ));
        assert_eq!(admission.counts(), (3, 0));
    }

    /// Goal: when the global pending limit is full, a newcomer from anywhere evicts the
    /// oldest pending connection, so it always gets a slot.
    #[tokio::test]
    async fn global_limit_evicts_the_oldest() {
        let admission = Admission::new(LIMITS);
        let slots: Vec<_> = (1..=4)
            .map(|last| admission.arrive(ip(last)).expect("room"))
            .collect();
        let newcomer = admission.arrive(ip(5)).expect("room");
        assert!(is_evicted(&slots[0]).await);
        for slot in &slots[1..] {
            assert!(!is_evicted(slot).await);
        }
        assert!(newcomer.establish(1, Lane::Ordinary).is_ok());
    }

    /// Goal: established connections count toward the inbound limit; at the limit a
    /// newcomer evicts a pending one, and with none pending it is refused; closing frees.
    #[tokio::test]
    async fn inbound_limit_counts_established_connections() {
        let admission = Admission::new(LIMITS);
        let mut established = Vec::new();
        for peer in 1..=3 {
            for lane in Lane::ALL {
                let slot = admission.arrive(ip(peer as u8)).expect("room");
                established.push(slot.establish(peer, lane).expect("room on lane"));
            }
        }
        assert_eq!(admission.counts(), (0, 6));
        assert!(admission.arrive(ip(7)).is_none());
        established.pop();
        let pending = admission.arrive(ip(7)).expect("room again");
        let newcomer = admission.arrive(ip(8)).expect("evicts the pending one");
        assert!(is_evicted(&pending).await);
        drop(newcomer);
        assert_eq!(admission.counts(), (0, 5));
    }

    /// Goal: a peer holds at most `per_peer_lane_max` connections per lane; a newer one is
    /// refused rather than closing an older one; closing one makes room.
    #[tokio::test]
    async fn peer_lane_limit_refuses_newcomers() {
        let admission = Admission::new(LIMITS);
        let first = admission.arrive(ip(1)).expect("room");
        let first = first.establish(2, Lane::Ordinary).expect("room");
        let _second = admission.arrive(ip(1)).expect("room");
        let second = _second.establish(2, Lane::Ordinary).expect("room");
        let third = admission.arrive(ip(1)).expect("room");
        assert!(matches!(
            third.establish(2, Lane::Ordinary),
            Err(ConnectionError::Handshake(HandshakeError::PeerLaneFull {
                peer: 2,
                count: 2
            }))
        ));
        let other_lane = admission.arrive(ip(1)).expect("room");
        let _other_lane = other_lane.establish(2, Lane::Snapshot).expect("room");
        drop(first);
        let fourth = admission.arrive(ip(1)).expect("room");
        assert!(fourth.establish(2, Lane::Ordinary).is_ok());
        drop(second);
    }
}
