//! The Maintenance service: status, alarms, defragment, hashes, leadership transfer.

use futures::Stream;
use openraft::async_runtime::WatchReceiver;

use crate::error::{Error, Result};
use crate::proto::etcdserverpb::alarm_request::AlarmAction;
use crate::proto::etcdserverpb::downgrade_request::DowngradeAction;
use crate::proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest,
    DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest,
    MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};

use crate::proto::oxcdpb::internal_request::Request as Command;

use super::{Core, ETCD_API_VERSION, RequestContext};

/// A downgrade target as etcd reads it: `major.minor` or `major.minor.patch` (a semver,
/// of which only major and minor count).
fn cluster_version(target: &str) -> Result<(u64, u64)> {
    let core = target.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    let number = |p: &&str| -> Option<u64> {
        let leading_zero = p.len() > 1 && p.starts_with('0');
        (!leading_zero).then(|| p.parse().ok()).flatten()
    };
    match parts.as_slice() {
        [major, minor] | [major, minor, _] if parts.iter().all(|p| number(p).is_some()) => {
            Ok((number(major).unwrap_or(0), number(minor).unwrap_or(0)))
        }
        _ => Err(Error::WrongDowngradeVersionFormat),
    }
}

/// The size of a snapshot's chunks, etcd's.
const SNAPSHOT_CHUNK: usize = 32 * 1024;

