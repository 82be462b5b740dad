//! Applying committed commands: the one deterministic function from (state, command) to
//! (new state, response). Every member runs it on the same entries and gets the same result.

use crate::error::{Error, Result};
use crate::lease::{LeaseTable, MAX_LEASE_TTL};
use crate::mvcc::{KeyRange, RangeResult, Store, WriteTxn};
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse,
    LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseHeader, ResponseOp, TxnRequest,
    TxnResponse, compare, range_request, request_op, response_op,
};
use crate::proto::mvccpb::{Event, KeyValue};
use crate::proto::oxcdpb::{
    InternalRequest, InternalResponse, internal_request, internal_response,
};
use crate::storage::{Backend, WriteBatch};

/// The replicated state a command changes.
#[derive(Debug, Default)]
pub struct KvState {
    pub mvcc: Store,
    pub leases: LeaseTable,
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
}

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
    use internal_response::Response as Resp;
    let KvState { mvcc, leases } = state;
    let mut applied = Applied::default();
    let result: Result<Resp> = match req.request {
        Some(Req::Put(put)) => {
            let mut txn = mvcc.write(backend, batch);
            let r = check_put(&txn, leases, &put).and_then(|()| exec_put(&mut txn, leases, put));
            finish(txn, &mut applied);
            r.map(|mut p| {
                p.header = header(applied.revision);
                Resp::Put(p)
            })
        }
        Some(Req::DeleteRange(del)) => {
            let mut txn = mvcc.write(backend, batch);
            let r = exec_delete(&mut txn, leases, del);
            finish(txn, &mut applied);
            r.map(|mut d| {
                d.header = header(applied.revision);
                Resp::DeleteRange(d)
            })
        }
        Some(Req::Txn(t)) => {
            let mut txn = mvcc.write(backend, batch);
            let r = exec_txn(&mut txn, leases, &t);
            finish(txn, &mut applied);
            r.map(|mut t| {
                t.header = header(applied.revision);
                Resp::Txn(t)
            })
        }
        Some(Req::Compaction(CompactionRequest { revision, .. })) => {
            mvcc.compact(revision, batch).map(|()| {
                applied.revision = mvcc.current_rev();
                Resp::Compaction(CompactionResponse {
                    header: header(applied.revision),
                })
            })
        }
        Some(Req::LeaseGrant(LeaseGrantRequest { ttl, id })) => {
            let ttl = ttl.max(min_lease_ttl);
            let r = if ttl > MAX_LEASE_TTL {
                Err(Error::LeaseTtlTooLarge)
            } else {
                leases.grant(id, ttl, batch)
            };
            applied.revision = mvcc.current_rev();
            r.map(|()| {
                applied.granted = Some((id, ttl));
                Resp::LeaseGrant(LeaseGrantResponse {
                    header: header(applied.revision),
                    id,
                    ttl,
                    error: String::new(),
                })
            })
        }
        Some(Req::LeaseRevoke(LeaseRevokeRequest { id })) => match leases.revoke(id, batch) {
            Ok(keys) => {
                let mut txn = mvcc.write(backend, batch);
                let mut r = Ok(());
                for key in keys {
                    if let Err(e) = txn.delete_range(&KeyRange::single(&key)) {
                        r = Err(e);
                        break;
                    }
                }
                finish(txn, &mut applied);
                applied.revoked = Some(id);
                r.map(|()| {
                    Resp::LeaseRevoke(LeaseRevokeResponse {
                        header: header(applied.revision),
                    })
                })
            }
            Err(e) => Err(e),
        },
        Some(Req::Alarm(_)) => {
            applied.revision = mvcc.current_rev();
            Ok(Resp::Alarm(Default::default()))
        }
        None => Err(Error::internal("empty command")),
    };
    match result {
        Ok(resp) => applied.response.response = Some(resp),
        Err(e) => {
            applied.response.error = e.apply_code();
            applied.revision = mvcc.current_rev();
        }
    }
    applied
}

fn finish(txn: WriteTxn<'_>, applied: &mut Applied) {
    let (rev, events) = txn.finish();
    applied.revision = rev;
    applied.events = events;
}

/// etcd's `checkRequestPut`: conditions that make a Put fail before it writes anything.
fn check_put(txn: &WriteTxn<'_>, leases: &LeaseTable, put: &PutRequest) -> Result<()> {
    if (put.ignore_value || put.ignore_lease) && txn.live(&put.key).is_none() {
        return Err(Error::KeyNotFound);
    }
    if put.lease != 0 && !leases.contains(put.lease) {
        return Err(Error::LeaseNotFound);
    }
    Ok(())
}

fn exec_put(
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

fn exec_delete(
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

/// Executes a Range request the way etcd's apply layer does: fetch (with the limit pushed
/// down when no sort or filter needs every key), filter by revision bounds, sort, truncate.
pub fn range(
    r: &RangeRequest,
    read: impl FnOnce(&KeyRange, i64, usize, bool) -> Result<RangeResult>,
) -> Result<RangeResponse> {
    use range_request::{SortOrder, SortTarget};
    let filtered = r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0;
    let order = SortOrder::try_from(r.sort_order).map_err(|_| Error::InvalidSortOption)?;
    let target = SortTarget::try_from(r.sort_target).map_err(|_| Error::InvalidSortOption)?;
    let fetch_limit = if order != SortOrder::None || filtered || r.limit <= 0 {
        0
    } else {
        r.limit as usize + 1
    };
    let result = read(
        &KeyRange::from_request(&r.key, &r.range_end),
        r.revision,
        fetch_limit,
        r.count_only,
    )?;
    let mut kvs = result.kvs;
    kvs.retain(|kv| {
        (r.max_mod_revision == 0 || kv.mod_revision <= r.max_mod_revision)
            && (r.min_mod_revision == 0 || kv.mod_revision >= r.min_mod_revision)
            && (r.max_create_revision == 0 || kv.create_revision <= r.max_create_revision)
            && (r.min_create_revision == 0 || kv.create_revision >= r.min_create_revision)
    });
    let order = match (target, order) {
        (SortTarget::Key, SortOrder::Ascend) => SortOrder::None,
        (t, SortOrder::None) if t != SortTarget::Key => SortOrder::Ascend,
        (_, o) => o,
    };
    if order != SortOrder::None {
        kvs.sort_by(|a, b| {
            let ord = match target {
                SortTarget::Key => a.key.cmp(&b.key),
                SortTarget::Version => a.version.cmp(&b.version),
                SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                SortTarget::Value => a.value.cmp(&b.value),
            };
            if order == SortOrder::Descend {
                ord.reverse()
            } else {
                ord
            }
        });
    }
    let mut more = false;
    if r.limit > 0 && kvs.len() > r.limit as usize {
        kvs.truncate(r.limit as usize);
        more = true;
    }
    if r.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    Ok(RangeResponse {
        header: header(result.rev),
        kvs,
        more,
        count: result.count,
    })
}
