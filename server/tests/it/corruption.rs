//! Every member hashes the same history to the same value; the leader's periodic check
//! (`--experimental-corrupt-check-time`) finds a member whose state was altered on disk and
//! raises CORRUPT, after which the cluster refuses writes, as etcd does.

use std::time::Duration;

use etcd_client::{AlarmAction, AlarmType};
use oxcd::mvcc::{Revision, rev_key};
use oxcd::storage::{Backend, SledBackend, WriteBatch};
use oxcd_testkit::{Cluster, wait_for};
use tonic::Code;

use crate::calls::status;

/// Alters one stored value of the stopped `member`, the version written at `rev`: its last
/// byte, so that the record stays valid.
fn alter(member: &oxcd_testkit::Member, rev: i64) {
    let dir = member.data_dir.join("member/state/db.0");
    let db = SledBackend::open_db(&dir).unwrap();
    let state = SledBackend::new(&db, "state").unwrap();
    let key = rev_key(Revision { main: rev, sub: 0 });
    let mut record = state.get(&key).unwrap().expect("the record");
    *record.last_mut().unwrap() ^= 1;
    let mut batch = WriteBatch::default();
    batch.put(key, record);
    state.write(batch).unwrap();
    state.flush().unwrap();
}

#[tokio::test]
async fn a_member_altered_on_disk_refuses_to_start_with_the_initial_check() {
    let mut cluster = Cluster::start_with(3, &["--experimental-initial-corrupt-check"]);
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let mut c = cluster.client(leader).await;
    let rev = c
        .put("k", "value", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    for i in 0..3 {
        cluster.client(i).await.get("k", None).await.unwrap();
    }
    // Restarted as it was, the follower agrees with its peers and starts.
    cluster.members[follower].stop();
    cluster.members[follower].restart();
    cluster.client(follower).await.get("k", None).await.unwrap();
    // Altered, it does not.
    cluster.members[follower].stop();
    alter(&cluster.members[follower], rev);
    cluster.members[follower].restart();
    let code = cluster.members[follower].wait_exit(Duration::from_secs(60));
    let log = cluster.members[follower].log();
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("found data inconsistency with peers"), "{log}");
    // The others serve on.
    c.put("after", "v", None).await.unwrap();
}

#[tokio::test]
async fn a_member_altered_on_disk_is_found_and_the_cluster_stops_writing() {
    let mut cluster = Cluster::start_with(3, &["--experimental-corrupt-check-time", "1s"]);
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let mut c = cluster.client(leader).await;
    let mut altered_rev = 0;
    for (i, key) in ["a", "b", "c", "d"].into_iter().enumerate() {
        let put = c.put(key, format!("value-{i}"), None).await.unwrap();
        if key == "c" {
            altered_rev = put.header().unwrap().revision();
        }
    }
    c.delete("a", None).await.unwrap();
    c.put("b", "again", None).await.unwrap();
    let revision = c.get("d", None).await.unwrap().header().unwrap().revision();

    // Mixed writes done, every member hashes the same history alike.
    let mut hashes = Vec::new();
    for i in 0..3 {
        let mut ci = cluster.client(i).await;
        ci.get("d", None).await.unwrap(); // linearizable: it has applied everything
        let h = ci.hash_kv(revision).await.unwrap();
        hashes.push((h.hash(), h.compact_version()));
    }
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
    let follower_id = cluster
        .client(follower)
        .await
        .status()
        .await
        .unwrap()
        .header()
        .unwrap()
        .member_id();

    cluster.members[follower].stop();
    alter(&cluster.members[follower], altered_rev);
    cluster.members[follower].restart();

    wait_for(Duration::from_secs(60), "the CORRUPT alarm", || {
        let endpoint = cluster.members[leader].endpoint();
        async move {
            let mut c = etcd_client::Client::connect([endpoint], None).await.ok()?;
            let alarms = c
                .alarm(AlarmAction::Get, AlarmType::None, None)
                .await
                .ok()?;
            let raised = alarms
                .alarms()
                .iter()
                .any(|a| a.alarm() == AlarmType::Corrupt && a.member_id() == follower_id);
            raised.then_some(())
        }
    })
    .await;
    let refused = c.put("after", "v", None).await.unwrap_err();
    assert_eq!(
        status(refused),
        (Code::DataLoss, "etcdserver: corrupt cluster".to_string())
    );
}
