//! The harness itself on real clusters: its peer proxies really partition members, and
//! its admin actions do what they say.

use std::time::Duration;

use oxcd_e2e::harness::{Cluster, ClusterOptions, LinkMode};

use crate::robustness::ONE_CLUSTER_AT_A_TIME;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolating_the_leader_makes_the_rest_elect_another_and_heal_reunites_them() {
    let _turn = ONE_CLUSTER_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start(ClusterOptions::default()).await.unwrap();
    let old = cluster.leader(Duration::from_secs(10)).await.unwrap();
    let rest: Vec<usize> = (0..cluster.size()).filter(|&i| i != old).collect();

    cluster.isolate(old, LinkMode::Blackhole);
    let new = cluster
        .leader_among(&rest, Duration::from_secs(20))
        .await
        .unwrap();
    assert_ne!(new, old, "the majority side elects one of its own");
    let mut client = cluster.client_of(&rest).await.unwrap();
    client.put("during-partition", "v", None).await.unwrap();

    cluster.heal();
    cluster.wait_ready(Duration::from_secs(30)).await.unwrap();
    let revision = cluster
        .wait_converged(Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        revision >= 2,
        "the write made during the partition reached every member"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_partition_from_a_follower_keeps_the_leader() {
    let _turn = ONE_CLUSTER_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start(ClusterOptions::default()).await.unwrap();
    let leader = cluster.leader(Duration::from_secs(10)).await.unwrap();
    let follower = (0..cluster.size()).find(|&i| i != leader).unwrap();
    // The follower cannot dial the leader, but the leader's own connection to it carries
    // heartbeats and their answers: nothing times out, the leader stays.
    cluster.set_link(follower, leader, LinkMode::Drop);
    let mut client = cluster.client_of(&[leader]).await.unwrap();
    for i in 0..5 {
        client.put(format!("k{i}"), "v", None).await.unwrap();
    }
    cluster.heal();
    assert_eq!(
        cluster.leader(Duration::from_secs(10)).await.unwrap(),
        leader
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_leader_pause_resume_and_wipe() {
    let _turn = ONE_CLUSTER_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start(ClusterOptions::default()).await.unwrap();
    let leader = cluster.leader(Duration::from_secs(10)).await.unwrap();
    let target = (0..cluster.size()).find(|&i| i != leader).unwrap();
    cluster.move_leader(target).await.unwrap();
    assert_eq!(
        cluster.leader(Duration::from_secs(10)).await.unwrap(),
        target
    );

    cluster.pause(leader).unwrap();
    assert_eq!(cluster.live().len(), cluster.size() - 1);
    cluster.resume(leader).unwrap();

    let (old_id, _) = cluster.status(leader).await.unwrap();
    cluster.wipe(leader).await.unwrap();
    let (new_id, _) = cluster.status(leader).await.unwrap();
    assert_ne!(old_id, new_id, "a wiped member comes back as a new member");
    cluster
        .wait_converged(Duration::from_secs(30))
        .await
        .unwrap();
}
