//! The storage engine boundary: an ordered, durable byte map with atomic batches.
//!
//! Everything the server persists except the raft log's entries (vote, the MVCC key space,
//! leases, applied position) goes through [`Backend`]. The contract:
//! - `write` applies a [`WriteBatch`] atomically: after a crash either all of it or none of it
//!   is visible;
//! - nothing is guaranteed to survive a crash until `flush` returns;
//! - `scan` yields keys in ascending byte order within `[start, end)`.
//!
//! [`SledBackend`] is the implementation; the conformance test at the bottom pins the contract.

use std::collections::BTreeMap;

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

    /// Appends this batch's changes to `all` and records them in `pending`, the view an
    /// [`Overlay`] gives of changes not yet written.
    pub fn move_into(self, all: &mut WriteBatch, pending: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
        for (key, value) in self.ops {
            pending.insert(key.clone(), value.clone());
            all.ops.push((key, value));
        }
    }
}

/// A backend as it will be once `pending` is written: reads while several commands are
/// applied into one batch see the earlier commands' changes.
pub struct Overlay<'a> {
    pub base: &'a dyn Backend,
    pub pending: &'a BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Backend for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.pending.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.base.get(key),
        }
    }

    fn scan(&self, start: &[u8], end: &[u8]) -> Box<dyn Iterator<Item = Result<Pair>> + '_> {
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for pair in self.base.scan(start, end) {
            match pair {
                Ok((k, v)) => {
                    merged.insert(k, v);
                }
                Err(e) => return Box::new(std::iter::once(Err(e))),
            }
        }
        let upper = if end.is_empty() {
            std::ops::Bound::Unbounded
        } else {
            std::ops::Bound::Excluded(end.to_vec())
        };
        for (k, v) in self
            .pending
            .range((std::ops::Bound::Included(start.to_vec()), upper))
        {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Box::new(merged.into_iter().map(Ok))
    }

    fn last_in(&self, start: &[u8], end: &[u8]) -> Result<Option<Pair>> {
        self.scan(start, end).last().transpose()
    }

    fn write(&self, _batch: WriteBatch) -> Result<()> {
        Err(crate::error::Error::internal("an overlay is read-only"))
    }

    fn flush(&self) -> Result<()> {
        self.base.flush()
    }

    fn size_on_disk(&self) -> u64 {
        self.base.size_on_disk()
    }
}

/// A key/value pair read from a backend.
pub type Pair = (Vec<u8>, Vec<u8>);

/// An ordered byte map with atomic batches and explicit durability.
pub trait Backend: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Ascending pairs with `start <= key < end`; an empty `end` means no upper bound.
    fn scan(&self, start: &[u8], end: &[u8]) -> Box<dyn Iterator<Item = Result<Pair>> + '_>;
    /// The last pair with `start <= key < end`, if any.
    fn last_in(&self, start: &[u8], end: &[u8]) -> Result<Option<Pair>>;
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
    pub fn open_db(dir: &std::path::Path) -> Result<sled::Db> {
        Ok(sled::Config::new()
            .path(dir)
            .flush_every_ms(None)
            .cache_capacity(256 * 1024 * 1024)
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
}

impl Backend for SledBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    fn scan(&self, start: &[u8], end: &[u8]) -> Box<dyn Iterator<Item = Result<Pair>> + '_> {
        let iter = if end.is_empty() {
            self.tree.range(start.to_vec()..)
        } else {
            self.tree.range(start.to_vec()..end.to_vec())
        };
        Box::new(iter.map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(Into::into)))
    }

    fn last_in(&self, start: &[u8], end: &[u8]) -> Result<Option<Pair>> {
        let mut iter = if end.is_empty() {
            self.tree.range(start.to_vec()..)
        } else {
            self.tree.range(start.to_vec()..end.to_vec())
        };
        Ok(iter
            .next_back()
            .transpose()?
            .map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        let mut sled_batch = sled::Batch::default();
        for (k, v) in batch.ops {
            match v {
                Some(v) => sled_batch.insert(k, v),
                None => sled_batch.remove(k),
            }
        }
        Ok(self.tree.apply_batch(sled_batch)?)
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(b.last_in(b"a", b"c").unwrap().unwrap().0, b"b".to_vec());
        assert_eq!(b.last_in(b"a", b"").unwrap().unwrap().0, b"c".to_vec());
        assert!(b.last_in(b"x", b"").unwrap().is_none());
        let mut batch = WriteBatch::default();
        batch.delete(b"a".to_vec());
        batch.put(b"b".to_vec(), b"22".to_vec());
        b.write(batch).unwrap();
        b.flush().unwrap();
        assert_eq!(b.get(b"a").unwrap(), None);
        assert_eq!(b.get(b"b").unwrap(), Some(b"22".to_vec()));
    }

    #[test]
    fn sled_backend_conforms_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = SledBackend::open_db(dir.path()).unwrap();
            conformance(&SledBackend::new(&db, "t").unwrap());
        }
        let db = SledBackend::open_db(dir.path()).unwrap();
        let b = SledBackend::new(&db, "t").unwrap();
        assert_eq!(b.get(b"b").unwrap(), Some(b"22".to_vec()));
        assert_eq!(b.get(b"c").unwrap(), Some(b"3".to_vec()));
    }
}
