//! How [`super::SledBackend`] stores revision keys: packed in blocks.
//!
//! A revision key (`mvcc::rev_key`: [`PREFIX`], then the main and sub revision as
//! big-endian u64s) is not a sled key of its own. The revisions of [`MAINS_PER_BLOCK`]
//! consecutive main revisions share one sled value, under the block key ([`PREFIX`], then
//! `main / MAINS_PER_BLOCK` as a big-endian u64). A block holds its records in ascending key
//! order, each as the 16 bytes of its key after the prefix, the value's length (u32,
//! big-endian) and the value.
//!
//! Sled's cost is per key: an insert costs ~10 µs, most of it walking, splitting and
//! rewriting leaves that hold at most 16 keys, whatever their size. Every put adds one
//! revision, and on three members every member writes it; packed, sled sees one write per
//! block and commit instead of one per revision.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

use super::Pair;

/// The first byte of every revision key and of every block key.
pub const PREFIX: u8 = b'r';
/// Main revisions per block.
const MAINS_PER_BLOCK: u64 = 16;
/// A revision key: the prefix, main and sub revision.
const KEY_LEN: usize = 17;
/// A block key: the prefix and the block number.
pub const BLOCK_KEY_LEN: usize = 9;
/// A record's header in a block: its key after the prefix, and its value's length.
const HEADER_LEN: usize = KEY_LEN - 1 + 4;

pub type BlockKey = [u8; BLOCK_KEY_LEN];

/// Whether `key` is a revision key, stored in a block.
pub fn is_packed(key: &[u8]) -> bool {
    key.len() == KEY_LEN && key[0] == PREFIX
}

/// Fails for a key in the revision key space that is not a revision key: nothing else may be
/// stored there.
pub fn check_key(key: &[u8]) -> Result<()> {
    if key.first() == Some(&PREFIX) && !is_packed(key) {
        return Err(Error::internal(format!(
            "{key:?} is in the revision key space but not a revision key"
        )));
    }
    Ok(())
}

/// The block that holds revision key `key` (or would).
pub fn block_of(key: &[u8]) -> BlockKey {
    block_key(main_of(key) / MAINS_PER_BLOCK)
}

/// The main revision a key in the revision key space starts with; missing bytes count as 0.
fn main_of(key: &[u8]) -> u64 {
    let mut main = [0u8; 8];
    let bytes = &key[1.min(key.len())..key.len().min(9)];
    main[..bytes.len()].copy_from_slice(bytes);
    u64::from_be_bytes(main)
}

fn block_key(block: u64) -> BlockKey {
    let mut k = [0u8; BLOCK_KEY_LEN];
    k[0] = PREFIX;
    k[1..].copy_from_slice(&block.to_be_bytes());
    k
}

/// The first block key that may hold keys `>= start` of the revision key space.
pub fn first_block_from(start: &[u8]) -> BlockKey {
    if start <= [PREFIX].as_slice() {
        block_key(0)
    } else {
        block_of(start)
    }
}

/// A block's records in order, each key without the prefix and its value; an error, and
/// nothing after it, where the block turns out truncated.
fn parse(block: &[u8]) -> impl Iterator<Item = Result<(&[u8], &[u8])>> {
    let mut rest = block;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest
            .get(KEY_LEN - 1..HEADER_LEN)
            .map(|len| HEADER_LEN + u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize)
            .filter(|end| *end <= rest.len());
        let Some(end) = end else {
            rest = &[];
            return Some(Err(Error::internal("truncated revision block")));
        };
        let record = (&rest[..KEY_LEN - 1], &rest[HEADER_LEN..end]);
        rest = &rest[end..];
        Some(Ok(record))
    })
}

/// A block's records: each key without the prefix, and its value, in ascending key order.
fn records(block: &[u8]) -> Result<Vec<(&[u8], &[u8])>> {
    parse(block).collect()
}

fn encode(records: &[(&[u8], &[u8])]) -> Vec<u8> {
    let size = records
        .iter()
        .map(|(_, v)| HEADER_LEN + v.len())
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    for (k, v) in records {
        out.extend_from_slice(k);
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v);
    }
    out
}

