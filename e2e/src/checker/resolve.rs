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
