//! Multi-member clusters of real `oxcd` processes: replication and forwarding to the leader,
//! failover, catch-up through raft snapshots, quorum loss, membership changes (MemberAdd,
//! MemberPromote, MemberRemove, scaling under load), MoveLeader, leases and watches served
//! by followers. etcd 3.5 is the reference for every expectation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{
    Client, EventType, GetOptions, LeaseTimeToLiveOptions, MemberAddOptions, PutOptions,
    WatchOptions,
};
use oxcd_testkit::{Cluster, purged_upto, wait_for};
use tonic::Code;

use crate::calls::{once_healthy, status, text};

/// Deadline for a cluster to converge (elections, catch-up, membership changes).
const CONVERGE: Duration = Duration::from_secs(20);

/// A client that fails fast instead of retrying forever against a dead member.
async fn quick_client(endpoint: String) -> Option<Client> {
    let opts = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        .with_timeout(Duration::from_secs(15));
    Client::connect([endpoint], Some(opts)).await.ok()
}

/// The value of `key` read locally by the member (serializable), if present.
async fn local_get(c: &mut Client, key: &str) -> Option<String> {
    let resp = c
        .get(key, Some(GetOptions::new().with_serializable()))
        .await
        .ok()?;
    resp.kvs().first().map(|kv| text(kv.value()))
}

/// Every key under `prefix` and its value, read locally by the member.
async fn local_prefix(c: &mut Client, prefix: &str) -> Option<BTreeMap<String, String>> {
    let opts = GetOptions::new().with_prefix().with_serializable();
    let resp = c.get(prefix, Some(opts)).await.ok()?;
    Some(
        resp.kvs()
            .iter()
            .map(|kv| (text(kv.key()), text(kv.value())))
            .collect(),
    )
}

/// Waits until what member `i` holds under `prefix` (serializable reads) satisfies `done`.
async fn wait_local(
    cluster: &Cluster,
    i: usize,
    prefix: &str,
    what: &str,
    done: impl Fn(&BTreeMap<String, String>) -> bool,
) {
    let endpoint = cluster.members[i].endpoint();
    let done = &done;
    wait_for(CONVERGE, &format!("member {i} to hold {what}"), || {
        let endpoint = endpoint.clone();
        async move {
            let mut c = quick_client(endpoint).await?;
            let got = local_prefix(&mut c, prefix).await?;
            done(&got).then_some(())
        }
    })
    .await;
}

/// Waits until member `i` holds exactly `expected` under `prefix` (serializable reads).
async fn wait_local_prefix(
    cluster: &Cluster,
    i: usize,
    prefix: &str,
    expected: &BTreeMap<String, String>,
) {
    let what = format!("the {} keys under {prefix:?}", expected.len());
    wait_local(cluster, i, prefix, &what, |got| got == expected).await;
}

/// The member id of member `i`.
async fn member_id(cluster: &Cluster, i: usize) -> u64 {
    let mut c = cluster.client(i).await;
    c.status()
        .await
        .expect("status")
        .header()
        .expect("header")
        .member_id()
}

/// (leader id, is_learner) as member `i` reports in Status.
async fn status_of(cluster: &Cluster, i: usize) -> Option<(u64, bool)> {
    let mut c = quick_client(cluster.members[i].endpoint()).await?;
    let s = c.status().await.ok()?;
    Some((s.leader(), s.is_learner()))
}

