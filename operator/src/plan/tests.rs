//! The planner, row by row: an observed state and the one step it must lead to; and whole
//! operations played out on a small model of the world, step after step, to InSync.

use super::*;
use k8s_openapi::jiff::Timestamp;

const CLUSTER_ID: u64 = 0xc1;

fn now() -> Timestamp {
    "2026-12-07T00:00:00Z".parse().unwrap()
}

fn want(replicas: usize) -> Want {
    Want::new(replicas, "v1", "c1")
}

/// A running cluster of `voters` healthy members `demo-0..`, `demo-0` leading.
fn running(replicas: usize, voters: u32) -> Observed {
    Observed {
        cluster: "demo".into(),
        want: want(replicas),
        cluster_id: Some(CLUSTER_ID),
        seen_cluster_id: Some(CLUSTER_ID),
        operation: None,
        next_ordinal: voters,
        members: (0..voters).map(|o| member(o, false)).collect(),
        list_confirmed: true,
        quorum_lost_since: None,
        restore: None,
        auth_enabled: false,
        now: now(),
    }
}

fn member(ordinal: u32, learner: bool) -> Member {
    Member {
        name: member_name("demo", ordinal),
        ordinal,
        pod: Some(Pod {
            version: "v1".into(),
            config: "c1".into(),
            guard_refused: false,
            failing: None,
            forced: false,
            ready: true,
        }),
        volume: Volume::Ours,
        listed: Some(Listed {
            id: 100 + ordinal as u64,
            learner,
            started: true,
        }),
        health: Some(Health {
            leader: ordinal == 0,
            applied_index: 1000,
        }),
        answered: Some(1000),
        last_applied: Some(1000),
        revision: Some(500),
    }
}

fn with_op(mut o: Observed, kind: OperationKind, member: &str) -> Observed {
    o.operation = Some(o.operation(kind, member, "test"));
    o
}

fn edit(mut o: Observed, name: &str, f: impl FnOnce(&mut Member)) -> Observed {
    f(o.members
        .iter_mut()
        .find(|m| m.name == name)
        .expect("member"));
    o
}

fn begun(step: &Step) -> Option<(OperationKind, &str)> {
    match step {
        Step::Begin(op) => Some((op.kind, op.member.as_str())),
        _ => None,
    }
}

fn reason(step: &Step) -> &'static str {
    match step {
        Step::Wait { reason, .. } | Step::Refuse { reason, .. } => reason,
        _ => "",
    }
}

#[test]
fn one_step_for_each_situation() {
    use OperationKind::*;
    let lagging = edit(with_op(running(4, 4), AddMember, "demo-3"), "demo-3", |m| {
        m.listed.as_mut().unwrap().learner = true;
        m.health.as_mut().unwrap().applied_index = 10;
    });
    let caught_up = edit(lagging.clone(), "demo-3", |m| {
        m.health.as_mut().unwrap().applied_index = 950
    });
    let seed_gone = Observed {
        cluster_id: None,
        ..running(3, 0)
    };
    let rows: Vec<(&str, Observed, Step)> = vec![
        (
            "create: the seed first",
            seed_gone.clone(),
            Step::Begin(seed_gone.operation(Bootstrap, "demo-0", "new cluster")),
        ),
        (
            "create: seed op creates the seed",
            with_op(seed_gone.clone(), Bootstrap, "demo-0"),
            Step::CreateSeed {
                member: "demo-0".into(),
            },
        ),
        (
            "scale up: add as a learner",
            with_op(running(4, 3), AddMember, "demo-3"),
            Step::AddLearner {
                member: "demo-3".into(),
            },
        ),
        (
            "learner not caught up: wait",
            lagging,
            Step::Wait {
                reason: "LearnerCatchingUp",
                message: "learner demo-3 has applied 10 of the leader's 1000 entries".into(),
            },
        ),
        (
            "learner caught up: promote",
            caught_up,
            Step::Promote {
                member: "demo-3".into(),
                id: 103,
            },
        ),
        (
            "lost pod, volume kept: restart on its data",
            edit(running(3, 3), "demo-2", |m| {
                m.pod = None;
                m.health = None
            }),
            Step::StartMember {
                member: "demo-2".into(),
                id: 102,
                require_data: true,
            },
        ),
        (
            "leader in the way of a removal: move it first",
            with_op(running(2, 3), RemoveMember, "demo-0"),
            Step::MoveLeader {
                from: "demo-0".into(),
                to: 101,
            },
        ),
        (
            "removal of a follower",
            with_op(running(2, 3), RemoveMember, "demo-2"),
            Step::RemoveFromCluster {
                member: "demo-2".into(),
                id: 102,
            },
        ),
        (
            "removed: its pod goes",
            edit(
                with_op(running(2, 3), RemoveMember, "demo-2"),
                "demo-2",
                |m| {
                    m.listed = None;
                    m.health = None
                },
            ),
            Step::DeletePod {
                member: "demo-2".into(),
            },
        ),
        (
            "removed: its volume goes by policy",
            edit(
                with_op(running(2, 3), RemoveMember, "demo-2"),
                "demo-2",
                |m| {
                    m.listed = None;
                    m.health = None;
                    m.pod = None
                },
            ),
            Step::DeleteVolume {
                member: "demo-2".into(),
            },
        ),
        ("in sync", running(3, 3), Step::InSync),
    ];
    for (what, observed, expected) in rows {
        assert_eq!(plan(&observed), expected, "{what}");
    }
}

