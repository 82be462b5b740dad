//! `--force-new-cluster` after the loss of a majority: two of three members killed and their
//! data deleted, the survivor restarted with the flag becomes a one-member cluster with its
//! data, its member id and its cluster id, as etcd 3.4's does; members are then added back
//! one at a time, and the flag is dropped at the next restart.

use std::time::Duration;

use etcd_client::GetOptions;
use oxcd_testkit::{Cluster, binary, wait_for};

const CONVERGE: Duration = Duration::from_secs(60);
const KEYS: usize = 50;

/// Every `force/` key with its value and mod revision, as member `i` reads it serialized.
async fn keys_on(cluster: &Cluster, i: usize) -> Vec<(String, String, i64)> {
    let mut c = cluster.client(i).await;
    let got = c
        .get(
            "force/",
            Some(GetOptions::new().with_prefix().with_serializable()),
        )
        .await
        .unwrap();
    got.kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().unwrap().to_string(),
                kv.value_str().unwrap().to_string(),
                kv.mod_revision(),
            )
        })
        .collect()
}

/// What the survivor held before the loss and holds after it was forced.
type Kept = (Vec<(String, String, i64)>, Vec<(String, String, i64)>);

/// Writes, loses two members with their data, forces the survivor: answers the cluster, the
/// survivor's index and its keys before and after, after checking that it alone is the
/// cluster, under its ids.
async fn lose_a_majority_and_force(binary: std::path::PathBuf) -> (Cluster, usize, Kept) {
    let mut cluster = Cluster::new(binary, 3, &[]).unwrap();
    cluster.spawn_all().unwrap();
    let leader = cluster.leader().await;
    let mut c = cluster.client(leader).await;
    for i in 0..KEYS {
        c.put(format!("force/{i:03}"), format!("v{i}"), None)
            .await
            .unwrap();
    }
    // The survivor is a follower that has applied every acknowledged write.
    let survivor = (0..3).find(|&i| i != leader).unwrap();
    let before = wait_for(CONVERGE, "the survivor to apply every write", || async {
        let keys = keys_on(&cluster, survivor).await;
        (keys.len() == KEYS).then_some(keys)
    })
    .await;
    let (member_id, cluster_id) = {
        let mut c = cluster.client(survivor).await;
        let status = c.status().await.unwrap();
        let header = status.header().unwrap();
        (header.member_id(), header.cluster_id())
    };
    for i in (0..3).filter(|&i| i != survivor) {
        cluster.members[i].kill9();
        std::fs::remove_dir_all(&cluster.members[i].data_dir).unwrap();
    }
    let s = &mut cluster.members[survivor];
    s.kill9();
    s.launch.extra_args.push("--force-new-cluster".into());
    s.spawn().unwrap();

    let mut c = cluster.client(survivor).await;
    let list = wait_for(CONVERGE, "a one-member cluster", || {
        let mut c = c.clone();
        async move {
            let list = c.member_list().await.ok()?;
            (list.members().len() == 1).then_some(list)
        }
    })
    .await;
    assert_eq!(list.members()[0].id(), member_id);
    assert_eq!(list.header().unwrap().cluster_id(), cluster_id);
    let after = keys_on(&cluster, survivor).await;
    c.put("force/after", "yes", None).await.unwrap();
    (cluster, survivor, (before, after))
}

#[tokio::test]
async fn a_survivor_forced_into_a_new_cluster_keeps_all_its_data_and_grows_back() {
    // etcd keeps what its log held up to the commit point it had recorded, which may lag
    // what it had applied and acknowledged: its last writes may be gone.
    let (etcd, _, (before, after)) = lose_a_majority_and_force(binary::etcd()).await;
    drop(etcd);
    assert!(after.iter().all(|kv| before.contains(kv)), "{after:?}");
    if after.len() < before.len() {
        eprintln!(
            "etcd 3.4 lost {} applied write(s)",
            before.len() - after.len()
        );
    }
    // oxcd keeps every entry its log holds.
    let (mut cluster, survivor, (before, after)) =
        lose_a_majority_and_force(binary::oxcd().unwrap()).await;
    assert_eq!(after, before);

    // Grow back to three, one member at a time.
    for size in 2..=3 {
        let j = cluster.new_joiner();
        let c = cluster.client(survivor).await;
        let peer_url = cluster.members[j].peer_url();
        // Refused as etcd refuses it until the members added before have been connected for
        // five seconds ("unhealthy cluster"), as clients retry.
        let added = wait_for(CONVERGE, "member add", || {
            let (mut c, peer_url) = (c.clone(), peer_url.clone());
            async move {
                match c.member_add([peer_url], None).await {
                    Ok(added) => Some(added),
                    Err(e) if e.to_string().contains("unhealthy cluster") => None,
                    Err(e) => panic!("member add: {e}"),
                }
            }
        })
        .await;
        assert_eq!(added.member_list().len(), size);
        cluster.start_joining(j);
        let mut joined = cluster.client(j).await;
        let got = joined
            .get(
                "force/",
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
            .unwrap();
        assert_eq!(got.count() as usize, KEYS + 1);
        // The next member may be added once this one has started (published its name).
        wait_for(CONVERGE, "the new member to start", || {
            let mut c = c.clone();
            async move {
                let list = c.member_list().await.ok()?;
                let started = list
                    .members()
                    .iter()
                    .filter(|m| !m.name().is_empty())
                    .count();
                (started == size).then_some(())
            }
        })
        .await;
    }
    // Restarted without the flag, the survivor stays one of the three.
    let s = &mut cluster.members[survivor];
    s.stop();
    s.launch.extra_args.retain(|a| a != "--force-new-cluster");
    s.spawn().unwrap();
    let mut c = cluster.client(survivor).await;
    let list = wait_for(CONVERGE, "three members after the restart", || {
        let mut c = c.clone();
        async move {
            let list = c.member_list().await.ok()?;
            (list.members().len() == 3 && list.members().iter().all(|m| !m.is_learner()))
                .then_some(list)
        }
    })
    .await;
    assert_eq!(list.members().len(), 3);
    c.put("force/restarted", "yes", None).await.unwrap();
    let got = c
        .get(
            "force/",
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .unwrap();
    assert_eq!(got.count() as usize, KEYS + 2);
}
