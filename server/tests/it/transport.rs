//! The client port: gRPC and plain HTTP served by one listener, as etcd's port does.

use std::io::{Read, Write};
use std::net::TcpStream;

use oxcd_testkit::Member;

use crate::calls::put;

/// An HTTP/1.1 GET of `path` on `endpoint` (`http://host:port`): status code and body.
fn http_get(endpoint: &str, path: &str) -> (u16, String) {
    let address = endpoint.trim_start_matches("http://");
    let mut conn = TcpStream::connect(address).unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP/1.1 status line: {head:?}"));
    (status, body.to_string())
}

#[tokio::test]
async fn grpc_and_http_share_the_client_port_and_unknown_paths_answer_as_etcd() {
    let member = Member::start();
    let etcd = Member::start_etcd();
    let mut client = member.client().await;
    etcd.client().await;

    let ours = http_get(&member.endpoint(), "/no/such/path");
    let theirs = http_get(&etcd.endpoint(), "/no/such/path");
    assert_eq!(ours, theirs);
    assert_eq!(ours, (404, "404 page not found\n".to_string()));

    // gRPC on the same listener, on the connection opened before and on a new one.
    let revision = put(&mut client, "k", "v").await;
    let mut fresh = member.client().await;
    let got = fresh.get("k", None).await.unwrap();
    assert_eq!(got.kvs()[0].value(), b"v");
    assert_eq!(got.kvs()[0].mod_revision(), revision);
}
