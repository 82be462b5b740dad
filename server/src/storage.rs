//! The storage engine boundary: an ordered, durable byte map with atomic batches.
//!
//! Everything the server persists except the raft log's entries (vote, the MVCC key space,
//! leases, applied position) goes through [`Backend`]. The contract:
//! - `write` applies a [`WriteBatch`] atomically: after a crash either all of it or none of it
//!   is visible;
//! - nothing is guaranteed to survive a crash until `flush` returns;
//! - `scan` yields keys in ascending byte order within `[start, end)`;
//! - keys starting with `r` are mvcc revision keys (`r`, then main and sub revision as
//!   big-endian u64s), which [`SledBackend`] packs in blocks (see [`packed`]); `write` refuses
//!   any other key starting with `r`.
//!
//! [`SledBackend`] is the implementation, and [`BufferedBackend`] puts a write buffer in front
//! of it; the conformance test at the bottom pins the contract for both.

mod packed;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::Result;

/// One atomic group of writes.
#[derive(Debug, Default)]
pub struct WriteBatch {
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteBatch {
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), Some(value.into())));
    }

    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), None));
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A key/value pair read from a backend.
pub type Pair = (Vec<u8>, Vec<u8>);

/// An ordered byte map with atomic batches and explicit durability.
pub trait Backend: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Ascending pairs with `start <= key < end`; an empty `end` means no upper bound.
    fn scan(&self, start: &[u8], end: &[u8]) -> Box<dyn Iterator<Item = Result<Pair>> + '_>;
    fn write(&self, batch: WriteBatch) -> Result<()>;
    /// Makes every completed `write` durable.
    fn flush(&self) -> Result<()>;
    /// Bytes the engine occupies on disk.
    fn size_on_disk(&self) -> u64;
}

/// A sled tree. Sled's own periodic flush is off: durability happens only at `flush`.
#[derive(Clone)]
pub struct SledBackend {
    db: sled::Db,
    tree: sled::Tree,
}

impl SledBackend {
    /// Opens (or creates) the sled database in `dir` with periodic flushing disabled.
    ///
    /// Sled's page cache is kept small: keys live in the in-memory MVCC index, so sled is read
    /// for values by revision, and pages it drops come back from the OS page cache. At
    /// 256 MiB the cache held every page ever written (~1 KiB of resident memory per put,
    /// 150 MiB after 140k puts); at 16 MiB that is 129 MiB, for a full scan ~25 % slower.
    /// At 8 MiB, with the WAL's resident window at 2 instead of 8 MiB, peak RSS after 12 s of
    /// 64-client puts was 124–128 instead of 136–146 MiB, with puts and the paged full scan
    /// of 100k keys as fast as before (within run-to-run noise).
    pub fn open_db(dir: &std::path::Path) -> Result<sled::Db> {
        Ok(sled::Config::new()
            .path(dir)
            .flush_every_ms(None)
            .cache_capacity(8 * 1024 * 1024)
            .open()?)
    }

    pub fn new(db: &sled::Db, tree: &str) -> Result<SledBackend> {
        Ok(SledBackend {
            db: db.clone(),
            tree: db.open_tree(tree)?,
        })
    }

    /// Removes every key of this tree (used when a snapshot replaces the state).
    pub fn clear(&self) -> Result<()> {
        Ok(self.tree.clear()?)
    }

    /// Writes one sled pair as it is, on its own (no atomicity with other writes): a pair
    /// [`SledBackend::scan_stored`] gave, as when copying a database.
    pub fn insert_stored(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.tree.insert(key, value)?;
        Ok(())
    }

