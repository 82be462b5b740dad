//! `/version`: the versions etcd clients and tools read before they talk to a member.

use axum::response::{IntoResponse, Response};
use http::header;

use crate::v3::ETCD_API_VERSION;

/// etcd 3.5's answer: the server's version and the cluster's (its major.minor, `.0`).
pub async fn version() -> Response {
    let cluster = ETCD_API_VERSION
        .rsplit_once('.')
        .map_or(ETCD_API_VERSION.to_string(), |(major_minor, _)| {
            format!("{major_minor}.0")
        });
    let body = serde_json::json!({ "etcdserver": ETCD_API_VERSION, "etcdcluster": cluster });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
