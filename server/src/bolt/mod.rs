//! bbolt's file format, the database etcd keeps its state in and the file its snapshots are:
//! [`write`] builds a database in one pass from buckets of sorted pairs, [`read`] walks one
//! page by page. Both work through plain file reads and writes, a page at a time, so a
//! database of any size costs a few pages of memory.
//!
//! The format (bbolt v1.3, as etcd 3.4 and 3.5 write it on little-endian machines):
//! - pages of `page_size` bytes (4096 here), each starting with a 16-byte header: id `u64`,
//!   flags `u16`, element count `u16`, overflow `u32` (a node that does not fit spans that
//!   many more pages);
//! - pages 0 and 1 hold the meta (at offset 16): magic, version, page size, flags, the root
//!   bucket {root page, sequence}, the freelist page, the high-water page id, the txid, and an
//!   FNV-1a-64 checksum of the 56 bytes before it; the valid one with the higher txid wins;
//! - leaf elements (16 bytes: flags, pos, key size, value size) and branch elements (16 bytes:
//!   pos, key size, child page) follow the header; `pos` counts from the element itself to its
//!   key, and the value follows the key;
//! - the root bucket maps each bucket's name (element flag 0x01) to its header {root page,
//!   sequence}; a root of 0 means the bucket's page is inline, right after the header.

pub mod read;
pub mod write;

pub use read::{BoltReader, Bucket};
pub use write::BoltWriter;

/// The page size of the databases written here (the page size of the machines etcd runs on).
pub const PAGE_SIZE: usize = 4096;

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const PAGE_HEADER: usize = 16;
/// Leaf and branch elements have the same size.
const ELEMENT: usize = 16;
const META_SIZE: usize = 64;
/// The bytes of the meta the checksum covers.
const META_SUMMED: usize = 56;

const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
const FREELIST_PAGE: u16 = 0x10;
/// A leaf element that is a bucket, not a key/value pair.
const BUCKET_ELEMENT: u32 = 0x01;
/// A bucket header's size: root page and sequence.
const BUCKET_HEADER: usize = 16;

/// FNV-1a, 64 bits: bbolt's meta checksum.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests;
