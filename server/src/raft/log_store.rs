//! The raft log: entries in the WAL segment files (`wal`), the vote and the purged log id on
//! sled.
//!
//! Appends are written at once and reported complete only after an fdatasync; one flusher
//! thread gathers every append waiting at that moment into a single sync (group commit), so
//! many concurrent proposals share one fsync.
//!
//! Fail points (feature `failpoints`): `raft-before-save` before an append is written,
//! `raft-after-save` after a sync made appends durable and before raft hears of it.

use std::fmt::Debug;
use std::fs::File;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{OptionalSend, RaftTypeConfig};

use super::wal::Wal;
use crate::metrics::{self, METRICS};
use crate::storage::{Backend, SledBackend, WriteBatch};
use crate::typ::{Entry, LogId, TypeConfig, Vote};

const KEY_VOTE: &[u8] = b"vote";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// An append waiting for its file to be synced.
type Waiting = (Arc<File>, IOFlushed<TypeConfig>);

/// The raft log (`wal` segment files) and raft metadata (`raft_meta` tree on sled, in
/// `member/db`; the applied state has databases of its own, see `state`).
#[derive(Clone)]
pub struct LogStore {
    wal: Arc<Mutex<Wal>>,
    meta: SledBackend,
    flusher: mpsc::Sender<Waiting>,
}

impl LogStore {
    pub fn open(db: &sled::Db, wal_dir: &Path) -> crate::error::Result<LogStore> {
        let meta = SledBackend::new(db, "raft_meta")?;
        let purged: Option<LogId> = read_meta(&meta, KEY_LAST_PURGED)?;
        let wal = Wal::open(wal_dir, purged.map(|l| l.index))?;
        let (tx, rx) = mpsc::channel::<Waiting>();
        std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || group_commit(rx))
            .map_err(crate::error::Error::from)?;
        Ok(LogStore {
            wal: Arc::new(Mutex::new(wal)),
            meta,
            flusher: tx,
        })
    }

    fn wal(&self) -> MutexGuard<'_, Wal> {
        self.wal.lock().expect("raft log lock poisoned")
    }

    fn write_meta<T: serde::Serialize>(&self, key: &[u8], value: &T) -> io::Result<()> {
        let mut batch = WriteBatch::default();
        batch.put(key.to_vec(), bincode::serialize(value).map_err(io_err)?);
        self.meta.write(batch).map_err(io_err)
    }

    /// Flushes the raft metadata.
    async fn flush_meta(&self) -> io::Result<()> {
        let backend = self.meta.clone();
        tokio::task::spawn_blocking(move || backend.flush())
            .await
            .map_err(io_err)?
            .map_err(io_err)
    }

    /// Whether this member has raft state (tells a fresh member from a restart, or from one
    /// restored from a backup).
    pub fn has_state(&self) -> io::Result<bool> {
        Ok(read_meta::<Vote>(&self.meta, KEY_VOTE)?.is_some()
            || read_meta::<LogId>(&self.meta, KEY_LAST_PURGED)?.is_some()
            || !self.wal().is_empty())
    }

    /// The last log id, appended or purged; `None` for an empty log.
    pub fn last_log_id(&self) -> io::Result<Option<LogId>> {
        let purged: Option<LogId> = read_meta(&self.meta, KEY_LAST_PURGED)?;
        Ok(self.wal().last_log_id().cloned().or(purged))
    }

    /// The log's entries from index `start` on.
    pub fn entries_from(&self, start: u64) -> io::Result<Vec<Entry>> {
        self.wal().range(start, None)
    }

    /// The stored vote, as stored.
    pub fn stored_vote(&self) -> io::Result<Option<Vote>> {
        read_meta(&self.meta, KEY_VOTE)
    }

    /// Outside raft, before it starts: stores `vote` and appends `entry`, both durably.
    pub fn force_append(&self, vote: &Vote, entry: Entry) -> io::Result<()> {
        self.write_meta(KEY_VOTE, vote)?;
        self.meta.flush().map_err(io_err)?;
        let file = self.wal().append([entry])?;
        file.sync_data()
    }

    /// Starts an empty log after `log_id`, the position of a state restored from a backup:
    /// as if the log up to it had been applied and purged.
    pub fn start_after(&self, log_id: LogId) -> io::Result<()> {
        self.write_meta(KEY_LAST_PURGED, &log_id)?;
        self.meta.flush().map_err(io_err)
    }
}

