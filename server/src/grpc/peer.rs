//! The peer port's server side: hands raft messages to the local raft node, installs
//! streamed snapshots, and answers requests other members forward to the leader.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::Snapshot;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::AsyncWriteExt;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use tonic::service::Routes;

use crate::error::Error;
use crate::proto::oxcdpb::peer_server::{Peer, PeerServer};
use crate::proto::oxcdpb::{
    InternalRequest, InternalResponse, KeepAliveRequest, KeepAliveResponse, MembersRequest,
    MembersResponse, ProposeResponse, RaftBytes, ReadIndexRequest, ReadIndexResponse, RemovedAck,
    RemovedNotice, SnapshotChunk,
};
use crate::raft::state_machine::SnapshotFile;
use crate::server::EtcdServer;
use crate::typ::{SnapshotMeta, Vote};

pub struct PeerService {
    pub server: Arc<EtcdServer>,
    /// Numbers incoming snapshot files so concurrent transfers do not collide.
    next_snapshot: AtomicU64,
}

impl PeerService {
    pub fn new(server: Arc<EtcdServer>) -> PeerService {
        PeerService {
            server,
            next_snapshot: AtomicU64::new(0),
        }
    }
}

fn decode<T: DeserializeOwned>(b: &RaftBytes) -> Result<T, Status> {
    bincode::deserialize(&b.data)
        .map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))
}

fn encode<T: Serialize>(v: &T) -> Result<Response<RaftBytes>, Status> {
    let data = bincode::serialize(v).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftBytes { data }))
}

fn fatal(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("raft stopped: {e}"))
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(
        &self,
        request: Request<RaftBytes>,
    ) -> Result<Response<RaftBytes>, Status> {
        let req = decode(request.get_ref())?;
        let resp = self.server.raft.append_entries(req).await.map_err(fatal)?;
        encode(&resp)
    }

    type StreamAppendStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<RaftBytes, Status>> + Send>>;

    /// Hands the requests to raft as they arrive, without waiting for earlier ones to be
    /// answered; raft answers them in order. A request that does not decode ends the input.
    async fn stream_append(
        &self,
        request: Request<Streaming<RaftBytes>>,
    ) -> Result<Response<Self::StreamAppendStream>, Status> {
        let requests = request
            .into_inner()
            .map_while(|message| decode(&message.ok()?).ok());
        let results = self.server.raft.stream_append(requests).map(|result| {
            let result = result.map_err(fatal)?;
            Ok(encode(&result)?.into_inner())
        });
        Ok(Response::new(Box::pin(results)))
    }

    async fn vote(&self, request: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        let req = decode(request.get_ref())?;
        let resp = self.server.raft.vote(req).await.map_err(fatal)?;
        encode(&resp)
    }

    async fn transfer_leader(
        &self,
        request: Request<RaftBytes>,
    ) -> Result<Response<RaftBytes>, Status> {
        let req = decode(request.get_ref())?;
        let resp = self
            .server
            .raft
            .handle_transfer_leader(req)
            .await
            .map_err(fatal)?;
        encode(&resp)
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftBytes>, Status> {
        let mut chunks = request.into_inner();
        let n = self.next_snapshot.fetch_add(1, Ordering::Relaxed);
        let path = self
            .server
            .data_dir
            .join("member")
            .join("snap")
            .join(format!("incoming-{n}.snap"));
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        let mut header: Option<(Vote, SnapshotMeta)> = None;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            if header.is_none() {
                header = Some(decode(&RaftBytes { data: chunk.header })?);
            }
            file.write_all(&chunk.data)
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        file.sync_all()
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        drop(file);
        let (vote, meta) =
            header.ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        let snapshot = Snapshot {
            meta,
            snapshot: SnapshotFile::complete(path.clone()),
        };
        let result = self.server.raft.install_full_snapshot(vote, snapshot).await;
        let _ = tokio::fs::remove_file(&path).await;
        encode(&result.map_err(fatal)?)
    }

    async fn propose(
        &self,
        request: Request<InternalRequest>,
    ) -> Result<Response<ProposeResponse>, Status> {
        let request = request.into_inner();
        if request.request.is_none() {
            return Err(Status::invalid_argument("empty request"));
        }
        let (response, index) = self.server.propose_local(request).await?;
        Ok(Response::new(ProposeResponse {
            response: Some(InternalResponse {
                error: 0,
                response: Some(response),
            }),
            index,
        }))
    }

    async fn read_index(
        &self,
        _request: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexResponse>, Status> {
        let index = self.server.leader_read_index().await?;
        Ok(Response::new(ReadIndexResponse { index }))
    }

    async fn lease_keep_alive(
        &self,
        request: Request<KeepAliveRequest>,
    ) -> Result<Response<KeepAliveResponse>, Status> {
        let r = request.into_inner();
        let ttl = if r.query {
            self.server.lease_remaining_local(r.id)?
        } else {
            self.server.renew_lease_local(r.id)?
        };
        Ok(Response::new(KeepAliveResponse { ttl }))
    }

    async fn change_membership(
        &self,
        request: Request<RaftBytes>,
    ) -> Result<Response<RaftBytes>, Status> {
        let change: crate::membership::Change = decode(request.get_ref())?;
        let index = self.server.change_membership_local(change).await?;
        encode(&index)
    }

    async fn members(
        &self,
        _request: Request<MembersRequest>,
    ) -> Result<Response<MembersResponse>, Status> {
        let membership = self.server.state.read().membership.clone();
        let membership = bincode::serialize(&membership).map_err(Error::internal)?;
        Ok(Response::new(MembersResponse {
            membership,
            cluster_id: self.server.cluster_id,
        }))
    }

    async fn notify_removed(
        &self,
        request: Request<RemovedNotice>,
    ) -> Result<Response<RemovedAck>, Status> {
        let theirs =
            bincode::deserialize(&request.into_inner().membership).map_err(Error::internal)?;
        self.server.removal_notice(&theirs);
        Ok(Response::new(RemovedAck {}))
    }
}

/// The peer port's one service, and its HTTP `/members` (for proxies).
pub fn routes(server: Arc<EtcdServer>) -> Routes {
    let grpc = Routes::new(
        PeerServer::new(PeerService::new(server.clone()))
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX),
    )
    .into_axum_router();
    Routes::from(grpc.merge(crate::http::peer::routes(server)))
}