    /// The pairs sled holds, revision keys packed (see [`packed`]), in key order.
    pub fn scan_stored(&self) -> impl Iterator<Item = Result<Pair>> + 'static {
        owned_pairs(self.tree.iter())
    }

    /// Packs revision keys written before they were stored in blocks, a batch at a time.
    pub fn pack_unpacked_revisions(&self) -> Result<()> {
        loop {
            let unpacked = self
                .tree
                .scan_prefix([packed::PREFIX])
                .filter(|r| r.as_ref().map_or(true, |(k, _)| packed::is_packed(k)))
                .take(10_000)
                .collect::<std::result::Result<Vec<_>, _>>()?;
            if unpacked.is_empty() {
                return Ok(());
            }
            let mut batch = sled::Batch::default();
            let mut blocks = packed::BlockChanges::default();
            for (k, v) in &unpacked {
                batch.remove(k.clone());
                blocks.add(k, Some(v));
            }
            self.add_blocks(blocks, &mut batch)?;
            self.tree.apply_batch(batch)?;
            reclaim_after(unpacked.len());
            self.db.flush()?;
        }
    }

    /// Applies puts (`Some`) and removals (`None`) as one atomic sled batch.
    fn apply<'a>(&self, ops: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>) -> Result<()> {
        let mut batch = sled::Batch::default();
        let mut blocks = packed::BlockChanges::default();
        let mut writes = 0;
        for (k, v) in ops {
            writes += 1;
            if packed::is_packed(k) {
                blocks.add(k, v);
                continue;
            }
            packed::check_key(k)?;
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        self.add_blocks(blocks, &mut batch)?;
        let applied = self.tree.apply_batch(batch);
        reclaim_after(writes);
        Ok(applied?)
    }

    /// Adds to `batch` the new values of the blocks `blocks` changes.
    fn add_blocks(&self, blocks: packed::BlockChanges, batch: &mut sled::Batch) -> Result<()> {
        blocks.apply(
            |block| Ok(self.tree.get(block)?),
            |block, value| match value {
                Some(v) => batch.insert(&block[..], v),
                None => batch.remove(&block[..]),
            },
        )
    }

    /// Sled pairs in `[start, end)` (`end` empty: no upper bound), as stored.
    fn stored_range(&self, start: &[u8], end: &[u8]) -> sled::Iter {
        if end.is_empty() {
            self.tree.range(start.to_vec()..)
        } else {
            self.tree.range(start.to_vec()..end.to_vec())
        }
    }

    /// Like `scan`, but the iterator holds its own handle on the tree.
    ///
    /// The range is read in up to three parts: keys below the revision key space and keys
    /// above it as stored, and the revision keys unpacked from the blocks that may hold
    /// some of `[start, end)`.
    fn scan_owned(
        &self,
        start: &[u8],
        end: &[u8],
    ) -> Box<dyn Iterator<Item = Result<Pair>> + 'static> {
        let (packed_start, packed_end) = ([packed::PREFIX], [packed::PREFIX + 1]);
        let unbounded = end.is_empty();
        let mut parts: Vec<Box<dyn Iterator<Item = Result<Pair>>>> = Vec::new();
        if start < packed_start.as_slice() && (unbounded || start < end) {
            let below_end = if unbounded || end > packed_start.as_slice() {
                packed_start.as_slice()
            } else {
                end
            };
            parts.push(Box::new(owned_pairs(self.stored_range(start, below_end))));
        }
        if start < packed_end.as_slice() && (unbounded || end > packed_start.as_slice()) {
            let (from, to) = (start.to_vec(), end.to_vec());
            let blocks = self.stored_range(&packed::first_block_from(start), &packed_end);
            let revisions = blocks
                .flat_map(|block| match block {
                    Ok((k, v)) if k.len() == packed::BLOCK_KEY_LEN => match packed::unpack(&v) {
                        Ok(pairs) => pairs.into_iter().map(Ok).collect::<Vec<_>>(),
                        Err(e) => vec![Err(e)],
                    },
                    Ok((k, _)) => vec![Err(crate::error::Error::internal(format!(
                        "unpacked revision key {k:?}"
                    )))],
                    Err(e) => vec![Err(e.into())],
                })
                .skip_while(move |r| r.as_ref().is_ok_and(|(k, _)| *k < from))
                .take_while(move |r| r.as_ref().map_or(true, |(k, _)| to.is_empty() || *k < to));
            parts.push(Box::new(revisions));
        }
        if unbounded || end > packed_end.as_slice() {
            let above_start = if start > packed_end.as_slice() {
                start
            } else {
                packed_end.as_slice()
            };
            parts.push(Box::new(owned_pairs(self.stored_range(above_start, end))));
        }
        Box::new(parts.into_iter().flatten())
    }
}

