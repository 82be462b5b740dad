//! Quorum loss. While a majority of the voting members is gone (pod missing, volume lost, or
//! not ready) no membership change can commit, so the cluster cannot heal through learners.
//! The way back is etcd's: the surviving member with the highest applied index restarts with
//! `--force-new-cluster`, keeping its data and becoming the only member; it restarts once more
//! without the flag, and the cluster grows back through learners as in any scale-up.
//!
//! `spec.recovery.policy` decides who says go: `Automatic` once the majority has been gone for
//! `after`, `Manual` once the annotation names the planned survivor.

use super::*;

/// The annotation that approves a `Manual` recovery; its value names the planned survivor.
pub const APPROVAL_ANNOTATION: &str = "oxcd.io/force-new-cluster";

/// What a recovery from quorum loss would do, and what it may lose.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveryPlan {
    pub survivor: String,
    pub survivor_applied: u64,
    pub lost: Vec<String>,
    /// The highest index a lost member was last seen to have applied.
    pub lost_applied: Option<u64>,
    pub survivor_revision: Option<i64>,
    /// The highest revision a lost member was last seen at.
    pub lost_revision: Option<i64>,
}

impl RecoveryPlan {
    pub fn describe(&self) -> String {
        let risk = match self.lost_applied {
            Some(seen) if seen > self.survivor_applied => format!(
                "entries {} to {seen}, which a lost member had applied, may be lost",
                self.survivor_applied + 1
            ),
            _ => "no lost member was seen past that index".to_string(),
        };
        let revisions = match (self.survivor_revision, self.lost_revision) {
            (Some(kept), Some(seen)) if seen > kept => {
                format!(" (revisions {} to {seen})", kept + 1)
            }
            _ => String::new(),
        };
        format!(
            "voting members {} are gone; {} survives with applied index {}; {risk}{revisions}",
            self.lost.join(", "),
            self.survivor,
            self.survivor_applied
        )
    }
}

/// Why a voter counts as gone for good; `None` when it answers or may come back on its own.
fn gone(o: &Observed, m: &Member) -> Option<&'static str> {
    if m.health.is_some() || m.answered.is_some() {
        return None;
    }
    if !o.want.ephemeral && m.volume == Volume::Missing {
        return Some("volume lost");
    }
    let Some(pod) = &m.pod else {
        return Some("pod missing");
    };
    if pod.guard_refused {
        Some("data lost")
    } else if pod.failing.is_some() {
        Some("failing")
    } else if !pod.ready {
        Some("not ready")
    } else {
        None
    }
}

/// The voters gone for good, when they are a majority: what recovery would do about it.
/// `Err` holds the lost members when no voter survives to recover from.
pub fn recovery_plan(o: &Observed) -> Option<Result<RecoveryPlan, Vec<String>>> {
    let voters: Vec<&Member> = o.voters().collect();
    let lost: Vec<&Member> = voters
        .iter()
        .copied()
        .filter(|m| gone(o, m).is_some())
        .collect();
    if voters.is_empty() || voters.len() - lost.len() > voters.len() / 2 {
        return None;
    }
    let names: Vec<String> = lost
        .iter()
        .map(|m| format!("{} ({})", m.name, gone(o, m).unwrap_or_default()))
        .collect();
    let survivor = voters
        .iter()
        .filter_map(|m| Some((m, m.answered?)))
        .max_by_key(|(m, applied)| (*applied, std::cmp::Reverse(m.ordinal)));
    let Some((survivor, applied)) = survivor else {
        return Some(Err(names));
    };
    Some(Ok(RecoveryPlan {
        survivor: survivor.name.clone(),
        survivor_applied: applied,
        lost: names,
        lost_applied: lost.iter().filter_map(|m| m.last_applied).max(),
        survivor_revision: survivor.revision,
        lost_revision: lost.iter().filter_map(|m| m.revision).max(),
    }))
}

