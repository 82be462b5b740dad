//! Reading a bbolt database page by page: the meta, the buckets, and each bucket's pairs in
//! key order. Files etcd wrote with `NoFreelistSync` (its default on Linux) read like any
//! other: the freelist is never needed to read.
//!
//! Whatever the file says is checked before it is used: the meta's magic, version and
//! checksum; that every page is below the high-water mark and within the file, says it is the
//! page it was reached as and is a branch or a leaf; that keys ascend. A damaged or truncated
//! file gives an error, never a panic or a wrong answer.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{
    BRANCH_PAGE, BUCKET_ELEMENT, BUCKET_HEADER, ELEMENT, LEAF_PAGE, MAGIC, META_PAGE, META_SIZE,
    META_SUMMED, PAGE_HEADER, VERSION, fnv1a64, u16_at, u32_at, u64_at,
};

/// What a walk calls with each element: its flags, key and value.
type Visit<'a, E> = dyn FnMut(u32, &[u8], &[u8]) -> Result<(), E> + 'a;

/// Deeper trees than this are a damaged file (a cycle of pages), not a database.
const MAX_DEPTH: usize = 64;

/// An open database; `len` bounds what is read of the file (a snapshot's sha256 trailer is
/// not part of the database).
pub struct BoltReader {
    file: File,
    len: u64,
    page_size: usize,
    root: u64,
    high_water: u64,
}

/// Where a bucket's pairs are: a root page, or an inline page held in its header's value.
pub enum Bucket {
    Page(u64),
    Inline(Vec<u8>),
}

fn damaged(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("invalid database: {what}"),
    )
}

impl BoltReader {
    /// Opens the database at the start of the file at `path`, whose first `len` bytes (all of
    /// it when `None`) belong to the database.
    pub fn open(path: &Path, len: Option<u64>) -> io::Result<BoltReader> {
        let file = File::open(path)?;
        let len = match len {
            Some(len) => len,
            None => file.metadata()?.len(),
        };
        let mut reader = BoltReader {
            file,
            len,
            page_size: 0,
            root: 0,
            high_water: 0,
        };
        // The first meta tells the page size, which places the second.
        let first = reader.meta_at(0);
        let page_size = match &first {
            Ok(m) => m.page_size,
            Err(_) => super::PAGE_SIZE,
        };
        let second = reader.meta_at(page_size as u64);
        let meta = match (first, second) {
            (Ok(a), Ok(b)) => {
                if a.txid >= b.txid {
                    a
                } else {
                    b
                }
            }
            (Ok(m), Err(_)) | (Err(_), Ok(m)) => m,
            (Err(e), Err(_)) => return Err(e),
        };
        if meta.high_water * meta.page_size as u64 > reader.len {
            return Err(damaged(format!(
                "{} pages of {} bytes do not fit in {} bytes: the file is truncated",
                meta.high_water, meta.page_size, reader.len
            )));
        }
        reader.page_size = meta.page_size;
        reader.root = meta.root;
        reader.high_water = meta.high_water;
        Ok(reader)
    }

    /// The database's size: its pages in use (bolt's `tx.Size()`).
    pub fn size(&self) -> u64 {
        self.high_water * self.page_size as u64
    }

    /// The top-level buckets, by name in ascending order.
    pub fn buckets(&self) -> io::Result<Vec<(Vec<u8>, Bucket)>> {
        let mut buckets = Vec::new();
        self.walk(&Bucket::Page(self.root), &mut |flags, key, value| {
            if flags & BUCKET_ELEMENT == 0 {
                return Err(damaged("a key/value pair outside any bucket"));
            }
            buckets.push((key.to_vec(), bucket_of(value)?));
            Ok(())
        })?;
        Ok(buckets)
    }

    /// Calls `visit` with every pair of `bucket` in ascending key order (nested buckets are
    /// refused: etcd has none).
    pub fn for_each<E: From<io::Error>>(
        &self,
        bucket: &Bucket,
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.walk(bucket, &mut |flags, key, value| {
            if flags & BUCKET_ELEMENT != 0 {
                return Err(damaged("a nested bucket").into());
            }
            visit(key, value)
        })
    }

    fn walk<E: From<io::Error>>(&self, bucket: &Bucket, visit: &mut Visit<'_, E>) -> Result<(), E> {
        // The previous key (none yet while empty: bolt's keys are not), one buffer reused.
        let mut last: Vec<u8> = Vec::new();
        let mut ordered = |flags: u32, key: &[u8], value: &[u8]| -> Result<(), E> {
            if !last.is_empty() && last.as_slice() >= key {
                return Err(damaged("keys out of order").into());
            }
            last.clear();
            last.extend_from_slice(key);
            visit(flags, key, value)
        };
        match bucket {
            Bucket::Page(id) => self.walk_page(*id, 0, &mut ordered),
            Bucket::Inline(page) => {
                if u16_at(page, 8) != LEAF_PAGE {
                    return Err(damaged("an inline bucket that is not a leaf").into());
                }
                leaf_elements(page, &mut ordered)
            }
        }
    }

