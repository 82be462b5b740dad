//! What a member keeps across a restart, clean (SIGTERM) or not (SIGKILL): keys with their
//! revisions, the store revision, leases with their attached keys (their countdown restarts,
//! as etcd's does on a new leader), and the compaction point.
//!
//! The tests run on a multi-thread runtime: `Member::stop` blocks its thread while the
//! server shuts down gracefully, and the clients' connections must still answer meanwhile.

use std::time::Duration;

use etcd_client::{Client, GetOptions, LeaseTimeToLiveOptions, PutOptions, WatchOptions};
use oxcd_testkit::{Member, wait_for};
use tonic::Code;

use crate::calls::{put, text};

const TIMEOUT: Duration = Duration::from_secs(15);
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";

#[derive(Debug, Clone, Copy)]
enum Stop {
    Clean,
    Kill9,
}

fn rev(h: Option<&etcd_client::ResponseHeader>) -> i64 {
    h.expect("header").revision()
}

async fn current_rev(c: &mut Client) -> i64 {
    rev(c.get("any", None).await.unwrap().header())
}

/// Every key under `prefix` as (key, value, create, mod, version, lease), at `revision`
/// (0 = current).
async fn dump(
    c: &mut Client,
    prefix: &str,
    revision: i64,
) -> Vec<(String, String, i64, i64, i64, i64)> {
    let opts = GetOptions::new().with_prefix().with_revision(revision);
    let r = c.get(prefix, Some(opts)).await.expect("get prefix");
    r.kvs()
        .iter()
        .map(|kv| {
            let (k, v) = (text(kv.key()), text(kv.value()));
            (
                k,
                v,
                kv.create_revision(),
                kv.mod_revision(),
                kv.version(),
                kv.lease(),
            )
        })
        .collect()
}

/// (granted TTL, remaining TTL, sorted keys) of a lease; remaining is -1 when unknown.
async fn lease_state(c: &mut Client, id: i64) -> (i64, i64, Vec<String>) {
    let opts = LeaseTimeToLiveOptions::new().with_keys();
    let r = c
        .lease_time_to_live(id, Some(opts))
        .await
        .expect("time to live");
    let mut keys: Vec<String> = r.keys().iter().map(|k| text(k)).collect();
    keys.sort();
    (r.granted_ttl(), r.ttl(), keys)
}

/// Asserts that `key` holds `value`, written at revision `rev`.
async fn assert_written(c: &mut Client, key: &str, value: &str, rev: i64) {
    let got = c.get(key, None).await.unwrap();
    let kv = got.kvs().first().unwrap_or_else(|| panic!("{key} is gone"));
    assert_eq!(
        (text(kv.value()), kv.mod_revision()),
        (value.to_string(), rev)
    );
}

async fn compact_physical(c: &mut Client, rev: i64) {
    c.compact(
        rev,
        Some(etcd_client::CompactionOptions::new().with_physical()),
    )
    .await
    .unwrap();
}

fn stop(m: &mut Member, how: Stop) {
    match how {
        Stop::Clean => m.stop(),
        Stop::Kill9 => m.kill9(),
    }
}

