//! Debian's etcdctl 3.4 managing a 3-member oxcd cluster the way an operator would: member
//! list, endpoint status and health across the cluster, adding a learner and starting it
//! with the environment `member add` prints, promoting it, moving the leadership to it and
//! removing the old leader. Outputs are parsed and checked against the cluster's real state;
//! the table shapes are etcd 3.4's.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use oxcd_testkit::{Cluster, wait_for};
use tokio::process::Command;

const ETCDCTL: &str = "/usr/bin/etcdctl";
const CONVERGE: Duration = Duration::from_secs(30);

pub struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Output {
    pub fn ok(self, what: &str) -> String {
        assert_eq!(
            self.code,
            Some(0),
            "etcdctl {what} failed:\n{}{}",
            self.stdout,
            self.stderr
        );
        self.stdout
    }
}

/// A membership change with etcdctl, retried while the leader refuses it as an unhealthy
/// cluster (`--strict-reconfig-check`: right after start or a change of leader its peers
/// have not been connected for 5 s yet); its output once it succeeds.
async fn etcdctl_once_healthy(endpoints: &[String], args: &[&str], what: &str) -> String {
    let out = wait_for(
        CONVERGE,
        &format!("etcdctl {what} to be accepted"),
        || async {
            let out = etcdctl(endpoints, args).await;
            let unhealthy = out.stderr.contains("Error: etcdserver: unhealthy cluster");
            (!unhealthy).then_some(out)
        },
    )
    .await;
    out.ok(what)
}

/// `etcdctl --endpoints=<endpoints> <args>`, killed after 20 s.
pub async fn etcdctl(endpoints: &[String], args: &[&str]) -> Output {
    let child = Command::new(ETCDCTL)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .args(["--command-timeout=5s", "--dial-timeout=2s"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {ETCDCTL} (install Debian's etcd-client package): {e}"));
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("etcdctl {args:?} hung"))
        .unwrap();
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The header and rows of an etcdctl `-w table` output, cells trimmed; checks the borders.
fn table(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 4, "not a table:\n{text}");
    let border = lines[0];
    assert!(border.starts_with("+-") && border.ends_with("-+"), "{text}");
    assert_eq!(lines[2], border, "{text}");
    assert_eq!(*lines.last().unwrap(), border, "{text}");
    let cells = |line: &str| -> Vec<String> {
        assert_eq!(line.len(), border.len(), "ragged table:\n{text}");
        let inner = line.strip_prefix('|').and_then(|l| l.strip_suffix('|'));
        inner
            .unwrap_or_else(|| panic!("not a row: {line}"))
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let header = cells(lines[1]);
    let rows = lines[3..lines.len() - 1].iter().map(|l| cells(l)).collect();
    (header, rows)
}

/// One row of `member list -w table`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MemberRow {
    id: String,
    status: String,
    peer_urls: String,
    client_urls: String,
    learner: bool,
}

/// `member list -w table` by name ("" for a member that has not started).
async fn member_list(endpoints: &[String]) -> BTreeMap<String, MemberRow> {
    let out = etcdctl(endpoints, &["member", "list", "-w", "table"]).await;
    let (header, rows) = table(&out.ok("member list"));
    assert_eq!(
        header,
        [
            "ID",
            "STATUS",
            "NAME",
            "PEER ADDRS",
            "CLIENT ADDRS",
            "IS LEARNER"
        ]
    );
    rows.into_iter()
        .map(|r| {
            let row = MemberRow {
                id: r[0].clone(),
                status: r[1].clone(),
                peer_urls: r[3].clone(),
                client_urls: r[4].clone(),
                learner: r[5].parse().expect("IS LEARNER is true or false"),
            };
            (r[2].clone(), row)
        })
        .collect()
}

/// One row of `endpoint status --cluster -w table`.
#[derive(Debug)]
struct StatusRow {
    endpoint: String,
    id: String,
    leader: bool,
    learner: bool,
    term: u64,
    errors: String,
}

async fn endpoint_status(endpoints: &[String]) -> Vec<StatusRow> {
    let out = etcdctl(
        endpoints,
        &["endpoint", "status", "--cluster", "-w", "table"],
    )
    .await;
    let (header, rows) = table(&out.ok("endpoint status"));
    assert_eq!(
        header,
        [
            "ENDPOINT",
            "ID",
            "VERSION",
            "DB SIZE",
            "IS LEADER",
            "IS LEARNER",
            "RAFT TERM",
            "RAFT INDEX",
            "RAFT APPLIED INDEX",
            "ERRORS"
        ]
    );
    rows.into_iter()
        .map(|r| StatusRow {
            endpoint: r[0].clone(),
            id: r[1].clone(),
            leader: r[4].parse().unwrap(),
            learner: r[5].parse().unwrap(),
            term: r[6].parse().unwrap(),
            errors: r[9].clone(),
        })
        .collect()
}

/// The id of the member `endpoint status --cluster` reports leading, once all agree.
async fn status_leader(endpoints: &[String], members: usize) -> String {
    wait_for(CONVERGE, "one leader in endpoint status", || async {
        let rows = endpoint_status(endpoints).await;
        let leaders: Vec<&StatusRow> = rows.iter().filter(|r| r.leader).collect();
        (rows.len() == members && leaders.len() == 1 && rows.iter().all(|r| r.term == rows[0].term))
            .then(|| leaders[0].id.clone())
    })
    .await
}

/// `endpoint health --cluster`: every member answers healthy.
async fn assert_all_healthy(endpoints: &[String], expected: &[String]) {
    let out = etcdctl(endpoints, &["endpoint", "health", "--cluster"]).await;
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    // etcdctl 3.4 prints the health lines on stderr.
    let mut healthy: Vec<String> = format!("{}{}", out.stdout, out.stderr)
        .lines()
        .filter_map(|l| l.split_once(" is healthy: successfully committed proposal: took = "))
        .map(|(ep, _)| ep.to_string())
        .collect();
    healthy.sort();
    let mut expected = expected.to_vec();
    expected.sort();
    assert_eq!(healthy, expected, "{}{}", out.stdout, out.stderr);
}

/// The value of `NAME="value"` in `member add` output.
fn env_value<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=\"")))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

