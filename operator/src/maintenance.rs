//! Maintenance on a running cluster: defragmentation one member at a time, followers first
//! and the leader last, and only while every member answers with a leader (a member being
//! defragmented answers nothing else, so defragmenting while another is down could cost the
//! quorum); then the NOSPACE alarm, disarmed once every member's database is back under the
//! quota. `oxcd-operator defrag` runs it (by hand or on a schedule as a CronJob); the
//! controller's `spec.maintenance.defragSchedule` is to call the same function.

use std::time::Duration;

use etcd_client::{AlarmAction, AlarmOptions, AlarmType, CompactionOptions};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::members::{self, Access, MemberHealth};

/// Defragmenting a large database takes a while: the call's own timeout.
const DEFRAG_TIMEOUT: Duration = Duration::from_secs(300);

/// One member's defragmentation.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Defragmented {
    pub endpoint: String,
    pub leader: bool,
    pub db_size_before: i64,
    pub db_size_after: i64,
}

/// What a maintenance pass did.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// In the order they were defragmented.
    pub defragmented: Vec<Defragmented>,
    /// The NOSPACE alarm was raised and is now disarmed.
    pub disarmed_nospace: bool,
    /// With the NOSPACE alarm raised, the store was compacted at this revision first (the
    /// space of old revisions is only given back by compaction, then defragmentation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compacted_at: Option<i64>,
}

/// The order to defragment `members` (endpoint, health) in: followers, then the leader.
/// `Err` names the first member that does not answer or has no leader: the cluster is
/// degraded and nothing is defragmented.
pub fn order(members: &[(String, Option<MemberHealth>)]) -> Result<Vec<(String, bool)>> {
    let mut order = Vec::new();
    for (endpoint, health) in members {
        let why = match health {
            Some(h) if h.leader_id != 0 => {
                order.push((endpoint.clone(), h.member_id == h.leader_id));
                continue;
            }
            Some(_) => "has no leader",
            None => "does not answer",
        };
        return Err(Error::Unreachable(format!(
            "member {endpoint} {why}: defragmentation skipped"
        )));
    }
    order.sort_by_key(|(_, leader)| *leader);
    Ok(order)
}

/// Defragments the members at `endpoints` (every member's client URL) one at a time,
/// followers first; then, given the backend quota, disarms NOSPACE if every member is under
/// it again.
pub async fn defragment_all(
    access: &Access,
    endpoints: &[String],
    quota_bytes: Option<i64>,
) -> Result<Report> {
    let mut healths = Vec::new();
    for endpoint in endpoints {
        healths.push((
            endpoint.clone(),
            members::status(access, endpoint).await.ok(),
        ));
    }
    let order = order(&healths)?;
    let mut report = Report::default();
    let mut client = access
        .connect(&endpoints[..1], Duration::from_secs(5))
        .await?;
    let alarms = client
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await?;
    let nospace = alarms
        .alarms()
        .iter()
        .any(|a| a.alarm() == AlarmType::Nospace);
    if nospace {
        let status = client.status().await?;
        let revision = status.header().map_or(0, |h| h.revision());
        let physical = CompactionOptions::new().with_physical();
        match client.compact(revision, Some(physical)).await {
            Ok(_) => report.compacted_at = Some(revision),
            // Compacted there already.
            Err(e) if e.to_string().contains("compacted") => {}
            Err(e) => return Err(e.into()),
        }
    }
    for (endpoint, leader) in order {
        let mut client = access
            .connect(std::slice::from_ref(&endpoint), DEFRAG_TIMEOUT)
            .await?;
        if report.compacted_at.is_some() {
            // A linearizable read through the member: it has applied the compaction.
            let barrier = etcd_client::GetOptions::new().with_count_only();
            client.get("\0", Some(barrier)).await?;
        }
        let before = client.status().await?.db_size();
        client.defragment().await?;
        let after = client.status().await?.db_size();
        tracing::info!(endpoint, leader, before, after, "defragmented");
        report.defragmented.push(Defragmented {
            endpoint,
            leader,
            db_size_before: before,
            db_size_after: after,
        });
    }
    let Some(quota) = quota_bytes else {
        return Ok(report);
    };
    let under = report.defragmented.iter().all(|d| d.db_size_after < quota);
    if nospace && under {
        for a in alarms
            .alarms()
            .iter()
            .filter(|a| a.alarm() == AlarmType::Nospace)
        {
            let mut options = AlarmOptions::new();
            options.with_member(a.member_id());
            client
                .alarm(AlarmAction::Deactivate, AlarmType::Nospace, Some(options))
                .await?;
        }
        report.disarmed_nospace = true;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(member_id: u64, leader_id: u64) -> Option<MemberHealth> {
        Some(MemberHealth {
            member_id,
            leader_id,
            applied_index: 1,
            version: "3.5.0".into(),
            db_size: 1,
            revision: 1,
            errors: Vec::new(),
        })
    }

    #[test]
    fn followers_go_first_the_leader_last_and_a_degraded_cluster_not_at_all() {
        let members = vec![
            ("a".to_string(), health(1, 2)),
            ("b".to_string(), health(2, 2)),
            ("c".to_string(), health(3, 2)),
        ];
        assert_eq!(
            order(&members).unwrap(),
            [
                ("a".to_string(), false),
                ("c".to_string(), false),
                ("b".to_string(), true)
            ]
        );
        let mut down = members.clone();
        down[2].1 = None;
        assert!(
            order(&down)
                .unwrap_err()
                .to_string()
                .contains("c does not answer")
        );
        let mut leaderless = members;
        leaderless[0].1 = health(1, 0);
        assert!(
            order(&leaderless)
                .unwrap_err()
                .to_string()
                .contains("no leader")
        );
    }
}
