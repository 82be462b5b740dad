//! The Cluster service: membership as etcd reports and changes it.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::proto::etcdserverpb::cluster_server::Cluster;
use crate::proto::etcdserverpb::{
    MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse, ResponseHeader,
};
use crate::server::EtcdServer;

pub struct ClusterService {
    pub server: Arc<EtcdServer>,
}

impl ClusterService {
    /// etcd's `ClusterServer.header()`: cluster, member and term, but no revision (the
    /// membership is not part of the key space), so etcdctl's JSON shows none.
    fn header(&self) -> Option<ResponseHeader> {
        Some(self.server.header(0))
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        let r = request.into_inner();
        let member = self.server.member_add(r.peer_ur_ls, r.is_learner).await?;
        Ok(Response::new(MemberAddResponse {
            header: self.header(),
            member: Some(member),
            members: self.server.members(),
        }))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        self.server.member_remove(request.into_inner().id).await?;
        Ok(Response::new(MemberRemoveResponse {
            header: self.header(),
            members: self.server.members(),
        }))
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        let r = request.into_inner();
        self.server.member_update(r.id, r.peer_ur_ls).await?;
        Ok(Response::new(MemberUpdateResponse {
            header: self.header(),
            members: self.server.members(),
        }))
    }

    async fn member_list(
        &self,
        request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if request.into_inner().linearizable {
            self.server.read_index().await?;
        }
        Ok(Response::new(MemberListResponse {
            header: self.header(),
            members: self.server.members(),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.server.member_promote(request.into_inner().id).await?;
        Ok(Response::new(MemberPromoteResponse {
            header: self.header(),
            members: self.server.members(),
        }))
    }
}
