//! The planner: from what the operator observes (its spec, the recorded operation, each
//! member's pod, volume, place in the member list and health) to the one next step. Pure: no
//! I/O and no clock of its own, so every rule is a table-test row.
//!
//! The rules that keep data safe live here:
//! - only the seed is ever started as a new cluster, and only before a cluster id is recorded;
//! - every other member joins as a learner and is promoted once caught up;
//! - one operation at a time, recorded before its first action and finished before the next
//!   edit of the spec is followed;
//! - no membership change without quorum, or while a voter other than the one being
//!   removed is unhealthy;
//! - a member whose data is gone is removed and replaced, never restarted empty;
//! - a volume of another cluster is never used.

use k8s_openapi::jiff::SignedDuration;

use crate::crd::{Operation, OperationKind, Retention};

mod model;
mod recovery;
mod restore;
#[cfg(test)]
mod tests;

pub use model::*;
pub use recovery::{
    APPROVAL_ANNOTATION, LATEST_BACKUP, OWN_RESTORE_PREFIX, RecoveryPlan, recovery_plan,
};

/// How long an operation may take before Progressing reports it stuck.
pub const PROGRESS_DEADLINE: SignedDuration = SignedDuration::from_mins(10);

/// The reason of a roll for a new configuration (a roll for a new version says "upgrade to
/// <version>"): what tells the two apart when the roll ends.
pub const CONFIG_CHANGED: &str = "configuration changed";

/// A learner is promoted once it has applied this share of what the leader has.
const CATCH_UP_PERCENT: u64 = 90;

pub fn member_name(cluster: &str, ordinal: u32) -> String {
    format!("{cluster}-{ordinal}")
}

pub fn plan(o: &Observed) -> Step {
    if let Some(m) = o
        .members
        .iter()
        .find(|m| matches!(m.volume, Volume::Foreign { .. }))
    {
        let Volume::Foreign { owner } = &m.volume else {
            unreachable!()
        };
        return Step::Refuse {
            reason: "ForeignVolume",
            message: format!(
                "PersistentVolumeClaim {} belongs to another cluster (uid {owner}); it is left \
                 alone and no member will use it: delete it or rename the EtcdCluster",
                m.name
            ),
        };
    }
    if let Some(step) = restore::step(o) {
        return step;
    }
    plan_cluster(o)
}

/// The plan for the members as they are, an in-place restore aside.
fn plan_cluster(o: &Observed) -> Step {
    if o.cluster_id.is_some() && !o.list_confirmed {
        if let Some(op) = &o.operation
            && op.kind == OperationKind::ForceNewCluster
        {
            return continue_operation(o, op);
        }
        return without_quorum(o);
    }
    match (&o.operation, o.cluster_id) {
        (Some(op), _) => continue_operation(o, op),
        (None, None) => begin(o, OperationKind::Bootstrap, o.next_ordinal, "new cluster"),
        (None, Some(_)) => next_operation(o),
    }
}

impl Observed {
    fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    fn voters(&self) -> impl Iterator<Item = &Member> {
        self.members
            .iter()
            .filter(|m| m.listed.is_some_and(|l| !l.learner))
    }

    fn leader(&self) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.health.is_some_and(|h| h.leader))
    }

    /// Whether the voters other than `except` that answer are a quorum of the voters that
    /// remain once `except` is gone.
    fn quorum_without(&self, except: Option<&str>) -> bool {
        let kept: Vec<&Member> = self
            .voters()
            .filter(|m| Some(m.name.as_str()) != except)
            .collect();
        let healthy = kept.iter().filter(|m| m.health.is_some()).count();
        healthy > kept.len() / 2
    }

    fn unhealthy_voter(&self, except: Option<&str>) -> Option<&Member> {
        self.voters()
            .find(|m| m.health.is_none() && Some(m.name.as_str()) != except)
    }

    fn operation(&self, kind: OperationKind, member: &str, reason: &str) -> Operation {
        Operation {
            kind,
            member: member.to_string(),
            reason: reason.to_string(),
            target_replicas: self.want.replicas as i32,
            target_version: self.want.version.clone(),
            started: self.now.into(),
            deadline: (self.now + PROGRESS_DEADLINE).into(),
        }
    }
}

