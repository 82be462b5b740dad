//! The watch checker: one correct history, and one broken copy of its watch stream per
//! guarantee.

use oxcd_e2e::checker::{CheckOptions, WatchGuarantee, check};
use oxcd_e2e::history::{
    History, Operation, PutRequest, Request, ResponseBody, TxnOp, TxnOpResponse, TxnRequest,
    WatchResponse, WatchResponseKind, WatchStream,
};

use crate::fixtures::{
    created_response, delete, delete_event, events, kv, ok, operation, progress, put, put_event,
    put_unknown, watch_all,
};

/// put a (2), put b (3), one txn writing a and b (4), delete a (5).
fn operations() -> Vec<Operation> {
    let both = TxnRequest {
        compares: vec![],
        success: vec![
            TxnOp::Put(PutRequest {
                key: "a".into(),
                value: "a2".into(),
                lease: 0,
            }),
            TxnOp::Put(PutRequest {
                key: "b".into(),
                value: "b2".into(),
                lease: 0,
            }),
        ],
        failure: vec![],
    };
    let txn_response = ResponseBody::Txn {
        succeeded: true,
        results: vec![TxnOpResponse::Put, TxnOpResponse::Put],
    };
    vec![
        put(1, (0, 10), "a", "a1", 2),
        put(1, (20, 30), "b", "b1", 3),
        operation(1, (40, 50), Request::Txn(both), ok(4, txn_response)),
        delete(1, (60, 70), "a", 5, 1),
    ]
}

/// What a correct watch of every key from revision 2 receives.
fn correct_responses() -> Vec<WatchResponse> {
    let (a1, b1) = (kv("a", "a1", 2, 2, 1), kv("b", "b1", 3, 3, 1));
    let (a2, b2) = (kv("a", "a2", 4, 2, 2), kv("b", "b2", 4, 3, 2));
    vec![
        created_response(1, 1),
        events(11, 2, vec![put_event(a1.clone(), None)]),
        events(31, 3, vec![put_event(b1.clone(), None)]),
        events(
            51,
            4,
            vec![put_event(a2.clone(), Some(a1)), put_event(b2, Some(b1))],
        ),
        progress(55, 4),
        events(71, 5, vec![delete_event("a", 5, Some(a2))]),
        progress(80, 5),
    ]
}

fn check_stream(operations: Vec<Operation>, watches: Vec<WatchStream>) -> Vec<WatchGuarantee> {
    let report = check(
        &History {
            operations,
            watches,
        },
        &CheckOptions::default(),
    );
    assert!(report.linearizability.is_ok(), "{report}");
    report
        .watch
        .iter()
        .map(|violation| violation.guarantee)
        .collect()
}

type Breakage = fn(&mut Vec<WatchResponse>);

fn breakages() -> Vec<(&'static str, Breakage, WatchGuarantee)> {
    vec![
        (
            "a missing event",
            |responses| drop(responses.remove(2)),
            WatchGuarantee::Reliable,
        ),
        (
            "responses reordered",
            |responses| responses.swap(1, 2),
            WatchGuarantee::Ordered,
        ),
        (
            "an event delivered twice",
            |responses| responses.insert(2, responses[1].clone()),
            WatchGuarantee::Unique,
        ),
        (
            "a revision split across responses",
            |responses| {
                let second = split_off_last_event(&mut responses[3]);
                responses.insert(4, second);
            },
            WatchGuarantee::Atomic,
        ),
        (
            "a progress notification followed by an older event",
            |responses| responses.insert(3, progress(45, 4)),
            WatchGuarantee::Bookmarkable,
        ),
        (
            "a progress notification behind a delivered event",
            |responses| responses.insert(4, progress(52, 3)),
            WatchGuarantee::Bookmarkable,
        ),
        (
            "a wrong prev_kv",
            |responses| {
                if let WatchResponseKind::Events { events, .. } = &mut responses[5].kind {
                    events[0].prev_kv = Some(kv("a", "a1", 2, 2, 1));
                }
            },
            WatchGuarantee::PrevKv,
        ),
        (
            "an event no operation wrote",
            |responses| {
                responses.push(events(90, 6, vec![put_event(kv("c", "c1", 6, 6, 1), None)]))
            },
            WatchGuarantee::Reliable,
        ),
        (
            "an event with the wrong value",
            |responses| {
                if let WatchResponseKind::Events { events, .. } = &mut responses[2].kind {
                    events[0].kv.value = "other".into();
                }
            },
            WatchGuarantee::Reliable,
        ),
    ]
}

