//! The watch hub: applied revisions fan out to every watch stream.
//!
//! Apply publishes each new revision's events, in order, on a bounded broadcast channel.
//! A stream that falls behind (the channel overwrote what it had not read) catches up from
//! the MVCC history instead, so a slow watcher never stalls apply and never loses events.

use std::sync::Arc;

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
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            tx: broadcast::channel(HUB_CAPACITY).0,
        }
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

    /// Subscribe before reading the current revision, so no revision falls between.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<RevisionEvents>> {
        self.tx.subscribe()
    }
}
