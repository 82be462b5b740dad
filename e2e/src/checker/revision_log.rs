//! The revision log: which events each revision of a linearized history produced. It is
//! what a correct watch must deliver.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::checker::model::INITIAL_REVISION;
use crate::history::Event;

/// Events by revision, up to `last_revision`. Revisions without events (none are made
/// by etcd after the first) are absent from the map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionLog {
    revisions: BTreeMap<i64, Vec<Event>>,
    /// The last revision the history reached: a watch delivering anything later saw
    /// writes the history does not explain.
    last_revision: i64,
}

impl Default for RevisionLog {
    fn default() -> Self {
        Self::new()
    }
}

impl RevisionLog {
    /// The log of a fresh store.
    pub fn new() -> Self {
        RevisionLog {
            revisions: BTreeMap::new(),
            last_revision: INITIAL_REVISION,
        }
    }

    /// Records the events of `revision`, in any order, and extends the log to it.
    pub fn insert(&mut self, revision: i64, events: Vec<Event>) {
        self.revisions.insert(revision, events);
        self.extend_to(revision);
    }

    /// Notes that the history reached `revision`.
    pub fn extend_to(&mut self, revision: i64) {
        self.last_revision = self.last_revision.max(revision);
    }

    pub fn last_revision(&self) -> i64 {
        self.last_revision
    }

    /// The events of one revision.
    pub fn revision(&self, revision: i64) -> &[Event] {
        self.revisions.get(&revision).map_or(&[], Vec::as_slice)
    }

    /// Every event with a revision in `from..=to`, ordered by revision, then key.
    pub fn events(&self, from: i64, to: i64) -> Vec<&Event> {
        if from > to {
            return Vec::new();
        }
        let mut events = Vec::new();
        for revision_events in self.revisions.range(from..=to).map(|(_, events)| events) {
            let mut sorted: Vec<&Event> = revision_events.iter().collect();
            sorted.sort_by(|a, b| a.kv.key.cmp(&b.kv.key));
            events.extend(sorted);
        }
        events
    }
}