impl Backend for SledBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if packed::is_packed(key) {
            return match self.tree.get(packed::block_of(key))? {
                Some(block) => Ok(packed::find(&block, key)?.map(<[u8]>::to_vec)),
                None => Ok(None),
            };
        }
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    fn scan(&self, start: &[u8], end: &[u8]) -> Box<dyn Iterator<Item = Result<Pair>> + '_> {
        self.scan_owned(start, end)
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        self.apply(batch.ops.iter().map(|(k, v)| (k.as_slice(), v.as_deref())))
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

/// Sled's pairs as owned bytes.
fn owned_pairs(iter: sled::Iter) -> impl Iterator<Item = Result<Pair>> {
    iter.map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(Into::into))
}

/// Lets sled's memory reclamation catch up with `writes` writes made under one pin.
///
/// Sled hands the nodes and log segments its writes replace to crossbeam's epoch collector,
/// which runs that deferred work a little at a time: up to 8 bags of 64 items each time a
/// thread has pinned an epoch 128 times. A batch pins once for all its writes, so behind
/// batches of thousands of writes the work piles up in the process-wide queue: memory stays
/// held, and freed segments are not reused, so sled's file grows (a defragmented copy made
/// after 100k batched puts and 150k batched removals was 34 MiB; 25 MiB once the queue had
/// been worked off). One pin per write mostly keeps up with what the writes leave, not while
/// another thread holds a pin (the epoch cannot advance then; `StateStore::defragment` pins
/// more before it copies); a pin with nothing to collect costs ~14 ns.
pub fn reclaim_after(writes: usize) {
    for _ in 0..writes {
        drop(sled::pin());
    }
}

/// Buffered writes are due for sled once this many keys are waiting ...
const COMMIT_KEYS: usize = 10_000;
/// ... or this many bytes ...
const COMMIT_BYTES: usize = 16 * 1024 * 1024;
/// ... or when the oldest has waited this long.
pub const COMMIT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

type Changes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Writes not yet handed to sled.
#[derive(Default)]
struct Pending {
    changes: Changes,
    /// Key and value bytes written since the last commit began (overwrites count twice).
    bytes: usize,
    /// When the oldest waiting write arrived.
    since: Option<std::time::Instant>,
}

#[derive(Default)]
struct Buffers {
    /// Written since the last commit began.
    pending: Pending,
    /// Being written to sled by the commit in progress; newer than sled, older than
    /// `pending`.
    committing: Arc<Changes>,
}

/// A [`SledBackend`] behind a write buffer, like etcd's batch transaction over bbolt:
/// `write` lands in memory and every read sees it at once; a commit hands everything
/// buffered to sled as one atomic batch.
///
/// Sled pays for each atomic batch with a write of its log buffer and wake-ups of its io
/// threads, so committing every 100 ms instead of every applied group takes that cost off
/// each request. Durability is unchanged: what is buffered is also in the raft log, and a
/// member that crashes replays the log from the applied position sled holds.
///
/// A commit has two steps so that writers need not wait for sled: [`BufferedBackend::begin_commit`]
/// moves the buffer aside (callers call it where their writes form a consistent whole;
/// the state store does between applied groups) and [`Commit::finish`] writes it out while
/// new writes fill a fresh buffer.
pub struct BufferedBackend {
    /// Replaced whole when the state is defragmented.
    base: std::sync::RwLock<SledBackend>,
    buffers: std::sync::RwLock<Buffers>,
    /// One commit at a time.
    committer: std::sync::Mutex<()>,
}

/// A commit begun: its changes are set aside, still visible to reads, until `finish`.
pub struct Commit<'a> {
    backend: &'a BufferedBackend,
    changes: Arc<Changes>,
    _one_at_a_time: std::sync::MutexGuard<'a, ()>,
}

