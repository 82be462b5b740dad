//! Lease grant and revoke; a revoke deletes the lease's keys in the same revision.

use crate::error::{Error, Result};
use crate::lease::MAX_LEASE_TTL;
use crate::mvcc::KeyRange;
use crate::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse,
};
use crate::proto::oxcdpb::internal_response::Response;
use crate::storage::{Backend, WriteBatch};

use super::{Applied, KvState, header, in_write_txn};

/// Grants a lease, its TTL raised to the cluster's minimum.
pub(super) fn grant(
    state: &mut KvState,
    batch: &mut WriteBatch,
    LeaseGrantRequest { ttl, id }: LeaseGrantRequest,
    min_lease_ttl: i64,
    applied: &mut Applied,
) -> Result<Response> {
    let ttl = ttl.max(min_lease_ttl);
    let r = if ttl > MAX_LEASE_TTL {
        Err(Error::LeaseTtlTooLarge)
    } else {
        state.leases.grant(id, ttl, batch)
    };
    applied.revision = state.mvcc.current_rev();
    r?;
    applied.granted = Some((id, ttl));
    Ok(Response::LeaseGrant(LeaseGrantResponse {
        header: header(applied.revision),
        id,
        ttl,
        error: String::new(),
    }))
}

/// Revokes a lease and deletes the keys attached to it.
pub(super) fn revoke(
    state: &mut KvState,
    backend: &dyn Backend,
    batch: &mut WriteBatch,
    LeaseRevokeRequest { id }: LeaseRevokeRequest,
    applied: &mut Applied,
) -> Result<Response> {
    let keys = state.leases.revoke(id, batch)?;
    let deleted = in_write_txn(state, backend, batch, applied, |txn, _| {
        for key in keys {
            txn.delete_range(&KeyRange::single(&key))?;
        }
        Ok(())
    });
    applied.revoked = Some(id);
    deleted?;
    Ok(Response::LeaseRevoke(LeaseRevokeResponse {
        header: header(applied.revision),
    }))
}
