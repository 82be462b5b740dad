//! `/v2/keys/…`: requests read as etcd's `parseKeyRequest` reads them, answered from the
//! v2 store with etcd's headers and errors.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};

use crate::v2::error::{
    INDEX_NAN, INVALID_FIELD, PREV_VALUE_REQUIRED, REFRESH_TTL_REQUIRED, REFRESH_VALUE, TTL_NAN,
    V2Error, V2Result,
};
use crate::v2::{Event, V2Store, WriteOptions, now_ns};

use super::{authorize, json_line, method_not_allowed, with_cluster_id};
use crate::proto::authpb::permission::Type as PermType;

pub(super) const KEYS_PREFIX: &str = "/v2/keys";

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

/// The headers a keys answer carries: the cluster and the store index, and for answers
/// that are not errors, raft's applied index and term.
fn index_headers(store: &V2Store, response: Response, etcd_index: i64, raft: bool) -> Response {
    let mut response = with_cluster_id(store, response);
    let headers = response.headers_mut();
    headers.insert("x-etcd-index", HeaderValue::from(etcd_index));
    if raft {
        let metrics = store.server.raft.metrics();
        let m = openraft::async_runtime::WatchReceiver::borrow_watched(&metrics);
        let raft_index = m.last_applied.map(|l| l.index).unwrap_or(0);
        headers.insert("x-raft-index", HeaderValue::from(raft_index));
        headers.insert("x-raft-term", HeaderValue::from(m.current_term));
    }
    response
}

fn v2_error(store: &V2Store, e: V2Error) -> Response {
    let response = (
        e.status(),
        [(http::header::CONTENT_TYPE, "application/json")],
        json_line(&e),
    )
        .into_response();
    index_headers(store, response, e.index, false)
}

pub(super) async fn keys(
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
    let perm = match request.method {
        Method::GET | Method::HEAD => PermType::Read,
        _ => PermType::Write,
    };
    if let Err(e) = authorize(&store, &headers, perm, false).await {
        return v2_error(&store, e);
    }
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
            let response = (
                status,
                [(http::header::CONTENT_TYPE, "application/json")],
                json_line(&event),
            )
                .into_response();
            index_headers(&store, response, index, true)
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
    let response = (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "application/json")],
        Body::from_stream(events),
    )
        .into_response();
    index_headers(&store, response, start, true)
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
}
