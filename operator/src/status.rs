//! The status a pass reports: members as observed, the leader, replicas, phase, and the
//! conditions Available, Progressing and Degraded with a reason and a message each. The
//! operation in progress, the cluster id and the next ordinal are the actor's to write.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::crd::{EtcdClusterStatus, MemberStatus, OperationKind, RestorePhase};
use crate::members::ClusterView;
use crate::plan::{Observed, Step};

/// A condition observed outside the pass (BackupReady, from the backup CronJob): type,
/// status (True, False or Unknown), reason, message.
pub type ExtraCondition = (&'static str, String, &'static str, String);

/// `status` updated with what `observed` and `view` show and what `step` means.
pub fn report(
    status: &EtcdClusterStatus,
    observed: &Observed,
    view: &ClusterView,
    step: &Step,
    generation: Option<i64>,
    urls: &impl crate::act::Workloads,
    extra: &[ExtraCondition],
) -> EtcdClusterStatus {
    let mut next = status.clone();
    next.observed_generation = generation;
    next.members = observed
        .members
        .iter()
        .filter(|m| m.listed.is_some() || m.pod.is_some())
        .map(|m| {
            let client_url = urls.client_url(&m.name);
            let answer = view.health.get(&client_url);
            MemberStatus {
                name: m.name.clone(),
                id: m.listed.map(|l| format!("{:x}", l.id)),
                peer_url: urls.peer_url(&m.name),
                client_url,
                learner: m.listed.is_some_and(|l| l.learner),
                leader: m.health.is_some_and(|h| h.leader),
                healthy: m.health.is_some(),
                version: answer.map(|a| a.version.clone()),
                db_size: answer.map(|a| a.db_size),
                applied_index: m.answered.or(m.last_applied),
                revision: m.revision,
            }
        })
        .collect();
    let voters: Vec<&MemberStatus> = next
        .members
        .iter()
        .filter(|m| m.id.is_some() && !m.learner)
        .collect();
    let healthy = voters.iter().filter(|m| m.healthy).count();
    let leader = next.members.iter().find(|m| m.leader);
    next.leader = leader.map(|m| m.name.clone());
    next.leader_id = leader.and_then(|m| m.id.clone());
    next.replicas = voters.len() as i32;
    next.ready_replicas = healthy as i32;
    // The spec version every member pod runs, once they all run one and answer: what an
    // upgrade waits for. (Each member's own report of its server version is in members.)
    let pods: Vec<(&String, bool)> = observed
        .members
        .iter()
        .filter(|m| m.listed.is_some())
        .filter_map(|m| Some((&m.pod.as_ref()?.version, m.health.is_some())))
        .collect();
    if let Some((first, _)) = pods.first()
        && pods.iter().all(|(v, up)| v == first && *up)
    {
        next.current_version = Some(first.to_string());
    }
    next.quorum_lost_since = match (status.cluster_id.is_some(), observed.list_confirmed) {
        (true, false) => Some(
            status
                .quorum_lost_since
                .clone()
                .unwrap_or(Time(observed.now)),
        ),
        _ => None,
    };
    let available = status.cluster_id.is_some() && healthy > voters.len() / 2;
    let failing = observed.members.iter().find_map(|m| {
        let why = m.pod.as_ref()?.failing.as_ref()?;
        Some(("MemberPodFailing", format!("member {}: {why}", m.name)))
    });
    // etcd reports each alarm in Status's errors as `memberID:<id> alarm:NOSPACE`.
    let nospace = view
        .health
        .values()
        .find_map(|h| h.errors.iter().find(|e| e.contains("alarm:NOSPACE")));
    let degraded = match step {
        Step::Refuse { reason, message } => Some((*reason, message.clone())),
        _ if nospace.is_some() => Some((
            "NoSpace",
            "the NOSPACE alarm is raised: writes are refused until keys are deleted, the \
             store compacted and defragmented (spec.maintenance) and the alarm disarmed"
                .to_string(),
        )),
        _ => failing.or_else(|| {
            voters.iter().find(|m| !m.healthy).map(|m| {
                (
                    "MemberUnhealthy",
                    format!("member {} does not answer", m.name),
                )
            })
        }),
    };
    let now = observed.now;
    let overdue = status.operation.as_ref().filter(|op| op.deadline.0 < now);
    let progressing = match (&status.operation, step) {
        (_, _) if overdue.is_some() => (
            false,
            "ProgressDeadlineExceeded",
            format!(
                "{} is taking longer than its deadline; still trying",
                describe(step)
            ),
        ),
        (Some(op), _) => (
            true,
            kind_reason(op.kind),
            format!("{}: {}", op.reason, describe(step)),
        ),
        (None, Step::InSync) => (false, "InSync", "the cluster is as specified".into()),
        (None, _) => (true, "Reconciling", describe(step)),
    };
    let mut conditions = status.conditions.clone();
    let (available_reason, available_message) = if available {
        (
            "QuorumAvailable",
            format!("{healthy} of {} voting members answer", voters.len()),
        )
    } else if status.cluster_id.is_none() {
        ("Bootstrapping", "the cluster is being created".to_string())
    } else {
        (
            "QuorumLost",
            format!("{healthy} of {} voting members answer", voters.len()),
        )
    };
    set(
        &mut conditions,
        "Available",
        available,
        available_reason,
        available_message,
        generation,
        now,
    );
    set(
        &mut conditions,
        "Progressing",
        progressing.0,
        progressing.1,
        progressing.2,
        generation,
        now,
    );
    let (degraded_reason, degraded_message) = degraded
        .clone()
        .unwrap_or(("AsExpected", "every voting member answers".into()));
    set(
        &mut conditions,
        "Degraded",
        degraded.is_some(),
        degraded_reason,
        degraded_message,
        generation,
        now,
    );
    for (type_, value, reason, message) in extra {
        set_status(
            &mut conditions,
            type_,
            value,
            reason,
            message.clone(),
            generation,
            now,
        );
    }
    let (value, reason, message) = match nospace {
        Some(alarm) => (true, "AlarmRaised", alarm.trim().to_string()),
        None => (false, "NoAlarm", "no NOSPACE alarm".to_string()),
    };
    set(
        &mut conditions,
        "NoSpace",
        value,
        reason,
        message,
        generation,
        now,
    );
    next.conditions = conditions;
    let restoring = status
        .restore
        .as_ref()
        .is_some_and(|r| r.phase != RestorePhase::Completed);
    next.phase = Some(
        match (
            &status.operation,
            status.cluster_id.is_some(),
            degraded.is_some(),
        ) {
            _ if restoring => "Restoring",
            (_, false, _) => "Creating",
            (_, _, true) => "Degraded",
            (Some(op), _, _) => match op.kind {
                OperationKind::RollMember => "Upgrading",
                OperationKind::ForceNewCluster => "Recovering",
                _ => "Scaling",
            },
            (None, _, _) => "Running",
        }
        .to_string(),
    );
    next
}

