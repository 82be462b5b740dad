//! The Lease service against a real member: grant (ids, TTL bounds), revoke, keep-alive,
//! time-to-live, listing, expiry, and how keys attach to and move between leases.
//! etcd 3.5 is the reference for every expectation.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use etcd_client::{
    Client, EventType, LeaseGrantOptions, LeaseTimeToLiveOptions, PutOptions, WatchOptions,
    WatchStream,
};
use oxcd::proto::etcdserverpb as pb;
use oxcd_testkit::{Member, wait_for};
use tonic::Code;

use crate::calls::{status, text};

const TIMEOUT: Duration = Duration::from_secs(15);
/// etcd's minimum TTL with the default election timeout: ceil(1.5 × 1000 ms) = 2 s.
const MIN_TTL: i64 = 2;
const NOT_FOUND: &str = "etcdserver: requested lease not found";

async fn current_rev(c: &mut Client) -> i64 {
    c.get("any", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision()
}

async fn put_leased(c: &mut Client, key: &str, lease: i64) -> i64 {
    let opts = PutOptions::new().with_lease(lease);
    let resp = c.put(key, "v", Some(opts)).await.expect("put with lease");
    resp.header().unwrap().revision()
}

/// (granted TTL, remaining TTL, attached keys sorted) of a lease; TTL -1 when unknown.
async fn ttl_of(c: &mut Client, id: i64) -> (i64, i64, Vec<String>) {
    let opts = LeaseTimeToLiveOptions::new().with_keys();
    let r = c
        .lease_time_to_live(id, Some(opts))
        .await
        .expect("time to live");
    assert_eq!(r.id(), id);
    let mut keys: Vec<String> = r.keys().iter().map(|k| text(k)).collect();
    keys.sort();
    (r.granted_ttl(), r.ttl(), keys)
}

async fn lease_ids(c: &mut Client) -> BTreeSet<i64> {
    let r = c.leases().await.expect("leases");
    r.leases().iter().map(|l| l.id()).collect()
}

async fn keys_with_prefix(c: &mut Client, prefix: &str) -> Vec<String> {
    let opts = etcd_client::GetOptions::new().with_prefix();
    let r = c.get(prefix, Some(opts)).await.expect("get prefix");
    r.kvs().iter().map(|kv| text(kv.key())).collect()
}

/// Opens a prefix watch from `start` and consumes the creation response.
async fn watch_prefix(c: &mut Client, prefix: &str, start: i64) -> WatchStream {
    let opts = WatchOptions::new().with_prefix().with_start_revision(start);
    let mut w = c.watch(prefix, Some(opts)).await.expect("watch");
    let created = next_watch(&mut w).await;
    assert!(created.created() && !created.canceled(), "{created:?}");
    w
}

async fn next_watch(w: &mut WatchStream) -> etcd_client::WatchResponse {
    tokio::time::timeout(TIMEOUT, w.message())
        .await
        .expect("a watch response in time")
        .expect("watch stream ok")
        .expect("watch stream open")
}

/// Reads `n` events; returns (is delete, key, mod revision) of each.
async fn read_events(w: &mut WatchStream, n: usize) -> Vec<(bool, String, i64)> {
    let mut out = Vec::new();
    while out.len() < n {
        let resp = next_watch(w).await;
        for e in resp.events() {
            let kv = e.kv().expect("event kv");
            out.push((
                e.event_type() == EventType::Delete,
                text(kv.key()),
                kv.mod_revision(),
            ));
        }
    }
    assert_eq!(out.len(), n, "no more events than expected: {out:?}");
    out
}

#[tokio::test]
async fn grant_chooses_ids_and_bounds_ttls() {
    let m = Member::start();
    let mut c = m.client().await;
    let rev = current_rev(&mut c).await;

    let auto = c.lease_grant(60, None).await.expect("grant with server id");
    assert!(auto.id() > 0, "server-chosen id is positive: {}", auto.id());
    assert_eq!(auto.ttl(), 60);
    assert_eq!(auto.error(), "");
    assert_eq!(
        auto.header().unwrap().revision(),
        rev,
        "grant does not change the revision"
    );
    let auto2 = c.lease_grant(60, None).await.unwrap();
    assert!(
        auto2.id() > 0 && auto2.id() != auto.id(),
        "ids are distinct"
    );

    // (case, requested id, requested TTL, granted TTL)
    let cases: [(&str, i64, i64, i64); 6] = [
        ("client id", 0x1234, 30, 30),
        ("ttl below minimum", 0x1235, 1, MIN_TTL),
        ("ttl zero", 0x1236, 0, MIN_TTL),
        ("negative ttl", 0x1237, -5, MIN_TTL),
        ("ttl at minimum", 0x1238, MIN_TTL, MIN_TTL),
        ("ttl at maximum", 0x1239, 9_000_000_000, 9_000_000_000),
    ];
    for (case, id, ttl, granted) in cases {
        let opts = LeaseGrantOptions::new().with_id(id);
        let r = c
            .lease_grant(ttl, Some(opts))
            .await
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!((r.id(), r.ttl()), (id, granted), "{case}");
        let (granted_ttl, _, _) = ttl_of(&mut c, id).await;
        assert_eq!(
            granted_ttl, granted,
            "{case}: TimeToLive reports the raised TTL"
        );
    }

    // (case, requested id, requested TTL, code, message)
    let refused: [(&str, i64, i64, Code, &str); 3] = [
        (
            "existing id",
            0x1234,
            30,
            Code::FailedPrecondition,
            "etcdserver: lease already exists",
        ),
        (
            "existing server id",
            auto.id(),
            5,
            Code::FailedPrecondition,
            "etcdserver: lease already exists",
        ),
        (
            "ttl too large",
            0x2000,
            9_000_000_001,
            Code::OutOfRange,
            "etcdserver: too large lease TTL",
        ),
    ];
    for (case, id, ttl, code, message) in refused {
        let opts = LeaseGrantOptions::new().with_id(id);
        let err = c.lease_grant(ttl, Some(opts)).await.expect_err(case);
        assert_eq!(status(err), (code, message.to_string()), "{case}");
    }
    assert!(
        !lease_ids(&mut c).await.contains(&0x2000),
        "a refused grant creates nothing"
    );
    let (granted_ttl, _, _) = ttl_of(&mut c, 0x1234).await;
    assert_eq!(
        granted_ttl, 30,
        "a refused re-grant leaves the lease as it was"
    );
    assert_eq!(
        current_rev(&mut c).await,
        rev,
        "grants never change the revision"
    );
}

#[tokio::test]
async fn revoke_deletes_attached_keys_at_one_revision() {
    let m = Member::start();
    let mut c = m.client().await;
    let id = c.lease_grant(60, None).await.unwrap().id();
    let other = c.lease_grant(60, None).await.unwrap().id();
    for key in ["r/a", "r/b", "r/c"] {
        put_leased(&mut c, key, id).await;
    }
    put_leased(&mut c, "r/other-lease", other).await;
    let before = c
        .put("r/no-lease", "v", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let mut w = watch_prefix(&mut c, "r/", before + 1).await;

    let revoke = c.lease_revoke(id).await.expect("revoke");
    let rev = revoke.header().unwrap().revision();
    assert_eq!(rev, before + 1, "one revision for all the deletes");

    let events = read_events(&mut w, 3).await;
    let want: Vec<(bool, String, i64)> = ["r/a", "r/b", "r/c"]
        .iter()
        .map(|k| (true, k.to_string(), rev))
        .collect();
    let mut got = events.clone();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(
        keys_with_prefix(&mut c, "r/").await,
        ["r/no-lease", "r/other-lease"]
    );
    assert_eq!(ttl_of(&mut c, id).await, (0, -1, vec![]));
    assert!(!lease_ids(&mut c).await.contains(&id));
    assert_eq!(ttl_of(&mut c, other).await.2, ["r/other-lease"]);

    for (case, lease) in [("revoked twice", id), ("never granted", 0x7777)] {
        let err = c.lease_revoke(lease).await.expect_err(case);
        assert_eq!(
            status(err),
            (Code::NotFound, NOT_FOUND.to_string()),
            "{case}"
        );
    }
    assert_eq!(
        current_rev(&mut c).await,
        rev,
        "a failed revoke changes nothing"
    );

    // A lease without keys revokes without a new revision.
    let empty = c.lease_grant(60, None).await.unwrap().id();
    let r = c.lease_revoke(empty).await.unwrap();
    assert_eq!(r.header().unwrap().revision(), rev);
}

#[tokio::test]
async fn keep_alive_extends_a_lease_beyond_its_ttl() {
    let m = Member::start();
    let mut c = m.client().await;
    let id = c.lease_grant(MIN_TTL, None).await.unwrap().id();
    put_leased(&mut c, "ka/k", id).await;
    let (mut keeper, mut stream) = c.lease_keep_alive(id).await.expect("keep alive");
    assert_eq!(keeper.id(), id);

    // Keep it alive for twice its TTL; it must never expire meanwhile.
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(400));
    while start.elapsed() < Duration::from_secs(2 * MIN_TTL as u64) {
        tick.tick().await;
        keeper.keep_alive().await.expect("send keep alive");
        let resp = tokio::time::timeout(TIMEOUT, stream.message())
            .await
            .expect("keep-alive response in time")
            .expect("keep-alive stream ok")
            .expect("keep-alive stream open");
        assert_eq!((resp.id(), resp.ttl()), (id, MIN_TTL));
        let (granted, remaining, keys) = ttl_of(&mut c, id).await;
        assert_eq!(granted, MIN_TTL);
        assert!(
            remaining > 0 && remaining <= MIN_TTL,
            "remaining {remaining}"
        );
        assert_eq!(keys, ["ka/k"]);
    }
    assert!(lease_ids(&mut c).await.contains(&id));

    // Stop: now it expires.
    drop(keeper);
    drop(stream);
    wait_for(TIMEOUT, "lease to expire after keep-alives stop", || {
        let mut c = c.clone();
        async move { (ttl_of(&mut c, id).await.1 == -1).then_some(()) }
    })
    .await;
    assert!(keys_with_prefix(&mut c, "ka/").await.is_empty());
}

#[tokio::test]
async fn keep_alive_of_unknown_lease_answers_ttl_zero() {
    let m = Member::start();
    let mut c = m.client().await;
    // The etcd client reports TTL <= 0 as "lease not found".
    match c.lease_keep_alive(0x4242).await {
        Err(etcd_client::Error::LeaseKeepAliveError(msg)) => assert_eq!(msg, "lease not found"),
        other => panic!("expected a keep-alive error, got {:?}", other.map(|_| ())),
    }

    // On the wire: the id echoed with TTL 0, for an unknown and for a revoked lease.
    let id = c.lease_grant(60, None).await.unwrap().id();
    c.lease_revoke(id).await.unwrap();
    let rev = c
        .put("x", "y", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let mut raw = pb::lease_client::LeaseClient::connect(m.endpoint())
        .await
        .unwrap();
    let reqs = vec![
        pb::LeaseKeepAliveRequest { id: 0x4242 },
        pb::LeaseKeepAliveRequest { id },
    ];
    let mut out = raw
        .lease_keep_alive(tokio_stream::iter(reqs))
        .await
        .unwrap()
        .into_inner();
    for want in [0x4242, id] {
        let resp = tokio::time::timeout(TIMEOUT, out.message())
            .await
            .expect("keep-alive response in time")
            .unwrap()
            .expect("a response per request");
        assert_eq!((resp.id, resp.ttl), (want, 0));
        assert_eq!(resp.header.map(|h| h.revision), Some(rev), "{resp:?}");
    }
}

#[tokio::test]
async fn time_to_live_reports_ttls_and_keys() {
    let m = Member::start();
    let mut c = m.client().await;
    let id = c.lease_grant(60, None).await.unwrap().id();
    for key in ["t/b", "t/a"] {
        put_leased(&mut c, key, id).await;
    }
    let (granted, remaining, keys) = ttl_of(&mut c, id).await;
    assert_eq!(granted, 60);
    assert!((55..=60).contains(&remaining), "remaining {remaining}");
    assert_eq!(keys, ["t/a", "t/b"]);

    let plain = c.lease_time_to_live(id, None).await.unwrap();
    assert_eq!((plain.id(), plain.granted_ttl()), (id, 60));
    assert!(plain.keys().is_empty(), "keys only when asked");
    assert!(plain.ttl() > 0 && plain.ttl() <= 60);

    let unknown = c
        .lease_time_to_live(0x5151, None)
        .await
        .expect("unknown lease is no error");
    assert_eq!(
        (unknown.id(), unknown.ttl(), unknown.granted_ttl()),
        (0x5151, -1, 0)
    );
    assert!(unknown.keys().is_empty());
    assert!(unknown.header().unwrap().revision() > 0, "header is filled");
}

#[tokio::test]
async fn leases_lists_every_granted_lease() {
    let m = Member::start();
    let mut c = m.client().await;
    assert!(lease_ids(&mut c).await.is_empty());
    let mut ids = BTreeSet::new();
    for n in 1..=3 {
        let opts = LeaseGrantOptions::new().with_id(n * 100);
        ids.insert(c.lease_grant(60, Some(opts)).await.unwrap().id());
    }
    ids.insert(c.lease_grant(60, None).await.unwrap().id());
    assert_eq!(lease_ids(&mut c).await, ids);
    c.lease_revoke(200).await.unwrap();
    ids.remove(&200);
    assert_eq!(lease_ids(&mut c).await, ids);
    let r = c.leases().await.unwrap();
    assert_eq!(r.header().unwrap().revision(), current_rev(&mut c).await);
}

#[tokio::test]
async fn unrenewed_lease_expires_and_deletes_its_keys() {
    let m = Member::start();
    let mut c = m.client().await;
    let granted_at = Instant::now();
    let id = c.lease_grant(MIN_TTL + 1, None).await.unwrap().id();
    let short = c.lease_grant(MIN_TTL, None).await.unwrap().id();
    let long = c.lease_grant(600, None).await.unwrap().id();
    for key in ["e/1", "e/2"] {
        put_leased(&mut c, key, id).await;
    }
    put_leased(&mut c, "e/long", long).await;
    let before = c
        .put("e/plain", "v", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let mut w = watch_prefix(&mut c, "e/", before + 1).await;
    assert_eq!(keys_with_prefix(&mut c, "e/").await.len(), 4);

    let events = read_events(&mut w, 2).await;
    let expired_after = granted_at.elapsed();
    let mut got = events.clone();
    got.sort();
    assert_eq!(
        got,
        [
            (true, "e/1".to_string(), before + 1),
            (true, "e/2".to_string(), before + 1)
        ],
        "both keys deleted at one revision, the next one"
    );
    assert!(
        expired_after >= Duration::from_millis((MIN_TTL as u64 + 1) * 1000 - 500),
        "expired too early: {expired_after:?}"
    );
    // Expiry is checked every 250 ms and the revoke goes through raft: seconds at most, with
    // room here for a loaded machine.
    assert!(
        expired_after < Duration::from_secs(MIN_TTL as u64 + 1 + 15),
        "{expired_after:?}"
    );
    assert_eq!(keys_with_prefix(&mut c, "e/").await, ["e/long", "e/plain"]);
    assert_eq!(ttl_of(&mut c, id).await.1, -1);
    // The key-less short lease expired too, without a revision of its own.
    wait_for(TIMEOUT, "key-less lease to expire", || {
        let mut c = c.clone();
        async move { (!lease_ids(&mut c).await.contains(&short)).then_some(()) }
    })
    .await;
    assert_eq!(lease_ids(&mut c).await, BTreeSet::from([long]));
    assert_eq!(current_rev(&mut c).await, before + 1);
}

#[tokio::test]
async fn put_with_unknown_lease_is_refused() {
    let m = Member::start();
    let mut c = m.client().await;
    let rev = c
        .put("u/k", "v0", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let revoked = c.lease_grant(60, None).await.unwrap().id();
    c.lease_revoke(revoked).await.unwrap();
    for (case, lease) in [("never granted", 0x999), ("revoked", revoked)] {
        let opts = PutOptions::new().with_lease(lease);
        let err = c.put("u/k", "v1", Some(opts)).await.expect_err(case);
        assert_eq!(
            status(err),
            (Code::NotFound, NOT_FOUND.to_string()),
            "{case}"
        );
    }
    let r = c.get("u/k", None).await.unwrap();
    assert_eq!(text(r.kvs()[0].value()), "v0");
    assert_eq!(
        (r.kvs()[0].lease(), r.header().unwrap().revision()),
        (0, rev)
    );
}

#[tokio::test]
async fn reput_moves_a_key_between_leases() {
    let m = Member::start();
    let mut c = m.client().await;
    let a = c.lease_grant(60, None).await.unwrap().id();
    let b = c.lease_grant(60, None).await.unwrap().id();
    let keys = |c: &Client, id: i64| {
        let mut c = c.clone();
        async move { ttl_of(&mut c, id).await.2 }
    };
    let lease_of = |c: &Client| {
        let mut c = c.clone();
        async move { c.get("mv/k", None).await.unwrap().kvs()[0].lease() }
    };
    let none: Vec<String> = vec![];
    let k = vec!["mv/k".to_string()];

    put_leased(&mut c, "mv/k", a).await;
    assert_eq!(
        (keys(&c, a).await, keys(&c, b).await),
        (k.clone(), none.clone())
    );
    put_leased(&mut c, "mv/k", b).await;
    assert_eq!(
        (keys(&c, a).await, keys(&c, b).await),
        (none.clone(), k.clone())
    );
    assert_eq!(lease_of(&c).await, b);

    // ignore_lease keeps the key on its lease.
    c.put("mv/k", "v2", Some(PutOptions::new().with_ignore_lease()))
        .await
        .unwrap();
    assert_eq!(
        (keys(&c, a).await, keys(&c, b).await),
        (none.clone(), k.clone())
    );
    assert_eq!(lease_of(&c).await, b);

    // A put without a lease detaches it.
    c.put("mv/k", "v3", None).await.unwrap();
    assert_eq!(
        (keys(&c, a).await, keys(&c, b).await),
        (none.clone(), none.clone())
    );
    assert_eq!(lease_of(&c).await, 0);

    // Revoking a lease the key has left does not delete it.
    put_leased(&mut c, "mv/k", a).await;
    c.lease_revoke(b).await.unwrap();
    assert_eq!(lease_of(&c).await, a);

    // Deleting the key detaches it; a new key of the same name is not attached.
    c.delete("mv/k", None).await.unwrap();
    assert_eq!(keys(&c, a).await, none);
    c.put("mv/k", "v4", None).await.unwrap();
    let rev = c
        .lease_revoke(a)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    assert_eq!(keys_with_prefix(&mut c, "mv/").await, ["mv/k"]);
    assert_eq!(rev, current_rev(&mut c).await);
}
