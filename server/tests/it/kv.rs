//! The KV service against a real member: Put/Range/DeleteRange/Compact and every Range
//! option (ranges, limit, revision, sort, filters, keys/count only, serializable), with exact
//! revisions, versions and counts. etcd 3.5 is the reference for every expectation: an empty
//! store is at revision 1, so the first write gets revision 2.

use etcd_client::{
    Client, CompactionOptions, DeleteOptions, GetOptions, GetResponse, KeyValue, PutOptions,
    SortOrder, SortTarget,
};
use oxcd::proto::etcdserverpb as pb;
use oxcd_testkit::Member;
use tonic::Code;

use crate::calls::{put, status, text};

const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const FUTURE: &str = "etcdserver: mvcc: required revision is a future revision";

/// A key-value reduced to what the tests compare exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Kv {
    key: String,
    value: String,
    create: i64,
    modr: i64,
    version: i64,
    lease: i64,
}

fn kv(key: &str, value: &str, create: i64, modr: i64, version: i64) -> Kv {
    Kv {
        key: key.into(),
        value: value.into(),
        create,
        modr,
        version,
        lease: 0,
    }
}

impl From<&KeyValue> for Kv {
    fn from(k: &KeyValue) -> Kv {
        Kv {
            key: text(k.key()),
            value: text(k.value()),
            create: k.create_revision(),
            modr: k.mod_revision(),
            version: k.version(),
            lease: k.lease(),
        }
    }
}

fn kvs(r: &GetResponse) -> Vec<Kv> {
    r.kvs().iter().map(Kv::from).collect()
}

fn keys(r: &GetResponse) -> Vec<String> {
    r.kvs().iter().map(|k| text(k.key())).collect()
}

fn rev(r: &GetResponse) -> i64 {
    r.header().expect("header").revision()
}

/// Puts each key in order (the first gets revision 2 on a fresh member).
async fn put_all(c: &mut Client, keys: &[&str]) {
    for k in keys {
        put(c, k, &format!("v-{k}")).await;
    }
}

#[tokio::test]
async fn put_then_get_one_key() {
    let m = Member::start();
    let mut c = m.client().await;

    let r = c.get("k", None).await.unwrap();
    assert_eq!(
        (rev(&r), r.count(), r.kvs().len(), r.more()),
        (1, 0, 0, false)
    );

    let p = c.put("k", "v1", None).await.unwrap();
    let h = p.header().unwrap();
    assert_eq!(h.revision(), 2);
    assert_ne!(h.cluster_id(), 0);
    assert_ne!(h.member_id(), 0);
    assert!(h.raft_term() >= 1);
    assert!(p.prev_key().is_none(), "no prev_kv unless asked for");

    let r = c.get("k", None).await.unwrap();
    assert_eq!(rev(&r), 2);
    assert_eq!(r.count(), 1);
    assert!(!r.more());
    assert_eq!(kvs(&r), vec![kv("k", "v1", 2, 2, 1)]);
    // A single-key get does not match other keys sharing the prefix.
    put(&mut c, "k2", "x").await;
    assert_eq!(keys(&c.get("k", None).await.unwrap()), vec!["k"]);
}

#[tokio::test]
async fn versions_revisions_and_generations() {
    let m = Member::start();
    let mut c = m.client().await;

    assert_eq!(put(&mut c, "a", "1").await, 2);
    assert_eq!(put(&mut c, "a", "2").await, 3);
    assert_eq!(put(&mut c, "b", "1").await, 4);
    assert_eq!(put(&mut c, "a", "3").await, 5);
    let r = c.get("a", None).await.unwrap();
    assert_eq!(kvs(&r), vec![kv("a", "3", 2, 5, 3)]);
    assert_eq!(rev(&r), 5);

    // Delete ends the generation; the next put starts a new one.
    let d = c.delete("a", None).await.unwrap();
    assert_eq!((d.deleted(), d.header().unwrap().revision()), (1, 6));
    let r = c.get("a", None).await.unwrap();
    assert_eq!((r.count(), rev(&r)), (0, 6));
    assert_eq!(put(&mut c, "a", "new").await, 7);
    assert_eq!(
        kvs(&c.get("a", None).await.unwrap()),
        vec![kv("a", "new", 7, 7, 1)]
    );

    // Deleting nothing does not create a revision.
    let d = c.delete("missing", None).await.unwrap();
    assert_eq!((d.deleted(), d.header().unwrap().revision()), (0, 7));
    assert_eq!(put(&mut c, "b", "2").await, 8);
    assert_eq!(
        kvs(&c.get("b", None).await.unwrap()),
        vec![kv("b", "2", 4, 8, 2)]
    );
}