/// Puts `key` through any of `endpoints`, retrying failures for a while; panics if none
/// succeeds.
async fn put_retrying(endpoints: &[String], key: &str, value: &str) {
    let deadline = Instant::now() + CONVERGE;
    let mut last = String::new();
    while Instant::now() < deadline {
        for endpoint in endpoints {
            let Some(mut c) = quick_client(endpoint.clone()).await else {
                continue;
            };
            match c.put(key, value, None).await {
                Ok(_) => return,
                Err(e) => last = e.to_string(),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no member accepted put {key}: {last}");
}

#[tokio::test]
async fn writes_through_any_member_are_read_by_every_member() {
    let mut cluster = Cluster::start(3);
    cluster.leader().await;
    let mut clients = Vec::new();
    for i in 0..3 {
        clients.push(cluster.client(i).await);
    }
    let mut last_rev = 0;
    for writer in 0..3 {
        let key = format!("via/{writer}");
        let put = clients[writer]
            .put(key.as_str(), format!("v{writer}"), None)
            .await
            .expect("put through member");
        let rev = put.header().unwrap().revision();
        assert!(
            rev > last_rev,
            "revisions grow across members: {rev} after {last_rev}"
        );
        last_rev = rev;
        for reader in 0..3 {
            // Linearizable: right after the acknowledged write, from any member.
            let got = clients[reader]
                .get(key.as_str(), None)
                .await
                .expect("linearizable get");
            assert_eq!(
                got.kvs().len(),
                1,
                "member {reader} reads {key} written through {writer}"
            );
            assert_eq!(got.kvs()[0].value(), format!("v{writer}").as_bytes());
            assert_eq!(got.kvs()[0].mod_revision(), rev);
            assert!(got.header().unwrap().revision() >= rev);
        }
    }
    // Serializable reads see the writes too, once each member has applied them.
    let expected: BTreeMap<String, String> = (0..3)
        .map(|i| (format!("via/{i}"), format!("v{i}")))
        .collect();
    for i in 0..3 {
        wait_local_prefix(&cluster, i, "via/", &expected).await;
    }
    // A follower's txn and delete are forwarded as well.
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let txn = etcd_client::Txn::new()
        .when([etcd_client::Compare::value(
            "via/1",
            etcd_client::CompareOp::Equal,
            "v1",
        )])
        .and_then([etcd_client::TxnOp::put("via/txn", "t", None)]);
    let txn = clients[follower]
        .txn(txn)
        .await
        .expect("txn through follower");
    assert!(txn.succeeded());
    let got = clients[leader].get("via/txn", None).await.unwrap();
    assert_eq!(
        got.kvs()[0].mod_revision(),
        txn.header().unwrap().revision()
    );
    let del = clients[follower]
        .delete("via/0", None)
        .await
        .expect("delete through follower");
    assert_eq!(del.deleted(), 1);
    for reader in 0..3 {
        let got = clients[reader].get("via/0", None).await.unwrap();
        assert!(got.kvs().is_empty(), "member {reader} sees the delete");
        assert_eq!(
            got.header().unwrap().revision(),
            del.header().unwrap().revision()
        );
    }
}

#[tokio::test]
async fn killed_leader_is_replaced_and_catches_up_after_restart() {
    let mut cluster = Cluster::start(3);
    let old = cluster.leader().await;
    let old_id = member_id(&cluster, old).await;
    let mut c = cluster.client(old).await;
    c.put("before", "1", None)
        .await
        .expect("put before the crash");
    cluster.members[old].kill9();
    let killed_at = Instant::now();

    let new = cluster.leader().await;
    assert_ne!(new, old);
    assert_ne!(member_id(&cluster, new).await, old_id);
    // Defaults: 1 s election timeout, so a few seconds; the bound only catches an election
    // that does not settle, with room for a loaded machine (how fast is not a test's job).
    assert!(
        killed_at.elapsed() < Duration::from_secs(30),
        "election took {:?}",
        killed_at.elapsed()
    );

    let survivors: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    for (n, i) in survivors.iter().enumerate() {
        let mut c = cluster.client(*i).await;
        c.put(format!("after/{n}"), "2", None)
            .await
            .expect("write through a survivor");
        let got = c.get("before", None).await.unwrap();
        assert_eq!(
            got.kvs()[0].value(),
            b"1",
            "the acknowledged write survived the leader"
        );
    }

    cluster.members[old].restart();
    let expected: BTreeMap<String, String> = (0..2)
        .map(|n| (format!("after/{n}"), "2".to_string()))
        .collect();
    wait_local_prefix(&cluster, old, "after/", &expected).await;
    let mut c = cluster.client(old).await;
    assert_eq!(local_get(&mut c, "before").await.as_deref(), Some("1"));
    // It rejoined as a follower of the new leader.
    let new_id = member_id(&cluster, new).await;
    wait_for(
        CONVERGE,
        "the restarted member to follow the new leader",
        || async { (status_of(&cluster, old).await?.0 == new_id).then_some(()) },
    )
    .await;
}

/// Many more writes than the leader keeps in its log after a snapshot (the test runs with
/// `--experimental-snapshot-catchup-entries 20`), so a member that missed them needs one.
const BEYOND_KEPT_LOG: usize = 600;

/// Puts `n` keys `{prefix}{i:05}` = `v{i}` through `endpoint`, `parallel` at a time; returns them.
async fn put_many(
    endpoint: &str,
    prefix: &str,
    n: usize,
    parallel: usize,
) -> BTreeMap<String, String> {
    let mut tasks = Vec::new();
    for t in 0..parallel {
        let endpoint = endpoint.to_string();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect([endpoint], None).await.expect("connect");
            for i in (t..n).step_by(parallel) {
                c.put(format!("{prefix}{i:05}"), format!("v{i}"), None)
                    .await
                    .expect("put");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (0..n)
        .map(|i| (format!("{prefix}{i:05}"), format!("v{i}")))
        .collect()
}

/// Adds raft entries (lease grants) through member `leader` until it has purged its log past
/// `index`: a member whose log ends before that can only catch up from a snapshot. (The
/// leader postpones a purge while a replication is using those entries, so how many writes
/// that takes depends on timing.)
async fn purge_past(cluster: &Cluster, leader: usize, index: u64) {
    let mut c = cluster.client(leader).await;
    wait_for(CONVERGE, "the leader to purge its log", || {
        let log = cluster.members[leader].log();
        let mut c = c.clone();
        async move {
            if purged_upto(&log) > index {
                return Some(());
            }
            for _ in 0..50 {
                c.lease_grant(60, None).await.ok()?;
            }
            None
        }
    })
    .await;
    let _ = c.status().await;
}

/// Three members that snapshot every 100 entries and keep 20 after it; with its leader and
/// the member the test will make lag.
async fn snapshotting_cluster() -> (Cluster, usize, usize) {
    let mut cluster = Cluster::start_with(
        3,
        &[
            "--snapshot-count",
            "100",
            "--experimental-snapshot-catchup-entries",
            "20",
        ],
    );
    let leader = cluster.leader().await;
    (cluster, leader, (leader + 1) % 3)
}

#[tokio::test]
async fn member_that_missed_compacted_log_catches_up_from_snapshot() {
    let (mut cluster, leader, lagging) = snapshotting_cluster().await;
    let mut lc = cluster.client(lagging).await;
    lc.put("early", "1", None)
        .await
        .expect("put before the kill");
    let last_index = lc.status().await.unwrap().raft_index();
    cluster.members[lagging].kill9();

    let expected = put_many(
        &cluster.members[leader].endpoint(),
        "bulk/",
        BEYOND_KEPT_LOG,
        64,
    )
    .await;
    purge_past(&cluster, leader, last_index).await;

    cluster.members[lagging].restart();
    wait_local_prefix(&cluster, lagging, "bulk/", &expected).await;
    let mut c = cluster.client(lagging).await;
    assert_eq!(local_get(&mut c, "early").await.as_deref(), Some("1"));
    // openraft's record that the leader had to send its snapshot: the log alone could not
    // have caught the member up.
    assert!(
        cluster.members[lagging]
            .log()
            .contains("install full snapshot"),
        "no snapshot was installed"
    );
    // And it keeps following: a new write reaches it.
    cluster
        .client(leader)
        .await
        .put("late", "2", None)
        .await
        .unwrap();
    wait_for(
        CONVERGE,
        "the caught-up member to apply new writes",
        || async {
            let mut c = quick_client(cluster.members[lagging].endpoint()).await?;
            (local_get(&mut c, "late").await? == "2").then_some(())
        },
    )
    .await;
}

/// etcd's answers to a proposal that cannot commit before the request deadline.
const NO_QUORUM_ERRORS: &[&str] = &[
    "etcdserver: request timed out",
    "etcdserver: request timed out, possibly due to previous leader failure",
    "etcdserver: request timed out, possibly due to connection lost",
    "etcdserver: no leader",
];

/// A put through member `i` that must fail (no quorum): it returns an error, promptly.
async fn assert_put_fails_without_quorum(cluster: &Cluster, i: usize, key: &str) {
    let mut c = cluster.client(i).await;
    // The server's deadline is 5 s + 2 × election timeout (1 s); the client's 15 s leave room
    // for a loaded machine and still catch a put that waits for a quorum forever.
    let put = tokio::time::timeout(Duration::from_secs(15), c.put(key, "lost", None)).await;
    let err = put
        .unwrap_or_else(|_| panic!("put through member {i} hung without a quorum"))
        .expect_err("put without a quorum");
    let (code, message) = status(err);
    assert_eq!(code, Code::Unavailable, "{message}");
    assert!(
        NO_QUORUM_ERRORS.contains(&message.as_str()),
        "unexpected error {message:?}"
    );
    // Serializable reads are still served locally.
    assert_eq!(local_get(&mut c, "base").await.as_deref(), Some("0"));
}

#[tokio::test]
async fn minority_loss_keeps_writes_going_majority_loss_fails_them_promptly() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    cluster
        .client(leader)
        .await
        .put("base", "0", None)
        .await
        .unwrap();
    // Round 1: both followers die, so the survivor is a leader without a quorum.
    // Round 2: the leader and a follower die, so the survivor is a follower without one.
    for round in 0..2 {
        let leader = cluster.leader().await;
        let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
        let (first, second, survivor) = match round {
            0 => (followers[0], followers[1], leader),
            _ => (followers[0], leader, followers[1]),
        };
        cluster.members[first].kill9();
        for i in [second, survivor] {
            let mut c = cluster.client(i).await;
            c.put(format!("minority/{round}/{i}"), "ok", None)
                .await
                .expect("write with one member down");
        }
        cluster.members[second].kill9();
        assert_put_fails_without_quorum(&cluster, survivor, &format!("majority/{round}")).await;

        cluster.members[first].restart();
        cluster.members[second].restart();
        put_retrying(
            &cluster.running_endpoints(),
            &format!("minority/{round}/recovered"),
            "ok",
        )
        .await;
        let mut expected: BTreeMap<String, String> = [second, survivor]
            .iter()
            .map(|i| (format!("minority/{round}/{i}"), "ok".to_string()))
            .collect();
        expected.insert(format!("minority/{round}/recovered"), "ok".to_string());
        for i in 0..3 {
            wait_local_prefix(&cluster, i, &format!("minority/{round}/"), &expected).await;
        }
        // (Whether `majority/{round}` exists now is unknown, as in etcd: a leader without a
        // quorum keeps the entry it appended, and it commits once the quorum is back.)
    }
}

/// clientv3's `WithRequireLeader` (metadata `hasleader: true`): without a leader, requests
/// fail at once with "etcdserver: no leader" instead of waiting out the request deadline, and
/// watch and keep-alive streams end with that error after three election timeouts, as etcd's
/// monitorLeader ends them. Round 1 leaves a leader without a quorum (it must step down),
/// round 2 a follower.
#[tokio::test]
async fn require_leader_fails_fast_and_ends_streams_without_a_leader() {
    let mut cluster = Cluster::start(3);
    for round in 0..2 {
        let leader = cluster.leader().await;
        let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
        let (victims, survivor) = match round {
            0 => ([followers[0], followers[1]], leader),
            _ => ([followers[0], leader], followers[1]),
        };
        // Longer than the server's request deadline (5 s + 2 × election timeout), so only
        // the require-leader check can answer within it.
        let opts = etcd_client::ConnectOptions::new()
            .with_require_leader(true)
            .with_timeout(Duration::from_secs(4));
        let mut c = Client::connect([cluster.members[survivor].endpoint()], Some(opts))
            .await
            .unwrap();
        c.put(format!("rl/{round}/before"), "1", None)
            .await
            .expect("put with a leader");
        let mut watch = c
            .watch(
                format!("rl/{round}/"),
                Some(WatchOptions::new().with_prefix()),
            )
            .await
            .unwrap();
        assert!(watch.message().await.unwrap().unwrap().created());
        let lease = c.lease_grant(60, None).await.unwrap().id();
        let (_keeper, mut keep_alive) = c.lease_keep_alive(lease).await.unwrap();

        for v in victims {
            cluster.members[v].kill9();
        }
        let ended = tokio::time::timeout(CONVERGE, watch.message())
            .await
            .expect("watch stream ended without a leader");
        let (code, message) = status(ended.expect_err("watch ends with an error"));
        assert_eq!(
            (code, message.as_str()),
            (Code::Unavailable, "etcdserver: no leader")
        );
        let ended = tokio::time::timeout(CONVERGE, keep_alive.message())
            .await
            .expect("keep-alive stream ended without a leader");
        let (code, message) = status(ended.expect_err("keep-alive ends with an error"));
        assert_eq!(
            (code, message.as_str()),
            (Code::Unavailable, "etcdserver: no leader")
        );
        let err = c
            .put(format!("rl/{round}/after"), "1", None)
            .await
            .expect_err("put without a leader");
        assert_eq!(
            status(err),
            (Code::Unavailable, "etcdserver: no leader".to_string())
        );

        for v in victims {
            cluster.members[v].restart();
        }
        wait_for(CONVERGE, "writes requiring a leader to work again", || {
            let mut c = c.clone();
            async move { c.put(format!("rl/{round}/recovered"), "1", None).await.ok() }
        })
        .await;
    }
}

/// Every member killed at once, then all restarted: a linearizable read, from the first
/// moment any member answers it, sees the last acknowledged write. (A leader resuming its
/// old term after the restart answered reads from the state it recovered, before re-applying
/// its log: found by the robustness suite, kill-all with key-value traffic.)
#[tokio::test]
async fn linearizable_reads_after_a_whole_cluster_restart_are_not_stale() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    put_many(&cluster.members[leader].endpoint(), "before/", 300, 16).await;
    let mut c = cluster.client(leader).await;
    let last = c.put("last", "acknowledged", None).await.unwrap();
    let last_rev = last.header().unwrap().revision();
    for i in 0..3 {
        cluster.members[i].kill9();
    }
    for i in 0..3 {
        cluster.members[i].restart();
    }
    let endpoints: Vec<String> = cluster.members.iter().map(|n| n.endpoint()).collect();
    let mut readers = Vec::new();
    for endpoint in endpoints {
        readers.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut answered = 0;
            while Instant::now() < deadline && answered < 20 {
                let Some(mut c) = quick_client(endpoint.clone()).await else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                if let Ok(resp) = c.get("last", None).await {
                    let value = resp.kvs().first().map(|kv| text(kv.value()));
                    assert_eq!(
                        value.as_deref(),
                        Some("acknowledged"),
                        "stale read from {endpoint} at revision {}",
                        resp.header().unwrap().revision()
                    );
                    assert!(resp.header().unwrap().revision() >= last_rev);
                    answered += 1;
                }
            }
            answered
        }));
    }
    for r in readers {
        assert!(r.await.unwrap() > 0, "a member never answered a read");
    }
}

