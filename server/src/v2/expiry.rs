//! Expiry of v2 nodes with a TTL: the leader looks twice a second (etcd's SYNC interval) for
//! due entries of the expiry index and removes each due node, with everything below it
//! (a directory's TTL takes its whole subtree), in one transaction that logs an `expire`
//! event. Its clock decides, as the leader's does in etcd; the transaction's compares keep a
//! node refreshed meanwhile.

use std::sync::Arc;
use std::time::Duration;

use crate::mvcc::KeyRange;
use crate::proto::etcdserverpb::TxnRequest;

use super::error::V2Result;
use super::write::delete_op;
use super::{V2Store, now_ns};

/// How often the leader looks for due nodes.
const SWEEP_INTERVAL: Duration = Duration::from_millis(500);

/// Expires due nodes while this member leads, until the member stops.
pub async fn run(store: Arc<V2Store>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Arc::strong_count(&store.server) > 1 && !store.server.is_removed() {
        tick.tick().await;
        let leading = store.server.leader() == Some(store.server.member_id);
        if leading && let Err(e) = store.expire_due(now_ns()).await {
            tracing::debug!("v2 expiry: {e}");
        }
    }
}

impl V2Store {
    /// Removes every node due at `now`; answers how many it removed.
    pub async fn expire_due(&self, now: i64) -> V2Result<usize> {
        let due: Vec<(Vec<u8>, i64, String)> = {
            let state = self.server.state.read();
            let start = self.key("t", "");
            let end = self.key("t", &format!("{:016x}", now.max(0) + 1));
            state
                .kv
                .mvcc
                .live_keys(&KeyRange::from_request(&start, &end))
                .filter_map(|(k, _)| {
                    let rest = std::str::from_utf8(&k[start.len()..]).ok()?;
                    let at = i64::from_str_radix(rest.get(..16)?, 16).ok()?;
                    Some((k.clone(), at, rest[16..].to_string()))
                })
                .collect()
        };
        let mut expired = 0;
        for (entry, at, path) in due {
            if self.expire(&entry, at, &path).await? {
                expired += 1;
            }
        }
        Ok(expired)
    }

    /// Removes the node at `path` if it still expires `at`, and the index entry either way.
    async fn expire(&self, entry: &[u8], at: i64, path: &str) -> V2Result<bool> {
        let view = self.view(path, false)?;
        let drop_entry = delete_op(entry.to_vec(), Vec::new());
        let due = view.node.as_ref().filter(|n| n.record.expires == Some(at));
        let Some(n) = due else {
            self.commit(TxnRequest {
                success: vec![drop_entry],
                ..TxnRequest::default()
            })
            .await?;
            return Ok(false);
        };
        let mut plan = self.removal_plan(&view, "expire", n);
        plan.ops.push(drop_entry);
        let (txn, _) = self.transaction(plan);
        let done = self.commit(txn).await?.is_some();
        if done {
            self.stats.count("expire", true);
        }
        Ok(done)
    }
}