/// The value of revision key `key` in `block`.
pub fn find<'a>(block: &'a [u8], key: &[u8]) -> Result<Option<&'a [u8]>> {
    let wanted = &key[1..];
    for record in parse(block) {
        let (k, v) = record?;
        if k == wanted {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// The pairs of `block`, with their whole revision keys.
pub fn unpack(block: &[u8]) -> Result<Vec<Pair>> {
    Ok(records(block)?
        .into_iter()
        .map(|(k, v)| {
            let mut key = Vec::with_capacity(KEY_LEN);
            key.push(PREFIX);
            key.extend_from_slice(k);
            (key, v.to_vec())
        })
        .collect())
}

/// Changes to revision keys, gathered by block.
#[derive(Default)]
pub struct BlockChanges<'a> {
    blocks: BTreeMap<BlockKey, Vec<(&'a [u8], Option<&'a [u8]>)>>,
}

impl<'a> BlockChanges<'a> {
    /// Adds a put (`Some`) or removal (`None`) of revision key `key`.
    pub fn add(&mut self, key: &'a [u8], value: Option<&'a [u8]>) {
        self.blocks
            .entry(block_of(key))
            .or_default()
            .push((key, value));
    }

    /// Each changed block's new value (`None`: the block is now empty), given a block's
    /// current value from `current`.
    pub fn apply(
        self,
        mut current: impl FnMut(&BlockKey) -> Result<Option<sled::IVec>>,
        mut out: impl FnMut(BlockKey, Option<Vec<u8>>),
    ) -> Result<()> {
        for (block, changes) in self.blocks {
            let old = current(&block)?;
            let mut recs = match &old {
                Some(v) => records(v)?,
                None => Vec::new(),
            };
            for (key, value) in changes {
                let key = &key[1..];
                // Puts of new revisions come in ascending order: past the end, mostly.
                let at = match recs.last() {
                    Some((last, _)) if *last < key => Err(recs.len()),
                    _ => recs.binary_search_by(|(k, _)| (*k).cmp(key)),
                };
                match (at, value) {
                    (Ok(i), Some(v)) => recs[i].1 = v,
                    (Ok(i), None) => {
                        recs.remove(i);
                    }
                    (Err(i), Some(v)) => recs.insert(i, (key, v)),
                    (Err(_), None) => {}
                }
            }
            match (recs.is_empty(), old.is_some()) {
                (true, true) => out(block, None),
                (true, false) => {}
                (false, _) => out(block, Some(encode(&recs))),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(main: u64, sub: u64) -> Vec<u8> {
        let mut k = vec![PREFIX];
        k.extend_from_slice(&main.to_be_bytes());
        k.extend_from_slice(&sub.to_be_bytes());
        k
    }

    #[test]
    fn blocks_group_main_revisions_and_keep_records_in_key_order() {
        assert_eq!(block_of(&key(15, 9)), block_of(&key(0, 0)));
        assert_ne!(block_of(&key(16, 0)), block_of(&key(15, 0)));
        assert!(block_of(&key(16, 0)) > block_of(&key(15, 0)));
        let (k1, k2, k3) = (key(18, 1), key(17, 0), key(18, 0));
        let mut changes = BlockChanges::default();
        changes.add(&k1, Some(b"one"));
        changes.add(&k2, Some(b"two"));
        changes.add(&k3, Some(b""));
        let mut written = Vec::new();
        changes
            .apply(|_| Ok(None), |b, v| written.push((b, v)))
            .unwrap();
        assert_eq!(written.len(), 1);
        let block = written[0].1.clone().unwrap();
        let pairs = unpack(&block).unwrap();
        assert_eq!(
            pairs,
            vec![
                (k2.clone(), b"two".to_vec()),
                (k3.clone(), Vec::new()),
                (k1.clone(), b"one".to_vec())
            ]
        );
        assert_eq!(find(&block, &k3).unwrap(), Some(&b""[..]));
        assert_eq!(find(&block, &key(19, 0)).unwrap(), None);

        // Removing every record empties the block; removing what is not there changes
        // nothing.
        let mut changes = BlockChanges::default();
        for k in [&k1, &k2, &k3] {
            changes.add(k, None);
        }
        let stored = sled::IVec::from(block);
        let mut written = Vec::new();
        changes
            .apply(|_| Ok(Some(stored.clone())), |b, v| written.push((b, v)))
            .unwrap();
        assert_eq!(written, vec![(block_of(&k1), None)]);
        let missing = key(40, 0);
        let mut changes = BlockChanges::default();
        changes.add(&missing, None);
        let mut written = Vec::new();
        changes
            .apply(|_| Ok(None), |b, v| written.push((b, v)))
            .unwrap();
        assert!(written.is_empty());
    }

    #[test]
    fn a_truncated_block_is_an_error_not_a_panic() {
        let k = key(1, 0);
        let mut changes = BlockChanges::default();
        changes.add(&k, Some(b"value"));
        let mut block = Vec::new();
        changes
            .apply(|_| Ok(None), |_, v| block = v.unwrap())
            .unwrap();
        for len in 1..block.len() {
            assert!(unpack(&block[..len]).is_err(), "{len}");
            assert!(find(&block[..len], &key(2, 0)).is_err(), "{len}");
        }
    }
}
