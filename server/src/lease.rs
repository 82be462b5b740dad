//! Leases: the replicated lease table, and the leader's clock that decides when they expire.
//!
//! The table (lease → TTL and attached keys) is state-machine state: it changes only by
//! applying committed entries. Deadlines are not replicated: whichever member leads keeps
//! them in [`LeaseClock`], restarts them on election (like etcd's lessor promotion) and
//! proposes a revoke when one passes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::mvcc::{KeyRange, Store};
use crate::storage::{Backend, WriteBatch};

/// etcd's upper bound on a lease TTL, in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;
const LEASE_PREFIX: u8 = b'l';

fn lease_key(id: i64) -> Vec<u8> {
    let mut k = vec![LEASE_PREFIX];
    k.extend_from_slice(&(id as u64).to_be_bytes());
    k
}

/// One granted lease.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lease {
    /// Granted TTL in seconds (after raising it to the minimum).
    pub ttl: i64,
    /// Keys whose live version is attached to this lease.
    pub keys: BTreeSet<Vec<u8>>,
}

/// Every granted lease, by id.
#[derive(Debug, Default)]
pub struct LeaseTable {
    leases: BTreeMap<i64, Lease>,
}

impl LeaseTable {
    /// Loads leases from the backend and re-attaches the live keys that name them.
    pub fn load(backend: &dyn Backend, store: &Store) -> Result<LeaseTable> {
        let mut table = LeaseTable::default();
        for pair in backend.scan(&[LEASE_PREFIX], &[LEASE_PREFIX + 1]) {
            let (k, v) = pair?;
            let (Ok(id), Ok(ttl)) = (
                <[u8; 8]>::try_from(&k[1..]),
                <[u8; 8]>::try_from(v.as_slice()),
            ) else {
                return Err(Error::internal("bad lease record"));
            };
            let lease = Lease {
                ttl: i64::from_be_bytes(ttl),
                keys: BTreeSet::new(),
            };
            table.leases.insert(u64::from_be_bytes(id) as i64, lease);
        }
        for (key, meta) in store.live_keys(&KeyRange::from_request(b"\0", b"\0")) {
            if let Some(lease) = table.leases.get_mut(&meta.lease) {
                lease.keys.insert(key.clone());
            }
        }
        Ok(table)
    }

    pub fn get(&self, id: i64) -> Option<&Lease> {
        self.leases.get(&id)
    }

    pub fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    pub fn ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.leases.keys().copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (i64, &Lease)> + '_ {
        self.leases.iter().map(|(id, l)| (*id, l))
    }

    pub fn grant(&mut self, id: i64, ttl: i64, batch: &mut WriteBatch) -> Result<()> {
        if self.leases.contains_key(&id) {
            return Err(Error::LeaseExist);
        }
        batch.put(lease_key(id), ttl.to_be_bytes().to_vec());
        self.leases.insert(
            id,
            Lease {
                ttl,
                keys: BTreeSet::new(),
            },
        );
        Ok(())
    }

    /// Removes the lease; returns the keys that were attached to it.
    pub fn revoke(&mut self, id: i64, batch: &mut WriteBatch) -> Result<BTreeSet<Vec<u8>>> {
        let lease = self.leases.remove(&id).ok_or(Error::LeaseNotFound)?;
        batch.delete(lease_key(id));
        Ok(lease.keys)
    }

    pub fn attach(&mut self, id: i64, key: &[u8]) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.keys.insert(key.to_vec());
        }
    }

    pub fn detach(&mut self, id: i64, key: &[u8]) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.keys.remove(key);
        }
    }
}

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

/// How often the leader looks for expired leases.
const EXPIRY_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// The leader's expiry loop: restarts every countdown when this member becomes leader, then
/// proposes a revoke for each lease whose deadline passes. Followers only watch.
pub async fn run_expiry(server: std::sync::Arc<crate::server::EtcdServer>) {
    use crate::proto::etcdserverpb::LeaseRevokeRequest;
    use crate::proto::oxcdpb::internal_request::Request;
    let mut was_leader = false;
    let mut tick = tokio::time::interval(EXPIRY_CHECK_INTERVAL);
    loop {
        tick.tick().await;
        let leader = server.leader() == Some(server.member_id);
        if leader && !was_leader {
            let leases: Vec<(i64, i64)> = server
                .state
                .read()
                .kv
                .leases
                .iter()
                .map(|(id, l)| (id, l.ttl))
                .collect();
            server.state.lease_clock.restart_all(leases.into_iter());
        }
        was_leader = leader;
        if !leader {
            continue;
        }
        for id in server.state.lease_clock.expired() {
            match server
                .propose(Request::LeaseRevoke(LeaseRevokeRequest { id }))
                .await
            {
                Ok(_) => {}
                Err(Error::LeaseNotFound) => server.state.lease_clock.forget(id),
                Err(Error::Stopped) => return,
                Err(e) => tracing::warn!(lease = id, error = %e, "lease revoke failed; will retry"),
            }
        }
    }
}