#[tokio::test]
async fn five_members_survive_losing_any_two_without_losing_writes() {
    let mut cluster = Cluster::start(5);
    let mut expected = BTreeMap::new();
    // Which two die: the leader and a follower, then two followers, then the leader and the
    // member that led before it (or another follower).
    let mut previous_leader = None;
    for round in 0..3 {
        let leader = cluster.leader().await;
        let followers: Vec<usize> = (0..5).filter(|i| *i != leader).collect();
        let victims = match (round, previous_leader) {
            (0, _) => [leader, followers[0]],
            (1, _) => [followers[1], followers[2]],
            (_, Some(p)) if p != leader => [leader, p],
            _ => [leader, followers[3]],
        };
        previous_leader = Some(leader);
        for v in victims {
            cluster.members[v].kill9();
        }
        // Once the survivors agree on a leader, every write through any of them must succeed.
        // (Before that, a write a member forwards to the dead leader may time out, as in etcd.)
        cluster.leader().await;
        for i in (0..5).filter(|i| !victims.contains(i)) {
            let mut c = cluster.client(i).await;
            for n in 0..3 {
                let key = format!("k/{round}/{i}/{n}");
                let t = Instant::now();
                if let Err(e) = c.put(key.as_str(), "v", None).await {
                    panic!(
                        "round {round} victims {victims:?} via {i}: write failed after {:?}: {e}",
                        t.elapsed()
                    );
                }
                expected.insert(key, "v".to_string());
            }
        }
        for v in victims {
            cluster.members[v].restart();
        }
        for i in 0..5 {
            wait_local_prefix(&cluster, i, "k/", &expected).await;
        }
    }
}

