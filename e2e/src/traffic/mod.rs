//! Traffic: concurrent clients issuing one profile's requests against a cluster, and
//! watchers of the profile's keys, all recording into one `Recorder`.
//!
//! # Layout
//!
//! - [`client`]: a client that sends history requests through `etcd-client` and records
//!   them with their outcomes.
//! - [`watch`]: a watcher that records its streams and resumes them after breaks.
//! - [`kubernetes`], [`key_value`], [`lease`]: one client's request mix per profile.
//!
//! Every put writes a value no other request writes (`c<client>-<sequence>`): the checker
//! places writes whose answer was lost by the value a read or a watch later shows.

pub mod client;
pub mod key_value;
pub mod kubernetes;
pub mod lease;
pub mod watch;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::history::{ClientId, Recorder};
use client::RecordingClient;
use watch::{StartFrom, WatchSpec, Watcher};

/// Client IDs from here on are watchers.
pub const FIRST_WATCHER_ID: ClientId = 100;

/// The kinds of workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Kubernetes' use of etcd: paginated lists at a revision, create-if-absent and
    /// optimistic update/delete transactions, watches with prev_kv and progress
    /// notifications from a list's revision.
    Kubernetes,
    /// Plain puts, gets, deletes, ranges and transactions over a few keys.
    KeyValue,
    /// Leases granted with client-chosen IDs, keys attached to them, keep-alives and
    /// revokes. TTLs are long: the checker assumes leases do not expire during a run.
    Lease,
}

impl Profile {
    pub const ALL: [Profile; 3] = [Profile::Kubernetes, Profile::KeyValue, Profile::Lease];

    pub fn name(self) -> &'static str {
        match self {
            Profile::Kubernetes => "kubernetes",
            Profile::KeyValue => "key-value",
            Profile::Lease => "lease",
        }
    }

    /// The watch of watcher number `n` of this profile.
    fn watch_spec(self, n: usize) -> WatchSpec {
        let (key, prev_kv, progress_notify, start) = match self {
            Profile::Kubernetes => (kubernetes::PREFIX, true, true, StartFrom::List),
            Profile::KeyValue if n.is_multiple_of(2) => {
                (key_value::PREFIX, true, false, StartFrom::Now)
            }
            Profile::KeyValue => (key_value::PREFIX, false, true, StartFrom::Revision(1)),
            Profile::Lease => (lease::PREFIX, n.is_multiple_of(2), true, StartFrom::Now),
        };
        WatchSpec {
            key: key.to_owned(),
            prefix: true,
            prev_kv,
            progress_notify,
            start,
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::ALL
            .into_iter()
            .find(|profile| profile.name() == s)
            .ok_or_else(|| format!("unknown traffic profile {s:?}"))
    }
}

/// How much traffic, from how many clients.
#[derive(Clone, Debug)]
pub struct TrafficOptions {
    pub clients: usize,
    pub watchers: usize,
    /// Traffic stops after this long...
    pub duration: Duration,
    /// ...or after this many operations, whichever comes first.
    pub max_operations: u64,
    /// A request without an answer after this long is recorded as `Unknown`.
    pub request_timeout: Duration,
    pub seed: u64,
}

impl Default for TrafficOptions {
    fn default() -> Self {
        TrafficOptions {
            clients: 4,
            watchers: 2,
            duration: Duration::from_secs(12),
            max_operations: 4000,
            request_timeout: Duration::from_secs(3),
            seed: 0,
        }
    }
}

/// The shared bound on the traffic: a deadline, an operation count and an early stop.
#[derive(Debug)]
pub struct Budget {
    until: Instant,
    left: AtomicU64,
    stopped: AtomicBool,
}

impl Budget {
    pub fn new(duration: Duration, operations: u64) -> Self {
        Budget {
            until: Instant::now() + duration,
            left: AtomicU64::new(operations),
            stopped: AtomicBool::new(false),
        }
    }

    /// Takes one operation from the budget; false once it is spent.
    pub fn take(&self) -> bool {
        if self.stopped.load(Ordering::Relaxed) || Instant::now() >= self.until {
            return false;
        }
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

/// Running traffic: the clients, which stop by themselves when the budget is spent, and
/// the watchers, which stop once told to catch up.
pub struct Traffic {
    pub budget: Arc<Budget>,
    clients: JoinSet<()>,
    watchers: Vec<Watcher>,
}

/// Starts `options.watchers` watchers and `options.clients` clients of `profile`.
pub fn start(
    profile: Profile,
    endpoints: &[String],
    recorder: &Arc<Recorder>,
    options: &TrafficOptions,
) -> Traffic {
    let budget = Arc::new(Budget::new(options.duration, options.max_operations));
    let watchers = (0..options.watchers)
        .map(|n| {
            let id = FIRST_WATCHER_ID + n as ClientId;
            let spec = profile.watch_spec(n);
            watch::start(
                id,
                endpoints.to_vec(),
                recorder.clone(),
                spec,
                options.request_timeout,
            )
        })
        .collect();
    let mut clients = JoinSet::new();
    for n in 0..options.clients {
        let id = n as ClientId;
        let client = RecordingClient::new(
            id,
            endpoints.to_vec(),
            recorder.clone(),
            options.request_timeout,
        );
        let rng = StdRng::seed_from_u64(options.seed.wrapping_mul(1000).wrapping_add(n as u64));
        let budget = budget.clone();
        match profile {
            Profile::Kubernetes => clients.spawn(kubernetes::run(client, rng, budget)),
            Profile::KeyValue => clients.spawn(key_value::run(client, rng, budget)),
            Profile::Lease => clients.spawn(lease::run(client, rng, budget)),
        };
    }
    Traffic {
        budget,
        clients,
        watchers,
    }
}

impl Traffic {
    /// Waits for the clients to spend the budget.
    pub async fn wait_clients(&mut self) {
        while self.clients.join_next().await.is_some() {}
    }

    /// Tells every watcher to catch up with `revision` and waits up to `timeout` for them;
    /// returns the IDs of those that did not.
    pub async fn finish_watchers(&mut self, revision: i64, timeout: Duration) -> Vec<ClientId> {
        for watcher in &self.watchers {
            watcher.catch_up.send_replace(Some(revision));
        }
        let deadline = Instant::now() + timeout;
        let mut lagging = Vec::new();
        for watcher in &mut self.watchers {
            if tokio::time::timeout_at(deadline, &mut watcher.task)
                .await
                .is_err()
            {
                watcher.task.abort();
                lagging.push(watcher.id);
            }
        }
        lagging
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.budget.stop();
        for watcher in &self.watchers {
            watcher.task.abort();
        }
    }
}

/// The unique value of a client's `seq`-th write.
pub fn unique_value(client: ClientId, seq: &mut u64) -> String {
    *seq += 1;
    format!("c{client}-{seq}")
}
