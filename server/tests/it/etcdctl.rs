//! Debian's etcdctl 3.4 against oxcd and against a real etcd 3.4 server, side by side.
//!
//! Every step runs the same `etcdctl` command line against a fresh oxcd member and a fresh
//! etcd, and the two transcripts (exit code, stdout, stderr) must be identical once what
//! legitimately differs between two clusters is masked: cluster and member ids, raft term
//! and index, ports, lease ids (numbered in order of appearance), db size, the server version
//! (oxcd says 3.5.0, etcd 3.4.23), timings, timestamps and client ids in etcdctl's logs, and
//! the remaining TTL of a lease. Revisions are *not* masked: both servers start empty, so
//! they must agree exactly.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oxcd_testkit::Member;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

const ETCDCTL: &str = "/usr/bin/etcdctl";

/// How long one etcdctl invocation may run before the step counts as hung.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// One step of a comparison script.
pub enum Step {
    /// `etcdctl <args>`, fed `stdin`.
    Run {
        args: &'static [&'static str],
        stdin: &'static str,
    },
    /// `etcdctl watch ...` left running: wait until it printed `ready` events, run `writes`
    /// (each an etcdctl command line), wait for `events` events in all, then kill it.
    Watch {
        args: &'static [&'static str],
        ready: usize,
        writes: &'static [&'static [&'static str]],
        events: usize,
    },
}

fn run(args: &'static [&'static str]) -> Step {
    Step::Run { args, stdin: "" }
}

/// `etcdctl txn -i [flags]` reading compares, success ops and failure ops from stdin.
fn txn(flags: &'static [&'static str], stdin: &'static str) -> Step {
    Step::Run { args: flags, stdin }
}

fn watch(
    args: &'static [&'static str],
    ready: usize,
    writes: &'static [&'static [&'static str]],
    events: usize,
) -> Step {
    Step::Watch {
        args,
        ready,
        writes,
        events,
    }
}

impl Step {
    fn describe(&self) -> String {
        match self {
            Step::Run { args, stdin } if stdin.is_empty() => format!("etcdctl {args:?}"),
            Step::Run { args, stdin } => format!("etcdctl {args:?} <<< {stdin:?}"),
            Step::Watch { args, writes, .. } => format!("etcdctl {args:?} during {writes:?}"),
        }
    }
}

