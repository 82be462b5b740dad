//! The leader's lease deadlines. Not replicated: whichever member leads keeps them, restarts
//! them on election (like etcd's lessor promotion) and proposes a revoke when one passes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The leader's lease deadlines. A std Mutex: it is never held across an await.
#[derive(Debug, Default)]
pub struct LeaseClock {
    deadlines: Mutex<HashMap<i64, Instant>>,
}

impl LeaseClock {
    /// Starts (or restarts) the countdown of a lease.
    pub fn renew(&self, id: i64, ttl: i64) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(ttl.max(0) as u64);
        self.deadlines
            .lock()
            .expect("lease clock poisoned")
            .insert(id, deadline);
        deadline
    }

    pub fn forget(&self, id: i64) {
        self.deadlines
            .lock()
            .expect("lease clock poisoned")
            .remove(&id);
    }

    /// Seconds left before `id` expires, rounded up like etcd; `None` if unknown.
    pub fn remaining(&self, id: i64) -> Option<i64> {
        let deadline = *self
            .deadlines
            .lock()
            .expect("lease clock poisoned")
            .get(&id)?;
        let left = deadline.saturating_duration_since(Instant::now());
        Some(left.as_secs() as i64 + i64::from(left.subsec_nanos() > 0))
    }

    /// Whole seconds left before `id` expires (what etcd reports in TimeToLive).
    pub fn remaining_truncated(&self, id: i64) -> Option<i64> {
        let deadline = *self
            .deadlines
            .lock()
            .expect("lease clock poisoned")
            .get(&id)?;
        Some(deadline.saturating_duration_since(Instant::now()).as_secs() as i64)
    }

    /// Milliseconds left before `id` expires, for ordering leases by expiry.
    pub fn remaining_millis(&self, id: i64) -> Option<i64> {
        let deadline = *self
            .deadlines
            .lock()
            .expect("lease clock poisoned")
            .get(&id)?;
        Some(
            deadline
                .saturating_duration_since(Instant::now())
                .as_millis() as i64,
        )
    }

    /// True when `id` has a deadline and it has passed.
    pub fn expired_now(&self, id: i64) -> bool {
        self.deadlines
            .lock()
            .expect("lease clock poisoned")
            .get(&id)
            .is_some_and(|d| *d <= Instant::now())
    }

    /// Leases whose deadline has passed.
    pub fn expired(&self) -> Vec<i64> {
        let now = Instant::now();
        let deadlines = self.deadlines.lock().expect("lease clock poisoned");
        deadlines
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Restarts every countdown, as a newly elected leader does.
    pub fn restart_all(&self, leases: impl Iterator<Item = (i64, i64)>) {
        let now = Instant::now();
        let mut deadlines = self.deadlines.lock().expect("lease clock poisoned");
        deadlines.clear();
        for (id, ttl) in leases {
            deadlines.insert(id, now + Duration::from_secs(ttl.max(0) as u64));
        }
    }
}
