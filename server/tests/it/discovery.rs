//! `--discovery`: members bootstrap a new cluster through etcd's v2 discovery protocol,
//! against a discovery token kept in another oxcd member's v2 keys API; a member too many
//! is refused as etcd refuses it, and so is a real etcd 3.4 pointed at the same token. Under
//! `--discovery-fallback proxy` (the default) both become etcd's v2 proxy instead, and so
//! do both with `--proxy on|readonly`.

use std::process::Command;
use std::time::Duration;

use oxcd_testkit::{Launch, Member, binary};

/// `curl -X PUT <url> -d <data>`: the HTTP status.
fn put(url: &str, data: &str) -> u16 {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "PUT",
            url,
            "-d",
            data,
        ])
        .output()
        .expect("curl (Debian's curl package)");
    String::from_utf8_lossy(&out.stdout).parse().unwrap()
}

/// `curl <args>`: the HTTP status and the body.
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl (Debian's curl package)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.parse().unwrap_or(0), body.to_string())
}

fn discovering(name: &str, dir: &std::path::Path, binary: std::path::PathBuf, url: &str) -> Member {
    // etcd 3.4 falls back to its v2 proxy by default; both are told to exit instead.
    discovering_with(name, dir, binary, url, "exit")
}

fn discovering_with(
    name: &str,
    dir: &std::path::Path,
    binary: std::path::PathBuf,
    url: &str,
    fallback: &str,
) -> Member {
    // A proxy asks for the membership again every second: it may first ask before every
    // member has published its client URLs.
    let flags = [
        "--discovery",
        url,
        "--discovery-fallback",
        fallback,
        "--enable-v2",
        "--proxy-refresh-interval",
        "1000",
    ]
    .map(String::from);
    let mut m = Member::new(name, dir, Launch::new(binary, &flags));
    m.spawn().expect("spawn the member");
    m
}

#[tokio::test]
async fn three_members_bootstrap_through_a_discovery_token_and_a_fourth_is_refused() {
    let service = Member::start_with(&["--enable-v2"]);
    service.client().await;
    let url = format!(
        "{}/v2/keys/_etcd/registry/6c007a14875d53d9",
        service.endpoint()
    );
    assert_eq!(put(&format!("{url}/_config/size"), "value=3"), 201);

    let dir = tempfile::tempdir().unwrap();
    let oxcd = binary::oxcd().unwrap();
    let mut members: Vec<Member> = (0..3)
        .map(|i| discovering(&format!("d{i}"), dir.path(), oxcd.clone(), &url))
        .collect();
    let mut clients = Vec::new();
    for m in &members {
        clients.push(m.client().await);
    }
    // One cluster of the three: every member lists the same three, under one cluster id.
    let mut cluster_ids = Vec::new();
    for c in &mut clients {
        let list = c.member_list().await.unwrap();
        let mut names: Vec<&str> = list.members().iter().map(|m| m.name()).collect();
        names.sort();
        assert_eq!(names, ["d0", "d1", "d2"]);
        cluster_ids.push(list.header().unwrap().cluster_id());
    }
    assert!(
        cluster_ids.iter().all(|id| *id == cluster_ids[0]),
        "{cluster_ids:?}"
    );
    clients[0].put("discovered", "yes", None).await.unwrap();
    let got = clients[2].get("discovered", None).await.unwrap();
    assert_eq!(got.kvs()[0].value(), b"yes");

    // The leader's v2 stats count its calls to each follower; the others are not leaders.
    let endpoints: Vec<String> = members.iter().map(Member::endpoint).collect();
    let stats_of = |endpoint: &String| -> (u16, serde_json::Value) {
        let out = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}"])
            .arg(format!("{endpoint}/v2/stats/leader"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.parse().unwrap(), serde_json::from_str(body).unwrap())
    };
    // Asked one after another: a leader change in between would show two or none, so ask again.
    let stats = oxcd_testkit::wait_for(Duration::from_secs(30), "one leader's stats", || {
        let stats: Vec<_> = endpoints.iter().map(stats_of).collect();
        async move { (stats.iter().filter(|(s, _)| *s == 200).count() == 1).then_some(stats) }
    })
    .await;
    let leaders: Vec<&serde_json::Value> = stats
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, v)| v)
        .collect();
    let followers = leaders[0]["followers"].as_object().unwrap();
    assert_eq!(followers.len(), 2, "{stats:?}");
    for f in followers.values() {
        assert!(f["counts"]["success"].as_u64().unwrap() > 0, "{stats:?}");
        let ms = |field: &str| f["latency"][field].as_f64().unwrap();
        assert!(ms("maximum") > 0.0, "{stats:?}");
        assert!(
            ms("minimum") <= ms("average") && ms("average") <= ms("maximum"),
            "{stats:?}"
        );
    }
    for (status, body) in stats.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(
            (*status, body["message"].as_str()),
            (403, Some("not current leader"))
        );
    }

    // A fourth member finds the cluster full, and so does etcd itself.
    let mut fourth = discovering("d3", dir.path(), oxcd, &url);
    let code = fourth.wait_exit(Duration::from_secs(60));
    assert!(
        code.is_some_and(|c| c != 0),
        "exit code {code:?}\n{}",
        fourth.log()
    );
    assert!(
        fourth.log().contains("discovery: cluster is full"),
        "{}",
        fourth.log()
    );
    let mut etcd = discovering("e3", dir.path(), binary::etcd(), &url);
    let code = etcd.wait_exit(Duration::from_secs(60));
    assert!(
        code.is_some_and(|c| c != 0),
        "exit code {code:?}\n{}",
        etcd.log()
    );
    assert!(etcd.log().contains("cluster is full"), "{}", etcd.log());

    let mut proxies = members_too_many_become_proxies(dir.path(), &url, &members).await;
    readonly_proxies_forward_only_gets(dir.path(), &members).await;

    // A restarted member comes back from its data, and a restarted proxy from its cluster
    // file, without asking the service again.
    drop(service);
    members[0].stop();
    members[0].spawn().unwrap();
    let mut c = members[0].client().await;
    let got = c.get("discovered", None).await.unwrap();
    assert_eq!(got.kvs()[0].value(), b"yes");
    proxies[0].stop();
    proxies[0].spawn().unwrap();
    let proxied = format!("{}/v2/keys/proxied", proxies[0].endpoint());
    let (status, body) =
        oxcd_testkit::wait_for(Duration::from_secs(30), "the restarted proxy", || {
            let answer = curl(&[&proxied]);
            async move { (answer.0 == 200).then_some(answer) }
        })
        .await;
    assert!(body.contains("\"value\":\"two\""), "{status} {body}");
}

