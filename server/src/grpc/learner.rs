//! What a learner serves: etcd answers every client RPC on a learner with "rpc not supported
//! for learner", except Status and serializable Range (checked in the KV service, since it
//! depends on the request body). This layer applies the rule to every service in one place.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{BoxFuture, FutureExt};
use tower::{Layer, Service};

use crate::error::Error;
use crate::server::EtcdServer;

/// Paths a learner still serves.
const LEARNER_PATHS: &[&str] = &["/etcdserverpb.Maintenance/Status", "/etcdserverpb.KV/Range"];

#[derive(Clone)]
pub struct LearnerGuardLayer {
    pub server: Arc<EtcdServer>,
}

impl<S> Layer<S> for LearnerGuardLayer {
    type Service = LearnerGuard<S>;

    fn layer(&self, inner: S) -> LearnerGuard<S> {
        LearnerGuard {
            inner,
            server: self.server.clone(),
        }
    }
}

#[derive(Clone)]
pub struct LearnerGuard<S> {
    inner: S,
    server: Arc<EtcdServer>,
}

impl<S, B, RB> Service<http::Request<B>> for LearnerGuard<S>
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

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if !LEARNER_PATHS.contains(&req.uri().path()) && self.server.is_learner() {
            let response = tonic::Status::from(Error::NotSupportedForLearner).into_http();
            return async move { Ok(response) }.boxed();
        }
        self.inner.call(req).boxed()
    }
}
