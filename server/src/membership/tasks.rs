//! The membership loops every member runs: publishing its name and client URLs, and
//! promoting members added as voters once they caught up (on the leader). Noticing its own
//! removal is [`super::removal`]'s.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::ChangeMembers;

use crate::error::{Error, Result};
use crate::server::EtcdServer;

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
