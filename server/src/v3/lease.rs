//! The Lease service: grant, revoke, keep-alive, time-to-live, list.

use std::sync::atomic::{AtomicU64, Ordering};

use futures::{Stream, StreamExt};

use crate::error::{Error, Result};
use crate::lease::{LeaseTable, MAX_LEASE_TTL};
use crate::proto::authpb::permission::Type as PermType;
use crate::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use crate::proto::oxcdpb::internal_request::Request as Command;

use super::{Core, RequestContext};

/// etcd's request-id generator, for leases granted with ID 0: the member id's low 16 bits,
/// then a millisecond clock that counts up.
pub(super) struct LeaseIds {
    next: AtomicU64,
}

impl LeaseIds {
    pub(super) fn new(member_id: u64) -> LeaseIds {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let prefix = (member_id & 0xffff) << 48;
        let suffix = (millis << 8) & ((1 << 48) - 1);
        LeaseIds {
            next: AtomicU64::new(prefix | suffix),
        }
    }

    /// The next id no lease in `leases` has.
    fn generate(&self, leases: &LeaseTable) -> i64 {
        loop {
            let id = (self.next.fetch_add(1, Ordering::Relaxed) & (i64::MAX as u64)) as i64;
            if id != 0 && !leases.contains(id) {
                return id;
            }
        }
    }
}

impl Core {
    pub async fn lease_grant(
        &self,
        ctx: &RequestContext,
        mut r: LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse> {
        if r.ttl > MAX_LEASE_TTL {
            return Err(Error::LeaseTtlTooLarge);
        }
        if r.id == 0 {
            r.id = self.lease_ids.generate(&self.server.state.read().kv.leases);
        }
        self.server
            .propose_expect(ctx.header(), Command::LeaseGrant(r))
            .await
    }

    pub async fn lease_revoke(
        &self,
        ctx: &RequestContext,
        r: LeaseRevokeRequest,
    ) -> Result<LeaseRevokeResponse> {
        self.server
            .propose_expect(ctx.header(), Command::LeaseRevoke(r))
            .await
    }

    /// Answers each keep-alive of `input` in order, until the client ends the stream or, if
    /// it required a leader, the leader stays lost.
    pub fn lease_keep_alive(
        &self,
        ctx: &RequestContext,
        mut input: impl Stream<Item = Result<LeaseKeepAliveRequest>> + Send + Unpin + 'static,
    ) -> impl Stream<Item = Result<LeaseKeepAliveResponse>> + Send + 'static {
        let server = self.server.clone();
        let requires_leader = ctx.require_leader;
        async_stream::try_stream! {
            let leader_lost = server.leader_lost_for(requires_leader);
            tokio::pin!(leader_lost);
            loop {
                let next = tokio::select! {
                    req = input.next() => req,
                    () = &mut leader_lost => Some(Err(Error::NoLeader)),
                };
                let Some(req) = next else { break };
                let req = req?;
                // Renewed on the leader (forwarded when this member follows); 0 when the
                // lease does not exist, as etcd answers.
                let ttl = server.renew_lease(req.id).await?;
                let header = Some(server.current_header());
                yield LeaseKeepAliveResponse { header, id: req.id, ttl };
            }
        }
    }

    pub async fn lease_time_to_live(
        &self,
        ctx: &RequestContext,
        r: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse> {
        self.server.read_index().await?;
        let remaining = self.server.lease_remaining(r.id).await?;
        let state = self.server.state.read();
        // etcd's checkLeaseTimeToLive: unless an admin asks, every key of the lease must be
        // readable by the caller.
        if let Some(lease) = state.kv.leases.get(r.id) {
            let (auth, who) = (&state.kv.auth, ctx.caller());
            if auth.check_admin(&who).is_err() {
                for key in &lease.keys {
                    auth.check(&who, key, &[], PermType::Read)?;
                }
            }
        }
        let header = Some(self.server.header(state.kv.mvcc.current_rev()));
        let Some(lease) = state.kv.leases.get(r.id) else {
            return Ok(LeaseTimeToLiveResponse {
                header,
                id: r.id,
                ttl: -1,
                ..Default::default()
            });
        };
        Ok(LeaseTimeToLiveResponse {
            header,
            id: r.id,
            ttl: if remaining < 0 { lease.ttl } else { remaining },
            granted_ttl: lease.ttl,
            keys: if r.keys {
                lease.keys.iter().cloned().collect()
            } else {
                Vec::new()
            },
        })
    }

    pub async fn lease_leases(
        &self,
        _ctx: &RequestContext,
        _r: LeaseLeasesRequest,
    ) -> Result<LeaseLeasesResponse> {
        self.server.read_index().await?;
        let state = self.server.state.read();
        // etcd lists leases by expiry, soonest first.
        let clock = &self.server.state.lease_clock;
        let mut ids: Vec<(Option<i64>, i64)> = state
            .kv
            .leases
            .ids()
            .map(|id| (clock.remaining_millis(id), id))
            .collect();
        ids.sort();
        let leases = ids.into_iter().map(|(_, id)| LeaseStatus { id }).collect();
        let header = Some(self.server.header(state.kv.mvcc.current_rev()));
        Ok(LeaseLeasesResponse { header, leases })
    }
}
