//! The state store: the replicated key space, leases and applied position, on sled.
//!
//! Apply writes commands' effects and the log id that produced them to a write buffer that
//! reaches sled in atomic batches between applied groups, so after a crash the store is
//! exactly "every entry up to `applied`", and raft replays the rest from the log. Reads take
//! a shared lock; apply takes it exclusively per group.
//!
//! Fail points (feature `failpoints`): `apply-before` and `apply-after` around each entry,
//! `snapshot-before-build` and `snapshot-before-install`.
//!
//! # Layout
//! - this file: the store, its lock and its reads;
//! - [`applying`]: applying committed entries in groups;
//! - [`snapshot`]: raft snapshots: taking, writing the copy a lagging member needs,
//!   installing one from the leader, and their file format;
//! - [`generations`]: the state's sled database generations and defragmentation;
//! - [`committer`]: the thread that commits the write buffer to sled.

mod applying;
mod committer;
mod generations;
mod snapshot;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use crate::alarm::AlarmTable;
use crate::apply::KvState;
use crate::auth::{AuthStore, SimpleTokens};
use crate::error::{Error, Result};
use crate::lease::{LeaseClock, LeaseTable};
use crate::mvcc::Store;
use crate::storage::{Backend, BufferedBackend, Pair, SledBackend, WriteBatch};
use crate::typ::{LogId, SnapshotMeta, StoredMembership};
use crate::watch::Hub;

use committer::Committer;
use generations::{STATE_TREE, open_current_db};
pub use snapshot::SnapshotWritten;

const META_APPLIED: &[u8] = b"m/applied";
const META_MEMBERSHIP: &[u8] = b"m/membership";
/// The metadata of the last snapshot raft took (built or installed).
const META_SNAPSHOT: &[u8] = b"m/snapshot";

/// State behind the lock.
#[derive(Default)]
pub struct AppliedState {
    pub kv: KvState,
    pub applied: Option<LogId>,
    pub membership: StoredMembership,
}

/// The applied state of this member, shared by raft and every service.
pub struct StateStore {
    backend: Arc<BufferedBackend>,
    inner: Arc<RwLock<AppliedState>>,
    pub hub: Hub,
    pub lease_clock: LeaseClock,
    /// The simple auth tokens handed out by applying Authenticate entries.
    pub simple_tokens: SimpleTokens,
    /// The minimum lease TTL in seconds, from the election timeout (same on every member).
    min_lease_ttl: i64,
    snapshot_dir: PathBuf,
    /// Where the state's sled databases live, and the generation in use.
    db_root: PathBuf,
    generation: std::sync::atomic::AtomicU64,
    /// Notified with the applied index after every apply.
    applied_tx: tokio::sync::watch::Sender<u64>,
    /// The thread that commits the write buffer to sled.
    committer: Committer,
    /// Set when the state can no longer be made durable (a commit to sled failed).
    failed: tokio::sync::watch::Sender<Option<String>>,
    /// Notified whenever a new membership is applied (an entry or a snapshot), so that a
    /// member notices its own removal the moment it applies it, without polling.
    pub membership_applied: tokio::sync::Notify,
    /// Held shared while a snapshot reads revisions without the state lock, and exclusively
    /// by whatever removes revisions (applying a compaction, installing a snapshot,
    /// defragmenting). Taken before the state lock.
    removals: RwLock<()>,
}

/// See [`StateStore::freeze`].
pub struct Frozen<'a, T> {
    /// What was read under the state lock.
    pub taken: T,
    /// The revision current when it was.
    pub rev: i64,
    store: &'a StateStore,
    _no_removals: std::sync::RwLockReadGuard<'a, ()>,
}

impl<T> Frozen<'_, T> {
    /// The revision pairs (`r` keys, see [`crate::mvcc`]) up to [`Frozen::rev`], in order.
    pub fn revisions(&self) -> impl Iterator<Item = Result<Pair>> + '_ {
        let (start, end) = crate::mvcc::revision_keys_through(self.rev);
        self.store.backend.scan(&start, &end)
    }
}

impl AppliedState {
    /// The metadata of a snapshot of this state: its applied position and membership.
    fn snapshot_meta(&self) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
        }
    }
}

fn decode_meta<T: serde::de::DeserializeOwned + Default>(
    backend: &dyn Backend,
    key: &[u8],
) -> Result<T> {
    match backend.get(key)? {
        Some(v) => bincode::deserialize(&v).map_err(Error::internal),
        None => Ok(T::default()),
    }
}

fn load_applied_state(backend: &dyn Backend) -> Result<AppliedState> {
    let mvcc = Store::load(backend)?;
    let leases = LeaseTable::load(backend, &mvcc)?;
    let alarms = AlarmTable::load(backend)?;
    let auth = AuthStore::load(backend)?;
    Ok(AppliedState {
        kv: KvState {
            mvcc,
            leases,
            alarms,
            auth,
        },
        applied: decode_meta(backend, META_APPLIED)?,
        membership: decode_meta(backend, META_MEMBERSHIP)?,
    })
}