/// A new file in `dir`, already unlinked: it is gone when the last handle closes.
fn unlinked_file(dir: &std::path::Path) -> Result<std::fs::File> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("snapshot-{}-{n}.tmp", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// Sends the `size` bytes of `file` and their sha256 as [`SnapshotResponse`]s; stops when the
/// receiver is gone.
fn stream_snapshot(
    file: &std::fs::File,
    size: u64,
    header: crate::proto::etcdserverpb::ResponseHeader,
    tx: &tokio::sync::mpsc::Sender<Result<SnapshotResponse>>,
) {
    use sha2::Digest;
    use std::os::unix::fs::FileExt;
    let mut hasher = sha2::Sha256::new();
    let mut sent = 0u64;
    while sent < size {
        let mut blob = vec![0u8; SNAPSHOT_CHUNK.min((size - sent) as usize)];
        if let Err(e) = file.read_exact_at(&mut blob, sent) {
            let _ = tx.blocking_send(Err(e.into()));
            return;
        }
        hasher.update(&blob);
        sent += blob.len() as u64;
        let chunk = SnapshotResponse {
            header: Some(header),
            remaining_bytes: size - sent,
            // The version that wrote the snapshot, on the first message as etcd does.
            version: if blob.len() as u64 == sent {
                ETCD_API_VERSION.to_string()
            } else {
                String::new()
            },
            blob,
        };
        if tx.blocking_send(Ok(chunk)).is_err() {
            return;
        }
    }
    let _ = tx.blocking_send(Ok(SnapshotResponse {
        header: Some(header),
        remaining_bytes: 0,
        blob: hasher.finalize().to_vec(),
        version: String::new(),
    }));
}

impl Core {
    /// Lists, raises or clears alarms, through raft as etcd does (a list is linearizable).
    /// While auth is on, listing needs a known user and raising or clearing an admin.
    pub async fn alarm(&self, ctx: &RequestContext, r: AlarmRequest) -> Result<AlarmResponse> {
        if r.action == AlarmAction::Get as i32 {
            self.check_known(ctx)?;
        } else {
            self.check_admin(ctx)?;
        }
        self.server
            .propose_expect(ctx.header(), Command::Alarm(r))
            .await
    }

    pub async fn status(&self, _ctx: &RequestContext, _r: StatusRequest) -> Result<StatusResponse> {
        let metrics = self.server.raft.metrics().borrow_watched().clone();
        let db_size = self.server.db_size();
        // As etcd: no leader, then every active alarm as Go prints an AlarmMember.
        let mut errors = Vec::new();
        if metrics.current_leader.is_none() {
            errors.push("etcdserver: no leader".to_string());
        }
        for (member, name) in self.server.active_alarms() {
            errors.push(format!("memberID:{member} alarm:{name} "));
        }
        Ok(StatusResponse {
            header: Some(self.server.current_header()),
            version: ETCD_API_VERSION.to_string(),
            db_size,
            leader: metrics.current_leader.unwrap_or(0),
            raft_index: metrics.last_log_index.unwrap_or(0),
            raft_term: metrics.current_term,
            raft_applied_index: metrics.last_applied.map(|l| l.index).unwrap_or(0),
            errors,
            db_size_in_use: db_size,
            is_learner: self.server.is_learner(),
            ..Default::default()
        })
    }

    pub async fn defragment(
        &self,
        ctx: &RequestContext,
        _r: DefragmentRequest,
    ) -> Result<DefragmentResponse> {
        self.check_admin(ctx)?;
        fail::fail_point!("defrag-before", |_| Err(Error::internal(
            "failpoint defrag-before"
        )));
        let server = self.server.clone();
        tokio::task::spawn_blocking(move || {
            server.state.defragment()?;
            server.refresh_db_size();
            Ok::<_, Error>(())
        })
        .await
        .map_err(Error::internal)??;
        Ok(DefragmentResponse {
            header: Some(self.server.current_header()),
        })
    }

    pub async fn hash(&self, ctx: &RequestContext, _r: HashRequest) -> Result<HashResponse> {
        self.check_admin(ctx)?;
        self.server.hash().await
    }

    pub async fn hash_kv(&self, ctx: &RequestContext, r: HashKvRequest) -> Result<HashKvResponse> {
        self.check_admin(ctx)?;
        self.server.hash_kv(r.revision).await
    }

    /// Streams the applied state as etcd's snapshot: the bbolt database in chunks of 32 KiB
    /// with the bytes still to come, then its sha256 (the file `etcdctl snapshot save`
    /// writes). The database is written first to an unlinked file in the data dir, from one
    /// consistent applied position, so the stream needs neither the state lock nor memory in
    /// proportion to the state, and a crash leaves nothing behind.
    pub async fn snapshot(
        &self,
        ctx: &RequestContext,
        _r: SnapshotRequest,
    ) -> Result<impl Stream<Item = Result<SnapshotResponse>> + Send + 'static> {
        self.check_admin(ctx)?;
        let server = self.server.clone();
        let (file, size) = tokio::task::spawn_blocking(move || -> Result<_> {
            let file = unlinked_file(&server.data_dir.join("member"))?;
            let size =
                crate::backup::write_etcd_db(&server.state, file.try_clone()?, ETCD_API_VERSION)?;
            Ok((file, size))
        })
        .await
        .map_err(Error::internal)??;
        let header = self.server.current_header();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || stream_snapshot(&file, size, header, &tx));
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx))
    }

    pub async fn move_leader(
        &self,
        ctx: &RequestContext,
        r: MoveLeaderRequest,
    ) -> Result<MoveLeaderResponse> {
        self.check_admin(ctx)?;
        self.server.move_leader(r.target_id).await?;
        Ok(MoveLeaderResponse {
            header: Some(self.server.current_header()),
        })
    }

    /// etcd's Downgrade, for a server that runs one storage format: a well-formed target is
    /// refused as an invalid target (there is no older version to run), and there is never a
    /// downgrade job to cancel.
    pub async fn downgrade(
        &self,
        _ctx: &RequestContext,
        r: DowngradeRequest,
    ) -> Result<DowngradeResponse> {
        match DowngradeAction::try_from(r.action) {
            Ok(DowngradeAction::Validate | DowngradeAction::Enable) => {
                cluster_version(&r.version)?;
                Err(Error::InvalidDowngradeTargetVersion)
            }
            Ok(DowngradeAction::Cancel) => Err(Error::NoInflightDowngrade),
            Err(_) => Err(Error::UnknownMethod),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downgrade_targets_parse_as_etcds() {
        assert_eq!(cluster_version("3.4"), Ok((3, 4)));
        assert_eq!(cluster_version("3.4.0"), Ok((3, 4)));
        assert_eq!(cluster_version("3.4.1-rc.0"), Ok((3, 4)));
        for bad in ["", "3", "v3.4", "3.x", "3.4.0.1", "03.4"] {
            assert_eq!(
                cluster_version(bad),
                Err(Error::WrongDowngradeVersionFormat),
                "{bad}"
            );
        }
    }
}
