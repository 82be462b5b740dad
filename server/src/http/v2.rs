//! etcd's v2 HTTP API (`--enable-v2`): the keys API at `/v2/keys/…` over [`V2Store`], and
//! `/v2/members`, `/v2/machines` and `/v2/stats/{self,leader,store}` for the v2-era tools
//! (etcdctl with `ETCDCTL_API=2`, the discovery protocol).
//!
//! Parameters are read as Go's `ParseForm` reads them (the form body of a PUT or POST
//! first, then the query string) and checked in etcd's order, with etcd's v2 error for each.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use serde::Serialize;

use crate::proto::etcdserverpb::Member;
use crate::v2::error::{
    INDEX_NAN, INVALID_FIELD, PREV_VALUE_REQUIRED, REFRESH_TTL_REQUIRED, REFRESH_VALUE, TTL_NAN,
    V2Error, V2Result,
};
use crate::v2::{Event, V2Store, WriteOptions, now_ns};
use crate::v3::Core;

const KEYS_PREFIX: &str = "/v2/keys";

/// The v2 routes over `store`; `core` serves the CORS policy they share with the gateway.
pub fn routes(store: Arc<V2Store>, core: Arc<Core>) -> Router<Arc<Core>> {
    Router::new()
        .route(KEYS_PREFIX, any(keys))
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

/// A request's form: the body's fields (for a form-encoded PUT or POST), then the query's.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Form {
        let mut fields = Vec::new();
        let form_body = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        if form_body && (method == Method::PUT || method == Method::POST || method == Method::PATCH)
        {
            fields.extend(url::form_urlencoded::parse(body).into_owned());
        }
        if let Some(q) = uri.query() {
            fields.extend(url::form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        Form(fields)
    }

    fn first(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn value(&self, key: &str) -> &str {
        self.first(key).unwrap_or_default()
    }

    /// Go's `strconv.ParseBool` of the field (false when absent).
    fn bool(&self, key: &str, code: u32, cause: &str) -> V2Result<bool> {
        match self.first(key) {
            None => Ok(false),
            Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(true),
            Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(false),
            Some(_) => Err(V2Error::new(code, cause, 0)),
        }
    }

    fn flag(&self, key: &str) -> V2Result<bool> {
        self.bool(key, INVALID_FIELD, &format!("invalid value for {key:?}"))
    }

    fn optional_flag(&self, key: &str, cause: &str) -> V2Result<Option<bool>> {
        match self.first(key) {
            None => Ok(None),
            Some(_) => self.bool(key, INVALID_FIELD, cause).map(Some),
        }
    }

    fn uint(&self, key: &str, code: u32) -> V2Result<u64> {
        match self.first(key) {
            None => Ok(0),
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| V2Error::new(code, format!("invalid value for {key:?}"), 0)),
        }
    }
}

/// A keys request as etcd's `parseKeyRequest` reads it.
struct KeyRequest {
    method: Method,
    path: String,
    value: String,
    dir: bool,
    prev_value: String,
    prev_index: u64,
    prev_exist: Option<bool>,
    wait: bool,
    wait_index: u64,
    recursive: bool,
    quorum: bool,
    stream: bool,
    refresh: bool,
    expires: Option<i64>,
    no_value_on_success: bool,
}

impl KeyRequest {
    fn parse(method: Method, path: String, form: &Form) -> V2Result<KeyRequest> {
        let prev_index = form.uint("prevIndex", INDEX_NAN)?;
        let wait_index = form.uint("waitIndex", INDEX_NAN)?;
        let recursive = form.flag("recursive")?;
        form.flag("sorted")?;
        let wait = form.flag("wait")?;
        let dir = form.flag("dir")?;
        let quorum = form.flag("quorum")?;
        let stream = form.flag("stream")?;
        if wait && method != Method::GET {
            return Err(V2Error::new(
                INVALID_FIELD,
                r#""wait" can only be used with GET requests"#,
                0,
            ));
        }
        let prev_value = form.value("prevValue").to_string();
        if form.first("prevValue").is_some() && prev_value.is_empty() {
            return Err(V2Error::new(
                PREV_VALUE_REQUIRED,
                r#""prevValue" cannot be empty"#,
                0,
            ));
        }
        let no_value_on_success = form.flag("noValueOnSuccess")?;
        let ttl = match form.value("ttl") {
            "" => None,
            t => Some(
                t.parse::<u64>()
                    .map_err(|_| V2Error::new(TTL_NAN, r#"invalid value for "ttl""#, 0))?,
            ),
        };
        let prev_exist = form.optional_flag("prevExist", "invalid value for prevExist")?;
        let refresh = form
            .optional_flag("refresh", "invalid value for refresh")?
            .unwrap_or(false);
        if refresh {
            if !form.value("value").is_empty() {
                return Err(V2Error::new(
                    REFRESH_VALUE,
                    "A value was provided on a refresh",
                    0,
                ));
            }
            if ttl.is_none() {
                return Err(V2Error::new(REFRESH_TTL_REQUIRED, "No TTL value set", 0));
            }
        }
        let expires = ttl.map(|t| {
            now_ns().saturating_add((t.min(i64::MAX as u64 / 1_000_000_000) as i64) * 1_000_000_000)
        });
        Ok(KeyRequest {
            method,
            path,
            value: form.value("value").to_string(),
            dir,
            prev_value,
            prev_index,
            prev_exist,
            wait,
            wait_index,
            recursive,
            quorum,
            stream,
            refresh,
            expires,
            no_value_on_success,
        })
    }

    fn options(&self) -> WriteOptions {
        WriteOptions {
            value: self.value.clone(),
            dir: self.dir,
            expires: self.expires,
            refresh: self.refresh,
        }
    }

    /// etcd's v2 applier: which store operation the request is.
    async fn apply(&self, store: &V2Store) -> V2Result<(Event, i64)> {
        let compares = self.prev_index > 0 || !self.prev_value.is_empty();
        let path = &self.path;
        match self.method {
            Method::POST => store.create(path, true, self.options()).await,
            Method::PUT => match self.prev_exist {
                Some(true) if !compares => store.update(path, self.options()).await,
                Some(false) => store.create(path, false, self.options()).await,
                Some(true) | None if compares => {
                    store
                        .compare_and_swap(path, &self.prev_value, self.prev_index, self.options())
                        .await
                }
                _ => store.set(path, self.options()).await,
            },
            Method::DELETE if compares => {
                store
                    .compare_and_delete(path, &self.prev_value, self.prev_index)
                    .await
            }
            Method::DELETE => store.delete(path, self.dir, self.recursive).await,
            _ => store.get(path, self.recursive, self.quorum).await,
        }
    }
}

/// Decodes the `%XX` escapes of a URL path, as Go's `URL.Path` holds it.
fn unescape_path(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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

/// The headers a keys answer carries: the cluster and the store index, and for answers
/// that are not errors, raft's applied index and term.
fn index_headers(store: &V2Store, response: &mut Response, etcd_index: i64, raft: bool) {
    let (raft_index, term) = {
        let metrics = store.server.raft.metrics();
        let m = openraft::async_runtime::WatchReceiver::borrow_watched(&metrics);
        (m.last_applied.map(|l| l.index).unwrap_or(0), m.current_term)
    };
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set(
        "x-etcd-cluster-id",
        format!("{:x}", store.server.cluster_id),
    );
    set("x-etcd-index", etcd_index.to_string());
    if raft {
        set("x-raft-index", raft_index.to_string());
        set("x-raft-term", term.to_string());
    }
}

fn json_line<T: Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string(value).expect("serializes");
    s.push('\n');
    s
}

fn v2_error(store: &V2Store, e: V2Error) -> Response {
    let mut response = (
        e.status(),
        [(http::header::CONTENT_TYPE, "application/json")],
        json_line(&e),
    )
        .into_response();
    index_headers(store, &mut response, e.index, false);
    response
}

async fn keys(
    State(store): State<Arc<V2Store>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if ![
        Method::HEAD,
        Method::GET,
        Method::PUT,
        Method::POST,
        Method::DELETE,
    ]
    .contains(&method)
    {
        return method_not_allowed("HEAD,GET,PUT,POST,DELETE");
    }
    let form = Form::parse(&method, &uri, &headers, &body);
    let path = unescape_path(uri.path().strip_prefix(KEYS_PREFIX).unwrap_or_default());
    let request = match KeyRequest::parse(method, path, &form) {
        Ok(r) => r,
        Err(e) => return v2_error(&store, e),
    };
    if request.wait && request.method == Method::GET {
        return watch(store, request);
    }
    match request.apply(&store).await {
        Ok((mut event, index)) => {
            let status = if event.is_created() {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let trims = matches!(
                event.action.as_str(),
                "set" | "compareAndSwap" | "create" | "update"
            );
            if request.no_value_on_success && trims {
                event.node = None;
                event.prev_node = None;
            }
            let mut response = (
                status,
                [(http::header::CONTENT_TYPE, "application/json")],
                json_line(&event),
            )
                .into_response();
            index_headers(&store, &mut response, index, true);
            response
        }
        Err(e) => v2_error(&store, e),
    }
}

/// A `wait=true` GET: the headers at once, then the first event (every event, with
/// `stream=true`) as it happens.
fn watch(store: Arc<V2Store>, request: KeyRequest) -> Response {
    let mut waiter = match store.waiter(&request.path, request.recursive, request.wait_index) {
        Ok(w) => w,
        Err(e) => return v2_error(&store, e),
    };
    let start = waiter.start_index;
    let stream = request.stream;
    let events = async_stream::stream! {
        loop {
            match waiter.next().await {
                Ok(event) => yield Ok::<_, std::convert::Infallible>(json_line(&event)),
                Err(_) => break,
            }
            if !stream {
                break;
            }
        }
    };
    let mut response = (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "application/json")],
        Body::from_stream(events),
    )
        .into_response();
    index_headers(&store, &mut response, start, true);
    response
}

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

/// etcd's `httptypes.HTTPError` answer.
fn http_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        json_line(&serde_json::json!({ "message": message })),
    )
        .into_response()
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

/// Adds `X-Etcd-Cluster-ID`, which etcd's v2 handlers send.
fn with_cluster_id(store: &V2Store, mut response: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("{:x}", store.server.cluster_id)) {
        response.headers_mut().insert("x-etcd-cluster-id", v);
    }
    response
}

