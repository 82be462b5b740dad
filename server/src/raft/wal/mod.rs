//! The raft log's entries in append-only segment files (`member/wal/<first index>.wal`), as
//! etcd keeps its WAL: an append is one `write` of all its records, and one `fdatasync`
//! makes every append waiting at that moment durable (group commit, see `log_store`).
//!
//! A record is `len: u32 LE | crc32(payload): u32 LE | payload` with the payload a
//! bincode-encoded entry. Recovery reads the segments in order; a torn record at the end of
//! the last segment (a crash mid-write, never acknowledged) is cut off, a bad record anywhere
//! else is corruption and stops the start. The newest entries (up to [`RESIDENT_BYTES`] of
//! records) stay in memory, which is what replication and apply read; older ones, kept for
//! slow followers until a snapshot purges them, are read back from their segment.
//!
//! A segment file is written full of zeros and synced before it takes records (a thread
//! prepares the next one while the active one fills), and records overwrite the zeros. An
//! fdatasync then only has data to write: appending to a file instead changes its size and
//! allocates blocks, so every sync commits the filesystem's journal, which on ext4 first
//! writes out the other files' newly allocated dirty data (the state's database is written
//! all the time). Under 64-client puts on one member the median sync took 0.39–0.41 ms this
//! way and 0.52–0.63 ms appending. Zeros after the last record are where the next one goes;
//! a header of zeros ends a segment's records.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::typ::{Entry, LogId};

const SUFFIX: &str = ".wal";
/// A segment file's prepared size; a new segment starts once the active one has records up
/// to it.
const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
/// The next segment's file while it is being zeroed, and once it is ready.
const PREPARING: &str = "segment.preparing";
const PREPARED: &str = "segment.prepared";
const HEADER: usize = 8;
/// Record bytes of the newest entries kept in memory (at least the last entry is): ~7k puts
/// of 256 B, what apply and followers within a second or so of the leader read. Older entries
/// come from their segment (the OS page cache, mostly). An 8 MiB window bought no measurable
/// throughput; see `SledBackend::open_db` for what the smaller one saves.
pub const RESIDENT_BYTES: u64 = 2 * 1024 * 1024;

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// One segment file: the index of its first entry (also its name) and its open file.
struct Segment {
    first_index: u64,
    path: PathBuf,
    file: Arc<File>,
    len: u64,
}

/// An entry's id and where its record is on disk, with the entry itself while resident.
struct Stored {
    log_id: LogId,
    /// Boxed: every entry since the last purge keeps its `Stored` (up to a snapshot's worth),
    /// and an inline `Entry` would make each of them several times larger.
    entry: Option<Box<Entry>>,
    segment_first: u64,
    offset: u64,
    /// Record length (header and payload).
    size: u64,
}

pub struct Wal {
    dir: PathBuf,
    /// Entries after the last purge, contiguous by index.
    entries: VecDeque<Stored>,
    /// Position in `entries` of the first resident one: those from there on are.
    resident_from: usize,
    /// Record bytes of the resident entries.
    resident_bytes: u64,
    /// At most this many record bytes stay resident ([`RESIDENT_BYTES`]).
    resident_budget: u64,
    /// The index the next appended entry must have.
    next_index: u64,
    /// In order of first index; the last one takes appends.
    segments: Vec<Segment>,
    /// Preparing the next segment's file, once the active one is half full.
    preparer: Option<std::thread::JoinHandle<io::Result<()>>>,
    /// [`SEGMENT_BYTES`] (smaller in tests).
    segment_bytes: u64,
}

