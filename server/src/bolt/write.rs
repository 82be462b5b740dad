//! Writing a bbolt database in one pass: buckets in ascending name order, each from pairs in
//! ascending key order. Leaves are packed full and written as they fill; only the first key
//! of every page stays in memory, for the branch pages written after a bucket's leaves.
//! Every page from 2 up is reachable from the root, so the freelist is empty and bolt's
//! consistency check (`tx.Check`, which `etcdctl snapshot status` runs) finds no stray page.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{
    BRANCH_PAGE, BUCKET_ELEMENT, BUCKET_HEADER, ELEMENT, FREELIST_PAGE, LEAF_PAGE, MAGIC,
    META_PAGE, META_SUMMED, PAGE_HEADER, PAGE_SIZE, VERSION, fnv1a64,
};

/// Pages 0 and 1 are the metas, 2 the (empty) freelist; data starts at 3.
const FREELIST_ID: u64 = 2;
const FIRST_DATA_PAGE: u64 = 3;

/// A database being written; [`BoltWriter::finish`] completes it.
pub struct BoltWriter {
    file: File,
    out: BufWriter<File>,
    next_page: u64,
    /// Each bucket written so far: name and root page.
    buckets: Vec<(Vec<u8>, u64)>,
}

/// One node's elements on their way to a page.
struct Node {
    kind: u16,
    /// (element flags, key, value or child page)
    elements: Vec<(u32, Vec<u8>, Vec<u8>)>,
    /// The bytes the elements take on the page.
    bytes: usize,
}

impl Node {
    fn new(kind: u16) -> Node {
        Node {
            kind,
            elements: Vec::new(),
            bytes: 0,
        }
    }

    /// The bytes an element takes on the page: a branch's child page is in its element.
    fn size(&self, key: &[u8], value: &[u8]) -> usize {
        ELEMENT
            + key.len()
            + if self.kind == LEAF_PAGE {
                value.len()
            } else {
                0
            }
    }

    /// Whether the element goes on this node's page: a node takes at least one element (a
    /// large one overflows to more pages).
    fn fits(&self, key: &[u8], value: &[u8]) -> bool {
        self.elements.is_empty() || PAGE_HEADER + self.bytes + self.size(key, value) <= PAGE_SIZE
    }

    fn push(&mut self, flags: u32, key: Vec<u8>, value: Vec<u8>) {
        self.bytes += self.size(&key, &value);
        self.elements.push((flags, key, value));
    }
}

impl BoltWriter {
    /// Creates (or truncates) the database file at `path`.
    pub fn create(path: &Path) -> io::Result<BoltWriter> {
        BoltWriter::new(File::create(path)?)
    }

    /// Writes the database into `file`, which is empty and open for writing.
    pub fn new(file: File) -> io::Result<BoltWriter> {
        let mut out = BufWriter::with_capacity(8 * PAGE_SIZE, file.try_clone()?);
        // The metas and the freelist are written last, in place.
        out.write_all(&[0; PAGE_SIZE * FIRST_DATA_PAGE as usize])?;
        Ok(BoltWriter {
            file,
            out,
            next_page: FIRST_DATA_PAGE,
            buckets: Vec::new(),
        })
    }

    /// Writes the bucket `name` holding `pairs`. Buckets must come in ascending name order and
    /// pairs in ascending key order, keys not empty; anything else is refused.
    pub fn bucket<E: From<io::Error>>(
        &mut self,
        name: &[u8],
        pairs: impl IntoIterator<Item = Result<(Vec<u8>, Vec<u8>), E>>,
    ) -> Result<(), E> {
        if self
            .buckets
            .last()
            .is_some_and(|(last, _)| last.as_slice() >= name)
            || name.is_empty()
        {
            return Err(invalid("bucket names out of order").into());
        }
        // The previous key (none yet while empty: keys are not), one buffer reused.
        let mut last: Vec<u8> = Vec::new();
        let elements = pairs.into_iter().map(|pair| -> Result<_, E> {
            let (k, v) = pair?;
            if k.is_empty() || (!last.is_empty() && last >= k) {
                return Err(invalid("keys empty or out of order").into());
            }
            last.clear();
            last.extend_from_slice(&k);
            Ok((0, k, v))
        });
        let root = self.tree(elements)?;
        self.buckets.push((name.to_vec(), root));
        Ok(())
    }