/// What one etcdctl process printed.
struct Output {
    /// `None` when the process was killed (watch) or hung.
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// One server under comparison: where it listens and what its outputs may differ in.
struct Side {
    client_port: u16,
    /// The CLI this side runs: Debian's etcdctl, or oxcdctl.
    cli: std::path::PathBuf,
    /// Whether clientv3's JSON log lines are left out of stderr (when etcdctl is compared
    /// with oxcdctl, which has no such logger).
    drop_client_logs: bool,
    /// Exact strings replaced by placeholders, in this order.
    literals: Vec<(String, String)>,
    /// Lease ids in order of appearance; `{leaseN}` in arguments stands for the N-th one.
    leases: Vec<i64>,
}

impl Side {
    async fn new(
        label: &'static str,
        client_port: u16,
        peer_port: u16,
        cli: std::path::PathBuf,
        drop_client_logs: bool,
    ) -> Side {
        let mut side = Side {
            client_port,
            cli,
            drop_client_logs,
            literals: Vec::new(),
            leases: Vec::new(),
        };
        let out = side.etcdctl(&["member", "list", "-w", "json"], "").await;
        let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{label}: member list -w json: {e}\n{}{}",
                out.stdout, out.stderr
            )
        });
        let id = |field: &str| {
            json["header"][field]
                .as_u64()
                .unwrap_or_else(|| panic!("{label}: no {field} in {json}"))
        };
        let (cluster_id, member_id) = (id("cluster_id"), id("member_id"));
        side.literals = vec![
            (
                format!("http://127.0.0.1:{client_port}"),
                "<client-url>".into(),
            ),
            (format!("127.0.0.1:{client_port}"), "<client>".into()),
            (format!("http://127.0.0.1:{peer_port}"), "<peer-url>".into()),
            (cluster_id.to_string(), "<cluster-id>".into()),
            (member_id.to_string(), "<member-id>".into()),
            (format!("{member_id:x}"), "<member-id>".into()),
        ];
        side
    }

    /// Runs `etcdctl --endpoints <this side> <args>` to completion (or [`STEP_TIMEOUT`]).
    async fn etcdctl(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self.spawn(args);
        let mut input = child.stdin.take().unwrap();
        // A command that does not read stdin may exit first: a broken pipe is not an error.
        let _ = input.write_all(stdin.as_bytes()).await;
        drop(input);
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        let code = match tokio::time::timeout(STEP_TIMEOUT, child.wait()).await {
            Ok(status) => status.unwrap().code(),
            Err(_) => {
                child.kill().await.unwrap();
                None
            }
        };
        Output {
            code,
            stdout: stdout.finish().await,
            stderr: stderr.finish().await,
        }
    }

    fn spawn(&self, args: &[&str]) -> Child {
        let args: Vec<String> = args.iter().map(|a| self.expand(a)).collect();
        Command::new(&self.cli)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=http://127.0.0.1:{}", self.client_port))
            .args(["--command-timeout=5s", "--dial-timeout=2s"])
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.cli.display()))
    }

    /// Replaces `{leaseN}` by this side's N-th lease id, as etcdctl takes it (hex).
    fn expand(&self, arg: &str) -> String {
        let mut arg = arg.to_string();
        for (n, id) in self.leases.iter().enumerate() {
            arg = arg.replace(&format!("{{lease{n}}}"), &format!("{id:x}"));
        }
        arg
    }

    /// Runs one step; returns its masked transcript.
    async fn step(&mut self, step: &Step) -> String {
        match step {
            Step::Run { args, stdin } => {
                let out = self.etcdctl(args, stdin).await;
                if args.starts_with(&["lease", "grant"]) {
                    self.learn_lease(&out.stdout);
                }
                self.transcript(&out)
            }
            Step::Watch {
                args,
                ready,
                writes,
                events,
            } => self.watch(args, *ready, writes, *events).await,
        }
    }

    async fn watch(
        &mut self,
        args: &[&str],
        ready: usize,
        writes: &[&[&str]],
        events: usize,
    ) -> String {
        let mut child = self.spawn(args);
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        let mut transcript = wait_events(&stdout, ready).await;
        for w in writes {
            let out = self.etcdctl(w, "").await;
            transcript += &format!("> {w:?}\n{}", self.transcript(&out));
        }
        transcript += &wait_events(&stdout, events).await;
        child.kill().await.unwrap();
        let out = Output {
            code: None,
            stdout: stdout.finish().await,
            stderr: stderr.finish().await,
        };
        transcript + "> watch\n" + &self.transcript(&out)
    }

    /// Records the lease id a `lease grant` printed (simple or JSON output).
    fn learn_lease(&mut self, stdout: &str) {
        let simple = stdout
            .strip_prefix("lease ")
            .and_then(|s| s.split(' ').next())
            .and_then(|hex| u64::from_str_radix(hex, 16).ok());
        let json = serde_json::from_str::<serde_json::Value>(stdout)
            .ok()
            .and_then(|v| v["ID"].as_i64());
        if let Some(id) = json.or(simple.map(|id| id as i64)) {
            let n = self.leases.len();
            self.leases.push(id);
            self.literals
                .push((format!("{:016x}", id as u64), format!("<lease{n}>")));
            self.literals.push((id.to_string(), format!("<lease{n}>")));
        }
    }

    fn transcript(&self, out: &Output) -> String {
        let code = match out.code {
            Some(c) => format!("exit {c}"),
            None => "killed".to_string(),
        };
        let stderr = if self.drop_client_logs {
            out.stderr
                .lines()
                .filter(|l| !l.starts_with("{\"level\":"))
                .map(|l| format!("{l}\n"))
                .collect()
        } else {
            out.stderr.clone()
        };
        format!(
            "{code}\n--- stdout\n{}--- stderr\n{}",
            self.mask(&out.stdout),
            self.mask(&stderr)
        )
    }

    fn mask(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (literal, placeholder) in &self.literals {
            text = text.replace(literal, placeholder);
        }
        for (prefix, placeholder, applies) in MASKS {
            text = mask_values(&text, prefix, placeholder, *applies);
        }
        // etcd keeps a lease's keys in a Go map: their order is random.
        text = sort_list(&text, "attached keys([", "])", " ");
        text = sort_list(&text, "\"keys\":[", "]", ",");
        mask_tables(&text)
    }
}

