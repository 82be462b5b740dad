//! `--force-new-cluster`, etcd's flag: a member that survived the loss of its cluster's
//! majority becomes a one-member cluster, keeping its data, its member id and its cluster
//! id. Clients then have a cluster to write to again, and members are added back to it one
//! at a time, as to any cluster.
//!
//! Before raft starts, the member appends to its own log a membership of itself alone, under
//! a vote of a term past any it has seen, as a leader of that term would have. Raft takes
//! the last membership in the log as the one in force, so the member, its only voter, elects
//! itself and commits that entry with everything before it. Unlike etcd, which drops the
//! entries its log holds past its commit point, every entry this member has is kept: a
//! follower often holds entries the lost leader committed (and acknowledged) before this
//! member heard that they were committed. An entry that was never committed may so take
//! effect; its client never had an answer.
//!
//! Like etcd's, the flag acts at every start it is given: a member restarted with it loses
//! the members added since. Restart without it once the cluster has grown again.

use std::collections::{BTreeMap, BTreeSet};

use openraft::EntryPayload;
use openraft::RaftTypeConfig;
use openraft::vote::{RaftLeaderId, RaftLeaderIdExt};

use crate::error::{Error, Result};
use crate::raft::log_store::LogStore;
use crate::state::StateStore;
use crate::typ::{Entry, LogId, MemberNode, TypeConfig, Vote};

/// Makes `member_id` the only member of the membership in `log`. The log must not be empty:
/// a member with no data has no cluster to force.
pub fn force_new_cluster(log: &LogStore, state: &StateStore, member_id: u64) -> Result<()> {
    let Some(last) = log.last_log_id()? else {
        return Err(Error::InvalidArgument(
            "--force-new-cluster needs a member's data: this data dir has none".into(),
        ));
    };
    let applied = state.read().applied.map_or(0, |l| l.index);
    let mut membership = state.read().membership.membership().clone();
    for entry in log.entries_from(applied + 1)? {
        if let EntryPayload::Membership(m) = entry.payload {
            membership = m;
        }
    }
    let me: MemberNode = membership.get_node(&member_id).cloned().ok_or_else(|| {
        Error::InvalidArgument(format!(
            "--force-new-cluster: member {member_id:x} is not in its cluster's membership"
        ))
    })?;
    let alone = openraft::Membership::new(
        vec![BTreeSet::from([member_id])],
        BTreeMap::from([(
            member_id,
            MemberNode {
                promote_when_ready: false,
                ..me
            },
        )]),
    )
    .map_err(Error::internal)?;
    let seen = log
        .stored_vote()?
        .map_or(0, |v| v.leader_id().term())
        .max(last.committed_leader_id().term());
    let term = seen + 1;
    let leader = <<TypeConfig as RaftTypeConfig>::LeaderId as RaftLeaderIdExt>::new_committed(
        term, member_id,
    );
    let entry = Entry {
        log_id: LogId::new(leader, last.index + 1),
        payload: EntryPayload::Membership(alone),
    };
    log.force_append(&Vote::new(term, member_id), entry)?;
    tracing::warn!(
        member = %format!("{member_id:x}"),
        index = last.index + 1,
        term,
        "--force-new-cluster: this member is now its cluster's only member, with its data kept"
    );
    Ok(())
}