#[test]
fn unsafe_situations_lead_to_no_membership_change() {
    use OperationKind::*;
    // Quorum lost: 2 of 3 voters do not answer. No membership step; Degraded.
    let mut lost = running(5, 3);
    for name in ["demo-1", "demo-2"] {
        lost = edit(lost, name, |m| m.health = None);
    }
    assert_eq!(reason(&plan(&lost)), "QuorumLost");
    assert_eq!(
        reason(&plan(&with_op(lost.clone(), AddMember, "demo-3"))),
        "QuorumLost"
    );
    // One voter unhealthy: scale-up waits.
    let sick = edit(running(5, 3), "demo-2", |m| m.health = None);
    assert_eq!(reason(&plan(&sick)), "MemberUnhealthy");
    // An unhealthy voter during an upgrade: the rollout waits for it.
    let mut upgrade = sick.clone();
    upgrade.want = Want {
        replicas: 3,
        version: "v2".into(),
        ..want(3)
    };
    assert_eq!(reason(&plan(&upgrade)), "MemberUnhealthy");
    let rolling = with_op(upgrade, RollMember, "demo-1");
    assert_eq!(reason(&plan(&rolling)), "MemberUnhealthy");
    // A volume of another cluster: refused, whatever else is going on.
    let foreign = edit(running(3, 3), "demo-2", |m| {
        m.volume = Volume::Foreign {
            owner: "uid-x".into(),
        }
    });
    let step = plan(&foreign);
    assert_eq!(reason(&step), "ForeignVolume");
    assert!(matches!(&step, Step::Refuse { message, .. } if message.contains("uid-x")));
}

#[test]
fn a_member_whose_data_is_gone_is_replaced_never_restarted_empty() {
    // Its init step refused an emptied data dir.
    let emptied = edit(running(3, 3), "demo-1", |m| {
        m.pod.as_mut().unwrap().guard_refused = true;
        m.health = None;
    });
    assert_eq!(
        begun(&plan(&emptied)),
        Some((OperationKind::ReplaceMember, "demo-1"))
    );
    // Its volume is gone.
    let no_volume = edit(running(3, 3), "demo-1", |m| {
        m.pod = None;
        m.volume = Volume::Missing;
        m.health = None;
    });
    assert_eq!(
        begun(&plan(&no_volume)),
        Some((OperationKind::ReplaceMember, "demo-1"))
    );
    // emptyDir storage: a lost pod is lost data.
    let mut ephemeral = edit(running(3, 3), "demo-1", |m| {
        m.pod = None;
        m.volume = Volume::Missing;
        m.health = None;
    });
    ephemeral.want.ephemeral = true;
    assert_eq!(
        begun(&plan(&ephemeral)),
        Some((OperationKind::ReplaceMember, "demo-1"))
    );
    // The replacement removes it first, and its volume goes whatever the policy.
    let mut replacing = with_op(no_volume, OperationKind::ReplaceMember, "demo-1");
    assert_eq!(
        plan(&replacing),
        Step::RemoveFromCluster {
            member: "demo-1".into(),
            id: 101
        }
    );
    replacing.want.when_scaled = Retention::Retain;
    let replacing = edit(replacing, "demo-1", |m| {
        m.listed = None;
        m.volume = Volume::Ours;
    });
    assert_eq!(
        plan(&replacing),
        Step::DeleteVolume {
            member: "demo-1".into()
        }
    );
}

