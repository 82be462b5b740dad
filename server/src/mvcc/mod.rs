//! The revisioned key space (etcd's mvcc): every change gets a revision, old revisions stay
//! readable until compacted.
//!
//! # Layout
//! - [`index`]: the in-memory key → revisions index, rebuilt from the backend at start;
//! - [`write`]: [`WriteTxn`], one store revision's worth of changes;
//! - this module: [`Store`], reads at a revision, compaction, history for watchers, and the
//!   on-disk encoding (`r` + main + sub → flag + `mvccpb.KeyValue`).

pub mod index;
mod write;

use prost::Message;

pub use index::{KeyHistory, KeyMeta, KeyRange, Revision};
pub use write::{Replaced, WriteTxn};

use crate::error::{Error, Result};
use crate::proto::mvccpb::{Event, KeyValue, event::EventType};
use crate::storage::{Backend, WriteBatch};
use index::KeyIndex;

const REV_PREFIX: u8 = b'r';
const META_CURRENT_REV: &[u8] = b"m/rev";
const META_COMPACT_REV: &[u8] = b"m/compact";
const FLAG_PUT: u8 = 0;
const FLAG_TOMBSTONE: u8 = 1;
/// The revision of an empty store: etcd starts at 1, so the first write gets revision 2.
const INITIAL_REV: i64 = 1;

/// The backend key of a revision: ordered by (main, sub).
pub fn rev_key(rev: Revision) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(REV_PREFIX);
    k.extend_from_slice(&(rev.main as u64).to_be_bytes());
    k.extend_from_slice(&(rev.sub as u64).to_be_bytes());
    k
}

/// The backend keys of revisions: `[start, end)`.
pub fn revision_keys() -> ([u8; 1], [u8; 1]) {
    ([REV_PREFIX], [REV_PREFIX + 1])
}

/// The backend keys of revisions up to and including main revision `rev`: `[start, end)`.
pub fn revision_keys_through(rev: i64) -> (Vec<u8>, Vec<u8>) {
    (
        vec![REV_PREFIX],
        rev_key(Revision {
            main: rev + 1,
            sub: 0,
        }),
    )
}

fn decode_rev_key(k: &[u8]) -> Option<Revision> {
    if k.len() != 17 || k[0] != REV_PREFIX {
        return None;
    }
    let main = u64::from_be_bytes(k[1..9].try_into().ok()?) as i64;
    let sub = u64::from_be_bytes(k[9..17].try_into().ok()?) as i64;
    Some(Revision { main, sub })
}

fn encode_record(kv: &KeyValue, tombstone: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(kv.encoded_len() + 1);
    v.push(if tombstone { FLAG_TOMBSTONE } else { FLAG_PUT });
    kv.encode(&mut v).expect("Vec grows");
    v
}

fn decode_record(v: &[u8]) -> Result<(KeyValue, bool)> {
    let (flag, body) = v
        .split_first()
        .ok_or_else(|| Error::internal("empty mvcc record"))?;
    let kv = KeyValue::decode(body).map_err(Error::internal)?;
    Ok((kv, *flag == FLAG_TOMBSTONE))
}

/// A revision pair as the backend holds it: the revision, whether it is a tombstone, and the
/// marshalled `mvccpb.KeyValue` it stores.
pub fn revision_parts<'v>(k: &[u8], v: &'v [u8]) -> Result<(Revision, bool, &'v [u8])> {
    let rev = decode_rev_key(k).ok_or_else(|| Error::internal("bad revision key"))?;
    let (flag, kv) = v
        .split_first()
        .ok_or_else(|| Error::internal("empty mvcc record"))?;
    Ok((rev, *flag == FLAG_TOMBSTONE, kv))
}

/// The backend pair of a version stored at `rev`, from its marshalled `mvccpb.KeyValue`.
pub fn encode_revision(rev: Revision, tombstone: bool, kv: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut record = Vec::with_capacity(kv.len() + 1);
    record.push(if tombstone { FLAG_TOMBSTONE } else { FLAG_PUT });
    record.extend_from_slice(kv);
    (rev_key(rev), record)
}

