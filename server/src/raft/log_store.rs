//! The raft log and vote on sled.
//!
//! Appends are written at once and reported complete only after a flush; one flusher thread
//! gathers every append waiting at that moment into a single flush (group commit), so many
//! concurrent proposals share one fsync.
//!
//! Fail points (feature `failpoints`): `raft-before-save` before an append is written,
//! `raft-after-save` after a flush made appends durable and before raft hears of it.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc;

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{OptionalSend, RaftTypeConfig};

use super::TypeConfig;
use super::typ::{Entry, LogId, Vote};
use crate::storage::{Backend, SledBackend, WriteBatch};

const KEY_VOTE: &[u8] = b"vote";
const KEY_LAST_PURGED: &[u8] = b"last_purged";
const KEY_COMMITTED: &[u8] = b"committed";

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The raft log (`raft_log` tree) and raft metadata (`raft_meta` tree).
#[derive(Clone)]
pub struct LogStore {
    log: SledBackend,
    meta: SledBackend,
    flusher: mpsc::Sender<IOFlushed<TypeConfig>>,
}

impl LogStore {
    pub fn open(db: &sled::Db) -> crate::error::Result<LogStore> {
        let log = SledBackend::new(db, "raft_log")?;
        let meta = SledBackend::new(db, "raft_meta")?;
        let (tx, rx) = mpsc::channel::<IOFlushed<TypeConfig>>();
        let flush_target = log.clone();
        std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || group_commit(flush_target, rx))
            .map_err(crate::error::Error::from)?;
        Ok(LogStore {
            log,
            meta,
            flusher: tx,
        })
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> io::Result<Option<T>> {
        match self.meta.get(key).map_err(io_err)? {
            Some(v) => bincode::deserialize(&v).map(Some).map_err(io_err),
            None => Ok(None),
        }
    }

    fn write_meta<T: serde::Serialize>(&self, key: &[u8], value: &T) -> io::Result<()> {
        let mut batch = WriteBatch::default();
        batch.put(key.to_vec(), bincode::serialize(value).map_err(io_err)?);
        self.meta.write(batch).map_err(io_err)
    }

    async fn flush(&self) -> io::Result<()> {
        let backend = self.log.clone();
        tokio::task::spawn_blocking(move || backend.flush())
            .await
            .map_err(io_err)?
            .map_err(io_err)
    }

    /// The stored vote, read directly (used at start to tell a fresh member from a restart).
    pub fn has_state(&self) -> io::Result<bool> {
        Ok(self.read_meta::<Vote>(KEY_VOTE)?.is_some()
            || self.log.last_in(&[], &[]).map_err(io_err)?.is_some())
    }
}

/// Flushes the database for every batch of waiting appends, then reports them complete.
fn group_commit(backend: SledBackend, rx: mpsc::Receiver<IOFlushed<TypeConfig>>) {
    while let Ok(first) = rx.recv() {
        let mut waiting = vec![first];
        waiting.extend(rx.try_iter());
        let result = backend.flush();
        fail::fail_point!("raft-after-save");
        for cb in waiting {
            cb.io_completed(result.as_ref().map(|_| ()).map_err(io_err));
        }
    }
}

fn decode_entry(v: &[u8]) -> io::Result<Entry> {
    bincode::deserialize(v).map_err(io_err)
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
        let end_key = end.map(|e| index_key(e).to_vec()).unwrap_or_default();
        if end.is_some_and(|e| e <= start) {
            return Ok(Vec::new());
        }
        self.log
            .scan(&index_key(start), &end_key)
            .map(|r| decode_entry(&r.map_err(io_err)?.1))
            .collect()
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        self.read_meta(KEY_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId> = self.read_meta(KEY_LAST_PURGED)?;
        let last = self.log.last_in(&[], &[]).map_err(io_err)?;
        let last_log_id = match last {
            Some((_, v)) => Some(decode_entry(&v)?.log_id),
            None => last_purged_log_id.clone(),
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        self.write_meta(KEY_VOTE, vote)?;
        self.flush().await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        // Not flushed: a lost committed index is recomputed by the leader.
        self.write_meta(KEY_COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(self.read_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = <TypeConfig as RaftTypeConfig>::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        fail::fail_point!("raft-before-save", |_| Err(io_err(
            "failpoint raft-before-save"
        )));
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put(
                index_key(entry.log_id.index).to_vec(),
                bincode::serialize(&entry).map_err(io_err)?,
            );
        }
        self.log.write(batch).map_err(io_err)?;
        self.flusher
            .send(callback)
            .map_err(|_| io_err("log flusher stopped"))
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let from = last_log_id.map(|l| l.index + 1).unwrap_or(0);
        let mut batch = WriteBatch::default();
        for pair in self.log.scan(&index_key(from), &[]) {
            batch.delete(pair.map_err(io_err)?.0);
        }
        self.log.write(batch).map_err(io_err)?;
        self.flush().await
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        // Everything applied up to here must be durable before the log that could replay it goes.
        self.flush().await?;
        self.write_meta(KEY_LAST_PURGED, &log_id)?;
        let mut batch = WriteBatch::default();
        for pair in self.log.scan(&index_key(0), &index_key(log_id.index + 1)) {
            batch.delete(pair.map_err(io_err)?.0);
        }
        self.log.write(batch).map_err(io_err)?;
        self.flush().await
    }
}
