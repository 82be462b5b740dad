//! etcd's `--strict-reconfig-check`: membership changes that would risk the quorum are
//! refused, judged by the members that have started and, on the leader, by which voters it
//! still hears from.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::ChangeMembers;
use openraft::async_runtime::WatchReceiver;

use crate::error::{Error, Result};
use crate::server::EtcdServer;

use super::Change;

/// etcd's HealthInterval: a member counts as connected when it answered the leader within it.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

impl EtcdServer {
    pub(crate) fn check_started_quorum(
        &self,
        adding: Option<bool>,
        removing: Option<u64>,
    ) -> Result<()> {
        if !self.strict_reconfig_check {
            return Ok(());
        }
        let voting = self.voting_members();
        let kept = voting.iter().filter(|(id, _)| Some(*id) != removing);
        let (mut members, mut started) =
            kept.fold((0, 0), |(n, s), (_, st)| (n + 1, s + *st as usize));
        if let Some(new_started) = adding {
            members += 1;
            started += new_started as usize;
            // Adding a second member to a one-member cluster (restoring from a backup).
            if !new_started && started == 1 && members == 2 {
                return Ok(());
            }
        }
        if started < members / 2 + 1 {
            return Err(Error::NotEnoughStartedMembers);
        }
        Ok(())
    }

    /// On the leader: the voters (itself included) that answered within [`HEALTH_INTERVAL`].
    /// `None` on other members, which cannot see it.
    fn connected_voters(&self) -> Option<BTreeSet<u64>> {
        let metrics = self.raft.metrics().borrow_watched().clone();
        if metrics.current_leader != Some(self.member_id) {
            return None;
        }
        let heartbeat = metrics.heartbeat.unwrap_or_default();
        let voters = metrics.membership_config.membership().voter_ids();
        Some(
            voters
                .filter(|id| {
                    *id == self.member_id
                        || heartbeat
                            .get(id)
                            .cloned()
                            .flatten()
                            .is_some_and(|at| openraft::Instant::elapsed(&*at) <= HEALTH_INTERVAL)
                })
                .collect(),
        )
    }

    /// etcd's `--strict-reconfig-check` connectivity rules, checked by the leader: members
    /// are added only while every voter is connected, and a connected voter is removed only
    /// if the connected ones left still make a quorum (a voter that is down may always go).
    pub(crate) fn check_connected(&self, change: &Change) -> Result<()> {
        if !self.strict_reconfig_check {
            return Ok(());
        }
        let Some(connected) = self.connected_voters() else {
            return Ok(());
        };
        let voters = self
            .state
            .read()
            .membership
            .membership()
            .voter_ids()
            .count();
        match change {
            ChangeMembers::AddNodes(_) if connected.len() < voters => Err(Error::UnhealthyCluster),
            ChangeMembers::RemoveVoters(ids) => {
                for id in ids {
                    let down = *id != self.member_id && !connected.contains(id);
                    if !down && connected.len() - 1 < 1 + (voters - 1) / 2 {
                        return Err(Error::UnhealthyCluster);
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
