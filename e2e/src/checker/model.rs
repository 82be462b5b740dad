//! The etcd key-value model: the states a linearizable etcd store moves through, and how
//! each request changes them, revision by revision.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use crate::checker::revision_log::RevisionLog;
use crate::history::{
    Compare, Event, EventKind, KeyValue, PutRequest, RangeRequest, RangeResponse, Request,
    Response, ResponseBody, TxnOp, TxnOpResponse, TxnRequest,
};

/// The revision of a fresh etcd store: its first write gets revision 2.
pub(crate) const INITIAL_REVISION: i64 = 1;

/// The store at one revision, linked to the revision before it, so that reads of old
/// revisions can be answered and the events of a linearization recovered.
#[derive(Debug)]
struct Snapshot {
    revision: i64,
    kvs: BTreeMap<String, KeyValue>,
    /// The events that made this revision out of its parent.
    events: Vec<Event>,
    parent: Option<Arc<Snapshot>>,
    /// Covers this revision's events and every ancestor's: two heads with equal chain
    /// hashes answer every read, current or historical, alike.
    chain_hash: u128,
}

impl Drop for Snapshot {
    // A long history is a long chain; dropping it recursively would overflow the stack.
    fn drop(&mut self) {
        let mut parent = self.parent.take();
        while let Some(snapshot) = parent {
            parent = match Arc::try_unwrap(snapshot) {
                Ok(mut only_owner) => only_owner.parent.take(),
                Err(_shared) => None,
            };
        }
    }
}

/// A model state. Cloning is cheap: revisions are shared, not copied.
#[derive(Clone, Debug)]
pub(crate) struct ModelState {
    head: Arc<Snapshot>,
    /// Granted, unrevoked leases. Expiry is not modelled: runs use TTLs longer than
    /// themselves.
    leases: Arc<BTreeSet<i64>>,
    compact_revision: i64,
    /// Identifies the state for the search's memo; see `Snapshot::chain_hash`.
    hash: u128,
}

/// Why the store refuses a request, with etcd's error text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    Compacted,
    FutureRevision,
    LeaseNotFound,
    LeaseExists,
    DuplicateKey,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rejection::Compacted => "etcdserver: mvcc: required revision has been compacted",
            Rejection::FutureRevision => "etcdserver: mvcc: required revision is a future revision",
            Rejection::LeaseNotFound => "etcdserver: requested lease not found",
            Rejection::LeaseExists => "etcdserver: lease already exists",
            Rejection::DuplicateKey => "etcdserver: duplicate key given in txn request",
        })
    }
}

/// What applying one request does: the new state (`None` when nothing changed) and the
/// answer the store gives.
pub(crate) struct Step {
    pub next: Option<ModelState>,
    pub result: Result<Response, Rejection>,
}

impl ModelState {
    /// A fresh, empty store.
    pub fn initial() -> Self {
        let head = Snapshot {
            revision: INITIAL_REVISION,
            kvs: BTreeMap::new(),
            events: Vec::new(),
            parent: None,
            chain_hash: hash128(&INITIAL_REVISION),
        };
        ModelState::new(Arc::new(head), Arc::new(BTreeSet::new()), 0)
    }

    fn new(head: Arc<Snapshot>, leases: Arc<BTreeSet<i64>>, compact_revision: i64) -> Self {
        let hash = hash128(&(head.chain_hash, &*leases, compact_revision));
        ModelState {
            head,
            leases,
            compact_revision,
            hash,
        }
    }

    pub fn revision(&self) -> i64 {
        self.head.revision
    }

    pub fn hash(&self) -> u128 {
        self.hash
    }