/// The backend pairs that record a key space's current revision and, when it was compacted,
/// its compacted revision.
pub fn position_pairs(current_rev: i64, compact_rev: Option<i64>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut pairs = vec![(
        META_CURRENT_REV.to_vec(),
        current_rev.to_be_bytes().to_vec(),
    )];
    if let Some(rev) = compact_rev {
        pairs.push((META_COMPACT_REV.to_vec(), rev.to_be_bytes().to_vec()));
    }
    pairs
}

fn read_i64(backend: &dyn Backend, key: &[u8]) -> Result<i64> {
    Ok(match backend.get(key)? {
        Some(v) if v.len() == 8 => i64::from_be_bytes(v.as_slice().try_into().expect("8 bytes")),
        _ => 0,
    })
}

/// What a range read returns.
#[derive(Debug, Default)]
pub struct RangeResult {
    pub kvs: Vec<KeyValue>,
    /// Number of keys in the range at the read revision, regardless of `limit`.
    pub count: i64,
    /// The store's current revision when the read ran.
    pub rev: i64,
}

/// The key space at every uncompacted revision.
#[derive(Debug)]
pub struct Store {
    index: KeyIndex,
    current_rev: i64,
    compact_rev: i64,
    /// Whether writes produce events: only while someone listens.
    emit_events: bool,
    /// Whether the events of puts carry the replaced version (`prev_kv`); reading it costs
    /// a backend read per put, so only while some watcher wants it.
    prev_in_events: bool,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            index: KeyIndex::default(),
            current_rev: 0,
            compact_rev: 0,
            emit_events: true,
            prev_in_events: true,
        }
    }
}

impl Store {
    /// Rebuilds the index from the backend.
    pub fn load(backend: &dyn Backend) -> Result<Store> {
        let mut store = Store {
            current_rev: read_i64(backend, META_CURRENT_REV)?.max(INITIAL_REV),
            // etcd's store starts with compactMainRev = -1: nothing compacted, and even
            // `Compact(0)` is a valid first compaction.
            compact_rev: match backend.get(META_COMPACT_REV)? {
                Some(_) => read_i64(backend, META_COMPACT_REV)?,
                None => -1,
            },
            ..Store::default()
        };
        let (revs_start, revs_end) = revision_keys();
        for pair in backend.scan(&revs_start, &revs_end) {
            let (k, v) = pair?;
            let rev = decode_rev_key(&k).ok_or_else(|| Error::internal("bad revision key"))?;
            let (kv, tombstone) = decode_record(&v)?;
            let history = store.index.get_or_insert(&kv.key);
            history.revs.push((rev, tombstone));
            history.live = (!tombstone).then_some(KeyMeta {
                create_revision: kv.create_revision,
                mod_revision: kv.mod_revision,
                version: kv.version,
                lease: kv.lease,
            });
            store.current_rev = store.current_rev.max(rev.main);
        }
        Ok(store)
    }

    pub fn current_rev(&self) -> i64 {
        self.current_rev
    }

    /// Whether later writes produce events (`events`), and whether the events of puts carry
    /// the version each replaced (`prev`). Both default to on.
    pub fn set_event_interest(&mut self, events: bool, prev: bool) {
        self.emit_events = events;
        self.prev_in_events = prev;
    }

    pub fn compact_rev(&self) -> i64 {
        self.compact_rev
    }

    pub fn key_count(&self) -> usize {
        self.index.len()
    }

    /// Live metadata of `key` at the current revision.
    pub fn live(&self, key: &[u8]) -> Option<KeyMeta> {
        self.index.get(key).and_then(|h| h.live)
    }

    /// The change history of `key` that compaction has kept.
    pub fn history(&self, key: &[u8]) -> Option<&KeyHistory> {
        self.index.get(key)
    }

