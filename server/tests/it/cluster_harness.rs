//! Multi-member clusters of real `oxcd` processes on loopback, each with its own data dir.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use etcd_client::Client;

use crate::harness::{free_port, poll_until, wait_exit, wait_for};

/// One member process.
pub struct Node {
    child: Option<Child>,
    pub name: String,
    pub data_dir: PathBuf,
    pub client_port: u16,
    pub peer_port: u16,
    /// `--initial-cluster` and `--initial-cluster-state` used at first start.
    pub initial_cluster: String,
    pub initial_state: &'static str,
    pub extra_args: Vec<String>,
}

impl Node {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// Waits for the process to exit by itself; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let status = wait_exit(self.child.as_mut()?, timeout)?;
        self.child = None;
        status.code()
    }

    fn spawn(&mut self) {
        let client = self.endpoint();
        let peer = self.peer_url();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.with_extension("log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_oxcd"))
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args([
                "--initial-cluster",
                &self.initial_cluster,
                "--initial-cluster-state",
                self.initial_state,
            ])
            .args(["--initial-cluster-token", "oxcd-test"])
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn oxcd");
        self.child = Some(child);
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGSTOP: the member stays up but runs nothing until [`Node::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("member running").id();
        let status = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} {pid} failed");
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "kill the member first");
        self.spawn();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A cluster of members started together with `--initial-cluster-state new`.
pub struct Cluster {
    pub nodes: Vec<Node>,
    dir: tempfile::TempDir,
    extra_args: Vec<String>,
}

impl Cluster {
    pub fn start(n: usize) -> Cluster {
        Cluster::start_with(n, &[])
    }

    pub fn start_with(n: usize, extra_args: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        let mut nodes: Vec<Node> = (0..n)
            .map(|i| Node {
                child: None,
                name: format!("n{i}"),
                data_dir: dir.path().join(format!("n{i}.etcd")),
                client_port: free_port(),
                peer_port: free_port(),
                initial_cluster: String::new(),
                initial_state: "new",
                extra_args: extra_args.clone(),
            })
            .collect();
        let initial: Vec<String> = nodes
            .iter()
            .map(|n| format!("{}={}", n.name, n.peer_url()))
            .collect();
        for node in &mut nodes {
            node.initial_cluster = initial.join(",");
            node.spawn();
        }
        Cluster {
            nodes,
            dir,
            extra_args,
        }
    }

    /// Endpoints of the members currently running.
    pub fn endpoints(&mut self) -> Vec<String> {
        self.nodes
            .iter_mut()
            .filter_map(|n| {
                if n.is_running() {
                    Some(n.endpoint())
                } else {
                    None
                }
            })
            .collect()
    }

    /// A client of member `i` only.
    pub async fn client(&self, i: usize) -> Client {
        let endpoint = self.nodes[i].endpoint();
        wait_for(
            Duration::from_secs(30),
            &format!("member {i} to serve\n{}", self.nodes[i].log()),
            || {
                let endpoint = endpoint.clone();
                async move {
                    let mut c = Client::connect([endpoint], None).await.ok()?;
                    c.status().await.ok()?;
                    Some(c)
                }
            },
        )
        .await
    }

    /// The index of the member every running member agrees leads, once there is one.
    pub async fn leader(&mut self) -> usize {
        let running: Vec<(usize, String)> = self
            .nodes
            .iter_mut()
            .enumerate()
            .filter_map(|(i, n)| {
                if n.is_running() {
                    Some((i, n.endpoint()))
                } else {
                    None
                }
            })
            .collect();
        let ids: Vec<(usize, String)> = running.clone();
        let leader = poll_until(Duration::from_secs(30), || {
            let ids = ids.clone();
            async move {
                let mut leader = None;
                let mut members = Vec::new();
                for (i, endpoint) in &ids {
                    let mut c = Client::connect([endpoint.clone()], None).await.ok()?;
                    let status = c.status().await.ok()?;
                    let l = status.leader();
                    if l == 0 || leader.is_some_and(|x| x != l) {
                        return None;
                    }
                    leader = Some(l);
                    members.push((*i, status.header()?.member_id()));
                }
                members
                    .into_iter()
                    .find(|(_, id)| Some(*id) == leader)
                    .map(|(i, _)| i)
            }
        })
        .await;
        leader
            .unwrap_or_else(|| panic!("timed out waiting for an agreed leader\n{}", self.report()))
    }

    /// Each member's name, whether it runs, and the end of its log.
    fn report(&mut self) -> String {
        let mut report = String::new();
        for node in &mut self.nodes {
            let running = node.is_running();
            let log = node.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(8)..].join("\n    ");
            report += &format!("{} (running: {running}):\n    {tail}\n", node.name);
        }
        report
    }

    /// Adds a member slot (not started) that will join with `--initial-cluster-state existing`;
    /// returns its index. Call MemberAdd with its peer URL, then `start_joining`.
    pub fn new_joiner(&mut self) -> usize {
        let i = self.nodes.len();
        self.nodes.push(Node {
            child: None,
            name: format!("n{i}"),
            data_dir: self.dir.path().join(format!("n{i}.etcd")),
            client_port: free_port(),
            peer_port: free_port(),
            initial_cluster: String::new(),
            initial_state: "existing",
            extra_args: self.extra_args.clone(),
        });
        i
    }

    /// Starts joiner `i` with the `--initial-cluster` someone else worked out (e.g. the
    /// `ETCD_INITIAL_CLUSTER` printed by `etcdctl member add`).
    pub fn start_joining_as(&mut self, i: usize, initial_cluster: &str) {
        self.nodes[i].initial_cluster = initial_cluster.to_string();
        self.nodes[i].spawn();
    }

    /// Starts joiner `i`; its initial cluster lists every member that is running plus itself.
    pub fn start_joining(&mut self, i: usize) {
        let mut initial: Vec<String> = Vec::new();
        for (j, n) in self.nodes.iter_mut().enumerate() {
            if j == i || n.is_running() {
                initial.push(format!("{}={}", n.name, n.peer_url()));
            }
        }
        self.nodes[i].initial_cluster = initial.join(",");
        self.nodes[i].spawn();
    }
}
