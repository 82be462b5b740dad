//! Put, DeleteRange and Compaction on the key space.

use crate::error::{Error, Result};
use crate::lease::LeaseTable;
use crate::mvcc::{KeyRange, WriteTxn};
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse,
};
use crate::proto::oxcdpb::internal_response::Response;
use crate::storage::{Backend, WriteBatch};

use super::{Applied, KvState, header, in_write_txn};

pub(super) fn put(
    state: &mut KvState,
    backend: &dyn Backend,
    batch: &mut WriteBatch,
    put: PutRequest,
    applied: &mut Applied,
) -> Result<Response> {
    let mut p = in_write_txn(state, backend, batch, applied, |txn, leases| {
        check_put(txn, leases, &put)?;
        exec_put(txn, leases, put)
    })?;
    p.header = header(applied.revision);
    Ok(Response::Put(p))
}

pub(super) fn delete_range(
    state: &mut KvState,
    backend: &dyn Backend,
    batch: &mut WriteBatch,
    del: DeleteRangeRequest,
    applied: &mut Applied,
) -> Result<Response> {
    let mut d = in_write_txn(state, backend, batch, applied, |txn, leases| {
        exec_delete(txn, leases, del)
    })?;
    d.header = header(applied.revision);
    Ok(Response::DeleteRange(d))
}

pub(super) fn compact(
    state: &mut KvState,
    batch: &mut WriteBatch,
    c: CompactionRequest,
    applied: &mut Applied,
) -> Result<Response> {
    state.mvcc.compact(c.revision, batch)?;
    applied.revision = state.mvcc.current_rev();
    Ok(Response::Compaction(CompactionResponse {
        header: header(applied.revision),
    }))
}

/// etcd's `checkRequestPut`: conditions that make a Put fail before it writes anything.
pub(super) fn check_put(txn: &WriteTxn<'_>, leases: &LeaseTable, put: &PutRequest) -> Result<()> {
    if (put.ignore_value || put.ignore_lease) && txn.live(&put.key).is_none() {
        return Err(Error::KeyNotFound);
    }
    if put.lease != 0 && !leases.contains(put.lease) {
        return Err(Error::LeaseNotFound);
    }
    Ok(())
}

pub(super) fn exec_put(
    txn: &mut WriteTxn<'_>,
    leases: &mut LeaseTable,
    put: PutRequest,
) -> Result<PutResponse> {
    let current = if put.ignore_value || put.ignore_lease {
        let r = txn.range(&KeyRange::single(&put.key), 1, false)?;
        r.kvs.into_iter().next()
    } else {
        None
    };
    let value = match (&current, put.ignore_value) {
        (Some(kv), true) => kv.value.clone(),
        _ => put.value,
    };
    let lease = match (&current, put.ignore_lease) {
        (Some(kv), true) => kv.lease,
        _ => put.lease,
    };
    let replaced = txn.put(&put.key, value, lease, put.prev_kv)?;
    if let Some(m) = replaced.meta.filter(|m| m.lease != 0) {
        leases.detach(m.lease, &put.key);
    }
    if lease != 0 {
        leases.attach(lease, &put.key);
    }
    Ok(PutResponse {
        header: header(txn.revision()),
        prev_kv: replaced.prev,
    })
}

pub(super) fn exec_delete(
    txn: &mut WriteTxn<'_>,
    leases: &mut LeaseTable,
    del: DeleteRangeRequest,
) -> Result<DeleteRangeResponse> {
    let deleted = txn.delete_range(&KeyRange::from_request(&del.key, &del.range_end))?;
    for kv in &deleted {
        if kv.lease != 0 {
            leases.detach(kv.lease, &kv.key);
        }
    }
    // A delete that removed nothing, with no change before it, leaves the revision as it was.
    Ok(DeleteRangeResponse {
        header: header(txn.read_revision()),
        deleted: deleted.len() as i64,
        prev_kvs: if del.prev_kv { deleted } else { Vec::new() },
    })
}
