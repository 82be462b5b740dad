//! The watch hub: applied revisions fan out to every watch stream.
//!
//! Apply publishes each new revision's events, in order, on a bounded broadcast channel.
//! A stream that falls behind (the channel overwrote what it had not read) catches up from
//! the MVCC history instead, so a slow watcher never stalls apply and never loses events.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::broadcast;

use crate::proto::mvccpb::Event;

/// How many revisions the hub buffers for slow streams before they must read history.
const HUB_CAPACITY: usize = 4096;

/// All events of one store revision, in the order they happened. No events means a jump:
/// the store moved to `revision` without its history passing through the hub.
#[derive(Debug)]
pub struct RevisionEvents {
    pub revision: i64,
    pub events: Vec<Event>,
}

/// Publishes applied revisions to watch streams.
#[derive(Debug)]
pub struct Hub {
    tx: broadcast::Sender<Arc<RevisionEvents>>,
    /// Watchers that asked for `prev_kv`: while there are any, put events carry the version
    /// each put replaced (reading it costs apply a backend read per put).
    prev_kv_watchers: Arc<AtomicUsize>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            tx: broadcast::channel(HUB_CAPACITY).0,
            prev_kv_watchers: Arc::default(),
        }
    }
}

/// A watcher's interest in previous values, held as long as the watcher lives.
#[derive(Debug)]
pub struct PrevKvInterest(Arc<AtomicUsize>);

impl Drop for PrevKvInterest {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Hub {
    /// Called by apply, in revision order.
    pub fn publish(&self, revision: i64, events: Vec<Event>) {
        if !events.is_empty() {
            // No receivers is fine: nobody watches.
            let _ = self.tx.send(Arc::new(RevisionEvents { revision, events }));
        }
    }

    /// Tells streams the store moved to `revision` without events (a raft snapshot replaced
    /// it): every watcher behind it replays the missing revisions from the store.
    pub fn publish_jump(&self, revision: i64) {
        let _ = self.tx.send(Arc::new(RevisionEvents {
            revision,
            events: Vec::new(),
        }));
    }

    /// Registers a watcher that wants `prev_kv`. Register before reading the revision the
    /// watcher starts after: every revision applied later carries previous values.
    pub fn want_prev_kv(&self) -> PrevKvInterest {
        self.prev_kv_watchers.fetch_add(1, Ordering::SeqCst);
        PrevKvInterest(self.prev_kv_watchers.clone())
    }

    /// True while any watcher wants `prev_kv` (read by apply under the state lock).
    pub fn prev_kv_wanted(&self) -> bool {
        self.prev_kv_watchers.load(Ordering::SeqCst) > 0
    }

    /// True while any watch stream is subscribed (read by apply under the state lock: a
    /// stream subscribes before it reads the revision it starts after).
    pub fn has_streams(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Subscribe before reading the current revision, so no revision falls between.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<RevisionEvents>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prev_kv_is_wanted_while_an_interested_watcher_lives() {
        let hub = Hub::default();
        assert!(!hub.prev_kv_wanted());
        let a = hub.want_prev_kv();
        let b = hub.want_prev_kv();
        drop(a);
        assert!(hub.prev_kv_wanted());
        drop(b);
        assert!(!hub.prev_kv_wanted());
    }
}
