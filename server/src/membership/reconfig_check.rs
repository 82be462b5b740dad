//! etcd's `--strict-reconfig-check`: membership changes that would risk the quorum are
//! refused, judged by the members that have started and, on the leader, by which voters have
//! been answering it without a break for the last five seconds.

use std::time::{Duration, Instant};

use openraft::ChangeMembers;

use crate::error::{Error, Result};
use crate::server::EtcdServer;

use super::Change;

/// etcd's HealthInterval: a member counts as connected once it has answered the leader
/// without a break for this long.
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

    /// On the leader: how many of the voting members (itself included) have answered it
    /// without a break since `HEALTH_INTERVAL` ago (etcd's `numConnectedSince`), and how many
    /// voting members there are. `None` on other members, which do not replicate to the
    /// others and so cannot tell.
    fn connected_voters(&self) -> Option<(usize, usize)> {
        if self.leader() != Some(self.member_id) {
            return None;
        }
        let voting = self.voting_members();
        // A process younger than the interval has no peer connected for that long.
        let since = Instant::now().checked_sub(HEALTH_INTERVAL);
        let connected = voting
            .iter()
            .filter(|(id, _)| *id == self.member_id || self.connected_since(*id, since))
            .count();
        Some((connected, voting.len()))
    }

    /// Whether peer `id` has answered without a break since `since`.
    fn connected_since(&self, id: u64, since: Option<Instant>) -> bool {
        let active = self.peer_activity.active_since(id);
        matches!((active, since), (Some(active), Some(since)) if active <= since)
    }

    /// etcd's `--strict-reconfig-check` connectivity rules (`mayAddMember`,
    /// `mayRemoveMember`), checked by the leader: a member is added only while every voting
    /// member has been connected for [`HEALTH_INTERVAL`], and a voter is removed only if the
    /// voters connected that long, less the one removed, still make a quorum of the others. A
    /// voter that is down (not answering at all) may always go: it is no part of the active
    /// quorum. Right after start, or after a change of leader, nothing has been connected for
    /// long enough: changes are refused until it has ("unhealthy cluster"; clients retry).
    pub(crate) fn check_connected(&self, change: &Change) -> Result<()> {
        if !self.strict_reconfig_check {
            return Ok(());
        }
        let Some((connected, voting)) = self.connected_voters() else {
            return Ok(());
        };
        match change {
            ChangeMembers::AddNodes(_) if connected < voting => {
                tracing::warn!(
                    connected,
                    voting,
                    "rejecting member add request; local member has not been connected to all peers, reconfigure breaks active quorum"
                );
                Err(Error::UnhealthyCluster)
            }
            ChangeMembers::RemoveVoters(ids) => {
                for id in ids {
                    let down =
                        *id != self.member_id && self.peer_activity.active_since(*id).is_none();
                    if !down && connected.saturating_sub(1) < 1 + voting.saturating_sub(1) / 2 {
                        tracing::warn!(
                            member = %format!("{id:x}"),
                            connected,
                            voting,
                            "rejecting member remove request; local member has not been connected to all peers, reconfigure breaks active quorum"
                        );
                        return Err(Error::UnhealthyCluster);
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
