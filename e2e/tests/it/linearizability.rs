//! The linearizability checker on hand-written histories: anomalies a broken store
//! could show must fail, legal concurrency and lost answers must pass.

use oxcd_e2e::checker::{CheckOptions, Linearizability, check_linearizability};
use oxcd_e2e::history::{
    Compare, History, Operation, Outcome, PutRequest, RangeRequest, Request, ResponseBody, TxnOp,
    TxnOpResponse, TxnRequest,
};

use crate::fixtures::{created, delete, get, kv, ok, operation, put, put_unknown, range_body};

fn check(operations: Vec<Operation>) -> Linearizability {
    check_linearizability(
        &History {
            operations,
            watches: Vec::new(),
        },
        &CheckOptions::default(),
    )
}

fn violations() -> Vec<(&'static str, Vec<Operation>)> {
    vec![
        (
            "stale read: misses a write that completed before it started",
            vec![
                put(1, (0, 10), "a", "1", 2),
                put(1, (20, 30), "a", "2", 3),
                get(2, (40, 50), "a", 2, Some(kv("a", "1", 2, 2, 1))),
            ],
        ),
        (
            "lost write: acknowledged, never seen, while a later write to another key is",
            vec![
                put(1, (0, 10), "a", "1", 2),
                put(2, (20, 30), "b", "1", 3),
                operation(
                    3,
                    (40, 50),
                    Request::Range(RangeRequest::prefix("")),
                    ok(
                        3,
                        ResponseBody::Range(range_body(vec![kv("b", "1", 3, 3, 1)])),
                    ),
                ),
            ],
        ),
        (
            "revision goes backwards",
            vec![
                put(1, (0, 10), "a", "1", 2),
                put(1, (20, 30), "a", "2", 3),
                put(2, (40, 50), "b", "1", 2),
            ],
        ),
        (
            "create-if-absent succeeds twice for one key",
            vec![
                created(1, (0, 10), "a", "1", 2),
                created(2, (5, 15), "a", "2", 3),
            ],
        ),
        (
            "create-if-absent succeeds twice, one after the other",
            vec![
                created(1, (0, 10), "a", "1", 2),
                created(2, (20, 30), "a", "2", 3),
            ],
        ),
        (
            "deleting a missing key bumps the revision",
            vec![delete(1, (0, 10), "a", 2, 0)],
        ),
        (
            "a read of an old revision sees a newer value",
            vec![
                put(1, (0, 10), "a", "1", 2),
                put(1, (20, 30), "a", "2", 3),
                range_at(2, (40, 50), "a", 2, 3, vec![kv("a", "2", 3, 2, 2)]),
            ],
        ),
        (
            "a read of a compacted revision succeeds",
            vec![
                put(1, (0, 10), "a", "1", 2),
                put(1, (20, 30), "a", "2", 3),
                operation(
                    1,
                    (40, 50),
                    Request::Compact { revision: 3 },
                    ok(3, ResponseBody::Compact),
                ),
                range_at(2, (60, 70), "a", 2, 3, vec![kv("a", "1", 2, 2, 1)]),
            ],
        ),
        (
            "a read returns a value nobody wrote",
            vec![
                put(1, (0, 10), "a", "1", 2),
                get(2, (20, 30), "a", 2, Some(kv("a", "x", 2, 2, 1))),
            ],
        ),
        (
            "a put with an unknown lease succeeds",
            vec![operation(
                1,
                (0, 10),
                Request::Put(PutRequest {
                    key: "a".into(),
                    value: "1".into(),
                    lease: 7,
                }),
                ok(2, ResponseBody::Put),
            )],
        ),
    ]
}

