//! One revision's worth of changes: puts and deletes that share a main revision, with
//! sub-revisions in order, readable by later operations of the same transaction.

use std::collections::HashMap;

use super::{KeyMeta, KeyRange, RangeResult, Revision, Store, encode_record, read_kv, rev_key};
use crate::error::Result;
use crate::proto::mvccpb::{Event, KeyValue, event::EventType};
use crate::storage::{Backend, WriteBatch};

/// Changes of the next store revision. The index is updated as changes are made; the values
/// go to the batch, and [`WriteTxn::finish`] records the new current revision.
pub struct WriteTxn<'a> {
    store: &'a mut Store,
    backend: &'a dyn Backend,
    batch: &'a mut WriteBatch,
    /// The main revision every change here gets: current + 1.
    main: i64,
    next_sub: i64,
    /// Values written by this transaction, not yet in the backend.
    pending: HashMap<Revision, KeyValue>,
    events: Vec<Event>,
}

/// The version stored at `rev`: written by this transaction, or in the backend.
fn fetch(
    pending: &HashMap<Revision, KeyValue>,
    backend: &dyn Backend,
    rev: Revision,
) -> Result<KeyValue> {
    match pending.get(&rev) {
        Some(kv) => Ok(kv.clone()),
        None => read_kv(backend, rev),
    }
}

/// What a put replaced.
#[derive(Debug)]
pub struct Replaced {
    /// The live version's metadata before the put (`None` for a new key).
    pub meta: Option<KeyMeta>,
    /// That version itself, when the put asked for it.
    pub prev: Option<KeyValue>,
}

impl<'a> WriteTxn<'a> {
    pub(super) fn new(
        store: &'a mut Store,
        backend: &'a dyn Backend,
        batch: &'a mut WriteBatch,
    ) -> Self {
        let main = store.current_rev + 1;
        WriteTxn {
            store,
            backend,
            batch,
            main,
            next_sub: 0,
            pending: HashMap::new(),
            events: Vec::new(),
        }
    }

    /// The revision this transaction writes at.
    pub fn revision(&self) -> i64 {
        self.main
    }

    /// True once any change was made (so the store revision will advance).
    pub fn changed(&self) -> bool {
        self.next_sub > 0
    }

    /// Current metadata of `key`, including this transaction's changes.
    pub fn live(&self, key: &[u8]) -> Option<KeyMeta> {
        self.store.live(key)
    }

    fn next_rev(&mut self) -> Revision {
        let rev = Revision {
            main: self.main,
            sub: self.next_sub,
        };
        self.next_sub += 1;
        rev
    }

    fn fetch(&self, rev: Revision) -> Result<KeyValue> {
        fetch(&self.pending, self.backend, rev)
    }

    /// Checks that a read at `rev` (0 = latest) inside this transaction is possible.
    pub fn check_read_rev(&self, rev: i64) -> Result<i64> {
        self.store.check_read_rev(rev)
    }

    /// Reads at `rev`; 0 reads the latest state, this transaction's changes included.
    pub fn range_at(
        &self,
        range: &KeyRange,
        rev: i64,
        limit: usize,
        count_only: bool,
    ) -> Result<RangeResult> {
        if rev > 0 {
            let at = self.store.check_read_rev(rev)?;
            let mut result = self
                .store
                .range_with(range, at, limit, count_only, |r| self.fetch(r))?;
            result.rev = self.read_revision();
            return Ok(result);
        }
        self.range(range, limit, count_only)
    }

    /// The revision a read sees now: this transaction's once it changed anything, else the
    /// store's current one.
    pub fn read_revision(&self) -> i64 {
        if self.changed() {
            self.main
        } else {
            self.store.current_rev
        }
    }

    /// Reads at the latest state, this transaction's changes included.
    pub fn range(&self, range: &KeyRange, limit: usize, count_only: bool) -> Result<RangeResult> {
        let at = self.read_revision();
        let mut result = self
            .store
            .range_with(range, at, limit, count_only, |r| self.fetch(r))?;
        result.rev = at;
        Ok(result)
    }

    /// Writes `key`. The version it replaced is read only when `want_prev` is set (it is then
    /// in the result) or while watchers want previous values in events (see
    /// [`Store::set_event_interest`]); its metadata comes from the index.
    pub fn put(
        &mut self,
        key: &[u8],
        value: Vec<u8>,
        lease: i64,
        want_prev: bool,
    ) -> Result<Replaced> {
        let main = self.main;
        let (emit, prev_in_events) = (self.store.emit_events, self.store.prev_in_events);
        let history = self.store.index.get_or_insert(key);
        let replaced = history.live;
        // Read before anything changes, so a failed read leaves the index as it was.
        let prev = match (replaced, history.revs.last()) {
            (Some(_), Some(&(last, _))) if want_prev || (emit && prev_in_events) => {
                Some(fetch(&self.pending, self.backend, last)?)
            }
            _ => None,
        };
        let (create_revision, version) = match replaced {
            Some(m) => (m.create_revision, m.version + 1),
            None => (main, 1),
        };
        let rev = Revision {
            main,
            sub: self.next_sub,
        };
        self.next_sub += 1;
        history.revs.push((rev, false));
        history.live = Some(KeyMeta {
            create_revision,
            mod_revision: main,
            version,
            lease,
        });
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision,
            mod_revision: main,
            version,
            value,
            lease,
        };
        self.batch.put(rev_key(rev), encode_record(&kv, false));
        if emit {
            self.events.push(Event {
                r#type: EventType::Put as i32,
                kv: Some(kv.clone()),
                prev_kv: if prev_in_events { prev.clone() } else { None },
            });
        }
        self.pending.insert(rev, kv);
        Ok(Replaced {
            meta: replaced,
            prev: if want_prev { prev } else { None },
        })
    }

    /// Deletes every live key in `range`; returns the deleted versions in key order.
    pub fn delete_range(&mut self, range: &KeyRange) -> Result<Vec<KeyValue>> {
        let keys: Vec<Vec<u8>> = self
            .store
            .live_keys(range)
            .map(|(k, _)| k.clone())
            .collect();
        let mut deleted = Vec::with_capacity(keys.len());
        for key in keys {
            let last = self
                .store
                .index
                .get(&key)
                .and_then(|h| h.revs.last())
                .map(|r| r.0);
            let Some(last) = last else { continue };
            let prev = self.fetch(last)?;
            let rev = self.next_rev();
            let tombstone = KeyValue {
                key: key.clone(),
                mod_revision: self.main,
                ..KeyValue::default()
            };
            self.batch
                .put(rev_key(rev), encode_record(&tombstone, true));
            let history = self.store.index.get_or_insert(&key);
            history.revs.push((rev, true));
            history.live = None;
            if self.store.emit_events {
                self.events.push(Event {
                    r#type: EventType::Delete as i32,
                    kv: Some(tombstone),
                    prev_kv: Some(prev.clone()),
                });
            }
            deleted.push(prev);
        }
        Ok(deleted)
    }

    /// Ends the transaction: the store revision advances when anything changed. Returns the
    /// revision now current and the events of this revision, in change order.
    pub fn finish(self) -> (i64, Vec<Event>) {
        if self.changed() {
            self.store.current_rev = self.main;
            self.batch.put(
                super::META_CURRENT_REV.to_vec(),
                self.main.to_be_bytes().to_vec(),
            );
        }
        (self.store.current_rev, self.events)
    }
}
