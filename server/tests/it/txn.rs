//! Txn against a real member: compares (every target and result, ranges, missing keys),
//! branches, one revision per txn with ordered sub-revisions, reads of the txn's own writes,
//! nested txns and the request checks (duplicate keys, op limits, unknown leases).
//! etcd 3.5 is the reference for every expectation.

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, EventType, GetOptions, GetResponse, PutOptions, Txn,
    TxnOp, TxnOpResponse, TxnResponse, WatchOptions,
};
use oxcd::proto::etcdserverpb as pb;
use oxcd_testkit::Member;
use tonic::Code;

use crate::calls::{put, status, text};

const DUPLICATE: &str = "etcdserver: duplicate key given in txn request";
const TOO_MANY: &str = "etcdserver: too many operations in txn request";

/// The store's current revision.
async fn revision(c: &mut Client) -> i64 {
    c.get("any", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision()
}

/// Value of `key`, `None` when missing.
async fn value(c: &mut Client, key: &str) -> Option<String> {
    let r = c.get(key, None).await.unwrap();
    r.kvs().first().map(|kv| text(kv.value()))
}

fn txn_rev(t: &TxnResponse) -> i64 {
    t.header().unwrap().revision()
}

fn get_of(r: &TxnOpResponse) -> &GetResponse {
    match r {
        TxnOpResponse::Get(g) => g,
        other => panic!("expected a range response, got {other:?}"),
    }
}

/// (key, value, mod revision) of every kv a range response holds.
fn kvs_of(r: &TxnOpResponse) -> Vec<(String, String, i64)> {
    get_of(r)
        .kvs()
        .iter()
        .map(|kv| (text(kv.key()), text(kv.value()), kv.mod_revision()))
        .collect()
}

/// Whether a txn with `compares` takes its success branch (and writes nothing).
async fn holds(c: &mut Client, compares: Vec<Compare>) -> bool {
    let t = c
        .txn(Txn::new().when(compares).and_then(vec![]).or_else(vec![]))
        .await
        .unwrap();
    assert!(t.op_responses().is_empty());
    t.succeeded()
}

#[tokio::test]
async fn compares_on_every_target_with_every_result() {
    let m = Member::start();
    let mut c = m.client().await;
    let lease = c.lease_grant(600, None).await.unwrap().id();
    put(&mut c, "k", "x").await; // 2
    c.put("k", "m", Some(PutOptions::new().with_lease(lease)))
        .await
        .unwrap(); // 3
    // k: value "m", version 2, create revision 2, mod revision 3, lease `lease`.

    // The compare for `target` against the key's own value shifted by `delta` (-1, 0, 1).
    let compare = |target: &str, op: CompareOp, delta: i64| match target {
        "version" => Compare::version("k", op, 2 + delta),
        "create" => Compare::create_revision("k", op, 2 + delta),
        "mod" => Compare::mod_revision("k", op, 3 + delta),
        "value" => Compare::value("k", op, ["l", "m", "n"][(delta + 1) as usize]),
        "lease" => Compare::lease("k", op, lease + delta),
        _ => unreachable!(),
    };
    // (result, holds when the key's field is above / equal to / below the operand)
    let results = [
        (CompareOp::Equal, [false, true, false]),
        (CompareOp::Greater, [true, false, false]),
        (CompareOp::Less, [false, false, true]),
        (CompareOp::NotEqual, [true, false, true]),
    ];
    for target in ["version", "create", "mod", "value", "lease"] {
        for (op, want) in results {
            for (delta, want) in [-1, 0, 1].into_iter().zip(want) {
                let got = holds(&mut c, vec![compare(target, op, delta)]).await;
                assert_eq!(got, want, "{target} {op:?} (operand shifted by {delta})");
            }
        }
    }
    // All compares must hold.
    let yes = compare("version", CompareOp::Equal, 0);
    let no = compare("value", CompareOp::Equal, 1);
    assert!(holds(&mut c, vec![yes.clone(), yes.clone()]).await);
    assert!(!holds(&mut c, vec![yes, no]).await);
    // Read-only txns wrote nothing.
    assert_eq!(revision(&mut c).await, 3);
}

#[tokio::test]
async fn compares_on_a_missing_key() {
    let m = Member::start();
    let mut c = m.client().await;
    put(&mut c, "other", "").await;
    // A missing key compares as all-zero fields, except that any value compare fails.
    let cases = [
        (Compare::version("nope", CompareOp::Equal, 0), true),
        (Compare::version("nope", CompareOp::Greater, 0), false),
        (Compare::create_revision("nope", CompareOp::Equal, 0), true),
        (Compare::create_revision("nope", CompareOp::Less, 1), true),
        (Compare::mod_revision("nope", CompareOp::Equal, 0), true),
        (Compare::mod_revision("nope", CompareOp::NotEqual, 0), false),
        (Compare::lease("nope", CompareOp::Equal, 0), true),
        (Compare::value("nope", CompareOp::Equal, ""), false),
        (Compare::value("nope", CompareOp::NotEqual, "x"), false),
        (Compare::value("nope", CompareOp::Less, "x"), false),
        // An existing key with an empty value does compare equal to "".
        (Compare::value("other", CompareOp::Equal, ""), true),
    ];
    for (i, (cmp, want)) in cases.into_iter().enumerate() {
        assert_eq!(
            holds(&mut c, vec![cmp.clone()]).await,
            want,
            "case {i}: {cmp:?}"
        );
    }
}

#[tokio::test]
async fn compares_over_a_range_need_every_key() {
    let m = Member::start();
    let mut c = m.client().await;
    put(&mut c, "r/a", "v").await; // 2
    put(&mut c, "r/b", "v").await; // 3
    put(&mut c, "r/b", "v").await; // 4: r/b version 2
    put(&mut c, "s", "w").await; // 5

    let cases = [
        (
            Compare::version("r/", CompareOp::Greater, 0).with_prefix(),
            true,
        ),
        (
            Compare::version("r/", CompareOp::Equal, 1).with_prefix(),
            false,
        ),
        (
            Compare::version("r/", CompareOp::Less, 3).with_prefix(),
            true,
        ),
        (
            Compare::value("r/", CompareOp::Equal, "v").with_prefix(),
            true,
        ),
        (
            Compare::value("r/", CompareOp::NotEqual, "v").with_prefix(),
            false,
        ),
        (
            Compare::mod_revision("r/", CompareOp::Less, 4).with_prefix(),
            false,
        ),
        (
            Compare::mod_revision("r/", CompareOp::Less, 5).with_prefix(),
            true,
        ),
        // [r/a, r/b) holds only r/a.
        (
            Compare::version("r/a", CompareOp::Equal, 1).with_range("r/b"),
            true,
        ),
        // From r/ on (range end "\0") takes s too.
        (
            Compare::value("r/", CompareOp::Equal, "v").with_range(vec![0]),
            false,
        ),
        (
            Compare::create_revision("r/", CompareOp::Greater, 1).with_range(vec![0]),
            true,
        ),
        // An empty range compares like a missing key.
        (
            Compare::version("t", CompareOp::Equal, 0).with_range("u"),
            true,
        ),
        (
            Compare::value("t", CompareOp::Equal, "").with_range("u"),
            false,
        ),
    ];
    for (i, (cmp, want)) in cases.into_iter().enumerate() {
        assert_eq!(
            holds(&mut c, vec![cmp.clone()]).await,
            want,
            "case {i}: {cmp:?}"
        );
    }
}

#[tokio::test]
async fn success_and_failure_branches() {
    let m = Member::start();
    let mut c = m.client().await;
    put(&mut c, "lock", "free").await; // 2

    let acquire = || {
        Txn::new()
            .when(vec![Compare::value("lock", CompareOp::Equal, "free")])
            .and_then(vec![
                TxnOp::put("lock", "held", None),
                TxnOp::put("owner", "me", None),
            ])
            .or_else(vec![
                TxnOp::get("lock", None),
                TxnOp::put("failures", "1", None),
            ])
    };
    let t = c.txn(acquire()).await.unwrap();
    assert!(t.succeeded());
    assert_eq!(txn_rev(&t), 3);
    let rs = t.op_responses();
    assert_eq!(rs.len(), 2);
    for r in &rs {
        match r {
            TxnOpResponse::Put(p) => assert_eq!(p.header().unwrap().revision(), 3),
            other => panic!("expected put responses, got {other:?}"),
        }
    }
    assert_eq!(value(&mut c, "lock").await.as_deref(), Some("held"));
    assert_eq!(value(&mut c, "owner").await.as_deref(), Some("me"));
    assert_eq!(value(&mut c, "failures").await, None);

    let t = c.txn(acquire()).await.unwrap();
    assert!(!t.succeeded());
    assert_eq!(txn_rev(&t), 4);
    let rs = t.op_responses();
    assert_eq!(rs.len(), 2);
    assert_eq!(kvs_of(&rs[0]), vec![("lock".into(), "held".into(), 3)]);
    assert!(matches!(rs[1], TxnOpResponse::Put(_)));
    assert_eq!(value(&mut c, "failures").await.as_deref(), Some("1"));
    assert_eq!(value(&mut c, "owner").await.as_deref(), Some("me"));

    // No compares: the success branch runs.
    let t = c
        .txn(Txn::new().and_then(vec![TxnOp::delete("owner", None)]))
        .await
        .unwrap();
    assert!(t.succeeded());
    match &t.op_responses()[0] {
        TxnOpResponse::Delete(d) => assert_eq!(d.deleted(), 1),
        other => panic!("expected a delete response, got {other:?}"),
    }
    assert_eq!(txn_rev(&t), 5);
}

#[tokio::test]
async fn a_txn_is_one_revision_with_ordered_sub_revisions() {
    let m = Member::start();
    let mut c = m.client().await;
    put(&mut c, "m", "old").await; // 2
    put(&mut c, "a", "old").await; // 3

    let mut watch = c
        .watch(
            "",
            Some(WatchOptions::new().with_all_keys().with_start_revision(4)),
        )
        .await
        .unwrap();
    let t = c
        .txn(Txn::new().and_then(vec![
            TxnOp::put("z", "1", None),
            TxnOp::put("a", "2", None),
            TxnOp::delete("m", None),
        ]))
        .await
        .unwrap();
    assert_eq!(txn_rev(&t), 4);
    for key in ["z", "a"] {
        let r = c.get(key, None).await.unwrap();
        assert_eq!(r.kvs()[0].mod_revision(), 4, "{key}");
    }
    assert_eq!(c.get("a", None).await.unwrap().kvs()[0].version(), 2);
    assert_eq!(value(&mut c, "m").await, None);

    // The events of revision 4 come in op order, not key order.
    let mut events = Vec::new();
    while events.len() < 3 {
        let resp = tokio::time::timeout(Duration::from_secs(10), watch.message())
            .await
            .expect("watch events in time")
            .unwrap()
            .expect("watch stream open");
        for e in resp.events() {
            let kv = e.kv().unwrap();
            events.push((e.event_type(), text(kv.key()), kv.mod_revision()));
        }
    }
    assert_eq!(
        events,
        vec![
            (EventType::Put, "z".into(), 4),
            (EventType::Put, "a".into(), 4),
            (EventType::Delete, "m".into(), 4),
        ]
    );
}

#[tokio::test]
async fn reads_inside_a_txn_see_its_earlier_writes() {
    let m = Member::start();
    let mut c = m.client().await;
    put(&mut c, "p/0", "zero").await; // 2

    let t = c
        .txn(Txn::new().and_then(vec![
            TxnOp::get("p/", Some(GetOptions::new().with_prefix())),
            TxnOp::put("p/1", "one", None),
            TxnOp::get("p/", Some(GetOptions::new().with_prefix())),
            TxnOp::delete("p/0", None),
            TxnOp::get(
                "p/",
                Some(GetOptions::new().with_prefix().with_count_only()),
            ),
            TxnOp::get("p/0", Some(GetOptions::new().with_revision(2))),
        ]))
        .await
        .unwrap();
    assert_eq!(txn_rev(&t), 3);
    let rs = t.op_responses();
    assert_eq!(kvs_of(&rs[0]), vec![("p/0".into(), "zero".into(), 2)]);
    assert_eq!(
        get_of(&rs[0]).header().unwrap().revision(),
        2,
        "before any write"
    );
    assert_eq!(
        kvs_of(&rs[2]),
        vec![
            ("p/0".into(), "zero".into(), 2),
            ("p/1".into(), "one".into(), 3)
        ]
    );
    assert_eq!(
        get_of(&rs[2]).header().unwrap().revision(),
        3,
        "after a write"
    );
    assert_eq!(get_of(&rs[4]).count(), 1);
    assert_eq!(kvs_of(&rs[5]), vec![("p/0".into(), "zero".into(), 2)]);

    assert_eq!(value(&mut c, "p/0").await, None);
    assert_eq!(value(&mut c, "p/1").await.as_deref(), Some("one"));
}

#[tokio::test]
async fn txns_that_change_nothing_keep_the_revision() {
    let m = Member::start();
    let mut c = m.client().await;
    put(&mut c, "k", "v").await; // 2

    let t = c
        .txn(Txn::new().and_then(vec![TxnOp::get("k", None), TxnOp::get("nope", None)]))
        .await
        .unwrap();
    assert_eq!(txn_rev(&t), 2);
    let rs = t.op_responses();
    assert_eq!(kvs_of(&rs[0]), vec![("k".into(), "v".into(), 2)]);
    assert_eq!(get_of(&rs[1]).count(), 0);

    // A delete that matches nothing changes nothing either.
    let t = c
        .txn(Txn::new().and_then(vec![TxnOp::delete("nope", None), TxnOp::get("k", None)]))
        .await
        .unwrap();
    assert_eq!(txn_rev(&t), 2);
    match &t.op_responses()[0] {
        TxnOpResponse::Delete(d) => {
            assert_eq!((d.deleted(), d.header().unwrap().revision()), (0, 2));
        }
        other => panic!("expected a delete response, got {other:?}"),
    }
    assert_eq!(revision(&mut c).await, 2);
    assert_eq!(put(&mut c, "k", "w").await, 3);
}

#[tokio::test]
async fn nested_txns_follow_compares_taken_before_any_write() {
    let m = Member::start();
    let mut c = m.client().await;
    put(&mut c, "a", "1").await; // 2

    // The nested compare on b sees the state before the txn (b missing), not the put of b
    // that precedes it.
    let inner = Txn::new()
        .when(vec![Compare::value("b", CompareOp::Equal, "new")])
        .and_then(vec![TxnOp::put("c", "yes", None)])
        .or_else(vec![TxnOp::put("c", "no", None), TxnOp::get("b", None)]);
    let outer = Txn::new()
        .when(vec![Compare::value("a", CompareOp::Equal, "1")])
        .and_then(vec![TxnOp::put("b", "new", None), TxnOp::txn(inner)])
        .or_else(vec![TxnOp::put("d", "x", None)]);
    let t = c.txn(outer).await.unwrap();
    assert!(t.succeeded());
    assert_eq!(txn_rev(&t), 3);
    let rs = t.op_responses();
    assert_eq!(rs.len(), 2);
    let TxnOpResponse::Txn(nested) = &rs[1] else {
        panic!("expected a txn response, got {:?}", rs[1]);
    };
    assert!(!nested.succeeded());
    let nrs = nested.op_responses();
    assert_eq!(nrs.len(), 2);
    // ... but its reads do see the earlier writes.
    assert_eq!(kvs_of(&nrs[1]), vec![("b".into(), "new".into(), 3)]);
    assert_eq!(value(&mut c, "c").await.as_deref(), Some("no"));
    assert_eq!(value(&mut c, "d").await, None);
    let r = c.get("c", None).await.unwrap();
    assert_eq!(r.kvs()[0].mod_revision(), 3);

    // The same key in both branches of a nested txn is fine: only one runs.
    let inner = Txn::new()
        .when(vec![Compare::version("a", CompareOp::Greater, 0)])
        .and_then(vec![TxnOp::put("e", "then", None)])
        .or_else(vec![TxnOp::put("e", "else", None)]);
    let t = c
        .txn(Txn::new().and_then(vec![TxnOp::txn(inner)]))
        .await
        .unwrap();
    assert_eq!(txn_rev(&t), 4);
    assert_eq!(value(&mut c, "e").await.as_deref(), Some("then"));

    // A key put by a nested txn and by its parent is a duplicate.
    let inner = Txn::new().and_then(vec![TxnOp::put("f", "1", None)]);
    let e = c
        .txn(Txn::new().and_then(vec![TxnOp::txn(inner), TxnOp::put("f", "2", None)]))
        .await
        .unwrap_err();
    assert_eq!(status(e), (Code::InvalidArgument, DUPLICATE.to_string()));
    assert_eq!(revision(&mut c).await, 4);
}

#[tokio::test]
async fn duplicate_keys_are_refused_and_write_nothing() {
    let m = Member::start();
    let mut c = m.client().await;
    put(&mut c, "a1", "old").await; // 2

    let refused = [
        (
            "same key put twice",
            vec![TxnOp::put("k", "1", None), TxnOp::put("k", "2", None)],
        ),
        (
            "put inside a deleted prefix",
            vec![
                TxnOp::delete("a", Some(DeleteOptions::new().with_prefix())),
                TxnOp::put("a1", "new", None),
            ],
        ),
        (
            "put then delete of the same key",
            vec![TxnOp::put("a1", "new", None), TxnOp::delete("a1", None)],
        ),
        (
            "put inside a deleted interval",
            vec![
                TxnOp::put("b5", "x", None),
                TxnOp::delete("b", Some(DeleteOptions::new().with_range("c"))),
            ],
        ),
    ];
    for (what, ops) in refused {
        let e = c.txn(Txn::new().and_then(ops.clone())).await.unwrap_err();
        assert_eq!(
            status(e),
            (Code::InvalidArgument, DUPLICATE.to_string()),
            "{what}"
        );
        // Also when the ops sit in the failure branch, which would not even run.
        let e = c
            .txn(
                Txn::new()
                    .when(vec![Compare::version("a1", CompareOp::Equal, 1)])
                    .and_then(vec![])
                    .or_else(ops),
            )
            .await
            .unwrap_err();
        assert_eq!(
            status(e),
            (Code::InvalidArgument, DUPLICATE.to_string()),
            "{what} (else)"
        );
    }
    assert_eq!(revision(&mut c).await, 2);
    assert_eq!(value(&mut c, "a1").await.as_deref(), Some("old"));

    // Allowed: overlapping deletes, reads of put keys, the same key in then and else.
    let t = c
        .txn(
            Txn::new()
                .when(vec![Compare::version("a1", CompareOp::Equal, 1)])
                .and_then(vec![
                    TxnOp::delete("a", Some(DeleteOptions::new().with_prefix())),
                    TxnOp::delete("a1", None),
                    TxnOp::put("k", "then", None),
                    TxnOp::get("k", None),
                ])
                .or_else(vec![TxnOp::put("k", "else", None)]),
        )
        .await
        .unwrap();
    assert!(t.succeeded());
    assert_eq!(txn_rev(&t), 3);
    assert_eq!(value(&mut c, "k").await.as_deref(), Some("then"));
    assert_eq!(value(&mut c, "a1").await, None);
}

/// `n` puts of distinct keys.
fn puts(n: usize) -> Vec<TxnOp> {
    (0..n)
        .map(|i| TxnOp::put(format!("op/{i:04}"), "v", None))
        .collect()
}

/// A txn with `n` compares that all hold.
fn compares(n: usize) -> Vec<Compare> {
    (0..n)
        .map(|i| Compare::version(format!("none/{i}"), CompareOp::Equal, 0))
        .collect()
}

#[tokio::test]
async fn at_most_128_ops_per_txn_by_default() {
    let m = Member::start();
    let mut c = m.client().await;

    let too_many = [
        ("129 success ops", Txn::new().and_then(puts(129))),
        (
            "129 failure ops",
            Txn::new()
                .when(compares(1))
                .and_then(vec![])
                .or_else(puts(129)),
        ),
        (
            "129 compares",
            Txn::new().when(compares(129)).and_then(vec![]),
        ),
    ];
    for (what, t) in too_many {
        let e = c.txn(t).await.unwrap_err();
        assert_eq!(
            status(e),
            (Code::InvalidArgument, TOO_MANY.to_string()),
            "{what}"
        );
    }
    assert_eq!(revision(&mut c).await, 1);

    // 128 of each is fine, and 128 puts are still one revision.
    let t = c
        .txn(
            Txn::new()
                .when(compares(128))
                .and_then(puts(128))
                .or_else(puts(128)),
        )
        .await
        .unwrap();
    assert!(t.succeeded());
    assert_eq!(txn_rev(&t), 2);
    let r = c
        .get(
            "op/",
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .unwrap();
    assert_eq!(r.count(), 128);

    // A nested txn may only use what its parent left: 128 - 100 = 28 here.
    let nested = |n: usize| {
        let mut ops = puts(99);
        let inner: Vec<TxnOp> = (0..n)
            .map(|i| TxnOp::put(format!("in/{i}"), "v", None))
            .collect();
        ops.push(TxnOp::txn(Txn::new().and_then(inner)));
        Txn::new().and_then(ops)
    };
    let e = c.txn(nested(29)).await.unwrap_err();
    assert_eq!(status(e), (Code::InvalidArgument, TOO_MANY.to_string()));
    let t = c.txn(nested(28)).await.unwrap();
    assert_eq!(txn_rev(&t), 3);
}

#[tokio::test]
async fn max_txn_ops_flag_moves_the_limit() {
    let m = Member::start_with(&["--max-txn-ops", "200"]);
    let mut c = m.client().await;
    let t = c.txn(Txn::new().and_then(puts(200))).await.unwrap();
    assert_eq!(txn_rev(&t), 2);
    let e = c.txn(Txn::new().and_then(puts(201))).await.unwrap_err();
    assert_eq!(status(e), (Code::InvalidArgument, TOO_MANY.to_string()));

    let m = Member::start_with(&["--max-txn-ops", "3"]);
    let mut c = m.client().await;
    c.txn(Txn::new().and_then(puts(3))).await.unwrap();
    let e = c.txn(Txn::new().and_then(puts(4))).await.unwrap_err();
    assert_eq!(status(e), (Code::InvalidArgument, TOO_MANY.to_string()));
}

#[tokio::test]
async fn failing_ops_abort_the_whole_txn() {
    let m = Member::start();
    let mut c = m.client().await;
    put(&mut c, "k", "v").await; // 2
    put(&mut c, "k", "w").await; // 3
    c.compact(3, None).await.unwrap();

    let failing = [
        (
            "unknown lease",
            TxnOp::put("b", "2", Some(PutOptions::new().with_lease(0x1234))),
            Code::NotFound,
            "etcdserver: requested lease not found",
        ),
        (
            "ignore_value on a missing key",
            TxnOp::put("b", "", Some(PutOptions::new().with_ignore_value())),
            Code::InvalidArgument,
            "etcdserver: key not found",
        ),
        (
            "read at a compacted revision",
            TxnOp::get("k", Some(GetOptions::new().with_revision(2))),
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        ),
        (
            "read at a future revision",
            TxnOp::get("k", Some(GetOptions::new().with_revision(4))),
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision",
        ),
    ];
    for (what, op, code, msg) in failing {
        let t = Txn::new().and_then(vec![
            TxnOp::put("a", "1", None),
            op,
            TxnOp::delete("k", None),
        ]);
        let e = c.txn(t).await.unwrap_err();
        assert_eq!(status(e), (code, msg.to_string()), "{what}");
        assert_eq!(revision(&mut c).await, 3, "{what}: nothing written");
        assert_eq!(value(&mut c, "a").await, None, "{what}");
        assert_eq!(value(&mut c, "k").await.as_deref(), Some("w"), "{what}");
    }
    // A failing op in the branch that does not run does not matter.
    let t = c
        .txn(
            Txn::new()
                .when(vec![Compare::value("k", CompareOp::Equal, "w")])
                .and_then(vec![TxnOp::put("a", "1", None)])
                .or_else(vec![TxnOp::put(
                    "b",
                    "",
                    Some(PutOptions::new().with_lease(0x1234)),
                )]),
        )
        .await
        .unwrap();
    assert!(t.succeeded());
    assert_eq!(txn_rev(&t), 4);
}

#[tokio::test]
async fn malformed_txn_ops_are_refused() {
    let m = Member::start();
    let mut c = m.client().await;
    let mut raw = pb::kv_client::KvClient::connect(m.endpoint())
        .await
        .unwrap();
    let put = |k: &str| pb::RequestOp {
        request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
            key: k.into(),
            ..Default::default()
        })),
    };
    let cases = [
        (
            "op without a request",
            pb::TxnRequest {
                success: vec![put("a"), pb::RequestOp { request: None }],
                ..Default::default()
            },
            "etcdserver: key not found",
        ),
        (
            "compare without a key",
            pb::TxnRequest {
                compare: vec![pb::Compare {
                    key: vec![],
                    ..Default::default()
                }],
                success: vec![put("a")],
                ..Default::default()
            },
            "etcdserver: key is not provided",
        ),
        (
            "put without a key",
            pb::TxnRequest {
                success: vec![put("a"), put("")],
                ..Default::default()
            },
            "etcdserver: key is not provided",
        ),
        (
            "range with an invalid sort",
            pb::TxnRequest {
                failure: vec![pb::RequestOp {
                    request: Some(pb::request_op::Request::RequestRange(pb::RangeRequest {
                        key: b"a".to_vec(),
                        sort_order: 7,
                        ..Default::default()
                    })),
                }],
                ..Default::default()
            },
            "etcdserver: invalid sort option",
        ),
    ];
    for (what, req, msg) in cases {
        let e = raw.txn(req).await.unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (Code::InvalidArgument, msg),
            "{what}"
        );
    }
    assert_eq!(revision(&mut c).await, 1);
    assert_eq!(value(&mut c, "a").await, None);
}