/// MemberList through member `via`, sorted by id.
async fn member_list(cluster: &Cluster, via: usize) -> Vec<etcd_client::Member> {
    let mut c = cluster.client(via).await;
    let mut members = c
        .member_list()
        .await
        .expect("member list")
        .members()
        .to_vec();
    members.sort_by_key(|m| m.id());
    members
}

/// Waits until MemberList through `via` satisfies `check`; returns that list.
async fn wait_members(
    cluster: &Cluster,
    via: usize,
    what: &str,
    check: impl Fn(&[etcd_client::Member]) -> bool,
) -> Vec<etcd_client::Member> {
    let endpoint = cluster.members[via].endpoint();
    let check = &check;
    wait_for(CONVERGE, what, || {
        let endpoint = endpoint.clone();
        async move {
            let mut c = quick_client(endpoint).await?;
            let members = c.member_list().await.ok()?.members().to_vec();
            check(&members).then_some(members)
        }
    })
    .await
}

/// The member with `id` in `members`.
fn find(members: &[etcd_client::Member], id: u64) -> Option<&etcd_client::Member> {
    members.iter().find(|m| m.id() == id)
}

/// True when member `id` has started and published its name and client URL.
fn published(members: &[etcd_client::Member], id: u64, name: &str, client_url: &str) -> bool {
    find(members, id)
        .is_some_and(|m| m.name() == name && m.client_urls() == [client_url.to_string()])
}

