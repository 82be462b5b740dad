//! etcd's corruption checks. At start (`--experimental-initial-corrupt-check`), a member
//! compares its hash with its peers' and refuses to start on a mismatch. Periodically
//! (`--experimental-corrupt-check-time`), the leader
//! computes its HashKV and asks every other member for theirs at the same revision; a member
//! that hashed the same history (same compaction) to a different value holds a state that is
//! not the cluster's, and the leader raises the CORRUPT alarm for it. While CORRUPT is up,
//! every member refuses what it would apply ("etcdserver: corrupt cluster").

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::proto::etcdserverpb::alarm_request::AlarmAction;
use crate::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::proto::etcdserverpb::{AlarmRequest, AlarmType, HashKvRequest, HashKvResponse};
use crate::proto::oxcdpb::internal_request::Request;

use super::EtcdServer;

/// How long the leader waits for one member's hash.
const PEER_HASH_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the check every `period` on whichever member leads; `period` zero disables it.
pub async fn run_corruption_check(server: Arc<EtcdServer>, period: Duration) {
    if period.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval(period);
    tick.tick().await;
    loop {
        tick.tick().await;
        if server.leader() != Some(server.member_id) {
            continue;
        }
        match server.check_hashes().await {
            Ok(()) => {}
            Err(Error::Stopped) => return,
            Err(e) => tracing::warn!(error = %e, "corruption check failed; will retry"),
        }
    }
}

impl EtcdServer {
    /// One pass: every other member's HashKV at this member's current revision, compared
    /// with this member's; CORRUPT is raised for each one that disagrees.
    async fn check_hashes(&self) -> Result<()> {
        let (mine, disagreeing) = self
            .members_disagreeing(|id, e| {
                tracing::debug!(member = %format!("{id:x}"), error = %e, "no hash from member")
            })
            .await?;
        for (id, _) in disagreeing {
            tracing::error!(
                member = %format!("{id:x}"),
                revision = mine.hash_revision,
                "hash mismatch: raising the CORRUPT alarm"
            );
            self.raise_corrupt(id).await?;
        }
        Ok(())
    }

    /// etcd's `--experimental-initial-corrupt-check`: before this member serves clients, its
    /// HashKV at its applied revision is compared with every reachable member's; one that
    /// disagrees means this member's state is not the cluster's, and it must not start.
    /// Members that cannot be reached (a cluster starting all at once) are skipped with a
    /// warning, as in etcd.
    pub async fn initial_corruption_check(&self) -> Result<()> {
        let (mine, disagreeing) = self
            .members_disagreeing(|id, e| {
                tracing::warn!(peer = %format!("{id:x}"), error = %e, "cannot fetch hash from peer")
            })
            .await?;
        if let Some((id, peer_hash)) = disagreeing.first() {
            tracing::error!(
                peer = %format!("{id:x}"),
                revision = mine.hash_revision,
                local_hash = mine.hash,
                peer_hash,
                "found data inconsistency with peers"
            );
            return Err(Error::Internal(format!(
                "{:x} found data inconsistency with peers",
                self.member_id
            )));
        }
        Ok(())
    }

    /// This member's HashKV at its current revision, and the other members (with their hash)
    /// that hashed the same history (same compaction, same revision) to another value.
    /// `unreachable` hears of each member that gave no hash.
    async fn members_disagreeing(
        &self,
        unreachable: impl Fn(u64, &Error),
    ) -> Result<(HashKvResponse, Vec<(u64, u32)>)> {
        let mine = self.hash_kv(0).await?;
        let mut disagreeing = Vec::new();
        for (id, client_urls) in self.other_members_client_urls() {
            let Some(url) = client_urls.first() else {
                continue;
            };
            match peer_hash_kv(url, mine.hash_revision).await {
                Ok(theirs) => {
                    let same_history = theirs.compact_revision == mine.compact_revision
                        && theirs.hash_revision == mine.hash_revision;
                    if same_history && theirs.hash != mine.hash {
                        disagreeing.push((id, theirs.hash));
                    }
                }
                Err(e) => unreachable(id, &e),
            }
        }
        Ok((mine, disagreeing))
    }

    async fn raise_corrupt(&self, member_id: u64) -> Result<()> {
        let alarm = Request::Alarm(AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id,
            alarm: AlarmType::Corrupt as i32,
        });
        self.propose(alarm).await.map(|_| ())
    }

    /// The other members that have published their client URLs, by id.
    fn other_members_client_urls(&self) -> Vec<(u64, Vec<String>)> {
        self.members()
            .into_iter()
            .filter(|m| m.id != self.member_id && !m.client_ur_ls.is_empty())
            .map(|m| (m.id, m.client_ur_ls))
            .collect()
    }
}

/// A member's HashKV at `revision`, asked on its client URL.
async fn peer_hash_kv(url: &str, revision: i64) -> Result<HashKvResponse> {
    // Over the peer TLS, as etcd asks other members with its peer transport.
    let (endpoint, connector) =
        crate::raft::network::peer_endpoint(url).map_err(Error::Internal)?;
    let endpoint = endpoint
        .connect_timeout(PEER_HASH_TIMEOUT)
        .timeout(PEER_HASH_TIMEOUT);
    let channel = endpoint
        .connect_with_connector(connector)
        .await
        .map_err(Error::internal)?;
    let response = MaintenanceClient::new(channel)
        .hash_kv(HashKvRequest { revision })
        .await?;
    Ok(response.into_inner())
}
