//! The state store: the replicated key space, leases and applied position, on sled.
//!
//! Apply writes a command's effects and the log id that produced them in one atomic batch,
//! so after a crash the store is exactly "every entry up to `applied`", and raft replays the
//! rest from the log. Reads take a shared lock; apply takes it exclusively per entry.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use openraft::EntryPayload;

use crate::apply::{self, KvState};
use crate::error::{Error, Result};
use crate::lease::{LeaseClock, LeaseTable};
use crate::mvcc::Store;
use crate::proto::oxcdpb::InternalResponse;
use crate::raft::CommandResult;
use crate::raft::typ::{Entry, LogId, SnapshotMeta, StoredMembership};
use crate::storage::{Backend, SledBackend, WriteBatch};
use crate::watch::Hub;

const META_APPLIED: &[u8] = b"m/applied";
const META_MEMBERSHIP: &[u8] = b"m/membership";
const SNAPSHOT_FILE: &str = "state.snap";
const SNAPSHOT_META_FILE: &str = "state.snap.meta";

/// State behind the lock.
#[derive(Default)]
pub struct Inner {
    pub kv: KvState,
    pub applied: Option<LogId>,
    pub membership: StoredMembership,
}

/// The applied state of this member, shared by raft and every service.
pub struct StateStore {
    backend: SledBackend,
    inner: RwLock<Inner>,
    pub hub: Hub,
    pub lease_clock: LeaseClock,
    /// The minimum lease TTL in seconds, from the election timeout (same on every member).
    min_lease_ttl: i64,
    snapshot_dir: PathBuf,
    /// Notified with the applied index after every apply.
    applied_tx: tokio::sync::watch::Sender<u64>,
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

fn load_inner(backend: &SledBackend) -> Result<Inner> {
    let mvcc = Store::load(backend)?;
    let leases = LeaseTable::load(backend, &mvcc)?;
    Ok(Inner {
        kv: KvState { mvcc, leases },
        applied: decode_meta(backend, META_APPLIED)?,
        membership: decode_meta(backend, META_MEMBERSHIP)?,
    })
}

impl StateStore {
    pub fn open(db: &sled::Db, snapshot_dir: &Path, min_lease_ttl: i64) -> Result<Arc<StateStore>> {
        std::fs::create_dir_all(snapshot_dir)?;
        let backend = SledBackend::new(db, "state")?;
        let inner = load_inner(&backend)?;
        let lease_clock = LeaseClock::default();
        lease_clock.restart_all(inner.kv.leases.iter().map(|(id, l)| (id, l.ttl)));
        let applied_index = inner.applied.as_ref().map(|l| l.index).unwrap_or(0);
        Ok(Arc::new(StateStore {
            backend,
            inner: RwLock::new(inner),
            hub: Hub::default(),
            lease_clock,
            min_lease_ttl,
            snapshot_dir: snapshot_dir.to_path_buf(),
            applied_tx: tokio::sync::watch::channel(applied_index).0,
        }))
    }

    pub fn backend(&self) -> &dyn Backend {
        &self.backend
    }

    pub fn min_lease_ttl(&self) -> i64 {
        self.min_lease_ttl
    }

    /// A shared view of the state; do not hold it across an await.
    pub fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().expect("state lock poisoned")
    }

    pub fn applied_state(&self) -> (Option<LogId>, StoredMembership) {
        let inner = self.read();
        (inner.applied.clone(), inner.membership.clone())
    }