#[test]
fn a_new_member_stuck_on_an_old_version_is_made_again_from_the_spec() {
    // The seed's image could not be pulled; the user fixed the version.
    let mut o = Observed {
        cluster_id: None,
        seen_cluster_id: None,
        ..running(3, 0)
    };
    o = with_op(o, OperationKind::Bootstrap, "demo-0");
    o.members.push(Member {
        health: None,
        listed: None,
        ..member(0, false)
    });
    assert_eq!(reason(&plan(&o)), "SeedStarting");
    o.want.version = "v2".into();
    assert_eq!(
        plan(&o),
        Step::DeletePod {
            member: "demo-0".into()
        }
    );
    // A learner that never answered, likewise.
    let mut o = edit(
        with_op(running(4, 4), OperationKind::AddMember, "demo-3"),
        "demo-3",
        |m| {
            m.listed.as_mut().unwrap().learner = true;
            m.health = None;
        },
    );
    assert_eq!(reason(&plan(&o)), "MemberStarting");
    o.want.version = "v2".into();
    assert_eq!(
        plan(&o),
        Step::DeletePod {
            member: "demo-3".into()
        }
    );
}

#[test]
fn an_edit_made_mid_operation_waits_for_it() {
    // Scaling 3 -> 5 has begun adding demo-3; the user now asks for 1.
    let mut o = with_op(running(5, 3), OperationKind::AddMember, "demo-3");
    o.want.replicas = 1;
    assert_eq!(
        plan(&o),
        Step::AddLearner {
            member: "demo-3".into()
        }
    );
    let end = play(o);
    assert_eq!(voters(&end), vec!["demo-0"]);
}

#[test]
fn upgrades_roll_followers_first_and_the_leader_last() {
    let mut o = running(3, 3);
    o.want.version = "v2".into();
    let mut touched = Vec::new();
    for _ in 0..200 {
        let step = plan(&o);
        if let Step::DeletePod { member } = &step {
            touched.push(member.clone());
            assert!(
                !o.members
                    .iter()
                    .any(|m| m.name == *member && m.health.unwrap().leader),
                "leader restarted while leading"
            );
        }
        if step == Step::InSync {
            break;
        }
        apply(&mut o, &step);
    }
    assert_eq!(touched, vec!["demo-2", "demo-1", "demo-0"]);
    assert!(
        o.members
            .iter()
            .all(|m| m.pod.as_ref().unwrap().version == "v2")
    );
}

#[test]
fn config_changes_come_before_resizing_and_resizing_before_upgrading() {
    let mut o = running(4, 3);
    o.want.config = "c2".into();
    o.want.version = "v2".into();
    assert_eq!(
        begun(&plan(&o)).map(|b| b.0),
        Some(OperationKind::RollMember)
    );
    // Once configs match, the resize goes before the version.
    for m in &mut o.members {
        m.pod.as_mut().unwrap().config = "c2".into();
    }
    assert_eq!(begun(&plan(&o)), Some((OperationKind::AddMember, "demo-3")));
}

#[test]
fn create_and_scale_play_out_to_in_sync() {
    for replicas in [1, 3, 5] {
        let fresh = Observed {
            cluster_id: None,
            next_ordinal: 0,
            ..running(replicas, 0)
        };
        let end = play(fresh);
        assert_eq!(voters(&end).len(), replicas, "create {replicas}");
        assert_eq!(end.cluster_id, Some(CLUSTER_ID));
    }
    let mut o = running(3, 3);
    for replicas in [5, 3, 1] {
        o.want.replicas = replicas;
        o = play(o);
        assert_eq!(voters(&o).len(), replicas, "scale to {replicas}");
        assert!(
            o.members
                .iter()
                .all(|m| m.listed.is_some() && m.pod.is_some())
        );
    }
    // Names are never reused: after 3 -> 5 -> 3 -> 1 the next member is demo-5.
    o.want.replicas = 2;
    assert_eq!(begun(&plan(&o)), Some((OperationKind::AddMember, "demo-5")));
}