#[tokio::test]
async fn learner_add_promote_and_voter_removal() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    let via = (leader + 1) % 3; // membership changes through a follower are forwarded
    let mut c = cluster.client(via).await;
    // Members publish their name and client URLs shortly after they start.
    let ids: Vec<u64> = [
        member_id(&cluster, 0).await,
        member_id(&cluster, 1).await,
        member_id(&cluster, 2).await,
    ]
    .to_vec();
    let nodes: Vec<(String, String, String)> = cluster
        .members
        .iter()
        .map(|n| (n.name.clone(), n.peer_url(), n.endpoint()))
        .collect();
    let before = wait_members(&cluster, via, "three published members", |m| {
        m.len() == 3 && (0..3).all(|i| published(m, ids[i], &nodes[i].0, &nodes[i].2))
    })
    .await;
    for (i, id) in ids.iter().enumerate() {
        let m = find(&before, *id).unwrap();
        assert!(!m.is_learner(), "{m:?}");
        assert_eq!(m.peer_urls(), [nodes[i].1.clone()]);
    }

    // MemberAdd a learner: listed at once, unnamed and without client URLs until it starts.
    let j = cluster.new_joiner();
    let peer = cluster.members[j].peer_url();
    let learner_opts = || Some(MemberAddOptions::new().with_is_learner());
    let added = once_healthy("member add", &c, |mut c| {
        let peer = peer.clone();
        async move { c.member_add([peer], learner_opts()).await }
    })
    .await;
    let learner = added.member().expect("added member").clone();
    assert_ne!(learner.id(), 0);
    assert!(learner.is_learner());
    assert_eq!(learner.peer_urls(), [peer.clone()]);
    assert_eq!(learner.name(), "");
    assert!(learner.client_urls().is_empty());
    assert_eq!(added.member_list().len(), 4);
    let list = member_list(&cluster, leader).await;
    let listed = find(&list, learner.id()).expect("learner listed on the leader");
    assert!(
        listed.is_learner() && listed.name().is_empty() && listed.client_urls().is_empty(),
        "{listed:?}"
    );

    // Adding the same peer URL again fails.
    let (code, message) = status(c.member_add([peer.clone()], None).await.unwrap_err());
    assert_eq!(
        (code, message.as_str()),
        (
            Code::FailedPrecondition,
            "etcdserver: Peer URLs already exists"
        )
    );

    // etcd allows one learner at a time.
    let other = format!("http://127.0.0.1:{}", oxcd_testkit::free_port());
    let learner_opts = Some(MemberAddOptions::new().with_is_learner());
    let (code, message) = status(c.member_add([other], learner_opts).await.unwrap_err());
    assert_eq!(
        (code, message.as_str()),
        (
            Code::FailedPrecondition,
            "etcdserver: too many learner members in cluster"
        )
    );

    // Not started, it has nothing of the leader's log: it cannot be promoted yet, whichever
    // member is asked.
    for i in [via, leader] {
        let mut mc = cluster.client(i).await;
        let (code, message) = status(mc.member_promote(learner.id()).await.unwrap_err());
        assert_eq!(
            (code, message.as_str()),
            (
                Code::FailedPrecondition,
                "etcdserver: can only promote a learner member which is in sync with leader"
            ),
            "promote through member {i}"
        );
    }

    // It starts, joins, publishes itself, and receives writes.
    cluster.start_joining(j);
    let endpoint = cluster.members[j].endpoint();
    let name = cluster.members[j].name.clone();
    wait_members(
        &cluster,
        via,
        "the learner to publish its name and client URL",
        |m| published(m, learner.id(), &name, &endpoint),
    )
    .await;
    c.put("to-learner", "1", None).await.expect("put");
    wait_for(CONVERGE, "the learner to apply a write", || async {
        let mut lc = quick_client(cluster.members[j].endpoint()).await?;
        (local_get(&mut lc, "to-learner").await? == "1").then_some(())
    })
    .await;
    assert_eq!(
        status_of(&cluster, j).await.map(|s| s.1),
        Some(true),
        "Status on the learner says learner"
    );
    // A learner serves Status and serializable reads only (etcd 3.5: Unavailable).
    let mut lc = cluster.client(j).await;
    let (code, message) = status(lc.member_list().await.unwrap_err());
    assert_eq!(
        (code, message.as_str()),
        (
            Code::Unavailable,
            "etcdserver: rpc not supported for learner"
        )
    );
    let (code, message) = status(lc.get("to-learner", None).await.unwrap_err());
    assert_eq!(
        (code, message.as_str()),
        (
            Code::Unavailable,
            "etcdserver: rpc not supported for learner"
        )
    );

    // MemberPromote it.
    let promoted = c
        .member_promote(learner.id())
        .await
        .expect("promote the caught-up learner");
    assert!(
        !find(promoted.members(), learner.id())
            .expect("promoted member listed")
            .is_learner()
    );
    wait_for(
        CONVERGE,
        "Status on the promoted member to say voter",
        || async {
            (status_of(&cluster, j).await? == (member_id(&cluster, leader).await, false))
                .then_some(())
        },
    )
    .await;
    for i in 0..4 {
        wait_members(&cluster, i, "every member to list four voters", |m| {
            m.len() == 4 && m.iter().all(|m| !m.is_learner())
        })
        .await;
    }

    // Promoting a voter fails, as does touching an unknown member.
    let voter = member_id(&cluster, 0).await;
    let (code, message) = status(c.member_promote(voter).await.unwrap_err());
    assert_eq!(
        (code, message.as_str()),
        (
            Code::FailedPrecondition,
            "etcdserver: can only promote a learner member"
        )
    );
    let (code, message) = status(c.member_remove(0x1234).await.unwrap_err());
    assert_eq!(
        (code, message.as_str()),
        (Code::NotFound, "etcdserver: member not found")
    );
    let (code, message) = status(c.member_promote(0x1234).await.unwrap_err());
    assert_eq!(
        (code, message.as_str()),
        (Code::NotFound, "etcdserver: member not found")
    );

    // MemberRemove an original voter (not the one we talk through): it stops by itself.
    let victim = (0..3).find(|i| *i != via && *i != leader).unwrap();
    let victim_id = member_id(&cluster, victim).await;
    let removed = once_healthy("member remove", &c, |mut c| async move {
        c.member_remove(victim_id).await
    })
    .await;
    assert_eq!(removed.members().len(), 3);
    assert!(find(removed.members(), victim_id).is_none());
    let code = cluster.members[victim].wait_exit(CONVERGE);
    assert!(
        code.is_some(),
        "the removed member kept running\n{}",
        cluster.members[victim].log()
    );
    for i in (0..4).filter(|i| *i != victim) {
        wait_members(&cluster, i, "the removal to reach every member", |m| {
            m.len() == 3 && find(m, victim_id).is_none()
        })
        .await;
    }

    // Its data dir is marked: it refuses to start again.
    let logged = cluster.members[victim].log().len();
    cluster.members[victim].restart();
    let code = cluster.members[victim].wait_exit(CONVERGE);
    assert!(
        matches!(code, Some(c) if c != 0),
        "restarted removed member: exit {code:?}"
    );
    let log = cluster.members[victim].log();
    let tail = &log[logged..];
    assert!(
        tail.contains("permanently removed"),
        "log does not say why:\n{tail}"
    );

    // The three remaining members (two old, one promoted) carry on.
    c.put("after-remove", "1", None)
        .await
        .expect("put after removal");
    for i in (0..4).filter(|i| *i != victim) {
        let mut mc = cluster.client(i).await;
        assert_eq!(
            mc.get("after-remove", None).await.unwrap().kvs()[0].value(),
            b"1",
            "member {i}"
        );
    }
}

