//! The client calls and answers many tests share: a failed call's gRPC status, membership
//! changes retried until the cluster is healthy enough, bytes as text, a put's revision, a
//! plain HTTP request. Member processes come from `oxcd_testkit`.

use std::io::{Read, Write};
use std::net::TcpStream;

/// The gRPC code and message of a failed call.
pub fn status(e: etcd_client::Error) -> (tonic::Code, String) {
    match e {
        etcd_client::Error::GRpcStatus(s) => (s.code(), s.message().to_string()),
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

/// etcd's answer to a membership change that `--strict-reconfig-check` refuses because the
/// leader's peers have not all been connected to it for 5 s (right after start, after a
/// change of leader) or some are down.
pub const UNHEALTHY: &str = "etcdserver: unhealthy cluster";

/// Makes the membership change `change` (a MemberAdd, MemberRemove, ...) through a clone of
/// `client`, retrying it while the leader refuses it as an unhealthy cluster, for up to 40 s;
/// panics on any other error.
pub async fn once_healthy<T, F, Fut>(what: &str, client: &etcd_client::Client, mut change: F) -> T
where
    F: FnMut(etcd_client::Client) -> Fut,
    Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    let waited = format!("{what} to be accepted");
    oxcd_testkit::wait_for(std::time::Duration::from_secs(40), &waited, || {
        let attempt = change(client.clone());
        async move {
            match attempt.await {
                Ok(answer) => Some(answer),
                Err(e) => {
                    let (code, message) = status(e);
                    assert_eq!(
                        (code, message.as_str()),
                        (tonic::Code::Unavailable, UNHEALTHY),
                        "{what}"
                    );
                    None
                }
            }
        }
    })
    .await
}

/// Bytes as text, for assertions and messages.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Puts `key` and returns the revision the put created.
pub async fn put(c: &mut etcd_client::Client, key: &str, value: &str) -> i64 {
    c.put(key, value, None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision()
}

/// A plain HTTP/1.1 response: status code, headers (names lowercased) and body.
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP/1.1 request of `path` with `method` on `endpoint` (`http://host:port`).
pub fn http_request(endpoint: &str, method: &str, path: &str) -> HttpResponse {
    let address = endpoint.trim_start_matches("http://");
    let mut conn = TcpStream::connect(address).unwrap();
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1.1 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP/1.1 status line: {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_string(),
    }
}

/// An HTTP/1.1 GET of `path` on `endpoint`: status code and body.
pub fn http_get(endpoint: &str, path: &str) -> (u16, String) {
    let response = http_request(endpoint, "GET", path);
    (response.status, response.body)
}