    fn walk_page<E: From<io::Error>>(
        &self,
        id: u64,
        depth: usize,
        visit: &mut Visit<'_, E>,
    ) -> Result<(), E> {
        if depth > MAX_DEPTH {
            return Err(damaged("pages nested too deep").into());
        }
        let page = self.page(id)?;
        match u16_at(&page, 8) {
            LEAF_PAGE => leaf_elements(&page, visit),
            BRANCH_PAGE => {
                for i in 0..usize::from(u16_at(&page, 10)) {
                    let at = PAGE_HEADER + ELEMENT * i;
                    let child = u64_at(element(&page, at)?, 8);
                    self.walk_page(child, depth + 1, visit)?;
                }
                Ok(())
            }
            flags => Err(damaged(format!("page {id} has type {flags:#x}")).into()),
        }
    }

    /// Reads page `id` with its overflow pages.
    fn page(&self, id: u64) -> io::Result<Vec<u8>> {
        if id < 2 || id >= self.high_water {
            return Err(damaged(format!(
                "page {id} is outside the database (high water {})",
                self.high_water
            )));
        }
        let mut header = [0u8; PAGE_HEADER];
        self.read_at(&mut header, id * self.page_size as u64)?;
        if u64_at(&header, 0) != id {
            return Err(damaged(format!(
                "page {id} says it is page {}",
                u64_at(&header, 0)
            )));
        }
        let pages = 1 + u64::from(u32_at(&header, 12));
        if id + pages > self.high_water {
            return Err(damaged(format!("page {id} overflows the database")));
        }
        let mut page = vec![0u8; (pages as usize) * self.page_size];
        self.read_at(&mut page, id * self.page_size as u64)?;
        Ok(page)
    }

    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        if at + buf.len() as u64 > self.len {
            return Err(damaged("the file is truncated"));
        }
        self.file.read_exact_at(buf, at)
    }

    fn meta_at(&self, at: u64) -> io::Result<Meta> {
        let mut page = [0u8; PAGE_HEADER + META_SIZE];
        self.read_at(&mut page, at)?;
        if u16_at(&page, 8) & META_PAGE == 0 {
            return Err(damaged("no meta page"));
        }
        let m = &page[PAGE_HEADER..];
        if u32_at(m, 0) != MAGIC {
            return Err(damaged("not a bolt database (bad magic)"));
        }
        if u32_at(m, 4) != VERSION {
            return Err(damaged(format!("unsupported version {}", u32_at(m, 4))));
        }
        if fnv1a64(&m[..META_SUMMED]) != u64_at(m, 56) {
            return Err(damaged("meta checksum mismatch"));
        }
        let page_size = u32_at(m, 8) as usize;
        if !(512..=1 << 20).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(damaged(format!("page size {page_size}")));
        }
        Ok(Meta {
            page_size,
            root: u64_at(m, 16),
            high_water: u64_at(m, 40),
            txid: u64_at(m, 48),
        })
    }
}

struct Meta {
    page_size: usize,
    root: u64,
    high_water: u64,
    txid: u64,
}

/// A bucket from its header (the value of its element in the parent).
fn bucket_of(value: &[u8]) -> io::Result<Bucket> {
    if value.len() < BUCKET_HEADER {
        return Err(damaged("a bucket header too short"));
    }
    Ok(match u64_at(value, 0) {
        0 if value.len() >= BUCKET_HEADER + PAGE_HEADER => {
            Bucket::Inline(value[BUCKET_HEADER..].to_vec())
        }
        0 => return Err(damaged("an inline bucket too short")),
        root => Bucket::Page(root),
    })
}

/// The 16 bytes of the element at `at`, and the page around it.
fn element(page: &[u8], at: usize) -> io::Result<&[u8]> {
    page.get(at..at + ELEMENT)
        .ok_or_else(|| damaged("elements past the end of their page"))
}

fn leaf_elements<E: From<io::Error>>(page: &[u8], visit: &mut Visit<'_, E>) -> Result<(), E> {
    for i in 0..usize::from(u16_at(page, 10)) {
        let at = PAGE_HEADER + ELEMENT * i;
        let e = element(page, at)?;
        let flags = u32_at(e, 0);
        let start = at + u32_at(e, 4) as usize;
        let key_end = start + u32_at(e, 8) as usize;
        let end = key_end + u32_at(e, 12) as usize;
        let (Some(key), Some(value)) = (page.get(start..key_end), page.get(key_end..end)) else {
            return Err(damaged("a pair past the end of its page").into());
        };
        visit(flags, key, value)?;
    }
    Ok(())
}
