//! The client port: gRPC and plain HTTP served by one listener, as etcd's port does.

use oxcd_testkit::Member;

use crate::calls::{http_get, put};

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
