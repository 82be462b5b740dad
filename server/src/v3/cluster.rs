//! The Cluster service: membership as etcd reports and changes it.

use crate::error::Result;
use crate::proto::etcdserverpb::{
    MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse, ResponseHeader,
};

use super::{Core, RequestContext};

impl Core {
    /// etcd's `ClusterServer.header()`: cluster, member and term, but no revision (the
    /// membership is not part of the key space), so etcdctl's JSON shows none.
    fn cluster_header(&self) -> Option<ResponseHeader> {
        Some(self.server.header(0))
    }

    pub async fn member_add(
        &self,
        ctx: &RequestContext,
        r: MemberAddRequest,
    ) -> Result<MemberAddResponse> {
        self.check_admin(ctx)?;
        let member = self.server.member_add(r.peer_ur_ls, r.is_learner).await?;
        Ok(MemberAddResponse {
            header: self.cluster_header(),
            member: Some(member),
            members: self.server.members(),
        })
    }

    pub async fn member_remove(
        &self,
        ctx: &RequestContext,
        r: MemberRemoveRequest,
    ) -> Result<MemberRemoveResponse> {
        self.check_admin(ctx)?;
        self.server.member_remove(r.id).await?;
        Ok(MemberRemoveResponse {
            header: self.cluster_header(),
            members: self.server.members(),
        })
    }

    pub async fn member_update(
        &self,
        ctx: &RequestContext,
        r: MemberUpdateRequest,
    ) -> Result<MemberUpdateResponse> {
        self.check_admin(ctx)?;
        self.server.member_update(r.id, r.peer_ur_ls).await?;
        Ok(MemberUpdateResponse {
            header: self.cluster_header(),
            members: self.server.members(),
        })
    }

    pub async fn member_list(
        &self,
        _ctx: &RequestContext,
        r: MemberListRequest,
    ) -> Result<MemberListResponse> {
        let members = self.server.members_after_barrier(r.linearizable).await?;
        Ok(MemberListResponse {
            header: self.cluster_header(),
            members,
        })
    }

    pub async fn member_promote(
        &self,
        ctx: &RequestContext,
        r: MemberPromoteRequest,
    ) -> Result<MemberPromoteResponse> {
        self.check_admin(ctx)?;
        self.server.member_promote(r.id).await?;
        Ok(MemberPromoteResponse {
            header: self.cluster_header(),
            members: self.server.members(),
        })
    }
}
