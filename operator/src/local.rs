//! [`Workloads`] as plain processes on this machine: a member's "pod" is an `oxcd` process on
//! loopback ports, its "volume" a directory, and the status is kept here, where an operator
//! that is started again finds it, as it would in the API server. The init step runs first,
//! as an init container would: a member it refuses is a pod whose init container failed.
//!
//! This is how the operator's cluster-facing code is exercised against real members without
//! Kubernetes: its integration tests and its benchmark (`oxcd-operator-bench`).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::act::{Launch, Workload, Workloads};
use crate::certs::{Authority, Issued};
use crate::crd::EtcdClusterStatus;
use crate::error::{Error, Result};
use crate::members::{Access, ClientTls};
use crate::plan::{Pod, Volume};

mod drive;

pub use drive::{Crashes, Stopped, drive, pass};

/// Gives a free loopback port each time it is called.
pub type PortSource = Box<dyn Fn() -> u16 + Send + Sync>;

pub struct LocalWorkloads {
    pub root: PathBuf,
    binary: PathBuf,
    port_source: PortSource,
    /// Client and peer port by member name, fixed the first time the name is seen.
    ports: Mutex<BTreeMap<String, (u16, u16)>>,
    pods: Mutex<BTreeMap<String, LocalPod>>,
    pub status: Mutex<EtcdClusterStatus>,
    /// `oxcd-operator`, for a seed restored from a backup (`restore-member`).
    operator_binary: Option<PathBuf>,
    /// Members serve TLS to clients and peers, with certificates from this CA, and check
    /// client certificates; the operator presents its own.
    tls: Option<LocalTls>,
    /// Opened with [`LocalWorkloads::open`]: status, ports and pods are kept in files under
    /// `root`, and member processes outlive this one, so that another operator process
    /// finds everything as this one left it.
    persist: bool,
}

/// How long the certificates [`LocalWorkloads::with_tls`] issues are valid.
const CERT_VALIDITY: Duration = Duration::from_secs(30 * 86_400);

struct LocalTls {
    authority: Mutex<Authority>,
    /// The CA file members and the operator trust: the authority's, or a bundle.
    trusted: Mutex<String>,
    /// The operator's client certificate.
    client: Mutex<Issued>,
}

struct LocalPod {
    /// Our child, when this process started it.
    child: Option<Child>,
    record: PodRecord,
    persist: bool,
}

/// What a "pod" is, as kept in `<volume>/pod.json` by a persisted instance.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PodRecord {
    /// 0 when the init step refused the member and nothing runs.
    pid: u32,
    /// The member's command line, for the restart after its process exits.
    args: Vec<String>,
    version: String,
    config: String,
    guard_refused: bool,
    #[serde(default)]
    forced: bool,
}

