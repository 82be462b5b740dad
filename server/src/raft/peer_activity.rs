//! Since when each peer has been answering this member without a break: etcd's rafthttp
//! `ActiveSince`, which `--strict-reconfig-check` judges membership changes by.
//!
//! The peer network reports every answer and every failure of a peer; nothing polls. A
//! peer is active from the first answer after a failure or after a silence longer than the
//! gap (the election timeout: a leader hears from each follower at every heartbeat, so a
//! longer silence means the link was down even if no call failed, as when openraft drops a
//! heartbeat that timed out), and stops being active at a failure or once silent that long.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The activity of every peer this member has called.
#[derive(Debug)]
pub struct PeerActivity {
    /// Times are kept as nanoseconds since this instant, so that they fit in atomics: the
    /// replication path reports every answer, and must not take a lock for it.
    epoch: Instant,
    gap: Duration,
    /// A std RwLock: never held across an await; written once per peer.
    peers: RwLock<HashMap<u64, Arc<PeerStatus>>>,
}

/// One peer's activity, shared by every client of that peer.
#[derive(Debug)]
pub struct PeerStatus {
    epoch: Instant,
    gap_nanos: u64,
    /// When the current run of answers began, in nanoseconds since `epoch` plus one; 0 while
    /// the peer is not active.
    since: AtomicU64,
    /// The last answer, in nanoseconds since `epoch` plus one; 0 before any.
    last: AtomicU64,
    /// Calls answered and calls failed so far (etcd's leader stats `counts`).
    answers: AtomicU64,
    failures: AtomicU64,
}

impl PeerActivity {
    /// Activity where a silence longer than `gap` breaks a peer's run of answers.
    pub fn new(gap: Duration) -> PeerActivity {
        PeerActivity {
            epoch: Instant::now(),
            gap,
            peers: RwLock::new(HashMap::new()),
        }
    }

    /// The status of peer `id`, for its clients to report to.
    pub fn peer(&self, id: u64) -> Arc<PeerStatus> {
        if let Some(status) = self.peers.read().expect("peer activity lock").get(&id) {
            return status.clone();
        }
        let mut peers = self.peers.write().expect("peer activity lock");
        peers
            .entry(id)
            .or_insert_with(|| {
                Arc::new(PeerStatus {
                    epoch: self.epoch,
                    gap_nanos: self.gap.as_nanos() as u64,
                    since: AtomicU64::new(0),
                    last: AtomicU64::new(0),
                    answers: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                })
            })
            .clone()
    }

    /// How many calls peer `id` has answered and how many failed (0, 0 if never called).
    pub fn counts(&self, id: u64) -> (u64, u64) {
        let peers = self.peers.read().expect("peer activity lock");
        peers.get(&id).map_or((0, 0), |p| {
            (
                p.answers.load(Ordering::Relaxed),
                p.failures.load(Ordering::Relaxed),
            )
        })
    }

    /// Since when peer `id` has been answering without a break; `None` if it is not active
    /// now (or was never called).
    pub fn active_since(&self, id: u64) -> Option<Instant> {
        let peers = self.peers.read().expect("peer activity lock");
        peers.get(&id)?.active_since()
    }
}

impl PeerStatus {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64 + 1
    }

    /// The peer answered a call.
    pub fn answered(&self) {
        self.answers.fetch_add(1, Ordering::Relaxed);
        let now = self.now();
        let last = self.last.swap(now, Ordering::Relaxed);
        let broken = last == 0 || now.saturating_sub(last) > self.gap_nanos;
        if broken || self.since.load(Ordering::Relaxed) == 0 {
            self.since.store(now, Ordering::Relaxed);
        }
    }

    /// A call to the peer failed: it is not reachable.
    pub fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.since.store(0, Ordering::Relaxed);
    }

    fn active_since(&self) -> Option<Instant> {
        let since = self.since.load(Ordering::Relaxed);
        let last = self.last.load(Ordering::Relaxed);
        if since == 0 || self.now().saturating_sub(last) > self.gap_nanos {
            return None;
        }
        Some(self.epoch + Duration::from_nanos(since - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_make_a_peer_active_from_the_first_one_until_a_failure() {
        let activity = PeerActivity::new(Duration::from_secs(60));
        assert_eq!(activity.active_since(1), None);
        let peer = activity.peer(1);
        peer.answered();
        let since = activity.active_since(1).expect("active after an answer");
        peer.answered();
        assert_eq!(activity.active_since(1), Some(since), "a run goes on");
        assert!(Arc::ptr_eq(&peer, &activity.peer(1)), "one status per peer");
        peer.failed();
        assert_eq!(activity.active_since(1), None);
        peer.answered();
        assert!(activity.active_since(1).expect("active again") >= since);
        assert_eq!(activity.active_since(2), None);
    }

    #[test]
    fn a_silence_longer_than_the_gap_ends_the_run() {
        let activity = PeerActivity::new(Duration::ZERO);
        let peer = activity.peer(1);
        peer.answered();
        // With no gap allowed, any time since the last answer is a silence too long.
        let later = Instant::now() + Duration::from_millis(1);
        while Instant::now() < later {
            std::hint::spin_loop();
        }
        assert_eq!(activity.active_since(1), None);
    }
}
