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

/// With auth on, whether the request's caller may `perm` the v2 key space (`admin`: change
/// membership): as etcd's v2 clients do, it names itself with HTTP Basic credentials, or, as
/// gateway clients do, with a v3 token in `Authorization`. Roles grant it over the v2
/// prefix's range; root may do anything. Refusals are etcd's v2 error 110.
async fn authorize(
    store: &V2Store,
    headers: &http::HeaderMap,
    perm: crate::proto::authpb::permission::Type,
    admin: bool,
) -> Result<(), crate::v2::error::V2Error> {
    use crate::auth::AuthInfo;
    let server = &store.server;
    if !server.state.read().kv.auth.is_enabled() {
        return Ok(());
    }
    let refused = || {
        crate::v2::error::V2Error::new(
            crate::v2::error::UNAUTHORIZED,
            "Insufficient credentials",
            0,
        )
    };
    let basic = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(str::to_string);
    let who = match basic {
        Some(encoded) => {
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| refused())?;
            let text = String::from_utf8(decoded).map_err(|_| refused())?;
            let (name, password) = text.split_once(':').ok_or_else(refused)?;
            let checked = crate::v3::auth::check_password(server, name, password.to_string());
            let Some(revision) = checked.await.map_err(|_| refused())? else {
                tracing::warn!(user = %name, "v2 authentication failed: wrong password");
                return Err(refused());
            };
            AuthInfo {
                username: name.to_string(),
                revision,
            }
        }
        None => crate::v3::RequestContext::from_headers(headers)
            .resolve(server)
            .ok()
            .flatten()
            .ok_or_else(refused)?,
    };
    let state = server.state.read();
    let auth = &state.kv.auth;
    let allowed = if admin {
        auth.check_admin(&who)
    } else {
        let (start, end) = store.key_range();
        auth.check(&who, &start, &end, perm)
    };
    allowed.map_err(|_| refused())
}
