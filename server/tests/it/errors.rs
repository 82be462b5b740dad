//! Bad input against a real member: every case must be answered with etcd's gRPC code and
//! message, write nothing, and leave the member serving (each test ends with requests that
//! succeed). etcd 3.5 is the reference for every expectation.

use etcd_client::{Client, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp};
use oxcd::proto::etcdserverpb as pb;
use oxcd_testkit::Member;
use tonic::Code;

const EMPTY_KEY: &str = "etcdserver: key is not provided";
const KEY_NOT_FOUND: &str = "etcdserver: key not found";
const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
const TOO_LARGE: &str = "etcdserver: request is too large";
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const FUTURE: &str = "etcdserver: mvcc: required revision is a future revision";

/// Asserts that `r` failed with exactly `code` and `msg`.
#[track_caller]
fn assert_status<T: std::fmt::Debug>(r: Result<T, etcd_client::Error>, code: Code, msg: &str) {
    match r {
        Err(etcd_client::Error::GRpcStatus(s)) => {
            assert_eq!((s.code(), s.message()), (code, msg));
        }
        other => panic!("expected {code:?} {msg:?}, got {other:?}"),
    }
}

/// The store's current revision.
async fn revision(c: &mut Client) -> i64 {
    c.get("any", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision()
}

/// The member still takes writes and reads: a put and a get of it succeed.
async fn still_serving(c: &mut Client) {
    let rev = c
        .put("alive", "yes", None)
        .await
        .expect("put after bad input")
        .header()
        .unwrap()
        .revision();
    let r = c.get("alive", None).await.expect("get after bad input");
    assert_eq!(r.kvs()[0].value(), b"yes");
    assert_eq!(r.kvs()[0].mod_revision(), rev);
}

#[tokio::test]
async fn empty_keys_are_refused() {
    let m = Member::start();
    let mut c = m.client().await;
    c.put("a", "1", None).await.unwrap(); // 2

    assert_status(c.put("", "v", None).await, Code::InvalidArgument, EMPTY_KEY);
    assert_status(c.get("", None).await, Code::InvalidArgument, EMPTY_KEY);
    assert_status(
        c.get("", Some(GetOptions::new().with_range("b"))).await,
        Code::InvalidArgument,
        EMPTY_KEY,
    );
    assert_status(c.delete("", None).await, Code::InvalidArgument, EMPTY_KEY);
    assert_status(
        c.delete("", Some(DeleteOptions::new().with_range("b")))
            .await,
        Code::InvalidArgument,
        EMPTY_KEY,
    );
    assert_status(
        c.txn(Txn::new().and_then(vec![TxnOp::delete("", None)]))
            .await,
        Code::InvalidArgument,
        EMPTY_KEY,
    );
    assert_status(
        c.txn(Txn::new().and_then(vec![TxnOp::get("", None)])).await,
        Code::InvalidArgument,
        EMPTY_KEY,
    );
    assert_eq!(revision(&mut c).await, 2);
    assert_eq!(c.get("a", None).await.unwrap().count(), 1);
    still_serving(&mut c).await;
}

#[tokio::test]
async fn oversized_requests_are_refused() {
    let mut m = Member::start_with(&["--max-request-bytes", "1024"]);
    let mut c = m.client().await;
    c.put("small", vec![b's'; 512], None).await.unwrap(); // 2

    // Above --max-request-bytes: refused by the server.
    assert_status(
        c.put("big", vec![b'x'; 2048], None).await,
        Code::InvalidArgument,
        TOO_LARGE,
    );
    let two_halves = Txn::new().and_then(vec![
        TxnOp::put("h1", vec![b'x'; 700], None),
        TxnOp::put("h2", vec![b'x'; 700], None),
    ]);
    assert_status(c.txn(two_halves).await, Code::InvalidArgument, TOO_LARGE);
    assert_eq!(revision(&mut c).await, 2);
    assert_eq!(c.get("big", None).await.unwrap().count(), 0);

    // Above --max-request-bytes plus gRPC's allowance: refused by the transport.
    let huge = vec![b'x'; 1024 + 512 * 1024 + 4096];
    let e = c.put("huge", huge, None).await;
    assert!(e.is_err(), "a request over the transport limit must fail");
    assert!(m.is_running(), "the member survives an oversized message");
    let mut c = m.client().await;
    assert_eq!(revision(&mut c).await, 2);
    assert_eq!(c.get("huge", None).await.unwrap().count(), 0);
    still_serving(&mut c).await;
    // Reads are not limited by --max-request-bytes.
    let r = c.get("small", None).await.unwrap();
    assert_eq!(r.kvs()[0].value().len(), 512);
}

#[tokio::test]
async fn inverted_ranges_match_nothing() {
    let m = Member::start();
    let mut c = m.client().await;
    for k in ["a", "b", "c"] {
        c.put(k, "v", None).await.unwrap();
    } // 2..=4

    let r = c
        .get("c", Some(GetOptions::new().with_range("a")))
        .await
        .unwrap();
    assert_eq!((r.kvs().len(), r.count(), r.more()), (0, 0, false));
    assert_eq!(r.header().unwrap().revision(), 4);
    let r = c
        .get(
            "c",
            Some(GetOptions::new().with_range("a").with_count_only()),
        )
        .await
        .unwrap();
    assert_eq!(r.count(), 0);
    // An end equal to the key is empty too.
    let r = c
        .get("b", Some(GetOptions::new().with_range("b")))
        .await
        .unwrap();
    assert_eq!(r.count(), 0);

    let d = c
        .delete("c", Some(DeleteOptions::new().with_range("a")))
        .await
        .unwrap();
    assert_eq!((d.deleted(), d.header().unwrap().revision()), (0, 4));
    let t = c
        .txn(Txn::new().and_then(vec![
            TxnOp::get("c", Some(GetOptions::new().with_range("a"))),
            TxnOp::delete("c", Some(DeleteOptions::new().with_range("b"))),
        ]))
        .await
        .unwrap();
    assert_eq!(t.header().unwrap().revision(), 4);

    let r = c
        .get("a", Some(GetOptions::new().with_from_key()))
        .await
        .unwrap();
    assert_eq!(r.count(), 3);
    still_serving(&mut c).await;
}

#[tokio::test]
async fn unknown_leases_are_refused() {
    let m = Member::start();
    let mut c = m.client().await;
    assert_status(
        c.put("k", "v", Some(PutOptions::new().with_lease(0x7777)))
            .await,
        Code::NotFound,
        LEASE_NOT_FOUND,
    );
    // A revoked lease is unknown too.
    let id = c.lease_grant(600, None).await.unwrap().id();
    c.lease_revoke(id).await.unwrap();
    assert_status(
        c.put("k", "v", Some(PutOptions::new().with_lease(id)))
            .await,
        Code::NotFound,
        LEASE_NOT_FOUND,
    );
    assert_eq!(revision(&mut c).await, 1);
    assert_eq!(c.get("k", None).await.unwrap().count(), 0);
    still_serving(&mut c).await;
}

#[tokio::test]
async fn ignore_value_and_ignore_lease_misuse() {
    let m = Member::start();
    let mut c = m.client().await;
    let lease = c.lease_grant(600, None).await.unwrap().id();
    c.put("k", "v", None).await.unwrap(); // 2

    assert_status(
        c.put("k", "new", Some(PutOptions::new().with_ignore_value()))
            .await,
        Code::InvalidArgument,
        "etcdserver: value is provided",
    );
    assert_status(
        c.put(
            "k",
            "",
            Some(PutOptions::new().with_ignore_lease().with_lease(lease)),
        )
        .await,
        Code::InvalidArgument,
        "etcdserver: lease is provided",
    );
    // Both flags need the key to exist (etcd's ErrGRPCKeyNotFound is InvalidArgument).
    assert_status(
        c.put("missing", "", Some(PutOptions::new().with_ignore_value()))
            .await,
        Code::InvalidArgument,
        KEY_NOT_FOUND,
    );
    assert_status(
        c.put("missing", "v", Some(PutOptions::new().with_ignore_lease()))
            .await,
        Code::InvalidArgument,
        KEY_NOT_FOUND,
    );
    // A deleted key is missing as well.
    c.put("gone", "v", None).await.unwrap(); // 3
    c.delete("gone", None).await.unwrap(); // 4
    assert_status(
        c.put("gone", "", Some(PutOptions::new().with_ignore_value()))
            .await,
        Code::InvalidArgument,
        KEY_NOT_FOUND,
    );
    assert_eq!(revision(&mut c).await, 4);
    let r = c.get("k", None).await.unwrap();
    assert_eq!((r.kvs()[0].value(), r.kvs()[0].version()), (&b"v"[..], 1));
    assert_eq!(c.get("missing", None).await.unwrap().count(), 0);
    still_serving(&mut c).await;
}

#[tokio::test]
async fn compacted_and_future_revisions() {
    let m = Member::start();
    let mut c = m.client().await;
    for v in ["1", "2", "3"] {
        c.put("k", v, None).await.unwrap();
    } // 2..=4

    assert_status(
        c.get("k", Some(GetOptions::new().with_revision(5))).await,
        Code::OutOfRange,
        FUTURE,
    );
    assert_status(c.compact(5, None).await, Code::OutOfRange, FUTURE);
    c.compact(3, None).await.unwrap();
    assert_status(
        c.get("k", Some(GetOptions::new().with_revision(2))).await,
        Code::OutOfRange,
        COMPACTED,
    );
    assert_status(
        c.get("", Some(GetOptions::new().with_all_keys().with_revision(1)))
            .await,
        Code::OutOfRange,
        COMPACTED,
    );
    assert_status(c.compact(3, None).await, Code::OutOfRange, COMPACTED);
    assert_status(c.compact(1, None).await, Code::OutOfRange, COMPACTED);
    // A negative revision means "latest".
    let r = c
        .get("k", Some(GetOptions::new().with_revision(-1)))
        .await
        .unwrap();
    assert_eq!(r.kvs()[0].value(), b"3");
    still_serving(&mut c).await;
}

#[tokio::test]
async fn too_many_txn_ops() {
    let m = Member::start();
    let mut c = m.client().await;
    let ops: Vec<TxnOp> = (0..129)
        .map(|i| TxnOp::put(format!("k{i}"), "v", None))
        .collect();
    assert_status(
        c.txn(Txn::new().and_then(ops)).await,
        Code::InvalidArgument,
        "etcdserver: too many operations in txn request",
    );
    assert_eq!(revision(&mut c).await, 1);
    still_serving(&mut c).await;
}

#[tokio::test]
async fn raw_range_options() {
    let m = Member::start();
    let mut c = m.client().await;
    for k in ["a", "b", "c"] {
        c.put(k, "v", None).await.unwrap();
    }
    let mut raw = pb::kv_client::KvClient::connect(m.endpoint())
        .await
        .unwrap();
    let all = || pb::RangeRequest {
        key: b"a".to_vec(),
        range_end: vec![0],
        ..Default::default()
    };
    // Sort enums outside etcd's values.
    for req in [
        pb::RangeRequest {
            sort_order: 3,
            ..all()
        },
        pb::RangeRequest {
            sort_target: 5,
            ..all()
        },
    ] {
        let e = raw.range(req).await.unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (Code::InvalidArgument, "etcdserver: invalid sort option")
        );
    }
    // A negative limit means no limit.
    let r = raw
        .range(pb::RangeRequest { limit: -1, ..all() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.kvs.len(), r.count, r.more), (3, 3, false));
    still_serving(&mut c).await;
}

/// Downgrade answers etcd 3.5's errors: a member of this build cannot run an older version,
/// so a well-formed target is an invalid one, and there is never a job to cancel.
#[tokio::test]
async fn downgrade_answers_etcds_errors() {
    let m = Member::start();
    let mut c = m.client().await;
    let mut raw = pb::maintenance_client::MaintenanceClient::connect(m.endpoint())
        .await
        .unwrap();
    let cases = [
        (
            0,
            "3.4",
            Code::InvalidArgument,
            "etcdserver: invalid downgrade target version",
        ),
        (
            1,
            "3.4.0",
            Code::InvalidArgument,
            "etcdserver: invalid downgrade target version",
        ),
        (
            0,
            "three",
            Code::InvalidArgument,
            "etcdserver: wrong downgrade target version format",
        ),
        (
            2,
            "",
            Code::FailedPrecondition,
            "etcdserver: no inflight downgrade job",
        ),
        (7, "3.4", Code::Unknown, "etcdserver: unknown method"),
    ];
    for (action, version, code, message) in cases {
        let request = pb::DowngradeRequest {
            action,
            version: version.to_string(),
        };
        let err = raw.downgrade(request).await.unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (code, message),
            "{action} {version}"
        );
    }
    still_serving(&mut c).await;
}
