//! The gateway's streaming calls: watch and lease keep-alive read their requests from the
//! body as the client sends them; snapshot and election observe take one request. Answers
//! are newline-delimited `{"result":…}` objects, as grpc-gateway streams them.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use http::{HeaderMap, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{body_limit, context, decode, http_status};
use crate::error::Result;
use crate::v3::Core;

/// A stream's answer: each item as a line `{"result":…}`, an error as a line `{"error":…}`
/// that ends it, as grpc-gateway streams.
fn streamed<T: Serialize + Send + 'static>(
    items: impl Stream<Item = Result<T>> + Send + 'static,
) -> Response {
    let lines = items.map(|item| {
        let line = match item {
            Ok(result) => serde_json::json!({ "result": result }),
            Err(e) => serde_json::json!({
                "error": {
                    "grpc_code": e.code() as i32,
                    "http_code": http_status(e.code()).as_u16(),
                    "message": e.to_string(),
                    "http_status": http_status(e.code()).canonical_reason().unwrap_or_default(),
                }
            }),
        };
        Ok::<_, std::convert::Infallible>(format!("{line}\n"))
    });
    (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "application/json")],
        Body::from_stream(lines),
    )
        .into_response()
}

/// A streaming call opened: its requests, read from `body` as the client sends them (all of
/// them in order, ending with the body or at the first malformed request), and the request
/// context of `rpc`. A malformed first request, or a failed check, refuses the call: the
/// answer saying so.
async fn open<T: DeserializeOwned + Send + 'static>(
    core: &Core,
    headers: &HeaderMap,
    body: Body,
    rpc: &str,
) -> std::result::Result<
    (
        impl futures::Stream<Item = T> + Send + 'static,
        crate::v3::RequestContext,
    ),
    Response,
> {
    let mut requests = crate::http::json_stream::RequestStream::<T>::new(body, body_limit(core));
    let opened = async {
        let first = requests.next_batch().await?;
        Ok::<_, crate::error::Error>((first, context(core, headers, rpc)?))
    };
    let (first, ctx) = opened.await.map_err(|e| e.gateway_response())?;
    let later = futures::stream::unfold(requests, |mut r| async move {
        match r.next_batch().await {
            Ok(batch) if !batch.is_empty() => Some((futures::stream::iter(batch), r)),
            _ => None,
        }
    })
    .flatten();
    Ok((futures::stream::iter(first).chain(later), ctx))
}

/// `/v3/watch`: the watch requests in the body, then the stream's responses.
pub(super) async fn watch(
    State(core): State<Arc<Core>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    use crate::proto::etcdserverpb::WatchRequest;
    let rpc = "/etcdserverpb.Watch/Watch";
    match open::<WatchRequest>(&core, &headers, body, rpc).await {
        // When the body ends the watch lives on until the client goes.
        Ok((requests, ctx)) => {
            let input = requests.chain(futures::stream::pending()).map(Ok);
            streamed(core.watch(&ctx, Box::pin(input)))
        }
        Err(refused) => refused,
    }
}

/// `/v3/lease/keepalive`: one answer per keep-alive request in the body, each as it comes;
/// the stream ends with the body.
pub(super) async fn keep_alive(
    State(core): State<Arc<Core>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    use crate::proto::etcdserverpb::LeaseKeepAliveRequest;
    let rpc = "/etcdserverpb.Lease/LeaseKeepAlive";
    match open::<LeaseKeepAliveRequest>(&core, &headers, body, rpc).await {
        Ok((requests, ctx)) => streamed(core.lease_keep_alive(&ctx, Box::pin(requests.map(Ok)))),
        Err(refused) => refused,
    }
}

/// `/v3/maintenance/snapshot`: the snapshot's chunks.
pub(super) async fn snapshot(
    State(core): State<Arc<Core>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use crate::proto::etcdserverpb::SnapshotRequest;
    let rpc = "/etcdserverpb.Maintenance/Snapshot";
    let opened = decode::<SnapshotRequest>(&core, &body)
        .and_then(|request| Ok((request, context(&core, &headers, rpc)?)));
    let (request, ctx) = match opened {
        Ok(opened) => opened,
        Err(e) => return e.gateway_response(),
    };
    match core.snapshot(&ctx, request).await {
        Ok(chunks) => streamed(chunks),
        Err(e) => e.gateway_response(),
    }
}

/// `/v3/election/observe`: the election's leaders as they change.
pub(super) async fn observe(
    State(core): State<Arc<Core>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use crate::proto::v3electionpb::LeaderRequest;
    let rpc = "/v3electionpb.Election/Observe";
    let opened = decode::<LeaderRequest>(&core, &body)
        .and_then(|request| Ok((request, context(&core, &headers, rpc)?)));
    match opened {
        Ok((request, ctx)) => streamed(core.observe(&ctx, request)),
        Err(e) => e.gateway_response(),
    }
}
