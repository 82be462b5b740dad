//! What etcd's concurrency recipes (clientv3/concurrency: sessions, mutexes, elections) do
//! for its Lock and Election services, done here against the core itself: a contender's key
//! is `<name>/<lease id in hex>`, attached to its lease; contenders are ordered by create
//! revision; a contender waits until every key created before its own is deleted.

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::{Error, Result};
use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::proto::etcdserverpb::response_op::Response as OpResponse;
use crate::proto::etcdserverpb::{
    Compare, LeaseGrantRequest, RangeRequest, RangeResponse, ResponseHeader, ResponseOp,
    WatchCreateRequest, WatchRequest, WatchResponse, watch_request,
};
use crate::proto::mvccpb::{Event, KeyValue, event::EventType};

use super::{Core, RequestContext};

/// The TTL of the lease etcd grants a session that was given none (its defaultSessionTTL).
const DEFAULT_SESSION_TTL: i64 = 60;

/// The end of the range of every key starting with `prefix` (etcd's GetPrefixRangeEnd).
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): every key from the prefix on.
    vec![0]
}

/// A contender's key: the name, a slash, and its lease id in lowercase hex.
pub(super) fn contender_key(name: &[u8], lease: i64) -> Vec<u8> {
    let mut key = contender_prefix(name);
    key.extend_from_slice(format!("{lease:x}").as_bytes());
    key
}

/// Where the contenders for `name` keep their keys.
pub(super) fn contender_prefix(name: &[u8]) -> Vec<u8> {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    prefix
}

/// A read of the key created first under `prefix` (etcd's `WithFirstCreate`).
pub(super) fn first_created_request(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        sort_target: SortTarget::Create as i32,
        sort_order: SortOrder::Ascend as i32,
        limit: 1,
        ..RangeRequest::default()
    }
}

/// A watch run by the core for the core's own waiting, from a start revision; it ends when
/// dropped.
pub(super) struct InternalWatch {
    /// Keeps the watch stream open: the stream ends once its requests end.
    _requests: mpsc::Sender<Result<WatchRequest>>,
    responses: ReceiverStream<Result<WatchResponse>>,
}

impl InternalWatch {
    /// The next batch of events and the header they came with. Fails when the watch is
    /// canceled (its start revision was compacted) or the member stops.
    pub(super) async fn next_events(&mut self) -> Result<(ResponseHeader, Vec<Event>)> {
        loop {
            let response = self.responses.next().await.ok_or(Error::Stopped)??;
            if response.canceled {
                return Err(match response.compact_revision {
                    0 => Error::Stopped,
                    _ => Error::Compacted,
                });
            }
            if !response.events.is_empty() {
                return Ok((response.header.unwrap_or_default(), response.events));
            }
        }
    }
}

impl Core {
    /// The lease a session uses: the one given, or, for none (0), a new one of etcd's
    /// default session TTL. The server never keeps it alive (etcd orphans the session).
    pub(super) async fn session_lease(&self, ctx: &RequestContext, lease: i64) -> Result<i64> {
        if lease != 0 {
            return Ok(lease);
        }
        let grant = LeaseGrantRequest {
            ttl: DEFAULT_SESSION_TTL,
            id: 0,
        };
        Ok(self.lease_grant(ctx, grant).await?.id)
    }

    /// The key created first under `prefix`, linearizably.
    pub(super) async fn first_created(
        &self,
        ctx: &RequestContext,
        prefix: &[u8],
    ) -> Result<RangeResponse> {
        self.range(ctx, first_created_request(prefix)).await
    }

    /// etcd's waitDeletes: until no key under `prefix` created at or before
    /// `max_create_rev` is left, waits for the newest of them to be deleted.
    pub(super) async fn wait_deletes(
        &self,
        ctx: &RequestContext,
        prefix: &[u8],
        max_create_rev: i64,
    ) -> Result<ResponseHeader> {
        loop {
            let request = RangeRequest {
                key: prefix.to_vec(),
                range_end: prefix_end(prefix),
                sort_target: SortTarget::Create as i32,
                sort_order: SortOrder::Descend as i32,
                limit: 1,
                max_create_revision: max_create_rev,
                ..RangeRequest::default()
            };
            let newest = self.range(ctx, request).await?;
            let header = newest.header.unwrap_or_default();
            let Some(kv) = newest.kvs.first() else {
                return Ok(header);
            };
            self.wait_delete(ctx, &kv.key, header.revision).await?;
        }
    }

    /// etcd's waitDelete: waits for a delete of `key` at `rev` or later.
    async fn wait_delete(&self, ctx: &RequestContext, key: &[u8], rev: i64) -> Result<()> {
        let mut watch = self.watch_from(ctx, key, &[], rev);
        loop {
            let (_, events) = watch.next_events().await?;
            if events.iter().any(|e| e.r#type == EventType::Delete as i32) {
                return Ok(());
            }
        }
    }

    /// A watch of `[key, range_end)` (etcd's range convention) from `start_revision`.
    pub(super) fn watch_from(
        &self,
        ctx: &RequestContext,
        key: &[u8],
        range_end: &[u8],
        start_revision: i64,
    ) -> InternalWatch {
        let (requests, input) = mpsc::channel(1);
        let create = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(
                WatchCreateRequest {
                    key: key.to_vec(),
                    range_end: range_end.to_vec(),
                    start_revision,
                    ..WatchCreateRequest::default()
                },
            )),
        };
        requests
            .try_send(Ok(create))
            .expect("a new channel has room for one request");
        InternalWatch {
            responses: self.watch(ctx, ReceiverStream::new(input)),
            _requests: requests,
        }
    }
}

/// A compare that `key`'s create revision is `rev` (0: the key does not exist).
pub(super) fn created_at(key: &[u8], rev: i64) -> Compare {
    Compare {
        key: key.to_vec(),
        target: CompareTarget::Create as i32,
        result: CompareResult::Equal as i32,
        target_union: Some(TargetUnion::CreateRevision(rev)),
        ..Compare::default()
    }
}

/// The first key-value of a txn's range response.
pub(super) fn first_kv(response: &ResponseOp) -> Option<&KeyValue> {
    match &response.response {
        Some(OpResponse::ResponseRange(r)) => r.kvs.first(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_as_etcds() {
        assert_eq!(prefix_end(b"lock/"), b"lock0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(
            contender_key(b"lock", 0x694d_7a3f_8b21),
            b"lock/694d7a3f8b21"
        );
    }
}
