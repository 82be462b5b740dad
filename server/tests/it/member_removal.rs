//! MemberRemove taking effect everywhere at once: once it has answered, no live member lists
//! the removed one, and the removed member stops serving and exits, whether it was up when
//! the removal was committed (the leader tells it), cut off (it asks its peers once it is
//! back), or stopped (it asks them when it starts again), as etcd's removed members learn
//! "the member has been permanently removed from the cluster" from their peers.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use etcd_client::Client;
use oxcd_testkit::{Cluster, Member};

use crate::calls::once_healthy;

/// How long a removed member may take to notice and exit.
const EXIT: Duration = Duration::from_secs(20);

async fn member_id(cluster: &Cluster, i: usize) -> u64 {
    let mut c = cluster.client(i).await;
    let status = c.status().await.expect("status");
    status.header().expect("header").member_id()
}

/// The member ids `c`'s member lists, sorted.
async fn listed(c: &Client) -> Vec<u64> {
    let members = c.clone().member_list().await.expect("member list");
    let mut ids: Vec<u64> = members.members().iter().map(|m| m.id()).collect();
    ids.sort();
    ids
}

/// Waits for a removed member to exit by itself, and checks it says why and that its data
/// dir is marked (`oxcd member-guard` refuses it).
async fn assert_exits_as_removed(member: &mut Member) {
    let status = member.exited_within(EXIT).await;
    assert!(
        status.is_some(),
        "{} was removed but still runs\n{}",
        member.name,
        member.log()
    );
    assert!(
        !status.unwrap().success(),
        "a removed member exits non-zero"
    );
    let log = member.log();
    assert!(
        log.contains("the member has been permanently removed from the cluster"),
        "{} does not say why it stopped:\n{log}",
        member.name
    );
    assert_eq!(
        guard_code(&member.data_dir),
        Some(1),
        "data dir not marked removed"
    );
}

fn guard_code(data_dir: &Path) -> Option<i32> {
    Command::new(env!("CARGO_BIN_EXE_oxcd"))
        .arg("member-guard")
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run oxcd member-guard")
        .status
        .code()
}

#[tokio::test]
async fn once_remove_answers_no_live_member_lists_the_removed_one_and_it_stops() {
    let mut cluster = Cluster::start(4);
    let leader = cluster.leader().await;
    // Through a follower (forwarded to the leader), removing another follower.
    let via = (leader + 1) % 4;
    let victim = (leader + 2) % 4;
    let mut ids = Vec::new();
    let mut clients = Vec::new();
    for i in 0..4 {
        ids.push(member_id(&cluster, i).await);
        clients.push(cluster.client(i).await);
    }
    let victim_id = ids[victim];
    let removed = once_healthy("member remove", &clients[via], |mut c| async move {
        c.member_remove(victim_id).await
    })
    .await;
    assert_eq!(removed.members().len(), 3);

    // Right away, with no waiting: every live member lists the three.
    let mut rest: Vec<u64> = ids.iter().copied().filter(|id| *id != victim_id).collect();
    rest.sort();
    for i in (0..4).filter(|i| *i != victim) {
        assert_eq!(
            listed(&clients[i]).await,
            rest,
            "MemberList through member {i}"
        );
    }
    assert_exits_as_removed(&mut cluster.members[victim]).await;
}

#[tokio::test]
async fn a_member_removed_while_cut_off_or_stopped_learns_it_from_its_peers() {
    let mut cluster = Cluster::start(4);
    let leader = cluster.leader().await;
    let (cut_off, stopped) = ((leader + 1) % 4, (leader + 2) % 4);
    let cut_off_id = member_id(&cluster, cut_off).await;
    let stopped_id = member_id(&cluster, stopped).await;
    let c = cluster.client(leader).await;

    // Frozen (SIGSTOP) while its removal commits: it receives nothing, not even the notice.
    cluster.members[cut_off].pause();
    once_healthy("removing the frozen member", &c, |mut c| async move {
        c.member_remove(cut_off_id).await
    })
    .await;
    // Back, it still believes in its leader until the heartbeats fail to come; then it asks
    // its peers.
    cluster.members[cut_off].resume();
    assert_exits_as_removed(&mut cluster.members[cut_off]).await;

    // Stopped while its removal commits, started afterwards.
    cluster.members[stopped].stop();
    once_healthy("removing the stopped member", &c, |mut c| async move {
        c.member_remove(stopped_id).await
    })
    .await;
    let logged = cluster.members[stopped].log().len();
    cluster.members[stopped].restart();
    assert_exits_as_removed(&mut cluster.members[stopped]).await;
    let log = cluster.members[stopped].log();
    let restarted = &log[logged..];
    assert!(
        restarted.contains("permanently removed") && restarted.contains("its peers"),
        "the restart does not say it learned from its peers that it was removed:\n{restarted}"
    );

    let now = listed(&c).await;
    assert_eq!(
        now.len(),
        2,
        "{now:x?}; removed {cut_off_id:x} {stopped_id:x}\n{}",
        cluster.log_tails(40)
    );
    let survivor = (0..4)
        .find(|i| ![leader, cut_off, stopped].contains(i))
        .unwrap();
    let mut s = cluster.client(survivor).await;
    s.put("after", "removals", None)
        .await
        .expect("the two carry on");
    assert_eq!(listed(&s).await.len(), 2);
}