fn read_meta<T: serde::de::DeserializeOwned>(
    meta: &SledBackend,
    key: &[u8],
) -> io::Result<Option<T>> {
    match meta.get(key).map_err(io_err)? {
        Some(v) => bincode::deserialize(&v).map(Some).map_err(io_err),
        None => Ok(None),
    }
}

/// Syncs the files of every batch of waiting appends, then reports them complete.
fn group_commit(rx: mpsc::Receiver<Waiting>) {
    while let Ok(first) = rx.recv() {
        let mut waiting = vec![first];
        waiting.extend(rx.try_iter());
        let mut result = Ok(());
        let mut synced: Vec<&Arc<File>> = Vec::new();
        for (file, _) in &waiting {
            if result.is_ok() && !synced.iter().any(|f| Arc::ptr_eq(f, file)) {
                result = metrics::timed(&METRICS.wal_fsync, || file.sync_data());
                synced.push(file);
            }
        }
        fail::fail_point!("raft-after-save");
        for (_, cb) in waiting {
            cb.io_completed(result.as_ref().map(|_| ()).map_err(io_err));
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Some(i + 1),
            Bound::Excluded(i) => Some(*i),
            Bound::Unbounded => None,
        };
        self.wal().range(start, end)
    }

    /// The stored vote, never as committed: a member that led before it stopped must not
    /// take up its old term again as leader. Restarted without a quorum's say, it would
    /// answer ReadIndex with its last term's commit point while the state it recovered lags
    /// (a stale read after a whole-cluster restart, found by the robustness suite). Like an
    /// etcd member, it starts as a follower and a leader is elected in a new term, which
    /// commits an entry of its own before serving reads.
    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        let vote: Option<Vote> = read_meta(&self.meta, KEY_VOTE)?;
        Ok(vote.map(|mut v| {
            v.committed = false;
            v
        }))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId> = read_meta(&self.meta, KEY_LAST_PURGED)?;
        let last = self.wal().last_log_id().cloned();
        Ok(LogState {
            last_log_id: last.or(last_purged_log_id),
            last_purged_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        self.write_meta(KEY_VOTE, vote)?;
        self.flush_meta().await
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = <TypeConfig as RaftTypeConfig>::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        fail::fail_point!("raft-before-save", |_| Err(io_err(
            "failpoint raft-before-save"
        )));
        let file = self.wal().append(entries)?;
        self.flusher
            .send((file, callback))
            .map_err(|_| io_err("log flusher stopped"))
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        self.wal().truncate_after(last_log_id.map(|l| l.index))
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        // Everything applied up to here must be durable before the log that could replay it
        // goes. It is: raft purges only entries a snapshot holds, and building or installing
        // a snapshot flushes the state up to its index first. The purged id must be durable
        // before the segment files go; raft need not wait for either (until the id is
        // durable, a restart reads the files again from the last durable purged id), so a
        // purge does not hold up appends while sled syncs and files are unlinked.
        self.write_meta(KEY_LAST_PURGED, &log_id)?;
        let unneeded = self.wal().purge(log_id.index)?;
        let meta = self.meta.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = meta.flush() {
                tracing::error!("flushing the purged raft log id: {e}");
                return;
            }
            for path in unneeded {
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::error!("deleting purged raft log segment {}: {e}", path.display());
                }
            }
        });
        Ok(())
    }
}
