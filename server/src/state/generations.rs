//! The state's sled database generations: `<root>/db.<generation>`, with `<root>/current`
//! naming the one in use, and defragmentation, which copies the state into the next
//! generation and switches `current`.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::storage::{Backend, SledBackend};

use super::StateStore;

/// The sled tree the state lives in, in every generation's database.
pub(super) const STATE_TREE: &str = "state";
const CURRENT: &str = "current";
const CURRENT_TMP: &str = "current.tmp";
pub(super) const DB_PREFIX: &str = "db.";

impl StateStore {
    /// Rewrites the state into a fresh database and drops the old one, giving back the
    /// space of deleted and compacted revisions (sled reuses freed space but never returns
    /// it). Applies and reads wait meanwhile, as in etcd. The new database is complete and
    /// flushed before `current` names it, so a crash at any point leaves one whole state.
    pub fn defragment(&self) -> Result<()> {
        let _no_snapshot_reads = self.removals.write().expect("removals lock poisoned");
        let _no_applies = self.inner.write().expect("state lock poisoned");
        self.backend.commit()?;
        // Sled's deferred frees that are still queued (the pins after each batch do not
        // always get them done: the epoch cannot advance while another thread is pinned)
        // would keep the copy from reusing the segments its own writes free. Measured on
        // 3 members right after a compaction of 150k revisions: copies of 21, 25 and 34 MB
        // without this, 21-22 MB on every member with it; 4M pins take ~60 ms.
        crate::storage::reclaim_after(4_000_000);
        let old_generation = self.generation.load(std::sync::atomic::Ordering::Relaxed);
        let generation = old_generation + 1;
        let dir = db_dir(&self.db_root, generation);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let fresh = SledBackend::new(&SledBackend::open_db(&dir)?, STATE_TREE)?;
        // The copy need not be atomic: nothing names the new database before it is complete
        // and flushed.
        let mut window = DefragWindow::default();
        for pair in self.backend.written().scan_stored() {
            if window.push(pair?) {
                window.insert_into(&fresh)?;
            }
        }
        window.insert_into(&fresh)?;
        fresh.flush()?;
        set_current(&self.db_root, generation)?;
        drop(self.backend.replace_written(fresh));
        self.generation
            .store(generation, std::sync::atomic::Ordering::Relaxed);
        std::fs::remove_dir_all(db_dir(&self.db_root, old_generation))?;
        Ok(())
    }
}

/// Consecutive pairs a defragment copies together, and the order it inserts them in.
///
/// Sled splits a full leaf (16 keys) in the middle, so keys inserted in ascending order
/// leave every leaf half empty, and the pages its log writes while leaves fill stay as
/// garbage until a segment is less than half live. A window's pairs go in three interleaved
/// ascending passes (its 1st, 4th, 7th ... pair, then its 2nd, 5th, 8th ..., then the rest).
/// Measured on 50k revisions of 305 B, one pair each: 30.5 MiB in ascending order, 25 MiB
/// shuffled in chunks of 10k pairs, 20.4 MiB in three passes (two passes: 25, four: 24.7);
/// three passes were the smallest with values of 40 B to 1 KiB too. The same revisions
/// packed (3.1k blocks of 4.9 KB): 27 MiB ascending, 20.4 MiB in three passes. The window
/// is large because the gain needs it: 50k revisions in windows of 3k pairs, 25.4 MiB; 30k,
/// 21.8 MiB.
#[derive(Default)]
struct DefragWindow {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    bytes: usize,
}

impl DefragWindow {
    /// Key and value bytes of a full window, held in memory while it is copied.
    const BYTES: usize = 64 * 1024 * 1024;
    const PASSES: usize = 3;

    /// Adds the next pair in key order; true when the window is full.
    fn push(&mut self, pair: (Vec<u8>, Vec<u8>)) -> bool {
        self.bytes += pair.0.len() + pair.1.len();
        self.pairs.push(pair);
        self.bytes >= Self::BYTES
    }

    /// Inserts the window's pairs into `db` and empties the window.
    fn insert_into(&mut self, db: &SledBackend) -> Result<()> {
        let window = std::mem::take(self);
        for pass in 0..Self::PASSES {
            for (k, v) in window.pairs.iter().skip(pass).step_by(Self::PASSES) {
                db.insert_stored(k, v)?;
            }
        }
        Ok(())
    }
}

/// Opens the state database `current` names under `root` (generation 0 when there is none
/// yet) and removes any other generation: the one a defragment replaced, or the one it was
/// writing when it stopped.
pub(super) fn open_current_db(root: &Path) -> Result<(sled::Db, u64)> {
    std::fs::create_dir_all(root)?;
    let generation = match std::fs::read_to_string(root.join(CURRENT)) {
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .map_err(|e| Error::internal(format!("{}: {e}", root.join(CURRENT).display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e.into()),
    };
    let keep = db_dir(root, generation);
    for entry in std::fs::read_dir(root)? {
        let path = entry?.path();
        let is_db = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(DB_PREFIX));
        if is_db && path != keep {
            std::fs::remove_dir_all(path)?;
        }
    }
    Ok((SledBackend::open_db(&keep)?, generation))
}

/// The directory of the state database of `generation`.
fn db_dir(root: &Path, generation: u64) -> PathBuf {
    root.join(format!("{DB_PREFIX}{generation}"))
}

/// Makes `generation` the one `current` names, durably (write, sync, rename, sync the dir).
fn set_current(root: &Path, generation: u64) -> Result<()> {
    let tmp = root.join(CURRENT_TMP);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(format!("{generation}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, root.join(CURRENT))?;
    std::fs::File::open(root)?.sync_all()?;
    Ok(())
}