    /// Live keys in `range` at the current revision, with their metadata.
    pub fn live_keys<'a>(
        &'a self,
        range: &'a KeyRange,
    ) -> impl Iterator<Item = (&'a Vec<u8>, KeyMeta)> + 'a {
        self.index
            .range(range)
            .filter_map(|(k, h)| h.live.map(|m| (k, m)))
    }

    /// Checks that `rev` (0 = current) is readable and returns the revision to read at.
    pub fn check_read_rev(&self, rev: i64) -> Result<i64> {
        if rev <= 0 {
            return Ok(self.current_rev);
        }
        if rev > self.current_rev {
            return Err(Error::FutureRev);
        }
        if rev < self.compact_rev {
            return Err(Error::Compacted);
        }
        Ok(rev)
    }

    /// Reads `range` at `rev` (0 = current). `limit` 0 means no limit.
    pub fn range(
        &self,
        backend: &dyn Backend,
        range: &KeyRange,
        rev: i64,
        limit: usize,
        count_only: bool,
    ) -> Result<RangeResult> {
        let at = self.check_read_rev(rev)?;
        self.range_with(range, at, limit, count_only, |r| read_kv(backend, r))
    }

    fn range_with(
        &self,
        range: &KeyRange,
        at: i64,
        limit: usize,
        count_only: bool,
        mut fetch: impl FnMut(Revision) -> Result<KeyValue>,
    ) -> Result<RangeResult> {
        let mut result = RangeResult {
            rev: self.current_rev,
            ..RangeResult::default()
        };
        for (_, history) in self.index.range(range) {
            let Some(rev) = history.visible_at(at) else {
                continue;
            };
            result.count += 1;
            if !count_only && (limit == 0 || result.kvs.len() < limit) {
                result.kvs.push(fetch(rev)?);
            }
        }
        Ok(result)
    }

    /// Events of revisions `from..=to` for keys in `range`, in revision order, each with the
    /// version it replaced as `prev_kv` when that is still stored.
    pub fn events(
        &self,
        backend: &dyn Backend,
        range: &KeyRange,
        from: i64,
        to: i64,
    ) -> Result<Vec<Event>> {
        let start = rev_key(Revision {
            main: from.max(1),
            sub: 0,
        });
        let end = rev_key(Revision {
            main: to + 1,
            sub: 0,
        });
        let mut events = Vec::new();
        for pair in backend.scan(&start, &end) {
            let (k, v) = pair?;
            let (kv, tombstone) = decode_record(&v)?;
            if !range.contains(&kv.key) {
                continue;
            }
            let rev = decode_rev_key(&k).ok_or_else(|| Error::internal("bad revision key"))?;
            let prev_kv = match self.index.get(&kv.key).and_then(|h| h.previous_live(rev)) {
                Some(prev) => Some(read_kv(backend, prev)?),
                None => None,
            };
            let r#type = if tombstone {
                EventType::Delete
            } else {
                EventType::Put
            };
            events.push(Event {
                r#type: r#type as i32,
                kv: Some(kv),
                prev_kv,
            });
        }
        Ok(events)
    }

    /// Drops every version superseded at `rev`; reads below `rev` then fail with
    /// [`Error::Compacted`].
    pub fn compact(&mut self, rev: i64, batch: &mut WriteBatch) -> Result<()> {
        fail::fail_point!("compact-before");
        if rev <= self.compact_rev {
            return Err(Error::Compacted);
        }
        if rev > self.current_rev {
            return Err(Error::FutureRev);
        }
        for removed in self.index.compact(rev) {
            batch.delete(rev_key(removed));
        }
        self.compact_rev = rev;
        batch.put(META_COMPACT_REV.to_vec(), rev.to_be_bytes().to_vec());
        Ok(())
    }

    /// Starts the changes of the next revision; `pending` batch collects their writes.
    pub fn write<'a>(
        &'a mut self,
        backend: &'a dyn Backend,
        batch: &'a mut WriteBatch,
    ) -> WriteTxn<'a> {
        WriteTxn::new(self, backend, batch)
    }
}

/// Reads the stored version at `rev`.
pub fn read_kv(backend: &dyn Backend, rev: Revision) -> Result<KeyValue> {
    let raw = backend
        .get(&rev_key(rev))?
        .ok_or_else(|| Error::internal(format!("revision {rev:?} missing")))?;
    Ok(decode_record(&raw)?.0)
}

#[cfg(test)]
mod tests;
