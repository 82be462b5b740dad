//! Leases on the leader: only the leader's clock decides expiry, so keep-alives and
//! remaining-time queries are answered there (forwarded by followers over the peer port), and
//! the leader's loop proposes a revoke for each lease whose deadline passes.

use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;

use crate::error::{Error, Result};
use crate::proto::oxcdpb::KeepAliveRequest;

use super::EtcdServer;
use super::propose::{Leader, forwarded_error};

impl EtcdServer {
    /// Restarts a lease's countdown on the leader; returns its TTL, 0 if it does not exist.
    pub async fn renew_lease(&self, id: i64) -> Result<i64> {
        self.lease_on_leader(KeepAliveRequest { id, query: false })
            .await
    }

    /// Whole seconds left on a lease by the leader's clock (-1 if it has none), for
    /// TimeToLive: only the leader's deadlines are renewed by keep-alives.
    pub async fn lease_remaining(&self, id: i64) -> Result<i64> {
        self.lease_on_leader(KeepAliveRequest { id, query: true })
            .await
    }

    /// The leader's answer to a keep-alive or a remaining-time query.
    async fn lease_on_leader(&self, request: KeepAliveRequest) -> Result<i64> {
        let deadline = Instant::now() + self.request_timeout;
        loop {
            let metrics = self.raft.metrics().borrow_watched().clone();
            let leader = metrics.current_leader.and_then(|l| {
                metrics
                    .membership_config
                    .membership()
                    .get_node(&l)
                    .cloned()
                    .map(|n| (l, n))
            });
            match self.leader_node(leader.as_ref().map(|l| l.0), leader.map(|l| l.1)) {
                Leader::Me if request.query => return self.lease_remaining_local(request.id),
                Leader::Me => return self.renew_lease_local(request.id),
                Leader::Other(node) => {
                    let mut peer = self.peer(&node)?;
                    match tokio::time::timeout_at(deadline.into(), peer.lease_keep_alive(request))
                        .await
                    {
                        Err(_) => return Err(Error::Timeout),
                        Ok(Ok(resp)) => return Ok(resp.into_inner().ttl),
                        Ok(Err(s)) => match forwarded_error(s) {
                            Error::NoLeader => self.pause_for_leader(deadline).await?,
                            e => return Err(e),
                        },
                    }
                }
                Leader::Unknown => self.await_leader(deadline).await?,
            }
        }
    }

    /// Seconds left on a lease by this member's clock; this member must lead.
    pub fn lease_remaining_local(&self, id: i64) -> Result<i64> {
        if self.leader() != Some(self.member_id) {
            return Err(Error::NotLeader);
        }
        Ok(self.state.lease_clock.remaining_truncated(id).unwrap_or(-1))
    }

    /// Renews a lease on this member, which must be the leader.
    pub fn renew_lease_local(&self, id: i64) -> Result<i64> {
        if self.leader() != Some(self.member_id) {
            return Err(Error::NotLeader);
        }
        let ttl = self.state.read().kv.leases.get(id).map(|l| l.ttl);
        // A lease past its deadline is as good as revoked (the revoke is on its way through
        // raft); etcd answers such a keep-alive with TTL 0 rather than reviving it.
        let expired = self.state.lease_clock.expired_now(id);
        Ok(match ttl {
            Some(_) if expired => 0,
            Some(ttl) => {
                self.state.lease_clock.renew(id, ttl);
                ttl
            }
            None => 0,
        })
    }
}

/// How often the leader looks for expired leases.
const EXPIRY_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// The leader's expiry loop: restarts every countdown when this member becomes leader, then
/// proposes a revoke for each lease whose deadline passes. Followers only watch.
pub async fn run_expiry(server: std::sync::Arc<EtcdServer>) {
    use crate::proto::etcdserverpb::LeaseRevokeRequest;
    use crate::proto::oxcdpb::internal_request::Request;
    let mut was_leader = false;
    let mut tick = tokio::time::interval(EXPIRY_CHECK_INTERVAL);
    loop {
        tick.tick().await;
        let leader = server.leader() == Some(server.member_id);
        if leader && !was_leader {
            let leases: Vec<(i64, i64)> = server
                .state
                .read()
                .kv
                .leases
                .iter()
                .map(|(id, l)| (id, l.ttl))
                .collect();
            server.state.lease_clock.restart_all(leases.into_iter());
        }
        was_leader = leader;
        if !leader {
            continue;
        }
        for id in server.state.lease_clock.expired() {
            match server
                .propose(Request::LeaseRevoke(LeaseRevokeRequest { id }))
                .await
            {
                Ok(_) => {}
                Err(Error::LeaseNotFound) => server.state.lease_clock.forget(id),
                Err(Error::Stopped) => return,
                Err(e) => tracing::warn!(lease = id, error = %e, "lease revoke failed; will retry"),
            }
        }
    }
}