#[derive(serde::Deserialize)]
struct PeerUrls {
    #[serde(rename = "peerURLs", default)]
    peer_urls: Vec<String>,
}

fn peer_urls(headers: &HeaderMap, body: &[u8]) -> Result<Vec<String>, Response> {
    let json = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !json {
        return Err(http_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Bad Content-Type",
        ));
    }
    match serde_json::from_slice::<PeerUrls>(body) {
        Ok(p) if !p.peer_urls.is_empty() => Ok(p.peer_urls),
        Ok(_) => Err(http_error(
            StatusCode::BAD_REQUEST,
            "peerURLs must not be empty",
        )),
        Err(e) => Err(http_error(StatusCode::BAD_REQUEST, &e.to_string())),
    }
}

/// `/v2/members`: the list (GET), or a new member (POST `{"peerURLs":[…]}`).
async fn members(
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
            let urls = match peer_urls(&headers, &body) {
                Ok(u) => u,
                Err(r) => return r,
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
async fn member(
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
    let result = match method {
        Method::DELETE => store.server.member_remove(id_num).await,
        Method::PUT => match peer_urls(&headers, &body) {
            Ok(urls) => store.server.member_update(id_num, urls).await,
            Err(r) => return r,
        },
        _ => return method_not_allowed("DELETE,PUT"),
    };
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => membership_error(e),
    }
}

/// `/v2/machines`: the members' client URLs.
async fn machines(State(store): State<Arc<V2Store>>, method: Method) -> Response {
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
async fn stats_self(State(store): State<Arc<V2Store>>, method: Method) -> Response {
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
async fn stats_leader(State(store): State<Arc<V2Store>>, method: Method) -> Response {
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
            (
                format!("{:x}", m.id),
                serde_json::json!({
                    "latency": {"current": 0.0, "average": 0.0, "standardDeviation": 0.0,
                                "minimum": 0.0, "maximum": 0.0},
                    "counts": {"fail": 0, "success": 0},
                }),
            )
        })
        .collect();
    let body = LeaderStats {
        leader: format!("{:x}", server.member_id),
        followers,
    };
    stats_json(&store, &body)
}

/// `/v2/stats/store`: the v2 store's operation counters and live watchers.
async fn stats_store(State(store): State<Arc<V2Store>>, method: Method) -> Response {
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
    fn paths_unescape_as_go_unescapes_them() {
        assert_eq!(unescape_path("/foo%20bar"), "/foo bar");
        assert_eq!(unescape_path("/a%2Fb"), "/a/b");
        assert_eq!(unescape_path("/bad%zz"), "/bad%zz");
        assert_eq!(unescape_path("/end%2"), "/end%2");
    }

    #[test]
    fn durations_print_as_go_prints_them() {
        use std::time::Duration;
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(62)), "1m2s");
        assert_eq!(go_duration(Duration::from_secs(3723)), "1h2m3s");
    }
}
