//! The Maintenance service: status, alarms, defragment, hashes.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::grpc::ETCD_API_VERSION;
use crate::mvcc::KeyRange;
use crate::proto::etcdserverpb::maintenance_server::Maintenance;
use crate::proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest,
    DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest,
    MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use crate::server::EtcdServer;
use openraft::async_runtime::WatchReceiver;

pub struct MaintenanceService {
    pub server: Arc<EtcdServer>,
}

fn not_yet(what: &str) -> Status {
    Error::Unimplemented(format!(
        "etcdserver: {what} is not supported by this oxcd build yet"
    ))
    .into()
}

/// CRC-32 (Castagnoli, as etcd) over `data`, continuing from `crc`.
fn crc32c(mut crc: u32, data: &[u8]) -> u32 {
    crc = !crc;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(&self, _r: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        let revision = self.server.state.read().kv.mvcc.current_rev();
        Ok(Response::new(AlarmResponse {
            header: Some(self.server.header(revision)),
            alarms: Vec::new(),
        }))
    }

    async fn status(&self, _r: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let metrics = self.server.raft.metrics().borrow_watched().clone();
        let revision = self.server.state.read().kv.mvcc.current_rev();
        let db_size = self.server.db_size();
        let is_learner = self.server.is_learner();
        Ok(Response::new(StatusResponse {
            header: Some(self.server.header(revision)),
            version: ETCD_API_VERSION.to_string(),
            db_size,
            leader: metrics.current_leader.unwrap_or(0),
            raft_index: metrics.last_log_index.unwrap_or(0),
            raft_term: metrics.current_term,
            raft_applied_index: metrics.last_applied.map(|l| l.index).unwrap_or(0),
            errors: Vec::new(),
            db_size_in_use: db_size,
            is_learner,
            ..Default::default()
        }))
    }

    async fn defragment(
        &self,
        _r: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        fail::fail_point!("defrag-before", |_| Err(Error::internal(
            "failpoint defrag-before"
        )
        .into()));
        let server = self.server.clone();
        tokio::task::spawn_blocking(move || {
            server.state.defragment()?;
            server.refresh_db_size();
            Ok::<_, Error>(())
        })
        .await
        .map_err(Error::internal)??;
        let revision = self.server.state.read().kv.mvcc.current_rev();
        Ok(Response::new(DefragmentResponse {
            header: Some(self.server.header(revision)),
        }))
    }

    async fn hash(&self, _r: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        let state = self.server.state.clone();
        let (hash, revision) = tokio::task::spawn_blocking(move || -> Result<(u32, i64), Error> {
            let mut crc = 0;
            let revision = state.visit_replicated_pairs(|k, v| crc = crc32c(crc32c(crc, k), v))?;
            Ok((crc, revision))
        })
        .await
        .map_err(Error::internal)??;
        Ok(Response::new(HashResponse {
            header: Some(self.server.header(revision)),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let rev = request.into_inner().revision;
        let state = self.server.state.clone();
        let (hash, compact_revision, revision, hash_revision) =
            tokio::task::spawn_blocking(move || -> Result<_, Error> {
                let guard = state.read();
                let mvcc = &guard.kv.mvcc;
                let at = mvcc.check_read_rev(rev)?;
                let all = KeyRange::from_request(b"\0", b"\0");
                let mut crc = 0;
                for ev in mvcc.events(state.backend(), &all, mvcc.compact_rev().max(1), at)? {
                    if let Some(kv) = ev.kv {
                        crc = crc32c(crc32c(crc, &kv.key), &kv.value);
                    }
                }
                Ok((crc, mvcc.compact_rev(), mvcc.current_rev(), at))
            })
            .await
            .map_err(Error::internal)??;
        Ok(Response::new(HashKvResponse {
            header: Some(self.server.header(revision)),
            hash,
            compact_revision,
            hash_revision,
        }))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        _r: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        Err(not_yet("Snapshot"))
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        self.server
            .move_leader(request.into_inner().target_id)
            .await?;
        let revision = self.server.state.read().kv.mvcc.current_rev();
        Ok(Response::new(MoveLeaderResponse {
            header: Some(self.server.header(revision)),
        }))
    }

    async fn downgrade(
        &self,
        _r: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(not_yet("Downgrade"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32c_known_vector() {
        assert_eq!(super::crc32c(0, b"123456789"), 0xe306_9283);
    }
}
