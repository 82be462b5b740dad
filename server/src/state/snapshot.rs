//! Raft snapshots of the applied state: taking one (making the state durable), writing the
//! copy a lagging member is sent, installing one received from the leader, and the file
//! format they share.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::storage::{Backend, WriteBatch};
use crate::typ::SnapshotMeta;

use super::{
    META_APPLIED, META_MEMBERSHIP, META_SNAPSHOT, StateStore, decode_meta, load_applied_state,
};

const SNAPSHOT_PREFIX: &str = "state-";
const SNAPSHOT_SUFFIX: &str = ".snap";
/// Where a snapshot is written before it gets its name; building and installing (which
/// can overlap: raft builds in the background) each have their own.
const SNAPSHOT_BUILD_TMP: &str = "state.snap.build.tmp";
const SNAPSHOT_INSTALL_TMP: &str = "state.snap.install.tmp";

/// Set once a snapshot file handed out is complete: `Ok`, or why it could not be written.
pub type SnapshotWritten = tokio::sync::watch::Receiver<Option<std::result::Result<(), String>>>;

impl StateStore {
    /// Takes a snapshot for raft, as etcd does at its snapshot count: the applied state is
    /// made durable (raft then purges the log up to it) and the snapshot's metadata is
    /// recorded; no copy of the state is written. The copy a lagging member needs is written
    /// when raft asks for it ([`StateStore::current_snapshot_async`]), from the state as it is
    /// then. A copy written here, every snapshot count of entries on every member at about
    /// the same index, cost 0.5–1 s of scanning and writing the whole state (100k keys), and
    /// on three members sharing two cores it doubled the p99 latency of writes meanwhile.
    pub async fn build_snapshot_async(self: &Arc<Self>) -> Result<SnapshotMeta> {
        self.on_committer(|store| store.build_snapshot()).await
    }

    /// See [`StateStore::build_snapshot_async`].
    pub fn build_snapshot(&self) -> Result<SnapshotMeta> {
        fail::fail_point!("snapshot-before-build", |_| Err(Error::internal(
            "failpoint snapshot-before-build"
        )));
        let meta = {
            let meta = self.read().snapshot_meta();
            let mut batch = WriteBatch::default();
            batch.put(
                META_SNAPSHOT.to_vec(),
                bincode::serialize(&Some(&meta)).map_err(Error::internal)?,
            );
            self.backend.write(batch)?;
            meta
        };
        // The state up to the snapshot is durable before raft purges the log it replaces.
        self.flush()?;
        // Older copies cannot bring a member up to the log that is left.
        self.remove_snapshots_older_than(&self.snapshot_path(&meta))?;
        Ok(meta)
    }

    /// The snapshot a lagging member is sent, and the one raft reads at start: the newest
    /// file when it is not older than the last snapshot raft took (a file installed from the
    /// leader, or written earlier by this call), else a file written now of the whole state
    /// as it is, whose metadata is the applied position. `None` before any snapshot.
    ///
    /// Returns as soon as the metadata is known; the file may still be being written, and
    /// the [`SnapshotWritten`] returned tells when it is complete. So raft's state machine
    /// worker, which asks for it, goes on applying meanwhile (it waited ~0.5 s per 100k keys
    /// when the whole file was written first), as the leader does with etcd's snapshots.
    ///
    /// Files are written on the committer's thread. The scan pulls every page of the state
    /// through sled's cache; the pages it evicts are freed by other threads to the heap of
    /// the thread that allocated them, and a thread that allocates again soon (the committer
    /// does, all the time) takes that memory back, while an idle blocking-pool thread holds on
    /// to it (when every snapshot wrote a copy, peak RSS was 5–28 MiB lower in six paired runs).
    pub async fn current_snapshot_async(
        self: &Arc<Self>,
    ) -> Result<Option<(SnapshotMeta, PathBuf, SnapshotWritten)>> {
        let (found_tx, found_rx) = tokio::sync::oneshot::channel();
        let (written_tx, written_rx) = tokio::sync::watch::channel(None);
        let store = self.clone();
        self.committer.run(Box::new(move || {
            let result = store.find_or_write_snapshot(|found| {
                let _ = found_tx.send(found);
            });
            written_tx.send_replace(Some(result.map_err(|e| e.to_string())));
        }))?;
        match found_rx.await {
            Ok(found) => Ok(found.map(|(meta, path)| (meta, path, written_rx))),
            // Failed before the snapshot's metadata was known.
            Err(_) => {
                let mut written = written_rx;
                let failed = match written.wait_for(Option::is_some).await {
                    Ok(result) => result.clone().and_then(std::result::Result::err),
                    Err(_) => None,
                };
                Err(failed.map_or(Error::Stopped, Error::internal))
            }
        }
    }

