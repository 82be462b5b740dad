//! etcd's v2 HTTP API (`--enable-v2`): the keys API at `/v2/keys/…` over [`V2Store`], and
//! `/v2/members`, `/v2/machines` and `/v2/stats/{self,leader,store}` for the v2-era tools
//! (etcdctl with `ETCDCTL_API=2`, the discovery protocol).
//!
//! Parameters are read as Go's `ParseForm` reads them (the form body of a PUT or POST
//! first, then the query string) and checked in etcd's order, with etcd's v2 error for each.

mod keys;
mod members;

use std::sync::Arc;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{HeaderValue, StatusCode};
use serde::Serialize;

use crate::v2::V2Store;
use crate::v3::Core;

use keys::keys;
use members::{machines, member, members, stats_leader, stats_self, stats_store};

/// The v2 routes over `store`; `core` serves the CORS policy they share with the gateway.
pub fn routes(store: Arc<V2Store>, core: Arc<Core>) -> Router<Arc<Core>> {
    Router::new()
        .route(keys::KEYS_PREFIX, any(keys))
        .route("/v2/keys/", any(keys))
        .route("/v2/keys/{*path}", any(keys))
        .route("/v2/members", any(members))
        .route("/v2/members/", any(members))
        .route("/v2/members/{id}", any(member))
        .route("/v2/machines", any(machines))
        .route("/v2/stats/self", any(stats_self))
        .route("/v2/stats/leader", any(stats_leader))
        .route("/v2/stats/store", any(stats_store))
        .with_state(store)
        .layer(axum::middleware::from_fn_with_state(
            core,
            super::gateway::cors,
        ))
}

/// Go's refusal of a method a handler does not take.
fn method_not_allowed(allow: &str) -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [
            (http::header::ALLOW, allow),
            (http::header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        "Method Not Allowed\n",
    )
        .into_response()
}

fn json_line<T: Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string(value).expect("serializes");
    s.push('\n');
    s
}

/// etcd's `httptypes.HTTPError` answer.
fn http_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        json_line(&serde_json::json!({ "message": message })),
    )
        .into_response()
}

/// Adds `X-Etcd-Cluster-ID`, which etcd's v2 handlers send.
fn with_cluster_id(store: &V2Store, mut response: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("{:x}", store.server.cluster_id)) {
        response.headers_mut().insert("x-etcd-cluster-id", v);
    }
    response
}
