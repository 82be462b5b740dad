//! The membership loops every member runs: publishing its name and client URLs, promoting
//! members added as voters once they caught up (on the leader), and noticing its own removal.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::ChangeMembers;

use crate::error::{Error, Result};
use crate::server::EtcdServer;
use crate::typ::{self, MemberNode};

use super::is_voter;

/// How often the leader checks whether added members have caught up.
const PROMOTE_CHECK_INTERVAL: Duration = Duration::from_millis(200);

impl EtcdServer {
    async fn publish_self(&self) -> Result<()> {
        let Some(mut node) = self.member_node(self.member_id) else {
            return Ok(());
        };
        if node.client_urls == self.client_urls && node.name == self.name {
            return Ok(());
        }
        node.client_urls = self.client_urls.clone();
        node.name = self.name.clone();
        self.change_membership(ChangeMembers::SetNodes(BTreeMap::from([(
            self.member_id,
            node,
        )])))
        .await
    }
}

/// Publishes this member's attributes once there is a leader, retrying until it sticks.
pub async fn run_publish(server: Arc<EtcdServer>) {
    loop {
        match server.publish_self().await {
            Ok(())
                if server
                    .member_node(server.member_id)
                    .is_some_and(|n| n.client_urls == server.client_urls) =>
            {
                return;
            }
            Err(Error::Stopped) => return,
            Ok(()) | Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// On the leader: promotes members added as voters once they have caught up.
pub async fn run_promoter(server: Arc<EtcdServer>) {
    let mut tick = tokio::time::interval(PROMOTE_CHECK_INTERVAL);
    loop {
        tick.tick().await;
        if server.leader() != Some(server.member_id) {
            continue;
        }
        let config = server.state.read().membership.membership().clone();
        let voters: BTreeSet<u64> = config.voter_ids().collect();
        let pending: Vec<u64> = config
            .nodes()
            .filter(|(id, n)| n.promote_when_ready && !voters.contains(id))
            .map(|(id, _)| *id)
            .collect();
        for id in pending {
            if !server.learner_ready(id).unwrap_or(false) {
                continue;
            }
            match server
                .change_membership_local(ChangeMembers::AddVoterIds(BTreeSet::from([id])))
                .await
            {
                Ok(_) => {
                    tracing::info!(member = %format!("{id:x}"), "promoted caught-up member to voter")
                }
                Err(Error::Stopped) => return,
                Err(e) => {
                    tracing::warn!(member = %format!("{id:x}"), error = %e, "promotion failed; will retry")
                }
            }
        }
    }
}

/// How often a member checks whether it was removed from the cluster.
const REMOVAL_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Watches for this member's removal: either the applied membership drops it, or (when it
/// has lost contact, as a removed member does, or is not a voter, as a member being removed
/// may be) another member's newer membership lacks it. Then it marks the data dir and stops
/// the server.
///
/// "Drops it" means a membership newer than the one this member joined through (any, for a
/// founding member): a joining member replays older memberships that never included it.
pub async fn run_removal_watch(server: Arc<EtcdServer>) {
    let joined_at = super::identity::joined_at(&server.data_dir.join("member"));
    let mut tick = tokio::time::interval(REMOVAL_CHECK_INTERVAL);
    loop {
        tick.tick().await;
        let (in_config, raft_learner, log_id, peers) = {
            let state = server.state.read();
            let config = state.membership.membership();
            let peers: Vec<MemberNode> = config
                .nodes()
                .filter(|(id, _)| **id != server.member_id)
                .map(|(_, n)| n.clone())
                .collect();
            let in_config = config.get_node(&server.member_id).is_some();
            let voter = is_voter(config, server.member_id);
            (
                in_config,
                in_config && !voter,
                *state.membership.log_id(),
                peers,
            )
        };
        // A member removed as a voter may still know a leader (a removed leader even hands
        // leadership over) and never hear of its final removal, so non-voters ask too.
        let removed = if !in_config {
            log_id.is_some() && log_id > joined_at
        } else if server.leader().is_none() || raft_learner {
            removed_by_peers(&server, log_id.max(joined_at), &peers).await
        } else {
            false
        };
        if removed {
            tracing::error!("{}", Error::MemberRemoved);
            if let Err(e) = super::identity::mark_removed(&server.data_dir.join("member")) {
                tracing::error!(error = %e, "cannot mark the data dir as removed");
            }
            server.stop_removed();
            return;
        }
    }
}

/// True when some peer knows a newer membership without this member.
async fn removed_by_peers(
    server: &EtcdServer,
    ours: Option<typ::LogId>,
    peers: &[MemberNode],
) -> bool {
    for node in peers {
        let Ok(mut client) = server.peer(node) else {
            continue;
        };
        let call = client.members(crate::proto::oxcdpb::MembersRequest {});
        let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_millis(500), call).await else {
            continue;
        };
        let Ok(theirs) =
            bincode::deserialize::<typ::StoredMembership>(&resp.into_inner().membership)
        else {
            continue;
        };
        if theirs.log_id() > &ours && theirs.membership().get_node(&server.member_id).is_none() {
            return true;
        }
    }
    false
}
