//! etcd's JSON gateway, side by side with a real etcd 3.4: the same requests (curl, as
//! scripts send them) to both, and the JSON answers compared after the fields that differ by
//! nature (ids, terms, sizes) are masked. Streams (watch, lease keep-alive) and the
//! `Authorization` header are checked against oxcd.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use oxcd_testkit::{Member, wait_for};
use serde_json::Value;

/// `curl -X POST <endpoint><path> -d <body>` with extra headers: HTTP status and body.
fn post(endpoint: &str, path: &str, body: &str, headers: &[&str]) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", "POST"])
        .arg(format!("{endpoint}{path}"))
        .args(["-d", body]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.output().expect("curl (Debian's curl package)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("curl's status line");
    (status.parse().unwrap(), body.to_string())
}

/// `value` with what differs between two servers by nature replaced by placeholders.
fn mask(mut value: Value) -> Value {
    const MASKED: &[&str] = &[
        "cluster_id",
        "member_id",
        "raft_term",
        "ID",
        "id",
        "raftIndex",
        "raftAppliedIndex",
        "raftTerm",
        "leader",
        "version",
        "hash",
        "compact_revision",
        "hash_revision",
        "clientURLs",
        "peerURLs",
    ];
    /// Measured sizes, left out altogether: a member that has not measured its database
    /// yet reports 0, which the JSON mapping leaves out.
    const DROPPED: &[&str] = &["dbSize", "dbSizeInUse"];
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.retain(|k, _| !DROPPED.contains(&k.as_str()));
                for (k, field) in map.iter_mut() {
                    if MASKED.contains(&k.as_str()) && !field.is_object() {
                        *field = Value::String("<masked>".into());
                    } else {
                        walk(field);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}

/// An answer as compared: status, and the masked JSON (for a refusal, the gRPC code alone,
/// since Go's and our JSON parsers word their errors differently), or the text of one that
/// is not JSON.
fn shape(status: u16, body: &str, exact_message: bool) -> (u16, Value) {
    let Ok(json) = serde_json::from_str::<Value>(body) else {
        return (status, Value::String(body.to_string()));
    };
    if !exact_message && json.get("code").is_some() {
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        return (
            status,
            serde_json::json!({ "code": json["code"], "keys": keys }),
        );
    }
    (status, mask(json))
}

/// The requests both servers get, in order: (path, body, whether a refusal's message must
/// match word for word).
const STEPS: &[(&str, &str, bool)] = &[
    ("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#, true),
    (
        "/v3/kv/put",
        r#"{"key":"Zm9v","value":"YmF6","prev_kv":true}"#,
        true,
    ),
    ("/v3/kv/range", r#"{"key":"Zm9v"}"#, true),
    (
        "/v3beta/kv/range",
        r#"{"key":"Zm9v","count_only":true}"#,
        true,
    ),
    (
        "/v3/kv/range",
        r#"{"key":"AA==","range_end":"AA==","keys_only":true}"#,
        true,
    ),
    ("/v3/kv/range", r#"{"key":"bm9uZQ=="}"#, true),
    (
        "/v3/kv/txn",
        r#"{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VERSION","version":"2"}],
            "success":[{"request_put":{"key":"dHhu","value":"eWVz"}}],
            "failure":[{"request_range":{"key":"Zm9v"}}]}"#,
        true,
    ),
    (
        "/v3/kv/txn",
        r#"{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"bm8="}],
            "success":[{"request_delete_range":{"key":"Zm9v"}}],
            "failure":[{"request_range":{"key":"dHhu"}}]}"#,
        true,
    ),
    (
        "/v3/kv/deleterange",
        r#"{"key":"dHhu","prev_kv":true}"#,
        true,
    ),
    ("/v3/kv/compaction", r#"{"revision":"3"}"#, true),
    ("/v3/kv/range", r#"{"key":"Zm9v","revision":"2"}"#, true),
    ("/v3/lease/grant", r#"{"TTL":"60"}"#, true),
    ("/v3/kv/lease/leases", "{}", true),
    ("/v3/maintenance/status", "", true),
    ("/v3/cluster/member/list", "{}", true),
    ("/v3/kv/bogus", "{}", true),
    ("/v3/lease/revoke", r#"{"ID":"1"}"#, true),
    ("/v3/kv/put", r#"{"key":""}"#, true),
    ("/v3/kv/range", r#"{"key":"Zm9v""#, false),
    ("/v3/kv/range", r#"{"key":"@@"}"#, false),
];

#[tokio::test]
async fn the_gateway_answers_every_group_as_etcds_does() {
    let etcd = Member::start_etcd();
    let oxcd = Member::start();
    tokio::join!(etcd.client(), oxcd.client());
    let mut diffs = Vec::new();
    for (path, body, exact) in STEPS {
        let (want_status, want) = post(&etcd.endpoint(), path, body, &[]);
        let (got_status, got) = post(&oxcd.endpoint(), path, body, &[]);
        let want = shape(want_status, &want, *exact);
        let got = shape(got_status, &got, *exact);
        if want != got {
            diffs.push(format!(
                "POST {path} {body}\n etcd: {want:?}\n oxcd: {got:?}"
            ));
        }
    }
    crate::assert_no_differences(&diffs);
}

#[tokio::test]
async fn a_gateway_watch_streams_events_while_puts_happen() {
    let m = Member::start();
    m.client().await;
    let mut watch = Command::new("curl")
        .args(["-s", "-N", "-X", "POST"])
        .arg(format!("{}/v3/watch", m.endpoint()))
        .args([
            "-d",
            r#"{"create_request":{"key":"dw==","range_end":"eA=="}}"#,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let created: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(created["result"]["created"], true, "{created}");
    for i in 0..3 {
        let body = format!(
            r#"{{"key":"dw==","value":"{}"}}"#,
            ["MA==", "MQ==", "Mg=="][i]
        );
        let (status, _) = post(&m.endpoint(), "/v3/kv/put", &body, &[]);
        assert_eq!(status, 200);
    }
    let mut values = Vec::new();
    while values.len() < 3 {
        let line: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        for event in line["result"]["events"].as_array().into_iter().flatten() {
            values.push(event["kv"]["value"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(values, ["MA==", "MQ==", "Mg=="]);
    watch.kill().unwrap();
    let _ = watch.wait();
}

/// A watch whose body stays open: a create request sent later on the same body is served
/// when it arrives, as grpc-gateway streams etcd's request bodies.
#[tokio::test]
async fn a_gateway_watch_serves_requests_sent_later_on_the_same_body() {
    let m = Member::start();
    m.client().await;
    let mut call = OpenCall::open(
        &m.endpoint(),
        "/v3/watch",
        r#"{"create_request":{"key":"YQ=="}}"#,
    )
    .await;
    let first = call.next_line().await.expect("a watch answer");
    assert_eq!(first["result"]["created"], true, "{first}");
    // The second watch, sent on the still open body after the first answered.
    call.send(r#"{"create_request":{"key":"Yg=="}}"#).await;
    let second = call.next_line().await.expect("a watch answer");
    assert_eq!(second["result"]["created"], true, "{second}");
    assert_ne!(first["result"]["watch_id"], second["result"]["watch_id"]);
    let (status, _) = post(
        &m.endpoint(),
        "/v3/kv/put",
        r#"{"key":"Yg==","value":"Mg=="}"#,
        &[],
    );
    assert_eq!(status, 200);
    let event = call.next_line().await.expect("a watch event");
    assert_eq!(
        event["result"]["watch_id"], second["result"]["watch_id"],
        "{event}"
    );
    assert_eq!(event["result"]["events"][0]["kv"]["value"], "Mg==");
}

#[tokio::test]
async fn a_gateway_keep_alive_answers_each_request_as_it_arrives_and_ends_with_the_body() {
    let m = Member::start();
    m.client().await;
    let (_, granted) = post(&m.endpoint(), "/v3/lease/grant", r#"{"TTL":"30"}"#, &[]);
    let granted: Value = serde_json::from_str(&granted).unwrap();
    let id = granted["ID"].as_str().unwrap().to_string();
    let request: &'static str = Box::leak(format!(r#"{{"ID":"{id}"}}"#).into_boxed_str());
    let mut call = OpenCall::open(&m.endpoint(), "/v3/lease/keepalive", request).await;
    for _ in 0..3 {
        let answer = call.next_line().await.expect("a keep-alive answer");
        assert_eq!(
            (
                answer["result"]["ID"].as_str(),
                answer["result"]["TTL"].as_str()
            ),
            (Some(id.as_str()), Some("30")),
            "{answer}"
        );
        call.send(request).await;
    }
    call.next_line().await.expect("the last keep-alive answer");
    call.close();
    assert_eq!(
        call.next_line().await,
        None,
        "the stream ends with the request body"
    );
}

/// A streaming gateway call whose request body stays open: requests are sent one at a time
/// on it, the answers read line by line.
struct OpenCall {
    tx: Option<
        tokio::sync::mpsc::Sender<
            Result<hyper::body::Frame<hyper::body::Bytes>, std::convert::Infallible>,
        >,
    >,
    body: hyper::body::Incoming,
    pending: String,
}

impl OpenCall {
    /// POSTs to `path` with `first` as the body's first request, leaving the body open.
    async fn open(endpoint: &str, path: &str, first: &'static str) -> OpenCall {
        use http_body_util::StreamBody;
        let stream = tokio::net::TcpStream::connect(endpoint.trim_start_matches("http://"))
            .await
            .unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        let request = hyper::Request::post(format!("{endpoint}{path}"))
            .body(body)
            .unwrap();
        let frame = hyper::body::Frame::data(hyper::body::Bytes::from(first));
        tx.send(Ok(frame)).await.unwrap();
        let body = sender.send_request(request).await.unwrap().into_body();
        OpenCall {
            tx: Some(tx),
            body,
            pending: String::new(),
        }
    }

    async fn send(&self, json: &'static str) {
        let frame = hyper::body::Frame::data(hyper::body::Bytes::from(json));
        self.tx.as_ref().unwrap().send(Ok(frame)).await.unwrap();
    }

    /// Ends the request body.
    fn close(&mut self) {
        self.tx = None;
    }

    /// The next answer line; `None` once the answer has ended. Waits up to 30 s.
    async fn next_line(&mut self) -> Option<Value> {
        use http_body_util::BodyExt;
        let read = async {
            loop {
                if let Some(i) = self.pending.find('\n') {
                    let line: String = self.pending.drain(..=i).collect();
                    return Some(serde_json::from_str(&line).unwrap());
                }
                let frame = self.body.frame().await?.unwrap();
                if let Ok(data) = frame.into_data() {
                    self.pending.push_str(&String::from_utf8_lossy(&data));
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("an answer (or the end) within 30 s")
    }
}

#[tokio::test]
async fn a_lease_is_kept_alive_through_the_gateway() {
    let m = Member::start();
    m.client().await;
    let (_, granted) = post(&m.endpoint(), "/v3/lease/grant", r#"{"TTL":"30"}"#, &[]);
    let id = serde_json::from_str::<Value>(&granted).unwrap()["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, kept) = post(
        &m.endpoint(),
        "/v3/lease/keepalive",
        &format!(r#"{{"ID":"{id}"}}"#),
        &[],
    );
    assert_eq!(status, 200);
    let kept: Value = serde_json::from_str(kept.lines().next().unwrap()).unwrap();
    assert_eq!(kept["result"]["ID"], id.as_str());
    assert_eq!(kept["result"]["TTL"], "30");
    let (_, ttl) = post(
        &m.endpoint(),
        "/v3/lease/timetolive",
        &format!(r#"{{"ID":"{id}"}}"#),
        &[],
    );
    let ttl: Value = serde_json::from_str(&ttl).unwrap();
    assert_eq!(ttl["grantedTTL"], "30");
}

#[tokio::test]
async fn auth_through_the_gateway_takes_the_authorization_header() {
    let m = Member::start();
    m.client().await;
    let e = m.endpoint();
    for (path, body) in [
        ("/v3/auth/user/add", r#"{"name":"root","password":"pw"}"#),
        ("/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#),
        ("/v3/auth/enable", "{}"),
    ] {
        let (status, answer) = post(&e, path, body, &[]);
        assert_eq!(status, 200, "{path}: {answer}");
    }
    let (status, refused) = post(&e, "/v3/kv/put", r#"{"key":"YQ==","value":"Yg=="}"#, &[]);
    assert_eq!(status, 400);
    let refused: Value = serde_json::from_str(&refused).unwrap();
    assert_eq!(refused["message"], "etcdserver: user name is empty");
    assert_eq!(refused["code"], 3);
    let (status, wrong) = post(
        &e,
        "/v3/auth/authenticate",
        r#"{"name":"root","password":"no"}"#,
        &[],
    );
    assert_eq!(status, 400, "{wrong}");
    let (status, token) = post(
        &e,
        "/v3/auth/authenticate",
        r#"{"name":"root","password":"pw"}"#,
        &[],
    );
    assert_eq!(status, 200);
    let token = serde_json::from_str::<Value>(&token).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let header = format!("Authorization: {token}");
    let (status, put) = post(
        &e,
        "/v3/kv/put",
        r#"{"key":"YQ==","value":"Yg=="}"#,
        &[&header],
    );
    assert_eq!(status, 200, "{put}");
    let (status, bad) = post(
        &e,
        "/v3/kv/range",
        r#"{"key":"YQ=="}"#,
        &["Authorization: forged"],
    );
    assert_eq!(status, 401, "{bad}");
    let got = wait_for(Duration::from_secs(10), "the put to be read", || {
        let (e, header) = (e.clone(), header.clone());
        async move {
            let (_, got) = post(&e, "/v3/kv/range", r#"{"key":"YQ=="}"#, &[&header]);
            serde_json::from_str::<Value>(&got).ok()?["kvs"][0]["value"]
                .as_str()
                .map(str::to_string)
        }
    })
    .await;
    assert_eq!(got, "Yg==");
}

#[tokio::test]
async fn the_pypi_gateway_client_etcd3gw_runs_its_scenario() {
    let m = Member::start();
    m.client().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/etcd3gw_scenario.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .args(["127.0.0.1", &m.client_port.to_string()])
        .output()
        .expect("python3 with etcd3gw (scripts/test installs it from PyPI)");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The status and `Access-Control-Allow-Origin` of `method` on the gateway's put path, sent
/// from `origin`.
fn cors_answer(endpoint: &str, method: &str, origin: &str) -> (u16, Option<String>) {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-D", "-", "-X", method])
        .args(["-H", &format!("Origin: {origin}")])
        .arg(format!("{endpoint}/v3/kv/put"))
        .args(["-d", r#"{"key":"Yw==","value":"dg=="}"#])
        .output()
        .expect("curl");
    let head = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let allow = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("access-control-allow-origin")
            .then(|| value.trim().to_string())
    });
    (status, allow)
}

#[tokio::test]
async fn cors_follows_the_cors_flag_as_etcds_does() {
    let flags = ["--cors", "http://allowed.example:8080"];
    let etcd = Member::start_etcd_with(&flags);
    let oxcd = Member::start_with(&flags);
    tokio::join!(etcd.client(), oxcd.client());
    for (method, origin) in [
        ("POST", "http://allowed.example:8080"),
        ("POST", "http://other.example:8080"),
        ("OPTIONS", "http://allowed.example:8080"),
    ] {
        assert_eq!(
            cors_answer(&oxcd.endpoint(), method, origin),
            cors_answer(&etcd.endpoint(), method, origin),
            "{method} from {origin}"
        );
    }
    // Without the flag, every origin.
    let open = Member::start();
    open.client().await;
    assert_eq!(
        cors_answer(&open.endpoint(), "POST", "http://any.example")
            .1
            .as_deref(),
        Some("*")
    );
}

/// `curl -X POST --data-binary @file`: HTTP status and body.
fn post_file(endpoint: &str, path: &str, file: &std::path::Path) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", "POST"])
        .arg(format!("{endpoint}{path}"))
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("curl's status line");
    (status.parse().unwrap(), body.to_string())
}

#[tokio::test]
async fn oversized_requests_and_other_methods_are_refused_as_etcd_refuses_them() {
    use base64::Engine;
    let etcd = Member::start_etcd();
    let oxcd = Member::start();
    tokio::join!(etcd.client(), oxcd.client());
    let dir = tempfile::tempdir().unwrap();
    // Over the gRPC message limit (1.5 MiB + 512 KiB), and over --max-request-bytes only.
    for size in [3_000_000, 1_600_000] {
        let value = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; size]);
        let file = dir.path().join(format!("put-{size}.json"));
        std::fs::write(&file, format!(r#"{{"key":"Yg==","value":"{value}"}}"#)).unwrap();
        assert_eq!(
            post_file(&oxcd.endpoint(), "/v3/kv/put", &file),
            post_file(&etcd.endpoint(), "/v3/kv/put", &file),
            "a put of {size} bytes"
        );
    }
    // Far over any limit: refused before it is read, with etcd's answer; the size it names
    // is the body's (etcd names the decoded message's), so sizes are left out.
    let value = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; 12_000_000]);
    let file = dir.path().join("put-huge.json");
    std::fs::write(&file, format!(r#"{{"key":"Yg==","value":"{value}"}}"#)).unwrap();
    let without_sizes = |body: String| {
        let mut parts = body.split("larger than max (");
        let mut out = parts.next().unwrap_or_default().to_string();
        for part in parts {
            let rest = part.split_once(')').map_or("", |(_, r)| r);
            out.push_str(&format!("larger than max (N vs. M){rest}"));
        }
        out
    };
    let [ours, theirs] = [&oxcd, &etcd].map(|m| {
        let (status, body) = post_file(&m.endpoint(), "/v3/kv/put", &file);
        (status, without_sizes(body))
    });
    assert_eq!(ours, theirs);
    assert!(ours.1.contains("larger than max (N vs. M)"), "{ours:?}");
    let get = |endpoint: &str| {
        let out = Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}"])
            .arg(format!("{endpoint}/v3/kv/range"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(get(&oxcd.endpoint()), get(&etcd.endpoint()));
}