#[tokio::test]
async fn etcdctl_manages_a_three_member_cluster() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader().await;
    let eps = cluster.running_endpoints();

    // member list -w table: every member started, with its URLs (client URLs once each
    // member published them after start, as in etcd).
    let members = wait_for(CONVERGE, "every member to publish", || async {
        let members = member_list(&eps).await;
        members
            .values()
            .all(|m| !m.client_urls.is_empty())
            .then_some(members)
    })
    .await;
    assert_eq!(members.len(), 3);
    for node in &cluster.members {
        let row = &members[&node.name];
        assert_eq!(
            (
                row.status.as_str(),
                row.peer_urls.as_str(),
                row.client_urls.as_str(),
                row.learner
            ),
            (
                "started",
                node.peer_url().as_str(),
                node.endpoint().as_str(),
                false
            )
        );
        assert!(u64::from_str_radix(&row.id, 16).is_ok(), "ids print in hex");
    }
    let cluster_id_of = |out: &str, verb: &str| -> (String, String) {
        // "Member <id> <verb> cluster <cluster id>" (ids printed %16x, so maybe space-padded).
        let line = out.lines().next().unwrap_or_default();
        let rest = line
            .strip_prefix("Member ")
            .unwrap_or_else(|| panic!("unexpected output {out:?}"));
        let (id, cluster) = rest
            .split_once(&format!(" {verb} cluster "))
            .unwrap_or_else(|| panic!("unexpected output {out:?}"));
        (id.trim().to_string(), cluster.trim().to_string())
    };

    // endpoint status / health across the cluster.
    let rows = endpoint_status(&eps[..1]).await;
    let mut by_endpoint: BTreeMap<String, String> = rows
        .iter()
        .map(|r| (r.endpoint.clone(), r.id.clone()))
        .collect();
    let expected: BTreeMap<String, String> = cluster
        .members
        .iter()
        .map(|n| (n.endpoint(), members[&n.name].id.clone()))
        .collect();
    assert_eq!(by_endpoint, expected);
    assert!(rows.iter().all(|r| !r.learner && r.errors.is_empty()));
    let leader_id = status_leader(&eps, 3).await;
    assert_eq!(leader_id, members[&cluster.members[leader].name].id);
    assert_all_healthy(&eps[..1], &eps).await;

    // member add --learner, then start it with what etcdctl printed.
    let joiner = cluster.new_joiner();
    let (name, peer) = (
        cluster.members[joiner].name.clone(),
        cluster.members[joiner].peer_url(),
    );
    let added = etcdctl_once_healthy(
        &eps,
        &[
            "member",
            "add",
            &name,
            &format!("--peer-urls={peer}"),
            "--learner",
        ],
        "member add",
    )
    .await;
    let (new_id, cluster_id) = cluster_id_of(&added, "added to");
    assert_eq!(env_value(&added, "ETCD_NAME"), name);
    assert_eq!(env_value(&added, "ETCD_INITIAL_ADVERTISE_PEER_URLS"), peer);
    assert_eq!(env_value(&added, "ETCD_INITIAL_CLUSTER_STATE"), "existing");
    let initial = env_value(&added, "ETCD_INITIAL_CLUSTER").to_string();
    let mut pairs: Vec<&str> = initial.split(',').collect();
    pairs.sort();
    let mut want: Vec<String> = cluster
        .members
        .iter()
        .map(|n| format!("{}={}", n.name, n.peer_url()))
        .collect();
    want.sort();
    assert_eq!(pairs, want);
    let members = member_list(&eps).await;
    assert_eq!(members[""].id, new_id, "unstarted until it runs");
    assert_eq!(
        (members[""].status.as_str(), members[""].learner),
        ("unstarted", true)
    );
    cluster.start_joining_as(joiner, &initial);
    wait_for(
        CONVERGE,
        "the learner to start and publish its name",
        || async {
            let members = member_list(&eps).await;
            members
                .get(&name)
                .filter(|m| m.status == "started" && m.learner && m.id == new_id)
                .map(|_| ())
        },
    )
    .await;

    // Promote: refused with etcd's error until the learner caught up, then done.
    let promoted = wait_for(CONVERGE, "member promote to succeed", || async {
        let out = etcdctl(&eps, &["member", "promote", &new_id]).await;
        if out.code == Some(0) {
            return Some(out.stdout);
        }
        assert!(
            out.stderr.contains(
                "Error: etcdserver: can only promote a learner member which is in sync with leader"
            ),
            "unexpected promote failure: {}",
            out.stderr
        );
        None
    })
    .await;
    assert_eq!(
        cluster_id_of(&promoted, "promoted in"),
        (new_id.clone(), cluster_id.clone())
    );
    assert!(!member_list(&eps).await[&name].learner);
    let all = cluster.running_endpoints();
    assert_all_healthy(&all, &all).await;

    // move-leader to the new member (etcdctl finds the leader among the endpoints).
    let out = etcdctl(&all, &["move-leader", "ffffffffffff"]).await;
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .contains("Error: etcdserver: bad leader transferee"),
        "{}",
        out.stderr
    );
    let moved = etcdctl(&all, &["move-leader", &new_id])
        .await
        .ok("move-leader");
    assert_eq!(
        moved.trim(),
        format!("Leadership transferred from {leader_id} to {new_id}")
    );
    assert_eq!(status_leader(&all, 4).await, new_id);

    // Remove the old leader: the others carry on as three.
    // Through the member being removed: it must still answer before it stops.
    let own = [cluster.members[leader].endpoint()];
    let removed =
        etcdctl_once_healthy(&own, &["member", "remove", &leader_id], "member remove").await;
    assert_eq!(
        cluster_id_of(&removed, "removed from"),
        (leader_id.clone(), cluster_id)
    );
    assert!(
        cluster.members[leader].wait_exit(CONVERGE).is_some(),
        "the removed member keeps running"
    );
    let rest = cluster.running_endpoints();
    let members = member_list(&rest).await;
    assert_eq!(members.len(), 3);
    assert!(!members.values().any(|m| m.id == leader_id));
    by_endpoint = endpoint_status(&rest)
        .await
        .into_iter()
        .map(|r| (r.endpoint, r.id))
        .collect();
    assert_eq!(by_endpoint.len(), 3);
    assert_all_healthy(&rest, &rest).await;
    let out = etcdctl(&rest, &["put", "after", "removal"]).await.ok("put");
    assert_eq!(out.trim(), "OK");
}
