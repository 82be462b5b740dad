//! `/v2/members`, `/v2/machines` and `/v2/stats/…`: membership and statistics as etcd's
//! v2 API reports them.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode};
use serde::Serialize;

use crate::proto::etcdserverpb::Member;
use crate::v2::V2Store;

use super::{http_error, json_line, method_not_allowed, with_cluster_id};

/// A member as the v2 API prints it.
#[derive(Serialize)]
struct V2Member {
    id: String,
    name: String,
    #[serde(rename = "peerURLs")]
    peer_urls: Vec<String>,
    #[serde(rename = "clientURLs")]
    client_urls: Vec<String>,
}

impl From<&Member> for V2Member {
    fn from(m: &Member) -> V2Member {
        V2Member {
            id: format!("{:x}", m.id),
            name: m.name.clone(),
            peer_urls: m.peer_ur_ls.clone(),
            client_urls: m.client_ur_ls.clone(),
        }
    }
}

fn membership_error(e: crate::error::Error) -> Response {
    let status = match e.code() {
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::AlreadyExists | tonic::Code::FailedPrecondition => StatusCode::CONFLICT,
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    http_error(status, &e.to_string())
}

fn json_ok<T: Serialize>(store: &V2Store, status: StatusCode, value: &T) -> Response {
    let response = (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        json_line(value),
    )
        .into_response();
    with_cluster_id(store, response)
}

#[derive(serde::Deserialize)]
struct PeerUrls {
    #[serde(rename = "peerURLs", default)]
    peer_urls: Vec<String>,
}

/// With auth on, membership changes are root's: etcd's answer to anyone else.
async fn admin_only(store: &V2Store, headers: &HeaderMap) -> Option<Response> {
    let write = crate::proto::authpb::permission::Type::Write;
    super::authorize(store, headers, write, true)
        .await
        .err()
        .map(|_| http_error(StatusCode::UNAUTHORIZED, "Insufficient credentials"))
}

/// The peer URLs of a member request's JSON body, or the refusal to answer.
fn peer_urls(headers: &HeaderMap, body: &[u8]) -> Result<Vec<String>, (StatusCode, String)> {
    let json = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !json {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Bad Content-Type".into(),
        ));
    }
    match serde_json::from_slice::<PeerUrls>(body) {
        Ok(p) if !p.peer_urls.is_empty() => Ok(p.peer_urls),
        Ok(_) => Err((StatusCode::BAD_REQUEST, "peerURLs must not be empty".into())),
        Err(e) => Err((StatusCode::BAD_REQUEST, e.to_string())),
    }
}

/// `/v2/members`: the list (GET), or a new member (POST `{"peerURLs":[…]}`).
pub(super) async fn members(
    State(store): State<Arc<V2Store>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match method {
        Method::GET | Method::HEAD => {
            let list: Vec<V2Member> = store.server.members().iter().map(V2Member::from).collect();
            json_ok(
                &store,
                StatusCode::OK,
                &serde_json::json!({ "members": list }),
            )
        }
        Method::POST => {
            if let Some(refusal) = admin_only(&store, &headers).await {
                return refusal;
            }
            let urls = match peer_urls(&headers, &body) {
                Ok(u) => u,
                Err((status, message)) => return http_error(status, &message),
            };
            match store.server.member_add(urls, false).await {
                Ok(m) => json_ok(&store, StatusCode::CREATED, &V2Member::from(&m)),
                Err(e) => membership_error(e),
            }
        }
        _ => method_not_allowed("GET,POST"),
    }
}

/// `/v2/members/<id>` (DELETE, PUT) and `/v2/members/leader` (GET).
pub(super) async fn member(
    State(store): State<Arc<V2Store>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if id == "leader" {
        if method != Method::GET {
            return method_not_allowed("GET");
        }
        let leader = store.server.leader();
        return match store.server.members().iter().find(|m| Some(m.id) == leader) {
            Some(m) => json_ok(&store, StatusCode::OK, &V2Member::from(m)),
            None => http_error(StatusCode::SERVICE_UNAVAILABLE, "During election"),
        };
    }
    let Ok(id_num) = u64::from_str_radix(&id, 16) else {
        return http_error(StatusCode::NOT_FOUND, &format!("No such member: {id}"));
    };
    if matches!(method, Method::DELETE | Method::PUT)
        && let Some(refusal) = admin_only(&store, &headers).await
    {
        return refusal;
    }
    let result = match method {
        Method::DELETE => store.server.member_remove(id_num).await,
        Method::PUT => match peer_urls(&headers, &body) {
            Ok(urls) => store.server.member_update(id_num, urls).await,
            Err((status, message)) => return http_error(status, &message),
        },
        _ => return method_not_allowed("DELETE,PUT"),
    };
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => membership_error(e),
    }
}