impl Commit<'_> {
    /// Writes the changes to sled as one atomic batch (not yet durable: see `flush`).
    pub fn finish(self) -> Result<()> {
        let written = self.backend.base().apply(
            self.changes
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_deref())),
        );
        let mut buffers = self.backend.buffers_mut();
        if written.is_err() {
            // Kept for the next commit; newer writes win.
            for (k, v) in self.changes.iter() {
                if !buffers.pending.changes.contains_key(k) {
                    buffers.pending.changes.insert(k.clone(), v.clone());
                }
            }
            buffers
                .pending
                .since
                .get_or_insert_with(std::time::Instant::now);
        }
        buffers.committing = Arc::default();
        Ok(written?)
    }
}

impl BufferedBackend {
    pub fn new(base: SledBackend) -> BufferedBackend {
        BufferedBackend {
            base: std::sync::RwLock::new(base),
            buffers: Default::default(),
            committer: Default::default(),
        }
    }

    fn base(&self) -> std::sync::RwLockReadGuard<'_, SledBackend> {
        self.base.read().expect("backend lock poisoned")
    }

    /// The sled tree behind the buffer (without what is buffered).
    pub fn written(&self) -> SledBackend {
        self.base().clone()
    }

    /// Puts `new` behind the buffer in place of the current tree, which it returns. The
    /// caller has committed everything and keeps writes out until this returns.
    pub fn replace_written(&self, new: SledBackend) -> SledBackend {
        let _one = self.committer.lock().expect("commit lock poisoned");
        std::mem::replace(&mut *self.base.write().expect("backend lock poisoned"), new)
    }

    fn buffers(&self) -> std::sync::RwLockReadGuard<'_, Buffers> {
        self.buffers.read().expect("write buffer lock poisoned")
    }

    fn buffers_mut(&self) -> std::sync::RwLockWriteGuard<'_, Buffers> {
        self.buffers.write().expect("write buffer lock poisoned")
    }

    /// Whether the buffer is big or old enough to be committed.
    pub fn commit_due(&self) -> bool {
        let p = &self.buffers().pending;
        p.changes.len() >= COMMIT_KEYS
            || p.bytes >= COMMIT_BYTES
            || p.since.is_some_and(|t| t.elapsed() >= COMMIT_INTERVAL)
    }

    /// Sets the buffered writes aside for a commit (after any commit in progress ends);
    /// `None` when nothing is buffered.
    pub fn begin_commit(&self) -> Option<Commit<'_>> {
        let one = self.committer.lock().expect("commit lock poisoned");
        let mut buffers = self.buffers_mut();
        if buffers.pending.changes.is_empty() {
            return None;
        }
        let changes = Arc::new(std::mem::take(&mut buffers.pending).changes);
        buffers.committing = changes.clone();
        Some(Commit {
            backend: self,
            changes,
            _one_at_a_time: one,
        })
    }

    /// Hands every buffered write to sled as one atomic batch.
    pub fn commit(&self) -> Result<()> {
        match self.begin_commit() {
            Some(commit) => commit.finish(),
            None => Ok(()),
        }
    }

    /// Removes every key, buffered or written (used when a snapshot replaces the state).
    pub fn clear(&self) -> Result<()> {
        let _one = self.committer.lock().expect("commit lock poisoned");
        *self.buffers_mut() = Buffers::default();
        self.base().clear()
    }
}