#[tokio::test]
async fn ranges_prefix_interval_from_key_and_all_keys() {
    let m = Member::start();
    let mut c = m.client().await;
    put_all(
        &mut c,
        &["a", "foo", "foo/1", "foo/2", "fop", "z", "\u{7f}"],
    )
    .await;

    let cases: Vec<(&str, &str, GetOptions, Vec<&str>)> = vec![
        (
            "prefix",
            "foo",
            GetOptions::new().with_prefix(),
            vec!["foo", "foo/1", "foo/2"],
        ),
        (
            "prefix with separator",
            "foo/",
            GetOptions::new().with_prefix(),
            vec!["foo/1", "foo/2"],
        ),
        ("no match", "q", GetOptions::new().with_prefix(), vec![]),
        (
            "interval [foo/, z)",
            "foo/",
            GetOptions::new().with_range("z"),
            vec!["foo/1", "foo/2", "fop"],
        ),
        (
            "from key (range end \\0)",
            "fop",
            GetOptions::new().with_from_key(),
            vec!["fop", "z", "\u{7f}"],
        ),
        (
            "all keys (\\0, \\0)",
            "",
            GetOptions::new().with_all_keys(),
            vec!["a", "foo", "foo/1", "foo/2", "fop", "z", "\u{7f}"],
        ),
        (
            "empty prefix is all keys",
            "",
            GetOptions::new().with_prefix(),
            vec!["a", "foo", "foo/1", "foo/2", "fop", "z", "\u{7f}"],
        ),
    ];
    for (what, key, opts, want) in cases {
        let r = c.get(key, Some(opts)).await.unwrap();
        assert_eq!(keys(&r), want, "{what}");
        assert_eq!(r.count(), want.len() as i64, "{what}: count");
        assert!(!r.more(), "{what}: more");
        assert_eq!(rev(&r), 8, "{what}: header revision");
    }
}

#[tokio::test]
async fn limit_sets_more_and_count_is_the_whole_range() {
    let m = Member::start();
    let mut c = m.client().await;
    put_all(&mut c, &["p/1", "p/2", "p/3", "p/4", "p/5", "q"]).await;

    // (limit, sort descending by key, kept keys, more)
    let cases: Vec<(i64, bool, Vec<&str>, bool)> = vec![
        (0, false, vec!["p/1", "p/2", "p/3", "p/4", "p/5"], false),
        (1, false, vec!["p/1"], true),
        (2, false, vec!["p/1", "p/2"], true),
        (4, false, vec!["p/1", "p/2", "p/3", "p/4"], true),
        (5, false, vec!["p/1", "p/2", "p/3", "p/4", "p/5"], false),
        (6, false, vec!["p/1", "p/2", "p/3", "p/4", "p/5"], false),
        (2, true, vec!["p/5", "p/4"], true),
        (5, true, vec!["p/5", "p/4", "p/3", "p/2", "p/1"], false),
    ];
    for (limit, descend, want, more) in cases {
        let mut opts = GetOptions::new().with_prefix().with_limit(limit);
        if descend {
            opts = opts.with_sort(SortTarget::Key, SortOrder::Descend);
        }
        let r = c.get("p/", Some(opts)).await.unwrap();
        let what = format!("limit {limit} descend {descend}");
        assert_eq!(keys(&r), want, "{what}");
        assert_eq!(r.more(), more, "{what}: more");
        assert_eq!(r.count(), 5, "{what}: count ignores the limit");
    }
    // count_only with a limit: no kvs, the full count.
    let r = c
        .get(
            "p/",
            Some(
                GetOptions::new()
                    .with_prefix()
                    .with_limit(2)
                    .with_count_only(),
            ),
        )
        .await
        .unwrap();
    assert_eq!((r.kvs().len(), r.count(), r.more()), (0, 5, false));
}

