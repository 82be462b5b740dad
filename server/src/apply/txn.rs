//! Txn: every compare (nested txns included) is evaluated against the state before any
//! write, the chosen branches are checked as a whole, then their ops run in one revision.

use crate::error::{Error, Result};
use crate::lease::LeaseTable;
use crate::mvcc::{KeyRange, WriteTxn};
use crate::proto::etcdserverpb::{
    Compare, RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse, compare, request_op,
    response_op,
};
use crate::proto::mvccpb::KeyValue;
use crate::proto::oxcdpb::internal_response::Response;
use crate::storage::{Backend, WriteBatch};

use super::kv::{check_put, exec_delete, exec_put};
use super::{Applied, KvState, header, in_write_txn, range};

pub(super) fn txn(
    state: &mut KvState,
    backend: &dyn Backend,
    batch: &mut WriteBatch,
    t: &TxnRequest,
    applied: &mut Applied,
) -> Result<Response> {
    let mut t = in_write_txn(state, backend, batch, applied, |txn, leases| {
        exec_txn(txn, leases, t)
    })?;
    t.header = header(applied.revision);
    Ok(Response::Txn(t))
}

/// Evaluates every compare of `t` and its nested txns against the state before any write,
/// in depth-first order (etcd's `compareToPath`).
fn txn_path(txn: &WriteTxn<'_>, t: &TxnRequest, path: &mut Vec<bool>) -> Result<()> {
    let mut ok = true;
    for c in &t.compare {
        if !compare_holds(txn, c)? {
            ok = false;
            break;
        }
    }
    path.push(ok);
    let ops = if ok { &t.success } else { &t.failure };
    for op in ops {
        if let Some(request_op::Request::RequestTxn(inner)) = &op.request {
            txn_path(txn, inner, path)?;
        }
    }
    Ok(())
}

fn compare_holds(txn: &WriteTxn<'_>, c: &Compare) -> Result<bool> {
    let r = txn.range(&KeyRange::from_request(&c.key, &c.range_end), 0, false)?;
    if r.kvs.is_empty() {
        if c.target == compare::CompareTarget::Value as i32 {
            return Ok(false);
        }
        return Ok(compare_kv(c, &KeyValue::default()));
    }
    Ok(r.kvs.iter().all(|kv| compare_kv(c, kv)))
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    use compare::{CompareResult, CompareTarget, TargetUnion};
    use std::cmp::Ordering;
    let ord = match (CompareTarget::try_from(c.target), &c.target_union) {
        (Ok(CompareTarget::Value), Some(TargetUnion::Value(v))) => {
            kv.value.as_slice().cmp(v.as_slice())
        }
        (Ok(CompareTarget::Value), _) => kv.value.as_slice().cmp(&[]),
        (Ok(CompareTarget::Version), Some(TargetUnion::Version(v))) => kv.version.cmp(v),
        (Ok(CompareTarget::Create), Some(TargetUnion::CreateRevision(v))) => {
            kv.create_revision.cmp(v)
        }
        (Ok(CompareTarget::Mod), Some(TargetUnion::ModRevision(v))) => kv.mod_revision.cmp(v),
        (Ok(CompareTarget::Lease), Some(TargetUnion::Lease(v))) => kv.lease.cmp(v),
        (Ok(CompareTarget::Version), _) => kv.version.cmp(&0),
        (Ok(CompareTarget::Create), _) => kv.create_revision.cmp(&0),
        (Ok(CompareTarget::Mod), _) => kv.mod_revision.cmp(&0),
        (Ok(CompareTarget::Lease), _) => kv.lease.cmp(&0),
        (Err(_), _) => return false,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ord == Ordering::Equal,
        Ok(CompareResult::Greater) => ord == Ordering::Greater,
        Ok(CompareResult::Less) => ord == Ordering::Less,
        Ok(CompareResult::NotEqual) => ord != Ordering::Equal,
        Err(_) => false,
    }
}

/// etcd's `checkTxn`: failures of the chosen branch that must abort the whole txn.
fn check_txn(
    txn: &WriteTxn<'_>,
    leases: &LeaseTable,
    t: &TxnRequest,
    path: &[bool],
    at: &mut usize,
) -> Result<()> {
    let ops = if path[*at] { &t.success } else { &t.failure };
    *at += 1;
    for op in ops {
        match &op.request {
            Some(request_op::Request::RequestPut(p)) => check_put(txn, leases, p)?,
            Some(request_op::Request::RequestRange(r)) => {
                txn.check_read_rev(r.revision)?;
            }
            Some(request_op::Request::RequestTxn(inner)) => {
                check_txn(txn, leases, inner, path, at)?
            }
            _ => {}
        }
    }
    Ok(())
}

fn exec_txn(
    txn: &mut WriteTxn<'_>,
    leases: &mut LeaseTable,
    t: &TxnRequest,
) -> Result<TxnResponse> {
    let mut path = Vec::new();
    txn_path(txn, t, &mut path)?;
    check_txn(txn, leases, t, &path, &mut 0)?;
    exec_txn_path(txn, leases, t, &path, &mut 0)
}

fn exec_txn_path(
    txn: &mut WriteTxn<'_>,
    leases: &mut LeaseTable,
    t: &TxnRequest,
    path: &[bool],
    at: &mut usize,
) -> Result<TxnResponse> {
    let succeeded = path[*at];
    *at += 1;
    let ops: &[RequestOp] = if succeeded { &t.success } else { &t.failure };
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match &op.request {
            Some(request_op::Request::RequestRange(r)) => {
                response_op::Response::ResponseRange(range(r, |kr, rev, limit, count_only| {
                    txn.range_at(kr, rev, limit, count_only)
                })?)
            }
            Some(request_op::Request::RequestPut(p)) => {
                response_op::Response::ResponsePut(exec_put(txn, leases, p.clone())?)
            }
            Some(request_op::Request::RequestDeleteRange(d)) => {
                response_op::Response::ResponseDeleteRange(exec_delete(txn, leases, d.clone())?)
            }
            Some(request_op::Request::RequestTxn(inner)) => {
                let mut r = exec_txn_path(txn, leases, inner, path, at)?;
                // etcd leaves the header of a nested txn's response empty.
                r.header = Some(ResponseHeader::default());
                response_op::Response::ResponseTxn(r)
            }
            None => {
                return Err(Error::InvalidArgument(
                    "etcdserver: empty request op".into(),
                ));
            }
        };
        responses.push(ResponseOp {
            response: Some(response),
        });
    }
    Ok(TxnResponse {
        header: None,
        succeeded,
        responses,
    })
}