impl Backend for BufferedBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        {
            let buffers = self.buffers();
            if let Some(value) = buffers
                .pending
                .changes
                .get(key)
                .or_else(|| buffers.committing.get(key))
            {
                return Ok(value.clone());
            }
        }
        self.base().get(key)
    }

    fn scan(&self, start: &[u8], end: &[u8]) -> Box<dyn Iterator<Item = Result<Pair>> + '_> {
        use std::ops::Bound;
        let upper = if end.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(end)
        };
        // The buffered parts of the range are copied out (each at most one commit's worth),
        // so sled is read lazily without holding the buffers' lock.
        let copy = |changes: &Changes| -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
            changes
                .range::<[u8], _>((Bound::Included(start), upper))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let (pending, committing) = {
            let buffers = self.buffers();
            (copy(&buffers.pending.changes), copy(&buffers.committing))
        };
        let mut pairs = self.base().scan_owned(start, end);
        for newer in [committing, pending] {
            if !newer.is_empty() {
                pairs = Box::new(Merge {
                    base: pairs.peekable(),
                    buffered: newer.into_iter().peekable(),
                });
            }
        }
        pairs
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        // Refused here, not at the commit that would fail again and again.
        batch
            .ops
            .iter()
            .try_for_each(|(k, _)| packed::check_key(k))?;
        let p = &mut self.buffers_mut().pending;
        p.since.get_or_insert_with(std::time::Instant::now);
        for (k, v) in batch.ops {
            p.bytes += k.len() + v.as_ref().map_or(0, Vec::len);
            p.changes.insert(k, v);
        }
        Ok(())
    }

    /// Commits what is buffered and flushes sled. Call it where the writes so far form a
    /// consistent whole.
    fn flush(&self) -> Result<()> {
        self.commit()?;
        self.base().flush()
    }

    fn size_on_disk(&self) -> u64 {
        self.base().size_on_disk()
    }
}

/// Ascending pairs of a written range overlaid with buffered changes (a buffered value
/// replaces the written one; a buffered removal hides it).
struct Merge<'a> {
    base: std::iter::Peekable<Box<dyn Iterator<Item = Result<Pair>> + 'a>>,
    buffered: std::iter::Peekable<std::vec::IntoIter<(Vec<u8>, Option<Vec<u8>>)>>,
}

