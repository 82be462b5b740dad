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
//! of it; the conformance test (in `tests`) pins the contract for both.

mod buffered;
mod packed;
mod sled_backend;
#[cfg(test)]
pub(crate) mod tests;

pub use buffered::{BufferedBackend, COMMIT_INTERVAL, Commit};
pub use sled_backend::{SledBackend, reclaim_after};

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