    /// [`StateStore::current_snapshot_async`] on the caller's thread, returning once the
    /// file is complete.
    #[cfg(test)]
    pub fn current_snapshot(&self) -> Result<Option<(SnapshotMeta, PathBuf)>> {
        let mut current = None;
        self.find_or_write_snapshot(|found| current = found)?;
        Ok(current)
    }

    /// Finds or writes the current snapshot (see [`StateStore::current_snapshot_async`]);
    /// `found` hears of it, or of there being none, once its metadata is known.
    fn find_or_write_snapshot(
        &self,
        found: impl FnOnce(Option<(SnapshotMeta, PathBuf)>),
    ) -> Result<()> {
        let taken: Option<SnapshotMeta> = decode_meta(self.backend.as_ref(), META_SNAPSHOT)?;
        let newest = self.newest_snapshot_file()?;
        let index = |meta: &SnapshotMeta| meta.last_log_id.as_ref().map(|l| l.index);
        match (newest, taken) {
            (Some(file), taken) if taken.as_ref().is_none_or(|t| index(&file.0) >= index(t)) => {
                found(Some(file));
                Ok(())
            }
            (_, None) => {
                found(None);
                Ok(())
            }
            (_, Some(_)) => self.write_snapshot(found),
        }
    }

    /// Writes the whole state to a snapshot file; `found` hears of its metadata and path
    /// before the file is written.
    fn write_snapshot(&self, found: impl FnOnce(Option<(SnapshotMeta, PathBuf)>)) -> Result<()> {
        let frozen = self.freeze(|inner, backend| {
            let (revs_start, revs_end) = crate::mvcc::revision_keys();
            let changeable = backend
                .scan(&[], &revs_start)
                .chain(backend.scan(&revs_end, &[]))
                .collect::<Result<Vec<_>>>()?;
            Ok((inner.snapshot_meta(), changeable))
        })?;
        let (meta, changeable) = &frozen.taken;
        let path = self.snapshot_path(meta);
        found(Some((meta.clone(), path.clone())));
        let tmp = self.snapshot_dir.join(SNAPSHOT_BUILD_TMP);
        let mut out = BufWriter::new(std::fs::File::create(&tmp)?);
        write_chunk(
            &mut out,
            &bincode::serialize(meta).map_err(Error::internal)?,
        )?;
        for (k, v) in changeable {
            write_chunk(&mut out, k)?;
            write_chunk(&mut out, v)?;
        }
        for pair in frozen.revisions() {
            let (k, v) = pair?;
            write_chunk(&mut out, &k)?;
            write_chunk(&mut out, &v)?;
        }
        drop(frozen);
        out.into_inner()
            .map_err(|e| Error::internal(e.error()))?
            .sync_all()?;
        std::fs::rename(&tmp, &path)?;
        self.remove_snapshots_older_than(&path)
    }

    /// The newest snapshot file and its metadata, if any.
    fn newest_snapshot_file(&self) -> Result<Option<(SnapshotMeta, PathBuf)>> {
        let mut newest: Option<PathBuf> = None;
        for path in self.snapshot_files()? {
            if newest
                .as_ref()
                .is_none_or(|n| path.file_name() > n.file_name())
            {
                newest = Some(path);
            }
        }
        let Some(path) = newest else {
            return Ok(None);
        };
        let meta = read_snapshot_meta(&mut BufReader::new(std::fs::File::open(&path)?))?;
        Ok(Some((meta, path)))
    }