impl Iterator for Merge<'_> {
    type Item = Result<Pair>;

    fn next(&mut self) -> Option<Result<Pair>> {
        use std::cmp::Ordering;
        loop {
            let Some((next_buffered, _)) = self.buffered.peek() else {
                return self.base.next();
            };
            let order = match self.base.peek() {
                Some(Ok((next_base, _))) => next_base.cmp(next_buffered),
                Some(Err(_)) => return self.base.next(),
                None => Ordering::Greater,
            };
            match order {
                Ordering::Less => return self.base.next(),
                Ordering::Equal => {
                    self.base.next();
                }
                Ordering::Greater => {}
            }
            if let Some((k, Some(v))) = self.buffered.next() {
                return Some(Ok((k, v)));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The contract every backend must keep.
    fn conformance(b: &dyn Backend) {
        let mut batch = WriteBatch::default();
        batch.put(b"b".to_vec(), b"2".to_vec());
        batch.put(b"a".to_vec(), b"1".to_vec());
        batch.put(b"c".to_vec(), b"3".to_vec());
        b.write(batch).unwrap();
        assert_eq!(b.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(b.get(b"z").unwrap(), None);
        let keys: Vec<_> = b.scan(b"a", b"c").map(|r| r.unwrap().0).collect();
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
        let all: Vec<_> = b.scan(b"", b"").map(|r| r.unwrap().0).collect();
        assert_eq!(all.len(), 3);
        let mut batch = WriteBatch::default();
        batch.delete(b"a".to_vec());
        batch.put(b"b".to_vec(), b"22".to_vec());
        b.write(batch).unwrap();
        b.flush().unwrap();
        assert_eq!(b.get(b"a").unwrap(), None);
        assert_eq!(b.get(b"b").unwrap(), Some(b"22".to_vec()));
    }

    /// Runs `open` until sled lets go of the lock file: its io threads may hold a database's
    /// lock for a moment after the last handle of an earlier open in this process dropped.
    pub(crate) fn when_unlocked<T>(mut open: impl FnMut() -> Result<T>) -> T {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match open() {
                Err(e)
                    if e.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                opened => return opened.unwrap(),
            }
        }
    }

    #[test]
    fn sled_backend_conforms_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = SledBackend::open_db(dir.path()).unwrap();
            conformance(&SledBackend::new(&db, "t").unwrap());
        }
        let db = when_unlocked(|| SledBackend::open_db(dir.path()));
        let b = SledBackend::new(&db, "t").unwrap();
        assert_eq!(b.get(b"b").unwrap(), Some(b"22".to_vec()));
        assert_eq!(b.get(b"c").unwrap(), Some(b"3".to_vec()));
    }

    /// A key of mvcc's revision key space: prefix, main and sub revision.
    fn rev(main: u64, sub: u64) -> Vec<u8> {
        let mut k = vec![packed::PREFIX];
        k.extend_from_slice(&main.to_be_bytes());
        k.extend_from_slice(&sub.to_be_bytes());
        k
    }

    /// Random puts, removals, reads and scans of plain and revision keys, each checked
    /// against an ordered map; then the same after reopening.
    #[test]
    fn sled_backend_reads_revision_keys_as_written_though_it_packs_them() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let plain: Vec<Vec<u8>> = [&b""[..], b"a", b"l\0\x01", b"m/rev", b"q\xff", b"s", b"z"]
            .iter()
            .map(|k| k.to_vec())
            .collect();
        let key = |next: &mut dyn FnMut(u64) -> u64| match next(4) {
            0 => plain[next(plain.len() as u64) as usize].clone(),
            _ => rev(next(70), next(3)),
        };
        let bound = |next: &mut dyn FnMut(u64) -> u64, key: Vec<u8>| match next(4) {
            0 => Vec::new(),
            1 => key[..next(key.len() as u64 + 1) as usize].to_vec(),
            _ => key,
        };
        let dir = tempfile::tempdir().unwrap();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        {
            let db = SledBackend::open_db(dir.path()).unwrap();
            let b = SledBackend::new(&db, "t").unwrap();
            for round in 0..300 {
                let mut batch = WriteBatch::default();
                for _ in 0..next(20) {
                    let k = key(&mut next);
                    if next(4) == 0 {
                        model.remove(&k);
                        batch.delete(k);
                    } else {
                        let v = format!("{round}").repeat(next(40) as usize).into_bytes();
                        model.insert(k.clone(), v.clone());
                        batch.put(k, v);
                    }
                }
                b.write(batch).unwrap();
                let k = key(&mut next);
                assert_eq!(b.get(&k).unwrap(), model.get(&k).cloned(), "get {k:?}");
                let (start, end) = (key(&mut next), key(&mut next));
                let (start, end) = (bound(&mut next, start), bound(&mut next, end));
                let scanned: Vec<Pair> = b.scan(&start, &end).map(|p| p.unwrap()).collect();
                let expected: Vec<Pair> = model
                    .iter()
                    .filter(|(k, _)| **k >= start && (end.is_empty() || **k < end))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                assert_eq!(scanned, expected, "scan {start:?}..{end:?}");
            }
            b.flush().unwrap();
        }
        let db = when_unlocked(|| SledBackend::open_db(dir.path()));
        let b = SledBackend::new(&db, "t").unwrap();
        let all: Vec<Pair> = b.scan(&[], &[]).map(|p| p.unwrap()).collect();
        assert_eq!(all, model.into_iter().collect::<Vec<_>>());
        // Stored: plain keys and blocks, no revision key of its own.
        assert!(b.scan_stored().all(|p| !packed::is_packed(&p.unwrap().0)));
        // The revision key space holds revision keys only.
        let mut batch = WriteBatch::default();
        batch.put(b"r1".to_vec(), b"v".to_vec());
        assert!(b.write(batch).is_err());
        let buffered = BufferedBackend::new(b);
        let mut batch = WriteBatch::default();
        batch.put(b"r1".to_vec(), b"v".to_vec());
        assert!(buffered.write(batch).is_err());
        assert_eq!(buffered.get(b"r1").unwrap(), None);
    }

    #[test]
    fn revision_keys_stored_one_by_one_are_packed_and_read_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let db = SledBackend::open_db(dir.path()).unwrap();
        let tree = db.open_tree("t").unwrap();
        let mut expected = BTreeMap::new();
        for main in 0..25_000u64 {
            let (k, v) = (rev(main, main % 2), main.to_string().into_bytes());
            tree.insert(&k, v.clone()).unwrap();
            expected.insert(k, v);
        }
        tree.insert(b"m/rev", b"x".to_vec()).unwrap();
        expected.insert(b"m/rev".to_vec(), b"x".to_vec());
        let b = SledBackend::new(&db, "t").unwrap();
        b.pack_unpacked_revisions().unwrap();
        assert!(b.scan_stored().all(|p| !packed::is_packed(&p.unwrap().0)));
        let all: BTreeMap<Vec<u8>, Vec<u8>> = b.scan(&[], &[]).map(|p| p.unwrap()).collect();
        assert_eq!(all, expected);
        assert_eq!(b.get(&rev(24_999, 1)).unwrap(), Some(b"24999".to_vec()));
        assert_eq!(b.get(&rev(24_999, 0)).unwrap(), None);
    }

    #[test]
    fn buffered_backend_conforms_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = SledBackend::open_db(dir.path()).unwrap();
            conformance(&BufferedBackend::new(SledBackend::new(&db, "t").unwrap()));
        }
        let db = when_unlocked(|| SledBackend::open_db(dir.path()));
        let b = SledBackend::new(&db, "t").unwrap();
        assert_eq!(b.get(b"b").unwrap(), Some(b"22".to_vec()));
        assert_eq!(b.get(b"c").unwrap(), Some(b"3".to_vec()));
    }

    fn keys_and_values(b: &dyn Backend, start: &[u8], end: &[u8]) -> Vec<(String, String)> {
        b.scan(start, end)
            .map(|r| {
                let (k, v) = r.unwrap();
                (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap())
            })
            .collect()
    }

    #[test]
    fn buffered_writes_overlay_committed_ones_until_committed_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let db = SledBackend::open_db(dir.path()).unwrap();
        let base = SledBackend::new(&db, "t").unwrap();
        let b = BufferedBackend::new(base.clone());
        let mut batch = WriteBatch::default();
        for k in ["a", "c", "e", "g"] {
            batch.put(k, format!("{k}1"));
        }
        b.write(batch).unwrap();
        assert!(base.get(b"a").unwrap().is_none(), "still buffered");
        b.commit().unwrap();
        assert_eq!(base.get(b"a").unwrap(), Some(b"a1".to_vec()));

        let mut batch = WriteBatch::default();
        batch.delete("a");
        batch.put("b", "b2");
        batch.put("c", "c2");
        batch.delete("e");
        batch.put("h", "h2");
        batch.delete("zz");
        b.write(batch).unwrap();
        let expect = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            keys_and_values(&b, b"", b""),
            expect(&[("b", "b2"), ("c", "c2"), ("g", "g1"), ("h", "h2")])
        );
        assert_eq!(
            keys_and_values(&b, b"c", b"h"),
            expect(&[("c", "c2"), ("g", "g1")])
        );
        assert_eq!(keys_and_values(&b, b"d", b"g"), expect(&[]));
        assert_eq!(b.get(b"a").unwrap(), None);
        assert_eq!(b.get(b"g").unwrap(), Some(b"g1".to_vec()));
        // The written tree still holds the old values until the commit.
        assert_eq!(
            keys_and_values(&base, b"", b""),
            expect(&[("a", "a1"), ("c", "c1"), ("e", "e1"), ("g", "g1")])
        );
        b.commit().unwrap();
        assert_eq!(
            keys_and_values(&base, b"", b""),
            keys_and_values(&b, b"", b"")
        );
        assert!(!b.commit_due(), "nothing is waiting after a commit");

        b.write({
            let mut batch = WriteBatch::default();
            batch.put("x", "x3");
            batch
        })
        .unwrap();
        b.clear().unwrap();
        assert_eq!(keys_and_values(&b, b"", b""), expect(&[]));
        assert_eq!(keys_and_values(&base, b"", b""), expect(&[]));
    }

    #[test]
    fn a_buffer_is_due_for_commit_once_it_has_waited() {
        let dir = tempfile::tempdir().unwrap();
        let db = SledBackend::open_db(dir.path()).unwrap();
        let b = BufferedBackend::new(SledBackend::new(&db, "t").unwrap());
        assert!(!b.commit_due());
        let mut batch = WriteBatch::default();
        batch.put("k", "v");
        b.write(batch).unwrap();
        std::thread::sleep(COMMIT_INTERVAL);
        assert!(b.commit_due());
    }
}