/// The members' client URLs a proxy at `endpoint` forwards to, once it knows `n`.
async fn proxy_endpoints(endpoint: &str, n: usize, log: impl Fn() -> String) -> Vec<String> {
    let url = format!("{endpoint}/v2/config/local/proxy");
    oxcd_testkit::wait_for(
        Duration::from_secs(30),
        &format!("a proxy at {endpoint}"),
        || {
            let (status, body) = curl(&[&url]);
            let log = log();
            async move {
                let v: serde_json::Value = serde_json::from_str(&body).ok()?;
                let mut endpoints: Vec<String> = v["endpoints"]
                    .as_array()?
                    .iter()
                    .filter_map(|e| e.as_str().map(String::from))
                    .collect();
                endpoints.sort();
                if status != 200 || endpoints.len() != n {
                    eprintln!("{status} {body}\n{}", oxcd_testkit::logs::tail(&log, 5));
                    return None;
                }
                Some(endpoints)
            }
        },
    )
    .await
}

/// With `--discovery-fallback proxy`, an oxcd and an etcd that find the cluster full become
/// v2 proxies of it: they forward to the same members, writes and long-polls pass through,
/// and they answer alike. Answers the two proxies, oxcd's first.
async fn members_too_many_become_proxies(
    dir: &std::path::Path,
    url: &str,
    members: &[Member],
) -> Vec<Member> {
    let proxies = [("p0", binary::oxcd().unwrap()), ("p1", binary::etcd())]
        .map(|(name, binary)| discovering_with(name, dir, binary, url, "proxy"));
    let mut expected: Vec<String> = members.iter().map(Member::endpoint).collect();
    expected.sort();
    for p in &proxies {
        let found = proxy_endpoints(&p.endpoint(), 3, || p.log()).await;
        assert_eq!(found, expected);
        assert!(p.log().contains("falling back to proxy"), "{}", p.log());
        let cluster = std::fs::read_to_string(p.data_dir.join("proxy/cluster")).unwrap();
        let cluster: serde_json::Value = serde_json::from_str(&cluster).unwrap();
        assert_eq!(
            cluster["PeerURLs"].as_array().unwrap().len(),
            3,
            "{cluster}"
        );
    }
    let [oxcd_proxy, etcd_proxy] =
        [0, 1].map(|i| format!("{}/v2/keys/proxied", proxies[i].endpoint()));
    let (status, body) = curl(&["-X", "PUT", &oxcd_proxy, "-d", "value=one"]);
    assert_eq!(status, 201, "{body}");
    let through_oxcd = curl(&[&oxcd_proxy]);
    let through_etcd = curl(&[&etcd_proxy]);
    let direct = curl(&[&format!("{}/v2/keys/proxied", members[1].endpoint())]);
    assert_eq!(through_oxcd, direct);
    assert_eq!(through_etcd, direct);
    assert!(direct.1.contains("\"value\":\"one\""), "{direct:?}");

    // A long-poll through the proxy is answered by a write made on a member. It waits from
    // the index after the key's, so a write landing before the poll arrives answers it too.
    let index: serde_json::Value = serde_json::from_str(&direct.1).unwrap();
    let next = index["node"]["modifiedIndex"].as_u64().unwrap() + 1;
    let waiting = Command::new("curl")
        .args(["-s", "--max-time", "60"])
        .arg(format!("{oxcd_proxy}?wait=true&waitIndex={next}"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let member_key = format!("{}/v2/keys/proxied", members[2].endpoint());
    assert_eq!(curl(&["-X", "PUT", &member_key, "-d", "value=two"]).0, 200);
    let out = waiting.wait_with_output().unwrap();
    let event: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (event["action"].as_str(), event["node"]["value"].as_str()),
        (Some("set"), Some("two")),
        "{event}"
    );
    // gRPC is not proxied (etcd's proxy is v2 only), but the JSON gateway passes through.
    let range = curl(&[
        "-X",
        "POST",
        &format!("{}/v3/kv/range", proxies[0].endpoint()),
        "-d",
        r#"{"key":"ZGlzY292ZXJlZA=="}"#,
    ]);
    assert!(range.1.contains("\"value\":\"eWVz\""), "{range:?}");
    proxies.into_iter().collect()
}

/// `--proxy readonly` with `--initial-cluster`: GETs pass, anything else gets 501, from oxcd
/// as from etcd.
async fn readonly_proxies_forward_only_gets(dir: &std::path::Path, members: &[Member]) {
    let cluster = oxcd_testkit::cluster::initial_cluster(members);
    for (name, binary) in [("r0", binary::oxcd().unwrap()), ("r1", binary::etcd())] {
        let flags = ["--proxy", "readonly", "--proxy-refresh-interval", "1000"].map(String::from);
        let mut launch = Launch::new(binary, &flags);
        launch.initial_cluster = cluster.clone();
        let mut p = Member::new(name, dir, launch);
        p.spawn().unwrap();
        proxy_endpoints(&p.endpoint(), 3, || p.log()).await;
        let key = format!("{}/v2/keys/proxied", p.endpoint());
        let (status, body) = curl(&[&key]);
        assert_eq!(status, 200, "{name}: {body}");
        let (status, body) = curl(&["-X", "PUT", &key, "-d", "value=three"]);
        assert_eq!((status, body.as_str()), (501, ""), "{name}");
    }
}

#[tokio::test]
async fn a_token_without_a_size_is_refused_as_etcd_refuses_it() {
    let service = Member::start_with(&["--enable-v2"]);
    service.client().await;
    let url = format!("{}/v2/keys/_etcd/registry/nosize", service.endpoint());
    let dir = tempfile::tempdir().unwrap();
    // etcd 3.4 reports the v2 error itself ("100: Key not found (/_etcd)"); oxcd words it
    // as etcd's discovery package means to.
    let cases = [
        (
            "o",
            binary::oxcd().unwrap(),
            "discovery: size key not found",
        ),
        ("e", binary::etcd(), "100: Key not found"),
    ];
    for (name, binary, error) in cases {
        let mut m = discovering(name, dir.path(), binary, &url);
        let code = m.wait_exit(Duration::from_secs(60));
        let log = m.log();
        assert!(code.is_some_and(|c| c != 0), "{name}: {code:?}\n{log}");
        assert!(log.contains(error), "{log}");
    }
}