fn segment_path(dir: &Path, first_index: u64) -> PathBuf {
    dir.join(format!("{first_index:020}{SUFFIX}"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn open_segment(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

/// Writes zeros over `[from, to)` of `file`, a page at a time: the page cache may keep a
/// file written in large writes in large folios, and a record that dirties a byte of one
/// then has the whole folio written at the next sync (the writers wrote ~500 MB/s instead of
/// ~5 MB/s when segments were prepared with 1 MiB writes).
fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    const PAGE: [u8; 4096] = [0; 4096];
    let mut at = from;
    while at < to {
        let n = PAGE.len().min((to - at) as usize);
        file.write_all_at(&PAGE[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// Writes a file of `size` zeros, synced, as the next segment ([`PREPARED`]).
fn prepare_segment(dir: &Path, size: u64) -> io::Result<()> {
    let preparing = dir.join(PREPARING);
    let file = File::create(&preparing)?;
    write_zeros(&file, 0, size)?;
    file.sync_all()?;
    std::fs::rename(&preparing, dir.join(PREPARED))
}

/// What a segment file holds: its records (entry, offset, record size), where they end, and
/// whether everything after that is zeros (prepared space, or nothing) rather than the
/// remains of a torn write.
struct SegmentRead {
    records: Vec<(Entry, u64, u64)>,
    valid: u64,
    clean_tail: bool,
}

fn read_segment(path: &Path) -> io::Result<SegmentRead> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut input = BufReader::new(file);
    let mut records = Vec::new();
    let mut offset = 0u64;
    let mut rest = Vec::new();
    loop {
        let mut header = [0u8; HEADER];
        let got = read_full(&mut input, &mut header)?;
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as u64;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if got < HEADER || len == 0 || offset + HEADER as u64 + len > file_len {
            rest.extend_from_slice(&header[..got]);
            break;
        }
        let mut payload = vec![0u8; len as usize];
        if read_full(&mut input, &mut payload)? < payload.len() || crc32fast::hash(&payload) != crc
        {
            rest.extend_from_slice(&header);
            rest.extend_from_slice(&payload);
            break;
        }
        let entry: Entry = bincode::deserialize(&payload).map_err(io_err)?;
        records.push((entry, offset, HEADER as u64 + len));
        offset += HEADER as u64 + len;
    }
    let mut clean_tail = rest.iter().all(|b| *b == 0);
    let mut chunk = vec![0u8; 64 * 1024];
    while clean_tail {
        match input.read(&mut chunk)? {
            0 => break,
            n => clean_tail = chunk[..n].iter().all(|b| *b == 0),
        }
    }
    Ok(SegmentRead {
        records,
        valid: offset,
        clean_tail,
    })
}

/// Like `read_exact`, but reports how much it read before the end of the input.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut read = 0;
    while read < buf.len() {
        match input.read(&mut buf[read..])? {
            0 => break,
            n => read += n,
        }
    }
    Ok(read)
}

/// The first indexes of the segment files in `dir`, in order.
fn segment_firsts(dir: &Path) -> io::Result<Vec<u64>> {
    let mut firsts: Vec<u64> = Vec::new();
    for item in std::fs::read_dir(dir)? {
        let name = item?.file_name();
        let name = name.to_string_lossy();
        if let Some(first) = name.strip_suffix(SUFFIX).and_then(|n| n.parse().ok()) {
            firsts.push(first);
        }
    }
    firsts.sort_unstable();
    Ok(firsts)
}

impl Wal {
    /// Opens (or creates) the log in `dir`, dropping entries up to `purged_index` (purged
    /// already, whose segment may still exist).
    pub fn open(dir: &Path, purged_index: Option<u64>) -> io::Result<Wal> {
        Wal::open_with(dir, purged_index, SEGMENT_BYTES)
    }

    fn open_with(dir: &Path, purged_index: Option<u64>, segment_bytes: u64) -> io::Result<Wal> {
        std::fs::create_dir_all(dir)?;
        let firsts = segment_firsts(dir)?;
        let mut wal = Wal {
            dir: dir.to_path_buf(),
            entries: VecDeque::new(),
            resident_from: 0,
            resident_bytes: 0,
            resident_budget: RESIDENT_BYTES,
            next_index: purged_index.map_or(0, |i| i + 1),
            segments: Vec::new(),
            preparer: None,
            segment_bytes,
        };
        for stale in [PREPARING, PREPARED] {
            match std::fs::remove_file(dir.join(stale)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        for (n, first) in firsts.iter().enumerate() {
            wal.load_segment(*first, n + 1 == firsts.len(), purged_index)?;
        }
        if wal.segments.is_empty() {
            wal.start_segment()?;
        }
        Ok(wal)
    }

    /// Reads the segment starting at index `first` into the log (entries up to
    /// `purged_index` are left out). A torn tail is cut if this is the `last` segment, and
    /// is corruption anywhere else.
    fn load_segment(
        &mut self,
        first: u64,
        last: bool,
        purged_index: Option<u64>,
    ) -> io::Result<()> {
        let path = segment_path(&self.dir, first);
        let SegmentRead {
            records,
            valid,
            clean_tail,
        } = read_segment(&path)?;
        if !clean_tail {
            if !last {
                return Err(io_err(format!(
                    "raft log segment {} is corrupt at offset {valid}",
                    path.display()
                )));
            }
            // A torn write at the end: it was never acknowledged. The file ends with the
            // last whole record; appends extend it until the next segment starts.
            let file = OpenOptions::new().write(true).open(&path)?;
            file.set_len(valid)?;
            file.sync_all()?;
        }
        for (entry, offset, size) in records {
            let index = entry.log_id.index;
            if purged_index.is_some_and(|p| index <= p) {
                continue;
            }
            if !self.entries.is_empty() && index != self.next_index {
                return Err(io_err(format!(
                    "raft log segment {} has entry {index} where {} was expected",
                    path.display(),
                    self.next_index
                )));
            }
            self.next_index = index + 1;
            self.push(entry, first, offset, size);
        }
        self.evict();
        self.segments.push(Segment {
            first_index: first,
            file: Arc::new(open_segment(&path)?),
            path,
            len: valid,
        });
        Ok(())
    }

    /// Starts a new active segment named by the next index (the previous one is synced), in
    /// the prepared file, or one prepared now when the preparer has not made one.
    fn start_segment(&mut self) -> io::Result<()> {
        if let Some(active) = self.segments.last() {
            active.file.sync_data()?;
        }
        let prepared = self
            .preparer
            .take()
            .is_some_and(|preparer| matches!(preparer.join(), Ok(Ok(()))));
        if !prepared {
            prepare_segment(&self.dir, self.segment_bytes)?;
        }
        let path = segment_path(&self.dir, self.next_index);
        std::fs::rename(self.dir.join(PREPARED), &path)?;
        sync_dir(&self.dir)?;
        let file = Arc::new(open_segment(&path)?);
        self.segments.push(Segment {
            first_index: self.next_index,
            path,
            file,
            len: 0,
        });
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn last_log_id(&self) -> Option<&LogId> {
        self.entries.back().map(|s| &s.log_id)
    }

    fn position(&self, index: u64) -> Option<usize> {
        let first = self.entries.front()?.log_id.index;
        index
            .checked_sub(first)
            .map(|p| p as usize)
            .filter(|p| *p < self.entries.len())
    }

    /// Entries with index in `start..end` (`end` None: to the last).
    pub fn range(&self, start: u64, end: Option<u64>) -> io::Result<Vec<Entry>> {
        let Some(first) = self.entries.front().map(|s| s.log_id.index) else {
            return Ok(Vec::new());
        };
        let from = start.saturating_sub(first) as usize;
        let to = end.map_or(self.entries.len(), |e| {
            (e.saturating_sub(first) as usize).min(self.entries.len())
        });
        if from >= to {
            return Ok(Vec::new());
        }
        self.entries
            .range(from..to)
            .map(|s| match &s.entry {
                Some(entry) => Ok(Entry::clone(entry)),
                None => self.read_back(s),
            })
            .collect()
    }

    /// Reads an entry that is no longer resident from its segment.
    fn read_back(&self, stored: &Stored) -> io::Result<Entry> {
        let segment = self
            .segments
            .binary_search_by_key(&stored.segment_first, |s| s.first_index)
            .map(|i| &self.segments[i])
            .map_err(|_| io_err(format!("no segment holds entry {}", stored.log_id.index)))?;
        let mut record = vec![0u8; stored.size as usize];
        segment.file.read_exact_at(&mut record, stored.offset)?;
        let crc = u32::from_le_bytes(record[4..HEADER].try_into().expect("4 bytes"));
        let payload = &record[HEADER..];
        if crc32fast::hash(payload) != crc {
            return Err(io_err(format!(
                "raft log segment {} is corrupt at offset {}",
                segment.path.display(),
                stored.offset
            )));
        }
        bincode::deserialize(payload).map_err(io_err)
    }

    /// Adds a resident entry at the end.
    fn push(&mut self, entry: Entry, segment_first: u64, offset: u64, size: u64) {
        self.resident_bytes += size;
        self.entries.push_back(Stored {
            log_id: entry.log_id,
            entry: Some(Box::new(entry)),
            segment_first,
            offset,
            size,
        });
    }

    /// Drops the oldest resident entries from memory while more than [`RESIDENT_BYTES`]
    /// are, keeping the last.
    fn evict(&mut self) {
        while self.resident_bytes > self.resident_budget
            && self.resident_from + 1 < self.entries.len()
        {
            let stored = &mut self.entries[self.resident_from];
            stored.entry = None;
            self.resident_bytes -= stored.size;
            self.resident_from += 1;
        }
    }

    /// Writes `entries` (the next indexes, in order) to the active segment, not yet synced.
    /// Returns the file to sync to make them durable.
    pub fn append(&mut self, entries: impl IntoIterator<Item = Entry>) -> io::Result<Arc<File>> {
        if self
            .segments
            .last()
            .is_some_and(|s| s.len >= self.segment_bytes)
        {
            self.start_segment()?;
        }
        if self.preparer.is_none()
            && self
                .segments
                .last()
                .is_some_and(|s| s.len >= self.segment_bytes / 2)
        {
            let (dir, size) = (self.dir.clone(), self.segment_bytes);
            self.preparer = Some(
                std::thread::Builder::new()
                    .name("raft-log-prepare".into())
                    .spawn(move || prepare_segment(&dir, size))?,
            );
        }
        let active = self.segments.last_mut().expect("an active segment");
        let mut buf = Vec::new();
        let mut stored = Vec::new();
        for entry in entries {
            let index = entry.log_id.index;
            if (!self.entries.is_empty() || !stored.is_empty()) && index != self.next_index {
                return Err(io_err(format!(
                    "append of entry {index} where {} was expected",
                    self.next_index
                )));
            }
            let payload = bincode::serialize(&entry).map_err(io_err)?;
            let offset = active.len + buf.len() as u64;
            buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            buf.extend_from_slice(&payload);
            self.next_index = index + 1;
            stored.push((entry, offset, (HEADER + payload.len()) as u64));
        }
        active.file.write_all_at(&buf, active.len)?;
        active.len += buf.len() as u64;
        let (segment_first, file) = (active.first_index, active.file.clone());
        for (entry, offset, size) in stored {
            self.push(entry, segment_first, offset, size);
        }
        self.evict();
        Ok(file)
    }

    /// Removes every entry after index `last` (all when `None`), on disk before returning.
    pub fn truncate_after(&mut self, last: Option<u64>) -> io::Result<()> {
        let from = last.map_or(0, |l| l + 1);
        let Some(pos) = self.position(from).or_else(|| {
            // Before the first entry kept in memory: everything goes.
            let first = self.entries.front()?.log_id.index;
            (from < first).then_some(0)
        }) else {
            return Ok(());
        };
        let cut = &self.entries[pos];
        let (segment_first, offset) = (cut.segment_first, cut.offset);
        while self
            .segments
            .last()
            .is_some_and(|s| s.first_index > segment_first)
        {
            let gone = self.segments.pop().expect("checked");
            std::fs::remove_file(&gone.path)?;
        }
        let active = self.segments.last_mut().expect("the cut entry's segment");
        // Zeros over the cut records keep the segment's prepared space prepared.
        write_zeros(&active.file, offset, active.len)?;
        active.file.sync_data()?;
        active.len = offset;
        sync_dir(&self.dir)?;
        for gone in self.entries.range(pos.max(self.resident_from)..) {
            self.resident_bytes -= gone.size;
        }
        self.entries.truncate(pos);
        self.resident_from = self.resident_from.min(pos);
        self.next_index = from;
        Ok(())
    }

    /// Forgets entries up to `index` and returns the segment files holding nothing after it.
    /// The caller deletes them once the purge is durable (the purged id and the applied
    /// state); until then a restart reads them again from the last durable purged index.
    pub fn purge(&mut self, index: u64) -> io::Result<Vec<PathBuf>> {
        while self
            .entries
            .front()
            .is_some_and(|s| s.log_id.index <= index)
        {
            if let Some(gone) = self.entries.pop_front() {
                if self.resident_from == 0 {
                    self.resident_bytes -= gone.size;
                } else {
                    self.resident_from -= 1;
                }
            }
        }
        self.next_index = self.next_index.max(index + 1);
        let mut unneeded = Vec::new();
        // A segment may go when the next one starts at or before the first entry kept.
        while self.segments.len() > 1 && self.segments[1].first_index <= index + 1 {
            unneeded.push(self.segments.remove(0).path);
        }
        if self.entries.is_empty() && self.segments.len() == 1 && self.segments[0].len > 0 {
            // Everything is purged: start afresh so the old segment can go too.
            let old = self.segments.remove(0);
            self.start_segment()?;
            unneeded.push(old.path);
        }
        Ok(unneeded)
    }
}

#[cfg(test)]
mod tests;