#[tokio::test]
async fn historical_reads_see_the_past_and_report_the_current_revision() {
    let m = Member::start();
    let mut c = m.client().await;
    put(&mut c, "h/a", "1").await; // 2
    put(&mut c, "h/a", "2").await; // 3
    put(&mut c, "h/b", "1").await; // 4
    c.delete("h/a", None).await.unwrap(); // 5
    put(&mut c, "h/a", "3").await; // 6

    // (revision, visible kvs under h/)
    let cases: Vec<(i64, Vec<Kv>)> = vec![
        (1, vec![]),
        (2, vec![kv("h/a", "1", 2, 2, 1)]),
        (3, vec![kv("h/a", "2", 2, 3, 2)]),
        (4, vec![kv("h/a", "2", 2, 3, 2), kv("h/b", "1", 4, 4, 1)]),
        (5, vec![kv("h/b", "1", 4, 4, 1)]),
        (6, vec![kv("h/a", "3", 6, 6, 1), kv("h/b", "1", 4, 4, 1)]),
        (0, vec![kv("h/a", "3", 6, 6, 1), kv("h/b", "1", 4, 4, 1)]),
    ];
    for (at, want) in cases {
        let r = c
            .get(
                "h/",
                Some(GetOptions::new().with_prefix().with_revision(at)),
            )
            .await
            .unwrap();
        assert_eq!(kvs(&r), want, "at revision {at}");
        assert_eq!(r.count(), want.len() as i64, "count at revision {at}");
        assert_eq!(rev(&r), 6, "header revision of a read at {at}");
    }
    let r = c
        .get("h/a", Some(GetOptions::new().with_revision(3)))
        .await
        .unwrap();
    assert_eq!(kvs(&r), vec![kv("h/a", "2", 2, 3, 2)]);

    let e = c
        .get("h/a", Some(GetOptions::new().with_revision(7)))
        .await
        .unwrap_err();
    assert_eq!(status(e), (Code::OutOfRange, FUTURE.to_string()));
}

/// Puts that give k1..k3 five different orders, one per sort target:
/// k1 c2 m5 v3 "b"; k2 c6 m7 v2 "a"; k3 c4 m4 v1 "c".
async fn sort_fixture(c: &mut Client) {
    for (k, v) in [
        ("s/k1", "x"),
        ("s/k1", "x"),
        ("s/k3", "c"),
        ("s/k1", "b"),
        ("s/k2", "x"),
        ("s/k2", "a"),
    ] {
        put(c, k, v).await;
    }
}

