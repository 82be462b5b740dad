//! Builders for hand-written histories: one call per operation or watch response, with
//! times in arbitrary units.

use oxcd_e2e::history::{
    ClientId, Event, EventKind, KeyValue, Operation, Outcome, RangeResponse, Request, Response,
    ResponseBody, Timestamp, TxnOpResponse, TxnRequest, WatchRequest, WatchResponse,
    WatchResponseKind, WatchStream,
};

pub fn kv(
    key: &str,
    value: &str,
    mod_revision: i64,
    create_revision: i64,
    version: i64,
) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
        create_revision,
        mod_revision,
        version,
        lease: 0,
    }
}

pub fn operation(
    client: ClientId,
    times: (Timestamp, Timestamp),
    request: Request,
    outcome: Outcome,
) -> Operation {
    let return_time =
        matches!(outcome, Outcome::Response(_) | Outcome::Error(_)).then_some(times.1);
    Operation {
        client,
        invoke: times.0,
        return_time,
        request,
        outcome,
    }
}

pub fn ok(revision: i64, body: ResponseBody) -> Outcome {
    Outcome::Response(Response { revision, body })
}

pub fn range_body(kvs: Vec<KeyValue>) -> RangeResponse {
    RangeResponse {
        count: kvs.len() as i64,
        kvs,
    }
}

pub fn put(
    client: ClientId,
    times: (Timestamp, Timestamp),
    key: &str,
    value: &str,
    revision: i64,
) -> Operation {
    operation(
        client,
        times,
        Request::put(key, value),
        ok(revision, ResponseBody::Put),
    )
}

/// A put whose answer never came.
pub fn put_unknown(client: ClientId, invoke: Timestamp, key: &str, value: &str) -> Operation {
    operation(
        client,
        (invoke, 0),
        Request::put(key, value),
        Outcome::Unknown,
    )
}

pub fn get(
    client: ClientId,
    times: (Timestamp, Timestamp),
    key: &str,
    revision: i64,
    found: Option<KeyValue>,
) -> Operation {
    let body = ResponseBody::Range(range_body(found.into_iter().collect()));
    operation(client, times, Request::get(key), ok(revision, body))
}

pub fn delete(
    client: ClientId,
    times: (Timestamp, Timestamp),
    key: &str,
    revision: i64,
    deleted: i64,
) -> Operation {
    operation(
        client,
        times,
        Request::delete(key),
        ok(revision, ResponseBody::Delete { deleted }),
    )
}

/// A Kubernetes create that succeeded.
pub fn created(
    client: ClientId,
    times: (Timestamp, Timestamp),
    key: &str,
    value: &str,
    revision: i64,
) -> Operation {
    let body = ResponseBody::Txn {
        succeeded: true,
        results: vec![TxnOpResponse::Put],
    };
    operation(
        client,
        times,
        Request::Txn(TxnRequest::create_if_absent(key, value)),
        ok(revision, body),
    )
}

pub fn put_event(kv: KeyValue, prev_kv: Option<KeyValue>) -> Event {
    Event {
        kind: EventKind::Put,
        kv,
        prev_kv,
    }
}

pub fn delete_event(key: &str, revision: i64, prev_kv: Option<KeyValue>) -> Event {
    Event {
        kind: EventKind::Delete,
        kv: KeyValue {
            key: key.into(),
            mod_revision: revision,
            ..KeyValue::default()
        },
        prev_kv,
    }
}

pub fn events(time: Timestamp, revision: i64, events: Vec<Event>) -> WatchResponse {
    WatchResponse {
        time,
        revision,
        kind: WatchResponseKind::Events {
            events,
            fragment: false,
        },
    }
}

pub fn progress(time: Timestamp, revision: i64) -> WatchResponse {
    WatchResponse {
        time,
        revision,
        kind: WatchResponseKind::Progress,
    }
}

pub fn created_response(time: Timestamp, revision: i64) -> WatchResponse {
    WatchResponse {
        time,
        revision,
        kind: WatchResponseKind::Created,
    }
}

/// A stream watching every key from `start_revision`, with prev_kv.
pub fn watch_all(
    client: ClientId,
    opened: Timestamp,
    start_revision: i64,
    responses: Vec<WatchResponse>,
) -> WatchStream {
    let request = WatchRequest {
        key: String::new(),
        prefix: true,
        start_revision,
        prev_kv: true,
        progress_notify: true,
    };
    WatchStream {
        client,
        opened,
        request,
        responses,
    }
}
