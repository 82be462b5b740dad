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
use std::sync::{Arc, Mutex, RwLock};
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
    /// Round trips of replication calls (etcd's leader stats `latency`). Only this peer's
    /// replication reports here, so the lock is not contended.
    round_trips: Mutex<RoundTrips>,
}

/// Round-trip times of one peer's calls, in milliseconds.
#[derive(Debug, Default, Clone, Copy)]
struct RoundTrips {
    count: u64,
    current: f64,
    sum: f64,
    sum_of_squares: f64,
    minimum: f64,
    maximum: f64,
}

/// etcd's v2 leader stats `latency` of one follower, in milliseconds; all 0 before any
/// round trip.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Latency {
    pub current: f64,
    pub average: f64,
    pub standard_deviation: f64,
    pub minimum: f64,
    pub maximum: f64,
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
                    round_trips: Mutex::new(RoundTrips::default()),
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

    /// The round trips of the calls to peer `id` so far.
    pub fn latency(&self, id: u64) -> Latency {
        let peers = self.peers.read().expect("peer activity lock");
        let Some(peer) = peers.get(&id) else {
            return Latency::default();
        };
        let r = *peer.round_trips.lock().expect("round trips lock");
        if r.count == 0 {
            return Latency::default();
        }
        let average = r.sum / r.count as f64;
        let variance = (r.sum_of_squares / r.count as f64 - average * average).max(0.0);
        Latency {
            current: r.current,
            average,
            standard_deviation: variance.sqrt(),
            minimum: r.minimum,
            maximum: r.maximum,
        }
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

    /// A call to the peer took `took` from sending to its answer.
    pub fn round_trip(&self, took: Duration) {
        let ms = took.as_secs_f64() * 1000.0;
        let mut r = self.round_trips.lock().expect("round trips lock");
        r.minimum = if r.count == 0 { ms } else { r.minimum.min(ms) };
        r.maximum = r.maximum.max(ms);
        r.count += 1;
        r.current = ms;
        r.sum += ms;
        r.sum_of_squares += ms * ms;
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
    fn round_trips_give_etcds_latency_figures() {
        let activity = PeerActivity::new(Duration::from_secs(60));
        assert_eq!(activity.latency(1), Latency::default());
        let peer = activity.peer(1);
        for ms in [2, 4, 4, 4, 5, 5, 7, 9] {
            peer.round_trip(Duration::from_millis(ms));
        }
        let l = activity.latency(1);
        assert_eq!((l.current, l.minimum, l.maximum), (9.0, 2.0, 9.0));
        assert!((l.average - 5.0).abs() < 1e-9, "{l:?}");
        assert!((l.standard_deviation - 2.0).abs() < 1e-9, "{l:?}");
    }

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