fn kind_reason(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::Bootstrap => "Bootstrapping",
        OperationKind::AddMember => "AddingMember",
        OperationKind::RemoveMember => "RemovingMember",
        OperationKind::ReplaceMember => "ReplacingMember",
        OperationKind::RollMember => "RollingMember",
        OperationKind::ForceNewCluster => "RecoveringQuorum",
    }
}

/// The step, in words, for condition messages.
pub fn describe(step: &Step) -> String {
    match step {
        Step::InSync => "nothing to do".into(),
        Step::Begin(op) => format!("starting: {}", op.reason),
        Step::Finish { .. } => "finishing".into(),
        Step::CreateSeed { member } => format!("creating the seed member {member}"),
        Step::AddLearner { member } => format!("adding {member} as a learner"),
        Step::StartMember { member, .. } => format!("starting member {member}"),
        Step::Promote { member, .. } => format!("promoting {member}"),
        Step::MoveLeader { from, .. } => format!("moving leadership away from {from}"),
        Step::RemoveFromCluster { member, .. } => format!("removing {member} from the cluster"),
        Step::DeletePod { member } => format!("deleting the pod of {member}"),
        Step::DeleteVolume { member } => format!("deleting the volume of {member}"),
        Step::BeginRestore { name } => format!("starting the in-place restore {name}"),
        Step::ResetForRestore => "every member stopped: creating the cluster again".into(),
        Step::FinishRestore => "finishing the in-place restore".into(),
        Step::EnableAuth => "enabling auth with the user root".into(),
        Step::ForceNewCluster { member, .. } => {
            format!("restarting {member} with --force-new-cluster")
        }
        Step::Wait { message, .. } | Step::Refuse { message, .. } => message.clone(),
    }
}

/// Sets a condition, keeping its transition time when its status did not change.
fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    value: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if value { "True" } else { "False" };
    set_status(conditions, type_, status, reason, message, generation, now);
}

/// Sets a condition to True, False or Unknown, keeping its transition time when its status
/// did not change.
pub fn set_status(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = status.to_string();
    let since = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    conditions.retain(|c| c.type_ != type_);
    conditions.push(Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time: since,
    });
}
