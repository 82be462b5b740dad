//! Members started together as a new cluster in one temp dir, members that join it later, and
//! the leader they agree on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_client::Client;

use crate::binary;
use crate::client::{connect, timed};
use crate::error::Result;
use crate::logs;
use crate::member::{Launch, Member};
use crate::wait::{wait_for, wait_until};

/// `--initial-cluster-token` of every cluster the kit starts.
pub const CLUSTER_TOKEN: &str = "oxcd-test";

/// A cluster of members started together with `--initial-cluster-state new`, named `m0`,
/// `m1`, ... Members added later join with `existing`.
pub struct Cluster {
    pub members: Vec<Member>,
    /// How every member starts, joiners included.
    launch: Launch,
    /// Declared last: the members' data dirs go after the processes are killed.
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` `oxcd` members as a new cluster; [`Cluster::leader`] waits for them to agree.
    pub fn start(n: usize) -> Cluster {
        Cluster::start_with(n, &[])
    }

    /// Starts `n` `oxcd` members with extra flags.
    pub fn start_with(n: usize, extra_args: &[&str]) -> Cluster {
        let binary = binary::oxcd().unwrap_or_else(|e| panic!("{e}"));
        let extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        let mut cluster = Cluster::new(binary, n, &extra_args).expect("create the cluster dir");
        cluster.spawn_all().expect("spawn the members");
        cluster
    }

    /// `n` members of a new cluster running `binary`, not started yet: their ports, data dirs
    /// and `--initial-cluster` are set, and the caller may change each one's
    /// [`Member::launch`] (environment, fail points) before [`Cluster::spawn_all`].
    pub fn new(binary: PathBuf, n: usize, extra_args: &[String]) -> Result<Cluster> {
        let dir = tempfile::Builder::new().prefix("oxcd-cluster-").tempdir()?;
        let mut launch = Launch::new(binary, extra_args);
        launch.cluster_token = Some(CLUSTER_TOKEN);
        let mut members: Vec<Member> = (0..n)
            .map(|i| Member::new(&format!("m{i}"), dir.path(), launch.clone()))
            .collect();
        let initial_cluster = initial_cluster(&members);
        for member in &mut members {
            member.launch.initial_cluster = initial_cluster.clone();
        }
        Ok(Cluster {
            members,
            launch,
            dir,
        })
    }

    /// Starts every member that is not running.
    pub fn spawn_all(&mut self) -> Result<()> {
        self.members.iter_mut().try_for_each(Member::spawn)
    }

    /// Where the members' data dirs and logs are.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// The indices of members that run and are not paused.
    pub fn live(&mut self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| self.members[i].is_running() && !self.members[i].is_paused())
            .collect()
    }

    /// The client URLs of the members currently running.
    pub fn running_endpoints(&mut self) -> Vec<String> {
        self.members
            .iter_mut()
            .filter_map(|m| m.is_running().then(|| m.endpoint()))
            .collect()
    }

    /// Every member's log, by name.
    pub fn logs(&self) -> Vec<(String, String)> {
        self.members
            .iter()
            .map(|m| (m.name.clone(), m.log()))
            .collect()
    }

    /// Each member's name, whether it runs, and the last `lines` lines of its log: for
    /// failure messages.
    pub fn log_tails(&mut self, lines: usize) -> String {
        let mut report = String::new();
        for member in &mut self.members {
            let running = member.is_running();
            let tail = logs::tail(&member.log(), lines);
            report += &format!("--- {} (running: {running}) ---\n{tail}\n", member.name);
        }
        report
    }

    /// A client of member `i` only, once it answers Status.
    pub async fn client(&self, i: usize) -> Client {
        let endpoint = self.members[i].endpoint();
        wait_for(
            Duration::from_secs(30),
            &format!("member {i} to serve\n{}", self.members[i].log()),
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

    /// A client of the given members only, connected lazily (see [`connect`]).
    pub async fn client_of(&self, members: &[usize]) -> Result<Client> {
        let endpoints: Vec<String> = members
            .iter()
            .map(|&i| self.members[i].endpoint())
            .collect();
        connect(&endpoints).await
    }

    /// Member `i`'s ID and the leader it knows of (0 for none).
    pub async fn status(&self, i: usize) -> Result<(u64, u64)> {
        let mut client = self.client_of(&[i]).await?;
        let status = timed(client.status()).await?;
        let id = status.header().map_or(0, |h| h.member_id());
        Ok((id, status.leader()))
    }

    /// The index of the leader every live member agrees on, once there is one; panics with
    /// the members' logs after 30 s.
    pub async fn leader(&mut self) -> usize {
        let live = self.live();
        match self.leader_among(&live, Duration::from_secs(30)).await {
            Ok(leader) => leader,
            Err(e) => panic!("{e}\n{}", self.log_tails(8)),
        }
    }

    /// The leader the given members agree on, once they do; it must be one of them.
    pub async fn leader_among(&self, members: &[usize], timeout: Duration) -> Result<usize> {
        wait_until(timeout, "members to agree on a leader", || {
            self.agreed_leader(members)
        })
        .await
    }

    async fn agreed_leader(&self, members: &[usize]) -> Option<usize> {
        let mut leaders = BTreeSet::new();
        let mut ids = BTreeMap::new();
        for &i in members {
            let (id, leader) = self.status(i).await.ok()?;
            ids.insert(id, i);
            leaders.insert(leader);
        }
        let leader = leaders.pop_first().filter(|_| leaders.is_empty())?;
        ids.get(&leader).copied()
    }

    // Membership changes.

    /// Adds a member slot (not started) that will join with `--initial-cluster-state
    /// existing`; returns its index. Call MemberAdd with its peer URL, then
    /// [`Cluster::start_joining`].
    pub fn new_joiner(&mut self) -> usize {
        let i = self.members.len();
        let mut launch = self.launch.clone();
        launch.initial_state = "existing";
        self.members
            .push(Member::new(&format!("m{i}"), self.dir.path(), launch));
        i
    }

    /// Starts joiner `i` with the `--initial-cluster` someone else worked out (e.g. the
    /// `ETCD_INITIAL_CLUSTER` printed by `etcdctl member add`).
    pub fn start_joining_as(&mut self, i: usize, initial_cluster: &str) {
        self.members[i].launch.initial_cluster = initial_cluster.to_string();
        self.members[i].spawn().expect("spawn the joiner");
    }

    /// Starts joiner `i`; its initial cluster lists every member that is running plus itself.
    pub fn start_joining(&mut self, i: usize) {
        let listed: Vec<usize> = (0..self.members.len())
            .filter(|&j| j == i || self.members[j].is_running())
            .collect();
        let initial = initial_cluster(listed.iter().map(|&j| &self.members[j]));
        self.start_joining_as(i, &initial);
    }
}

/// `--initial-cluster` naming these members: `name=peer URL`, comma-separated.
pub fn initial_cluster<'a>(members: impl IntoIterator<Item = &'a Member>) -> String {
    members
        .into_iter()
        .map(|m| format!("{}={}", m.name, m.peer_url()))
        .collect::<Vec<_>>()
        .join(",")
}
