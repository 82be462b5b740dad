//! The client port's HTTP endpoints (HTTP/1.1 and HTTP/2 without gRPC), served beside the
//! gRPC services by the same listener, answering with the same v3 core. A path nothing
//! serves answers what Go's `http.ServeMux` answers (etcd's client port is such a mux), while
//! gRPC requests to an unknown method still get gRPC's "unimplemented".
//!
//! # Layout
//! - [`health`]: `/health`, `/livez`, `/readyz`;
//! - [`metrics`]: the `/metrics` endpoint;
//! - [`version`]: the `/version` endpoint;
//! - [`gateway`]: etcd's JSON gateway (`POST /v3/...`);
//! - [`peer`]: the peer port's `/members`, for proxies;
//! - [`v2`]: etcd's v2 API (`/v2/keys/...`, `/v2/members`, `/v2/stats/...`), with
//!   `--enable-v2`.

pub mod gateway;
pub mod health;
mod json_stream;
pub mod metrics;
pub mod peer;
pub mod v2;
pub mod version;

use std::sync::Arc;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};

use crate::v3::Core;

/// The HTTP routes of the client port, answering with `core` (and `v2`, when the member
/// serves the v2 API).
pub fn router(core: Arc<Core>, v2: Option<Arc<crate::v2::V2Store>>) -> Router {
    let mut router = health::routes()
        .route("/version", only_get(get(version::version)))
        .route("/metrics", only_get(get(metrics::metrics)))
        .merge(gateway::routes(core.clone()));
    if let Some(v2) = v2 {
        router = router.merge(v2::routes(v2, core.clone()));
    }
    router.with_state(core)
}

/// The routes of `--listen-metrics-urls`: `/metrics` and the health endpoints, as etcd
/// serves them there.
pub fn metrics_routes(server: Arc<crate::server::EtcdServer>) -> tonic::service::Routes {
    let core = Arc::new(Core::new(server));
    let router = health::routes()
        .route("/metrics", only_get(get(metrics::metrics)))
        .with_state(core)
        .fallback(|| async { unknown_path_text() });
    tonic::service::Routes::from(router)
}

/// Go's answer to a method an etcd handler does not take: 405, `Allow: GET`.
pub(crate) fn only_get<S: Clone + Send + Sync + 'static>(
    route: MethodRouter<S>,
) -> MethodRouter<S> {
    route.fallback(|| async {
        (
            http::StatusCode::METHOD_NOT_ALLOWED,
            [
                (http::header::ALLOW, "GET"),
                (http::header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            "Method Not Allowed\n",
        )
    })
}

/// The client port's answer to a path nothing serves: Go's 404 for HTTP requests, gRPC's
/// "unimplemented" for gRPC requests.
pub async fn unknown_path(request: axum::extract::Request) -> Response {
    let grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        return tonic::Status::unimplemented("").into_http::<axum::body::Body>();
    }
    unknown_path_text()
}

/// Go's 404 for a path its mux does not serve.
fn unknown_path_text() -> Response {
    (
        http::StatusCode::NOT_FOUND,
        [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 page not found\n",
    )
        .into_response()
}
