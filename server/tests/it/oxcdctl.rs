//! oxcdctl's verbs that the etcdctl comparison scripts (in `etcdctl.rs`) leave out, each run
//! with both oxcdctl and Debian's etcdctl against the same oxcd cluster, their outputs
//! compared once what must differ (new member ids, lease ids) is masked: member add, update,
//! promote and remove; move-leader; lock and elect held, contended and released; check perf;
//! and Debian's etcdctl make-mirror from etcd into oxcd and back.

use std::process::Stdio;
use std::time::Duration;

use oxcd_testkit::{Cluster, Member, binary, free_port, wait_for};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

const ETCDCTL: &str = "/usr/bin/etcdctl";

/// Either CLI, against `endpoints`.
#[derive(Clone)]
struct Cli {
    path: std::path::PathBuf,
    endpoints: String,
}

/// What one run printed.
#[derive(Debug, PartialEq)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Cli {
    fn both(endpoints: &[String]) -> [Cli; 2] {
        let endpoints = endpoints.join(",");
        [
            Cli {
                path: ETCDCTL.into(),
                endpoints: endpoints.clone(),
            },
            Cli {
                path: binary::oxcdctl().unwrap(),
                endpoints,
            },
        ]
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.path);
        // Generous timeouts: the machine may be busy (check perf dials 50 clients at once).
        c.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints))
            .args(["--dial-timeout=20s", "--command-timeout=20s"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    /// Runs to completion (at most `limit`); stderr without clientv3's JSON log lines.
    async fn run_for(&self, args: &[&str], limit: Duration) -> Out {
        let child = self.command(args).spawn().unwrap();
        let out = tokio::time::timeout(limit, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{} {args:?} hung", self.path.display()))
            .unwrap();
        Out {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr)
                .lines()
                .filter(|l| !l.starts_with("{\"level\":"))
                .map(|l| format!("{l}\n"))
                .collect(),
        }
    }

    async fn run(&self, args: &[&str]) -> Out {
        self.run_for(args, Duration::from_secs(20)).await
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).spawn().unwrap()
    }
}

/// Interrupts `child` (SIGINT, as Ctrl-C) and returns what it printed and its exit code.
async fn interrupt(mut child: Child) -> Out {
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .await
        .unwrap();
    let code = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits on SIGINT")
        .unwrap()
        .code();
    Out {
        code,
        stdout,
        stderr: String::new(),
    }
}

