//! The key-value profile: puts, gets, deletes, ranges and transactions over a few keys,
//! so that clients contend on the same keys all the time.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::Rng;
use rand::rngs::StdRng;

use crate::history::{
    Compare, DeleteRequest, KeyValue, Outcome, PutRequest, RangeRequest, Request, ResponseBody,
    TxnOp, TxnOpResponse, TxnRequest,
};
use crate::traffic::client::RecordingClient;
use crate::traffic::{Budget, unique_value};

pub const PREFIX: &str = "kv/";

const KEYS: usize = 6;

/// One client's loop until the budget is spent.
pub async fn run(mut client: RecordingClient, mut rng: StdRng, budget: Arc<Budget>) {
    // The last state of each key this client saw.
    let mut seen: BTreeMap<String, KeyValue> = BTreeMap::new();
    let mut seq = 0;
    while budget.take() {
        let key = random_key(&mut rng);
        let request = match rng.random_range(0..100) {
            0..30 => Request::put(key, unique_value(client.id, &mut seq)),
            30..50 => Request::get(key),
            50..60 => Request::Range(RangeRequest {
                limit: [0, 2][rng.random_range(0..2)],
                ..RangeRequest::prefix(PREFIX)
            }),
            60..70 => Request::delete(key),
            70..85 => {
                let value = unique_value(client.id, &mut seq);
                Request::Txn(compare_and_swap(&mut rng, seen.get(&key), key, value))
            }
            _ => Request::Txn(multi_write(&mut rng, client.id, &mut seq)),
        };
        let outcome = client.execute(request).await;
        learn(&mut seen, &outcome);
    }
}

fn random_key(rng: &mut StdRng) -> String {
    format!("{PREFIX}{}", rng.random_range(0..KEYS))
}

/// Writes `value` if the key is as last seen (by value, version or mod revision), else
/// reads it.
fn compare_and_swap(
    rng: &mut StdRng,
    last: Option<&KeyValue>,
    key: String,
    value: String,
) -> TxnRequest {
    let compare = match (last, rng.random_range(0..3)) {
        (Some(kv), 0) => Compare::Value {
            key: key.clone(),
            equals: kv.value.clone(),
        },
        (Some(kv), 1) => Compare::Version {
            key: key.clone(),
            equals: kv.version,
        },
        (last, _) => Compare::ModRevision {
            key: key.clone(),
            equals: last.map_or(0, |kv| kv.mod_revision),
        },
    };
    TxnRequest {
        compares: vec![compare],
        success: vec![TxnOp::Put(PutRequest {
            key: key.clone(),
            value,
            lease: 0,
        })],
        failure: vec![TxnOp::Range(RangeRequest::get(key))],
    }
}

/// One revision that puts one key and deletes another, unconditionally.
fn multi_write(rng: &mut StdRng, client: u32, seq: &mut u64) -> TxnRequest {
    let put = random_key(rng);
    let mut delete = random_key(rng);
    while delete == put {
        delete = random_key(rng);
    }
    TxnRequest {
        compares: vec![],
        success: vec![
            TxnOp::Put(PutRequest {
                key: put,
                value: unique_value(client, seq),
                lease: 0,
            }),
            TxnOp::Delete(DeleteRequest { key: delete }),
        ],
        failure: vec![],
    }
}

fn learn(seen: &mut BTreeMap<String, KeyValue>, outcome: &Outcome) {
    let Outcome::Response(response) = outcome else {
        return;
    };
    let ranges: Vec<&[KeyValue]> = match &response.body {
        ResponseBody::Range(range) => vec![&range.kvs],
        ResponseBody::Txn { results, .. } => results
            .iter()
            .filter_map(|result| match result {
                TxnOpResponse::Range(range) => Some(range.kvs.as_slice()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    for kv in ranges.into_iter().flatten() {
        seen.insert(kv.key.clone(), kv.clone());
    }
}