fn linearizable() -> Vec<(&'static str, Vec<Operation>)> {
    vec![
        (
            "concurrent puts take effect in either order",
            vec![
                put(1, (0, 100), "a", "1", 3),
                put(2, (10, 50), "a", "2", 2),
                get(3, (60, 70), "a", 2, Some(kv("a", "2", 2, 2, 1))),
                get(3, (110, 120), "a", 3, Some(kv("a", "1", 3, 2, 2))),
            ],
        ),
        (
            "a read concurrent with a write may miss it",
            vec![
                put(1, (0, 50), "a", "1", 2),
                get(2, (10, 20), "a", 1, None),
                get(2, (30, 40), "a", 2, Some(kv("a", "1", 2, 2, 1))),
            ],
        ),
        (
            "a put without an answer takes effect later",
            vec![
                put_unknown(1, 0, "a", "1"),
                get(2, (50, 60), "a", 1, None),
                get(2, (70, 80), "a", 2, Some(kv("a", "1", 2, 2, 1))),
            ],
        ),
        (
            "a put without an answer never takes effect",
            vec![
                put_unknown(1, 0, "a", "1"),
                put(2, (10, 20), "b", "1", 2),
                get(2, (30, 40), "a", 2, None),
            ],
        ),
        (
            "a put that failed took effect anyway",
            vec![
                operation(
                    1,
                    (0, 10),
                    Request::put("a", "1"),
                    Outcome::Error("context deadline exceeded".into()),
                ),
                get(2, (20, 30), "a", 2, Some(kv("a", "1", 2, 2, 1))),
            ],
        ),
        (
            "optimistic updates: one wins, the other reads the winner",
            vec![
                created(1, (0, 10), "a", "1", 2),
                update(1, (20, 40), "a", "2", 2, Ok(3)),
                update(2, (25, 45), "a", "3", 2, Err(kv("a", "2", 3, 2, 2))),
            ],
        ),
        (
            "deletes: a missing key keeps the revision, an existing one bumps it",
            vec![
                delete(1, (0, 10), "a", 1, 0),
                put(1, (20, 30), "a", "1", 2),
                delete(1, (40, 50), "a", 3, 1),
                get(2, (60, 70), "a", 3, None),
            ],
        ),
        (
            "revoking a lease deletes its keys in one revision",
            vec![
                operation(
                    1,
                    (0, 10),
                    Request::LeaseGrant { id: 7, ttl: 3600 },
                    ok(1, ResponseBody::LeaseGrant),
                ),
                operation(
                    1,
                    (20, 30),
                    Request::Put(PutRequest {
                        key: "a".into(),
                        value: "1".into(),
                        lease: 7,
                    }),
                    ok(2, ResponseBody::Put),
                ),
                put(1, (40, 50), "b", "1", 3),
                operation(
                    1,
                    (60, 70),
                    Request::LeaseRevoke { id: 7 },
                    ok(4, ResponseBody::LeaseRevoke),
                ),
                operation(
                    2,
                    (80, 90),
                    Request::Range(RangeRequest::prefix("")),
                    ok(
                        4,
                        ResponseBody::Range(range_body(vec![kv("b", "1", 3, 3, 1)])),
                    ),
                ),
            ],
        ),
        (
            "reads of old revisions see the state of the time",
            vec![
                put(1, (0, 10), "a", "1", 2),
                put(1, (20, 30), "a", "2", 3),
                range_at(2, (40, 50), "a", 2, 3, vec![kv("a", "1", 2, 2, 1)]),
                operation(
                    1,
                    (60, 70),
                    Request::Compact { revision: 2 },
                    ok(3, ResponseBody::Compact),
                ),
                range_at(2, (80, 90), "a", 2, 3, vec![kv("a", "1", 2, 2, 1)]),
            ],
        ),
        (
            "a limited prefix range counts every match",
            vec![
                put(1, (0, 10), "k/a", "1", 2),
                put(1, (20, 30), "k/b", "1", 3),
                put(1, (40, 50), "other", "1", 4),
                operation(
                    2,
                    (60, 70),
                    Request::Range(RangeRequest {
                        limit: 1,
                        ..RangeRequest::prefix("k/")
                    }),
                    ok(
                        4,
                        ResponseBody::Range(oxcd_e2e::history::RangeResponse {
                            kvs: vec![kv("k/a", "1", 2, 2, 1)],
                            count: 2,
                        }),
                    ),
                ),
            ],
        ),
        (
            "a revoke without an answer took effect: the lease could be granted again",
            vec![
                operation(
                    1,
                    (0, 10),
                    Request::LeaseGrant { id: 7, ttl: 3600 },
                    ok(1, ResponseBody::LeaseGrant),
                ),
                operation(1, (20, 0), Request::LeaseRevoke { id: 7 }, Outcome::Unknown),
                operation(
                    2,
                    (30, 40),
                    Request::LeaseGrant { id: 7, ttl: 3600 },
                    ok(1, ResponseBody::LeaseGrant),
                ),
            ],
        ),
        ("an empty history", vec![]),
    ]
}

/// A range of `key` at `at`, answered at header revision `revision`.
fn range_at(
    client: u32,
    times: (u64, u64),
    key: &str,
    at: i64,
    revision: i64,
    kvs: Vec<oxcd_e2e::history::KeyValue>,
) -> Operation {
    let request = Request::Range(RangeRequest {
        revision: at,
        ..RangeRequest::get(key)
    });
    operation(
        client,
        times,
        request,
        ok(revision, ResponseBody::Range(range_body(kvs))),
    )
}

/// An optimistic update: `Ok(revision)` when it won, `Err(current)` when it lost.
fn update(
    client: u32,
    times: (u64, u64),
    key: &str,
    value: &str,
    expected_mod: i64,
    result: Result<i64, oxcd_e2e::history::KeyValue>,
) -> Operation {
    let request = Request::Txn(TxnRequest::update_if_unchanged(key, value, expected_mod));
    let outcome = match result {
        Ok(revision) => ok(
            revision,
            ResponseBody::Txn {
                succeeded: true,
                results: vec![TxnOpResponse::Put],
            },
        ),
        Err(current) => {
            let revision = current.mod_revision;
            let results = vec![TxnOpResponse::Range(range_body(vec![current]))];
            ok(
                revision,
                ResponseBody::Txn {
                    succeeded: false,
                    results,
                },
            )
        }
    };
    operation(client, times, request, outcome)
}

#[test]
fn anomalies_are_violations() {
    for (name, operations) in violations() {
        let verdict = check(operations);
        assert!(
            verdict.is_violation(),
            "{name}: expected a violation, got {verdict:?}"
        );
    }
}

