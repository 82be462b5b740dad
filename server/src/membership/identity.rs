//! Who this member is: its member id and cluster id, fixed at first start and kept in
//! `member/identity` so restarts do not depend on flags, plus the marker that a member was
//! removed from its cluster (such a data dir must never rejoin) and, for a member that
//! joined an existing cluster, which membership it joined through (older ones, which it
//! replays while catching up, never included it: they do not mean it was removed).
//!
//! A new member of a new cluster (`--initial-cluster-state new`) derives both ids from
//! `--initial-cluster` like etcd; a member joining an existing cluster asks the members
//! named in `--initial-cluster` which id MemberAdd gave its peer URLs.

use std::path::Path;
use std::time::Duration;

use super::ids::InitialCluster;
use crate::config::{ClusterState, Config, split_urls};
use crate::error::{Error, Result};
use crate::proto::oxcdpb::MembersRequest;
use crate::proto::oxcdpb::peer_client::PeerClient;
use crate::raft::network::peer_channel;
use crate::typ::{LogId, StoredMembership};

const IDENTITY_FILE: &str = "identity";
const REMOVED_FILE: &str = "removed";
/// For a member that joined an existing cluster: the log id of the membership, containing
/// it, through which it learned its id.
const JOINED_FILE: &str = "joined";

/// This member's place in its cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub member_id: u64,
    pub cluster_id: u64,
}

/// Marks the data dir as belonging to a removed member.
pub fn mark_removed(member_dir: &Path) -> Result<()> {
    std::fs::write(member_dir.join(REMOVED_FILE), b"removed from the cluster\n")?;
    Ok(())
}

/// Whether the data dir belongs to a member removed from its cluster.
pub fn is_removed(member_dir: &Path) -> bool {
    member_dir.join(REMOVED_FILE).exists()
}

/// The identity kept in the data dir, `None` if it has none yet (a member that never
/// started, or crashed before its identity was fixed).
pub fn load(member_dir: &Path) -> Result<Option<Identity>> {
    match std::fs::read(member_dir.join(IDENTITY_FILE)) {
        Ok(bytes) => bincode::deserialize(&bytes)
            .map(Some)
            .map_err(Error::internal),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The log id of the membership a joining member found itself in; `None` for a founding
/// member of a new cluster (every membership it applies contains it, until its removal).
pub fn joined_at(member_dir: &Path) -> Option<LogId> {
    let bytes = std::fs::read(member_dir.join(JOINED_FILE)).ok()?;
    bincode::deserialize(&bytes).ok()
}

/// Loads the identity of an existing data dir, or establishes it for a new one.
pub async fn establish(
    cfg: &Config,
    member_dir: &Path,
    cluster: &InitialCluster,
) -> Result<Identity> {
    if is_removed(member_dir) {
        return Err(Error::MemberRemoved);
    }
    if let Some(identity) = load(member_dir)? {
        return Ok(identity);
    }
    let identity = match cfg.clustering.initial_cluster_state {
        ClusterState::New => {
            let me = cluster.member(&cfg.member.name).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "couldn't find local name {:?} in the initial cluster configuration",
                    cfg.member.name
                ))
            })?;
            Identity {
                member_id: me.id,
                cluster_id: cluster.cluster_id,
            }
        }
        ClusterState::Existing => {
            let (identity, joined_at) = discover(cfg, cluster).await?;
            // Before the identity: a crash in between discovers again.
            let joined = bincode::serialize(&joined_at).map_err(Error::internal)?;
            std::fs::write(member_dir.join(JOINED_FILE), joined)?;
            identity
        }
    };
    save(member_dir, &identity)?;
    Ok(identity)
}

/// Records `identity` as this data dir's.
pub fn save(member_dir: &Path, identity: &Identity) -> Result<()> {
    let bytes = bincode::serialize(identity).map_err(Error::internal)?;
    std::fs::write(member_dir.join(IDENTITY_FILE), bytes)?;
    Ok(())
}

/// Asks the other members which id the cluster gave our peer URLs; returns it with the log
/// id of the membership that says so.
async fn discover(cfg: &Config, cluster: &InitialCluster) -> Result<(Identity, LogId)> {
    let mine = split_urls(&cfg.clustering.initial_advertise_peer_urls);
    let mut last_error = String::from("no other member in --initial-cluster");
    for _attempt in 0..20 {
        for m in cluster
            .members
            .iter()
            .filter(|m| m.node.name != cfg.member.name)
        {
            let Ok(channel) = peer_channel(&m.node) else {
                continue;
            };
            match PeerClient::new(channel).members(MembersRequest {}).await {
                Ok(resp) => {
                    let resp = resp.into_inner();
                    let membership: StoredMembership =
                        bincode::deserialize(&resp.membership).map_err(Error::internal)?;
                    let found = membership
                        .membership()
                        .nodes()
                        .find(|(_, n)| n.peer_urls.iter().any(|u| mine.contains(u)))
                        .map(|(id, _)| *id);
                    return match found {
                        Some(member_id) => {
                            // Listed by a MemberAdd entry, so the membership has a log id.
                            let at = (*membership.log_id())
                                .ok_or_else(|| Error::internal("membership without a log id"))?;
                            let id = Identity {
                                member_id,
                                cluster_id: resp.cluster_id,
                            };
                            Ok((id, at))
                        }
                        None => Err(Error::InvalidArgument(format!(
                            "member with peer URLs {} is not in the cluster; add it with MemberAdd first",
                            mine.join(",")
                        ))),
                    };
                }
                Err(e) => last_error = format!("{}: {}", m.node.peer_urls.join(","), e.message()),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(Error::Internal(format!(
        "cannot reach the existing cluster to join it ({last_error})"
    )))
}
