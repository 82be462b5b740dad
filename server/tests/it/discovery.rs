//! `--discovery`: members bootstrap a new cluster through etcd's v2 discovery protocol,
//! against a discovery token kept in another oxcd member's v2 keys API; a member too many
//! is refused as etcd refuses it, and so is a real etcd 3.4 pointed at the same token.

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

fn discovering(name: &str, dir: &std::path::Path, binary: std::path::PathBuf, url: &str) -> Member {
    // etcd 3.4 falls back to its v2 proxy by default; both are told to exit instead.
    let flags = [
        "--discovery",
        url,
        "--discovery-fallback",
        "exit",
        "--enable-v2",
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

    // A restarted member comes back from its data, without asking the service again.
    drop(service);
    members[0].stop();
    members[0].spawn().unwrap();
    let mut c = members[0].client().await;
    let got = c.get("discovered", None).await.unwrap();
    assert_eq!(got.kvs()[0].value(), b"yes");
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
