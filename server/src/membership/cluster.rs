//! Membership changes as etcd's Cluster service offers them, carried out with raft's joint
//! consensus. Only the leader changes membership; other members forward the change to it.
//!
//! Differences from etcd, both on the side of safety: a member added as a voter joins raft as
//! a learner and the leader promotes it once it has caught up (it is reported as a voter
//! throughout), and raft itself refuses a second change while one is in progress.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::error::ChangeMembershipError;
use openraft::{ChangeMembers, Precondition};

use crate::error::{Error, Result};
use crate::proto::etcdserverpb::Member;
use crate::proto::oxcdpb::RaftBytes;
use crate::server::EtcdServer;
use crate::typ::{self, MemberNode, TypeConfig};

use super::{Change, is_voter, removes};

/// etcd's learner readiness: a learner may be promoted once it has 90% of the leader's log.
const READY_FRACTION: f64 = 0.9;
/// etcd allows one learner at a time.
const MAX_LEARNERS: usize = 1;
/// How soon a membership change that had to wait for another one tries again.
const CHANGE_RETRY_INTERVAL: Duration = Duration::from_millis(50);

impl EtcdServer {
    /// The members as etcd reports them, from the applied membership.
    pub fn members(&self) -> Vec<Member> {
        let membership = self.state.read().membership.clone();
        let config = membership.membership();
        let voters: BTreeSet<u64> = config.voter_ids().collect();
        config
            .nodes()
            .map(|(id, node)| Member {
                id: *id,
                name: node.name.clone(),
                peer_ur_ls: node.peer_urls.clone(),
                client_ur_ls: node.client_urls.clone(),
                is_learner: !voters.contains(id) && !node.promote_when_ready,
            })
            .collect()
    }

    /// MemberList's members, read after a read barrier whenever there is a leader, so that
    /// no member lists one whose MemberRemove has answered (or misses one MemberAdd added).
    /// etcd 3.4 answers from the applied membership alone, and a member that lags lists the
    /// removed member a little longer. With `linearizable` (etcd 3.5's flag) the barrier
    /// must pass; without, a member whose leader does not answer within an election timeout
    /// answers from what it has applied, as etcd 3.4 does, rather than not at all.
    pub async fn members_after_barrier(&self, linearizable: bool) -> Result<Vec<Member>> {
        if linearizable {
            self.read_index().await?;
        } else if self.leader().is_some() {
            let barrier = tokio::time::timeout(self.election_timeout, self.read_index()).await;
            if !matches!(barrier, Ok(Ok(()))) {
                tracing::debug!("MemberList answered without a read barrier: no leader answered");
            }
        }
        Ok(self.members())
    }

    /// etcd's voting members (voters, and members added as voters not yet promoted) as
    /// (id, started); a member has started once it published its name.
    pub(crate) fn voting_members(&self) -> Vec<(u64, bool)> {
        self.members()
            .iter()
            .filter(|m| !m.is_learner)
            .map(|m| (m.id, !m.name.is_empty()))
            .collect()
    }

    /// etcd's `--strict-reconfig-check` quorum rules, on the members as applied here: a
    /// change may not leave fewer started voting members than a quorum of the new set.
    /// `adding` counts a new (or promoted, then also started) voter; `removing` drops one.
    pub(crate) fn member_node(&self, id: u64) -> Option<MemberNode> {
        self.state
            .read()
            .membership
            .membership()
            .get_node(&id)
            .cloned()
    }

    /// Applies `change` through the leader. Returns once this member has applied it too, so
    /// that what it reports next (MemberList, the members in the response) includes it.
    pub async fn change_membership(&self, change: Change) -> Result<()> {
        let deadline = Instant::now() + self.request_timeout;
        loop {
            match self.change_membership_local(change.clone()).await {
                Err(Error::NotLeader) => {}
                other => return other.map(|_| ()),
            }
            let attempt = match self.leader_member() {
                Some((id, node)) if id != self.member_id => {
                    self.forward_membership_change(&node, &change, deadline)
                        .await
                }
                _ => Err(Error::NoLeader),
            };
            match attempt {
                Err(Error::NoLeader) => self.pause_for_leader(deadline).await?,
                other => return other,
            }
        }
    }

    /// Has the leader `node` apply `change`, then waits until this member has applied it.
    /// "No leader" when `node` no longer leads or cannot be reached (the change was not made).
    async fn forward_membership_change(
        &self,
        node: &MemberNode,
        change: &Change,
        deadline: Instant,
    ) -> Result<()> {
        let data = bincode::serialize(change).map_err(Error::internal)?;
        let resp = self
            .peer(node)?
            .change_membership(RaftBytes { data })
            .await
            .map_err(crate::server::propose::forwarded_proposal_error)?;
        let index: u64 = bincode::deserialize(&resp.into_inner().data).map_err(Error::internal)?;
        if removes(change, self.member_id) {
            // This member is out: the leader no longer replicates to it, so it may never
            // apply its own removal. The leader's answer is the answer (etcd answers a
            // member removing itself, then stops).
            return Ok(());
        }
        tokio::time::timeout_at(deadline.into(), self.state.wait_applied(index))
            .await
            .map_err(|_| Error::Timeout)?
    }