fn voters(o: &Observed) -> Vec<&str> {
    o.voters().map(|m| m.name.as_str()).collect()
}

/// Plays steps on the model until InSync, checking at each one that a voting majority
/// stays healthy.
fn play(mut o: Observed) -> Observed {
    for _ in 0..500 {
        let step = plan(&o);
        match &step {
            Step::InSync => return o,
            Step::Wait { .. } | Step::Refuse { .. } => panic!("stuck: {step:?} in {o:#?}"),
            _ => apply(&mut o, &step),
        }
        if o.cluster_id.is_some() {
            assert!(o.quorum_without(None), "quorum lost after {step:?}");
        }
    }
    panic!("no end: {o:#?}")
}

/// What a step does to the world, in the model.
fn apply(o: &mut Observed, step: &Step) {
    let leader_index = 1000;
    let fresh_pod = Pod {
        version: o.want.version.clone(),
        config: o.want.config.clone(),
        ready: true,
        ..Pod::default()
    };
    let healthy = Some(Health {
        leader: false,
        applied_index: leader_index,
    });
    let find = |o: &mut Observed, name: &str| -> usize {
        if let Some(i) = o.members.iter().position(|m| m.name == name) {
            return i;
        }
        let ordinal = name.rsplit('-').next().unwrap().parse().unwrap();
        o.members.push(Member {
            name: name.into(),
            ordinal,
            ..Member::default()
        });
        o.members.len() - 1
    };
    match step {
        Step::Begin(op) => {
            let ordinal: u32 = op.member.rsplit('-').next().unwrap().parse().unwrap();
            o.next_ordinal = o.next_ordinal.max(ordinal + 1);
            o.operation = Some(op.clone());
        }
        Step::Finish { cluster_id } => {
            o.cluster_id = o.cluster_id.or(*cluster_id);
            o.operation = None;
        }
        Step::CreateSeed { member } => {
            let i = find(o, member);
            let m = &mut o.members[i];
            m.pod = Some(fresh_pod);
            m.volume = Volume::Ours;
            m.listed = Some(Listed {
                id: 100,
                learner: false,
                started: true,
            });
            m.health = Some(Health {
                leader: true,
                applied_index: leader_index,
            });
        }
        Step::AddLearner { member } => {
            let i = find(o, member);
            let id = 100 + o.members[i].ordinal as u64;
            o.members[i].listed = Some(Listed {
                id,
                learner: true,
                started: false,
            });
        }
        Step::StartMember { member, .. } => {
            let i = find(o, member);
            let m = &mut o.members[i];
            m.pod = Some(fresh_pod);
            m.volume = Volume::Ours;
            m.listed.as_mut().unwrap().started = true;
            m.health = healthy;
            m.answered = Some(leader_index);
        }
        Step::Promote { member, .. } => {
            let i = find(o, member);
            o.members[i].listed.as_mut().unwrap().learner = false;
        }
        Step::MoveLeader { to, .. } => {
            for m in &mut o.members {
                if let Some(h) = &mut m.health {
                    h.leader = m.listed.map(|l| l.id) == Some(*to);
                }
            }
        }
        Step::RemoveFromCluster { member, .. } => {
            let i = find(o, member);
            o.members[i].listed = None;
            o.members[i].health = None;
        }
        Step::DeletePod { member } => {
            let i = find(o, member);
            o.members[i].pod = None;
            o.members[i].health = None;
            o.members[i].answered = None;
        }
        Step::ForceNewCluster { member, .. } => {
            for m in o.members.iter_mut().filter(|m| m.name != *member) {
                m.listed = None;
            }
            let i = find(o, member);
            let m = &mut o.members[i];
            m.pod = Some(Pod {
                forced: true,
                ..fresh_pod
            });
            m.health = Some(Health {
                leader: true,
                applied_index: leader_index,
            });
        }
        Step::DeleteVolume { member } => {
            let i = find(o, member);
            o.members.remove(i);
        }
        Step::InSync | Step::Wait { .. } | Step::Refuse { .. } => {}
        Step::BeginRestore { .. }
        | Step::ResetForRestore
        | Step::FinishRestore
        | Step::EnableAuth => {
            panic!("no restore in the model: {step:?}")
        }
    }
    o.members
        .retain(|m| m.pod.is_some() || m.listed.is_some() || m.volume != Volume::Missing);
}