impl StateStore {
    /// Opens the state whose sled databases live under `db_root` and whose raft snapshots
    /// live in `snapshot_dir`.
    pub fn open(
        db_root: &Path,
        snapshot_dir: &Path,
        min_lease_ttl: i64,
    ) -> Result<Arc<StateStore>> {
        std::fs::create_dir_all(snapshot_dir)?;
        let (db, generation) = open_current_db(db_root)?;
        let written = SledBackend::new(&db, STATE_TREE)?;
        written.pack_unpacked_revisions()?;
        let backend = Arc::new(BufferedBackend::new(written));
        let inner = load_applied_state(backend.as_ref())?;
        let lease_clock = LeaseClock::default();
        lease_clock.restart_all(inner.kv.leases.iter().map(|(id, l)| (id, l.ttl)));
        let applied_index = inner.applied.as_ref().map(|l| l.index).unwrap_or(0);
        let inner = Arc::new(RwLock::new(inner));
        let failed = tokio::sync::watch::channel(None).0;
        let committer = Committer::spawn(backend.clone(), inner.clone(), failed.clone())?;
        Ok(Arc::new(StateStore {
            backend,
            inner,
            hub: Hub::default(),
            lease_clock,
            simple_tokens: SimpleTokens::default(),
            min_lease_ttl,
            snapshot_dir: snapshot_dir.to_path_buf(),
            db_root: db_root.to_path_buf(),
            generation: generation.into(),
            applied_tx: tokio::sync::watch::channel(applied_index).0,
            committer,
            removals: RwLock::new(()),
            failed,
            membership_applied: tokio::sync::Notify::new(),
        }))
    }

    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// Makes the applied state durable. The buffer is set aside between groups (the state
    /// lock is held shared for that alone); writing it to sled and syncing sled happen
    /// while applies go on, since a sync covers everything sled holds.
    pub fn flush(&self) -> Result<()> {
        let commit = {
            let _between_groups = self.read();
            self.backend.begin_commit()
        };
        crate::metrics::timed(&crate::metrics::METRICS.backend_commit, || {
            if let Some(commit) = commit {
                commit.finish()?;
            }
            self.backend.written().flush()
        })
    }

    /// [`StateStore::flush`] on the committer thread: what has been applied is in sled and
    /// durable when it returns.
    pub async fn flush_async(self: &Arc<Self>) -> Result<()> {
        self.on_committer(|store| store.flush()).await
    }

    /// Visits every pair of the state that all members share, under the state lock (so the
    /// pairs are one applied position's), and returns the current revision. Left out: the
    /// last snapshot taken, which each member records at its own index.
    pub fn visit_replicated_pairs(&self, mut visit: impl FnMut(&[u8], &[u8])) -> Result<i64> {
        let inner = self.read();
        for pair in self.backend.scan(&[], &[]) {
            let (k, v) = pair?;
            if k != META_SNAPSHOT {
                visit(&k, &v);
            }
        }
        Ok(inner.kv.mvcc.current_rev())
    }

    /// A consistent view of the whole state that does not hold the state lock while it is
    /// read: `take` reads the applied position and whatever later applies may change, under
    /// the lock; the revisions up to the revision current then are read afterwards, from
    /// [`Frozen::revisions`], while applies go on. That is sound because applies only add
    /// revisions above the current one, and whatever removes revisions (applying a compaction,
    /// installing a snapshot, defragmenting) waits until the view is dropped.
    pub fn freeze<T>(
        &self,
        take: impl FnOnce(&AppliedState, &dyn Backend) -> Result<T>,
    ) -> Result<Frozen<'_, T>> {
        let no_removals = self.removals.read().expect("removals lock poisoned");
        let inner = self.read();
        let taken = take(&inner, self.backend.as_ref())?;
        let rev = inner.kv.mvcc.current_rev();
        drop(inner);
        Ok(Frozen {
            taken,
            rev,
            store: self,
            _no_removals: no_removals,
        })
    }

    /// Compacts the key space at `rev` outside raft, the compaction a restored backup had
    /// scheduled; only before any member serves the state, which every member restores alike.
    pub fn compact_restored(&self, rev: i64) -> Result<()> {
        let _no_snapshot_reads = self.removals.write().expect("removals lock poisoned");
        let mut inner = self.inner.write().expect("state lock poisoned");
        let mut batch = WriteBatch::default();
        inner.kv.mvcc.compact(rev, &mut batch)?;
        self.backend.write(batch)?;
        self.backend.flush()
    }

    /// Bytes the state's database occupies on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.backend.size_on_disk()
    }

    pub fn min_lease_ttl(&self) -> i64 {
        self.min_lease_ttl
    }

    /// A shared view of the state; do not hold it across an await.
    pub fn read(&self) -> RwLockReadGuard<'_, AppliedState> {
        self.inner.read().expect("state lock poisoned")
    }

    pub fn applied_state(&self) -> (Option<LogId>, StoredMembership) {
        let inner = self.read();
        (inner.applied, inner.membership.clone())
    }

    /// Why the state can no longer be made durable, once it cannot: a commit of the write
    /// buffer to sled failed (sled fails every write after one has failed).
    pub fn failure(&self) -> Option<String> {
        self.failed.borrow().clone()
    }

    /// Watches the applied index.
    pub fn applied_index(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    /// Waits until this member has applied the log up to `index`; fails only when the state
    /// is gone (the member stopped). Callers bound the wait with their own deadline.
    pub async fn wait_applied(&self, index: u64) -> Result<()> {
        self.applied_index()
            .wait_for(|a| *a >= index)
            .await
            .map(|_| ())
            .map_err(|_| Error::Stopped)
    }
}
