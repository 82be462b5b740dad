//! The lease profile: leases granted with IDs the client picks, keys put with and without
//! them, keep-alives, revokes (which delete the lease's keys in one revision) and reads.
//!
//! TTLs are an hour: the checker assumes no lease expires during a run, so expiry must
//! never be what ends one; leases end by explicit revoke only.

use std::sync::Arc;

use rand::Rng;
use rand::rngs::StdRng;

use crate::history::{Outcome, PutRequest, RangeRequest, Request};
use crate::traffic::client::RecordingClient;
use crate::traffic::{Budget, unique_value};

pub const PREFIX: &str = "lease/";

const KEYS: usize = 6;

/// Long enough that no lease expires during a run, even when a new leader restarts TTLs.
const TTL_SECONDS: i64 = 3600;

/// One client's loop until the budget is spent.
pub async fn run(mut client: RecordingClient, mut rng: StdRng, budget: Arc<Budget>) {
    // Leases this client granted (or may have) and has not revoked.
    let mut leases: Vec<i64> = Vec::new();
    let mut granted = 0;
    let mut seq = 0;
    // IDs no other client picks: the client's ID in the high half.
    let id_base = (i64::from(client.id) + 1) << 32;
    while budget.take() {
        let key = format!("{PREFIX}{}", rng.random_range(0..KEYS));
        let lease = (!leases.is_empty()).then(|| leases[rng.random_range(0..leases.len())]);
        let request = match (rng.random_range(0..100), lease) {
            (0..12, _) | (12..45, None) => {
                granted += 1;
                let id = id_base + granted;
                Request::LeaseGrant {
                    id,
                    ttl: TTL_SECONDS,
                }
            }
            (12..45, Some(lease)) => Request::Put(PutRequest {
                key,
                value: unique_value(client.id, &mut seq),
                lease,
            }),
            (45..55, _) => Request::put(key, unique_value(client.id, &mut seq)),
            (55..70, _) => Request::get(key),
            (70..75, _) => Request::Range(RangeRequest::prefix(PREFIX)),
            (75..85, Some(lease)) => {
                client.keep_alive(lease).await;
                continue;
            }
            (85..93, Some(lease)) => {
                leases.retain(|&l| l != lease);
                Request::LeaseRevoke { id: lease }
            }
            _ => Request::delete(key),
        };
        let outcome = client.execute(request.clone()).await;
        if let Request::LeaseGrant { id, .. } = request
            && !matches!(outcome, Outcome::Error(_))
        {
            // A grant without an answer may have happened: keep using the ID (a put to
            // a lease that does not exist fails, which the checker allows).
            leases.push(id);
        }
    }
}