    /// Applies `change` on this member, which must lead; returns the index of the log entry
    /// that completed it. Raft takes one change at a time (and none before a new leader has
    /// committed in its term), so a change waits its turn, as etcd queues them.
    pub async fn change_membership_local(&self, change: Change) -> Result<u64> {
        self.check_connected(&change)?;
        // Only the leader sees replication progress, so it checks promotions forwarded to it.
        if let ChangeMembers::AddVoterIds(ids) = &change {
            for id in ids {
                if !self.learner_ready(*id)? {
                    return Err(Error::LearnerNotReady);
                }
            }
        }
        let removed = self.nodes_removed_by(&change);
        let deadline = Instant::now() + self.request_timeout;
        loop {
            let preconditions = self.set_nodes_preconditions(&change)?;
            let write = self
                .raft
                .change_membership_if(change.clone(), false, preconditions);
            let err = match tokio::time::timeout_at(deadline.into(), write).await {
                Err(_) => return Err(Error::Timeout),
                Ok(Ok(resp)) => {
                    // Before answering, so that the removed member has stopped serving by
                    // the time MemberRemove answers (unless it cannot be reached).
                    self.notify_removed(&removed).await;
                    return Ok(resp.log_id.index);
                }
                Ok(Err(e)) => e,
            };
            match err.api_error() {
                Some(typ::ClientWriteError::ForwardToLeader(_)) => return Err(Error::NotLeader),
                Some(
                    typ::ClientWriteError::ChangeMembershipError(
                        ChangeMembershipError::InProgress(_)
                        | ChangeMembershipError::UncommittedLeaderLog(_),
                    )
                    | typ::ClientWriteError::PreconditionFailed(_),
                ) => {
                    tokio::time::sleep_until(
                        deadline.min(Instant::now() + CHANGE_RETRY_INTERVAL).into(),
                    )
                    .await
                }
                Some(other) => return Err(Error::Internal(other.to_string())),
                None => return Err(Error::Stopped),
            }
        }
    }

    /// For a SetNodes change (publishing attributes, MemberUpdate), on the leader: refuses it
    /// if a node it names is not in the membership raft is using, and makes it conditional on
    /// that membership staying the one checked. Raft's SetNodes adds a node it does not know,
    /// as a learner: a removed member's late publish would bring it back into the cluster.
    fn set_nodes_preconditions(&self, change: &Change) -> Result<Vec<Precondition<TypeConfig>>> {
        let ChangeMembers::SetNodes(nodes) = change else {
            return Ok(Vec::new());
        };
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        if metrics.current_leader != Some(self.member_id) {
            // Raft sends it to the leader, which checks there.
            return Ok(Vec::new());
        }
        let effective = &metrics.membership_config;
        if nodes
            .keys()
            .any(|id| effective.membership().get_node(id).is_none())
        {
            return Err(Error::MemberNotFound);
        }
        Ok(vec![Precondition::LastMembershipLogId {
            last_membership_log_id: *effective.log_id(),
        }])
    }

    /// The other members `change` takes out of the cluster, with their nodes.
    fn nodes_removed_by(&self, change: &Change) -> Vec<MemberNode> {
        let ids = match change {
            ChangeMembers::RemoveVoters(ids) | ChangeMembers::RemoveNodes(ids) => ids,
            _ => return Vec::new(),
        };
        ids.iter()
            .filter(|id| **id != self.member_id)
            .filter_map(|id| self.member_node(*id))
            .collect()
    }

    /// The leader's id and node, if one is known.
    pub fn leader_member(&self) -> Option<(u64, MemberNode)> {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let leader = metrics.current_leader?;
        let node = metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .cloned()?;
        Some((leader, node))
    }

