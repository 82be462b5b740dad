//! `--strict-reconfig-check` (on by default, as in etcd): the leader refuses membership
//! changes that would leave fewer voters connected to it than a quorum, where connected
//! means answering it without a break for at least five seconds (etcd's HealthInterval and
//! rafthttp's `ActiveSince`). etcd 3.4's `mayAddMember`/`mayRemoveMember` are the reference.

use std::time::{Duration, Instant};

use etcd_client::MemberAddOptions;
use oxcd_testkit::Cluster;
use tonic::Code;

use crate::calls::{UNHEALTHY, once_healthy, status};

/// etcd's HealthInterval.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

async fn member_id(cluster: &Cluster, i: usize) -> u64 {
    let mut c = cluster.client(i).await;
    let status = c.status().await.expect("status");
    status.header().expect("header").member_id()
}

#[tokio::test]
async fn a_removal_right_after_start_is_refused_until_the_peers_were_connected_5s() {
    let spawned = Instant::now();
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    let victim = (leader + 1) % 3;
    let victim_id = member_id(&cluster, victim).await;
    let c = cluster.client(leader).await;
    match c.clone().member_remove(victim_id).await {
        Err(e) => assert_eq!(status(e), (Code::Unavailable, UNHEALTHY.to_string())),
        // The processes did not exist 5 s before: no peer can have been connected that long.
        Ok(_) => assert!(
            spawned.elapsed() >= HEALTH_INTERVAL,
            "removed a voter before its peers could have been connected for 5 s"
        ),
    }
    // Through a follower too: the leader judges it.
    let via = (leader + 2) % 3;
    let f = cluster.client(via).await;
    if let Err(e) = f.clone().member_remove(victim_id).await {
        assert_eq!(status(e), (Code::Unavailable, UNHEALTHY.to_string()));
    }
    once_healthy("the removal", &f, |mut c| async move {
        c.member_remove(victim_id).await
    })
    .await;
    let members = c.clone().member_list().await.expect("member list");
    assert_eq!(members.members().len(), 2);
    assert!(members.members().iter().all(|m| m.id() != victim_id));
}

/// With a voter down, the leader refuses to add members (learners too) or remove a
/// connected voter ("unhealthy cluster"), but removing the member that is down works; a
/// voter is not added when the started members would lose their quorum ("not enough started
/// members").
#[tokio::test]
async fn with_a_voter_down_only_its_removal_is_accepted() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    let (down, up) = ((leader + 1) % 3, (leader + 2) % 3);
    let down_id = member_id(&cluster, down).await;
    let up_id = member_id(&cluster, up).await;
    let lc = cluster.client(leader).await;
    let fc = cluster.client(up).await;
    cluster.members[down].kill9();

    for learner in [false, true] {
        let opts = learner.then(|| MemberAddOptions::new().with_is_learner());
        let err = fc
            .clone()
            .member_add(["http://127.0.0.1:1"], opts)
            .await
            .expect_err("add with a voter down");
        assert_eq!(status(err), (Code::Unavailable, UNHEALTHY.to_string()));
    }
    // Whether the leader has noticed yet that the member is down or not, and however long
    // the survivors have been connected, removing a connected voter leaves no quorum.
    let err = lc
        .clone()
        .member_remove(up_id)
        .await
        .expect_err("remove a connected voter");
    assert_eq!(status(err), (Code::Unavailable, UNHEALTHY.to_string()));
    // Refused while the leader has not noticed the member is down and the survivors have
    // not been connected for 5 s; then accepted.
    once_healthy(
        "the removal of the member that is down",
        &lc,
        |mut c| async move { c.member_remove(down_id).await },
    )
    .await;

    // Two started voters: a third (unstarted) keeps a quorum of started ones, a fourth not.
    once_healthy("a third voter", &lc, |mut c| async move {
        c.member_add(["http://127.0.0.1:2"], None).await
    })
    .await;
    let err = lc
        .clone()
        .member_add(["http://127.0.0.1:3"], None)
        .await
        .expect_err("add a fourth voter");
    assert_eq!(
        status(err),
        (
            Code::FailedPrecondition,
            "etcdserver: re-configuration failed due to not enough started members".to_string()
        )
    );
    assert_eq!(lc.clone().member_list().await.unwrap().members().len(), 3);
}
