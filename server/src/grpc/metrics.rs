//! go-grpc-prometheus's server metrics, as etcd exports them: every gRPC call counted when it
//! starts (`grpc_server_started_total`) and when it ends, with its status code
//! (`grpc_server_handled_total`), and with `--metrics extensive` its duration
//! (`grpc_server_handling_seconds`). A call ends with the `grpc-status` of its trailers (or of
//! its headers, for an error answered at once); a stream the client dropped ends `Canceled`.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use futures::future::BoxFuture;
use http_body::Frame;

use crate::metrics::{METRICS, extensive};

/// The layer, around the client port's routes.
#[derive(Clone, Copy, Default)]
pub struct MetricsLayer;

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService { inner }
    }
}

#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
}

/// One call's labels: grpc_type, grpc_service, grpc_method.
#[derive(Clone)]
struct Call {
    labels: [String; 3],
    started: Instant,
}

impl Call {
    /// The call a request makes, if it is a gRPC request (`/package.Service/Method`).
    fn of<B>(request: &http::Request<B>) -> Option<Call> {
        let grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes().starts_with(b"application/grpc"));
        let (service, method) = request.uri().path().strip_prefix('/')?.split_once('/')?;
        if !grpc || method.contains('/') {
            return None;
        }
        let kind = match (service, method) {
            (_, "Watch" | "LeaseKeepAlive") => "bidi_stream",
            (_, "Snapshot" | "Observe") => "server_stream",
            _ => "unary",
        };
        Some(Call {
            labels: [kind.into(), service.into(), method.into()],
            started: Instant::now(),
        })
    }

    fn handled(&self, code: tonic::Code) {
        let [kind, service, method] = &self.labels;
        let code = code_name(code);
        METRICS
            .grpc_handled
            .with_label_values(&[kind.as_str(), service, method, code])
            .inc();
        if extensive() {
            METRICS
                .grpc_handling
                .with_label_values(&self.labels)
                .observe(self.started.elapsed().as_secs_f64());
        }
    }
}

/// The names go-grpc-prometheus gives codes (Go's `codes.Code.String()`).
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

fn status_of(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from)
}

impl<S, B> tower::Service<http::Request<B>> for MetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let call = Call::of(&request);
        if let Some(call) = &call {
            METRICS.grpc_started.with_label_values(&call.labels).inc();
        }
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            let Some(call) = call else {
                return Ok(response);
            };
            if let Some(code) = status_of(response.headers()) {
                call.handled(code);
                return Ok(response);
            }
            let (parts, body) = response.into_parts();
            let body = Body::new(Watched {
                inner: body,
                call: Some(call),
            });
            Ok(http::Response::from_parts(parts, body))
        })
    }
}

/// A response body that reports its call handled when the trailers pass, or when it is
/// dropped before them.
struct Watched {
    inner: Body,
    call: Option<Call>,
}

impl http_body::Body for Watched {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = status_of(trailers).unwrap_or(tonic::Code::Unknown);
                    if let Some(call) = self.call.take() {
                        call.handled(code);
                    }
                }
            }
            Poll::Ready(None) => {
                if let Some(call) = self.call.take() {
                    call.handled(tonic::Code::Unknown);
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.handled(tonic::Code::Cancelled);
        }
    }
}