fn begin(o: &Observed, kind: OperationKind, ordinal: u32, reason: &str) -> Step {
    Step::Begin(o.operation(kind, &member_name(&o.cluster, ordinal), reason))
}

fn wait(reason: &'static str, message: String) -> Step {
    Step::Wait { reason, message }
}

fn unhealthy(o: &Observed, except: Option<&str>) -> Option<Step> {
    if !o.quorum_without(except) {
        let voters = o.voters().count();
        let healthy = o.voters().filter(|m| m.health.is_some()).count();
        return Some(Step::Refuse {
            reason: "QuorumLost",
            message: format!(
                "{healthy} of {voters} voting members answer: no membership change until a \
                 quorum is back"
            ),
        });
    }
    o.unhealthy_voter(except).map(|m| {
        wait(
            "MemberUnhealthy",
            format!(
                "member {} does not answer; waiting for it before changing anything",
                m.name
            ),
        )
    })
}

/// The next step of the recorded operation.
fn continue_operation(o: &Observed, op: &Operation) -> Step {
    let member = o.member(&op.member);
    match op.kind {
        OperationKind::Bootstrap => bootstrap(o, &op.member, member),
        OperationKind::AddMember => add_member(o, &op.member, member),
        OperationKind::RemoveMember | OperationKind::ReplaceMember => remove_member(o, op, member),
        OperationKind::RollMember => roll_member(o, &op.member, member),
        OperationKind::ForceNewCluster => recovery::force(o, &op.member, member),
    }
}

fn bootstrap(o: &Observed, name: &str, seed: Option<&Member>) -> Step {
    let Some(seed) = seed.filter(|m| m.pod.is_some()) else {
        return Step::CreateSeed {
            member: name.to_string(),
        };
    };
    match (seed.health, o.seen_cluster_id) {
        (Some(_), Some(id)) => Step::Finish {
            cluster_id: Some(id),
        },
        // Started with a version since changed (an image that could not be pulled, say):
        // its volume stays, its pod is made again from the current spec.
        (None, _) if stale_and_down(o, seed) => Step::DeletePod {
            member: name.to_string(),
        },
        _ => wait(
            "SeedStarting",
            format!("waiting for the seed member {name} to start"),
        ),
    }
}

/// A member that does not answer and whose pod runs another version than the spec's.
fn stale_and_down(o: &Observed, m: &Member) -> bool {
    m.health.is_none() && m.pod.as_ref().is_some_and(|p| p.version != o.want.version)
}

fn add_member(o: &Observed, name: &str, member: Option<&Member>) -> Step {
    let Some(listed) = member.and_then(|m| m.listed) else {
        if let Some(step) = unhealthy(o, None) {
            return step;
        }
        return Step::AddLearner {
            member: name.to_string(),
        };
    };
    let member = member.expect("listed");
    if member.pod.is_none() {
        return Step::StartMember {
            member: name.to_string(),
            id: listed.id,
            require_data: listed.started,
        };
    }
    let Some(health) = member.health else {
        if stale_and_down(o, member) {
            return Step::DeletePod {
                member: name.to_string(),
            };
        }
        return wait(
            "MemberStarting",
            format!("waiting for member {name} to start"),
        );
    };
    if !listed.learner {
        return Step::Finish { cluster_id: None };
    }
    let leader_index = o
        .leader()
        .and_then(|l| l.health)
        .map_or(0, |h| h.applied_index);
    if health.applied_index * 100 < leader_index * CATCH_UP_PERCENT {
        return wait(
            "LearnerCatchingUp",
            format!(
                "learner {name} has applied {} of the leader's {leader_index} entries",
                health.applied_index
            ),
        );
    }
    Step::Promote {
        member: name.to_string(),
        id: listed.id,
    }
}

