//! One-line descriptions of requests, outcomes and kvs, for reports a person reads.

use crate::history::{
    Compare, KeyValue, Outcome, RangeRequest, RangeResponse, Request, ResponseBody, Timestamp,
    TxnOp, TxnOpResponse,
};

/// A timestamp as milliseconds with microsecond precision.
pub(crate) fn millis(time: Timestamp) -> String {
    format!("{}.{:03}ms", time / 1_000_000, (time / 1_000) % 1_000)
}

pub(crate) fn describe_kv(kv: &KeyValue) -> String {
    let lease = if kv.lease == 0 {
        String::new()
    } else {
        format!(", lease {}", kv.lease)
    };
    format!(
        "{}={:?} (mod {}, create {}, version {}{lease})",
        kv.key, kv.value, kv.mod_revision, kv.create_revision, kv.version
    )
}

pub(crate) fn describe_request(request: &Request) -> String {
    match request {
        Request::Range(range) => describe_range(range),
        Request::Put(put) if put.lease != 0 => {
            format!("put {}={:?} lease {}", put.key, put.value, put.lease)
        }
        Request::Put(put) => format!("put {}={:?}", put.key, put.value),
        Request::Delete(delete) => format!("delete {}", delete.key),
        Request::Txn(txn) => {
            let compares: Vec<String> = txn.compares.iter().map(describe_compare).collect();
            format!(
                "txn if {} then [{}] else [{}]",
                compares.join(" && "),
                describe_txn_ops(&txn.success),
                describe_txn_ops(&txn.failure)
            )
        }
        Request::LeaseGrant { id, ttl } => format!("lease grant {id} ttl {ttl}s"),
        Request::LeaseRevoke { id } => format!("lease revoke {id}"),
        Request::Compact { revision } => format!("compact {revision}"),
    }
}

fn describe_range(range: &RangeRequest) -> String {
    let mut text = if range.prefix {
        format!("range {}*", range.key)
    } else {
        format!("get {}", range.key)
    };
    if range.limit > 0 {
        text.push_str(&format!(" limit {}", range.limit));
    }
    if range.revision > 0 {
        text.push_str(&format!(" at revision {}", range.revision));
    }
    text
}

fn describe_compare(compare: &Compare) -> String {
    match compare {
        Compare::ModRevision { key, equals } => format!("mod({key})=={equals}"),
        Compare::CreateRevision { key, equals } => format!("create({key})=={equals}"),
        Compare::Version { key, equals } => format!("version({key})=={equals}"),
        Compare::Value { key, equals } => format!("value({key})=={equals:?}"),
    }
}

fn describe_txn_ops(ops: &[TxnOp]) -> String {
    let ops: Vec<String> = ops
        .iter()
        .map(|op| match op {
            TxnOp::Range(range) => describe_range(range),
            TxnOp::Put(put) => describe_request(&Request::Put(put.clone())),
            TxnOp::Delete(delete) => format!("delete {}", delete.key),
        })
        .collect();
    ops.join(", ")
}

pub(crate) fn describe_outcome(outcome: &Outcome) -> String {
    let response = match outcome {
        Outcome::Response(response) => response,
        Outcome::Error(error) => return format!("error: {error}"),
        Outcome::Unknown => return "unknown".to_owned(),
        Outcome::NotSent(error) => return format!("not sent: {error}"),
    };
    let body = match &response.body {
        ResponseBody::Range(range) => describe_range_response(range),
        ResponseBody::Put
        | ResponseBody::LeaseGrant
        | ResponseBody::LeaseRevoke
        | ResponseBody::Compact => "ok".to_owned(),
        ResponseBody::Delete { deleted } => format!("deleted {deleted}"),
        ResponseBody::Txn { succeeded, results } => {
            let results: Vec<String> = results
                .iter()
                .map(|result| match result {
                    TxnOpResponse::Range(range) => describe_range_response(range),
                    TxnOpResponse::Put => "ok".to_owned(),
                    TxnOpResponse::Delete { deleted } => format!("deleted {deleted}"),
                })
                .collect();
            let branch = if *succeeded { "succeeded" } else { "failed" };
            format!("{branch} [{}]", results.join(", "))
        }
    };
    format!("revision {}: {body}", response.revision)
}

fn describe_range_response(range: &RangeResponse) -> String {
    if range.kvs.is_empty() {
        return format!("no keys (count {})", range.count);
    }
    let kvs: Vec<String> = range.kvs.iter().map(describe_kv).collect();
    let more = if range.count > range.kvs.len() as i64 {
        format!(" of {}", range.count)
    } else {
        String::new()
    };
    format!("{}{more}", kvs.join(", "))
}
