//! Checks etcd makes before any client RPC, in one place for every service:
//!
//! - a learner answers "rpc not supported for learner", except Status and serializable Range
//!   (checked in the KV service, since it depends on the request body);
//! - a request carrying the `hasleader` metadata (clientv3's `WithRequireLeader`) fails at
//!   once with "etcdserver: no leader" while the member knows no leader, instead of waiting
//!   for one. Streams that asked for it also end when the leader stays lost
//!   ([`leader_lost`]).

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{BoxFuture, FutureExt};
use tower::{Layer, Service};

use crate::error::Error;
use crate::server::EtcdServer;

/// The metadata key and value of clientv3's `WithRequireLeader`.
const REQUIRE_LEADER_KEY: &str = "hasleader";
const REQUIRE_LEADER_VALUE: &str = "true";

/// Whether the client asked to be refused when there is no leader.
pub fn requires_leader(headers: &http::HeaderMap) -> bool {
    headers
        .get(REQUIRE_LEADER_KEY)
        .is_some_and(|v| v.as_bytes() == REQUIRE_LEADER_VALUE.as_bytes())
}

/// Whether a stream's client asked to be refused when there is no leader.
pub fn stream_requires_leader<T>(request: &tonic::Request<T>) -> bool {
    request
        .metadata()
        .get(REQUIRE_LEADER_KEY)
        .is_some_and(|v| v.as_encoded_bytes() == REQUIRE_LEADER_VALUE.as_bytes())
}

/// Resolves when a stream that required a leader must end: the member has known no leader
/// for etcd's three election timeouts. Never resolves for other streams.
pub async fn leader_lost(server: &EtcdServer, required: bool) {
    if !required {
        return std::future::pending().await;
    }
    let mut lost = server.leader_lost();
    if lost.wait_for(|lost| *lost).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Paths a learner still serves.
const LEARNER_PATHS: &[&str] = &["/etcdserverpb.Maintenance/Status", "/etcdserverpb.KV/Range"];

#[derive(Clone)]
pub struct ClientGuardLayer {
    pub server: Arc<EtcdServer>,
}

impl<S> Layer<S> for ClientGuardLayer {
    type Service = ClientGuard<S>;

    fn layer(&self, inner: S) -> ClientGuard<S> {
        ClientGuard {
            inner,
            server: self.server.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ClientGuard<S> {
    inner: S,
    server: Arc<EtcdServer>,
}

impl<S, B, RB> Service<http::Request<B>> for ClientGuard<S>
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
        let refusal = if !LEARNER_PATHS.contains(&req.uri().path()) && self.server.is_learner() {
            Some(Error::NotSupportedForLearner)
        } else if requires_leader(req.headers()) && !self.server.has_leader() {
            Some(Error::NoLeader)
        } else {
            None
        };
        if let Some(e) = refusal {
            let response = tonic::Status::from(e).into_http();
            return async move { Ok(response) }.boxed();
        }
        self.inner.call(req).boxed()
    }
}