fn remove_member(o: &Observed, op: &Operation, member: Option<&Member>) -> Step {
    let name = op.member.as_str();
    if let Some(listed) = member.and_then(|m| m.listed) {
        let member = member.expect("listed");
        if member.health.is_some_and(|h| h.leader) {
            let successor = o.voters().find(|m| m.name != name && m.health.is_some());
            return match successor.and_then(|m| m.listed) {
                Some(l) => Step::MoveLeader {
                    from: name.to_string(),
                    to: l.id,
                },
                None => wait("NoSuccessor", "no healthy voter to take leadership".into()),
            };
        }
        if !listed.learner
            && let Some(step) = unhealthy(o, Some(name))
        {
            return step;
        }
        return Step::RemoveFromCluster {
            member: name.to_string(),
            id: listed.id,
        };
    }
    let Some(member) = member else {
        return Step::Finish { cluster_id: None };
    };
    if member.pod.is_some() {
        return Step::DeletePod {
            member: name.to_string(),
        };
    }
    let emptied = op.kind == OperationKind::ReplaceMember;
    if member.volume == Volume::Ours && (emptied || o.want.when_scaled == Retention::Delete) {
        return Step::DeleteVolume {
            member: name.to_string(),
        };
    }
    Step::Finish { cluster_id: None }
}

fn roll_member(o: &Observed, name: &str, member: Option<&Member>) -> Step {
    let Some((member, listed)) = member.and_then(|m| Some((m, m.listed?))) else {
        return Step::Finish { cluster_id: None };
    };
    match &member.pod {
        Some(pod) if !current(o, pod) => {
            if member.health.is_some_and(|h| h.leader) && o.voters().count() > 1 {
                let successor = o.voters().find(|m| m.name != name && m.health.is_some());
                if let Some(l) = successor.and_then(|m| m.listed) {
                    return Step::MoveLeader {
                        from: name.to_string(),
                        to: l.id,
                    };
                }
            }
            // The member stays a voter while it restarts: every other one must answer.
            if let Some(m) = o.unhealthy_voter(Some(name)) {
                let message = format!("member {} does not answer; {name} waits for it", m.name);
                return wait("MemberUnhealthy", message);
            }
            Step::DeletePod {
                member: name.to_string(),
            }
        }
        Some(_) if member.health.is_some() => Step::Finish { cluster_id: None },
        Some(_) => wait(
            "MemberRestarting",
            format!("waiting for member {name} to answer"),
        ),
        None => Step::StartMember {
            member: name.to_string(),
            id: listed.id,
            require_data: true,
        },
    }
}

fn current(o: &Observed, pod: &Pod) -> bool {
    pod.version == o.want.version && pod.config == o.want.config
}

/// A listed member whose pod is gone restarts on its volume: safe even without quorum, and
/// how a quorum lost to lost pods comes back.
fn restart_lost_pod(o: &Observed) -> Option<Step> {
    o.members
        .iter()
        .find_map(|m| match (m.listed, &m.pod, &m.volume) {
            (Some(listed), None, Volume::Ours) if !o.want.ephemeral => Some(Step::StartMember {
                member: m.name.clone(),
                id: listed.id,
                require_data: listed.started,
            }),
            _ => None,
        })
}

/// No member could confirm the member list (no quorum): lost pods of listed members are
/// started again on their volumes; when a majority is gone for good, `spec.recovery` says
/// what happens.
fn without_quorum(o: &Observed) -> Step {
    restart_lost_pod(o).unwrap_or_else(|| recovery::quorum_lost(o))
}

