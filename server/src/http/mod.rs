//! The client port's HTTP endpoints (HTTP/1.1 and HTTP/2 without gRPC), served beside the
//! gRPC services by the same listener. None are served yet: every path answers what Go's
//! `http.ServeMux` answers for an unknown one (etcd's client port is such a mux), while gRPC
//! requests to an unknown method still get gRPC's "unimplemented".

use axum::Router;
use axum::response::{IntoResponse, Response};

/// The HTTP routes of the client port.
pub fn router() -> Router {
    Router::new()
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
    (
        http::StatusCode::NOT_FOUND,
        [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 page not found\n",
    )
        .into_response()
}