#[test]
fn without_a_confirmed_member_list_lost_pods_restart_and_nothing_is_deleted() {
    // Two of three pods lost: the survivor cannot confirm its member list.
    let mut o = running(3, 3);
    o.list_confirmed = false;
    for name in ["demo-1", "demo-2"] {
        o = edit(o, name, |m| {
            m.pod = None;
            m.health = None;
        });
    }
    o.members[0].health = None;
    assert_eq!(
        plan(&o),
        Step::StartMember {
            member: "demo-1".into(),
            id: 101,
            require_data: true,
        }
    );
    // Pods back but no quorum yet: wait, whatever the spec says.
    let mut waiting = running(3, 3);
    waiting.list_confirmed = false;
    waiting.want.replicas = 1;
    waiting.members.iter_mut().for_each(|m| m.health = None);
    assert_eq!(reason(&plan(&waiting)), "NoQuorum");
    // Nobody listed at all: pods and volumes are left alone, not taken for removed members.
    let mut unknown = waiting.clone();
    unknown.members.iter_mut().for_each(|m| m.listed = None);
    assert_eq!(reason(&plan(&unknown)), "NoQuorum");
    // The same members, unlisted in a confirmed list, are what a removal left.
    unknown.list_confirmed = true;
    assert_eq!(
        plan(&unknown),
        Step::DeletePod {
            member: "demo-0".into()
        }
    );
}

/// Three of five voters gone with their volumes; demo-0 and demo-1 answer without a leader.
fn majority_lost(automatic: bool, lost_for_mins: i64) -> Observed {
    let mut o = running(5, 5);
    o.list_confirmed = false;
    o.want.recovery.automatic = automatic;
    o.quorum_lost_since = Some(now() - SignedDuration::from_mins(lost_for_mins));
    for m in &mut o.members {
        m.health = None;
        m.answered = Some(900 + 50 * m.ordinal as u64);
        m.revision = Some(400 + 20 * m.ordinal as i64);
        if m.ordinal >= 2 {
            m.pod = None;
            m.volume = Volume::Missing;
            m.answered = None;
            m.last_applied = Some(990);
            m.revision = Some(470);
        }
    }
    o
}

#[test]
fn a_lost_majority_is_recovered_from_the_survivor_with_the_highest_applied_index() {
    let due = majority_lost(true, 6);
    let Step::Begin(op) = plan(&due) else {
        panic!("{:?}", plan(&due))
    };
    assert_eq!(
        (op.kind, op.member.as_str()),
        (OperationKind::ForceNewCluster, "demo-1")
    );
    assert!(
        op.reason.contains("demo-1 survives with applied index 950"),
        "{}",
        op.reason
    );
    assert!(op.reason.contains("entries 951 to 990"), "{}", op.reason);
    assert!(op.reason.contains("revisions 421 to 470"), "{}", op.reason);
    assert!(op.reason.contains("demo-2 (volume lost)"), "{}", op.reason);
    // Before `after` has passed, the plan is only reported.
    let early = majority_lost(true, 1);
    assert_eq!(reason(&plan(&early)), "QuorumLost");
    assert!(matches!(plan(&early), Step::Wait { .. }));
    // Manual: reported as Degraded until the annotation names the survivor.
    let mut manual = majority_lost(false, 60);
    let Step::Refuse { message, .. } = plan(&manual) else {
        panic!("{:?}", plan(&manual))
    };
    assert!(
        message.contains("oxcd.io/force-new-cluster=demo-1"),
        "{message}"
    );
    manual.want.recovery.approved = Some("demo-0".into());
    assert_eq!(reason(&plan(&manual)), "QuorumLost");
    manual.want.recovery.approved = Some("demo-1".into());
    assert_eq!(
        begun(&plan(&manual)),
        Some((OperationKind::ForceNewCluster, "demo-1"))
    );
}

