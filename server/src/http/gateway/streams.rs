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

/// A streaming call's requests, read from `body` as the client sends them: the first batch
/// (a malformed one refuses the call outright), then the later ones as a stream that ends
/// with the body (or at the first malformed request).
async fn requests_of<T: DeserializeOwned + Send + 'static>(
    core: &Core,
    body: Body,
) -> Result<(Vec<T>, impl futures::Stream<Item = T> + Send + 'static)> {
    let mut requests = crate::http::json_stream::RequestStream::<T>::new(body, body_limit(core));
    let first = requests.next_batch().await?;
    let later = futures::stream::unfold(requests, |mut r| async move {
        match r.next_batch().await {
            Ok(batch) if !batch.is_empty() => Some((futures::stream::iter(batch), r)),
            _ => None,
        }
    })
    .flatten();
    Ok((first, later))
}

/// `/v3/watch`: the watch requests in the body, then the stream's responses.
pub(super) async fn watch(
    State(core): State<Arc<Core>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    use crate::proto::etcdserverpb::WatchRequest;
    let rpc = "/etcdserverpb.Watch/Watch";
    let opened = requests_of::<WatchRequest>(&core, body)
        .await
        .and_then(|requests| Ok((requests, context(&core, &headers, rpc)?)));
    let ((first, later), ctx) = match opened {
        Ok(opened) => opened,
        Err(e) => return e.gateway_response(),
    };
    // When the body ends the watch lives on until the client goes.
    let input = futures::stream::iter(first)
        .chain(later)
        .chain(futures::stream::pending())
        .map(Ok);
    streamed(core.watch(&ctx, Box::pin(input)))
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
    let opened = requests_of::<LeaseKeepAliveRequest>(&core, body)
        .await
        .and_then(|requests| Ok((requests, context(&core, &headers, rpc)?)));
    let ((first, later), ctx) = match opened {
        Ok(opened) => opened,
        Err(e) => return e.gateway_response(),
    };
    let input = futures::stream::iter(first).chain(later).map(Ok);
    streamed(core.lease_keep_alive(&ctx, Box::pin(input)))
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