/// No quorum, and no lost pod to start again on its volume.
pub(super) fn quorum_lost(o: &Observed) -> Step {
    let plan = match recovery_plan(o) {
        None => {
            return wait(
                "NoQuorum",
                "no member confirms the member list (no quorum), but no majority of the voting \
                 members is gone: waiting for them to answer again"
                    .to_string(),
            );
        }
        Some(Err(lost)) => return from_backup(o, &lost),
        Some(Ok(plan)) => plan,
    };
    let recovery = &o.want.recovery;
    let approved = recovery.approved.as_deref() == Some(plan.survivor.as_str());
    if !recovery.automatic && !approved {
        return Step::Refuse {
            reason: "QuorumLost",
            message: format!(
                "{}; set the annotation {APPROVAL_ANNOTATION}={} to restart it with \
                 --force-new-cluster",
                plan.describe(),
                plan.survivor
            ),
        };
    }
    let due = o.quorum_lost_since.unwrap_or(o.now) + recovery.after;
    if recovery.automatic && !approved && o.now < due {
        return wait(
            "QuorumLost",
            format!(
                "{}; {} restarts with --force-new-cluster at {due} unless the quorum is back",
                plan.describe(),
                plan.survivor
            ),
        );
    }
    let reason = format!("quorum lost: {}", plan.describe());
    Step::Begin(o.operation(OperationKind::ForceNewCluster, &plan.survivor, &reason))
}

/// The annotation value that approves a `Manual` restore from the latest backup when no
/// member survives.
pub const LATEST_BACKUP: &str = "latest-backup";

/// The name of an in-place restore the operator begins itself (nothing survived a quorum
/// loss), before the time the loss was first seen: its seed starts from the latest backup.
pub const OWN_RESTORE_PREFIX: &str = "quorum-loss-";

/// A majority gone and no voter answering: restore in place from the latest backup, if
/// `spec.backup` says where it is and the policy allows.
fn from_backup(o: &Observed, lost: &[String]) -> Step {
    let recovery = &o.want.recovery;
    let gone = format!(
        "voting members {} are gone and no voting member answers",
        lost.join(", ")
    );
    if recovery.backup.is_none() {
        return Step::Refuse {
            reason: "QuorumLost",
            message: format!(
                "{gone}: nothing survives to recover from and spec.backup names no backups; \
                 restore the cluster from a backup (EtcdRestore)"
            ),
        };
    }
    let approved = recovery.approved.as_deref() == Some(LATEST_BACKUP);
    if !recovery.automatic && !approved {
        return Step::Refuse {
            reason: "QuorumLost",
            message: format!(
                "{gone}; set the annotation {APPROVAL_ANNOTATION}={LATEST_BACKUP} to restore the \
                 cluster in place from its latest backup (writes after it are lost)"
            ),
        };
    }
    let since = o.quorum_lost_since.unwrap_or(o.now);
    if recovery.automatic && !approved && o.now < since + recovery.after {
        let due = since + recovery.after;
        return wait(
            "QuorumLost",
            format!(
                "{gone}; the cluster is restored from its latest backup at {due} unless a member comes back"
            ),
        );
    }
    Step::BeginRestore {
        name: format!("{OWN_RESTORE_PREFIX}{}", since.as_second()),
    }
}

/// The next step of a recovery from `name`.
pub(super) fn force(o: &Observed, name: &str, member: Option<&Member>) -> Step {
    let Some((member, listed)) = member.and_then(|m| Some((m, m.listed?))) else {
        return Step::Finish { cluster_id: None };
    };
    let alone = o.voters().all(|m| m.name == name);
    match &member.pod {
        // Started again without the flag if the force is done, or to be forced (a pass that
        // stopped between deleting the pod and starting it again).
        None => Step::StartMember {
            member: name.to_string(),
            id: listed.id,
            require_data: true,
        },
        // Forced and leading: the flag must go before anyone joins, or a restart would
        // force again.
        Some(pod) if o.list_confirmed && pod.forced => Step::DeletePod {
            member: name.to_string(),
        },
        // A quorum answers, without the flag: done, or the majority came back first.
        Some(_) if o.list_confirmed => Step::Finish { cluster_id: None },
        Some(_) if alone => wait(
            "Forcing",
            format!("member {name} is the only member; waiting for it to lead"),
        ),
        Some(pod) if pod.forced => wait(
            "Forcing",
            format!("waiting for member {name} to start with --force-new-cluster"),
        ),
        Some(_) => Step::ForceNewCluster {
            member: name.to_string(),
            id: listed.id,
        },
    }
}
