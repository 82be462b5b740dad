//! [`Workloads`] as plain processes on loopback: a member's "pod" is an `oxcd` process, its
//! "volume" a directory, and the status is kept here, where a restarted operator finds it as
//! it would in the API server. The init step runs first, as an init container would: a member
//! it refuses is a pod whose init container failed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use oxcd_operator::act::{Launch, Workload, Workloads};
use oxcd_operator::crd::EtcdClusterStatus;
use oxcd_operator::plan::{Pod, Volume};
use oxcd_operator::{Error, Result};
use oxcd_testkit::{Member, free_port};

pub struct LocalWorkloads {
    pub root: PathBuf,
    binary: PathBuf,
    ports: Mutex<BTreeMap<String, (u16, u16)>>,
    pods: Mutex<BTreeMap<String, LocalPod>>,
    pub status: Mutex<EtcdClusterStatus>,
}

struct LocalPod {
    member: Member,
    version: String,
    config: String,
    guard_refused: bool,
}

impl LocalWorkloads {
    pub fn new(root: &Path) -> LocalWorkloads {
        LocalWorkloads {
            root: root.to_path_buf(),
            binary: oxcd_testkit::binary::oxcd().expect("the oxcd binary"),
            ports: Mutex::default(),
            pods: Mutex::default(),
            status: Mutex::default(),
        }
    }

    fn volume(&self, member: &str) -> PathBuf {
        self.root.join("volumes").join(member)
    }

    fn ports(&self, member: &str) -> (u16, u16) {
        *self
            .ports
            .lock()
            .unwrap()
            .entry(member.to_string())
            .or_insert_with(|| (free_port(), free_port()))
    }

    /// Kills a member's process, as a node that dies takes its pod.
    pub fn kill_pod(&self, member: &str) {
        self.pods.lock().unwrap().remove(member);
    }

    /// Empties a member's data dir, keeping the volume, as a volume wiped under a member.
    pub fn wipe(&self, member: &str) {
        let data = self.volume(member).join(format!("{member}.etcd"));
        std::fs::remove_dir_all(&data).expect("wipe the data dir");
    }

    pub fn client_urls(&self) -> Vec<String> {
        let pods = self.pods.lock().unwrap();
        pods.values()
            .filter(|p| !p.guard_refused)
            .map(|p| p.member.endpoint())
            .collect()
    }

    pub fn logs(&self) -> String {
        let pods = self.pods.lock().unwrap();
        pods.values()
            .map(|p| format!("--- {}\n{}", p.member.name, p.member.log()))
            .collect()
    }
}

impl Workloads for LocalWorkloads {
    fn peer_url(&self, member: &str) -> String {
        format!("http://127.0.0.1:{}", self.ports(member).1)
    }

    fn client_url(&self, member: &str) -> String {
        format!("http://127.0.0.1:{}", self.ports(member).0)
    }

    async fn observe(&self) -> Result<Vec<Workload>> {
        let mut names: Vec<String> = self.pods.lock().unwrap().keys().cloned().collect();
        if let Ok(dirs) = std::fs::read_dir(self.root.join("volumes")) {
            names.extend(
                dirs.flatten()
                    .map(|d| d.file_name().to_string_lossy().into_owned()),
            );
        }
        names.sort();
        names.dedup();
        let mut pods = self.pods.lock().unwrap();
        Ok(names
            .into_iter()
            .map(|name| {
                let pod = pods.get_mut(&name).map(|p| {
                    // A process that exited is a pod in CrashLoopBackOff: still there.
                    let _ = p.member.is_running();
                    Pod {
                        version: p.version.clone(),
                        config: p.config.clone(),
                        guard_refused: p.guard_refused,
                    }
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
        let volume = self.volume(&launch.member);
        std::fs::create_dir_all(&volume).map_err(|e| Error::Other(e.to_string()))?;
        let (client_port, peer_port) = self.ports(&launch.member);
        let initial_cluster: Vec<String> = launch
            .initial_cluster
            .iter()
            .map(|(n, u)| format!("{n}={u}"))
            .collect();
        let mut member_launch = oxcd_testkit::Launch::new(
            self.binary.clone(),
            &["--initial-cluster-token".to_string(), launch.token.clone()],
        );
        member_launch.initial_cluster = initial_cluster.join(",");
        member_launch.initial_state = if launch.new_cluster {
            "new"
        } else {
            "existing"
        };
        let mut member = Member::new(&launch.member, &volume, member_launch);
        member.client_port = client_port;
        member.peer_port = peer_port;
        let data_dir = member.data_dir.to_string_lossy().into_owned();
        let guard = Command::new(&self.binary)
            .args(launch.guard.args(&data_dir))
            .output()
            .map_err(|e| Error::Other(e.to_string()))?;
        let guard_refused = !guard.status.success();
        if !guard_refused {
            member.spawn().map_err(|e| Error::Other(e.to_string()))?;
        }
        let pod = LocalPod {
            member,
            version: launch.version.clone(),
            config: launch.config.clone(),
            guard_refused,
        };
        self.pods.lock().unwrap().insert(launch.member.clone(), pod);
        Ok(())
    }

    /// SIGTERM, as the kubelet stops a deleted pod's container.
    async fn delete_pod(&self, member: &str) -> Result<()> {
        if let Some(mut pod) = self.pods.lock().unwrap().remove(member) {
            pod.member.stop();
        }
        Ok(())
    }

    async fn delete_volume(&self, member: &str) -> Result<()> {
        match std::fs::remove_dir_all(self.volume(member)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Other(e.to_string())),
            _ => Ok(()),
        }
    }

    async fn save_status(&self, status: &EtcdClusterStatus) -> Result<()> {
        *self.status.lock().unwrap() = status.clone();
        Ok(())
    }
}