    pub fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    pub fn leases(&self) -> impl Iterator<Item = i64> + '_ {
        self.leases.iter().copied()
    }

    /// The current kvs, in key order.
    pub fn kvs(&self) -> impl Iterator<Item = &KeyValue> {
        self.head.kvs.values()
    }

    /// Whether the last revision wrote `value` to `key`.
    pub fn last_revision_wrote(&self, key: &str, value: &str) -> bool {
        self.head.events.iter().any(|event| {
            event.kind == EventKind::Put && event.kv.key == key && event.kv.value == value
        })
    }

    /// Every revision's events from the first write to this state.
    pub fn revision_log(&self) -> RevisionLog {
        let mut log = RevisionLog::new();
        let mut snapshot = Some(&self.head);
        while let Some(current) = snapshot {
            if !current.events.is_empty() {
                log.insert(current.revision, current.events.clone());
            }
            log.extend_to(current.revision);
            snapshot = current.parent.as_ref();
        }
        log
    }

    /// Applies `request` as etcd would.
    pub fn step(&self, request: &Request) -> Step {
        match request {
            Request::Range(range) => self.read(range),
            Request::Put(put) => self.write(|write| write.put(put).map(|()| ResponseBody::Put)),
            Request::Delete(delete) => self.write(|write| {
                Ok(ResponseBody::Delete {
                    deleted: write.delete(&delete.key),
                })
            }),
            Request::Txn(txn) => self.txn(txn),
            Request::LeaseGrant { id, .. } => self.lease_grant(*id),
            Request::LeaseRevoke { id } => self.lease_revoke(*id),
            Request::Compact { revision } => self.compact(*revision),
        }
    }

    fn read(&self, range: &RangeRequest) -> Step {
        let result = self.kvs_at(range.revision).map(|kvs| Response {
            revision: self.revision(),
            body: ResponseBody::Range(range_of(kvs, range)),
        });
        Step { next: None, result }
    }

    /// The kvs as of `revision`; 0 means now.
    fn kvs_at(&self, revision: i64) -> Result<&BTreeMap<String, KeyValue>, Rejection> {
        if revision == 0 {
            return Ok(&self.head.kvs);
        }
        if revision > self.revision() {
            return Err(Rejection::FutureRevision);
        }
        if revision < self.compact_revision {
            return Err(Rejection::Compacted);
        }
        let mut snapshot = &self.head;
        while snapshot.revision > revision {
            match &snapshot.parent {
                Some(parent) => snapshot = parent,
                None => break,
            }
        }
        Ok(&snapshot.kvs)
    }

    /// Runs a write against a working copy and commits it as one revision if it changed
    /// anything; the header revision is the revision after it.
    fn write(&self, apply: impl FnOnce(&mut Write<'_>) -> Result<ResponseBody, Rejection>) -> Step {
        let mut write = Write::new(self);
        match apply(&mut write) {
            Ok(body) => {
                let next = write.commit();
                let revision = next.as_ref().map_or(self.revision(), ModelState::revision);
                Step {
                    next,
                    result: Ok(Response { revision, body }),
                }
            }
            Err(rejection) => Step {
                next: None,
                result: Err(rejection),
            },
        }
    }

    fn txn(&self, txn: &TxnRequest) -> Step {
        if has_duplicate_write(&txn.success) || has_duplicate_write(&txn.failure) {
            return Step {
                next: None,
                result: Err(Rejection::DuplicateKey),
            };
        }
        let succeeded = txn.compares.iter().all(|compare| self.holds(compare));
        let ops = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        self.write(|write| {
            let mut results = Vec::with_capacity(ops.len());
            for op in ops {
                results.push(match op {
                    TxnOp::Range(range) => TxnOpResponse::Range(write.range(range)?),
                    TxnOp::Put(put) => write.put(put).map(|()| TxnOpResponse::Put)?,
                    TxnOp::Delete(delete) => TxnOpResponse::Delete {
                        deleted: write.delete(&delete.key),
                    },
                });
            }
            Ok(ResponseBody::Txn { succeeded, results })
        })
    }

    fn holds(&self, compare: &Compare) -> bool {
        let field = |key: &str, of: fn(&KeyValue) -> i64| self.head.kvs.get(key).map_or(0, of);
        match compare {
            Compare::ModRevision { key, equals } => field(key, |kv| kv.mod_revision) == *equals,
            Compare::CreateRevision { key, equals } => {
                field(key, |kv| kv.create_revision) == *equals
            }
            Compare::Version { key, equals } => field(key, |kv| kv.version) == *equals,
            Compare::Value { key, equals } => {
                self.head.kvs.get(key).is_some_and(|kv| kv.value == *equals)
            }
        }
    }

    fn lease_grant(&self, id: i64) -> Step {
        if self.leases.contains(&id) {
            return Step {
                next: None,
                result: Err(Rejection::LeaseExists),
            };
        }
        let mut leases = (*self.leases).clone();
        leases.insert(id);
        let next = ModelState::new(self.head.clone(), Arc::new(leases), self.compact_revision);
        Step {
            next: Some(next),
            result: Ok(Response {
                revision: self.revision(),
                body: ResponseBody::LeaseGrant,
            }),
        }
    }

    /// Revoking deletes the lease's keys in one revision.
    fn lease_revoke(&self, id: i64) -> Step {
        if !self.leases.contains(&id) {
            return Step {
                next: None,
                result: Err(Rejection::LeaseNotFound),
            };
        }
        let attached: Vec<String> = self
            .head
            .kvs
            .values()
            .filter(|kv| kv.lease == id)
            .map(|kv| kv.key.clone())
            .collect();
        let mut write = Write::new(self);
        for key in &attached {
            write.delete(key);
        }
        let mut leases = (*self.leases).clone();
        leases.remove(&id);
        write.leases = Some(leases);
        let next = write
            .commit()
            .expect("removing a lease always changes the state");
        let revision = next.revision();
        Step {
            next: Some(next),
            result: Ok(Response {
                revision,
                body: ResponseBody::LeaseRevoke,
            }),
        }
    }

    fn compact(&self, revision: i64) -> Step {
        let rejection = if revision <= self.compact_revision {
            Some(Rejection::Compacted)
        } else if revision > self.revision() {
            Some(Rejection::FutureRevision)
        } else {
            None
        };
        if let Some(rejection) = rejection {
            return Step {
                next: None,
                result: Err(rejection),
            };
        }
        let next = ModelState::new(self.head.clone(), self.leases.clone(), revision);
        Step {
            next: Some(next),
            result: Ok(Response {
                revision: self.revision(),
                body: ResponseBody::Compact,
            }),
        }
    }
}

