//! A member's removal from its cluster, made to take effect everywhere at once: the removed
//! member stops serving as soon as it learns of it, and it learns of it even when it never
//! receives the entry that removed it (the leader stops replicating to a member it removes).
//!
//! It learns in one of three ways, whichever comes first:
//! - it applies a membership without itself (the removal watch wakes on every applied
//!   membership);
//! - the leader that committed the removal tells it (`NotifyRemoved` on the peer port),
//!   before MemberRemove answers;
//! - it asks its peers, when it has lost its leader (as a removed member does once the
//!   heartbeats stop) or when raft no longer counts it as a voter: a peer's membership newer
//!   than its own and without it means it was removed (etcd's removed members learn it from
//!   their peers' "the member has been permanently removed from the cluster").
//!
//! A member that learns it was removed marks its data dir (it must never rejoin) and stops.

use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;

use crate::error::Error;
use crate::proto::oxcdpb::{MembersRequest, RemovedNotice};
use crate::server::EtcdServer;
use crate::typ::{self, MemberNode, StoredMembership};

use super::is_voter;

/// How often a member that may have been removed without applying it asks its peers.
const REMOVAL_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How long a peer gets to answer a removal question or notice.
const PEER_ANSWER_TIMEOUT: Duration = Duration::from_millis(500);

impl EtcdServer {
    /// Whether `theirs`, a membership another member applied, says this member was removed:
    /// it is newer than the one applied here and than the one this member joined through
    /// (older ones never included a member that joined later), and it lacks this member.
    fn removed_in(&self, theirs: &StoredMembership) -> bool {
        let ours = *self.state.read().membership.log_id();
        let joined_at = super::identity::joined_at(&self.member_dir());
        theirs.log_id() > &ours.max(joined_at)
            && theirs.membership().get_node(&self.member_id).is_none()
    }

    fn member_dir(&self) -> std::path::PathBuf {
        self.data_dir.join("member")
    }

    /// Stops this member for good: marks its data dir, then stops serving. Once is enough.
    fn leave_removed(&self, learned_from: &str) {
        if self.is_removed() {
            return;
        }
        tracing::error!(learned_from, "{}", Error::MemberRemoved);
        if let Err(e) = super::identity::mark_removed(&self.member_dir()) {
            tracing::error!(error = %e, "cannot mark the data dir as removed");
        }
        self.stop_removed();
    }

    /// A peer (the leader) says this member was removed, showing the membership without it;
    /// believed only if that membership shows it.
    pub fn removal_notice(&self, theirs: &StoredMembership) {
        if self.removed_in(theirs) {
            self.leave_removed("the leader's notice");
        }
    }

    /// On the leader, once a change removing `nodes` is committed and applied: tells each
    /// removed member, which may never receive that entry. Best effort, briefly: a member
    /// that is down or cut off learns it from its peers once it is back.
    pub(crate) async fn notify_removed(&self, nodes: &[MemberNode]) {
        if nodes.is_empty() {
            return;
        }
        let membership = self.state.read().membership.clone();
        let Ok(membership) = bincode::serialize(&membership) else {
            return;
        };
        let notices = nodes.iter().map(|node| {
            let notice = RemovedNotice {
                membership: membership.clone(),
            };
            async move {
                let mut client = self.peer(node).ok()?;
                let call = client.notify_removed(notice);
                tokio::time::timeout(PEER_ANSWER_TIMEOUT, call)
                    .await
                    .ok()?
                    .ok()
            }
        });
        for (node, told) in nodes.iter().zip(futures::future::join_all(notices).await) {
            if told.is_none() {
                tracing::warn!(member = %node.name, peer_urls = ?node.peer_urls, "could not tell a removed member it was removed; it will learn it from its peers");
            }
        }
    }
}

/// Watches for this member's removal (see the module doc), then stops the member.
pub async fn run_removal_watch(server: Arc<EtcdServer>) {
    let mut tick = tokio::time::interval(REMOVAL_CHECK_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = server.state.membership_applied.notified() => {}
        }
        if server.is_removed() {
            return;
        }
        let learned_from = match removal_question(&server) {
            Question::Removed => Some("its own applied membership"),
            Question::AskPeers(peers) => removed_by_peers(&server, &peers)
                .await
                .then_some("its peers"),
            Question::None => None,
        };
        if let Some(learned_from) = learned_from {
            server.leave_removed(learned_from);
            return;
        }
    }
}

/// What this member can tell of its removal by itself.
enum Question {
    /// It applied a membership without itself.
    Removed,
    /// It may have been removed without applying it: these peers know.
    AskPeers(Vec<MemberNode>),
    None,
}

fn removal_question(server: &EtcdServer) -> Question {
    let state = server.state.read();
    let config = state.membership.membership();
    if config.get_node(&server.member_id).is_none() {
        // A joining member replays older memberships that never included it.
        let joined_at = super::identity::joined_at(&server.member_dir());
        return match state.membership.log_id().is_some() && *state.membership.log_id() > joined_at {
            true => Question::Removed,
            false => Question::None,
        };
    }
    // A removed member may still know a leader: a leader stops replicating to a member as
    // soon as it appends the membership without it, so it may hold that entry uncommitted
    // (raft then counts it out, and it never times out the leader) or never get it.
    let (leader, raft_voter) = {
        let metrics = server.raft.metrics();
        let metrics = metrics.borrow_watched();
        let config = metrics.membership_config.membership();
        (metrics.current_leader, is_voter(config, server.member_id))
    };
    let applied_voter = is_voter(config, server.member_id);
    if leader.is_none() || !raft_voter || !applied_voter {
        let peers = config
            .nodes()
            .filter(|(id, _)| **id != server.member_id)
            .map(|(_, n)| n.clone())
            .collect();
        return Question::AskPeers(peers);
    }
    Question::None
}

/// True when some peer applied a newer membership without this member.
async fn removed_by_peers(server: &EtcdServer, peers: &[MemberNode]) -> bool {
    for node in peers {
        let Ok(mut client) = server.peer(node) else {
            continue;
        };
        let call = client.members(MembersRequest {});
        let Ok(Ok(resp)) = tokio::time::timeout(PEER_ANSWER_TIMEOUT, call).await else {
            continue;
        };
        let Ok(theirs) =
            bincode::deserialize::<typ::StoredMembership>(&resp.into_inner().membership)
        else {
            continue;
        };
        if server.removed_in(&theirs) {
            return true;
        }
    }
    false
}