/// Writes a known history, restarts the member `how`, and checks everything survived.
async fn survives_restart(how: Stop) {
    let mut m = Member::start();
    let mut c = m.client().await;
    let base = current_rev(&mut c).await;
    // A lease whose countdown runs down a little before the restart.
    let long = c.lease_grant(6, None).await.unwrap().id();
    let r1 = rev(c.put("d/a", "a1", None).await.unwrap().header());
    let r2 = rev(c.put("d/b", "b1", None).await.unwrap().header());
    let r3 = rev(c.put("d/a", "a2", None).await.unwrap().header());
    let r4 = rev(c.delete("d/b", None).await.unwrap().header());
    let r5 = rev(c.put("d/c", "c1", None).await.unwrap().header());
    let r6 = rev(c.put("d/a", "a3", None).await.unwrap().header());
    let r7 = rev(c
        .put("d/leased", "l", Some(PutOptions::new().with_lease(long)))
        .await
        .unwrap()
        .header());
    assert_eq!(
        vec![r1, r2, r3, r4, r5, r6, r7],
        (base + 1..=base + 7).collect::<Vec<_>>()
    );
    c.compact(r4, None).await.expect("compact");
    let history_at_r5 = dump(&mut c, "d/", r5).await;
    let before = dump(&mut c, "d/", 0).await;
    let identity = c
        .get("any", None)
        .await
        .unwrap()
        .header()
        .map(|h| (h.cluster_id(), h.member_id(), h.raft_term()));
    let (cluster_id, member_id, term) = identity.unwrap();
    let expected_now = vec![
        ("d/a".to_string(), "a3".to_string(), r1, r6, 3, 0),
        ("d/c".to_string(), "c1".to_string(), r5, r5, 1, 0),
        ("d/leased".to_string(), "l".to_string(), r7, r7, 1, long),
    ];
    assert_eq!(before, expected_now);

    // Let the long lease run down, so a restarted countdown is visible.
    wait_for(TIMEOUT, "lease countdown to run down", || {
        let mut c = c.clone();
        async move { (lease_state(&mut c, long).await.1 <= 3).then_some(()) }
    })
    .await;
    // A short lease nobody keeps alive: it must expire after the restart.
    let short = c.lease_grant(3, None).await.unwrap().id();
    let r8 = rev(c
        .put("d/short", "s", Some(PutOptions::new().with_lease(short)))
        .await
        .unwrap()
        .header());
    assert_eq!(r8, r7 + 1);

    stop(&mut m, how);
    m.restart();
    let mut c = m.client().await;

    assert_eq!(
        current_rev(&mut c).await,
        r8,
        "{how:?}: store revision survives"
    );
    let h = c
        .get("any", None)
        .await
        .unwrap()
        .header()
        .map(|h| (h.cluster_id(), h.member_id(), h.raft_term()));
    let (cluster_after, member_after, term_after) = h.unwrap();
    assert_eq!(
        (cluster_after, member_after),
        (cluster_id, member_id),
        "{how:?}: same identity"
    );
    // etcd campaigns again after a restart (term + 1); openraft re-establishes a single
    // voter's leadership in its stored term. Only the header's raft_term shows it.
    assert!(
        term_after >= term,
        "{how:?}: term went back: {term} -> {term_after}"
    );
    let mut want = expected_now.clone();
    want.push(("d/short".to_string(), "s".to_string(), r8, r8, 1, short));
    assert_eq!(
        dump(&mut c, "d/", 0).await,
        want,
        "{how:?}: keys and revisions survive"
    );
    assert_eq!(
        dump(&mut c, "d/", r5).await,
        history_at_r5,
        "{how:?}: history survives"
    );
    assert_eq!(
        dump(&mut c, "d/", r4).await,
        vec![("d/a".to_string(), "a2".to_string(), r1, r3, 2, 0)],
        "{how:?}: reading at the compaction point works"
    );
    for below in [r3, r1] {
        let opts = GetOptions::new().with_prefix().with_revision(below);
        match c.get("d/", Some(opts)).await {
            Err(etcd_client::Error::GRpcStatus(s)) => {
                assert_eq!(
                    (s.code(), s.message()),
                    (Code::OutOfRange, COMPACTED),
                    "{how:?}"
                )
            }
            other => panic!("{how:?}: read at {below} below the compaction point: {other:?}"),
        }
    }

    // The history above the compaction point is still watchable.
    let opts = WatchOptions::new().with_prefix().with_start_revision(r5);
    let mut w = c.watch("d/", Some(opts)).await.expect("watch");
    let mut events = Vec::new();
    while events.len() < 4 {
        let resp = tokio::time::timeout(TIMEOUT, w.message())
            .await
            .expect("watch in time");
        for e in resp.unwrap().expect("watch open").events() {
            let kv = e.kv().unwrap();
            events.push((text(kv.key()), text(kv.value()), kv.mod_revision()));
        }
    }
    assert_eq!(
        events,
        vec![
            ("d/c".to_string(), "c1".to_string(), r5),
            ("d/a".to_string(), "a3".to_string(), r6),
            ("d/leased".to_string(), "l".to_string(), r7),
            ("d/short".to_string(), "s".to_string(), r8),
        ],
        "{how:?}: watch history after restart"
    );
    drop(w);

    // Leases: still there with their keys; their countdown restarted.
    let (granted, remaining, keys) = lease_state(&mut c, long).await;
    assert_eq!(
        (granted, keys),
        (6, vec!["d/leased".to_string()]),
        "{how:?}"
    );
    assert!(
        remaining >= 4,
        "{how:?}: the countdown restarts at the TTL, got {remaining}"
    );
    let (granted, remaining, keys) = lease_state(&mut c, short).await;
    assert_eq!((granted, keys), (3, vec!["d/short".to_string()]), "{how:?}");
    assert!(
        remaining > 0,
        "{how:?}: short lease alive right after restart"
    );

    // The short lease still expires, deleting its key at the next revision.
    wait_for(TIMEOUT, "short lease to expire after restart", || {
        let mut c = c.clone();
        async move { (lease_state(&mut c, short).await.1 == -1).then_some(()) }
    })
    .await;
    let r = c.get("d/short", None).await.unwrap();
    assert!(r.kvs().is_empty(), "{how:?}: expired lease deleted its key");
    assert_eq!(
        rev(r.header()),
        r8 + 1,
        "{how:?}: one revision for the expiry"
    );
    // Meanwhile the long lease is still alive with its key.
    assert!(lease_state(&mut c, long).await.1 > 0, "{how:?}");
    assert_eq!(dump(&mut c, "d/", 0).await, expected_now, "{how:?}");

    // New writes continue from the restored revision.
    let r9 = rev(c.put("d/new", "n", None).await.unwrap().header());
    assert_eq!(r9, r8 + 2, "{how:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn state_survives_clean_restart() {
    survives_restart(Stop::Clean).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn state_survives_kill9_restart() {
    survives_restart(Stop::Kill9).await;
}

/// Restarting again and again without writes changes nothing: no entry is applied twice.
#[tokio::test(flavor = "multi_thread")]
async fn repeated_restarts_replay_nothing_twice() {
    let mut m = Member::start();
    let mut c = m.client().await;
    let lease = c.lease_grant(600, None).await.unwrap().id();
    let mut last = 0;
    for n in 0..5 {
        last = rev(c
            .put(
                "rr/k",
                format!("v{n}"),
                Some(PutOptions::new().with_lease(lease)),
            )
            .await
            .unwrap()
            .header());
    }
    let expected = dump(&mut c, "rr/", 0).await;
    let first = expected[0].2;
    assert_eq!(
        expected,
        vec![("rr/k".to_string(), "v4".to_string(), first, last, 5, lease)]
    );
    for (n, how) in [
        Stop::Kill9,
        Stop::Clean,
        Stop::Kill9,
        Stop::Kill9,
        Stop::Clean,
    ]
    .into_iter()
    .enumerate()
    {
        stop(&mut m, how);
        m.restart();
        c = m.client().await;
        assert_eq!(current_rev(&mut c).await, last, "restart {n} ({how:?})");
        assert_eq!(
            dump(&mut c, "rr/", 0).await,
            expected,
            "restart {n} ({how:?})"
        );
        let (granted, _, keys) = lease_state(&mut c, lease).await;
        assert_eq!(
            (granted, keys),
            (600, vec!["rr/k".to_string()]),
            "restart {n} ({how:?})"
        );
    }
    let r = rev(c.put("rr/k", "after", None).await.unwrap().header());
    assert_eq!(r, last + 1);
}

/// etcd stops on SIGTERM even while clients hold streams open: it waits for them at most
/// one request timeout (`stopServers` in etcd's embed package), then closes them.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_despite_open_streams() {
    let mut m = Member::start();
    let mut c = m.client().await;
    let _watch = c.watch("w", None).await.expect("watch");
    let lease = c.lease_grant(60, None).await.unwrap().id();
    let _keep_alive = c.lease_keep_alive(lease).await.expect("keep alive");
    let started = std::time::Instant::now();
    m.stop();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped after {:?}",
        started.elapsed()
    );
    m.restart();
    let mut c = m.client().await;
    assert_eq!(lease_state(&mut c, lease).await.0, 60);
}