    /// etcd's MemberAdd: a new member with these peer URLs, joining as a learner or a voter.
    pub async fn member_add(&self, peer_urls: Vec<String>, is_learner: bool) -> Result<Member> {
        let peer_urls: Vec<String> = peer_urls
            .iter()
            .map(|u| u.trim_end_matches('/').to_string())
            .collect();
        if peer_urls.is_empty() {
            return Err(Error::InvalidArgument(
                "etcdserver: member peer URLs are not provided".into(),
            ));
        }
        let members = self.members();
        if members
            .iter()
            .any(|m| m.peer_ur_ls.iter().any(|u| peer_urls.contains(u)))
        {
            return Err(Error::PeerUrlExists);
        }
        if is_learner && members.iter().filter(|m| m.is_learner).count() >= MAX_LEARNERS {
            return Err(Error::TooManyLearners);
        }
        if !is_learner {
            self.check_started_quorum(Some(false), None)?;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let id = super::ids::member_id_at(&peer_urls, &self.cluster_token, now);
        if members.iter().any(|m| m.id == id) {
            return Err(Error::MemberExists);
        }
        let node = MemberNode {
            name: String::new(),
            peer_urls: peer_urls.clone(),
            client_urls: Vec::new(),
            promote_when_ready: !is_learner,
        };
        self.change_membership(ChangeMembers::AddNodes(BTreeMap::from([(id, node)])))
            .await?;
        Ok(Member {
            id,
            name: String::new(),
            peer_ur_ls: peer_urls,
            client_ur_ls: Vec::new(),
            is_learner,
        })
    }

    /// etcd's MemberRemove.
    pub async fn member_remove(&self, id: u64) -> Result<()> {
        let config = self.state.read().membership.membership().clone();
        if config.get_node(&id).is_none() {
            return Err(Error::MemberNotFound);
        }
        if is_voter(&config, id) {
            let remaining = config.voter_ids().filter(|v| *v != id).count();
            if remaining == 0 {
                return Err(Error::NotEnoughStartedMembers);
            }
            self.check_started_quorum(None, Some(id))?;
            self.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])))
                .await?;
        }
        // Removing itself, this member may never learn the outcome (see above): done.
        if id != self.member_id && self.member_node(id).is_some() {
            self.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])))
                .await?;
        }
        Ok(())
    }

    /// etcd's MemberUpdate: new peer URLs for a member.
    pub async fn member_update(&self, id: u64, peer_urls: Vec<String>) -> Result<()> {
        let mut node = self.member_node(id).ok_or(Error::MemberNotFound)?;
        let peer_urls: Vec<String> = peer_urls
            .iter()
            .map(|u| u.trim_end_matches('/').to_string())
            .collect();
        if self
            .members()
            .iter()
            .any(|m| m.id != id && m.peer_ur_ls.iter().any(|u| peer_urls.contains(u)))
        {
            return Err(Error::PeerUrlExists);
        }
        node.peer_urls = peer_urls;
        self.change_membership(ChangeMembers::SetNodes(BTreeMap::from([(id, node)])))
            .await
    }

    /// etcd's MemberPromote: a learner that has caught up becomes a voter.
    pub async fn member_promote(&self, id: u64) -> Result<()> {
        let config = self.state.read().membership.membership().clone();
        if config.get_node(&id).is_none() {
            return Err(Error::MemberNotFound);
        }
        if is_voter(&config, id) {
            return Err(Error::MemberNotLearner);
        }
        if !self.learner_ready(id)? {
            return Err(Error::LearnerNotReady);
        }
        self.check_started_quorum(Some(true), None)?;
        self.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])))
            .await
    }

    /// Whether learner `id` has caught up, as the leader sees it (asked of the leader when
    /// this member is not it).
    pub(crate) fn learner_ready(&self, id: u64) -> Result<bool> {
        let metrics = self.raft.metrics().borrow_watched().clone();
        if metrics.current_leader != Some(self.member_id) {
            // Followers cannot see replication progress; the leader checks the AddVoterIds
            // change when it is forwarded (see `change_membership_local`).
            return Ok(true);
        }
        let leader_index = metrics.last_log_index.unwrap_or(0);
        let matched = metrics
            .replication
            .as_ref()
            .and_then(|r| r.get(&id).cloned().flatten())
            .map(|l| l.index)
            .unwrap_or(0);
        Ok(matched as f64 >= leader_index as f64 * READY_FRACTION)
    }

    /// Records this member's name and client URLs in the membership, as etcd members publish
    /// their attributes after start.
    /// True when this member is a learner as etcd reports it (etcd refuses most client
    /// requests on one). A member added as a voter is not, even while raft still keeps it a
    /// learner until it catches up: MemberList calls it a voter, and it serves like one.
    pub fn is_learner(&self) -> bool {
        let state = self.state.read();
        let config = state.membership.membership();
        let pending_voter = config
            .get_node(&self.member_id)
            .is_some_and(|n| n.promote_when_ready);
        config.get_node(&self.member_id).is_some()
            && !pending_voter
            && !is_voter(config, self.member_id)
    }

    /// etcd's check for RPCs a learner does not serve.
    pub fn reject_if_learner(&self) -> Result<()> {
        if self.is_learner() {
            Err(Error::NotSupportedForLearner)
        } else {
            Ok(())
        }
    }

    /// etcd's MoveLeader: hands leadership to voter `to`, waiting until it has taken over.
    pub async fn move_leader(&self, to: u64) -> Result<()> {
        if self.leader() != Some(self.member_id) {
            return Err(Error::NotLeader);
        }
        let config = self.state.read().membership.membership().clone();
        // etcd: an unknown member is as bad a transferee as a learner.
        if !is_voter(&config, to) {
            return Err(Error::BadLeaderTransferee);
        }
        if to == self.member_id {
            return Ok(());
        }
        self.raft
            .trigger()
            .transfer_leader(to)
            .await
            .map_err(|_| Error::Stopped)?;
        let mut metrics = self.raft.metrics();
        let wait = async {
            loop {
                if metrics.borrow_watched().current_leader == Some(to) {
                    return Ok(());
                }
                if metrics.changed().await.is_err() {
                    return Err(Error::Stopped);
                }
            }
        };
        tokio::time::timeout(self.request_timeout, wait)
            .await
            .map_err(|_| Error::Timeout)?
    }
}
