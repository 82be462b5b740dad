//! The v2 API (`--enable-v2`) side by side with a real etcd 3.4 started with `--enable-v2`:
//! Debian's etcdctl with `ETCDCTL_API=2` and curl get the same answers from both once ids,
//! indexes and times are masked; TTLs expire nodes and whole directories; `wait=true` and
//! `etcdctl watch`/`exec-watch` hear writes from other processes; the 1000-event history
//! window and thousands of concurrent long-polls behave as in etcd.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use oxcd_testkit::{Member, wait_for};
use serde_json::Value;

const ETCDCTL: &str = "/usr/bin/etcdctl";

/// `etcdctl` (v2) against `endpoint`: its output (stdout then stderr) and exit code.
fn etcdctl2(endpoint: &str, args: &[&str]) -> (String, i32) {
    let out = Command::new(ETCDCTL)
        .env("ETCDCTL_API", "2")
        .args(["--endpoints", endpoint])
        .args(args)
        .output()
        .expect("etcdctl (Debian's etcd-client package)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (text, out.status.code().unwrap_or(-1))
}

/// `text` with what differs between two servers by nature masked: member ids (long hex
/// words) and every number (indexes, ports, TTLs, times).
fn mask(text: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let hex_id = word.len() >= 10
            && word.chars().all(|c| c.is_ascii_hexdigit())
            && word.chars().any(|c| c.is_ascii_digit());
        if hex_id {
            out.push_str("ID");
        } else {
            let mut in_digits = false;
            for c in word.chars() {
                if c.is_ascii_digit() {
                    if !in_digits {
                        out.push('N');
                    }
                    in_digits = true;
                } else {
                    out.push(c);
                    in_digits = false;
                }
            }
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

fn start_pair() -> (Member, Member) {
    let etcd = Member::start_etcd_with(&["--enable-v2"]);
    let oxcd = Member::start_with(&["--enable-v2"]);
    (etcd, oxcd)
}

async fn ready(members: &[&Member]) {
    for m in members {
        m.client().await;
    }
}

/// The etcdctl v2 commands both servers run, in order.
const ETCDCTL_STEPS: &[&[&str]] = &[
    &["set", "/message1", "Book1"],
    &["get", "/message1"],
    &["mkdir", "/foo-data"],
    &["set", "/foo-directory/foo-key", "somekey"],
    &["ls", "/foo-directory", "--recursive"],
    &["ls", "--sort", "--recursive", "/"],
    &["-o", "json", "get", "/foo-directory/foo-key"],
    &["-o", "extended", "get", "/message1"],
    &["rm", "/message1"],
    &["get", "/message1"],
    &["rmdir", "/foo-data"],
    &["mk", "/foo-directory/foo-key", "x"],
    &["mk", "/fresh", "v"],
    &["update", "/fresh", "v2"],
    &["update", "/missing", "v2"],
    &["set", "/cas", "a"],
    &["set", "/cas", "b", "--swap-with-value", "a"],
    &["set", "/cas", "c", "--swap-with-value", "zzz"],
    &["rm", "/cas", "--with-value", "c"],
    &["rm", "/cas", "--with-value", "b"],
    &["rmdir", "/foo-directory"],
    &["rm", "/foo-directory"],
    &["set", "/foo-directory/foo-key/deeper", "x"],
    &["rm", "/foo-directory", "--recursive"],
    &["mkdir", "/hidden"],
    &["set", "/hidden/_secret", "s"],
    &["set", "/hidden/shown", "s"],
    &["ls", "/hidden"],
    &["get", "/hidden/_secret"],
    &["rm", "/", "--recursive"],
    &["member", "list"],
    &["cluster-health"],
];

#[tokio::test]
async fn etcdctl_v2_commands_answer_as_etcds_do() {
    let (etcd, oxcd) = start_pair();
    ready(&[&etcd, &oxcd]).await;
    let mut diffs = Vec::new();
    for args in ETCDCTL_STEPS {
        let want = etcdctl2(&etcd.endpoint(), args);
        let got = etcdctl2(&oxcd.endpoint(), args);
        let (want, got) = ((mask(&want.0), want.1), (mask(&got.0), got.1));
        if want != got {
            diffs.push(format!("etcdctl {args:?}\n etcd: {want:?}\n oxcd: {got:?}"));
        }
    }
    crate::assert_no_differences(&diffs);
}

/// Polls `etcdctl get key` until it fails with "Key not found", as a TTL's expiry makes it.
async fn wait_gone(endpoint: &str, key: &str) -> String {
    wait_for(Duration::from_secs(20), "the node to expire", || async {
        let (out, code) = etcdctl2(endpoint, &["get", key]);
        (code != 0 && out.contains("100: Key not found")).then_some(out)
    })
    .await
}

#[tokio::test]
async fn ttls_expire_keys_and_whole_directories() {
    let (etcd, oxcd) = start_pair();
    ready(&[&etcd, &oxcd]).await;
    for m in [&etcd, &oxcd] {
        let ep = m.endpoint();
        let (out, code) = etcdctl2(&ep, &["set", "/foo", "x", "--ttl", "2"]);
        assert_eq!((out.as_str(), code), ("x\n", 0));
        let (json, _) = etcdctl2(&ep, &["-o", "json", "get", "/foo"]);
        let node = &serde_json::from_str::<Value>(json.trim()).unwrap()["node"];
        assert!(
            node["ttl"].as_i64().is_some_and(|t| (1..=2).contains(&t)),
            "{json}"
        );
        assert!(node["expiration"].is_string(), "{json}");
        let gone = wait_gone(&ep, "/foo").await;
        assert!(
            gone.starts_with("Error:  100: Key not found (/foo)"),
            "{gone}"
        );

        etcdctl2(&ep, &["mkdir", "/dir"]);
        etcdctl2(&ep, &["set", "/dir/a", "1"]);
        etcdctl2(&ep, &["set", "/dir/sub/b", "2"]);
        let (out, code) = etcdctl2(&ep, &["updatedir", "/dir", "--ttl", "3"]);
        assert_eq!(code, 0, "{out}");
        let (kept, _) = etcdctl2(&ep, &["get", "/dir/a"]);
        assert_eq!(kept, "1\n");
        wait_gone(&ep, "/dir/sub/b").await;
        let (out, code) = etcdctl2(&ep, &["ls", "/dir"]);
        assert!(code != 0 && out.contains("100: Key not found"), "{out}");
        let (out, code) = etcdctl2(&ep, &["get", "/dir/a"]);
        assert!(code != 0 && out.contains("100: Key not found"), "{out}");

        // A refresh keeps the value and pushes the expiry out; clearing the TTL makes the
        // node permanent.
        etcdctl2(&ep, &["set", "/kept", "v", "--ttl", "2"]);
        let refreshed = curl(
            &ep,
            "PUT",
            "/v2/keys/kept",
            "ttl=600&refresh=true&prevExist=true",
        );
        assert_eq!(refreshed.0, 200, "{refreshed:?}");
        let cleared = curl(&ep, "PUT", "/v2/keys/kept", "value=w&ttl=&prevExist=true");
        assert_eq!(cleared.0, 200, "{cleared:?}");
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (out, _) = etcdctl2(&ep, &["-o", "json", "get", "/kept"]);
        let node = &serde_json::from_str::<Value>(out.trim()).unwrap()["node"];
        assert_eq!(
            (node["value"].as_str(), node.get("ttl")),
            (Some("w"), None),
            "{out}"
        );
    }
}

#[tokio::test]
async fn watch_and_exec_watch_hear_writes_from_another_process() {
    let (etcd, oxcd) = start_pair();
    ready(&[&etcd, &oxcd]).await;
    for m in [&etcd, &oxcd] {
        let ep = m.endpoint();
        etcdctl2(&ep, &["mkdir", "/foo-data"]);
        let mut watch = Command::new(ETCDCTL)
            .env("ETCDCTL_API", "2")
            .args(["--endpoints", &ep, "watch", "/foo-data", "--recursive"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out_file = m.dir().join("exec-watch.out");
        let mut exec = Command::new(ETCDCTL)
            .env("ETCDCTL_API", "2")
            .args([
                "--endpoints",
                &ep,
                "exec-watch",
                "--recursive",
                "/foo-data",
                "--",
            ])
            .args(["sh", "-c"])
            .arg(format!(
                "echo \"$ETCD_WATCH_ACTION $ETCD_WATCH_KEY $ETCD_WATCH_VALUE\" >> {}",
                out_file.display()
            ))
            .spawn()
            .unwrap();
        // Both watchers must be waiting before the write: write until they report it.
        let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
        let writer = {
            let ep = ep.clone();
            std::thread::spawn(move || {
                for i in 0..40 {
                    etcdctl2(&ep, &["set", "/foo-data/x", &format!("hello{i}")]);
                    std::thread::sleep(Duration::from_millis(250));
                }
            })
        };
        // `watch --recursive` prints the action and key, then the value.
        let header = lines.next().unwrap().unwrap();
        assert_eq!(header, "[set] /foo-data/x");
        let line = lines.next().unwrap().unwrap();
        assert!(line.starts_with("hello"), "watch printed {line:?}");
        let executed = wait_for(Duration::from_secs(20), "exec-watch to run", || async {
            std::fs::read_to_string(&out_file)
                .ok()
                .filter(|s| !s.is_empty())
        })
        .await;
        assert!(executed.starts_with("set /foo-data/x hello"), "{executed}");
        watch.kill().unwrap();
        exec.kill().unwrap();
        let _ = (watch.wait(), exec.wait());
        writer.join().unwrap();
    }
}

/// `curl -X <method> <endpoint><path> [-d data]`: status, body and headers.
fn curl(endpoint: &str, method: &str, path: &str, data: &str) -> (u16, String, String) {
    curl_with(endpoint, method, path, data, &[])
}

/// [`curl`] with more of curl's arguments (credentials, headers).
fn curl_with(
    endpoint: &str,
    method: &str,
    path: &str,
    data: &str,
    extra: &[&str],
) -> (u16, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let mut cmd = Command::new("curl");
    cmd.args(extra);
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-D"])
        .arg(&headers)
        .args(["-X", method])
        .arg(format!("{endpoint}{path}"));
    if !data.is_empty() {
        cmd.args(["-d", data]);
    }
    let out = cmd.output().expect("curl (Debian's curl package)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("curl's status line");
    let headers = std::fs::read_to_string(headers).unwrap_or_default();
    (status.parse().unwrap(), body.to_string(), headers)
}

/// An answer as compared: status, the masked body, and which of etcd's v2 headers it had.
fn shape(answer: &(u16, String, String)) -> (u16, String, Vec<&'static str>) {
    let headers = [
        "X-Etcd-Index",
        "X-Raft-Index",
        "X-Raft-Term",
        "Content-Type: application/json",
    ]
    .into_iter()
    .filter(|h| {
        answer
            .2
            .to_ascii_lowercase()
            .contains(&h.to_ascii_lowercase())
    })
    .collect();
    (answer.0, mask(&answer.1), headers)
}

/// The curl requests both servers get: (method, path, form data).
const CURL_STEPS: &[(&str, &str, &str)] = &[
    ("PUT", "/v2/keys/message", "value=Hello world"),
    ("GET", "/v2/keys/message", ""),
    ("PUT", "/v2/keys/message", "value=Hello etcd"),
    ("DELETE", "/v2/keys/message", ""),
    ("GET", "/v2/keys/message", ""),
    ("PUT", "/v2/keys/foo?ttl=20", "value=bar"),
    ("PUT", "/v2/keys/foo?prevExist=false", "value=three"),
    ("PUT", "/v2/keys/new?prevExist=false", "value=three"),
    ("PUT", "/v2/keys/new?prevValue=two", "value=four"),
    ("PUT", "/v2/keys/new?prevValue=three", "value=four"),
    ("PUT", "/v2/keys/new?prevIndex=1", "value=five"),
    ("DELETE", "/v2/keys/new?prevValue=three", ""),
    ("DELETE", "/v2/keys/new?prevValue=four", ""),
    ("POST", "/v2/keys/queue", "value=Job1"),
    ("PUT", "/v2/keys/dir?dir=true", ""),
    ("PUT", "/v2/keys/dir?dir=true", ""),
    ("GET", "/v2/keys/dir", ""),
    ("DELETE", "/v2/keys/dir", ""),
    ("DELETE", "/v2/keys/dir?dir=true", ""),
    ("GET", "/v2/keys/?recursive=true&sorted=true", ""),
    ("GET", "/v2/keys/foo/bar", ""),
    ("PUT", "/v2/keys/foo/bar", "value=x"),
    ("DELETE", "/v2/keys/", ""),
    ("PUT", "/v2/keys/x?ttl=abc", "value=1"),
    ("PUT", "/v2/keys/x?prevIndex=abc", "value=1"),
    ("PUT", "/v2/keys/x?wait=true", "value=1"),
    ("PUT", "/v2/keys/x?prevValue=", "value=1"),
    ("PUT", "/v2/keys/x?refresh=true", "value=1"),
    ("PUT", "/v2/keys/x?refresh=true&ttl=5", ""),
    ("GET", "/v2/keys/x?recursive=maybe", ""),
    ("PATCH", "/v2/keys/x", ""),
    ("GET", "/v2/stats/leader", ""),
    ("GET", "/v2/nothing", ""),
];

#[tokio::test]
async fn curl_examples_get_etcds_json_shapes() {
    let (etcd, oxcd) = start_pair();
    ready(&[&etcd, &oxcd]).await;
    let mut diffs = Vec::new();
    for (method, path, data) in CURL_STEPS {
        let want = shape(&curl(&etcd.endpoint(), method, path, data));
        let got = shape(&curl(&oxcd.endpoint(), method, path, data));
        if want != got {
            diffs.push(format!(
                "{method} {path} {data}\n etcd: {want:?}\n oxcd: {got:?}"
            ));
        }
    }
    crate::assert_no_differences(&diffs);
}

/// A `wait=true` GET in the background, its answer read once a later PUT arrives.
#[tokio::test]
async fn a_long_poll_is_answered_by_a_later_put() {
    let (etcd, oxcd) = start_pair();
    ready(&[&etcd, &oxcd]).await;
    let mut answers = Vec::new();
    for m in [&etcd, &oxcd] {
        let ep = m.endpoint();
        let created = curl(&ep, "PUT", "/v2/keys/polled", "value=1");
        let waiting = {
            let ep = ep.clone();
            std::thread::spawn(move || curl(&ep, "GET", "/v2/keys/polled?wait=true", ""))
        };
        let waiting_dir = {
            let ep = ep.clone();
            std::thread::spawn(move || curl(&ep, "GET", "/v2/keys/?wait=true&recursive=true", ""))
        };
        std::thread::sleep(Duration::from_millis(500));
        curl(&ep, "PUT", "/v2/keys/polled", "value=2");
        let answer = waiting.join().unwrap();
        let dir_answer = waiting_dir.join().unwrap();
        // From history: the event at the index the first PUT got.
        let index: Value = serde_json::from_str(&created.1).unwrap();
        let index = index["node"]["modifiedIndex"].as_i64().unwrap();
        let past = curl(
            &ep,
            "GET",
            &format!("/v2/keys/polled?wait=true&waitIndex={index}"),
            "",
        );
        answers.push((shape(&answer), shape(&dir_answer), shape(&past)));
        let json: Value = serde_json::from_str(&answer.1).unwrap();
        assert_eq!(json["action"], "set");
        assert_eq!(json["node"]["value"], "2");
        assert_eq!(json["prevNode"]["value"], "1");
    }
    assert_eq!(answers[0], answers[1]);
}

#[tokio::test]
async fn a_wait_index_older_than_the_last_1000_events_is_cleared() {
    let m = Member::start_with(&["--enable-v2"]);
    m.client().await;
    let ep = m.endpoint();
    let first: Value = serde_json::from_str(&curl(&ep, "PUT", "/v2/keys/h", "value=0").1).unwrap();
    let first = first["node"]["modifiedIndex"].as_i64().unwrap();
    // 1010 more events, from a few writers at once.
    let writers: Vec<_> = (0..5)
        .map(|w| {
            let ep = ep.clone();
            std::thread::spawn(move || {
                // One curl process, many requests over one connection.
                let urls: Vec<String> = (0..202)
                    .map(|i| format!("{ep}/v2/keys/w{w}?value={i}"))
                    .collect();
                let status = Command::new("curl")
                    .args(["-s", "-X", "PUT"])
                    .args(&urls)
                    .stdout(Stdio::null())
                    .status()
                    .unwrap();
                assert!(status.success());
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let (status, body, _) = curl(
        &ep,
        "GET",
        &format!("/v2/keys/h?wait=true&waitIndex={first}"),
        "",
    );
    assert_eq!(status, 400, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["errorCode"], 401, "{body}");
    assert_eq!(
        error["message"],
        "The event in requested index is outdated and cleared"
    );
    let cause = error["cause"].as_str().unwrap();
    assert!(
        cause.starts_with("the requested history has been cleared [")
            && cause.ends_with(&format!("/{first}]")),
        "{cause}"
    );
    // The newest events are still there.
    let (status, body, _) = curl(&ep, "GET", "/v2/keys/w0?wait=true&waitIndex=1", "");
    assert_eq!(status, 400, "{body}");
    let current: i64 = {
        let (_, body, headers) = curl(&ep, "GET", "/v2/keys/w0", "");
        let _ = body;
        headers
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("x-etcd-index: ")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap()
    };
    let (status, body, _) = curl(
        &ep,
        "GET",
        &format!("/v2/keys/w0?wait=true&waitIndex={}", current - 50),
        "",
    );
    assert_eq!(status, 200, "{body}");
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["node"]["key"], "/w0");

    // A waitIndex in the future waits for the write that reaches it.
    let future = current + 3;
    let waiting = {
        let ep = ep.clone();
        std::thread::spawn(move || {
            curl(
                &ep,
                "GET",
                &format!("/v2/keys/f?wait=true&waitIndex={future}"),
                "",
            )
        })
    };
    for i in 1..=3 {
        assert_eq!(
            curl(&ep, "PUT", "/v2/keys/f", &format!("value={i}")).0 / 100,
            2
        );
    }
    let (status, body, _) = waiting.join().unwrap();
    assert_eq!(status, 200, "{body}");
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["node"]["value"], "3", "{body}");
    assert_eq!(event["node"]["modifiedIndex"], future, "{body}");
}

/// Thousands of idle long-polls on one HTTP/2 connection: the member keeps serving, counts
/// them as watchers, answers the one a write concerns, and forgets the rest once the client
/// goes away.
#[tokio::test]
async fn ten_thousand_long_polls_end_when_their_client_goes_away() {
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;
    const POLLS: usize = 10_000;
    let m = Member::start_with(&["--enable-v2"]);
    m.client().await;
    let ep = m.endpoint();
    let stream = tokio::net::TcpStream::connect(ep.trim_start_matches("http://"))
        .await
        .unwrap();
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let connection = tokio::spawn(connection);
    let mut polls = tokio::task::JoinSet::new();
    for i in 0..POLLS {
        let mut sender = sender.clone();
        let uri = format!("{ep}/v2/keys/poll/{i}?wait=true");
        polls.spawn(async move {
            sender.ready().await.ok()?;
            let request = hyper::Request::get(uri)
                .body(Empty::<Bytes>::new())
                .unwrap();
            let response = sender.send_request(request).await.ok()?;
            let body = response.into_body().collect().await.ok()?.to_bytes();
            Some((i, String::from_utf8_lossy(&body).into_owned()))
        });
    }
    let watchers = |ep: String| async move {
        let (_, body, _) = curl(&ep, "GET", "/v2/stats/store", "");
        serde_json::from_str::<Value>(&body).unwrap()["watchers"]
            .as_u64()
            .unwrap()
    };
    let resident = |ep: String| async move {
        let (_, body, _) = curl(&ep, "GET", "/metrics", "");
        body.lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_default()
    };
    let before = resident(ep.clone()).await;
    wait_for(
        Duration::from_secs(120),
        "every long-poll to be waiting",
        || {
            let ep = ep.clone();
            async move { (watchers(ep).await as usize >= POLLS).then_some(()) }
        },
    )
    .await;
    // Reported, not asserted: memory is measured, not bounded by a test.
    let during = resident(ep.clone()).await;
    eprintln!(
        "resident memory: {:.0} MiB idle, {:.0} MiB with {POLLS} long-polls waiting",
        before / 1048576.0,
        during / 1048576.0
    );
    // The member still serves, and a write answers exactly the poll it concerns.
    let (status, _, _) = curl(&ep, "PUT", "/v2/keys/poll/7", "value=seven");
    assert_eq!(status, 201);
    let (i, body) = polls.join_next().await.unwrap().unwrap().unwrap();
    assert_eq!(i, 7);
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["node"]["value"], "seven");
    // The client goes away: every other poll ends on the member.
    drop(sender);
    polls.abort_all();
    connection.abort();
    wait_for(
        Duration::from_secs(60),
        "the abandoned long-polls to end",
        || {
            let ep = ep.clone();
            async move { (watchers(ep).await == 0).then_some(()) }
        },
    )
    .await;
    let (status, _, _) = curl(&ep, "GET", "/v2/keys/poll/7", "");
    assert_eq!(status, 200);
}

/// `etcdctl` (v3) against `endpoint`, which must succeed.
fn etcdctl3(endpoint: &str, args: &[&str]) {
    let out = Command::new(ETCDCTL)
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn with_auth_on_the_v2_api_takes_basic_credentials_and_v3_tokens() {
    let m = Member::start_with(&["--enable-v2"]);
    m.client().await;
    let ep = m.endpoint();
    assert_eq!(curl(&ep, "PUT", "/v2/keys/secret", "value=s").0, 201);
    etcdctl3(&ep, &["user", "add", "root:rootpw"]);
    etcdctl3(&ep, &["role", "add", "reader"]);
    etcdctl3(
        &ep,
        &[
            "role",
            "grant-permission",
            "reader",
            "read",
            "/_oxcd/v2/",
            "--prefix=true",
        ],
    );
    etcdctl3(&ep, &["user", "add", "alice:alicepw"]);
    etcdctl3(&ep, &["user", "grant-role", "alice", "reader"]);
    etcdctl3(&ep, &["auth", "enable"]);

    let refused = curl(&ep, "GET", "/v2/keys/secret", "");
    assert_eq!(refused.0, 401, "{refused:?}");
    let error: Value = serde_json::from_str(&refused.1).unwrap();
    assert_eq!(error["errorCode"], 110);
    assert_eq!(error["message"], "The request requires user authentication");
    let as_root = curl_with(&ep, "GET", "/v2/keys/secret", "", &["-u", "root:rootpw"]);
    assert_eq!(as_root.0, 200, "{as_root:?}");
    let alice = ["-u", "alice:alicepw"];
    assert_eq!(curl_with(&ep, "GET", "/v2/keys/secret", "", &alice).0, 200);
    assert_eq!(
        curl_with(&ep, "PUT", "/v2/keys/secret", "value=x", &alice).0,
        401
    );
    let wrong = ["-u", "alice:wrong"];
    assert_eq!(curl_with(&ep, "GET", "/v2/keys/secret", "", &wrong).0, 401);

    // A v3 token from the gateway's Authenticate works too.
    let login = Command::new("curl")
        .args(["-s", "-X", "POST", &format!("{ep}/v3/auth/authenticate")])
        .args(["-d", r#"{"name":"root","password":"rootpw"}"#])
        .output()
        .unwrap();
    let login: Value = serde_json::from_slice(&login.stdout).unwrap();
    let header = format!("Authorization: {}", login["token"].as_str().unwrap());
    let with_token = curl_with(&ep, "PUT", "/v2/keys/secret", "value=t", &["-H", &header]);
    assert_eq!(with_token.0, 200, "{with_token:?}");

    // Membership changes are root's alone.
    let add = curl_with(
        &ep,
        "POST",
        "/v2/members",
        r#"{"peerURLs":["http://127.0.0.1:1"]}"#,
        &["-H", "Content-Type: application/json"],
    );
    assert_eq!(add.0, 401, "{add:?}");
    assert_eq!(add.1.trim(), r#"{"message":"Insufficient credentials"}"#);
}
