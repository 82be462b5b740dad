//! The Kubernetes profile: what the API server asks of etcd for one resource type.
//!
//! Lists are paginated (a limit) and the later pages read at the first page's revision;
//! creates are transactions that write only if the key does not exist (mod_revision 0);
//! updates and deletes are transactions that act only if the key is still at the
//! mod_revision the client last saw, and read the key otherwise, like the API server's
//! optimistic concurrency.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::Rng;
use rand::rngs::StdRng;

use crate::history::{
    Compare, DeleteRequest, KeyValue, Outcome, RangeRequest, Request, ResponseBody, TxnOp,
    TxnOpResponse, TxnRequest,
};
use crate::traffic::client::RecordingClient;
use crate::traffic::{Budget, unique_value};

/// The resource's key prefix.
pub const PREFIX: &str = "/registry/pods/";

/// How many objects the clients work on.
const OBJECTS: usize = 10;

/// One client's loop until the budget is spent.
pub async fn run(mut client: RecordingClient, mut rng: StdRng, budget: Arc<Budget>) {
    // The mod revision this client last saw for each object.
    let mut seen: BTreeMap<String, i64> = BTreeMap::new();
    let mut list_revision = 0;
    let mut seq = 0;
    while budget.take() {
        let key = format!("{PREFIX}pod-{}", rng.random_range(0..OBJECTS));
        let known = seen.get(&key).copied();
        let request = match (rng.random_range(0..100), known) {
            (0..20, _) => {
                let limit = [0, 3, 5][rng.random_range(0..3)];
                let revision = if list_revision > 0 && rng.random_bool(0.4) {
                    list_revision
                } else {
                    0
                };
                Request::Range(RangeRequest {
                    limit,
                    revision,
                    ..RangeRequest::prefix(PREFIX)
                })
            }
            (20..45, _) => Request::Txn(TxnRequest::create_if_absent(
                key.clone(),
                unique_value(client.id, &mut seq),
            )),
            (45..75, Some(revision)) => Request::Txn(TxnRequest::update_if_unchanged(
                key.clone(),
                unique_value(client.id, &mut seq),
                revision,
            )),
            (75..100, Some(revision)) => Request::Txn(delete_if_unchanged(&key, revision)),
            // An object this client knows nothing of: read it first, as a GET would.
            _ => Request::get(key.clone()),
        };
        let outcome = client.execute(request.clone()).await;
        learn(&mut seen, &mut list_revision, &request, &outcome);
    }
}

/// Kubernetes' delete: remove `key` only if it was last written at `mod_revision`, else
/// read it.
fn delete_if_unchanged(key: &str, mod_revision: i64) -> TxnRequest {
    TxnRequest {
        compares: vec![Compare::ModRevision {
            key: key.to_owned(),
            equals: mod_revision,
        }],
        success: vec![TxnOp::Delete(DeleteRequest {
            key: key.to_owned(),
        })],
        failure: vec![TxnOp::Range(RangeRequest::get(key))],
    }
}

/// Updates what the client knows from an answer.
fn learn(
    seen: &mut BTreeMap<String, i64>,
    list_revision: &mut i64,
    request: &Request,
    outcome: &Outcome,
) {
    let Outcome::Response(response) = outcome else {
        return;
    };
    match (request, &response.body) {
        (Request::Range(range), ResponseBody::Range(answer)) => {
            if range.revision == 0 && range.prefix {
                *list_revision = response.revision;
            }
            if !range.prefix && answer.kvs.is_empty() {
                seen.remove(&range.key);
            }
            note(seen, &answer.kvs);
        }
        (Request::Txn(txn), ResponseBody::Txn { succeeded, results }) => {
            let key = txn.compares.first().map(|compare| match compare {
                Compare::ModRevision { key, .. }
                | Compare::CreateRevision { key, .. }
                | Compare::Version { key, .. }
                | Compare::Value { key, .. } => key.clone(),
            });
            let Some(key) = key else { return };
            if *succeeded {
                match txn.success.first() {
                    Some(TxnOp::Delete(_)) => seen.remove(&key),
                    _ => seen.insert(key, response.revision),
                };
                return;
            }
            for result in results {
                if let TxnOpResponse::Range(answer) = result {
                    if answer.kvs.is_empty() {
                        seen.remove(&key);
                    }
                    note(seen, &answer.kvs);
                }
            }
        }
        _ => {}
    }
}

fn note(seen: &mut BTreeMap<String, i64>, kvs: &[KeyValue]) {
    for kv in kvs {
        seen.insert(kv.key.clone(), kv.mod_revision);
    }
}