/// No operation in progress: what the spec and the members call for next.
fn next_operation(o: &Observed) -> Step {
    if let Some(step) = restart_lost_pod(o) {
        return step;
    }
    // Pods and volumes of members no longer listed: what a finished removal left.
    if let Some(m) = o
        .members
        .iter()
        .find(|m| m.listed.is_none() && m.pod.is_some())
    {
        return Step::DeletePod {
            member: m.name.clone(),
        };
    }
    if let Some(m) = o.members.iter().find(|m| {
        m.listed.is_none() && m.volume == Volume::Ours && o.want.when_scaled == Retention::Delete
    }) {
        return Step::DeleteVolume {
            member: m.name.clone(),
        };
    }
    if let Some(step) = unhealthy_before_change(o) {
        return step;
    }
    if let Some(m) = o.members.iter().find(|m| data_gone(o, m)) {
        let reason = format!("the data of member {} is gone", m.name);
        return Step::Begin(o.operation(OperationKind::ReplaceMember, &m.name, &reason));
    }
    if let Some(m) = o
        .members
        .iter()
        .find(|m| m.listed.is_some_and(|l| l.learner))
    {
        let reason = "a learner left from an earlier addition";
        return Step::Begin(o.operation(OperationKind::AddMember, &m.name, reason));
    }
    if let Some(step) = unhealthy(o, None) {
        return step;
    }
    let stale_config = |m: &&Member| m.pod.as_ref().is_some_and(|p| p.config != o.want.config);
    if let Some(m) = rollout_order(o).into_iter().find(stale_config) {
        return Step::Begin(o.operation(OperationKind::RollMember, &m.name, CONFIG_CHANGED));
    }
    let voters = o.voters().count();
    if voters < o.want.replicas {
        return begin(o, OperationKind::AddMember, o.next_ordinal, "scale up");
    }
    if voters > o.want.replicas {
        let victim = rollout_order(o).into_iter().next().expect("a voter");
        return Step::Begin(o.operation(OperationKind::RemoveMember, &victim.name, "scale down"));
    }
    let stale_version = |m: &&Member| m.pod.as_ref().is_some_and(|p| p.version != o.want.version);
    if let Some(m) = rollout_order(o).into_iter().find(stale_version) {
        let reason = format!("upgrade to {}", o.want.version);
        let kind = if o.want.ephemeral {
            OperationKind::ReplaceMember
        } else {
            OperationKind::RollMember
        };
        return Step::Begin(o.operation(kind, &m.name, &reason));
    }
    if o.want.auth.is_some() && !o.auth_enabled {
        return Step::EnableAuth;
    }
    Step::InSync
}

/// Before any membership change: quorum, and a voter that does not answer is either one
/// whose data is gone (it is replaced: the change that heals it) or something to wait for.
fn unhealthy_before_change(o: &Observed) -> Option<Step> {
    let gone = o
        .members
        .iter()
        .find(|m| data_gone(o, m))
        .map(|m| m.name.as_str());
    unhealthy(o, gone).filter(|_| gone.is_none() || !o.quorum_without(gone))
}

/// A listed member that has started and can never come back with its data: its volume is
/// gone, its init step refused an emptied data dir, or its emptyDir went with its pod.
fn data_gone(o: &Observed, m: &Member) -> bool {
    let Some(listed) = m.listed else { return false };
    let refused = m.pod.as_ref().is_some_and(|p| p.guard_refused);
    let lost = if o.want.ephemeral {
        m.pod.is_none()
    } else {
        m.volume == Volume::Missing
    };
    listed.started && (refused || lost)
}

/// Voters in the order to touch them: unhealthy ones first, then followers from the newest,
/// the leader last.
fn rollout_order(o: &Observed) -> Vec<&Member> {
    let mut voters: Vec<&Member> = o.voters().collect();
    voters.sort_by_key(|m| {
        (
            m.health.is_some(),
            m.health.is_some_and(|h| h.leader),
            std::cmp::Reverse(m.ordinal),
        )
    });
    voters
}