/// Waits until member `i` holds at least every key of `expected` (serializable reads).
async fn wait_local_superset(
    cluster: &Cluster,
    i: usize,
    prefix: &str,
    expected: &BTreeMap<String, String>,
) {
    let what = format!("all {} acknowledged keys under {prefix:?}", expected.len());
    wait_local(cluster, i, prefix, &what, |got| {
        expected.iter().all(|(k, v)| got.get(k) == Some(v))
    })
    .await;
}

/// Writes distinct keys `{prefix}{n}` through whichever endpoint answers, until stopped;
/// returns the acknowledged ones (and counts them in `acked_count` as it goes).
fn spawn_writer(
    endpoints: Arc<std::sync::Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    acked_count: Arc<AtomicUsize>,
    prefix: &'static str,
) -> tokio::task::JoinHandle<BTreeMap<String, String>> {
    tokio::spawn(async move {
        let mut acked = BTreeMap::new();
        let mut clients: BTreeMap<String, Client> = BTreeMap::new();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let list = endpoints.lock().unwrap().clone();
            let endpoint = list[n as usize % list.len()].clone();
            n += 1;
            let key = format!("{prefix}{n:06}");
            if !clients.contains_key(&endpoint) {
                let Some(c) = quick_client(endpoint.clone()).await else {
                    continue;
                };
                clients.insert(endpoint.clone(), c);
            }
            let c = clients.get_mut(&endpoint).unwrap();
            match tokio::time::timeout(Duration::from_secs(10), c.put(key.as_str(), "v", None))
                .await
            {
                Ok(Ok(_)) => {
                    acked.insert(key, "v".to_string());
                    acked_count.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Err(_)) | Err(_) => {
                    clients.remove(&endpoint);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        acked
    })
}

#[tokio::test]
async fn scale_one_three_five_three_under_writes() {
    let mut cluster = Cluster::start(1);
    cluster.leader().await;
    let endpoints = Arc::new(std::sync::Mutex::new(vec![cluster.members[0].endpoint()]));
    let stop = Arc::new(AtomicBool::new(false));
    let acked_count = Arc::new(AtomicUsize::new(0));
    let writer = spawn_writer(
        endpoints.clone(),
        stop.clone(),
        acked_count.clone(),
        "scale/",
    );

    // Grow one member at a time, each added as a voter and waited for.
    for size in 2..=5 {
        let admin = cluster.leader().await;
        let j = cluster.new_joiner();
        let c = cluster.client(admin).await;
        let peer_url = cluster.members[j].peer_url();
        let added = once_healthy("member add", &c, |mut c| {
            let peer_url = peer_url.clone();
            async move { c.member_add([peer_url], None).await }
        })
        .await;
        let id = added.member().unwrap().id();
        assert!(!added.member().unwrap().is_learner(), "added as a voter");
        assert_eq!(added.member_list().len(), size);
        cluster.start_joining(j);
        let (name, endpoint) = (
            cluster.members[j].name.clone(),
            cluster.members[j].endpoint(),
        );
        wait_members(&cluster, admin, "the new member to publish itself", |m| {
            m.len() == size
                && published(m, id, &name, &endpoint)
                && m.iter().all(|m| !m.is_learner())
        })
        .await;
        // Added as a voter, it serves clients at once (even before raft promotes it).
        let mut nc = cluster.client(j).await;
        let got = nc
            .get(
                "scale/",
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await;
        got.expect("linearizable read through the new member");
        wait_for(
            CONVERGE,
            "the new member to be a voter following the leader",
            || async {
                let (leader, learner) = status_of(&cluster, j).await?;
                (leader != 0 && !learner).then_some(())
            },
        )
        .await;
        endpoints.lock().unwrap().push(endpoint);
    }

    // Shrink back to three: first the leader, then a follower.
    for size in [4, 3] {
        let leader = cluster.leader().await;
        let victim = if size == 4 {
            leader
        } else {
            (0..5)
                .find(|i| *i != leader && cluster.members[*i].is_running())
                .unwrap()
        };
        let via = (0..5)
            .find(|i| *i != victim && cluster.members[*i].is_running())
            .unwrap();
        let victim_id = member_id(&cluster, victim).await;
        endpoints
            .lock()
            .unwrap()
            .retain(|e| *e != cluster.members[victim].endpoint());
        let c = cluster.client(via).await;
        let removed = once_healthy("member remove", &c, |mut c| async move {
            c.member_remove(victim_id).await
        })
        .await;
        assert_eq!(removed.members().len(), size);
        if cluster.members[victim].wait_exit(CONVERGE).is_none() {
            let log = cluster.members[victim].log();
            panic!(
                "removed member {victim} still runs:\n{}",
                &log[log.len().saturating_sub(6000)..]
            );
        }
        wait_members(&cluster, via, "the removal", |m| {
            m.len() == size && find(m, victim_id).is_none()
        })
        .await;
        cluster.leader().await;
    }

    // Let the writer make progress on the final cluster, then check every member.
    let before = acked_count.load(Ordering::Relaxed);
    wait_for(
        CONVERGE,
        "acknowledged writes on the final cluster",
        || async { (acked_count.load(Ordering::Relaxed) >= before + 20).then_some(()) },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let acked = writer.await.unwrap();
    assert!(
        acked.len() > 20,
        "only {} writes were acknowledged",
        acked.len()
    );
    let remaining: Vec<usize> = (0..5)
        .filter(|i| cluster.members[*i].is_running())
        .collect();
    assert_eq!(remaining.len(), 3);
    for i in remaining {
        wait_local_superset(&cluster, i, "scale/", &acked).await;
        let mut c = cluster.client(i).await;
        assert_eq!(c.member_list().await.unwrap().members().len(), 3);
    }
}

#[tokio::test]
async fn move_leader_hands_leadership_to_the_target() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    let target = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let target_id = member_id(&cluster, target).await;

    // Sent to a follower: refused.
    let mut fc = cluster.client(other).await;
    let (code, message) = status(fc.move_leader(target_id).await.unwrap_err());
    assert_eq!(
        (code, message.as_str()),
        (Code::FailedPrecondition, "etcdserver: not leader")
    );

    // Sent to the leader: done once the target leads.
    let mut lc = cluster.client(leader).await;
    let resp = lc.move_leader(target_id).await.expect("move leader");
    assert!(resp.header().is_some());
    assert_eq!(cluster.leader().await, target);
    for i in 0..3 {
        assert_eq!(
            status_of(&cluster, i).await.map(|s| s.0),
            Some(target_id),
            "member {i} sees the new leader"
        );
    }
    // The cluster keeps serving writes through the old leader, now a follower.
    lc.put("after-move", "1", None)
        .await
        .expect("put after move");
    let (code, message) = status(lc.move_leader(target_id).await.unwrap_err());
    assert_eq!(
        (code, message.as_str()),
        (Code::FailedPrecondition, "etcdserver: not leader")
    );
}

#[tokio::test]
async fn leases_are_granted_kept_alive_and_expired_across_members() {
    const TTL: i64 = 3;
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    let (a, b) = ((leader + 1) % 3, (leader + 2) % 3);
    let mut ca = cluster.client(a).await;
    let mut cb = cluster.client(b).await;

    // Granted through follower a, keys attached through a.
    let lease = ca
        .lease_grant(TTL, None)
        .await
        .expect("grant through a follower");
    assert_eq!(lease.ttl(), TTL);
    let id = lease.id();
    ca.put("leased", "1", Some(PutOptions::new().with_lease(id)))
        .await
        .expect("put with lease");

    // Kept alive through follower b for twice its TTL: it outlives it.
    let (mut keeper, mut responses) = cb
        .lease_keep_alive(id)
        .await
        .expect("keep-alive stream through b");
    let until = Instant::now() + Duration::from_secs(2 * TTL as u64);
    while Instant::now() < until {
        keeper.keep_alive().await.expect("send keep-alive");
        let resp = tokio::time::timeout(Duration::from_secs(10), responses.message())
            .await
            .expect("keep-alive answered in time")
            .expect("keep-alive ok")
            .expect("keep-alive stream open");
        assert_eq!((resp.id(), resp.ttl()), (id, TTL));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for i in 0..3 {
        let mut c = cluster.client(i).await;
        assert_eq!(
            c.get("leased", None).await.unwrap().kvs().len(),
            1,
            "member {i}: lease outlived its TTL"
        );
    }
    let kept_until = Instant::now();
    drop(keeper);
    drop(responses);

    // Without keep-alives it expires; every member sees the key go.
    for i in 0..3 {
        let endpoint = cluster.members[i].endpoint();
        wait_for(
            Duration::from_secs(TTL as u64 + 10),
            &format!("member {i} to drop the expired lease's key"),
            || {
                let endpoint = endpoint.clone();
                async move {
                    let mut c = quick_client(endpoint).await?;
                    c.get("leased", None)
                        .await
                        .ok()?
                        .kvs()
                        .is_empty()
                        .then_some(())
                }
            },
        )
        .await;
    }
    assert!(
        kept_until.elapsed() >= Duration::from_secs(TTL as u64 - 1),
        "expired early: {:?}",
        kept_until.elapsed()
    );
    let ttl = ca
        .lease_time_to_live(id, None)
        .await
        .expect("time to live of an expired lease");
    assert_eq!(ttl.ttl(), -1, "the lease is gone");

    // A lease survives its leader: the new leader still knows it and its keys.
    let lasting = ca.lease_grant(60, None).await.expect("grant").id();
    ca.put("lasting", "1", Some(PutOptions::new().with_lease(lasting)))
        .await
        .unwrap();
    cluster.members[leader].kill9();
    let new_leader = cluster.leader().await;
    let mut nc = cluster.client(new_leader).await;
    let ttl = nc
        .lease_time_to_live(lasting, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .expect("time to live");
    assert_eq!(ttl.granted_ttl(), 60);
    assert!(ttl.ttl() > 0 && ttl.ttl() <= 60, "remaining {}", ttl.ttl());
    assert_eq!(ttl.keys(), [b"lasting".to_vec()]);
    let leases: Vec<i64> = nc
        .leases()
        .await
        .unwrap()
        .leases()
        .iter()
        .map(|l| l.id())
        .collect();
    assert_eq!(leases, [lasting]);
}

/// Puts `{prefix}seed` through member `leader`, then watches `prefix` on member `watcher`
/// from the revision after the seed (the watcher may not have applied the seed yet, and a
/// watch without a start revision begins at the member's own current revision). Returns
/// that revision and the created stream.
async fn watch_after_seed(
    cluster: &Cluster,
    leader: usize,
    watcher: usize,
    prefix: &str,
) -> (i64, etcd_client::WatchStream) {
    let mut lc = cluster.client(leader).await;
    let seed = lc.put(format!("{prefix}seed"), "0", None).await.unwrap();
    let start = seed.header().unwrap().revision() + 1;
    let mut wc = cluster.client(watcher).await;
    let opts = WatchOptions::new().with_prefix().with_start_revision(start);
    let mut stream = wc.watch(prefix, Some(opts)).await.expect("watch");
    let created = tokio::time::timeout(CONVERGE, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(created.created());
    (start, stream)
}

/// A member paused while the leader compacted its log installs a snapshot when it resumes:
/// the store jumps ahead without its revisions passing through apply. A watch on that member
/// must still get every revision, in order, without waiting for a later write, and a
/// progress report must not precede events still owed (found by the robustness suite:
/// kubernetes profile with pause-member).
#[tokio::test]
async fn watch_on_member_that_installs_a_snapshot_gets_every_event() {
    let (cluster, leader, lagging) = snapshotting_cluster().await;
    let mut lc = cluster.client(leader).await;
    let (start, mut stream) = watch_after_seed(&cluster, leader, lagging, "bulk/").await;

    cluster.members[lagging].pause();
    let expected = put_many(
        &cluster.members[leader].endpoint(),
        "bulk/",
        BEYOND_KEPT_LOG,
        64,
    )
    .await;
    let last = lc
        .get(
            "bulk/",
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    // Raft entries without revisions, more than --snapshot-count: the leader's newest
    // snapshot holds every put, and nothing the member applies after installing it
    // publishes a revision that would make the watch notice the gap on its own.
    for _ in 0..250 {
        lc.lease_grant(60, None).await.unwrap();
    }
    cluster.members[lagging].resume();

    // The events must come from the snapshot jump alone.
    let mut got = BTreeMap::new();
    let mut seen_rev = start - 1;
    while got.len() < expected.len() {
        let resp = tokio::time::timeout(CONVERGE, stream.message())
            .await
            .expect("every event after the member resumed")
            .expect("watch ok")
            .expect("watch open");
        for ev in resp.events() {
            let kv = ev.kv().unwrap();
            assert!(
                kv.mod_revision() > seen_rev,
                "events out of order or repeated"
            );
            seen_rev = kv.mod_revision();
            got.insert(text(kv.key()), text(kv.value()));
        }
    }
    assert_eq!(got, expected);
    assert_eq!(seen_rev, last);
    assert!(
        cluster.members[lagging]
            .log()
            .contains("install full snapshot"),
        "the paused member caught up without a snapshot: the test did not test the jump"
    );
    stream.request_progress().await.unwrap();
    let progress = tokio::time::timeout(CONVERGE, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(progress.events().is_empty());
    assert!(progress.header().unwrap().revision() >= last);
}

/// A write acknowledged by a follower (which forwards it to the leader) is applied on that
/// follower before the acknowledgement, as in etcd: a serializable read there right after
/// sees it, at the write's revision or later.
#[tokio::test]
async fn a_follower_acknowledges_a_write_once_it_applied_it_too() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let mut c = cluster.client(follower).await;
    for i in 0..100 {
        let key = format!("ryw/{i}");
        let rev = c
            .put(key.as_str(), i.to_string(), None)
            .await
            .expect("put through a follower")
            .header()
            .unwrap()
            .revision();
        let got = c
            .get(key.as_str(), Some(GetOptions::new().with_serializable()))
            .await
            .unwrap();
        assert_eq!(
            got.kvs().first().map(|kv| text(kv.value())),
            Some(i.to_string()),
            "write {i} not yet applied on the member that acknowledged it"
        );
        assert!(got.header().unwrap().revision() >= rev);
    }
}

#[tokio::test]
async fn watch_on_a_follower_sees_leader_writes_in_order() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let mut lc = cluster.client(leader).await;
    let (start, mut stream) = watch_after_seed(&cluster, leader, follower, "w/").await;

    // Puts and deletes through the leader, each with its own revision.
    let mut expected = Vec::new();
    for n in 0..30 {
        let key = format!("w/{}", n % 7);
        let rev = if n % 5 == 4 {
            let r = lc.delete(key.as_str(), None).await.unwrap();
            if r.deleted() == 0 {
                continue;
            }
            expected.push((
                EventType::Delete,
                key,
                String::new(),
                r.header().unwrap().revision(),
            ));
            r.header().unwrap().revision()
        } else {
            let r = lc.put(key.as_str(), format!("v{n}"), None).await.unwrap();
            expected.push((
                EventType::Put,
                key,
                format!("v{n}"),
                r.header().unwrap().revision(),
            ));
            r.header().unwrap().revision()
        };
        assert!(rev >= start);
    }
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let resp = tokio::time::timeout(CONVERGE, stream.message())
            .await
            .expect("watch events in time")
            .expect("watch ok")
            .expect("watch open");
        for ev in resp.events() {
            let kv = ev.kv().unwrap();
            got.push((
                ev.event_type(),
                text(kv.key()),
                text(kv.value()),
                kv.mod_revision(),
            ));
        }
    }
    assert_eq!(got, expected);
}

#[tokio::test]
async fn removed_leader_stops_and_the_others_carry_on() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    let via = (leader + 1) % 3;
    cluster
        .client(leader)
        .await
        .put("before", "1", None)
        .await
        .unwrap();
    let leader_id = member_id(&cluster, leader).await;
    // Soon after start (once the leader's peers have been connected for 5 s): the removal
    // must not depend on having watched the member for long.
    let c = cluster.client(via).await;
    let removed = once_healthy("removing the leader", &c, |mut c| async move {
        c.member_remove(leader_id).await
    })
    .await;
    assert_eq!(removed.members().len(), 2);
    if cluster.members[leader].wait_exit(CONVERGE).is_none() {
        let log = cluster.members[leader].log();
        panic!(
            "the removed leader still runs:\n{}",
            &log[log.len().saturating_sub(4000)..]
        );
    }
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, leader);
    for i in (0..3).filter(|i| *i != leader) {
        let mut c = cluster.client(i).await;
        c.put(format!("after/{i}"), "1", None)
            .await
            .expect("write without the removed leader");
        assert_eq!(c.get("before", None).await.unwrap().kvs().len(), 1);
        let members = c.member_list().await.unwrap();
        assert!(find(members.members(), leader_id).is_none());
    }
}
