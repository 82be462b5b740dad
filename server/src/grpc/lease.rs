//! The Lease service: grant, revoke, keep-alive, time-to-live, list.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::Stream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::error::Error;
use crate::lease::MAX_LEASE_TTL;
use crate::proto::etcdserverpb::lease_server::Lease;
use crate::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use crate::proto::oxcdpb::{internal_request::Request as Cmd, internal_response::Response as Out};
use crate::server::EtcdServer;

pub struct LeaseService {
    server: Arc<EtcdServer>,
    /// etcd's request-id generator: member id's low 16 bits, then a millisecond clock that
    /// counts up; used for leases granted with ID 0.
    next_id: AtomicU64,
}

impl LeaseService {
    pub fn new(server: Arc<EtcdServer>) -> LeaseService {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let prefix = (server.member_id & 0xffff) << 48;
        let suffix = (millis << 8) & ((1 << 48) - 1);
        LeaseService {
            server,
            next_id: AtomicU64::new(prefix | suffix),
        }
    }

    fn generate_id(&self) -> i64 {
        loop {
            let id = (self.next_id.fetch_add(1, Ordering::Relaxed) & (i64::MAX as u64)) as i64;
            if id != 0 && !self.server.state.read().kv.leases.contains(id) {
                return id;
            }
        }
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let mut r = request.into_inner();
        if r.ttl > MAX_LEASE_TTL {
            return Err(Error::LeaseTtlTooLarge.into());
        }
        if r.id == 0 {
            r.id = self.generate_id();
        }
        match self.server.propose(Cmd::LeaseGrant(r)).await? {
            Out::LeaseGrant(mut resp) => {
                resp.header = self.server.fill_header(resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(Error::internal("unexpected apply response").into()),
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        match self
            .server
            .propose(Cmd::LeaseRevoke(request.into_inner()))
            .await?
        {
            Out::LeaseRevoke(mut resp) => {
                resp.header = self.server.fill_header(resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(Error::internal("unexpected apply response").into()),
        }
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAliveStream>, Status> {
        let requires_leader = super::guard::stream_requires_leader(&request);
        let mut input = request.into_inner();
        let server = self.server.clone();
        let output = async_stream::try_stream! {
            let leader_lost = super::guard::leader_lost(&server, requires_leader);
            tokio::pin!(leader_lost);
            loop {
                let next = tokio::select! {
                    req = input.next() => req,
                    () = &mut leader_lost => Some(Err(Status::from(Error::NoLeader))),
                };
                let Some(req) = next else { break };
                let req = req?;
                // Renewed on the leader (forwarded when this member follows); 0 when the
                // lease does not exist, as etcd answers.
                let ttl = server.renew_lease(req.id).await?;
                let revision = server.state.read().kv.mvcc.current_rev();
                yield LeaseKeepAliveResponse { header: Some(server.header(revision)), id: req.id, ttl };
            }
        };
        Ok(Response::new(Box::pin(output)))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let r = request.into_inner();
        self.server.read_index().await?;
        let remaining = self.server.lease_remaining(r.id).await?;
        let state = self.server.state.read();
        let revision = state.kv.mvcc.current_rev();
        let resp = match state.kv.leases.get(r.id) {
            None => LeaseTimeToLiveResponse {
                header: Some(self.server.header(revision)),
                id: r.id,
                ttl: -1,
                ..Default::default()
            },
            Some(lease) => {
                let remaining = if remaining < 0 { lease.ttl } else { remaining };
                LeaseTimeToLiveResponse {
                    header: Some(self.server.header(revision)),
                    id: r.id,
                    ttl: remaining,
                    granted_ttl: lease.ttl,
                    keys: if r.keys {
                        lease.keys.iter().cloned().collect()
                    } else {
                        Vec::new()
                    },
                }
            }
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
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
        Ok(Response::new(LeaseLeasesResponse { header, leases }))
    }
}