impl Drop for LocalPod {
    fn drop(&mut self) {
        // A persisted instance's members outlive it, as pods outlive an operator.
        if !self.persist
            && let Some(child) = &mut self.child
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether a process runs (a zombie does not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status();
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let temp = path.with_extension("tmp");
    std::fs::write(
        &temp,
        serde_json::to_vec(value).map_err(|e| Error::Other(e.to_string()))?,
    )
    .map_err(io)?;
    std::fs::rename(&temp, path).map_err(io)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn io(e: std::io::Error) -> Error {
    Error::Other(e.to_string())
}

impl LocalWorkloads {
    /// Members under `root`, running `binary` (an `oxcd`), on ports from `port_source`.
    pub fn new(root: &Path, binary: PathBuf, port_source: PortSource) -> LocalWorkloads {
        LocalWorkloads {
            root: root.to_path_buf(),
            binary,
            port_source,
            ports: Mutex::default(),
            pods: Mutex::default(),
            status: Mutex::default(),
            operator_binary: None,
            tls: None,
            persist: false,
        }
    }

    /// Members with mutual TLS on their client and peer ports, every certificate issued by
    /// `authority` (as the operator's `auto` TLS issues them into Secrets), each member's in
    /// `<volume>/tls/`.
    pub fn with_tls(mut self, authority: Authority) -> Result<LocalWorkloads> {
        let client = authority.issue("oxcd-operator", &[], CERT_VALIDITY)?;
        self.tls = Some(LocalTls {
            trusted: Mutex::new(authority.cert_pem.clone()),
            authority: Mutex::new(authority),
            client: Mutex::new(client),
        });
        Ok(self)
    }

    /// Issues every member a new certificate from `authority` and replaces its files by
    /// rename, as the kubelet updates a Secret's projected files; the members read them
    /// again without restarting. The CA file becomes `trusted` (a bundle during a rotation).
    pub fn reissue_certificates(&self, authority: Authority, trusted: &str) -> Result<()> {
        let tls = self
            .tls
            .as_ref()
            .ok_or_else(|| Error::Other("no TLS".into()))?;
        let names: Vec<String> = self.pods.lock().unwrap().keys().cloned().collect();
        for name in names {
            self.write_member_tls(&authority, &name, trusted)?;
        }
        *tls.client.lock().unwrap() = authority.issue("oxcd-operator", &[], CERT_VALIDITY)?;
        *tls.authority.lock().unwrap() = authority;
        *tls.trusted.lock().unwrap() = trusted.to_string();
        Ok(())
    }

    fn tls_dir(&self, member: &str) -> PathBuf {
        self.volume(member).join("tls")
    }

    fn write_member_tls(&self, authority: &Authority, member: &str, trusted: &str) -> Result<()> {
        let dir = self.tls_dir(member);
        std::fs::create_dir_all(&dir).map_err(io)?;
        // A local member is reached on loopback only.
        let sans = [member, "localhost", "127.0.0.1", "::1"].map(String::from);
        let issued = authority.issue(member, &sans, CERT_VALIDITY)?;
        for (file, contents) in [
            ("ca.crt", trusted),
            ("tls.key", issued.key_pem.as_str()),
            ("tls.crt", issued.cert_pem.as_str()),
        ] {
            let temp = dir.join(format!(".{file}.tmp"));
            std::fs::write(&temp, contents).map_err(io)?;
            std::fs::rename(&temp, dir.join(file)).map_err(io)?;
        }
        Ok(())
    }

    /// Runs `binary` (an `oxcd-operator`) as the restore step of a seed started from a
    /// backup, as its pod's first init container would.
    pub fn with_operator(mut self, binary: PathBuf) -> LocalWorkloads {
        self.operator_binary = Some(binary);
        self
    }

    /// Like [`LocalWorkloads::new`], but everything is kept in files under `root` and found
    /// there again: what one operator process leaves, the next one opens.
    pub fn open(root: &Path, binary: PathBuf, port_source: PortSource) -> LocalWorkloads {
        let mut w = LocalWorkloads::new(root, binary, port_source);
        w.persist = true;
        w.status = Mutex::new(read_json(&root.join("status.json")).unwrap_or_default());
        w.ports = Mutex::new(read_json(&root.join("ports.json")).unwrap_or_default());
        let mut pods = BTreeMap::new();
        if let Ok(dirs) = std::fs::read_dir(root.join("volumes")) {
            for dir in dirs.flatten() {
                if let Some(record) = read_json::<PodRecord>(&dir.path().join("pod.json")) {
                    let name = dir.file_name().to_string_lossy().into_owned();
                    pods.insert(
                        name,
                        LocalPod {
                            child: None,
                            record,
                            persist: true,
                        },
                    );
                }
            }
        }
        w.pods = Mutex::new(pods);
        w
    }

    /// Kills every member process (SIGKILL): the end of a persisted instance's run.
    pub fn kill_all(&self) {
        let names: Vec<String> = self.pods.lock().unwrap().keys().cloned().collect();
        for name in names {
            self.kill_pod(&name);
        }
    }

    fn forget_pod(&self, member: &str) -> Option<LocalPod> {
        let pod = self.pods.lock().unwrap().remove(member);
        if self.persist {
            let _ = std::fs::remove_file(self.volume(member).join("pod.json"));
        }
        pod
    }

    fn volume(&self, member: &str) -> PathBuf {
        self.root.join("volumes").join(member)
    }

    fn data_dir(&self, member: &str) -> PathBuf {
        self.volume(member).join("data")
    }

    fn ports(&self, member: &str) -> (u16, u16) {
        let mut ports = self.ports.lock().unwrap();
        if let Some(known) = ports.get(member) {
            return *known;
        }
        // Never a port another member was given, running or not: it may start again.
        let mut given: std::collections::BTreeSet<u16> = ports
            .values()
            .flat_map(|(client, peer)| [*client, *peer])
            .collect();
        let mut fresh = || loop {
            let port = (self.port_source)();
            if given.insert(port) {
                return port;
            }
        };
        let new = (fresh(), fresh());
        ports.insert(member.to_string(), new);
        if self.persist {
            let _ = write_json(&self.root.join("ports.json"), &*ports);
        }
        new
    }

    /// Kills a member's process (SIGKILL), as a node that dies takes its pod.
    pub fn kill_pod(&self, member: &str) {
        if let Some(mut pod) = self.forget_pod(member) {
            if pod.record.pid != 0 {
                signal(pod.record.pid, "-KILL");
            }
            if let Some(child) = &mut pod.child {
                let _ = child.wait();
            }
        }
    }

    /// Kills a member's process (SIGKILL) and keeps its pod, as a container that crashes:
    /// the next [`Workloads::observe`] starts it again.
    pub fn kill_process(&self, member: &str) {
        if let Some(pod) = self.pods.lock().unwrap().get(member)
            && pod.record.pid != 0
        {
            signal(pod.record.pid, "-KILL");
        }
    }

    /// Empties a member's data dir, keeping the volume, as a volume wiped under a member.
    pub fn wipe(&self, member: &str) -> Result<()> {
        std::fs::remove_dir_all(self.data_dir(member)).map_err(io)
    }

    /// The client URLs of the members whose process runs.
    pub fn client_urls(&self) -> Vec<String> {
        let pods = self.pods.lock().unwrap();
        let running = pods.iter().filter(|(_, p)| p.record.pid != 0);
        running.map(|(name, _)| self.client_url(name)).collect()
    }

    /// Every member's log, for failure messages.
    pub fn logs(&self) -> String {
        let pods = self.pods.lock().unwrap();
        pods.keys()
            .map(|name| {
                let log = std::fs::read_to_string(self.volume(name).join("member.log"));
                format!("--- {name}\n{}", log.unwrap_or_default())
            })
            .collect()
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The member's command line, as its container's would be.
    fn member_args(&self, launch: &Launch) -> Vec<String> {
        let (client, peer) = (
            self.client_url(&launch.member),
            self.peer_url(&launch.member),
        );
        let initial: Vec<String> = launch
            .initial_cluster
            .iter()
            .map(|(n, u)| format!("{n}={u}"))
            .collect();
        let state = if launch.new_cluster {
            "new"
        } else {
            "existing"
        };
        let data_dir = self.data_dir(&launch.member).to_string_lossy().into_owned();
        [
            ("--name", launch.member.as_str()),
            ("--data-dir", &data_dir),
            ("--listen-client-urls", &client),
            ("--advertise-client-urls", &client),
            ("--listen-peer-urls", &peer),
            ("--initial-advertise-peer-urls", &peer),
            ("--initial-cluster", &initial.join(",")),
            ("--initial-cluster-state", state),
            ("--initial-cluster-token", &launch.token),
        ]
        .iter()
        .flat_map(|(flag, value)| [flag.to_string(), value.to_string()])
        .chain(
            launch
                .force_new_cluster
                .then(|| "--force-new-cluster".to_string()),
        )
        .chain(self.tls.iter().flat_map(|_| self.tls_args(&launch.member)))
        .collect()
    }

    /// oxcd's TLS flags for a member: the same certificate on both ports, client
    /// certificates checked on both.
    fn tls_args(&self, member: &str) -> Vec<String> {
        let dir = self.tls_dir(member);
        let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let mut args = Vec::new();
        for prefix in ["--", "--peer-"] {
            args.push(format!("{prefix}cert-file={}", file("tls.crt")));
            args.push(format!("{prefix}key-file={}", file("tls.key")));
            args.push(format!("{prefix}trusted-ca-file={}", file("ca.crt")));
            args.push(format!("{prefix}client-cert-auth"));
        }
        args
    }

    /// Starts a member's process, its log appended to `<volume>/member.log`.
    fn spawn(&self, member: &str, args: &[String]) -> Result<Child> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.volume(member).join("member.log"))
            .map_err(io)?;
        Command::new(&self.binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(io)
    }

    /// Starts again, with the same command line, every member whose process exited, as the
    /// kubelet restarts a pod's container (its init step does not run again).
    fn restart_exited(&self) -> Result<()> {
        let mut pods = self.pods.lock().unwrap();
        for (name, pod) in pods.iter_mut() {
            let exited = match &mut pod.child {
                Some(child) => child.try_wait().map_err(io)?.is_some(),
                None => !alive(pod.record.pid),
            };
            if pod.record.pid == 0 || !exited {
                continue;
            }
            let child = self.spawn(name, &pod.record.args)?;
            pod.record.pid = child.id();
            pod.child = Some(child);
            if self.persist {
                write_json(&self.volume(name).join("pod.json"), &pod.record)?;
            }
        }
        Ok(())
    }
}

impl Workloads for LocalWorkloads {
    fn peer_url(&self, member: &str) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.ports(member).1)
    }

    fn client_url(&self, member: &str) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.ports(member).0)
    }

    fn access(&self) -> Access {
        let Some(tls) = &self.tls else {
            return Access::plain();
        };
        let client = tls.client.lock().unwrap().clone();
        Access::tls(ClientTls {
            ca_pem: tls.trusted.lock().unwrap().clone(),
            cert_pem: client.cert_pem,
            key_pem: client.key_pem,
        })
    }

    async fn observe(&self) -> Result<Vec<Workload>> {
        self.restart_exited()?;
        let mut names: Vec<String> = self.pods.lock().unwrap().keys().cloned().collect();
        if let Ok(dirs) = std::fs::read_dir(self.root.join("volumes")) {
            names.extend(
                dirs.flatten()
                    .map(|d| d.file_name().to_string_lossy().into_owned()),
            );
        }
        names.sort();
        names.dedup();
        let pods = self.pods.lock().unwrap();
        Ok(names
            .into_iter()
            .map(|name| {
                let pod = pods.get(&name).map(|p| Pod {
                    version: p.record.version.clone(),
                    config: p.record.config.clone(),
                    guard_refused: p.record.guard_refused,
                    failing: None,
                    forced: p.record.forced,
                    ready: p.record.pid != 0,
                });
                let volume = if self.volume(&name).exists() {
                    Volume::Ours
                } else {
                    Volume::Missing
                };
                Workload { name, pod, volume }
            })
            .collect())
    }

    async fn start_member(&self, launch: &Launch) -> Result<()> {
        if self.pods.lock().unwrap().contains_key(&launch.member) {
            return Ok(());
        }
        std::fs::create_dir_all(self.volume(&launch.member)).map_err(io)?;
        let data_dir = self.data_dir(&launch.member).to_string_lossy().into_owned();
        if let Some(tls) = &self.tls {
            let authority = tls.authority.lock().unwrap().clone();
            let trusted = tls.trusted.lock().unwrap().clone();
            self.write_member_tls(&authority, &launch.member, &trusted)?;
        }
        if let Some(restore) = &launch.restore {
            let binary = self
                .operator_binary
                .as_ref()
                .ok_or_else(|| Error::Other("a restore needs the oxcd-operator binary".into()))?;
            let args = restore.member_args(launch, &data_dir, &self.peer_url(&launch.member));
            let out = Command::new(binary)
                .args(["--log-format", "text"])
                .args(&args)
                .arg(format!("--oxcd={}", self.binary.display()))
                .output()
                .map_err(io)?;
            if !out.status.success() {
                return Err(Error::Other(format!(
                    "restore-member: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        let guard = Command::new(&self.binary)
            .args(launch.guard.args(&data_dir))
            .output()
            .map_err(io)?;
        let guard_refused = !guard.status.success();
        let args = self.member_args(launch);
        let child = if guard_refused {
            None
        } else {
            Some(self.spawn(&launch.member, &args)?)
        };
        let record = PodRecord {
            pid: child.as_ref().map_or(0, |c| c.id()),
            args,
            version: launch.version.clone(),
            config: launch.config.clone(),
            guard_refused,
            forced: launch.force_new_cluster,
        };
        if self.persist {
            write_json(&self.volume(&launch.member).join("pod.json"), &record)?;
        }
        let pod = LocalPod {
            child,
            record,
            persist: self.persist,
        };
        self.pods.lock().unwrap().insert(launch.member.clone(), pod);
        Ok(())
    }

    /// SIGTERM, then SIGKILL after 20 s, as the kubelet stops a deleted pod's container.
    async fn delete_pod(&self, member: &str) -> Result<()> {
        let Some(mut pod) = self.forget_pod(member) else {
            return Ok(());
        };
        let pid = pod.record.pid;
        if pid == 0 {
            return Ok(());
        }
        signal(pid, "-TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let gone = match &mut pod.child {
                Some(child) => child.try_wait().map_err(io)?.is_some(),
                None => !alive(pid),
            };
            if gone {
                return Ok(());
            }
            if Instant::now() > deadline {
                signal(pid, "-KILL");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn delete_volume(&self, member: &str) -> Result<()> {
        match std::fs::remove_dir_all(self.volume(member)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        }
    }

    async fn save_status(&self, status: &EtcdClusterStatus) -> Result<()> {
        *self.status.lock().unwrap() = status.clone();
        if self.persist {
            write_json(&self.root.join("status.json"), status)?;
        }
        Ok(())
    }
}
