//! Putting one observation together: the pods and volumes the workloads hold and the member
//! list and statuses the cluster API gives, joined member by member (by name, or by peer URL
//! for a member that has not started yet), into what the planner reads.

use crate::act::{Actor, Workload, Workloads};
use crate::members::{ClusterView, ListedMember};
use crate::plan::{Health, Listed, Member, Observed, Volume};

/// The ordinal in a member name `<cluster>-<n>`.
pub fn ordinal(cluster: &str, member: &str) -> Option<u32> {
    member
        .strip_prefix(cluster)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

pub fn combine<W: Workloads>(
    actor: &Actor<'_, W>,
    workloads: &[Workload],
    view: &ClusterView,
) -> Observed {
    let w = actor.workloads;
    let mut members: Vec<Member> = workloads
        .iter()
        .map(|wl| Member {
            name: wl.name.clone(),
            ordinal: ordinal(&actor.cluster, &wl.name).unwrap_or(u32::MAX),
            pod: wl.pod.clone(),
            volume: wl.volume.clone(),
            listed: None,
            health: None,
            answered: None,
            last_applied: None,
            revision: None,
        })
        .collect();
    // Names the operator gave: for members that have not started yet, which publish no name.
    let mut known: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
    known.extend(actor.status.members.iter().map(|m| m.name.clone()));
    known.extend(actor.status.operation.iter().map(|op| op.member.clone()));
    // No member answered the member list: the members status last recorded, so that lost
    // pods can still be started again on their volumes.
    let recorded: Vec<ListedMember>;
    let listed_members = if view.members.is_empty() {
        recorded = actor
            .status
            .members
            .iter()
            .filter_map(|m| {
                Some(ListedMember {
                    id: u64::from_str_radix(m.id.as_deref()?, 16).ok()?,
                    name: if m.version.is_some() {
                        m.name.clone()
                    } else {
                        String::new()
                    },
                    peer_urls: vec![w.peer_url(&m.name)],
                    client_urls: vec![w.client_url(&m.name)],
                    learner: m.learner,
                })
            })
            .collect();
        &recorded
    } else {
        &view.members
    };
    for listed in listed_members {
        let name = if listed.name.is_empty() {
            known
                .iter()
                .find(|n| listed.peer_urls.contains(&w.peer_url(n)))
                .cloned()
        } else {
            Some(listed.name.clone())
        };
        let name = name.unwrap_or_else(|| format!("unknown-{:x}", listed.id));
        let entry = Listed {
            id: listed.id,
            learner: listed.learner,
            started: !listed.name.is_empty(),
        };
        match members.iter_mut().find(|m| m.name == name) {
            Some(m) => m.listed = Some(entry),
            None => members.push(Member {
                ordinal: ordinal(&actor.cluster, &name).unwrap_or(u32::MAX),
                name,
                listed: Some(entry),
                volume: Volume::Missing,
                ..Member::default()
            }),
        }
    }
    for m in &mut members {
        let Some(answer) = view.health.get(&w.client_url(&m.name)) else {
            continue;
        };
        // A member answering for another cluster, or one not in the list, is not healthy here.
        let Some(listed) = m.listed else { continue };
        m.answered = Some(answer.applied_index);
        m.revision = Some(answer.revision);
        // An alarm (NOSPACE) is reported on its own; a member that knows no leader is not
        // one to build on.
        if answer.leader_id == 0 {
            continue;
        }
        m.health = Some(Health {
            leader: answer.leader_id == listed.id,
            applied_index: answer.applied_index,
        });
    }
    for m in &mut members {
        let recorded = actor.status.members.iter().find(|r| r.name == m.name);
        m.last_applied = recorded.and_then(|r| r.applied_index);
        m.revision = m.revision.or(recorded.and_then(|r| r.revision));
    }
    members.sort_by_key(|m| (m.ordinal, m.name.clone()));
    Observed {
        cluster: actor.cluster.clone(),
        want: actor.want.clone(),
        cluster_id: actor
            .status
            .cluster_id
            .as_deref()
            .and_then(|id| u64::from_str_radix(id, 16).ok()),
        seen_cluster_id: view.cluster_id,
        operation: actor.status.operation.clone(),
        next_ordinal: actor.status.next_ordinal,
        members,
        list_confirmed: view.confirmed,
        quorum_lost_since: actor.status.quorum_lost_since.as_ref().map(|t| t.0),
        restore: actor.status.restore.clone(),
        auth_enabled: actor.status.auth_enabled,
        now: actor.now,
    }
}

/// `--initial-cluster` for a member joining: every listed member, by the name the operator
/// gave it, with its peer URL.
pub fn initial_cluster<W: Workloads>(
    actor: &Actor<'_, W>,
    observed: &Observed,
) -> Vec<(String, String)> {
    observed
        .members
        .iter()
        .filter(|m| m.listed.is_some())
        .map(|m| (m.name.clone(), actor.workloads.peer_url(&m.name)))
        .collect()
}
