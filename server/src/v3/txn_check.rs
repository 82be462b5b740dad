//! etcd's validation of KV requests before they are proposed: empty keys, sort options,
//! `ignore_value`/`ignore_lease` misuse, and for a Txn its op counts (nested txns included)
//! and duplicate keys on one path (etcd's `checkTxnRequest` and `checkIntervals`).

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::mvcc::KeyRange;
use crate::proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, range_request, request_op,
};

pub fn check_range(r: &RangeRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    range_request::SortOrder::try_from(r.sort_order).map_err(|_| Error::InvalidSortOption)?;
    range_request::SortTarget::try_from(r.sort_target).map_err(|_| Error::InvalidSortOption)?;
    Ok(())
}

pub fn check_put(r: &PutRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(Error::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(Error::LeaseProvided);
    }
    Ok(())
}

pub fn check_delete(r: &DeleteRangeRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    Ok(())
}

/// etcd's `checkTxnRequest`: op counts and per-op validation, recursively. A nested txn
/// may only use the ops its parent left: `max_ops` minus the parent's longest list.
pub fn check_txn(r: &TxnRequest, max_ops: usize) -> Result<()> {
    let ops = r.compare.len().max(r.success.len()).max(r.failure.len());
    if ops > max_ops {
        return Err(Error::TooManyOps);
    }
    for c in &r.compare {
        if c.key.is_empty() {
            return Err(Error::EmptyKey);
        }
    }
    for op in r.success.iter().chain(&r.failure) {
        match &op.request {
            Some(request_op::Request::RequestRange(x)) => check_range(x)?,
            Some(request_op::Request::RequestPut(x)) => check_put(x)?,
            Some(request_op::Request::RequestDeleteRange(x)) => check_delete(x)?,
            Some(request_op::Request::RequestTxn(x)) => check_txn(x, max_ops - ops)?,
            // etcd answers an op with no request in it with its "key not found" error.
            None => return Err(Error::KeyNotFound),
        }
    }
    let _ = check_intervals(&r.success)?;
    let _ = check_intervals(&r.failure)?;
    Ok(())
}

/// etcd's `checkIntervals`: no key may be put twice, or put and deleted, on one txn path.
fn check_intervals(ops: &[RequestOp]) -> Result<(HashSet<Vec<u8>>, Vec<KeyRange>)> {
    let mut dels: Vec<KeyRange> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(request_op::Request::RequestDeleteRange(d)) => {
                Some(KeyRange::from_request(&d.key, &d.range_end))
            }
            _ => None,
        })
        .collect();
    let deleted = |dels: &[KeyRange], k: &[u8]| dels.iter().any(|d| d.contains(k));
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    for op in ops {
        let Some(request_op::Request::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || deleted(&dels, k) {
                return Err(Error::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            if (puts.contains(k) && !puts_then.contains(k)) || deleted(&dels, k) {
                return Err(Error::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let Some(request_op::Request::RequestPut(p)) = &op.request else {
            continue;
        };
        if puts.contains(&p.key) || deleted(&dels, &p.key) {
            return Err(Error::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: k.into(),
                ..Default::default()
            })),
        }
    }
    fn del(k: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(
                DeleteRangeRequest {
                    key: k.into(),
                    range_end: end.into(),
                    ..Default::default()
                },
            )),
        }
    }
    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestTxn(TxnRequest {
                success,
                failure,
                ..Default::default()
            })),
        }
    }

    #[test]
    fn duplicate_keys_are_rejected_like_etcd() {
        let cases: Vec<(Vec<RequestOp>, bool)> = vec![
            (vec![put("a"), put("b")], true),
            (vec![put("a"), put("a")], false),
            (vec![put("a1"), del("a", "b")], false),
            (vec![del("a", "b"), del("a", "c")], true),
            (vec![txn(vec![put("a")], vec![put("a")])], true),
            (vec![txn(vec![put("a")], vec![]), put("a")], false),
            (vec![txn(vec![del("a", "")], vec![]), put("a")], false),
        ];
        for (i, (ops, ok)) in cases.into_iter().enumerate() {
            assert_eq!(check_intervals(&ops).is_ok(), ok, "case {i}");
        }
    }

    #[test]
    fn too_many_ops() {
        let r = TxnRequest {
            success: (0..129).map(|i| put(&format!("k{i}"))).collect(),
            ..Default::default()
        };
        assert_eq!(check_txn(&r, 128).unwrap_err(), Error::TooManyOps);
    }

    #[test]
    fn nested_txn_gets_the_ops_its_parent_left() {
        let nested = |n: usize| TxnRequest {
            success: (0..n).map(|i| put(&format!("n{i}"))).collect(),
            ..Default::default()
        };
        let with_outer = |inner: usize| {
            let mut success: Vec<RequestOp> = (0..99).map(|i| put(&format!("k{i}"))).collect();
            success.push(RequestOp {
                request: Some(request_op::Request::RequestTxn(nested(inner))),
            });
            TxnRequest {
                success,
                ..Default::default()
            }
        };
        assert_eq!(check_txn(&with_outer(28), 128), Ok(()));
        assert_eq!(check_txn(&with_outer(29), 128), Err(Error::TooManyOps));
    }
}
