//! Starts real `oxcd` processes on free loopback ports, with their own data dirs.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A free loopback port for a member to bind later, each handed out once per test process.
/// Taken below the kernel's ephemeral range (32768 and up by default), from which outgoing
/// connections get their ports: the tests' many client connections could otherwise take a
/// port between this check and the member's bind, and the member would fail to start with
/// "Address already in use" (seen in a full run). Processes start at different points.
pub fn free_port() -> u16 {
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id() % COUNT;
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (start + n) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + COUNT);
}

/// Waits up to `timeout` for `child` to exit; its exit status, or `None` if it still runs.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `check` until it returns `Some`, or panics after `timeout` with `what`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    poll_until(timeout, check)
        .await
        .unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// Polls `check` until it returns `Some`; `None` after `timeout`.
pub async fn poll_until<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One oxcd member process of a single-member cluster.
pub struct Member {
    child: Option<Child>,
    pub name: String,
    pub data_dir: PathBuf,
    pub client_port: u16,
    pub peer_port: u16,
    /// Extra flags passed on every start.
    pub extra_args: Vec<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Member {
    /// Starts a fresh member in a new temporary data dir.
    pub fn start() -> Member {
        Member::start_with(&[])
    }

    /// Starts a fresh member with extra flags.
    pub fn start_with(extra_args: &[&str]) -> Member {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Member {
            child: None,
            name: "m0".to_string(),
            data_dir: dir.path().join("m0.etcd"),
            client_port: free_port(),
            peer_port: free_port(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            _dir: Some(dir),
        };
        m.spawn();
        m
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn dir(&self) -> &Path {
        self.data_dir.parent().unwrap()
    }

    /// The server's log (stderr), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("oxcd.log")).unwrap_or_default()
    }

    fn spawn(&mut self) {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir().join("oxcd.log"))
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
            .args(["--initial-cluster", &format!("{}={peer}", self.name)])
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn oxcd");
        self.child = Some(child);
    }

    /// A connected client, once the member answers requests.
    pub async fn client(&self) -> etcd_client::Client {
        let endpoint = self.endpoint();
        wait_for(
            Duration::from_secs(20),
            &format!("oxcd at {endpoint} to serve\n{}", self.log()),
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

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status()
                .unwrap();
            assert!(
                wait_exit(&mut c, Duration::from_secs(20)).is_some(),
                "oxcd did not stop on SIGTERM"
            );
        }
    }

    /// Waits for the process to exit by itself; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let status = wait_exit(self.child.as_mut()?, timeout)?;
        self.child = None;
        status.code()
    }

    /// Starts the member again on the same ports and data dir.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill the member first");
        self.spawn();
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A real etcd server (Debian's `/usr/bin/etcd`, 3.4) on free loopback ports with its own
/// data dir: the reference the etcdctl tests compare oxcd against.
pub struct EtcdProcess {
    child: Child,
    pub client_port: u16,
    pub peer_port: u16,
    dir: tempfile::TempDir,
}

impl EtcdProcess {
    pub const BIN: &'static str = "/usr/bin/etcd";

    /// Starts a fresh single-member etcd; panics if the binary is missing (CI installs it).
    pub fn start() -> EtcdProcess {
        assert!(
            Path::new(Self::BIN).exists(),
            "{} is missing: install Debian's etcd-server package (apt-get install etcd-server)",
            Self::BIN
        );
        let dir = tempfile::tempdir().unwrap();
        let (client_port, peer_port) = (free_port(), free_port());
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let child = Command::new(Self::BIN)
            // The same member name as [`Member`], so outputs that show it compare equal.
            .args(["--name", "m0", "--data-dir"])
            .arg(dir.path().join("m0.etcd"))
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
            .args(["--initial-cluster", &format!("m0={peer}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        EtcdProcess {
            child,
            client_port,
            peer_port,
            dir,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    /// A connected client, once etcd answers requests.
    pub async fn client(&self) -> etcd_client::Client {
        let endpoint = self.endpoint();
        wait_for(
            Duration::from_secs(20),
            &format!("etcd at {endpoint} to serve\n{}", self.log()),
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
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The gRPC code and message of a failed call.
pub fn status(e: etcd_client::Error) -> (tonic::Code, String) {
    match e {
        etcd_client::Error::GRpcStatus(s) => (s.code(), s.message().to_string()),
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

/// Bytes as text, for assertions and messages.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Puts `key` and returns the revision the put created.
pub async fn put(c: &mut etcd_client::Client, key: &str, value: &str) -> i64 {
    c.put(key, value, None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision()
}