/// `/v2/machines`: the members' client URLs.
pub(super) async fn machines(State(store): State<Arc<V2Store>>, method: Method) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return method_not_allowed("GET,HEAD");
    }
    let urls: Vec<String> = store
        .server
        .members()
        .into_iter()
        .flat_map(|m| m.client_ur_ls)
        .collect();
    urls.join(", ").into_response()
}

/// Go's `time.Duration` text: `1h2m3.5s`.
fn go_duration(d: std::time::Duration) -> String {
    let total = d.as_secs();
    let (h, m) = (total / 3600, (total % 3600) / 60);
    let secs = (total % 60) as f64 + f64::from(d.subsec_nanos()) / 1e9;
    let s = format!("{secs:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

/// `/v2/stats/self`: this member's raft state.
pub(super) async fn stats_self(State(store): State<Arc<V2Store>>, method: Method) -> Response {
    if method != Method::GET {
        return method_not_allowed("GET");
    }
    let server = &store.server;
    let leader = server.leader();
    let state = match leader {
        Some(l) if l == server.member_id => "StateLeader",
        Some(_) => "StateFollower",
        None => "StateCandidate",
    };
    let started = crate::v2::node::go_time(store.started_ns);
    let body = SelfStats {
        name: server.name.clone(),
        id: format!("{:x}", server.member_id),
        state,
        start_time: started.clone(),
        leader_info: LeaderInfo {
            leader: leader.map(|l| format!("{l:x}")).unwrap_or_default(),
            uptime: go_duration(store.started.elapsed()),
            start_time: started,
        },
        recv_append_request_cnt: 0,
        send_append_request_cnt: 0,
    };
    stats_json(&store, &body)
}

/// etcd's `ServerStats`, fields in its order.
#[derive(Serialize)]
struct SelfStats {
    name: String,
    id: String,
    state: &'static str,
    #[serde(rename = "startTime")]
    start_time: String,
    #[serde(rename = "leaderInfo")]
    leader_info: LeaderInfo,
    #[serde(rename = "recvAppendRequestCnt")]
    recv_append_request_cnt: u64,
    #[serde(rename = "sendAppendRequestCnt")]
    send_append_request_cnt: u64,
}

#[derive(Serialize)]
struct LeaderInfo {
    leader: String,
    uptime: String,
    #[serde(rename = "startTime")]
    start_time: String,
}

/// etcd's `LeaderStats`: the leader and, by id, each follower's.
#[derive(Serialize)]
struct LeaderStats {
    leader: String,
    followers: std::collections::BTreeMap<String, serde_json::Value>,
}

/// A stats answer: JSON without a trailing newline, as etcd writes them.
fn stats_json<T: Serialize>(store: &V2Store, value: &T) -> Response {
    let response = (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(value).expect("serializes"),
    )
        .into_response();
    with_cluster_id(store, response)
}

/// `/v2/stats/leader`: the leader's followers; other members answer 403.
pub(super) async fn stats_leader(State(store): State<Arc<V2Store>>, method: Method) -> Response {
    if method != Method::GET {
        return method_not_allowed("GET");
    }
    let server = &store.server;
    if server.leader() != Some(server.member_id) {
        return http_error(StatusCode::FORBIDDEN, "not current leader");
    }
    let followers = server
        .members()
        .iter()
        .filter(|m| m.id != server.member_id)
        .map(|m| {
            (format!("{:x}", m.id), {
                let (success, fail) = server.peer_activity.counts(m.id);
                let l = server.peer_activity.latency(m.id);
                serde_json::json!({
                    "latency": {"current": l.current, "average": l.average,
                                "standardDeviation": l.standard_deviation,
                                "minimum": l.minimum, "maximum": l.maximum},
                    "counts": {"fail": fail, "success": success},
                })
            })
        })
        .collect();
    let body = LeaderStats {
        leader: format!("{:x}", server.member_id),
        followers,
    };
    stats_json(&store, &body)
}

/// `/v2/stats/store`: the v2 store's operation counters and live watchers.
pub(super) async fn stats_store(State(store): State<Arc<V2Store>>, method: Method) -> Response {
    if method != Method::GET {
        return method_not_allowed("GET");
    }
    let response = (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "application/json")],
        store.stats.json(),
    )
        .into_response();
    with_cluster_id(&store, response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_prints_them() {
        use std::time::Duration;
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(62)), "1m2s");
        assert_eq!(go_duration(Duration::from_secs(3723)), "1h2m3s");
    }
}