/// Moves the last event of an events response into a response of its own.
fn split_off_last_event(response: &mut WatchResponse) -> WatchResponse {
    let WatchResponseKind::Events { events: batch, .. } = &mut response.kind else {
        panic!("not events")
    };
    let last = batch.pop().expect("an event to split off");
    events(response.time + 1, response.revision, vec![last])
}

#[test]
fn correct_stream_passes() {
    let violations = check_stream(operations(), vec![watch_all(9, 0, 2, correct_responses())]);
    assert_eq!(violations, vec![]);
}

#[test]
fn fragmented_revision_passes() {
    let mut responses = correct_responses();
    let second = split_off_last_event(&mut responses[3]);
    if let WatchResponseKind::Events { fragment, .. } = &mut responses[3].kind {
        *fragment = true;
    }
    responses.insert(4, second);
    assert_eq!(
        check_stream(operations(), vec![watch_all(9, 0, 2, responses)]),
        vec![]
    );
}

#[test]
fn each_broken_guarantee_is_reported() {
    for (name, break_stream, guarantee) in breakages() {
        let mut responses = correct_responses();
        break_stream(&mut responses);
        let violations = check_stream(operations(), vec![watch_all(9, 0, 2, responses)]);
        assert!(
            violations.contains(&guarantee),
            "{name}: expected {guarantee:?}, got {violations:?}"
        );
    }
}

#[test]
fn watch_from_now_starts_after_the_created_revision() {
    let mut responses = correct_responses();
    responses.drain(0..3);
    responses.insert(0, created_response(35, 3));
    assert_eq!(
        check_stream(operations(), vec![watch_all(9, 35, 0, responses.clone())]),
        vec![]
    );
    responses.remove(1);
    let violations = check_stream(operations(), vec![watch_all(9, 35, 0, responses)]);
    assert!(
        !violations.is_empty() && violations.iter().all(|g| *g == WatchGuarantee::Reliable),
        "{violations:?}"
    );
}

#[test]
fn resumed_stream_must_continue_without_gaps() {
    let responses = correct_responses();
    let first = watch_all(9, 0, 2, responses[..3].to_vec());
    let resumed = watch_all(9, 40, 4, responses[3..].to_vec());
    assert_eq!(
        check_stream(operations(), vec![first.clone(), resumed]),
        vec![]
    );

    let mut gap = responses[3..].to_vec();
    gap.remove(0);
    let broken = watch_all(9, 40, 4, gap);
    assert!(check_stream(operations(), vec![first, broken]).contains(&WatchGuarantee::Resumable));
}

#[test]
fn unanswered_write_seen_by_a_watch_is_in_the_log() {
    let mut operations = operations();
    operations.push(put_unknown(2, 75, "c", "c1"));
    let mut responses = correct_responses();
    responses.push(events(90, 6, vec![put_event(kv("c", "c1", 6, 6, 1), None)]));
    assert_eq!(
        check_stream(operations, vec![watch_all(9, 0, 2, responses)]),
        vec![]
    );
}

/// A watch from revision 4, opened after a compaction at 4 was asked for, replays revision 4
/// without prev_kv: the versions it replaced were compacted away, and etcd then sends none.
/// Without that compaction, or with one asked for only after the events arrived, a missing
/// prev_kv is a violation.
#[test]
fn prev_kv_may_be_missing_once_a_compaction_removed_it() {
    let (a2, b2) = (kv("a", "a2", 4, 2, 2), kv("b", "b2", 4, 3, 2));
    let responses = vec![
        created_response(56, 4),
        events(
            57,
            4,
            vec![put_event(a2.clone(), None), put_event(b2, None)],
        ),
        events(71, 5, vec![delete_event("a", 5, Some(a2))]),
        progress(80, 5),
    ];
    let compaction = |times| {
        operation(
            3,
            times,
            Request::Compact { revision: 4 },
            ok(4, ResponseBody::Compact),
        )
    };
    let with = |extra: Vec<Operation>| {
        let mut operations = operations();
        operations.extend(extra);
        check_stream(operations, vec![watch_all(9, 55, 4, responses.clone())])
    };
    assert_eq!(with(vec![compaction((52, 53))]), vec![]);
    assert_eq!(
        with(vec![]),
        vec![WatchGuarantee::PrevKv, WatchGuarantee::PrevKv]
    );
    assert_eq!(
        with(vec![compaction((58, 59))]),
        vec![WatchGuarantee::PrevKv, WatchGuarantee::PrevKv]
    );
}