/// A member killed at any point of its first start comes up on restart: either it had not
/// bootstrapped yet and does so now, or it had and keeps its identity.
#[tokio::test(flavor = "multi_thread")]
async fn kill9_during_first_start_then_restart() {
    for delay_ms in [0, 20, 60, 150, 400] {
        let mut m = Member::start();
        // Timing injection, not a wait for a condition: kill at a point of the start.
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        m.kill9();
        m.restart();
        let mut c = m.client().await;
        let base = current_rev(&mut c).await;
        let r = rev(c.put("k", "v", None).await.unwrap().header());
        assert_eq!(r, base + 1, "killed after {delay_ms} ms");
        let members = c.member_list().await.expect("member list");
        assert_eq!(members.members().len(), 1, "killed after {delay_ms} ms");
        m.kill9();
        m.restart();
        assert_written(&mut m.client().await, "k", "v", r).await;
    }
}

/// `--wal-dir` puts the raft log in its own directory (as etcd does, e.g. on another disk):
/// the log is written there and nowhere under the data dir, and is replayed from there after
/// a kill -9.
#[tokio::test(flavor = "multi_thread")]
async fn wal_dir_holds_the_log_and_survives_kill9() {
    let wal_dir = tempfile::tempdir().unwrap();
    let wal = wal_dir.path().join("wal");
    let mut m = Member::start_with(&["--wal-dir", wal.to_str().unwrap()]);
    let mut c = m.client().await;
    let written = put(&mut c, "in-wal-dir", "v").await;
    m.kill9();
    let segments = |dir: &std::path::Path| -> usize {
        std::fs::read_dir(dir).map_or(0, |d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".wal"))
            })
            .count()
        })
    };
    assert!(segments(&wal) > 0, "no log segment in {}", wal.display());
    assert_eq!(segments(&m.dir().join("m0.etcd/member/wal")), 0);
    m.restart();
    assert_written(&mut m.client().await, "in-wal-dir", "v", written).await;
}