#[test]
fn legal_histories_are_linearizable() {
    for (name, operations) in linearizable() {
        let verdict = check(operations);
        assert!(
            verdict.is_ok(),
            "{name}: expected linearizable, got {verdict:?}"
        );
    }
}

#[test]
fn linearization_yields_the_revision_log() {
    let verdict = check(vec![
        put_unknown(1, 0, "a", "1"),
        put(2, (10, 20), "b", "1", 3),
        get(2, (30, 40), "a", 3, Some(kv("a", "1", 2, 2, 1))),
    ]);
    let Linearizability::Ok(linearization) = verdict else {
        panic!("expected linearizable, got {verdict:?}")
    };
    assert_eq!(linearization.revision(), 3);
    let log = linearization.revision_log();
    assert_eq!(log.last_revision(), 3);
    assert_eq!(log.revision(2)[0].kv, kv("a", "1", 2, 2, 1));
    assert_eq!(log.revision(3)[0].kv, kv("b", "1", 3, 3, 1));
}

#[test]
fn out_of_budget_is_unknown() {
    let operations: Vec<Operation> = (0..50)
        .map(|i| put(i, (0, 1000), "a", &i.to_string(), 2 + i64::from(i)))
        .collect();
    let options = CheckOptions {
        max_steps: 10,
        ..CheckOptions::default()
    };
    let verdict = check_linearizability(
        &History {
            operations,
            watches: Vec::new(),
        },
        &options,
    );
    assert!(
        matches!(verdict, Linearizability::Unknown { .. }),
        "{verdict:?}"
    );
}

#[test]
fn txn_reads_its_own_writes_and_compares_missing_keys_as_zero() {
    let txn = TxnRequest {
        compares: vec![
            Compare::Version {
                key: "a".into(),
                equals: 0,
            },
            Compare::CreateRevision {
                key: "a".into(),
                equals: 0,
            },
        ],
        success: vec![
            TxnOp::Put(PutRequest {
                key: "a".into(),
                value: "1".into(),
                lease: 0,
            }),
            TxnOp::Range(RangeRequest::get("a")),
        ],
        failure: vec![],
    };
    let value_compare = TxnRequest {
        compares: vec![Compare::Value {
            key: "b".into(),
            equals: String::new(),
        }],
        success: vec![],
        failure: vec![],
    };
    let verdict = check(vec![
        operation(
            1,
            (0, 10),
            Request::Txn(txn),
            ok(
                2,
                ResponseBody::Txn {
                    succeeded: true,
                    results: vec![
                        TxnOpResponse::Put,
                        TxnOpResponse::Range(range_body(vec![kv("a", "1", 2, 2, 1)])),
                    ],
                },
            ),
        ),
        operation(
            1,
            (20, 30),
            Request::Txn(value_compare),
            ok(
                2,
                ResponseBody::Txn {
                    succeeded: false,
                    results: vec![],
                },
            ),
        ),
    ]);
    assert!(verdict.is_ok(), "{verdict:?}");
}

#[test]
fn history_round_trips_through_json() {
    let history = History {
        operations: linearizable()
            .into_iter()
            .flat_map(|(_, operations)| operations)
            .collect(),
        watches: Vec::new(),
    };
    assert_eq!(History::from_json(&history.to_json()).unwrap(), history);
}

/// Two writes without answers could each fill revision 3; a complete watch shows it was the
/// delete, and the put's value appears nowhere. The put certainly did not happen, so the
/// checker must not linearize it there (the watch check would then report the delete's
/// event as unexpected and the put's as missing). Requests never sent and lease grants no
/// one uses are left out too.
#[test]
fn unknown_writes_the_watch_proves_absent_are_left_out() {
    use crate::fixtures::{created_response, delete_event, events, progress, put_event, watch_all};
    let operations = vec![
        put(1, (0, 10), "k/a", "1", 2),
        put_unknown(2, 20, "k/x", "never"),
        operation(3, (21, 0), Request::delete("k/a"), Outcome::Unknown),
        operation(
            4,
            (22, 23),
            Request::put("k/y", "refused"),
            Outcome::NotSent("connection refused".into()),
        ),
        operation(
            5,
            (24, 0),
            Request::LeaseGrant { id: 9, ttl: 60 },
            Outcome::Unknown,
        ),
        put(6, (40, 50), "k/b", "2", 4),
    ];
    let watches = vec![watch_all(
        100,
        0,
        0,
        vec![
            created_response(1, 1),
            events(11, 2, vec![put_event(kv("k/a", "1", 2, 2, 1), None)]),
            events(
                30,
                3,
                vec![delete_event("k/a", 3, Some(kv("k/a", "1", 2, 2, 1)))],
            ),
            events(51, 4, vec![put_event(kv("k/b", "2", 4, 4, 1), None)]),
            progress(60, 4),
        ],
    )];
    let history = History {
        operations,
        watches,
    };
    let report = oxcd_e2e::checker::check(&history, &CheckOptions::default());
    assert!(report.is_ok(), "{report}");
}