#[test]
fn no_force_while_the_missing_voters_may_come_back_or_nothing_survives() {
    // Pods that run and pass their readiness check but do not answer the operator (a cut
    // between it and them) may hold a quorum of their own: never forced around.
    let mut cut_off = majority_lost(true, 60);
    for m in cut_off.members.iter_mut().filter(|m| m.ordinal >= 2) {
        m.pod = member(m.ordinal, false).pod;
        m.volume = Volume::Ours;
    }
    assert_eq!(reason(&plan(&cut_off)), "NoQuorum");
    // Not ready counts as gone.
    for m in cut_off.members.iter_mut().filter(|m| m.ordinal >= 2) {
        m.pod.as_mut().unwrap().ready = false;
    }
    assert_eq!(
        begun(&plan(&cut_off)),
        Some((OperationKind::ForceNewCluster, "demo-1"))
    );
    // Nobody answers: nothing to force; a backup is the way back.
    let mut none = majority_lost(true, 60);
    none.members.iter_mut().for_each(|m| m.answered = None);
    let Step::Refuse { message, .. } = plan(&none) else {
        panic!("{:?}", plan(&none))
    };
    assert!(
        message.contains("restore the cluster from a backup"),
        "{message}"
    );
    // A recovery begun when the quorum then came back by itself ends without forcing.
    let back = with_op(running(3, 3), OperationKind::ForceNewCluster, "demo-0");
    assert_eq!(plan(&back), Step::Finish { cluster_id: None });
}

#[test]
fn a_recovery_plays_out_to_three_voters_through_one_forced_restart() {
    let mut o = running(3, 3);
    o.list_confirmed = false;
    o.want.recovery.automatic = true;
    o.quorum_lost_since = Some(now() - SignedDuration::from_hours(1));
    for m in &mut o.members {
        m.health = None;
        if m.ordinal >= 1 {
            m.pod = None;
            m.volume = Volume::Missing;
            m.answered = None;
        }
    }
    let mut steps = Vec::new();
    for _ in 0..100 {
        let step = plan(&o);
        match &step {
            Step::InSync => break,
            Step::Wait { .. } | Step::Refuse { .. } => panic!("stuck: {step:?} in {o:#?}"),
            _ => apply(&mut o, &step),
        }
        steps.push(step);
        // What the member list can be confirmed by: a quorum of the voters answering.
        o.list_confirmed = o.quorum_without(None);
    }
    assert_eq!(plan(&o), Step::InSync, "{steps:#?}");
    assert_eq!(voters(&o), ["demo-0", "demo-3", "demo-4"]);
    let forced: Vec<usize> = (0..steps.len())
        .filter(|i| matches!(steps[*i], Step::ForceNewCluster { .. }))
        .collect();
    assert_eq!(forced.len(), 1, "{steps:#?}");
    // The flag goes (the pod is made again without it) before anyone is added.
    let unflagged = steps
        .iter()
        .position(|s| matches!(s, Step::StartMember { member, .. } if member == "demo-0"))
        .expect("demo-0 started again");
    let added = steps
        .iter()
        .position(|s| matches!(s, Step::AddLearner { .. }))
        .expect("a learner added");
    assert!(forced[0] < unflagged && unflagged < added, "{steps:#?}");
    assert!(o.members.iter().all(|m| !m.pod.as_ref().unwrap().forced));
}

