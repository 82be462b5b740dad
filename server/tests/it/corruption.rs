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

    // Alter one stored value of the stopped follower: its last byte, still a valid record.
    cluster.members[follower].stop();
    {
        let dir = cluster.members[follower].data_dir.join("member/state/db.0");
        let db = SledBackend::open_db(&dir).unwrap();
        let state = SledBackend::new(&db, "state").unwrap();
        let key = rev_key(Revision {
            main: altered_rev,
            sub: 0,
        });
        let mut record = state.get(&key).unwrap().expect("the record of c");
        *record.last_mut().unwrap() ^= 1;
        let mut batch = WriteBatch::default();
        batch.put(key, record);
        state.write(batch).unwrap();
        state.flush().unwrap();
    }
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
