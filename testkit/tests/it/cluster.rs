//! Clusters: members started together agree on a leader; a joiner joins.

use std::time::Duration;

use oxcd_testkit::{Cluster, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_agree_on_a_leader_and_a_fourth_joins() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    assert!(leader < 3);
    assert_eq!(cluster.live(), vec![0, 1, 2]);

    let j = cluster.new_joiner();
    let c = cluster.client(leader).await;
    let peer_url = cluster.members[j].peer_url();
    // Refused ("unhealthy cluster") until the leader's peers have been connected for 5 s.
    wait_for(Duration::from_secs(40), "member add to be accepted", || {
        let (mut c, peer_url) = (c.clone(), peer_url.clone());
        async move { c.member_add([peer_url], None).await.ok() }
    })
    .await;
    cluster.start_joining(j);
    let joined = cluster.client(j).await;
    // The joiner answers Status before it has caught up with the membership.
    wait_for(
        Duration::from_secs(20),
        "the joiner to list 4 members",
        || {
            let mut joined = joined.clone();
            async move {
                let members = joined.member_list().await.ok()?;
                (members.members().len() == 4).then_some(())
            }
        },
    )
    .await;

    let follower = (0..3).find(|&i| i != leader).unwrap();
    cluster.members[follower].kill9();
    assert_eq!(cluster.running_endpoints().len(), 3);
    assert_eq!(cluster.leader().await, leader);
}
