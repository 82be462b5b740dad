//! The client calls and answers many tests share: a failed call's gRPC status, bytes as
//! text, a put's revision. Member processes come from `oxcd_testkit`.

/// The gRPC code and message of a failed call.
pub fn status(e: etcd_client::Error) -> (tonic::Code, String) {
    match e {
        etcd_client::Error::GRpcStatus(s) => (s.code(), s.message().to_string()),
        other => panic!("expected a gRPC status, got {other:?}"),
    }
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