    /// Replaces the whole state with the snapshot at `path`.
    ///
    /// The snapshot becomes this member's own file before the state is replaced, so a crash
    /// in between leaves a snapshot newer than the applied state, which raft installs again
    /// at restart.
    pub fn install_snapshot(&self, meta: &SnapshotMeta, path: &Path) -> Result<()> {
        fail::fail_point!("snapshot-before-install", |_| Err(Error::internal(
            "failpoint snapshot-before-install"
        )));
        let mut input = BufReader::new(std::fs::File::open(path)?);
        if read_snapshot_meta(&mut input)?.last_log_id != meta.last_log_id {
            return Err(Error::internal("snapshot file does not match its metadata"));
        }
        let own = self.snapshot_path(meta);
        if path != own {
            let tmp = self.snapshot_dir.join(SNAPSHOT_INSTALL_TMP);
            std::fs::copy(path, &tmp)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &own)?;
        }
        self.replace_with(meta, |put| {
            while let Some(key) = read_chunk(&mut input)? {
                let value = read_chunk(&mut input)?
                    .ok_or_else(|| Error::internal("snapshot ends inside a pair"))?;
                put(key, value)?;
            }
            Ok(())
        })?;
        self.remove_snapshots_older_than(&own)
    }

    /// Replaces the whole state with the backend pairs (as a snapshot file holds them) that
    /// `fill` puts, at the position and membership of `meta`, which also becomes the last
    /// snapshot taken. Written in batches, so a state of any size needs little memory; a crash
    /// midway leaves a state the caller replaces again (raft installs its snapshot again at
    /// restart; a restore builds its data dir aside).
    pub fn replace_with(
        &self,
        meta: &SnapshotMeta,
        fill: impl FnOnce(&mut dyn FnMut(Vec<u8>, Vec<u8>) -> Result<()>) -> Result<()>,
    ) -> Result<()> {
        const BATCH_PAIRS: usize = 10_000;
        let _no_snapshot_reads = self.removals.write().expect("removals lock poisoned");
        let mut inner = self.inner.write().expect("state lock poisoned");
        self.backend.clear()?;
        let mut batch = WriteBatch::default();
        let mut in_batch = 0;
        fill(&mut |key, value| {
            batch.put(key, value);
            in_batch += 1;
            if in_batch == BATCH_PAIRS {
                self.backend.write(std::mem::take(&mut batch))?;
                self.backend.commit()?;
                in_batch = 0;
            }
            Ok(())
        })?;
        batch.put(
            META_APPLIED.to_vec(),
            bincode::serialize(&meta.last_log_id).map_err(Error::internal)?,
        );
        batch.put(
            META_MEMBERSHIP.to_vec(),
            bincode::serialize(&meta.last_membership).map_err(Error::internal)?,
        );
        batch.put(
            META_SNAPSHOT.to_vec(),
            bincode::serialize(&Some(meta)).map_err(Error::internal)?,
        );
        self.backend.write(batch)?;
        self.backend.flush()?;
        *inner = load_applied_state(self.backend.as_ref())?;
        self.membership_applied.notify_one();
        self.lease_clock
            .restart_all(inner.kv.leases.iter().map(|(id, l)| (id, l.ttl)));
        let index = inner.applied.as_ref().map(|l| l.index).unwrap_or(0);
        // Under the state lock, like apply: streams see the jump before any later revision.
        self.hub.publish_jump(inner.kv.mvcc.current_rev());
        drop(inner);
        self.applied_tx.send_replace(index);
        Ok(())
    }

    /// Each snapshot has its own file, named by its last index: a path handed out once
    /// always holds the data of its metadata, even after a newer snapshot is built.
    pub fn snapshot_path(&self, meta: &SnapshotMeta) -> PathBuf {
        let index = meta.last_log_id.as_ref().map(|l| l.index).unwrap_or(0);
        self.snapshot_dir
            .join(format!("{SNAPSHOT_PREFIX}{index:020}{SNAPSHOT_SUFFIX}"))
    }

    /// This member's snapshot files (not temporary or incoming ones).
    pub(super) fn snapshot_files(&self) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.snapshot_dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.starts_with(SNAPSHOT_PREFIX) && name.ends_with(SNAPSHOT_SUFFIX) {
                files.push(path);
            }
        }
        Ok(files)
    }

    /// Removes the snapshot files older than `keep` (names order by index). A newer one
    /// stays: a snapshot installed while an older one was being built.
    fn remove_snapshots_older_than(&self, keep: &Path) -> Result<()> {
        for path in self.snapshot_files()? {
            if path.file_name() >= keep.file_name() {
                continue;
            }
            // Gone already is fine: only the newest file matters.
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Snapshot files are a sequence of chunks, each a big-endian u32 length and its bytes: the
/// bincode [`SnapshotMeta`] first, then key and value of every backend pair. Meta and data
/// share one file so one rename replaces both.
fn write_chunk(out: &mut impl Write, bytes: &[u8]) -> Result<()> {
    let len = u32::try_from(bytes.len()).map_err(Error::internal)?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(bytes)?;
    Ok(())
}

/// The next chunk, or `None` at the end of the file.
fn read_chunk(input: &mut impl Read) -> Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let mut bytes = vec![0; u32::from_be_bytes(len) as usize];
    input.read_exact(&mut bytes)?;
    Ok(Some(bytes))
}

fn read_snapshot_meta(input: &mut impl Read) -> Result<SnapshotMeta> {
    let bytes = read_chunk(input)?.ok_or_else(|| Error::internal("empty snapshot file"))?;
    bincode::deserialize(&bytes).map_err(Error::internal)
}