#[tokio::test]
async fn sort_by_every_target_both_ways() {
    let m = Member::start();
    let mut c = m.client().await;
    sort_fixture(&mut c).await;

    let ascending = [
        (SortTarget::Key, ["s/k1", "s/k2", "s/k3"]),
        (SortTarget::Create, ["s/k1", "s/k3", "s/k2"]),
        (SortTarget::Mod, ["s/k3", "s/k1", "s/k2"]),
        (SortTarget::Version, ["s/k3", "s/k2", "s/k1"]),
        (SortTarget::Value, ["s/k2", "s/k1", "s/k3"]),
    ];
    for (target, asc) in ascending {
        let mut desc = asc;
        desc.reverse();
        for (order, want) in [(SortOrder::Ascend, asc), (SortOrder::Descend, desc)] {
            let opts = GetOptions::new().with_prefix().with_sort(target, order);
            let r = c.get("s/", Some(opts)).await.unwrap();
            assert_eq!(keys(&r), want, "{target:?} {order:?}");
            assert_eq!(r.count(), 3);
            // Sorting happens before the limit cuts.
            let opts = GetOptions::new()
                .with_prefix()
                .with_sort(target, order)
                .with_limit(1);
            let r = c.get("s/", Some(opts)).await.unwrap();
            assert_eq!(keys(&r), want[..1], "{target:?} {order:?} limit 1");
            assert!(r.more());
        }
    }

    // The raw API: order NONE with a target other than KEY sorts ascending (etcd 3.5).
    let mut raw = pb::kv_client::KvClient::connect(m.endpoint())
        .await
        .unwrap();
    let r = raw
        .range(pb::RangeRequest {
            key: b"s/".to_vec(),
            range_end: b"s0".to_vec(),
            sort_target: pb::range_request::SortTarget::Version as i32,
            sort_order: pb::range_request::SortOrder::None as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let got: Vec<String> = r.kvs.iter().map(|k| text(&k.key)).collect();
    assert_eq!(got, ["s/k3", "s/k2", "s/k1"]);
}

#[tokio::test]
async fn keys_only_and_count_only() {
    let m = Member::start();
    let mut c = m.client().await;
    put_all(&mut c, &["o/a", "o/b", "o/c"]).await;

    let r = c
        .get("o/", Some(GetOptions::new().with_prefix().with_keys_only()))
        .await
        .unwrap();
    assert_eq!(
        kvs(&r),
        vec![
            kv("o/a", "", 2, 2, 1),
            kv("o/b", "", 3, 3, 1),
            kv("o/c", "", 4, 4, 1)
        ]
    );
    assert_eq!(r.count(), 3);

    let r = c
        .get(
            "o/",
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.kvs().len(), r.count(), r.more(), rev(&r)),
        (0, 3, false, 4)
    );
    let r = c
        .get("o/zz", Some(GetOptions::new().with_count_only()))
        .await
        .unwrap();
    assert_eq!(r.count(), 0);
}

#[tokio::test]
async fn mod_and_create_revision_filters() {
    let m = Member::start();
    let mut c = m.client().await;
    put(&mut c, "f/a", "1").await; // a: c2
    put(&mut c, "f/b", "1").await; // b: c3 m3
    put(&mut c, "f/c", "1").await; // c: c4 m4
    put(&mut c, "f/a", "2").await; // a: m5

    let cases: Vec<(&str, GetOptions, Vec<&str>)> = vec![
        (
            "min mod 4",
            GetOptions::new().with_min_mod_revision(4),
            vec!["f/a", "f/c"],
        ),
        (
            "max mod 3",
            GetOptions::new().with_max_mod_revision(3),
            vec!["f/b"],
        ),
        (
            "min mod 6",
            GetOptions::new().with_min_mod_revision(6),
            vec![],
        ),
        (
            "min create 3",
            GetOptions::new().with_min_create_revision(3),
            vec!["f/b", "f/c"],
        ),
        (
            "max create 2",
            GetOptions::new().with_max_create_revision(2),
            vec!["f/a"],
        ),
        (
            "min mod 4, max create 3",
            GetOptions::new()
                .with_min_mod_revision(4)
                .with_max_create_revision(3),
            vec!["f/a"],
        ),
        (
            "mod in [3, 4]",
            GetOptions::new()
                .with_min_mod_revision(3)
                .with_max_mod_revision(4),
            vec!["f/b", "f/c"],
        ),
    ];
    for (what, opts, want) in cases {
        let r = c.get("f/", Some(opts.with_prefix())).await.unwrap();
        assert_eq!(keys(&r), want, "{what}");
        assert_eq!(r.count(), 3, "{what}: count is taken before filtering");
    }
    // The limit applies to the filtered keys.
    let r = c
        .get(
            "f/",
            Some(
                GetOptions::new()
                    .with_prefix()
                    .with_min_mod_revision(4)
                    .with_limit(1),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        (keys(&r), r.more(), r.count()),
        (vec!["f/a".to_string()], true, 3)
    );
}

#[tokio::test]
async fn serializable_reads_see_applied_writes() {
    let m = Member::start();
    let mut c = m.client().await;
    put(&mut c, "s", "1").await;
    put(&mut c, "s", "2").await;
    let r = c
        .get("s", Some(GetOptions::new().with_serializable()))
        .await
        .unwrap();
    assert_eq!(kvs(&r), vec![kv("s", "2", 2, 3, 2)]);
    assert_eq!(rev(&r), 3);
    let r = c
        .get(
            "s",
            Some(GetOptions::new().with_serializable().with_revision(2)),
        )
        .await
        .unwrap();
    assert_eq!(kvs(&r), vec![kv("s", "1", 2, 2, 1)]);
}

#[tokio::test]
async fn put_returns_prev_kv_when_asked() {
    let m = Member::start();
    let mut c = m.client().await;
    let p = c
        .put("k", "1", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert!(p.prev_key().is_none(), "a new key has no previous version");
    let p = c
        .put("k", "2", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert_eq!(p.prev_key().map(Kv::from), Some(kv("k", "1", 2, 2, 1)));
    assert_eq!(p.header().unwrap().revision(), 3);
    let p = c.put("k", "3", None).await.unwrap();
    assert!(p.prev_key().is_none());
    // After a delete the key has no previous version again.
    c.delete("k", None).await.unwrap();
    let p = c
        .put("k", "4", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert!(p.prev_key().is_none());
}

#[tokio::test]
async fn put_with_lease_ignore_value_and_ignore_lease() {
    let m = Member::start();
    let mut c = m.client().await;
    let l1 = c.lease_grant(600, None).await.unwrap().id();
    let l2 = c.lease_grant(600, None).await.unwrap().id();

    put(&mut c, "plain", "p").await; // 2
    c.put("k", "v1", Some(PutOptions::new().with_lease(l1)))
        .await
        .unwrap(); // 3
    let got = |r: GetResponse| r.kvs().first().map(Kv::from);
    let mut want = Kv {
        lease: l1,
        ..kv("k", "v1", 3, 3, 1)
    };
    assert_eq!(got(c.get("k", None).await.unwrap()), Some(want.clone()));

    // ignore_lease keeps the lease, takes the new value.
    c.put("k", "v2", Some(PutOptions::new().with_ignore_lease()))
        .await
        .unwrap(); // 4
    want = Kv {
        value: "v2".into(),
        modr: 4,
        version: 2,
        ..want
    };
    assert_eq!(got(c.get("k", None).await.unwrap()), Some(want.clone()));

    // ignore_value keeps the value, takes the new lease.
    let p = c
        .put(
            "k",
            "",
            Some(
                PutOptions::new()
                    .with_ignore_value()
                    .with_lease(l2)
                    .with_prev_key(),
            ),
        )
        .await
        .unwrap(); // 5
    assert_eq!(p.prev_key().map(Kv::from), Some(want.clone()));
    want = Kv {
        lease: l2,
        modr: 5,
        version: 3,
        ..want
    };
    assert_eq!(got(c.get("k", None).await.unwrap()), Some(want.clone()));

    // Both flags: only the revision and version move.
    c.put(
        "k",
        "",
        Some(PutOptions::new().with_ignore_value().with_ignore_lease()),
    )
    .await
    .unwrap(); // 6
    want = Kv {
        modr: 6,
        version: 4,
        ..want
    };
    assert_eq!(got(c.get("k", None).await.unwrap()), Some(want.clone()));

    // The key left l1: revoking l1 keeps it, revoking l2 deletes it.
    c.lease_revoke(l1).await.unwrap();
    assert_eq!(got(c.get("k", None).await.unwrap()), Some(want));
    let r = c.lease_revoke(l2).await.unwrap();
    assert_eq!(r.header().unwrap().revision(), 7);
    assert_eq!(got(c.get("k", None).await.unwrap()), None);
    assert_eq!(
        got(c.get("plain", None).await.unwrap()),
        Some(kv("plain", "p", 2, 2, 1))
    );

    // A put without a lease detaches the key from its lease.
    let l3 = c.lease_grant(600, None).await.unwrap().id();
    c.put("d", "1", Some(PutOptions::new().with_lease(l3)))
        .await
        .unwrap();
    put(&mut c, "d", "2").await;
    c.lease_revoke(l3).await.unwrap();
    let r = c.get("d", None).await.unwrap();
    assert_eq!(
        r.kvs().first().map(|k| (text(k.value()), k.lease())),
        Some(("2".into(), 0))
    );
}

#[tokio::test]
async fn delete_single_prefix_and_range() {
    let m = Member::start();
    let mut c = m.client().await;
    put_all(&mut c, &["a", "b", "c", "d", "foo/1", "foo/2", "zz"]).await; // 2..=8

    let d = c
        .delete("a", Some(DeleteOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert_eq!((d.deleted(), d.header().unwrap().revision()), (1, 9));
    let prev: Vec<Kv> = d.prev_kvs().iter().map(Kv::from).collect();
    assert_eq!(prev, vec![kv("a", "v-a", 2, 2, 1)]);

    let d = c
        .delete(
            "foo/",
            Some(DeleteOptions::new().with_prefix().with_prev_key()),
        )
        .await
        .unwrap();
    assert_eq!((d.deleted(), d.header().unwrap().revision()), (2, 10));
    let prev: Vec<Kv> = d.prev_kvs().iter().map(Kv::from).collect();
    assert_eq!(
        prev,
        vec![
            kv("foo/1", "v-foo/1", 6, 6, 1),
            kv("foo/2", "v-foo/2", 7, 7, 1)
        ]
    );

    // [b, d) without prev_kv: a count, no values.
    let d = c
        .delete("b", Some(DeleteOptions::new().with_range("d")))
        .await
        .unwrap();
    assert_eq!((d.deleted(), d.prev_kvs().len()), (2, 0));
    assert_eq!(d.header().unwrap().revision(), 11);

    let r = c
        .get("", Some(GetOptions::new().with_all_keys()))
        .await
        .unwrap();
    assert_eq!(keys(&r), vec!["d", "zz"]);

    // A delete matching nothing: no revision.
    let d = c
        .delete("foo/", Some(DeleteOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!((d.deleted(), d.header().unwrap().revision()), (0, 11));

    let d = c
        .delete(
            "",
            Some(DeleteOptions::new().with_all_keys().with_prev_key()),
        )
        .await
        .unwrap();
    assert_eq!((d.deleted(), d.header().unwrap().revision()), (2, 12));
    assert_eq!(d.prev_kvs().len(), 2);
    let r = c
        .get("", Some(GetOptions::new().with_all_keys()))
        .await
        .unwrap();
    assert_eq!((r.count(), rev(&r)), (0, 12));
}

#[tokio::test]
async fn compaction_drops_history_but_keeps_the_latest() {
    let m = Member::start();
    let mut c = m.client().await;
    put(&mut c, "c", "1").await; // 2
    put(&mut c, "c", "2").await; // 3
    put(&mut c, "gone", "x").await; // 4
    c.delete("gone", None).await.unwrap(); // 5
    put(&mut c, "c", "3").await; // 6

    let r = c
        .compact(5, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    assert_eq!(r.header().unwrap().revision(), 6);

    for at in [1, 2, 4] {
        let e = c
            .get("c", Some(GetOptions::new().with_revision(at)))
            .await
            .unwrap_err();
        assert_eq!(
            status(e),
            (Code::OutOfRange, COMPACTED.to_string()),
            "read at {at}"
        );
    }
    // The compaction revision itself and later stay readable.
    let r = c
        .get("c", Some(GetOptions::new().with_revision(5)))
        .await
        .unwrap();
    assert_eq!(kvs(&r), vec![kv("c", "2", 2, 3, 2)]);
    let r = c
        .get("", Some(GetOptions::new().with_all_keys()))
        .await
        .unwrap();
    assert_eq!(kvs(&r), vec![kv("c", "3", 2, 6, 3)]);
    let e = c
        .get("c", Some(GetOptions::new().with_revision(7)))
        .await
        .unwrap_err();
    assert_eq!(status(e), (Code::OutOfRange, FUTURE.to_string()));

    // Compacting at or below the compacted revision again fails; so does a future one.
    for at in [5, 3] {
        let e = c.compact(at, None).await.unwrap_err();
        assert_eq!(
            status(e),
            (Code::OutOfRange, COMPACTED.to_string()),
            "compact {at}"
        );
    }
    let e = c.compact(7, None).await.unwrap_err();
    assert_eq!(status(e), (Code::OutOfRange, FUTURE.to_string()));

    // Writes go on; compacting up to the current revision works.
    assert_eq!(put(&mut c, "c", "4").await, 7);
    c.compact(7, None).await.unwrap();
    let e = c
        .get("c", Some(GetOptions::new().with_revision(6)))
        .await
        .unwrap_err();
    assert_eq!(status(e), (Code::OutOfRange, COMPACTED.to_string()));
    assert_eq!(
        kvs(&c.get("c", None).await.unwrap()),
        vec![kv("c", "4", 2, 7, 4)]
    );
}

#[tokio::test]
async fn compaction_survives_restart() {
    let mut m = Member::start();
    let mut c = m.client().await;
    put(&mut c, "r", "1").await; // 2
    put(&mut c, "r", "2").await; // 3
    put(&mut c, "r", "3").await; // 4
    c.compact(3, None).await.unwrap();
    m.kill9();
    m.restart();
    let mut c = m.client().await;
    let e = c
        .get("r", Some(GetOptions::new().with_revision(2)))
        .await
        .unwrap_err();
    assert_eq!(status(e), (Code::OutOfRange, COMPACTED.to_string()));
    let r = c
        .get("r", Some(GetOptions::new().with_revision(3)))
        .await
        .unwrap();
    assert_eq!(kvs(&r), vec![kv("r", "2", 2, 3, 2)]);
    assert_eq!(rev(&r), 4);
    assert_eq!(put(&mut c, "r", "4").await, 5);
}

/// clientv3's `WithRequireLeader` on a single member: the member is its own leader, also
/// after idling longer than an election timeout, so requests and streams work as usual.
#[tokio::test]
async fn require_leader_requests_work_on_a_single_member() {
    let m = Member::start();
    m.client().await; // waits until it serves
    let opts = etcd_client::ConnectOptions::new().with_require_leader(true);
    let mut c = Client::connect([m.endpoint()], Some(opts)).await.unwrap();
    put(&mut c, "rl", "1").await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let rev = put(&mut c, "rl", "2").await;
    let mut watch = c
        .watch(
            "rl",
            Some(etcd_client::WatchOptions::new().with_start_revision(rev)),
        )
        .await
        .unwrap();
    assert!(watch.message().await.unwrap().unwrap().created());
    let events = watch.message().await.unwrap().unwrap();
    assert_eq!(text(events.events()[0].kv().unwrap().value()), "2");
}
