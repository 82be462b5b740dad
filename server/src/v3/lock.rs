//! The Lock service (etcd's v3lock): a distributed mutex on a name, held by the contender
//! whose key is the oldest under `<name>/`, as clientv3/concurrency's Mutex does it.

use crate::error::{Error, Result};
use crate::proto::etcdserverpb::request_op::Request as Op;
use crate::proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use crate::proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};

use super::concurrency::{
    contender_key, contender_prefix, created_at, first_created_request, first_kv,
};
use super::{Core, RequestContext};

impl Core {
    /// Waits until the caller holds the lock `name`, under its lease (a new 60 s one if it
    /// gave none); answers the key that holds it.
    pub async fn lock(&self, ctx: &RequestContext, r: LockRequest) -> Result<LockResponse> {
        let lease = self.session_lease(ctx, r.lease).await?;
        let prefix = contender_prefix(&r.name);
        let key = contender_key(&r.name, lease);
        // Enter the queue (or find this lease's key there already) and see who holds it, in
        // one txn.
        let owner = || RequestOp {
            request: Some(Op::RequestRange(first_created_request(&prefix))),
        };
        let txn = TxnRequest {
            compare: vec![created_at(&key, 0)],
            success: vec![
                RequestOp {
                    request: Some(Op::RequestPut(PutRequest {
                        key: key.clone(),
                        lease,
                        ..PutRequest::default()
                    })),
                },
                owner(),
            ],
            failure: vec![
                RequestOp {
                    request: Some(Op::RequestRange(RangeRequest {
                        key: key.clone(),
                        ..RangeRequest::default()
                    })),
                },
                owner(),
            ],
        };
        let resp = self.txn(ctx, txn).await?;
        let header = resp.header.unwrap_or_default();
        let my_rev = match resp.succeeded {
            true => header.revision,
            false => first_kv(&resp.responses[0]).map_or(0, |kv| kv.create_revision),
        };
        let holder = first_kv(&resp.responses[1]).map(|kv| kv.create_revision);
        if holder.is_none_or(|rev| rev == my_rev) {
            return Ok(LockResponse {
                header: Some(header),
                key,
            });
        }
        if let Err(e) = self.wait_deletes(ctx, &prefix, my_rev - 1).await {
            self.release(ctx, &key).await;
            return Err(e);
        }
        // The lease may have expired while waiting, taking the key with it.
        let mine = self
            .range(
                ctx,
                RangeRequest {
                    key: key.clone(),
                    ..RangeRequest::default()
                },
            )
            .await?;
        if mine.kvs.is_empty() {
            return Err(Error::SessionExpired);
        }
        Ok(LockResponse {
            header: mine.header,
            key,
        })
    }

    /// Releases a lock by deleting the key that holds it.
    pub async fn unlock(&self, ctx: &RequestContext, r: UnlockRequest) -> Result<UnlockResponse> {
        let deleted = self
            .delete_range(
                ctx,
                DeleteRangeRequest {
                    key: r.key,
                    ..DeleteRangeRequest::default()
                },
            )
            .await?;
        Ok(UnlockResponse {
            header: deleted.header,
        })
    }

    /// Takes a contender's key out of the queue after a failed wait; a failure here leaves
    /// the key to its lease.
    async fn release(&self, ctx: &RequestContext, key: &[u8]) {
        let delete = DeleteRangeRequest {
            key: key.to_vec(),
            ..DeleteRangeRequest::default()
        };
        if let Err(e) = self.delete_range(ctx, delete).await {
            tracing::warn!(error = %e, "cannot release a lock key after a failed wait");
        }
    }
}
