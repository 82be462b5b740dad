//! Applying committed commands: the one deterministic function from (state, command) to
//! (new state, response). Every member runs it on the same entries and gets the same result.
//!
//! # Layout
//! - this file: the dispatcher, from a command to its family's function;
//! - [`kv`]: Put, DeleteRange and Compaction on the key space;
//! - [`txn`]: Txn: compares, then the chosen branch's ops, nested txns included;
//! - [`range`]: Range, shared by reads outside raft and by a txn's range ops;
//! - [`lease`]: lease grant and revoke (with its keys' deletion);
//! - [`alarm`]: raising, clearing and listing alarms;
//! - [`auth`]: permission checks on every command a user sent, and auth management.

mod alarm;
mod auth;
mod kv;
mod lease;
mod range;
mod txn;

pub use range::range;

use crate::alarm::AlarmTable;
use crate::auth::AuthStore;
use crate::auth::tokens::TokenChange;
use crate::error::{Error, Result};
use crate::lease::LeaseTable;
use crate::mvcc::{Store, WriteTxn};
use crate::proto::etcdserverpb::{AlarmType, ResponseHeader, request_op};
use crate::proto::mvccpb::Event;
use crate::proto::oxcdpb::{
    InternalRequest, InternalResponse, internal_request, internal_response,
};
use crate::storage::{Backend, WriteBatch};

/// The replicated state a command changes.
#[derive(Debug, Default)]
pub struct KvState {
    pub mvcc: Store,
    pub leases: LeaseTable,
    pub alarms: AlarmTable,
    pub auth: AuthStore,
}

/// What applying one command produced besides the response.
#[derive(Debug, Default)]
pub struct Applied {
    pub response: InternalResponse,
    /// Events of the new revision (empty when the revision did not change).
    pub events: Vec<Event>,
    pub revision: i64,
    /// Leases granted (id, ttl) and revoked by this command, for the lease clock.
    pub granted: Option<(i64, i64)>,
    pub revoked: Option<i64>,
    /// What the command does to the members' simple tokens.
    pub token: Option<TokenChange>,
}

/// A response header as apply knows it: the revision only (the member fills in the rest).
fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..ResponseHeader::default()
    })
}

/// Applies `req` to `state`, collecting durable changes in `batch`. `min_lease_ttl` is the
/// cluster-wide minimum TTL (derived from the election timeout, identical on all members).
pub fn apply(
    state: &mut KvState,
    backend: &dyn Backend,
    batch: &mut WriteBatch,
    req: InternalRequest,
    min_lease_ttl: i64,
) -> Applied {
    use internal_request::Request as Req;
    let mut applied = Applied::default();
    // etcd's capped applier: with NOSPACE up, whatever would grow the database fails, on
    // every member, until the alarm is cleared.
    let capped = state.alarms.is_active(AlarmType::Nospace)
        && req.request.as_ref().is_some_and(grows_database);
    // etcd's corrupt applier: with CORRUPT up, nothing but alarm requests is applied.
    let corrupt =
        state.alarms.is_active(AlarmType::Corrupt) && !matches!(req.request, Some(Req::Alarm(_)));
    // Refusals in the order of etcd's appliers: corrupt, then auth, then the quota.
    let refused = if corrupt {
        Some(Error::Corrupt)
    } else {
        req.request
            .as_ref()
            .and_then(|r| auth::check(state, req.header.as_ref(), r).err())
            .or(capped.then_some(Error::NoSpace))
    };
    let result: Result<internal_response::Response> = match (refused, req.request) {
        (Some(e), _) => Err(e),
        (None, Some(Req::Put(put))) => kv::put(state, backend, batch, put, &mut applied),
        (None, Some(Req::DeleteRange(del))) => {
            kv::delete_range(state, backend, batch, del, &mut applied)
        }
        (None, Some(Req::Txn(t))) => txn::txn(state, backend, batch, &t, &mut applied),
        (None, Some(Req::Compaction(c))) => kv::compact(state, batch, c, &mut applied),
        (None, Some(Req::LeaseGrant(g))) => {
            lease::grant(state, batch, g, min_lease_ttl, &mut applied)
        }
        (None, Some(Req::LeaseRevoke(r))) => lease::revoke(state, backend, batch, r, &mut applied),
        (None, Some(Req::Alarm(a))) => alarm::alarm(state, batch, a, &mut applied),
        (None, Some(other)) => auth::apply(state, batch, &other, &mut applied),
        (None, None) => Err(Error::internal("empty command")),
    };
    match result {
        Ok(resp) => applied.response.response = Some(resp),
        Err(e) => {
            applied.response.error = e.apply_code();
            applied.revision = state.mvcc.current_rev();
        }
    }
    applied
}

/// Requests etcd refuses once the space quota is exceeded: puts, txns that put, lease grants
/// (deletes and compaction still work, so an operator can free space).
pub fn grows_database(request: &internal_request::Request) -> bool {
    use internal_request::Request as R;
    match request {
        R::Put(_) | R::LeaseGrant(_) => true,
        R::Txn(t) => t.success.iter().chain(&t.failure).any(|op| {
            matches!(
                op.request,
                Some(request_op::Request::RequestPut(_)) | Some(request_op::Request::RequestTxn(_))
            )
        }),
        _ => false,
    }
}

/// Runs `f` in one write transaction of the key space; the transaction's revision and events
/// become the command's, whether `f` succeeded or not.
fn in_write_txn<T>(
    state: &mut KvState,
    backend: &dyn Backend,
    batch: &mut WriteBatch,
    applied: &mut Applied,
    f: impl FnOnce(&mut WriteTxn<'_>, &mut LeaseTable) -> Result<T>,
) -> Result<T> {
    let KvState { mvcc, leases, .. } = state;
    let mut txn = mvcc.write(backend, batch);
    let result = f(&mut txn, leases);
    let (rev, events) = txn.finish();
    applied.revision = rev;
    applied.events = events;
    result
}
