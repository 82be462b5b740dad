//! [`SledBackend`]: the [`Backend`] on a sled tree, with mvcc revision keys packed in blocks.

use crate::error::Result;

use super::packed;
use super::{Backend, Pair, WriteBatch};

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
    pub(super) fn apply<'a>(
        &self,
        ops: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> Result<()> {
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
    pub(super) fn scan_owned(
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
