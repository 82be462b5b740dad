//! Cluster membership as etcd has it: member and cluster ids, this member's identity on
//! disk, and the Cluster service's operations, carried out with raft's joint consensus.
//!
//! # Layout
//! - [`ids`]: etcd's member and cluster id derivation and `--initial-cluster`;
//! - [`identity`]: this member's ids fixed in its data dir, joining an existing cluster, and
//!   the marker of a removed member;
//! - [`cluster`]: MemberList/Add/Remove/Update/Promote and MoveLeader on the member handle;
//! - [`reconfig_check`]: `--strict-reconfig-check`'s quorum and connectivity rules;
//! - [`tasks`]: the background loops: publishing this member's attributes and promoting
//!   caught-up members;
//! - [`removal`]: a removed member learning of its removal (from its own apply, the leader's
//!   notice or its peers) and stopping.

pub mod cluster;
pub mod force;
pub mod identity;
pub mod ids;
pub mod reconfig_check;
pub mod removal;
pub mod tasks;

use openraft::ChangeMembers;

use crate::typ::MemberNode;

/// A membership change, as raft takes it.
pub type Change = ChangeMembers<u64, MemberNode>;

/// True when `id` votes in `config` (in either half of a joint configuration). Unlike
/// `voter_ids`, allocates nothing: it is asked on every client request (`is_learner`).
pub(crate) fn is_voter(config: &openraft::Membership<u64, MemberNode>, id: u64) -> bool {
    config
        .get_joint_config()
        .iter()
        .any(|voters| voters.contains(&id))
}

/// Whether `change` takes member `id` out of the cluster (voters are removed with their
/// node: changes are made with `retain: false`).
pub(crate) fn removes(change: &Change, id: u64) -> bool {
    match change {
        ChangeMembers::RemoveVoters(ids) | ChangeMembers::RemoveNodes(ids) => ids.contains(&id),
        _ => false,
    }
}
