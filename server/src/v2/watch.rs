//! `wait=true`: the first event at or after an index that concerns a key (or its subtree),
//! from the event log's history when it is there, else as the next writes are applied.
//!
//! As in etcd, the history reaches back 1000 events: an older `waitIndex` fails with 401
//! "The event in requested index is outdated and cleared" (and so does one that compaction
//! of the v3 store has passed). A waiter holds only a receiver of the applied revisions, so
//! thousands of idle long-polls cost little; it ends when its request is dropped.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::broadcast::error::RecvError;

use crate::mvcc::read_kv;
use crate::watch::RevisionEvents;

use super::error::{EVENT_INDEX_CLEARED, V2Error, V2Result};
use super::{Event, V2Store, clean, event_at};

/// How many events back a waiter may start (etcd's event history size).
pub const HISTORY_EVENTS: usize = 1000;

/// A waiter on a key, counted in `/v2/stats/store`'s watchers while it lives.
pub struct Waiter {
    store: Arc<V2Store>,
    key: String,
    recursive: bool,
    /// The first index not yet looked at.
    next: i64,
    /// The store index when the wait began (etcd's `X-Etcd-Index` of a watch).
    pub start_index: i64,
    hub: tokio::sync::broadcast::Receiver<Arc<RevisionEvents>>,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.store.stats.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

impl V2Store {
    /// A waiter for events on `key` at or after `since` (0: the next write).
    pub fn waiter(self: &Arc<Self>, key: &str, recursive: bool, since: u64) -> V2Result<Waiter> {
        // Subscribe first: whatever is applied after the history read below reaches us.
        let hub = self.server.state.hub.subscribe();
        let (current, start) = {
            let state = self.server.state.read();
            let mvcc = &state.kv.mvcc;
            // The event log is only ever put, never deleted.
            let log = mvcc
                .history(&self.event_key())
                .map(|h| &h.revs[..])
                .unwrap_or_default();
            let window = log
                .len()
                .checked_sub(HISTORY_EVENTS)
                .map(|i| log[i].0.main)
                .unwrap_or(0);
            let compacted = match mvcc.compact_rev() {
                0 => 0,
                c => c + 1,
            };
            (mvcc.current_rev(), window.max(compacted))
        };
        let since = match since as i64 {
            0 => current + 1,
            s => s,
        };
        if since < start {
            return Err(V2Error::new(
                EVENT_INDEX_CLEARED,
                format!("the requested history has been cleared [{start}/{since}]"),
                current,
            ));
        }
        self.stats.watchers.fetch_add(1, Ordering::Relaxed);
        Ok(Waiter {
            store: self.clone(),
            key: clean(key),
            recursive,
            next: since,
            start_index: current,
            hub,
        })
    }
}

impl Waiter {
    /// The next event for this waiter, waiting for it as long as it takes.
    pub async fn next(&mut self) -> V2Result<Event> {
        loop {
            if let Some(e) = self.next_in_history()? {
                return Ok(e);
            }
            loop {
                match self.hub.recv().await {
                    Ok(rev) if rev.events.is_empty() => break,
                    Ok(rev) if rev.revision < self.next => {}
                    Ok(rev) => {
                        if rev.revision > self.next {
                            // A revision the hub skipped: read the gap from history.
                            break;
                        }
                        self.next = rev.revision + 1;
                        let key = self.store.event_key();
                        for e in rev.events.iter().filter_map(|e| e.kv.as_ref()) {
                            if e.key == key
                                && let Some(event) = decode(e)
                                && event.concerns(&self.key, self.recursive)
                            {
                                return Ok(event);
                            }
                        }
                    }
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => {
                        return Err(V2Error::new(400, "the store stopped", 0));
                    }
                }
            }
        }
    }

    /// The first logged event from `next` on that concerns this waiter; moves `next` past
    /// what it read.
    fn next_in_history(&mut self) -> V2Result<Option<Event>> {
        let store = &self.store;
        let state = store.server.state.read();
        let mvcc = &state.kv.mvcc;
        let current = mvcc.current_rev();
        let backend = store.server.state.backend();
        let key = store.event_key();
        let log = mvcc.history(&key).map(|h| &h.revs[..]).unwrap_or_default();
        let first = log.partition_point(|(r, _)| r.main < self.next);
        for &(rev, _) in &log[first..] {
            let kv = read_kv(backend, rev).map_err(|e| V2Error::internal(&e))?;
            if let Some(event) = decode(&kv)
                && event.concerns(&self.key, self.recursive)
            {
                self.next = rev.main + 1;
                return Ok(Some(event));
            }
        }
        self.next = self.next.max(current + 1);
        Ok(None)
    }
}

/// An event as the log stored it, with the indexes of the revision that logged it.
fn decode(kv: &crate::proto::mvccpb::KeyValue) -> Option<Event> {
    serde_json::from_slice::<Event>(&kv.value)
        .ok()
        .map(|e| event_at(e, kv.mod_revision))
}
