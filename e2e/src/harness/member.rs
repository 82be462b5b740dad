//! One member process: how it is launched, and kill -9, SIGSTOP/SIGCONT and restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::harness::POLL_INTERVAL;

/// How a member starts: its flags and environment, kept across restarts.
#[derive(Clone, Debug)]
pub struct Launch {
    /// `--initial-cluster`.
    pub initial_cluster: String,
    /// `new` for the founding members, `existing` for a member added later.
    pub initial_state: &'static str,
    /// Flags for every start, after the harness's own.
    pub extra_args: Vec<String>,
    /// Environment for every start (the peer routes).
    pub env: BTreeMap<String, String>,
    /// `FAILPOINTS` for the next start only.
    pub failpoints: Option<String>,
}

/// A member of a harness cluster: its ports and data dir, and the process while it runs.
#[derive(Debug)]
pub struct Member {
    pub index: usize,
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    /// The member's stderr, appended to across restarts.
    pub log_path: PathBuf,
    pub launch: Launch,
    child: Option<Child>,
    paused: bool,
}

impl Member {
    pub fn new(index: usize, dir: &Path, client_port: u16, peer_port: u16, launch: Launch) -> Self {
        let name = format!("m{index}");
        Member {
            index,
            data_dir: dir.join(format!("{name}.etcd")),
            log_path: dir.join(format!("{name}.log")),
            name,
            client_port,
            peer_port,
            launch,
            child: None,
            paused: false,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// Whether the process was started and has not exited (a paused one is running).
    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none() && self.child.is_some()
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The exit status, if the process has exited; reaps it.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        self.paused = false;
        Some(status)
    }

    /// The member's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The highest index this member purged its raft log up to; 0 before any.
    pub fn purged_upto(&self) -> u64 {
        purged_upto(&self.log())
    }

    /// Starts the process. A member that is running is left alone.
    pub fn start(&mut self, binary: &Path) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let (client, peer) = (self.endpoint(), self.peer_url());
        let mut command = Command::new(binary);
        command
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.launch.initial_cluster])
            .args(["--initial-cluster-state", self.launch.initial_state])
            .args(["--initial-cluster-token", "oxcd-robustness"])
            .args(&self.launch.extra_args)
            .envs(&self.launch.env)
            .env_remove("FAILPOINTS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(failpoints) = self.launch.failpoints.take() {
            command.env("FAILPOINTS", failpoints);
        }
        self.child = Some(command.spawn()?);
        self.paused = false;
        Ok(())
    }

    /// kill -9, then reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): freezes the member without killing it.
    pub fn pause(&mut self, paused: bool) -> Result<()> {
        let Some(child) = &self.child else {
            return Err(Error::Cluster(format!("{} is not running", self.name)));
        };
        let signal = if paused { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()?;
        if !status.success() {
            return Err(Error::Cluster(format!(
                "kill {signal} {} failed",
                self.name
            )));
        }
        self.paused = paused;
        Ok(())
    }

    /// Waits for the process to exit by itself.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("{} to exit", self.name),
                    waited: timeout,
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Deletes the data dir; the member must not be running.
    pub fn wipe_data(&mut self) -> Result<()> {
        if self.is_running() {
            return Err(Error::Cluster(format!(
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
        self.kill();
    }
}

/// The highest index a member's log (its stderr) shows its raft log purged up to, as
/// openraft logs each purge ("purge log, last_purged: …, purge_upto: T<term>-N<node>.<index>");
/// 0 before any.
pub fn purged_upto(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("purge log, last_purged"))
        .filter_map(|l| l.rsplit_once("purge_upto: "))
        .filter_map(|(_, id)| id.trim().rsplit_once('.'))
        .filter_map(|(_, index)| index.trim().parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}
