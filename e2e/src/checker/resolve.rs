//! Resolving unknown outcomes from what the clients saw: a write whose answer was lost,
//! but whose value (written by no other request) later appeared in a read or a watch,
//! took effect, at the revision it was seen with and before the moment it was seen.
//!
//! This turns "may have happened at any time after invoke" into "happened at revision R,
//! before time T", which both shrinks the linearizability search and puts the write's
//! events into the revision log that watches are checked against.

use std::collections::{HashMap, HashSet};

use crate::history::{
    Event, EventKind, History, KeyValue, Operation, Outcome, Request, ResponseBody, Timestamp,
    TxnOp, TxnOpResponse,
};

/// A write of `value` to `key`, seen with mod revision `revision` at `time`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sighting {
    pub key: String,
    pub value: String,
    pub revision: i64,
    pub time: Timestamp,
}

/// The sightings of operations without a response, by operation index.
pub(crate) fn sighted_unknown_writes(history: &History) -> HashMap<usize, Sighting> {
    let writers = writers_by_value(history);
    let seen = first_sightings(history);
    let mut resolved = HashMap::new();
    for (index, operation) in history.operations.iter().enumerate() {
        if matches!(
            operation.outcome,
            Outcome::Response(_) | Outcome::NotSent(_)
        ) {
            continue;
        }
        let sighting = puts_of(&operation.request)
            .into_iter()
            .find_map(|(key, value)| {
                let pair = (key.to_owned(), value.to_owned());
                if writers.get(&pair) != Some(&1) {
                    return None;
                }
                seen.get(&pair).map(|&(revision, time)| Sighting {
                    key: pair.0,
                    value: pair.1,
                    revision,
                    time,
                })
            });
        if let Some(sighting) = sighting {
            resolved.insert(index, sighting);
        }
    }
    resolved
}