/// A write in progress: one revision's worth of changes on a copy of the kvs. Reads in
/// the same transaction see the changes made before them, as in etcd.
struct Write<'a> {
    base: &'a ModelState,
    kvs: BTreeMap<String, KeyValue>,
    events: Vec<Event>,
    /// Replaces the lease set when committed.
    leases: Option<BTreeSet<i64>>,
}

impl<'a> Write<'a> {
    fn new(base: &'a ModelState) -> Self {
        Write {
            base,
            kvs: base.head.kvs.clone(),
            events: Vec::new(),
            leases: None,
        }
    }

    fn revision(&self) -> i64 {
        self.base.revision() + 1
    }

    fn range(&self, range: &RangeRequest) -> Result<RangeResponse, Rejection> {
        if range.revision == 0 {
            Ok(range_of(&self.kvs, range))
        } else {
            self.base
                .kvs_at(range.revision)
                .map(|kvs| range_of(kvs, range))
        }
    }

    fn put(&mut self, put: &PutRequest) -> Result<(), Rejection> {
        if put.lease != 0 && !self.base.leases.contains(&put.lease) {
            return Err(Rejection::LeaseNotFound);
        }
        let revision = self.revision();
        let prev = self.kvs.get(&put.key).cloned();
        let kv = KeyValue {
            key: put.key.clone(),
            value: put.value.clone(),
            create_revision: prev.as_ref().map_or(revision, |prev| prev.create_revision),
            mod_revision: revision,
            version: prev.as_ref().map_or(1, |prev| prev.version + 1),
            lease: put.lease,
        };
        self.kvs.insert(put.key.clone(), kv.clone());
        self.events.push(Event {
            kind: EventKind::Put,
            kv,
            prev_kv: prev,
        });
        Ok(())
    }

    /// Deletes `key`, returning how many keys were deleted.
    fn delete(&mut self, key: &str) -> i64 {
        let Some(prev) = self.kvs.remove(key) else {
            return 0;
        };
        let kv = KeyValue {
            key: key.to_owned(),
            mod_revision: self.revision(),
            ..KeyValue::default()
        };
        self.events.push(Event {
            kind: EventKind::Delete,
            kv,
            prev_kv: Some(prev),
        });
        1
    }

    /// The state after this write, or `None` if it changed nothing.
    fn commit(self) -> Option<ModelState> {
        let base = self.base;
        if self.events.is_empty() {
            let leases = self.leases?;
            return Some(ModelState::new(
                base.head.clone(),
                Arc::new(leases),
                base.compact_revision,
            ));
        }
        let revision = self.revision();
        let chain_hash = hash128(&(base.head.chain_hash, revision, &self.events));
        let head = Snapshot {
            revision,
            kvs: self.kvs,
            events: self.events,
            parent: Some(base.head.clone()),
            chain_hash,
        };
        let leases = self.leases.map_or_else(|| base.leases.clone(), Arc::new);
        Some(ModelState::new(
            Arc::new(head),
            leases,
            base.compact_revision,
        ))
    }
}

fn range_of(kvs: &BTreeMap<String, KeyValue>, range: &RangeRequest) -> RangeResponse {
    let matching: Vec<&KeyValue> = if range.prefix {
        kvs.range(range.key.clone()..)
            .take_while(|(key, _)| range.matches(key))
            .map(|(_, kv)| kv)
            .collect()
    } else {
        kvs.get(&range.key).into_iter().collect()
    };
    let count = i64::try_from(matching.len()).unwrap_or(i64::MAX);
    let limit = usize::try_from(range.limit)
        .ok()
        .filter(|limit| *limit > 0)
        .unwrap_or(usize::MAX);
    RangeResponse {
        kvs: matching.into_iter().take(limit).cloned().collect(),
        count,
    }
}

/// etcd refuses a branch in which a put's key is also put or deleted by another op.
fn has_duplicate_write(ops: &[TxnOp]) -> bool {
    let mut puts = BTreeSet::new();
    let mut deletes = BTreeSet::new();
    for op in ops {
        match op {
            TxnOp::Put(put) => {
                if !puts.insert(put.key.as_str()) {
                    return true;
                }
            }
            TxnOp::Delete(delete) => {
                deletes.insert(delete.key.as_str());
            }
            TxnOp::Range(_) => {}
        }
    }
    puts.iter().any(|key| deletes.contains(key))
}

/// A 128-bit hash from two differently seeded SipHashes: wide enough that a collision
/// merging two distinct search states is not a practical concern.
pub(crate) fn hash128<T: Hash + ?Sized>(value: &T) -> u128 {
    let seeded = |seed: u8| {
        let mut hasher = DefaultHasher::new();
        seed.hash(&mut hasher);
        value.hash(&mut hasher);
        hasher.finish()
    };
    (u128::from(seeded(1)) << 64) | u128::from(seeded(2))
}
