//! The Cluster service: membership as etcd reports it.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::proto::etcdserverpb::cluster_server::Cluster;
use crate::proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use crate::server::EtcdServer;

pub struct ClusterService {
    pub server: Arc<EtcdServer>,
}

impl ClusterService {
    /// Members from the applied raft membership: voters and learners.
    fn members(&self) -> Vec<Member> {
        let membership = self.server.state.read().membership.clone();
        let voters: std::collections::BTreeSet<u64> = membership.membership().voter_ids().collect();
        membership
            .membership()
            .nodes()
            .map(|(id, node)| Member {
                id: *id,
                name: node.name.clone(),
                peer_ur_ls: node.peer_urls.clone(),
                client_ur_ls: node.client_urls.clone(),
                is_learner: !voters.contains(id),
            })
            .collect()
    }
}

fn not_yet(what: &str) -> Status {
    Error::Unimplemented(format!(
        "etcdserver: {what} is not supported by this oxcd build yet"
    ))
    .into()
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        _r: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        Err(not_yet("MemberAdd"))
    }

    async fn member_remove(
        &self,
        _r: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        Err(not_yet("MemberRemove"))
    }

    async fn member_update(
        &self,
        _r: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        Err(not_yet("MemberUpdate"))
    }

    async fn member_list(
        &self,
        request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if request.into_inner().linearizable {
            self.server.read_index().await?;
        }
        let revision = self.server.state.read().kv.mvcc.current_rev();
        Ok(Response::new(MemberListResponse {
            header: Some(self.server.header(revision)),
            members: self.members(),
        }))
    }

    async fn member_promote(
        &self,
        _r: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        Err(not_yet("MemberPromote"))
    }
}