/// Reads `child`'s stdout until it holds `lines` lines.
async fn read_lines(child: &mut Child, lines: usize) -> String {
    let out = child.stdout.as_mut().unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 256];
    let reading = async {
        while text.lines().count() < lines || !text.ends_with('\n') {
            let n = out.read(&mut buf).await.unwrap();
            assert!(n > 0, "exited after printing {text:?}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    };
    tokio::time::timeout(Duration::from_secs(20), reading)
        .await
        .unwrap_or_else(|_| panic!("waited for {lines} lines, got {text:?}"));
    text
}

/// `stdout`, masked, with what depends on the order of member ids sorted: the members of a
/// JSON answer (by name, before masking), the lines of a list and the parts of
/// `ETCD_INITIAL_CLUSTER` (after).
fn in_id_order_independent_form(stdout: &str, mask: impl Fn(&str) -> String) -> String {
    if let Ok(mut json) = serde_json::from_str::<serde_json::Value>(stdout) {
        if let Some(members) = json.get_mut("members").and_then(|m| m.as_array_mut()) {
            members.sort_by_key(|m| m["name"].to_string());
        }
        return mask(&json.to_string());
    }
    let mut lines: Vec<String> = mask(stdout)
        .lines()
        .map(|l| match l.strip_prefix("ETCD_INITIAL_CLUSTER=") {
            Some(v) => {
                let mut parts: Vec<&str> = v.trim_matches('"').split(',').collect();
                parts.sort();
                format!("ETCD_INITIAL_CLUSTER={}", parts.join(","))
            }
            None => l.to_string(),
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_verbs_print_what_etcdctl_prints() {
    let mut cluster = Cluster::start(1);
    cluster.leader().await;
    let endpoints = vec![cluster.members[0].endpoint()];
    let mut transcripts = Vec::new();
    for cli in Cli::both(&endpoints) {
        let peer = format!("http://127.0.0.1:{}", free_port());
        let added = cli
            .run(&[
                "member",
                "add",
                "newbie",
                "--learner",
                &format!("--peer-urls={peer}"),
            ])
            .await;
        assert_eq!(added.code, Some(0), "{added:?}");
        let id = added.stdout.split_whitespace().nth(1).unwrap().to_string();
        let moved = format!("http://127.0.0.1:{}", free_port());
        let mut transcript = vec![added];
        for args in [
            vec!["member", "list"],
            vec!["member", "update", &id, &format!("--peer-urls={moved}")],
            vec!["member", "list", "-w", "json"],
            // An unstarted learner is not in sync with the leader.
            vec!["member", "promote", &id],
            vec!["member", "remove", &id],
            vec!["member", "remove", &id],
            vec!["member", "remove", "zz"],
            vec!["member", "add", "nourls"],
        ] {
            transcript.push(cli.run(&args).await);
        }
        let decimal = u64::from_str_radix(id.trim(), 16).unwrap().to_string();
        // Printed with `%16x`: a shorter id is padded with spaces.
        let padded = format!("{id:>16}");
        let mask = |text: &str| {
            text.replace(&padded, "<new-id>")
                .replace(&id, "<new-id>")
                .replace(&decimal, "<new-id>")
                .replace(&peer, "<peer>")
                .replace(&moved, "<moved>")
        };
        let masked: Vec<String> = transcript
            .into_iter()
            .map(|o| {
                let o = Out {
                    stdout: in_id_order_independent_form(&o.stdout, mask),
                    stderr: mask(&o.stderr),
                    ..o
                };
                format!("{o:?}")
            })
            .collect();
        transcripts.push(masked);
    }
    // The raft term and revision-free outputs agree line for line.
    let mask_terms = |t: &Vec<String>| -> Vec<String> {
        t.iter()
            .map(|l| {
                let mut l = l.clone();
                while let Some(at) = l.find("\\\"raft_term\\\":") {
                    let end = l[at..].find([',', '}']).map_or(l.len(), |e| at + e);
                    l.replace_range(at..end, "<term>");
                }
                l
            })
            .collect()
    };
    assert_eq!(mask_terms(&transcripts[1]), mask_terms(&transcripts[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_leader_hands_over_and_prints_like_etcdctl() {
    let mut cluster = Cluster::start(3);
    let mut leader = cluster.leader().await;
    let endpoints: Vec<String> = (0..3).map(|i| cluster.members[i].endpoint()).collect();
    for cli in Cli::both(&endpoints) {
        let from = cluster.status(leader).await.unwrap().0;
        let to_index = (leader + 1) % 3;
        let to = cluster.status(to_index).await.unwrap().0;
        let out = cli.run(&["move-leader", &format!("{to:x}")]).await;
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (
                Some(0),
                format!("Leadership transferred from {from:x} to {to:x}\n").as_str()
            ),
            "{}: {out:?}",
            cli.path.display()
        );
        leader = wait_for(Duration::from_secs(20), "the new leader", || async {
            let seen = cluster.status(0).await.ok()?.1;
            (seen == to).then_some(to_index)
        })
        .await;
    }
    // Given only followers, both refuse alike.
    let followers: Vec<String> = (0..3)
        .filter(|i| *i != leader)
        .map(|i| cluster.members[i].endpoint())
        .collect();
    let [etcdctl, oxcdctl] = Cli::both(&followers);
    let (want, got) = tokio::join!(
        etcdctl.run(&["move-leader", "1"]),
        oxcdctl.run(&["move-leader", "1"])
    );
    assert_eq!(got, want);
    assert_eq!(got.code, Some(128));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_and_elect_hold_wait_and_hand_over() {
    let member = Member::start();
    member.client().await; // serving first, as in check perf's test
    let endpoints = vec![member.endpoint()];
    for cli in Cli::both(&endpoints) {
        let name = if cli.path.ends_with("etcdctl") {
            "etcdctl"
        } else {
            "oxcdctl"
        };
        // A lock is held until Ctrl-C; a second holder waits, then gets it.
        let lock = format!("lock-{name}");
        let mut first = cli.spawn(&["lock", &lock]);
        let held = read_lines(&mut first, 2).await;
        assert!(held.starts_with(&format!("{lock}/")), "{name}: {held:?}");
        let mut second = cli.spawn(&["lock", &lock]);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let released = interrupt(first).await;
        assert_eq!(released.code, Some(0), "{name}: {released:?}");
        let next = read_lines(&mut second, 2).await;
        assert!(
            next.starts_with(&format!("{lock}/")) && next != held,
            "{name}: {next:?}"
        );
        interrupt(second).await;
        // A command run under the lock sees its key and revision.
        let script = "echo key=$ETCD_LOCK_KEY rev=$ETCD_LOCK_REV";
        let out = cli.run(&["lock", &lock, "--", "sh", "-c", script]).await;
        assert!(
            out.stdout.starts_with(&format!("key={lock}/")),
            "{name}: {out:?}"
        );
        assert_eq!(out.code, Some(0), "{name}: {out:?}");

        // An election: the observer sees each leader's proposal in turn.
        let election = format!("elect-{name}");
        let mut observer = cli.spawn(&["elect", "-l", &election]);
        let mut one = cli.spawn(&["elect", &election, "one"]);
        let won = read_lines(&mut one, 2).await;
        assert!(
            won.starts_with(&format!("{election}/")) && won.ends_with("\none\n"),
            "{won:?}"
        );
        let mut two = cli.spawn(&["elect", &election, "two"]);
        tokio::time::sleep(Duration::from_millis(500)).await;
        interrupt(one).await;
        let won = read_lines(&mut two, 2).await;
        assert!(won.ends_with("\ntwo\n"), "{name}: {won:?}");
        let seen = read_lines(&mut observer, 4).await;
        let values: Vec<&str> = seen.lines().skip(1).step_by(2).collect();
        assert_eq!(values, ["one", "two"], "{name}: {seen:?}");
        interrupt(two).await;
        interrupt(observer).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_perf_runs_its_workload_with_either_cli() {
    let member = Member::start();
    // Serving first: oxcdctl, unlike etcdctl, does not retry a request until its deadline
    // while the server is still starting.
    member.client().await;
    let [etcdctl, oxcdctl] = Cli::both(&[member.endpoint()]);
    // Two runs at once, on prefixes of their own: 60 s each.
    let minutes = Duration::from_secs(180);
    let (a, b) = tokio::join!(
        etcdctl.run_for(&["check", "perf", "--load=s", "--prefix=/perf-a/"], minutes),
        oxcdctl.run_for(
            &[
                "check",
                "perf",
                "--load=s",
                "--prefix=/perf-b/",
                "--auto-compact"
            ],
            minutes
        ),
    );
    for (cli, out) in [("etcdctl", &a), ("oxcdctl", &b)] {
        // The verdict depends on the machine's load: only its shape is checked here (the
        // benchmark measures speed).
        let verdict: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| l.starts_with("PASS") || l.starts_with("FAIL"))
            .collect();
        assert!(
            verdict.iter().any(|l| l.contains("Throughput")),
            "{cli}: {out:?}"
        );
        let last = *verdict.last().unwrap();
        assert!(last == "PASS" || last == "FAIL", "{cli}: {out:?}");
        assert_eq!(
            out.code,
            Some(if last == "PASS" { 0 } else { 1 }),
            "{cli}: {out:?}"
        );
        assert!(
            !out.stdout.contains("ERROR("),
            "{cli}: requests failed: {out:?}"
        );
    }
    // Each cleaned up after itself.
    let mut c = member.client().await;
    for prefix in ["/perf-a/", "/perf-b/"] {
        let left = c
            .get(
                prefix,
                Some(
                    etcd_client::GetOptions::new()
                        .with_prefix()
                        .with_count_only(),
                ),
            )
            .await
            .unwrap();
        assert_eq!(left.count(), 0, "{prefix}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_mirror_copies_etcd_into_oxcd_and_back() {
    let etcd = Member::start_etcd();
    let oxcd = Member::start();
    let back = Member::start_etcd();
    let mut source = etcd.client().await;
    for i in 0..50 {
        source
            .put(format!("m/{i:02}"), format!("v{i}"), None)
            .await
            .unwrap();
    }
    let all = |c: etcd_client::Client| async move {
        let mut c = c;
        let r = c
            .get("m/", Some(etcd_client::GetOptions::new().with_prefix()))
            .await
            .ok()?;
        Some(
            r.kvs()
                .iter()
                .map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
                .collect::<Vec<_>>(),
        )
    };
    let [etcdctl, _] = Cli::both(&[etcd.endpoint()]);
    let into_oxcd = etcdctl.spawn(&["make-mirror", &oxcd.endpoint()]);
    // Later writes follow.
    source
        .put("m/late", "after the mirror started", None)
        .await
        .unwrap();
    let want = all(etcd.client().await).await.unwrap();
    assert_eq!(want.len(), 51);
    wait_for(
        Duration::from_secs(30),
        "oxcd to hold the mirror",
        || async { (all(oxcd.client().await).await? == want).then_some(()) },
    )
    .await;
    let [from_oxcd, _] = Cli::both(&[oxcd.endpoint()]);
    let into_etcd = from_oxcd.spawn(&["make-mirror", &back.endpoint()]);
    wait_for(
        Duration::from_secs(30),
        "etcd to hold oxcd's mirror",
        || async { (all(back.client().await).await? == want).then_some(()) },
    )
    .await;
    drop(into_oxcd);
    drop(into_etcd);
}
