//! Backups in etcd's snapshot format: the applied state written as etcd's bbolt database
//! (what `Maintenance.Snapshot` streams), a snapshot file's integrity and status, and
//! restoring a data dir from a file taken from oxcd or from etcd.
//!
//! A snapshot file is the database followed by the 32-byte sha256 of it, as `etcdctl snapshot
//! save` writes it: its size is then 32 more than a multiple of 512 (bolt's pages are).
//!
//! # Layout
//! - [`layout`]: etcd's buckets and their encodings;
//! - [`save`]: the state → the database;
//! - [`restore`]: a snapshot file → a member's data dir;
//! - this file: opening a snapshot file (checking its sha256) and its status.

pub mod layout;
pub mod restore;
pub mod save;

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::bolt::BoltReader;
use crate::checksum::crc32c;
use crate::error::{Error, Result};

pub use restore::{RestoreOptions, restore};
pub use save::write_etcd_db;

/// The bytes of the sha256 that ends a snapshot file.
pub const HASH_LEN: usize = 32;

/// What `snapshot status` reports (etcd's `snapshot.Status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// CRC-32C of every bucket's name, keys and values, in order.
    pub hash: u32,
    /// The main revision of the last key in `key`.
    pub revision: i64,
    /// The pairs of all buckets (for a restore: of `key`).
    pub total_key: u64,
    /// The database's pages in use, in bytes.
    pub total_size: u64,
}

/// An opened snapshot file.
pub struct SnapshotFile {
    pub db: BoltReader,
    /// Whether the file ends with the database's sha256.
    pub has_hash: bool,
}

impl SnapshotFile {
    /// Opens the snapshot at `path`. Unless `skip_hash_check`, the file must end with the
    /// sha256 of the database, and it must match (etcd's errors otherwise); with it, a file
    /// with or without the trailer opens.
    pub fn open(path: &Path, skip_hash_check: bool) -> Result<SnapshotFile> {
        let len = std::fs::metadata(path)
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))?
            .len();
        let has_hash = len % 512 == HASH_LEN as u64;
        let db_len = if has_hash { len - HASH_LEN as u64 } else { len };
        if !skip_hash_check {
            if !has_hash {
                return Err(Error::InvalidArgument(
                    "snapshot missing hash but --skip-hash-check=false".into(),
                ));
            }
            let (computed, stored) = file_sha256(path, db_len)?;
            if computed != stored {
                // Go's `%v` of a byte slice, as etcd prints them.
                let go = |b: &[u8; 32]| {
                    let bytes: Vec<String> = b.iter().map(u8::to_string).collect();
                    format!("[{}]", bytes.join(" "))
                };
                return Err(Error::InvalidArgument(format!(
                    "expected sha256 {}, got {}",
                    go(&stored),
                    go(&computed)
                )));
            }
        }
        let db = BoltReader::open(path, Some(db_len)).map_err(|e| {
            Error::InvalidArgument(format!("snapshot file {}: {e}", path.display()))
        })?;
        Ok(SnapshotFile { db, has_hash })
    }
}

/// The sha256 of the first `db_len` bytes of the file, and the 32 bytes after them.
fn file_sha256(path: &Path, db_len: u64) -> Result<([u8; 32], [u8; 32])> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut left = db_len;
    let mut buf = vec![0u8; 1 << 16];
    while left > 0 {
        let n = buf.len().min(left as usize);
        file.read_exact(&mut buf[..n])?;
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    let mut stored = [0u8; 32];
    file.read_exact(&mut stored)?;
    Ok((hasher.finalize().into(), stored))
}

/// `snapshot status`: the hash, revision, pair count and size of the database in the file at
/// `path`. Like etcd's, it reads the whole database (so a damaged one is an error) and does
/// not check the sha256.
pub fn status(path: &Path) -> Result<Summary> {
    let file = SnapshotFile::open(path, true)?;
    let mut summary = Summary {
        total_size: file.db.size(),
        ..Summary::default()
    };
    let mut crc = 0;
    for (name, bucket) in file.db.buckets()? {
        crc = crc32c(crc, &name);
        let is_key = name == layout::KEY;
        file.db.for_each(&bucket, |k, v| {
            crc = crc32c(crc32c(crc, k), v);
            if is_key {
                summary.revision = layout::parse_rev_key(k)?.0.main;
            }
            summary.total_key += 1;
            Ok::<_, Error>(())
        })?;
    }
    summary.hash = crc;
    Ok(summary)
}