    /// Watches the applied index.
    pub fn applied_index(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    /// Applies one committed entry; returns the command's response.
    pub fn apply_entry(&self, entry: Entry) -> Result<CommandResult> {
        let mut inner = self.inner.write().expect("state lock poisoned");
        let mut batch = WriteBatch::default();
        let log_id = entry.log_id.clone();
        let mut result = CommandResult(InternalResponse::default());
        let mut applied = None;
        match entry.payload {
            EntryPayload::Blank => {}
            EntryPayload::Normal(cmd) => {
                let a = apply::apply(
                    &mut inner.kv,
                    &self.backend,
                    &mut batch,
                    cmd.0,
                    self.min_lease_ttl,
                );
                result = CommandResult(a.response.clone());
                applied = Some(a);
            }
            EntryPayload::Membership(m) => {
                inner.membership = StoredMembership::new(Some(log_id.clone()), m);
                batch.put(
                    META_MEMBERSHIP.to_vec(),
                    bincode::serialize(&inner.membership).map_err(Error::internal)?,
                );
            }
        }
        batch.put(
            META_APPLIED.to_vec(),
            bincode::serialize(&Some(log_id.clone())).map_err(Error::internal)?,
        );
        self.backend.write(batch)?;
        inner.applied = Some(log_id.clone());
        if let Some(a) = applied {
            if let Some((id, ttl)) = a.granted {
                self.lease_clock.renew(id, ttl);
            }
            if let Some(id) = a.revoked {
                self.lease_clock.forget(id);
            }
            self.hub.publish(a.revision, a.events);
        }
        drop(inner);
        self.applied_tx.send_replace(log_id.index);
        Ok(result)
    }

    /// Writes a snapshot of the whole state to disk and returns its metadata and path.
    pub fn build_snapshot(&self) -> Result<(SnapshotMeta, PathBuf)> {
        let inner = self.read();
        self.backend.flush()?;
        let meta = SnapshotMeta {
            last_log_id: inner.applied.clone(),
            last_membership: inner.membership.clone(),
        };
        let tmp = self.snapshot_dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let mut out = BufWriter::new(std::fs::File::create(&tmp)?);
        for pair in self.backend.scan(&[], &[]) {
            let (k, v) = pair?;
            out.write_all(&(k.len() as u32).to_be_bytes())?;
            out.write_all(&k)?;
            out.write_all(&(v.len() as u32).to_be_bytes())?;
            out.write_all(&v)?;
        }
        out.into_inner()
            .map_err(|e| Error::internal(e.error()))?
            .sync_all()?;
        drop(inner);
        let path = self.snapshot_dir.join(SNAPSHOT_FILE);
        std::fs::rename(&tmp, &path)?;
        std::fs::write(
            self.snapshot_dir.join(SNAPSHOT_META_FILE),
            bincode::serialize(&meta).map_err(Error::internal)?,
        )?;
        Ok((meta, path))
    }

    /// The last snapshot written or installed, if any.
    pub fn current_snapshot(&self) -> Result<Option<(SnapshotMeta, PathBuf)>> {
        let meta_path = self.snapshot_dir.join(SNAPSHOT_META_FILE);
        let path = self.snapshot_dir.join(SNAPSHOT_FILE);
        if !meta_path.exists() || !path.exists() {
            return Ok(None);
        }
        let meta = bincode::deserialize(&std::fs::read(meta_path)?).map_err(Error::internal)?;
        Ok(Some((meta, path)))
    }

    /// Replaces the whole state with the snapshot at `path`.
    pub fn install_snapshot(&self, meta: &SnapshotMeta, path: &Path) -> Result<()> {
        let mut inner = self.inner.write().expect("state lock poisoned");
        self.backend.clear()?;
        let mut input = BufReader::new(std::fs::File::open(path)?);
        let mut batch = WriteBatch::default();
        let mut len = [0u8; 4];
        loop {
            match input.read_exact(&mut len) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e.into()),
            }
            let mut key = vec![0; u32::from_be_bytes(len) as usize];
            input.read_exact(&mut key)?;
            input.read_exact(&mut len)?;
            let mut value = vec![0; u32::from_be_bytes(len) as usize];
            input.read_exact(&mut value)?;
            batch.put(key, value);
        }
        batch.put(
            META_APPLIED.to_vec(),
            bincode::serialize(&meta.last_log_id).map_err(Error::internal)?,
        );
        batch.put(
            META_MEMBERSHIP.to_vec(),
            bincode::serialize(&meta.last_membership).map_err(Error::internal)?,
        );
        self.backend.write(batch)?;
        self.backend.flush()?;
        *inner = load_inner(&self.backend)?;
        self.lease_clock
            .restart_all(inner.kv.leases.iter().map(|(id, l)| (id, l.ttl)));
        let index = inner.applied.as_ref().map(|l| l.index).unwrap_or(0);
        drop(inner);
        let own = self.snapshot_dir.join(SNAPSHOT_FILE);
        if path != own {
            std::fs::copy(path, &own)?;
        }
        std::fs::write(
            self.snapshot_dir.join(SNAPSHOT_META_FILE),
            bincode::serialize(meta).map_err(Error::internal)?,
        )?;
        self.applied_tx.send_replace(index);
        Ok(())
    }
}
