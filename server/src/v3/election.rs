//! The Election service (etcd's v3election): campaigns on a name, won by the candidate whose
//! key is the oldest under `<name>/`, as clientv3/concurrency's Election does it; the
//! leader's value can be changed (proclaimed) and observed.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;

use crate::error::{Error, Result};
use crate::proto::etcdserverpb::request_op::Request as Op;
use crate::proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, ResponseHeader, TxnRequest,
};
use crate::proto::mvccpb::{KeyValue, event::EventType};
use crate::proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};

use super::concurrency::{contender_key, contender_prefix, created_at, first_kv, prefix_end};
use super::{Core, RequestContext};

/// The leader responses of an Observe stream.
pub type LeaderStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse>> + Send>>;

impl Core {
    /// Waits until the caller leads the election `name` with `value`, under its lease (a
    /// new 60 s one if it gave none); answers its leader key.
    pub async fn campaign(
        &self,
        ctx: &RequestContext,
        r: CampaignRequest,
    ) -> Result<CampaignResponse> {
        let lease = self.session_lease(ctx, r.lease).await?;
        let prefix = contender_prefix(&r.name);
        let key = contender_key(&r.name, lease);
        let txn = TxnRequest {
            compare: vec![created_at(&key, 0)],
            success: vec![put_op(&key, &r.value, lease)],
            failure: vec![RequestOp {
                request: Some(Op::RequestRange(RangeRequest {
                    key: key.clone(),
                    ..RangeRequest::default()
                })),
            }],
        };
        let resp = self.txn(ctx, txn).await?;
        let header = resp.header.unwrap_or_default();
        let mut leader = LeaderKey {
            name: r.name.clone(),
            key: key.clone(),
            rev: header.revision,
            lease,
        };
        if !resp.succeeded {
            let existing = first_kv(&resp.responses[0]).cloned().unwrap_or_default();
            leader.rev = existing.create_revision;
            if existing.value != r.value
                && let Err(e) = self.proclaim_as(ctx, &leader, r.value.clone()).await
            {
                self.resign_as(ctx, &leader).await.ok();
                return Err(e);
            }
        }
        self.wait_deletes(ctx, &prefix, leader.rev - 1).await?;
        Ok(CampaignResponse {
            header: Some(header),
            leader: Some(leader),
        })
    }

    /// Sets the leader's value, if the caller (`leader`) still leads.
    pub async fn proclaim(
        &self,
        ctx: &RequestContext,
        r: ProclaimRequest,
    ) -> Result<ProclaimResponse> {
        let leader = r.leader.ok_or(Error::MissingLeaderKey)?;
        let header = self.proclaim_as(ctx, &leader, r.value).await?;
        Ok(ProclaimResponse {
            header: Some(header),
        })
    }

    /// The current leader of `name`: the key created first under it.
    pub async fn leader(&self, ctx: &RequestContext, r: LeaderRequest) -> Result<LeaderResponse> {
        let first = self.first_created(ctx, &contender_prefix(&r.name)).await?;
        let kv = first
            .kvs
            .into_iter()
            .next()
            .ok_or(Error::ElectionNoLeader)?;
        Ok(LeaderResponse {
            header: first.header,
            kv: Some(kv),
        })
    }

    /// Gives up leadership (or a place in the queue): deletes the caller's key if it is
    /// still the one `leader` names.
    pub async fn resign(&self, ctx: &RequestContext, r: ResignRequest) -> Result<ResignResponse> {
        let leader = r.leader.ok_or(Error::MissingLeaderKey)?;
        let header = self.resign_as(ctx, &leader).await?;
        Ok(ResignResponse {
            header: Some(header),
        })
    }

    /// The leaders of `name` as they change: the current one (or the first to come), then
    /// each new value it proclaims, and after it resigns, the next one, as etcd's Observe.
    pub fn observe(self: &Arc<Self>, ctx: &RequestContext, r: LeaderRequest) -> LeaderStream {
        let core = self.clone();
        let ctx = ctx.clone();
        Box::pin(async_stream::try_stream! {
            let prefix = contender_prefix(&r.name);
            loop {
                let (header, leader) = core.next_leader(&ctx, &prefix).await?;
                yield LeaderResponse { header: Some(header), kv: Some(leader.clone()) };
                let mut watch = core.watch_from(&ctx, &leader.key, &[], header.revision + 1);
                'leading: loop {
                    let (header, events) = watch.next_events().await?;
                    for event in events {
                        if event.r#type == EventType::Delete as i32 {
                            break 'leading;
                        }
                        yield LeaderResponse { header: Some(header), kv: event.kv };
                    }
                }
            }
        })
    }

    /// The leader of an election under `prefix`, waiting for the first candidate when there
    /// is none; with the header its answer came with.
    async fn next_leader(
        &self,
        ctx: &RequestContext,
        prefix: &[u8],
    ) -> Result<(ResponseHeader, KeyValue)> {
        let first = self.first_created(ctx, prefix).await?;
        let mut header = first.header.unwrap_or_default();
        if let Some(kv) = first.kvs.into_iter().next() {
            return Ok((header, kv));
        }
        let mut watch = self.watch_from(ctx, prefix, &prefix_end(prefix), header.revision);
        loop {
            let (_, events) = watch.next_events().await?;
            let put = events
                .into_iter()
                .find(|e| e.r#type == EventType::Put as i32)
                .and_then(|e| e.kv);
            if let Some(kv) = put {
                // etcd reports the put's own revision, not the batch's last.
                header.revision = kv.mod_revision;
                return Ok((header, kv));
            }
        }
    }

    async fn proclaim_as(
        &self,
        ctx: &RequestContext,
        leader: &LeaderKey,
        value: Vec<u8>,
    ) -> Result<ResponseHeader> {
        let txn = TxnRequest {
            compare: vec![created_at(&leader.key, leader.rev)],
            success: vec![put_op(&leader.key, &value, leader.lease)],
            failure: Vec::new(),
        };
        let resp = self.txn(ctx, txn).await?;
        if !resp.succeeded {
            return Err(Error::ElectionNotLeader);
        }
        Ok(resp.header.unwrap_or_default())
    }

    async fn resign_as(&self, ctx: &RequestContext, leader: &LeaderKey) -> Result<ResponseHeader> {
        let txn = TxnRequest {
            compare: vec![created_at(&leader.key, leader.rev)],
            success: vec![RequestOp {
                request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                    key: leader.key.clone(),
                    ..DeleteRangeRequest::default()
                })),
            }],
            failure: Vec::new(),
        };
        Ok(self.txn(ctx, txn).await?.header.unwrap_or_default())
    }
}

/// A put of `value` at `key` under `lease`, as a txn op.
fn put_op(key: &[u8], value: &[u8], lease: i64) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            ..PutRequest::default()
        })),
    }
}
