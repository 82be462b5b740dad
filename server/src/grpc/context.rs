//! The tower layer in front of every client gRPC service: builds the [`RequestContext`] from
//! the request's metadata, makes the core's pre-RPC checks ([`crate::v3::context::admit`]),
//! answering a refusal as the gRPC error without calling the service, and hands the context
//! to the service in the request's extensions.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{BoxFuture, FutureExt};
use tower::{Layer, Service};

use crate::server::EtcdServer;
use crate::v3::RequestContext;

#[derive(Clone)]
pub struct ContextLayer {
    pub server: Arc<EtcdServer>,
}

impl<S> Layer<S> for ContextLayer {
    type Service = WithContext<S>;

    fn layer(&self, inner: S) -> WithContext<S> {
        WithContext {
            inner,
            server: self.server.clone(),
        }
    }
}

#[derive(Clone)]
pub struct WithContext<S> {
    inner: S,
    server: Arc<EtcdServer>,
}

impl<S, B, RB> Service<http::Request<B>> for WithContext<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Send,
    S::Future: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let mut ctx = RequestContext::from_headers(req.headers());
        ctx.remote = req
            .extensions()
            .get::<crate::transport::ConnInfo>()
            .and_then(|i| i.remote_addr);
        ctx.cert_cn = crate::transport::client_cert_cn(req.extensions());
        if let Err(e) = crate::v3::context::admit(&self.server, &mut ctx, req.uri().path()) {
            let response = tonic::Status::from(e).into_http();
            return async move { Ok(response) }.boxed();
        }
        req.extensions_mut().insert(ctx);
        self.inner.call(req).boxed()
    }
}

/// The context the layer attached to `request`, and its message.
pub fn split<T>(request: tonic::Request<T>) -> (RequestContext, T) {
    let ctx = request
        .extensions()
        .get::<RequestContext>()
        .cloned()
        .unwrap_or_default();
    (ctx, request.into_inner())
}
