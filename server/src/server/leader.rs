//! Whether this member knows a working leader, and etcd's monitorLeader: streams that
//! required a leader end once it has stayed lost for three election timeouts.

use std::sync::Arc;

use openraft::async_runtime::WatchReceiver;

use super::EtcdServer;

/// Election timeouts without a leader before streams that required one end (etcd's
/// maxNoLeaderCnt: reconnecting streams costs more than refusing new requests).
const MAX_NO_LEADER_CHECKS: u32 = 3;

impl EtcdServer {
    /// Whether this member knows a working leader, as etcd's `Leader() != None` with
    /// CheckQuorum: a leader that has heard from no quorum for an election timeout would
    /// have stepped down in etcd, so it does not count (openraft keeps it leading).
    pub fn has_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        match m.current_leader {
            None => false,
            Some(id) if id == self.member_id => {
                m.membership_config.membership().voter_ids().count() == 1
                    || m.last_quorum_acked.as_ref().is_some_and(|at| {
                        openraft::Instant::elapsed(&**at) <= self.election_timeout
                    })
            }
            Some(_) => true,
        }
    }

    /// Whether this member has known no leader for three election timeouts.
    pub fn leader_lost(&self) -> tokio::sync::watch::Receiver<bool> {
        self.leader_lost.subscribe()
    }

    /// Resolves when a stream that required a leader must end: the member has known no
    /// leader for etcd's three election timeouts. Never resolves for other streams.
    pub async fn leader_lost_for(&self, required: bool) {
        if !required {
            return std::future::pending().await;
        }
        let mut lost = self.leader_lost();
        if lost.wait_for(|lost| *lost).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Checks once an election timeout whether the member knows a leader, like etcd's
/// monitorLeader.
pub async fn monitor_leader(server: Arc<EtcdServer>) {
    let weak = Arc::downgrade(&server);
    let period = server.election_timeout;
    drop(server);
    let mut without = 0;
    loop {
        tokio::time::sleep(period).await;
        let Some(server) = weak.upgrade() else { return };
        without = if !server.has_leader() { without + 1 } else { 0 };
        server.leader_lost.send_if_modified(|lost| {
            let now = without >= MAX_NO_LEADER_CHECKS;
            std::mem::replace(lost, now) != now
        });
    }
}

/// Counts the leaders this member comes to know (`etcd_server_leader_changes_seen_total`):
/// each time raft reports a leader other than the last one it knew. Watches raft's server
/// metrics, which change with the leader, vote or membership only: the full metrics change at
/// every commit and quorum ack, and a task woken by each of them cost linearizable reads a
/// quarter of their throughput on a 3-member cluster.
pub async fn count_leader_changes(server: Arc<EtcdServer>) {
    let mut metrics = server.raft.server_metrics();
    drop(server);
    let mut last = None;
    loop {
        let leader = metrics.borrow_watched().current_leader;
        if leader.is_some() && leader != last {
            crate::metrics::METRICS.leader_changes.inc();
            last = leader;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