/// A lease kept alive across a restart: the restarted member renews it again.
#[tokio::test(flavor = "multi_thread")]
async fn keep_alive_works_after_restart() {
    let mut m = Member::start();
    let mut c = m.client().await;
    let id = c.lease_grant(3, None).await.unwrap().id();
    c.put("ka", "v", Some(PutOptions::new().with_lease(id)))
        .await
        .unwrap();
    drop(c);
    m.kill9();
    m.restart();
    let mut c = m.client().await;
    let (mut keeper, mut stream) = c
        .lease_keep_alive(id)
        .await
        .expect("keep alive after restart");
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    while started.elapsed() < Duration::from_secs(5) {
        tick.tick().await;
        keeper.keep_alive().await.unwrap();
        let resp = tokio::time::timeout(TIMEOUT, stream.message())
            .await
            .expect("in time");
        assert_eq!(resp.unwrap().map(|r| (r.id(), r.ttl())), Some((id, 3)));
    }
    assert_eq!(lease_state(&mut c, id).await.2, ["ka"]);
}

/// Defragment rewrites the state into a fresh database: the space of deleted and compacted
/// revisions comes back (Status's dbSize falls), every key keeps its revisions, and writes
/// after it survive kill -9.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defragment_gives_back_space_and_keeps_every_key() {
    let mut m = Member::start();
    let mut c = m.client().await;
    let value = "v".repeat(2048);
    for i in 0..3000 {
        c.put(format!("f/{i:05}"), value.as_str(), None)
            .await
            .unwrap();
    }
    c.delete(
        "f/",
        Some(etcd_client::DeleteOptions::new().with_range("f/02900")),
    )
    .await
    .unwrap();
    let deleted_at = current_rev(&mut c).await;
    compact_physical(&mut c, deleted_at).await;
    let kept = dump(&mut c, "f/", 0).await;
    assert_eq!(kept.len(), 100);
    let before = c.status().await.unwrap().db_size();

    c.defragment().await.expect("defragment");
    let after = c.status().await.unwrap().db_size();
    assert!(
        after * 4 < before,
        "dbSize {after} after defragment, {before} before"
    );
    assert_eq!(dump(&mut c, "f/", 0).await, kept);
    let r = rev(c.put("f/after", "a", None).await.unwrap().header());
    assert_eq!(r, deleted_at + 1);

    stop(&mut m, Stop::Kill9);
    m.restart();
    let mut c = m.client().await;
    let mut expected = kept;
    expected.push(("f/after".to_string(), "a".to_string(), r, r, 1, 0));
    assert_eq!(dump(&mut c, "f/", 0).await, expected);
}

/// As in etcd, a physical compaction answers once the compacted revisions are gone from the
/// backend on disk: the member killed with -9 right after it leaves a state database that no
/// longer holds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn physical_compaction_answers_once_the_revisions_are_gone_from_disk() {
    use oxcd::mvcc::{Revision, rev_key};
    use oxcd::storage::{Backend, SledBackend};

    let mut m = Member::start();
    let mut c = m.client().await;
    let first = rev(c.put("p", "1", None).await.unwrap().header());
    for i in 2..=20 {
        c.put("p", i.to_string(), None).await.unwrap();
    }
    let last = current_rev(&mut c).await;
    compact_physical(&mut c, last).await;
    stop(&mut m, Stop::Kill9);

    let db = SledBackend::open_db(&m.data_dir.join("member/state/db.0")).unwrap();
    let state = SledBackend::new(&db, "state").unwrap();
    let stored = |main| state.get(&rev_key(Revision { main, sub: 0 })).unwrap();
    assert_eq!(stored(first), None, "a compacted revision is still on disk");
    assert!(stored(last).is_some(), "the live revision is missing");
}
