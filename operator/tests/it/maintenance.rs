//! `oxcd-operator defrag` on a real 3-member cluster: with NOSPACE raised the store is
//! compacted first; every member defragmented, followers first and the leader last; the
//! NOSPACE alarm disarmed once every member is back under the quota, so writes work again;
//! nothing defragmented while a member is down.

use std::process::Command;

use etcd_client::{AlarmAction, AlarmType, DeleteOptions};
use oxcd_testkit::Cluster;
use serde_json::Value;

const QUOTA: &str = "2097152";

fn defrag(endpoints: &str, more: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_oxcd-operator"))
        .args(["--log-format", "text", "defrag", "--endpoints", endpoints])
        .args(more)
        .args(["--quota-backend-bytes", QUOTA])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn defrag_goes_through_followers_first_disarms_nospace_and_skips_a_degraded_cluster() {
    let mut cluster = Cluster::start_with(3, &["--quota-backend-bytes", QUOTA]);
    let leader = cluster.leader().await;
    let mut c = cluster.client(leader).await;
    let value = "x".repeat(64 * 1024);
    let mut written = 0;
    while c
        .put(format!("k{written:04}"), value.as_str(), None)
        .await
        .is_ok()
    {
        written += 1;
        assert!(written < 1000, "the quota was never enforced");
    }
    let alarms = c
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .unwrap();
    assert!(!alarms.alarms().is_empty(), "NOSPACE raised");
    // Status lists it among its errors, as etcd's does: what the operator's NoSpace
    // condition reads.
    let access = oxcd_operator::members::Access::plain();
    let endpoint = cluster.members[leader].endpoint();
    let status = oxcd_operator::members::status(&access, &endpoint)
        .await
        .unwrap();
    assert!(
        status.errors.iter().any(|e| e.contains("alarm:NOSPACE")),
        "{:?}",
        status.errors
    );
    // The keys are deleted; the command compacts (the alarm is up) and defragments.
    let deleted = c
        .delete("k", Some(DeleteOptions::new().with_prefix()))
        .await
        .unwrap();
    let revision = deleted.header().unwrap().revision();

    let endpoints: Vec<String> = cluster.members.iter().map(|m| m.endpoint()).collect();
    // One endpoint and --cluster, as the CronJob reaches the members through the client
    // Service: every member in the member list is defragmented.
    let one = &endpoints[(leader + 1) % 3];
    let (ok, stdout, stderr) = defrag(one, &["--cluster"]);
    assert!(ok, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let done = report["defragmented"].as_array().unwrap();
    assert_eq!(done.len(), 3, "{report}");
    let mut reached: Vec<&str> = done
        .iter()
        .map(|d| d["endpoint"].as_str().unwrap())
        .collect();
    reached.sort();
    let mut all: Vec<&str> = endpoints.iter().map(String::as_str).collect();
    all.sort();
    assert_eq!(reached, all, "{report}");
    let leaders: Vec<bool> = done
        .iter()
        .map(|d| d["leader"].as_bool().unwrap())
        .collect();
    assert_eq!(leaders, [false, false, true], "followers first: {report}");
    assert_eq!(done[2]["endpoint"], cluster.members[leader].endpoint());
    for d in done {
        assert!(
            d["dbSizeAfter"].as_i64().unwrap() < QUOTA.parse::<i64>().unwrap(),
            "{report}"
        );
    }
    assert_eq!(report["disarmedNospace"], true, "{report}");
    assert!(
        report["compactedAt"].as_i64().unwrap() >= revision,
        "{report}"
    );
    let status = oxcd_operator::members::status(&access, &endpoint)
        .await
        .unwrap();
    assert!(status.errors.is_empty(), "{:?}", status.errors);
    for i in 0..3 {
        cluster
            .client(i)
            .await
            .put("after", "v", None)
            .await
            .unwrap();
    }

    // A member down: nothing is defragmented.
    let follower = (leader + 1) % 3;
    cluster.members[follower].kill9();
    let (ok, stdout, stderr) = defrag(&endpoints.join(","), &[]);
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("does not answer: defragmentation skipped"),
        "{stderr}"
    );
    assert!(stdout.is_empty(), "{stdout}");
}