/// Values that legitimately differ, found by the text right before them:
/// (prefix, placeholder, whether the value found is to be masked).
const MASKS: &[(&str, &str, fn(&str) -> bool)] = &[
    ("\"raft_term\":", "<term>", any),
    ("\"RaftTerm\" : ", "<term>", any),
    ("\"raftTerm\":", "<term>", any),
    ("\"raftIndex\":", "<index>", any),
    ("\"raftAppliedIndex\":", "<index>", any),
    ("\"dbSize\":", "<size>", any),
    ("\"dbSizeInUse\":", "<size>", any),
    // HashKV: etcd hashes its bolt records, oxcd its own; only the revisions must agree.
    ("\"hash\":", "<hash>", any),
    // The server version in Status (a string); key versions are numbers and stay.
    ("\"version\":", "<version>", quoted),
    ("took = ", "<took>", any),
    ("\"took\":", "<took>", any),
    ("\"ts\":", "<ts>", any),
    // etcdctl's own client id (endpoint://client-<uuid>/...).
    ("\"target\":", "<target>", any),
    // A live lease's remaining TTL depends on timing; -1 (expired) must match.
    ("remaining(", "<ttl>", non_negative),
    ("\"ttl\":", "<ttl>", non_negative),
];

fn any(_: &str) -> bool {
    true
}

fn quoted(v: &str) -> bool {
    v.starts_with('"')
}

fn non_negative(v: &str) -> bool {
    !v.starts_with('-')
}

/// Replaces the value after each occurrence of `prefix`: a quoted string, or everything up
/// to the next delimiter.
fn mask_values(text: &str, prefix: &str, placeholder: &str, applies: fn(&str) -> bool) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let (head, tail) = rest.split_at(at + prefix.len());
        out += head;
        let len = if let Some(quoted) = tail.strip_prefix('"') {
            quoted.find('"').map_or(tail.len(), |end| end + 2)
        } else {
            tail.find([',', '}', ']', ')', ' ', '\n', '|'])
                .unwrap_or(tail.len())
        };
        let (value, after) = tail.split_at(len);
        out += if applies(value) { placeholder } else { value };
        rest = after;
    }
    out + rest
}

/// Sorts the `sep`-separated items between each `open` and the next `close`.
fn sort_list(text: &str, open: &str, close: &str, sep: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(open) {
        let (head, tail) = rest.split_at(at + open.len());
        out += head;
        let end = tail.find(close).unwrap_or(tail.len());
        let mut items: Vec<&str> = tail[..end].split(sep).collect();
        items.sort_unstable();
        out += &items.join(sep);
        rest = &tail[end..];
    }
    out + rest
}

/// Table columns whose values legitimately differ (endpoint status).
const MASKED_COLUMNS: &[&str] = &[
    "VERSION",
    "DB SIZE",
    "RAFT TERM",
    "RAFT INDEX",
    "RAFT APPLIED INDEX",
];

