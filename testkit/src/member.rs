//! One member process: how it is launched, its data dir and log, and kill -9, SIGTERM,
//! SIGSTOP/SIGCONT, restart and waiting for it to exit. Also the one-member cluster in a temp
//! dir of its own that most tests need, of oxcd or of Debian's etcd.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::binary;
use crate::error::{Error, Result};
use crate::logs;
use crate::ports::free_port;
use crate::wait::{poll_until, wait_for};

/// How a member starts: its binary, flags and environment, kept across restarts.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The server: [`binary::oxcd`], [`binary::oxcd_failpoints`] or [`binary::etcd`].
    pub binary: PathBuf,
    /// `--initial-cluster`.
    pub initial_cluster: String,
    /// `new` for the founding members, `existing` for a member added later.
    pub initial_state: &'static str,
    /// `--initial-cluster-token`; `None` leaves the server's default, as for a member started
    /// by hand.
    pub cluster_token: Option<&'static str>,
    /// Flags for every start, after the kit's own: a flag given twice takes its last value,
    /// so these can replace the kit's URLs.
    pub extra_args: Vec<String>,
    /// Environment for every start (oxcd-e2e's peer routes).
    pub env: BTreeMap<String, String>,
    /// `FAILPOINTS` for the next start only.
    pub failpoints: Option<String>,
}

impl Launch {
    /// A founding member of a new cluster, with these flags.
    pub fn new(binary: PathBuf, extra_args: &[String]) -> Launch {
        Launch {
            binary,
            initial_cluster: String::new(),
            initial_state: "new",
            cluster_token: None,
            extra_args: extra_args.to_vec(),
            env: BTreeMap::new(),
            failpoints: None,
        }
    }
}

/// A member: its ports, data dir and log, and the process while it runs. Dropping it kills
/// the process.
#[derive(Debug)]
pub struct Member {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    /// `<dir>/<name>.etcd`.
    pub data_dir: PathBuf,
    /// `<dir>/<name>.log`: the member's stderr, appended to across restarts.
    pub log_path: PathBuf,
    pub launch: Launch,
    child: Option<Child>,
    /// Atomic so that pausing takes `&self`, as tests that share a cluster by reference do.
    paused: AtomicBool,
    /// The temp dir of a member that has one of its own ([`Member::start`]). Declared last,
    /// and the process is killed in `drop` before any field goes.
    own_dir: Option<tempfile::TempDir>,
}

impl Member {
    /// A member named `name` with its data dir and log in `dir`, on free ports; not started.
    pub fn new(name: &str, dir: &Path, launch: Launch) -> Member {
        Member {
            name: name.to_owned(),
            client_port: free_port(),
            peer_port: free_port(),
            data_dir: dir.join(format!("{name}.etcd")),
            log_path: dir.join(format!("{name}.log")),
            launch,
            child: None,
            paused: AtomicBool::new(false),
            own_dir: None,
        }
    }

    // One-member clusters, each in a temp dir of its own.

    /// Starts a fresh `oxcd` member in a new temporary data dir.
    pub fn start() -> Member {
        Member::start_with(&[])
    }

    /// Starts a fresh `oxcd` member with extra flags.
    pub fn start_with(extra_args: &[&str]) -> Member {
        let binary = binary::oxcd().unwrap_or_else(|e| panic!("{e}"));
        Member::start_alone(binary, extra_args)
    }

    /// Starts a fresh single-member etcd (Debian's, 3.4), with the same flags and member name
    /// as [`Member::start`], so that outputs that show them compare equal: the reference the
    /// tests compare oxcd against.
    pub fn start_etcd() -> Member {
        Member::start_etcd_with(&[])
    }

    /// [`Member::start_etcd`] with extra flags.
    pub fn start_etcd_with(extra_args: &[&str]) -> Member {
        Member::start_alone(binary::etcd(), extra_args)
    }

