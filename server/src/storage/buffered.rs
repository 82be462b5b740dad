//! [`BufferedBackend`]: a write buffer in front of [`SledBackend`]. Applies write to memory;
//! the buffer reaches sled in large atomic commits, and reads see buffer and sled merged.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::Result;

use super::{Backend, Pair, SledBackend, WriteBatch, packed};

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