/// Operations without a response that certainly did not take effect: every branch that
/// would change something writes a value no other request writes, to a key a watcher saw
/// all of (created before the operation was invoked, and it went on to deliver the final
/// revision of the run), and that value was seen nowhere. etcd's robustness tests drop such
/// writes the same way; without this the search may linearize a write that never happened
/// and the watch check would then miss its event.
pub(crate) fn unseen_unknown_writes(history: &History) -> HashSet<usize> {
    let writers = writers_by_value(history);
    let seen = first_sightings(history);
    let final_revision = history
        .operations
        .iter()
        .filter_map(|op| match &op.outcome {
            Outcome::Response(response) => Some(response.revision),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    // Watchers (client, range) that saw everything: created at, last revision delivered.
    let mut watchers: HashMap<(crate::history::ClientId, &str, bool), (Option<Timestamp>, i64)> =
        HashMap::new();
    for stream in &history.watches {
        let watcher = watchers
            .entry((
                stream.client,
                stream.request.key.as_str(),
                stream.request.prefix,
            ))
            .or_insert((None, 0));
        for response in &stream.responses {
            match &response.kind {
                crate::history::WatchResponseKind::Created => {
                    watcher.0 = Some(watcher.0.map_or(response.time, |t| t.min(response.time)));
                }
                crate::history::WatchResponseKind::Events { events, .. } => {
                    for event in events {
                        watcher.1 = watcher.1.max(event.kv.mod_revision);
                    }
                }
                crate::history::WatchResponseKind::Progress => {
                    watcher.1 = watcher.1.max(response.revision);
                }
                crate::history::WatchResponseKind::Canceled { .. } => {}
            }
        }
    }
    let covered = |key: &str, invoke: Timestamp| {
        watchers
            .iter()
            .any(|((_, range, prefix), (created, last))| {
                crate::history::WatchRequest {
                    key: (*range).to_owned(),
                    prefix: *prefix,
                    start_revision: 0,
                    prev_kv: false,
                    progress_notify: false,
                }
                .matches(key)
                    && created.is_some_and(|c| c < invoke)
                    && *last >= final_revision
            })
    };
    let unseen_put = |ops: &[TxnOp], invoke: Timestamp| {
        ops.iter().any(|op| match op {
            TxnOp::Put(put) => {
                let pair = (put.key.clone(), put.value.clone());
                writers.get(&pair) == Some(&1)
                    && !seen.contains_key(&pair)
                    && covered(&put.key, invoke)
            }
            _ => false,
        })
    };
    let mut unseen = HashSet::new();
    for (index, operation) in history.operations.iter().enumerate() {
        if !matches!(operation.outcome, Outcome::Error(_) | Outcome::Unknown) {
            continue;
        }
        let did_nothing = match &operation.request {
            Request::Put(put) => unseen_put(&[TxnOp::Put(put.clone())], operation.invoke),
            Request::Txn(txn) => {
                let branches: Vec<&Vec<TxnOp>> = [&txn.success, &txn.failure]
                    .into_iter()
                    .filter(|ops| !ops.iter().all(TxnOp::is_read_only))
                    .collect();
                !branches.is_empty() && branches.iter().all(|ops| unseen_put(ops, operation.invoke))
            }
            _ => false,
        };
        if did_nothing {
            unseen.insert(index);
        }
    }
    unseen
}

/// Lease grants without a response whose lease no other request names: whether or not they
/// happened shows in no answer (a lease is seen only through the keys attached to it), so
/// the search leaves them out rather than try both.
pub(crate) fn unused_unknown_grants(history: &History) -> HashSet<usize> {
    let mut named: HashMap<i64, usize> = HashMap::new();
    for operation in &history.operations {
        let ids: Vec<i64> = match &operation.request {
            Request::Put(put) => vec![put.lease],
            Request::Txn(txn) => txn
                .success
                .iter()
                .chain(&txn.failure)
                .filter_map(|op| match op {
                    TxnOp::Put(put) => Some(put.lease),
                    _ => None,
                })
                .collect(),
            Request::LeaseGrant { id, .. } | Request::LeaseRevoke { id } => vec![*id],
            _ => Vec::new(),
        };
        for id in ids.into_iter().filter(|id| *id != 0) {
            *named.entry(id).or_default() += 1;
        }
    }
    history
        .operations
        .iter()
        .enumerate()
        .filter(|(_, op)| matches!(op.outcome, Outcome::Error(_) | Outcome::Unknown))
        .filter(|(_, op)| {
            matches!(op.request, Request::LeaseGrant { id, .. } if named.get(&id) == Some(&1))
        })
        .map(|(index, _)| index)
        .collect()
}

/// How many operations write each (key, value).
fn writers_by_value(history: &History) -> HashMap<(String, String), usize> {
    let mut writers = HashMap::new();
    for operation in &history.operations {
        let distinct: HashSet<(&str, &str)> = puts_of(&operation.request).into_iter().collect();
        for (key, value) in distinct {
            *writers
                .entry((key.to_owned(), value.to_owned()))
                .or_default() += 1;
        }
    }
    writers
}

/// Every (key, value) a request may write, in either branch of a transaction.
fn puts_of(request: &Request) -> Vec<(&str, &str)> {
    match request {
        Request::Put(put) => vec![(put.key.as_str(), put.value.as_str())],
        Request::Txn(txn) => txn
            .success
            .iter()
            .chain(&txn.failure)
            .filter_map(|op| match op {
                TxnOp::Put(put) => Some((put.key.as_str(), put.value.as_str())),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// For each (key, value) seen anywhere, the mod revision it was seen with and the
/// earliest time it was seen.
fn first_sightings(history: &History) -> HashMap<(String, String), (i64, Timestamp)> {
    let mut seen: HashMap<(String, String), (i64, Timestamp)> = HashMap::new();
    let mut note = |kv: &KeyValue, time: Timestamp| {
        let entry = seen
            .entry((kv.key.clone(), kv.value.clone()))
            .or_insert((kv.mod_revision, time));
        if time < entry.1 {
            *entry = (kv.mod_revision, time);
        }
    };
    for operation in &history.operations {
        if let Some(time) = operation.return_time {
            for kv in kvs_read_by(operation) {
                note(kv, time);
            }
        }
    }
    for response in history.watches.iter().flat_map(|stream| &stream.responses) {
        if let crate::history::WatchResponseKind::Events { events, .. } = &response.kind {
            for kv in events.iter().flat_map(event_kvs) {
                note(kv, response.time);
            }
        }
    }
    seen
}

fn kvs_read_by(operation: &Operation) -> Vec<&KeyValue> {
    let Outcome::Response(response) = &operation.outcome else {
        return Vec::new();
    };
    match &response.body {
        ResponseBody::Range(range) => range.kvs.iter().collect(),
        ResponseBody::Txn { results, .. } => results
            .iter()
            .filter_map(|result| match result {
                TxnOpResponse::Range(range) => Some(range.kvs.iter()),
                _ => None,
            })
            .flatten()
            .collect(),
        _ => Vec::new(),
    }
}

/// The written kvs an event shows: its new value (unless a delete) and its previous one.
fn event_kvs(event: &Event) -> impl Iterator<Item = &KeyValue> {
    let written = (event.kind == EventKind::Put).then_some(&event.kv);
    written.into_iter().chain(&event.prev_kv)
}
