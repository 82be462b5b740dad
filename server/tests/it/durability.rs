//! Acknowledged writes survive SIGKILL. A write is acknowledged only after its raft entry
//! is flushed; the applied state is not flushed per entry, so a restart replays the log
//! after the last durably applied position. Replaying an entry twice or skipping one would
//! show as a lost write, a wrong value, or a revision off by one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions, PutOptions};
use oxcd_testkit::Member;

/// key → (value, revision of the acknowledging response header).
type Acked = Arc<Mutex<BTreeMap<String, (String, i64)>>>;

const WRITERS: usize = 8;

/// One writer: puts fresh keys until told to stop or the server goes away.
async fn writer(mut c: Client, cycle: usize, id: usize, stop: Arc<AtomicBool>, acked: Acked) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("load/{cycle}/{id}/{n:06}");
        let value = format!("value-{cycle}-{id}-{n}");
        match c.put(key.clone(), value.clone(), None).await {
            Ok(r) => {
                let rev = r.header().expect("put header").revision();
                acked.lock().unwrap().insert(key, (value, rev));
            }
            Err(_) => return,
        }
        n += 1;
    }
}

/// Every key under `load/` as key → (value, create, mod, version).
async fn all_keys(c: &mut Client) -> BTreeMap<String, (String, i64, i64, i64)> {
    let r = c
        .get("load/", Some(GetOptions::new().with_prefix()))
        .await
        .expect("get all");
    r.kvs()
        .iter()
        .map(|kv| {
            let value = String::from_utf8_lossy(kv.value()).into_owned();
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            (
                key,
                (value, kv.create_revision(), kv.mod_revision(), kv.version()),
            )
        })
        .collect()
}

/// Checks the store after a restart against every acknowledged write.
async fn check_after_restart(
    c: &mut Client,
    acked: &BTreeMap<String, (String, i64)>,
    base: i64,
    cycle: usize,
) {
    let current = c
        .get("any", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let stored = all_keys(c).await;
    let max_acked = acked.values().map(|(_, r)| *r).max().unwrap_or(base);
    assert!(
        current >= max_acked,
        "cycle {cycle}: revision {current} < acknowledged {max_acked}"
    );
    for (key, (value, rev)) in acked {
        let got = stored.get(key);
        assert_eq!(
            got,
            Some(&(value.clone(), *rev, *rev, 1)),
            "cycle {cycle}: acknowledged put of {key} at revision {rev}"
        );
    }
    // Only puts of fresh keys happened since `base`: revisions base+1..=current are exactly
    // one key each (acknowledged or not), none skipped, none repeated.
    let mut revs: Vec<i64> = stored.values().map(|(_, _, m, _)| *m).collect();
    revs.sort();
    let want: Vec<i64> = (base + 1..=current).collect();
    assert_eq!(
        revs.len(),
        want.len(),
        "cycle {cycle}: {} keys for revisions {base}+1..={current}",
        revs.len()
    );
    assert_eq!(revs, want, "cycle {cycle}: every revision is one put");
}

/// Load from several clients, SIGKILL mid-load, restart, verify; three times over.
async fn kill_under_load(extra_args: &[&str]) {
    let mut m = Member::start_with(extra_args);
    let mut c = m.client().await;
    let base = c
        .get("any", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let acked: Acked = Arc::default();
    for cycle in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for id in 0..WRITERS {
            let client = Client::connect([m.endpoint()], None)
                .await
                .expect("connect writer");
            tasks.push(tokio::spawn(writer(
                client,
                cycle,
                id,
                stop.clone(),
                acked.clone(),
            )));
        }
        // Kill once the writers have been busy a while (pacing only: correctness is
        // checked against whatever was acknowledged).
        let started = Instant::now();
        let before = acked.lock().unwrap().len();
        while started.elapsed() < Duration::from_secs(1)
            || acked.lock().unwrap().len() < before + 50
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "writers make no progress\n{}",
                m.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        m.kill9();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.expect("writer task");
        }
        m.restart();
        c = m.client().await;
        let snapshot = acked.lock().unwrap().clone();
        eprintln!("cycle {cycle}: {} acked", snapshot.len());
        check_after_restart(&mut c, &snapshot, base, cycle).await;
    }
    // After the last restart the member takes writes at the next revision.
    let current = c
        .get("any", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let r = c
        .put("load/final", "x", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    assert_eq!(r, current + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_kill9_under_load() {
    kill_under_load(&[]).await;
}

/// The same with frequent snapshots, so restarts also go through the snapshot path.
#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_kill9_with_snapshots() {
    kill_under_load(&["--snapshot-count", "50"]).await;
}

/// A write acknowledged just before SIGKILL survives, for every kind of write.
#[tokio::test(flavor = "multi_thread")]
async fn last_acknowledged_write_survives_kill9() {
    let mut m = Member::start();
    let mut c = m.client().await;

    let rev = c
        .put("last/k", "v1", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    m.kill9();
    m.restart();
    c = m.client().await;
    let r = c.get("last/k", None).await.unwrap();
    assert_eq!(
        (r.kvs()[0].value(), r.kvs()[0].mod_revision()),
        (&b"v1"[..], rev)
    );
    assert_eq!(r.header().unwrap().revision(), rev);

    let lease = c.lease_grant(600, None).await.unwrap().id();
    m.kill9();
    m.restart();
    c = m.client().await;
    let ttl = c.lease_time_to_live(lease, None).await.unwrap();
    assert_eq!(ttl.granted_ttl(), 600, "granted lease survives");

    let rev2 = c
        .put("last/k", "v2", Some(PutOptions::new().with_lease(lease)))
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    assert_eq!(rev2, rev + 1);
    m.kill9();
    m.restart();
    c = m.client().await;
    let r = c.get("last/k", None).await.unwrap();
    let kv = &r.kvs()[0];
    assert_eq!(
        (kv.value(), kv.mod_revision(), kv.version(), kv.lease()),
        (&b"v2"[..], rev2, 2, lease)
    );

    let rev3 = c
        .delete("last/k", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    m.kill9();
    m.restart();
    c = m.client().await;
    let r = c.get("last/k", None).await.unwrap();
    assert!(r.kvs().is_empty(), "acknowledged delete survives");
    assert_eq!(r.header().unwrap().revision(), rev3);

    c.lease_revoke(lease).await.unwrap();
    m.kill9();
    m.restart();
    c = m.client().await;
    let ttl = c.lease_time_to_live(lease, None).await.unwrap();
    assert_eq!(ttl.ttl(), -1, "acknowledged revoke survives");

    c.compact(rev2, None).await.unwrap();
    m.kill9();
    m.restart();
    c = m.client().await;
    let err = c
        .get("last/k", Some(GetOptions::new().with_revision(rev)))
        .await
        .expect_err("compacted");
    match err {
        etcd_client::Error::GRpcStatus(s) => {
            assert_eq!(
                s.message(),
                "etcdserver: mvcc: required revision has been compacted"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.get("any", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision(),
        rev3
    );
}
