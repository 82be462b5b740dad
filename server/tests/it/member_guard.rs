//! `oxcd member-guard`, the operator's init step, run against data dirs written by real
//! members: the right ids pass, another member's or cluster's are refused, an emptied
//! volume is refused when the member had data, and a removed member's data dir never passes.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use oxcd_testkit::{Cluster, Member};

/// The guard's exit code, stdout and stderr.
fn guard(data_dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_oxcd"))
        .arg("member-guard")
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .output()
        .expect("run oxcd member-guard");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// (member id, cluster id) of a running member, as its response headers give them.
async fn ids(member: &Member) -> (u64, u64) {
    let mut c = member.client().await;
    let status = c.status().await.expect("status");
    let header = status.header().expect("header");
    (header.member_id(), header.cluster_id())
}

#[tokio::test]
async fn a_stopped_members_data_dir_passes_only_with_its_own_ids() {
    let mut member = Member::start();
    let (member_id, cluster_id) = ids(&member).await;
    member.stop();
    let dir = member.data_dir.clone();
    let (m, c) = (format!("{member_id:x}"), format!("{cluster_id:x}"));

    let (code, out, _) = guard(&dir, &["--member-id", &m, "--cluster-id", &c]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        format!(
            "data dir {} holds member {m} of cluster {c}: it may start\n",
            dir.display()
        )
    );
    // Leading zeros are fine; so is giving no id, or asking for data that is there.
    let padded = format!("{member_id:020x}");
    assert_eq!(
        guard(&dir, &["--member-id", &padded, "--require-data"]).0,
        0
    );
    assert_eq!(guard(&dir, &[]).0, 0);

    let other = format!("{:x}", member_id ^ 1);
    let (code, _, err) = guard(&dir, &["--member-id", &other]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "oxcd member-guard: data dir {} belongs to member {m}, not to member {other}\n",
            dir.display()
        )
    );
    let other = format!("{:x}", cluster_id ^ 1);
    let (code, _, err) = guard(&dir, &["--member-id", &m, "--cluster-id", &other]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "oxcd member-guard: data dir {} belongs to cluster {c}, not to cluster {other}\n",
            dir.display()
        )
    );

    // Something else in the dir: not a member's data dir.
    std::fs::remove_file(dir.join("member/identity")).unwrap();
    let (code, _, err) = guard(&dir, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("holds no member's data"), "{err}");

    // The volume emptied: fine for a new member, not for one that has started before.
    member.wipe_data().unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let (code, out, _) = guard(&dir, &["--member-id", &m]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "data dir {} is empty: a new member may start in it\n",
            dir.display()
        )
    );
    let (code, _, err) = guard(&dir, &["--member-id", &m, "--require-data"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "oxcd member-guard: data dir {} is empty but member {m} has started before: refusing to start it, it must be replaced\n",
            dir.display()
        )
    );
    std::fs::remove_dir(&dir).unwrap();
    assert_eq!(
        guard(&dir, &["--require-data"]).0,
        1,
        "a missing dir is empty"
    );
}

#[tokio::test]
async fn bad_usage_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(guard(dir.path(), &["--member-id", "not-hex"]).0, 2);
    assert_eq!(guard(dir.path(), &["--no-such-flag"]).0, 2);
    let out = Command::new(env!("CARGO_BIN_EXE_oxcd"))
        .arg("member-guard")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--data-dir is required");
}

#[tokio::test]
async fn a_removed_members_data_dir_is_refused() {
    // The quorum check is not what this test is about: removal right after start.
    let mut cluster = Cluster::start_with(3, &["--strict-reconfig-check=false"]);
    let leader = cluster.leader().await;
    let victim = (leader + 1) % 3;
    let (victim_id, cluster_id) = ids(&cluster.members[victim]).await;
    let mut c = cluster.client(leader).await;
    c.member_remove(victim_id).await.expect("member remove");
    // Stopped and started again (if it has not stopped by itself), it learns from its peers
    // that it was removed, marks its data dir and exits.
    let member = &mut cluster.members[victim];
    member.stop();
    member.restart();
    let exited = member.exited_within(Duration::from_secs(20)).await;
    assert!(
        exited.is_some(),
        "removed member still runs\n{}",
        member.log()
    );
    let dir = member.data_dir.clone();
    // The member marks its data dir before it stops.
    let (code, _, err) = guard(&dir, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "oxcd member-guard: member {victim_id:x} was removed from the cluster; its data dir must not rejoin\n"
        )
    );
    // Even when asked with its own ids.
    let (m, cl) = (format!("{victim_id:x}"), format!("{cluster_id:x}"));
    assert_eq!(guard(&dir, &["--member-id", &m, "--cluster-id", &cl]).0, 1);
}
