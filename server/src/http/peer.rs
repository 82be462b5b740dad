//! The peer port's HTTP endpoint for tools, as etcd serves it there: `GET /members`, the
//! membership as JSON (`[{"id":…,"name":"…","peerURLs":[…],"clientURLs":[…]}]`) with
//! the `X-Etcd-Cluster-ID` header. etcd's v2 proxy reads it to find the members' client
//! URLs, so either proxy can front an oxcd cluster.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::HeaderValue;

use super::only_get;
use crate::server::EtcdServer;

/// A member as etcd's membership JSON has it: the id a number, name and client URLs left
/// out while empty (a member not yet started), the learner flag only when set.
#[derive(serde::Serialize)]
struct PeerMember {
    id: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(rename = "peerURLs")]
    peer_urls: Vec<String>,
    #[serde(rename = "isLearner", skip_serializing_if = "std::ops::Not::not")]
    is_learner: bool,
    #[serde(rename = "clientURLs", skip_serializing_if = "Vec::is_empty")]
    client_urls: Vec<String>,
}

/// The peer port's HTTP routes.
pub fn routes(server: Arc<EtcdServer>) -> axum::Router {
    axum::Router::new()
        .route("/members", only_get(get(members)))
        .with_state(server)
}

async fn members(State(server): State<Arc<EtcdServer>>) -> Response {
    let list: Vec<PeerMember> = server
        .members()
        .into_iter()
        .map(|m| PeerMember {
            id: m.id,
            name: m.name,
            peer_urls: m.peer_ur_ls,
            is_learner: m.is_learner,
            client_urls: m.client_ur_ls,
        })
        .collect();
    let body = serde_json::to_string(&list).unwrap_or_default() + "\n";
    let mut response = ([(http::header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Ok(id) = HeaderValue::from_str(&format!("{:x}", server.cluster_id)) {
        response.headers_mut().insert("x-etcd-cluster-id", id);
    }
    response
}