/// etcdctl's tables pad cells to the widest value, and ids differ in length: compare the
/// cells, not the padding, and mask the columns in [`MASKED_COLUMNS`].
fn mask_tables(text: &str) -> String {
    let mut masked_columns: Vec<usize> = Vec::new();
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with('+') {
            out += "+---\n";
        } else if line.starts_with('|') {
            let mut cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            if cells.iter().any(|c| MASKED_COLUMNS.contains(c)) {
                masked_columns = (0..cells.len())
                    .filter(|&i| MASKED_COLUMNS.contains(&cells[i]))
                    .collect();
            } else {
                for &i in &masked_columns {
                    if let Some(c) = cells.get_mut(i) {
                        *c = "<masked>";
                    }
                }
            }
            out += &format!("| {} |\n", cells.join(" | "));
        } else {
            out += line;
            out += "\n";
        }
    }
    out
}

/// Waits until a watch printed `n` events; on a deadline, says how many it got instead, in
/// a line starting with [`SHORT`].
async fn wait_events(stdout: &Collector, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = count_events(&stdout.now());
        if got >= n {
            return String::new();
        }
        if Instant::now() > deadline {
            return format!("{SHORT} expected {n} events, got {got}\n");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Marks a watch that printed fewer events than the script expects.
const SHORT: &str = "!! watch short:";

/// Events a watch printed whole so far: the simple format prints an event as three lines
/// (PUT/DELETE, the key, the value), JSON a `"kv"` object per event on a line of its own. Only
/// lines already ended count, so an event whose last lines are still on their way (the pipe
/// gives output in pieces) is not counted, and the watch is not stopped before it arrives.
fn count_events(stdout: &str) -> usize {
    let ended = &stdout[..stdout.rfind('\n').map_or(0, |i| i + 1)];
    let lines: Vec<&str> = ended.lines().collect();
    let simple = lines
        .iter()
        .enumerate()
        .filter(|(i, l)| (**l == "PUT" || **l == "DELETE") && i + 2 < lines.len())
        .count();
    simple + ended.matches("\"kv\":{").count()
}

/// A pipe read to the end in the background; `now()` shows what arrived so far.
struct Collector {
    text: Arc<Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

fn collect(mut pipe: impl AsyncRead + Unpin + Send + 'static) -> Collector {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    Collector { text, task }
}

impl Collector {
    fn now(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    async fn finish(self) -> String {
        self.task.await.unwrap();
        self.text.lock().unwrap().clone()
    }
}

/// Starts etcd and oxcd, runs `script` with Debian's etcdctl against both and fails listing
/// every step whose masked transcripts differ.
async fn compare(script: &[Step]) {
    compare_with(script, ETCDCTL.into(), false).await
}

/// [`compare`], with `cli` (etcdctl or oxcdctl) against oxcd; etcdctl against etcd is the
/// reference. `drop_client_logs` leaves clientv3's JSON log lines out of stderr.
pub async fn compare_with(script: &[Step], cli: std::path::PathBuf, drop_client_logs: bool) {
    assert!(
        std::path::Path::new(ETCDCTL).exists(),
        "{ETCDCTL} is missing: install Debian's etcd-client package (apt-get install etcd-client)"
    );
    let etcd = Member::start_etcd();
    let oxcd = Member::start();
    tokio::join!(etcd.client(), oxcd.client());
    let (mut reference, mut subject) = tokio::join!(
        Side::new(
            "etcd",
            etcd.client_port,
            etcd.peer_port,
            ETCDCTL.into(),
            drop_client_logs
        ),
        Side::new(
            "oxcd",
            oxcd.client_port,
            oxcd.peer_port,
            cli,
            drop_client_logs
        ),
    );
    let mut diffs = Vec::new();
    for step in script {
        let (want, got) = tokio::join!(reference.step(step), subject.step(step));
        assert!(
            !want.contains(SHORT),
            "script error: etcd itself did not print the events expected by {}\n{want}",
            step.describe()
        );
        if want != got {
            diffs.push(format!(
                "step {}\n== etcd 3.4:\n{want}== oxcd:\n{got}",
                step.describe()
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} of {} steps differ from etcd:\n\n{}\n--- oxcd log:\n{}",
        diffs.len(),
        script.len(),
        diffs.join("\n"),
        oxcd.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_kv_txn_and_watch_match_etcd() {
    compare(&kv_txn_and_watch()).await;
}

/// put, get, del, txn, watch and compaction in every output format, errors included.
pub fn kv_txn_and_watch() -> Vec<Step> {
    vec![
        // put, --prev-kv, --ignore-value (revision 1 is the empty store on both).
        run(&["put", "k1", "v1"]),
        run(&["put", "k2", "v2", "-w", "json"]),
        run(&["put", "k3", "v3"]),
        run(&["put", "k1", "v1b", "--prev-kv"]),
        run(&["put", "k1", "v1c", "--prev-kv", "-w", "json"]),
        run(&["put", "a/x", "ax"]),
        run(&["put", "a/y", "ay"]),
        run(&["put", "b", "bb", "-w", "fields"]),
        run(&["put", "k2", "--ignore-value"]),
        // get: formats, ranges, limits, revisions, sorting.
        run(&["get", "k1"]),
        run(&["get", "k1", "-w", "json"]),
        run(&["get", "k1", "-w", "fields"]),
        run(&["get", "k1", "--hex"]),
        run(&["get", "k", "--prefix"]),
        run(&["get", "k", "--prefix", "--limit=2", "-w", "json"]),
        run(&["get", "k", "--prefix", "--limit=1", "-w", "fields"]),
        run(&["get", "k1", "--rev=2"]),
        run(&["get", "k1", "--rev=5", "-w", "json"]),
        run(&["get", "k", "--prefix", "--rev=4", "--limit=2", "-w", "json"]),
        run(&["get", "", "--prefix", "--keys-only"]),
        run(&["get", "k", "--prefix", "--print-value-only"]),
        run(&["get", "a/y", "--from-key"]),
        run(&["get", "k1", "--from-key", "--keys-only", "--limit=2"]),
        run(&["get", "a/x", "a/z"]),
        run(&["get", "k", "--prefix", "--order=DESCEND"]),
        run(&[
            "get",
            "k",
            "--prefix",
            "--sort-by=MODIFY",
            "--order=DESCEND",
        ]),
        run(&[
            "get",
            "k",
            "--prefix",
            "--sort-by=VALUE",
            "--order=DESCEND",
            "-w",
            "json",
        ]),
        run(&["get", "", "--prefix", "--sort-by=CREATE", "--keys-only"]),
        run(&[
            "get",
            "k",
            "--prefix",
            "--sort-by=VERSION",
            "--order=DESCEND",
        ]),
        run(&["get", "k1", "--consistency=s", "-w", "json"]),
        run(&["get", "missing"]),
        run(&["get", "missing", "-w", "json"]),
        // del: count, --prev-kv, --prefix.
        run(&["del", "b"]),
        run(&["del", "b"]),
        run(&["del", "a/", "--prefix", "--prev-kv"]),
        run(&["del", "k3", "--prev-kv", "-w", "json"]),
        run(&["del", "missing", "-w", "json"]),
        // txn -i: both branches, every output format.
        txn(
            &["txn", "-i"],
            "value(\"k1\") = \"v1c\"\n\nput k1 v1d\nget k1\n\nput k1 nope\n\n",
        ),
        txn(
            &["txn", "-i", "-w", "json"],
            "mod(\"k1\") < \"5\"\n\nput k1 nope\n\nput t1 f1\nget k2\n\n",
        ),
        txn(
            &["txn", "-i", "-w", "fields"],
            "version(\"k2\") = \"2\"\ncreate(\"t1\") > \"0\"\n\ndel k2 --prev-kv\nput t2 s2\n\nput t2 nope\n\n",
        ),
        // A value compare on a missing key fails; a read-only branch writes no revision.
        txn(
            &["txn", "-i"],
            "value(\"missing\") = \"\"\n\nput t3 nope\n\nget t --prefix\n\n",
        ),
        txn(&["txn", "-i", "-w", "json"], "\nput t3 v3\n\n\n"),
        // Compares on a missing key: zero version, mod and create revisions.
        txn(
            &["txn", "-i", "-w", "json"],
            "version(\"missing\") = \"0\"\nmod(\"missing\") < \"1\"\ncreate(\"t3\") > \"0\"\n\nget t3\n\nput bad 1\n\n",
        ),
        // The history of one key, of a prefix and of a deleted key.
        watch(&["watch", "k1", "--rev=2", "--prev-kv"], 4, &[], 4),
        watch(
            &["watch", "--prefix", "a/", "--rev=1", "-w", "json"],
            4,
            &[],
            4,
        ),
        watch(
            &["watch", "k2", "--rev=3", "--prev-kv", "-w", "json"],
            3,
            &[],
            3,
        ),
        // Live events after a replayed one: puts, deletes, a multi-key delete.
        run(&["put", "w/0", "zero"]),
        watch(
            &[
                "watch",
                "--prefix",
                "w/",
                "--rev=18",
                "--prev-kv",
                "-w",
                "json",
            ],
            1,
            &[
                &["put", "w/1", "a"],
                &["put", "w/1", "b"],
                &["del", "w/1"],
                &["put", "w/2", "c"],
                &["del", "w/", "--prefix"],
            ],
            7,
        ),
        watch(
            &["watch", "w/a", "w/c", "--rev=24"],
            0,
            &[
                &["put", "w/b", "1"],
                &["put", "w/c", "2"],
                &["put", "w/a", "3"],
            ],
            2,
        ),
        // The whole history, one batch.
        watch(
            &["watch", "", "--prefix", "--rev=2", "-w", "json"],
            28,
            &[],
            28,
        ),
        run(&["get", "", "--from-key", "--keys-only"]),
        // Compaction, and reads and watches below it.
        run(&["compaction", "5"]),
        run(&["compaction", "5"]),
        run(&["compaction", "100000"]),
        run(&["get", "k1", "--rev=4"]),
        run(&["get", "k1", "--rev=5", "-w", "json"]),
        run(&["watch", "k1", "--rev=2"]),
        run(&["compaction", "6", "--physical"]),
        run(&["get", "k", "--prefix", "--rev=6", "-w", "json"]),
        // Errors: exit code, gRPC code in the log line, message.
        run(&["get", "k1", "--rev=100000"]),
        run(&["get", ""]),
        run(&["put", "", "v"]),
        run(&["del", ""]),
        run(&["put", "missing", "--ignore-value"]),
        txn(&["txn", "-i"], "\nput d 1\nput d 2\n\n\n"),
        // The whole key space at the end, then none of it.
        run(&["get", "", "--prefix", "-w", "json"]),
        run(&["del", "", "--prefix"]),
        run(&["get", "", "--prefix", "-w", "json"]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_lease_and_maintenance_match_etcd() {
    compare(&lease_and_maintenance()).await;
}

/// Leases, then member list, endpoint health/status/hashkv, defrag and alarms.
pub fn lease_and_maintenance() -> Vec<Step> {
    vec![
        run(&["put", "k", "v"]),
        // Granted in expiry order: etcd lists leases by expiry.
        run(&["lease", "grant", "100"]),
        run(&["lease", "grant", "200", "-w", "json"]),
        run(&["lease", "list"]),
        run(&["lease", "list", "-w", "json"]),
        run(&["put", "lk1", "v", "--lease={lease0}"]),
        run(&["put", "lk2", "v", "--lease={lease0}", "-w", "json"]),
        run(&["put", "lk2", "v2", "--ignore-lease"]),
        run(&["get", "lk", "--prefix", "-w", "json"]),
        run(&["lease", "timetolive", "{lease0}"]),
        run(&["lease", "timetolive", "{lease0}", "--keys"]),
        run(&["lease", "timetolive", "{lease0}", "--keys", "-w", "json"]),
        run(&["lease", "keep-alive", "--once", "{lease0}"]),
        run(&["lease", "keep-alive", "--once", "{lease1}", "-w", "json"]),
        watch(
            &["watch", "--prefix", "lk", "--rev=3"],
            3,
            &[&["lease", "revoke", "{lease0}"]],
            5,
        ),
        run(&["get", "lk", "--prefix"]),
        run(&["lease", "revoke", "{lease0}"]),
        run(&["lease", "timetolive", "{lease0}"]),
        run(&["lease", "timetolive", "{lease0}", "-w", "json"]),
        run(&["lease", "keep-alive", "--once", "{lease0}"]),
        run(&["lease", "list"]),
        run(&["lease", "revoke", "{lease1}", "-w", "json"]),
        // Unknown and invalid leases.
        run(&["put", "k", "v", "--lease=1234"]),
        run(&["lease", "revoke", "1234"]),
        run(&["lease", "revoke", "zz"]),
        run(&["lease", "timetolive", "1234", "--keys"]),
        run(&["lease", "grant", "10000000000"]),
        // Cluster and maintenance.
        run(&["member", "list"]),
        run(&["member", "list", "-w", "table"]),
        run(&["member", "list", "-w", "json"]),
        run(&["endpoint", "health"]),
        run(&["endpoint", "health", "-w", "json"]),
        run(&["endpoint", "status", "-w", "table"]),
        run(&["endpoint", "status", "-w", "json"]),
        run(&["endpoint", "status", "--cluster", "-w", "json"]),
        run(&["endpoint", "health", "--cluster"]),
        run(&["endpoint", "hashkv", "-w", "json"]),
        run(&["endpoint", "hashkv", "--rev=2", "-w", "json"]),
        run(&["compaction", "3"]),
        run(&["endpoint", "hashkv", "-w", "json"]),
        run(&["endpoint", "hashkv", "--rev=2", "-w", "json"]),
        run(&["defrag"]),
        run(&["alarm", "list"]),
        run(&["get", "", "--prefix", "-w", "json"]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_edge_cases_match_etcd() {
    compare(&edge_cases()).await;
}

/// Corners where oxcd is known to have differed from etcd.
pub fn edge_cases() -> Vec<Step> {
    vec![
        // The store starts at revision 1 with compactMainRev -1: compacting at 0 succeeds.
        run(&["compaction", "0"]),
        run(&["put", "k", "v"]),
        run(&["endpoint", "hashkv", "-w", "json"]),
        // etcd lists leases by expiry, not by id.
        run(&["lease", "grant", "300"]),
        run(&["lease", "grant", "100"]),
        run(&["lease", "grant", "200"]),
        run(&["lease", "list"]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_auth_users_and_roles_match_etcd() {
    compare(&auth_users_and_roles()).await;
}

/// Users, roles and permissions, auth on and off, logins right and wrong, in the simple and
/// json formats, errors included.
pub fn auth_users_and_roles() -> Vec<Step> {
    let with_stdin = |args, stdin| Step::Run { args, stdin };
    vec![
        run(&["auth", "enable"]),
        run(&["user", "add", "root:rootpw"]),
        run(&["auth", "enable"]),
        run(&["role", "add", "root"]),
        run(&["user", "grant-role", "root", "root"]),
        with_stdin(
            &["user", "add", "alice", "--interactive=false"],
            "alicepw\n",
        ),
        run(&["user", "add", "bob", "--new-user-password=bobpw"]),
        run(&["user", "add", "carl", "--no-password"]),
        run(&["user", "add", "root:again"]),
        run(&["user", "add"]),
        run(&["role", "add", "r1"]),
        run(&["role", "add", "r1"]),
        run(&["role", "add"]),
        run(&["role", "grant-permission", "r1", "read", "/a/", "--prefix"]),
        run(&["role", "grant-permission", "r1", "write", "k1"]),
        run(&["role", "grant-permission", "r1", "readwrite", "a", "z"]),
        run(&["role", "grant-permission", "r1", "READ", "x", "--from-key"]),
        run(&["role", "grant-permission", "r1", "bogus", "x"]),
        run(&[
            "role",
            "grant-permission",
            "r1",
            "read",
            "a",
            "b",
            "--prefix",
        ]),
        run(&["role", "grant-permission", "nope", "read", "a"]),
        run(&["role", "get", "r1"]),
        run(&["role", "get", "r1", "-w", "json"]),
        run(&["role", "get", "nope"]),
        run(&["user", "grant-role", "alice", "r1"]),
        run(&["user", "grant-role", "alice", "nope"]),
        run(&["user", "grant-role", "alice"]),
        run(&["user", "get", "alice"]),
        run(&["user", "get", "alice", "--detail"]),
        run(&["user", "get", "alice", "-w", "json"]),
        run(&["user", "list"]),
        run(&["user", "list", "-w", "json"]),
        run(&["role", "list"]),
        run(&["role", "list", "-w", "table"]),
        run(&["role", "revoke-permission", "r1", "k1"]),
        run(&["role", "revoke-permission", "r1", "a", "z"]),
        run(&["role", "revoke-permission", "r1", "nope"]),
        run(&["user", "revoke-role", "alice", "r1"]),
        run(&["user", "revoke-role", "alice", "r1"]),
        run(&["user", "grant-role", "alice", "r1"]),
        with_stdin(
            &["user", "passwd", "alice", "--interactive=false"],
            "alice2\n",
        ),
        run(&["put", "/a/x", "1"]),
        run(&["auth", "enable"]),
        run(&["get", "/a/x"]),
        run(&["--user", "root:wrong", "get", "/a/x"]),
        run(&["--user", "alice:alicepw", "get", "/a/x"]),
        run(&["--user", "alice:alice2", "get", "/a/x"]),
        run(&[
            "--user",
            "alice",
            "--password",
            "alice2",
            "get",
            "/a/",
            "--prefix",
        ]),
        run(&["--user", "alice:alice2", "put", "/a/x", "2"]),
        run(&["--user", "alice:alice2", "get", "/b"]),
        run(&["--user", "alice:alice2", "user", "list"]),
        run(&["--user", "alice:alice2", "user", "get", "alice"]),
        run(&[
            "--user",
            "root:rootpw",
            "user",
            "revoke-role",
            "root",
            "root",
        ]),
        run(&["--user", "root:rootpw", "user", "delete", "root"]),
        run(&["--user", "root:rootpw", "user", "delete", "bob"]),
        run(&["--user", "root:rootpw", "user", "delete", "bob"]),
        run(&["--user", "root:rootpw", "role", "delete", "r1"]),
        run(&["--user", "root:rootpw", "user", "get", "alice"]),
        run(&["--user", "root:rootpw", "put", "/a/x", "3"]),
        run(&["--user", "root:rootpw", "auth", "disable"]),
        run(&["get", "/a/x"]),
        run(&["--user", "root:rootpw", "get", "/a/x"]),
    ]
}

// oxcdctl against oxcd prints what etcdctl prints against etcd, for the same scripts.

fn oxcdctl() -> std::path::PathBuf {
    oxcd_testkit::binary::oxcdctl().unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oxcdctl_kv_txn_and_watch_match_etcdctl() {
    compare_with(&kv_txn_and_watch(), oxcdctl(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oxcdctl_lease_and_maintenance_match_etcdctl() {
    compare_with(&lease_and_maintenance(), oxcdctl(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oxcdctl_edge_cases_match_etcdctl() {
    compare_with(&edge_cases(), oxcdctl(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oxcdctl_auth_users_and_roles_match_etcdctl() {
    compare_with(&auth_users_and_roles(), oxcdctl(), true).await;
}