    /// Writes the root bucket, the freelist and the metas, and syncs the file. Returns the
    /// database's size (bolt's `tx.Size()`: the pages in use), which is the file's length.
    pub fn finish(mut self) -> io::Result<u64> {
        let buckets = std::mem::take(&mut self.buckets);
        let root = self.tree(buckets.into_iter().map(|(name, root)| {
            let mut header = Vec::with_capacity(BUCKET_HEADER);
            header.extend_from_slice(&root.to_le_bytes());
            header.extend_from_slice(&0u64.to_le_bytes());
            Ok::<_, io::Error>((BUCKET_ELEMENT, name, header))
        }))?;
        self.out.flush()?;
        let high_water = self.next_page;
        let mut head = vec![0u8; PAGE_SIZE * FIRST_DATA_PAGE as usize];
        for txid in 0..2u64 {
            let page = &mut head[txid as usize * PAGE_SIZE..];
            write_header(page, txid, META_PAGE, 0, 0);
            let meta = &mut page[PAGE_HEADER..];
            meta[0..4].copy_from_slice(&MAGIC.to_le_bytes());
            meta[4..8].copy_from_slice(&VERSION.to_le_bytes());
            meta[8..12].copy_from_slice(&(PAGE_SIZE as u32).to_le_bytes());
            // flags (12..16) and the root bucket's sequence (24..32) stay 0.
            meta[16..24].copy_from_slice(&root.to_le_bytes());
            meta[32..40].copy_from_slice(&FREELIST_ID.to_le_bytes());
            meta[40..48].copy_from_slice(&high_water.to_le_bytes());
            meta[48..56].copy_from_slice(&txid.to_le_bytes());
            let sum = fnv1a64(&meta[..META_SUMMED]);
            meta[56..64].copy_from_slice(&sum.to_le_bytes());
        }
        write_header(
            &mut head[FREELIST_ID as usize * PAGE_SIZE..],
            FREELIST_ID,
            FREELIST_PAGE,
            0,
            0,
        );
        self.file.write_all_at(&head, 0)?;
        self.file.sync_all()?;
        Ok(high_water * PAGE_SIZE as u64)
    }

    /// Writes the leaves holding `elements` and the branches above them; returns the root
    /// page. No elements make one empty leaf.
    fn tree<E: From<io::Error>>(
        &mut self,
        elements: impl Iterator<Item = Result<(u32, Vec<u8>, Vec<u8>), E>>,
    ) -> Result<u64, E> {
        let mut level: Vec<(Vec<u8>, u64)> = Vec::new();
        let mut node = Node::new(LEAF_PAGE);
        for element in elements {
            let (flags, key, value) = element?;
            if !node.fits(&key, &value) {
                level.push(self.write_node(&node)?);
                node = Node::new(LEAF_PAGE);
            }
            node.push(flags, key, value);
        }
        level.push(self.write_node(&node)?);
        while level.len() > 1 {
            let mut above = Vec::new();
            let mut node = Node::new(BRANCH_PAGE);
            for (key, page) in level {
                let child = page.to_le_bytes().to_vec();
                if !node.fits(&key, &child) {
                    above.push(self.write_node(&node)?);
                    node = Node::new(BRANCH_PAGE);
                }
                node.push(0, key, child);
            }
            above.push(self.write_node(&node)?);
            level = above;
        }
        Ok(level[0].1)
    }

    /// Writes `node` as the next page(s); returns its first key and its page id.
    fn write_node(&mut self, node: &Node) -> io::Result<(Vec<u8>, u64)> {
        let kind = node.kind;
        let len = PAGE_HEADER + node.bytes;
        let pages = len.div_ceil(PAGE_SIZE).max(1);
        let id = self.next_page;
        let count = u16::try_from(node.elements.len())
            .map_err(|_| invalid("too many elements in a node"))?;
        let overflow = u32::try_from(pages - 1).map_err(|_| invalid("value too large"))?;
        let mut page = vec![0u8; pages * PAGE_SIZE];
        write_header(&mut page, id, kind, count, overflow);
        let mut data = PAGE_HEADER + ELEMENT * node.elements.len();
        for (i, (flags, key, value)) in node.elements.iter().enumerate() {
            let at = PAGE_HEADER + ELEMENT * i;
            let pos = (data - at) as u32;
            let e = &mut page[at..at + ELEMENT];
            if kind == LEAF_PAGE {
                e[0..4].copy_from_slice(&flags.to_le_bytes());
                e[4..8].copy_from_slice(&pos.to_le_bytes());
                e[8..12].copy_from_slice(&(key.len() as u32).to_le_bytes());
                e[12..16].copy_from_slice(&(value.len() as u32).to_le_bytes());
                page[data..data + key.len()].copy_from_slice(key);
                page[data + key.len()..data + key.len() + value.len()].copy_from_slice(value);
                data += key.len() + value.len();
            } else {
                // A branch element's value is its child's page id.
                e[0..4].copy_from_slice(&pos.to_le_bytes());
                e[4..8].copy_from_slice(&(key.len() as u32).to_le_bytes());
                e[8..16].copy_from_slice(value);
                page[data..data + key.len()].copy_from_slice(key);
                data += key.len();
            }
        }
        self.out.write_all(&page)?;
        self.next_page += pages as u64;
        let first = node
            .elements
            .first()
            .map(|(_, k, _)| k.clone())
            .unwrap_or_default();
        Ok((first, id))
    }
}

fn write_header(page: &mut [u8], id: u64, flags: u16, count: u16, overflow: u32) {
    page[0..8].copy_from_slice(&id.to_le_bytes());
    page[8..10].copy_from_slice(&flags.to_le_bytes());
    page[10..12].copy_from_slice(&count.to_le_bytes());
    page[12..16].copy_from_slice(&overflow.to_le_bytes());
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_string())
}
