//! An in-place restore (an `EtcdRestore`): every member pod and volume is deleted, whatever
//! the quorum (the backup is the data now); the cluster's id, members and operation are
//! forgotten; the cluster is then created as a new one under the same name and Services, its
//! seed restored from the backup, and grown through learners as any new cluster.

use super::*;
use crate::crd::RestorePhase;

/// The restore's step, while one asked for is not complete; `None` leaves the members to
/// the usual plan.
pub(super) fn step(o: &Observed) -> Option<Step> {
    // Asked for by an EtcdRestore, or begun by the operator itself (a quorum loss with no
    // survivor): a restore under way is finished either way.
    let underway = o
        .restore
        .as_ref()
        .filter(|p| p.phase != RestorePhase::Completed)
        .map(|p| &p.name);
    let name = o.want.restore.as_ref().or(underway)?;
    let progress = o.restore.as_ref().filter(|p| p.name == *name);
    match progress.map(|p| p.phase) {
        None => Some(Step::BeginRestore { name: name.clone() }),
        Some(RestorePhase::Stopping) => Some(stop(o)),
        Some(RestorePhase::Restoring) => {
            let created = o.cluster_id.is_some() && o.operation.is_none();
            (created && plan_cluster(o) == Step::InSync).then_some(Step::FinishRestore)
        }
        Some(RestorePhase::Completed) => None,
    }
}

fn stop(o: &Observed) -> Step {
    if let Some(m) = o.members.iter().find(|m| m.pod.is_some()) {
        return Step::DeletePod {
            member: m.name.clone(),
        };
    }
    if let Some(m) = o.members.iter().find(|m| m.volume == Volume::Ours) {
        return Step::DeleteVolume {
            member: m.name.clone(),
        };
    }
    Step::ResetForRestore
}