#[test]
fn an_in_place_restore_stops_everything_then_creates_the_cluster_again() {
    use crate::crd::{RestorePhase, RestoreProgress};
    let progress = |phase| {
        Some(RestoreProgress {
            name: "r1".into(),
            phase,
            ..RestoreProgress::default()
        })
    };
    let mut o = running(3, 3);
    o.want.restore = Some("r1".into());
    assert_eq!(plan(&o), Step::BeginRestore { name: "r1".into() });
    // An operation in progress or no quorum does not hold a restore back.
    let mut busy = with_op(o.clone(), OperationKind::AddMember, "demo-3");
    busy.list_confirmed = false;
    assert_eq!(plan(&busy), Step::BeginRestore { name: "r1".into() });
    // Another restore, finished, is no reason not to begin this one.
    o.restore = Some(RestoreProgress {
        name: "r0".into(),
        phase: RestorePhase::Completed,
        ..RestoreProgress::default()
    });
    assert_eq!(plan(&o), Step::BeginRestore { name: "r1".into() });

    o.restore = progress(RestorePhase::Stopping);
    o.list_confirmed = false;
    assert_eq!(
        plan(&o),
        Step::DeletePod {
            member: "demo-0".into()
        }
    );
    o.members.iter_mut().for_each(|m| m.pod = None);
    assert_eq!(
        plan(&o),
        Step::DeleteVolume {
            member: "demo-0".into()
        }
    );
    o.members
        .iter_mut()
        .for_each(|m| m.volume = Volume::Missing);
    assert_eq!(plan(&o), Step::ResetForRestore);

    // Forgotten: created again from a seed with a new name.
    let mut again = running(3, 0);
    again.cluster_id = None;
    again.want.restore = Some("r1".into());
    again.restore = progress(RestorePhase::Restoring);
    again.next_ordinal = 3;
    assert_eq!(
        begun(&plan(&again)),
        Some((OperationKind::Bootstrap, "demo-3"))
    );
    // Not yet as specified: the usual steps; then finished.
    let mut growing = running(3, 1);
    growing.want.restore = Some("r1".into());
    growing.restore = progress(RestorePhase::Restoring);
    assert_eq!(
        begun(&plan(&growing)),
        Some((OperationKind::AddMember, "demo-1"))
    );
    let mut done = running(3, 3);
    done.want.restore = Some("r1".into());
    done.restore = progress(RestorePhase::Restoring);
    assert_eq!(plan(&done), Step::FinishRestore);
    done.restore = progress(RestorePhase::Completed);
    assert_eq!(plan(&done), Step::InSync);
}

#[test]
fn auth_is_enabled_once_the_cluster_is_as_specified() {
    let mut o = running(3, 3);
    o.want.auth = Some(Password("p".into()));
    assert_eq!(plan(&o), Step::EnableAuth);
    // Membership work comes first.
    let mut growing = running(3, 2);
    growing.want.auth = o.want.auth.clone();
    assert_eq!(
        begun(&plan(&growing)),
        Some((OperationKind::AddMember, "demo-2"))
    );
    o.auth_enabled = true;
    assert_eq!(plan(&o), Step::InSync);
    assert_eq!(format!("{:?}", o.want.auth), "Some(Password(..))");
}

#[test]
fn with_no_survivor_the_cluster_is_restored_from_its_latest_backup_when_allowed() {
    use crate::crd::{RestorePhase, RestoreProgress};
    let mut o = majority_lost(true, 60);
    o.members.iter_mut().for_each(|m| m.answered = None);
    o.want.recovery.backup = Some(crate::act::Restore {
        args: vec!["--from=s3://b/demo".into()],
        credentials_secret: None,
        volume_claim_name: None,
    });
    let Step::BeginRestore { name } = plan(&o) else {
        panic!("{:?}", plan(&o))
    };
    assert!(name.starts_with("quorum-loss-"), "{name}");
    // Not before `after`.
    let mut early = o.clone();
    early.quorum_lost_since = Some(now());
    assert!(matches!(
        plan(&early),
        Step::Wait {
            reason: "QuorumLost",
            ..
        }
    ));
    // Manual: only with the annotation naming the latest backup.
    let mut manual = o.clone();
    manual.want.recovery.automatic = false;
    let Step::Refuse { message, .. } = plan(&manual) else {
        panic!("{:?}", plan(&manual))
    };
    assert!(
        message.contains("oxcd.io/force-new-cluster=latest-backup"),
        "{message}"
    );
    manual.want.recovery.approved = Some(LATEST_BACKUP.into());
    assert!(matches!(plan(&manual), Step::BeginRestore { .. }));
    // Once begun, the restore goes on with no EtcdRestore asking for it.
    o.restore = Some(RestoreProgress {
        name,
        phase: RestorePhase::Stopping,
        ..RestoreProgress::default()
    });
    o.members.iter_mut().for_each(|m| {
        m.pod = None;
        m.volume = Volume::Missing;
    });
    assert_eq!(plan(&o), Step::ResetForRestore);
}
