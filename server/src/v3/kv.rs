//! The KV service: Range, Put, DeleteRange, Txn, Compact.

use crate::apply;
use crate::error::Result;
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use crate::proto::oxcdpb::internal_request::Request as Command;

use super::txn_check::{check_delete, check_put, check_range, check_txn};
use super::{Core, RequestContext};

impl Core {
    pub async fn range(&self, ctx: &RequestContext, r: RangeRequest) -> Result<RangeResponse> {
        check_range(&r)?;
        if !r.serializable {
            self.server.reject_if_learner()?;
            self.server.read_index().await?;
        }
        self.check_read(ctx, &r.key, &r.range_end)?;
        let mut resp = {
            let state = self.server.state.read();
            let backend = self.server.state.backend();
            apply::range(&r, |kr, rev, limit, count_only| {
                state.kv.mvcc.range(backend, kr, rev, limit, count_only)
            })?
        };
        resp.header = self.server.fill_header(resp.header);
        Ok(resp)
    }

    pub async fn put(&self, ctx: &RequestContext, r: PutRequest) -> Result<PutResponse> {
        check_put(&r)?;
        self.server
            .propose_expect(ctx.header(), Command::Put(r))
            .await
    }

    pub async fn delete_range(
        &self,
        ctx: &RequestContext,
        r: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse> {
        check_delete(&r)?;
        self.server
            .propose_expect(ctx.header(), Command::DeleteRange(r))
            .await
    }

    pub async fn txn(&self, ctx: &RequestContext, r: TxnRequest) -> Result<TxnResponse> {
        check_txn(&r, self.server.limits.max_txn_ops)?;
        self.server
            .propose_expect(ctx.header(), Command::Txn(r))
            .await
    }

    pub async fn compact(
        &self,
        ctx: &RequestContext,
        r: CompactionRequest,
    ) -> Result<CompactionResponse> {
        let physical = r.physical;
        let resp = self
            .server
            .propose_expect(ctx.header(), Command::Compaction(r))
            .await?;
        // As in etcd, a physical compaction answers once the compacted revisions are gone
        // from the backend on disk, not only from what reads see (the proposal has been
        // applied here when it returns).
        if physical {
            self.server.state.flush_async().await?;
        }
        Ok(resp)
    }
}