    fn start_alone(binary: PathBuf, extra_args: &[&str]) -> Member {
        let dir = tempfile::tempdir().unwrap();
        let extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        let mut member = Member::new("m0", dir.path(), Launch::new(binary, &extra_args));
        member.launch.initial_cluster = format!("m0={}", member.peer_url());
        member.own_dir = Some(dir);
        member.spawn().expect("spawn the member");
        member
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// The directory the data dir and the log are in.
    pub fn dir(&self) -> &Path {
        self.data_dir
            .parent()
            .expect("a data dir is in a directory")
    }

    /// The member's log so far, for checks and failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The highest index this member purged its raft log up to; 0 before any.
    pub fn purged_upto(&self) -> u64 {
        logs::purged_upto(&self.log())
    }

    /// A connected client, once the member answers requests.
    pub async fn client(&self) -> etcd_client::Client {
        let endpoint = self.endpoint();
        let server = self.launch.binary.file_name().unwrap_or_default();
        wait_for(
            Duration::from_secs(20),
            &format!(
                "{} at {endpoint} to serve\n{}",
                server.display(),
                self.log()
            ),
            || {
                let endpoint = endpoint.clone();
                async move {
                    let mut c = etcd_client::Client::connect([endpoint], None).await.ok()?;
                    c.get("health-probe", None).await.ok()?;
                    Some(c)
                }
            },
        )
        .await
    }

    // The process.

    /// Starts the process with its launch flags. A member that is running is left alone.
    pub fn spawn(&mut self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let (client, peer) = (self.endpoint(), self.peer_url());
        let launch = &mut self.launch;
        let mut command = Command::new(&launch.binary);
        command
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &launch.initial_cluster])
            .args(["--initial-cluster-state", launch.initial_state]);
        if let Some(token) = launch.cluster_token {
            command.args(["--initial-cluster-token", token]);
        }
        command
            .args(&launch.extra_args)
            .envs(&launch.env)
            .env_remove("FAILPOINTS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(failpoints) = launch.failpoints.take() {
            command.env("FAILPOINTS", failpoints);
        }
        self.child = Some(command.spawn()?);
        self.paused.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Starts the member again on the same ports and data dir.
    pub fn restart(&mut self) {
        assert!(!self.is_running(), "stop or kill the member first");
        self.spawn().expect("spawn the member");
    }

    /// Whether the process was started and has not exited (a paused one is running).
    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none() && self.child.is_some()
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// The exit status, if the process has exited; reaps it.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        self.paused.store(false, Ordering::Relaxed);
        Some(status)
    }

    /// SIGKILL: no chance to flush anything. Then reaps the process.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused.store(false, Ordering::Relaxed);
    }

    /// SIGTERM, then waits for the process to exit; panics if it has not within 20 s.
    pub fn stop(&mut self) {
        if self.child.is_some() {
            self.signal("-TERM").expect("send SIGTERM");
            assert!(
                self.wait_exit_status(Duration::from_secs(20)).is_some(),
                "{} did not stop on SIGTERM",
                self.name
            );
        }
    }

    /// SIGSTOP: the member stays up but runs nothing until [`Member::resume`].
    pub fn pause(&self) {
        self.set_paused(true).unwrap_or_else(|e| panic!("{e}"));
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.set_paused(false).unwrap_or_else(|e| panic!("{e}"));
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): freezes the member without killing it.
    pub fn set_paused(&self, paused: bool) -> Result<()> {
        self.signal(if paused { "-STOP" } else { "-CONT" })?;
        self.paused.store(paused, Ordering::Relaxed);
        Ok(())
    }

    fn signal(&self, signal: &str) -> Result<()> {
        let Some(child) = &self.child else {
            return Err(Error::Member(format!("{} is not running", self.name)));
        };
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()?;
        if !status.success() {
            return Err(Error::Member(format!("kill {signal} {} failed", self.name)));
        }
        Ok(())
    }

    /// Waits, blocking the thread, up to `timeout` for the process to exit by itself; its
    /// exit code, or `None` if it still runs (or was not running, or died of a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        self.wait_exit_status(timeout)?.code()
    }

    fn wait_exit_status(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.child.as_ref()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `timeout` for the process to exit by itself, without blocking the async
    /// runtime; its exit status, or `None` if it still runs.
    pub async fn exited_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        poll_until(timeout, || {
            let status = self.exit_status();
            async move { status }
        })
        .await
    }

    /// Deletes the data dir; the member must not be running.
    pub fn wipe_data(&mut self) -> Result<()> {
        if self.is_running() {
            return Err(Error::Member(format!(
                "{} is running: stop it before wiping",
                self.name
            )));
        }
        match std::fs::remove_dir_all(&self.data_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill9();
    }
}
